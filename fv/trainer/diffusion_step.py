"""One training step of the diffusion settings onlyDM, EM-DM, both_retrievedMcs (thesis 3.2.3, 3.4.3).

For each selected frame x of a real video with neutral reference x_ref = frame 0:
    t ~ U{0, L-1} (DiffusionSchedule.sample_timesteps), eps ~ N(0, I), x0 = Objective.encode(x, x_ref),
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps   (eq. 3.2, the schedule's add_noise, the same module the
    samplers invert), loss = ||Objective.loss_target(x0, eps) - f_theta(x_t, x_ref, t, z_m, z_a)||^2:
    the thesis' eps loss for "frame-eps", the x0 loss for fv's "residual-x0" (fv.engine.diffusion.OBJECTIVES).
Guidance dropout: with p_uncond per video, motion and emotion are zeroed together by the same
`drop_condition` the sampler builds its unconditional half with.

Motion codes (fv's reading of thesis 3.2.3, where the text is brief): the GRU is a generator, not an
encoder, so a real video has no codes of its own. For every training video at every step we draw fresh
codes from the frozen R (conditioned on the video's emotion for EM-DM's onlyEM GRU) and pair code t
with real frame t. The U-Net thus learns that code trajectories drive the timing of the expression and
FiLM supplies which expression; at sampling time it sees codes from the same distribution.
both_retrievedMcs instead uses the video's own expression codes (bank), with motion mixing (3.4.4).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from fv.data.layout import VideoSplit
from fv.engine.checkpoint import read_checkpoint
from fv.engine.config import RunConfig
from fv.engine.labels import one_hot
from fv.engine.models.mixer import motion_windows
from fv.engine.motion import GRUMotion
from fv.engine.video_sampler import drop_condition
from fv.trainer.distributed import Dist


class FrozenGRU:
    """onlyDM / EM-DM: codes from the frozen R the checkpoint carries, loaded from the motion checkpoint."""

    def __init__(self, config: RunConfig, model: nn.ModuleDict):
        self.cfg, self.model = config.model, model
        self.source = GRUMotion(model["R"], model["R"].dim)

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        return config

    def initialize(self, data: VideoSplit, log) -> None:
        ckpt = read_checkpoint(self.cfg.motion_from)
        self.model["R"].load_state_dict({**ckpt.section("model.R"), **ckpt.section("ema.R")})
        log(f"motion codes from the frozen GRU of {self.cfg.motion_from}")

    def codes(self, batch: dict, gen: torch.Generator, step: int) -> torch.Tensor:
        with torch.no_grad():
            return self.source.training_codes(batch["emotion"], gen, batch["video"].device)


class ExpressionBank:
    """both_retrievedMcs: each video's own expression codes, with motion mixing (3.4.4)."""

    def __init__(self, config: RunConfig, model: nn.ModuleDict):
        self.cfg, self.model = config.model, model

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        from fv.trainer.expression_bank import DEFAULT_EMBEDDER, check_embedder
        m = config.model
        embedder = check_embedder(m.embedder or DEFAULT_EMBEDDER).name   # a missing checkpoint stops it here
        return config.replace(model=dataclasses.replace(m, bank_size=len(data), embedder=embedder))

    def initialize(self, data: VideoSplit, log) -> None:
        from fv.trainer.expression_bank import fill_bank
        fill_bank(self.model["bank"], data, self.cfg.embedder, log)

    def codes(self, batch: dict, gen: torch.Generator, step: int) -> torch.Tensor:
        from fv.trainer.expression_bank import mixed_codes
        p = self.cfg.mix_max * min(1.0, step / max(1, self.cfg.mix_warmup))
        return mixed_codes(self.model["bank"], batch["index"], p, gen)


MOTION = {"gru": FrozenGRU, "retrieved": ExpressionBank}   # DiffusionConfig.motion_source -> its training side


class _Denoiser(nn.Module):
    """Reference encoding (once per video, repeated for its k frames) + denoising as ONE forward, for DDP."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x_ref, k: int, x_t, t, win, emo):
        ref = tuple(f.repeat_interleave(k, 0) for f in self.unet.encode_reference(x_ref))
        return self.unet.denoise(x_t, ref, t, win, emo)   # the raw prediction: eps, or x0 (the objective's)


class DiffusionStep:
    previews = True   # the loop renders preview strips of its EMA weights

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
        self.schedule = self.cfg.schedule(device)
        self.objective = self.cfg.parameterisation
        self.motion = MOTION[self.cfg.motion_source](config, model)

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        return MOTION[config.model.motion_source].adapt_config(config, data)

    def initialize(self, data: VideoSplit, log) -> None:
        """Fresh run: load the frozen GRU's weights (EMA) or build the expression-code bank."""
        self.motion.initialize(data, log)

    def __call__(self, batch: dict[str, torch.Tensor], gen: torch.Generator, step: int) -> dict[str, float]:
        c = self.cfg
        video, emotion = batch["video"], batch["emotion"]
        B, T = video.shape[:2]
        windows = motion_windows(self.motion.codes(batch, gen, step), c.unet.window)    # [B, T, W, D]
        if c.batch_mode == "full_video":
            frames = torch.arange(T).expand(B, T)
        else:  # random_frames: k distinct frames per video
            k = min(c.frames_per_video, T)
            frames = torch.stack([torch.randperm(T, generator=gen)[:k] for _ in range(B)])
        k = frames.shape[1]
        rows = torch.arange(B)[:, None].expand(B, k)
        frames, rows = frames.to(self.device), rows.to(self.device)
        x0 = video[rows, frames].reshape(B * k, *video.shape[2:])                        # [B*k, 3, H, W]
        x0 = self.objective.encode(x0, video[:, 0].repeat_interleave(k, 0))             # frame or frame - x_ref
        win = windows[rows, frames].reshape(B * k, *windows.shape[2:])                   # [B*k, W, D]
        keep = (torch.rand(B, generator=gen) >= c.p_uncond).float().to(self.device)      # guidance dropout
        win, emo = drop_condition(win, one_hot(emotion).to(self.device).repeat_interleave(k, 0),
                                  keep.repeat_interleave(k))
        t = self.schedule.sample_timesteps(B * k, gen, self.device)
        eps = torch.randn(x0.shape, generator=gen).to(self.device)
        x_t = self.schedule.add_noise(x0, eps, t)
        unet = self.model["unet"]
        with self.amp():
            pred = self.denoiser(video[:, 0], k, x_t, t, win, emo)
            loss = F.mse_loss(pred.float(), self.objective.loss_target(x0, eps))
        opt = self.optimizers["unet"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(unet.parameters(), self.grad_clip or float("inf"))
        opt.step()
        return {"loss": loss.item(), "grad_norm": float(gnorm)}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}
