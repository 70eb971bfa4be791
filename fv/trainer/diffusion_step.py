"""One training step of the diffusion settings onlyDM, EM-DM, both_retrievedMcs (thesis 3.2.3, 3.4.3).

For each selected frame x of a real video with neutral reference x_ref = frame 0:
    t ~ U{0, L-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps   (eq. 3.2, the schedule's
    add_noise, the same module the samplers invert), loss = ||eps - U-Net(x_t, x_ref, t, z_m, z_a)||^2.
With fv's residual target (the demo preset; `fv train --residual`) the U-Net predicts x0 = frame - x_ref
and the loss is ||x0 - x0_theta||^2.
Guidance dropout: with p = 0.1 per video, motion and emotion are zeroed together.

Motion codes (fv's reading of thesis 3.2.3, where the text is brief): the GRU is a generator, not an
encoder, so a real video has no codes of its own. For every training video at every step we draw fresh
codes from the frozen R (conditioned on the video's emotion for EM-DM's onlyEM GRU) and pair code t
with real frame t. The U-Net thus learns that code trajectories drive the timing of the expression and
FiLM supplies which expression; at sampling time it sees codes from the same distribution.
both_retrievedMcs instead uses the video's own expression codes (bank), with motion mixing (3.4.4).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fv.data.layout import VideoSplit
from fv.engine.checkpoint import CheckpointError, expect_setting, read_checkpoint
from fv.engine.config import RunConfig
from fv.engine.diffusion import DiffusionSchedule, encode_target
from fv.engine.gan_sampling import motion_inputs
from fv.engine.labels import one_hot
from fv.engine.models.mixer import motion_windows
from fv.engine.video_sampler import SampleOptions, sample_diffusion_videos
from fv.trainer.distributed import Dist

MOTION_SETTING = {"onlyDM": "baseline", "EM-DM": "onlyEM"}


def attach_motion_source(config: RunConfig, motion_checkpoint: Path | None) -> RunConfig:
    """onlyDM / EM-DM: put the frozen GRU's config (from a baseline / onlyEM checkpoint) into the config."""
    need = MOTION_SETTING.get(config.setting)
    if need is None:
        return config
    if motion_checkpoint is None:
        raise CheckpointError(f"{config.setting} needs a trained {need} checkpoint for its motion codes; "
                              f"train one with `fv train {need}` or pass --motion-checkpoint")
    ckpt = read_checkpoint(motion_checkpoint)
    expect_setting(ckpt, need)
    model = dataclasses.replace(config.model, motion=ckpt.config.model, motion_from=str(motion_checkpoint))
    return config.replace(model=model)


class _Denoiser(nn.Module):
    """Reference encoding (once per video, repeated for its k frames) + denoising as ONE forward, for DDP."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x_ref, k: int, x_t, t, win, emo):
        ref = tuple(f.repeat_interleave(k, 0) for f in self.unet.encode_reference(x_ref))
        return self.unet.predict_raw(x_t, ref, t, win, emo)   # eps, or x0 for predict="x0"


class DiffusionStep:
    def __init__(self, config: RunConfig, model: nn.ModuleDict, device: torch.device, amp_ctx,
                 dist: Dist = Dist()):
        self.cfg = config.model
        self.model = model
        self.denoiser = dist.wrap(_Denoiser(model["unet"]), device)
        self.device = device
        self.amp = amp_ctx
        tr = config.train
        self.grad_clip = tr.grad_clip
        self.trainable = {"unet": model["unet"]}
        self.optimizers = {"unet": torch.optim.AdamW(model["unet"].parameters(), lr=tr.lr, betas=tr.betas,
                                                     weight_decay=tr.weight_decay)}
        c = self.cfg
        self.schedule = DiffusionSchedule(c.num_steps, c.beta_start, c.beta_end, device=device)

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        if config.model.motion_source == "retrieved":
            from fv.trainer.expression_bank import default_embedder
            m = config.model
            return config.replace(model=dataclasses.replace(
                m, bank_size=len(data), embedder=m.embedder or default_embedder(m.unet.motion_dim)))
        return config

    def initialize(self, data: VideoSplit, log) -> None:
        """Fresh run: load the frozen GRU's weights (EMA) or build the expression-code bank."""
        c = self.cfg
        if c.motion_source == "gru":
            ckpt = read_checkpoint(c.motion_from)
            state = {**ckpt.section("model.R"), **ckpt.section("ema.R")}
            self.model["R"].load_state_dict(state)
            log(f"motion codes from the frozen GRU of {c.motion_from}")
        else:
            from fv.trainer.expression_bank import fill_bank
            fill_bank(self.model["bank"], data, c.embedder, log)

    # ------------------------------------------------------------------------------------------------
    def _codes(self, batch: dict, gen: torch.Generator, step: int) -> torch.Tensor:
        emotion = batch["emotion"]
        if self.cfg.motion_source == "gru":
            R = self.model["R"]
            noise, h0 = motion_inputs(len(emotion), R.dim, batch["video"].shape[1], gen, self.device)
            with torch.no_grad():
                return R(noise, h0, one_hot(emotion).to(self.device))
        from fv.trainer.expression_bank import mixed_codes
        c = self.cfg
        p = c.mix_max * min(1.0, step / max(1, c.mix_warmup))
        return mixed_codes(self.model["bank"], batch["index"], p, gen)

    def __call__(self, batch: dict[str, torch.Tensor], gen: torch.Generator, step: int) -> dict[str, float]:
        c = self.cfg
        video, emotion = batch["video"], batch["emotion"]
        B, T = video.shape[:2]
        windows = motion_windows(self._codes(batch, gen, step), c.unet.window)          # [B, T, W, D]
        if c.batch_mode == "full_video":
            frames = torch.arange(T).expand(B, T)
        else:  # random_frames: k distinct frames per video
            k = min(c.frames_per_video, T)
            frames = torch.stack([torch.randperm(T, generator=gen)[:k] for _ in range(B)])
        k = frames.shape[1]
        rows = torch.arange(B)[:, None].expand(B, k)
        frames, rows = frames.to(self.device), rows.to(self.device)
        x0 = video[rows, frames].reshape(B * k, *video.shape[2:])                        # [B*k, 3, H, W]
        x0 = encode_target(x0, video[:, 0].repeat_interleave(k, 0), c.target)           # frame or frame - x_ref
        win = windows[rows, frames].reshape(B * k, *windows.shape[2:])                   # [B*k, W, D]
        keep = (torch.rand(B, generator=gen) >= c.p_uncond).float().to(self.device)      # guidance dropout
        keep_f = keep.repeat_interleave(k)
        win = win * keep_f[:, None, None]
        emo = one_hot(emotion).to(self.device).repeat_interleave(k, 0) * keep_f[:, None]
        t = torch.randint(0, c.num_steps, (B * k,), generator=gen).to(self.device)
        eps = torch.randn(x0.shape, generator=gen).to(self.device)
        x_t = self.schedule.add_noise(x0, eps, t)
        unet = self.model["unet"]
        with self.amp():
            pred = self.denoiser(video[:, 0], k, x_t, t, win, emo)
            # eps prediction: the thesis' ||eps - eps_theta||^2. x0 prediction (fv's residual target):
            # ||x0 - x0_theta||^2, the same error weighted 1 instead of SNR_t = abar/(1-abar), so the high-t steps where
            # only the motion codes and emotion say what the expression is are not weighted ~0.
            loss = F.mse_loss(pred.float(), x0 if unet.cfg.predict == "x0" else eps)
        opt = self.optimizers["unet"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(unet.parameters(), self.grad_clip or float("inf"))
        opt.step()
        return {"loss": loss.item(), "grad_norm": float(gnorm)}

    @torch.no_grad()
    def preview(self, sample_model: nn.ModuleDict, x_ref: torch.Tensor, emotions: torch.Tensor,
                seed: int = 0) -> torch.Tensor:
        c = self.cfg
        opts = SampleOptions(c.sampler, min(c.sample_steps, 25), c.eta, c.guidance, ref_strength=c.ref_strength)
        seeds = [seed + i for i in range(len(x_ref))]
        return sample_diffusion_videos(sample_model, c, x_ref.to(self.device), emotions, seeds, opts)

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}
