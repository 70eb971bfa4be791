"""One training step of LFDM (Ni et al., CVPR 2023; thesis 2.3), both stages in one run.

Stage 1, steps [0, lfae_steps): the latent flow autoencoder, without labels. For k random frames x_t of each
video with x_ref = frame 0: (x_hat, flow, logits) = LFAE(x_ref, x_t) and
    L = sum_s mean|pool_s(x_hat) - pool_s(x_t)|,  s = 1, 1/2, 1/4     (an L1 image pyramid: the paper's VGG
                                                                       perceptual loss needs downloaded weights)
      + lambda_flow mean|flow - flow_gt|  + lambda_vis BCE(logits, 1 - occ_gt)   (where the data set carries
                                                                       ground-truth motion: flow64 / occ64)
The ground truth lives at 64 px; it is area-pooled (or upsampled) to the latent grid and scaled to pixels of the
S-pixel frame.

Stage 2, steps [lfae_steps, steps): the flow diffusion model on the frozen LFAE. The LFAE's own flows and
visibility of all 32 frames of each video are x0 (fv.engine.families.lfdm.encode_flows), and
    t ~ U{0, L-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
    L = ||target - f(x_t, t, class, latent(frame 0))||^2,   target = eps (or x0: LFDMConfig.prediction)
with the class zeroed for p_uncond of the videos (classifier-free guidance; the image condition is kept).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fv.data.layout import VideoSplit
from fv.engine.config import RunConfig
from fv.engine.families.lfdm import encode_flows
from fv.engine.labels import one_hot
from fv.trainer.distributed import Dist

GT_SIZE = 64   # fv's layout stores ground-truth motion at 64 px (flow64.npy, occ64.npy)


def pyramid_l1(x: torch.Tensor, y: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """sum over s = 1, 1/2, ... of mean |avgpool_s(x) - avgpool_s(y)|."""
    loss = (x - y).abs().mean()
    for _ in range(levels - 1):
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        loss = loss + (x - y).abs().mean()
    return loss


def to_latent_grid(gt: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, 64, 64] ground truth -> [N, C, size, size] (area average down, bilinear up)."""
    if size <= gt.shape[-1]:
        return F.adaptive_avg_pool2d(gt, size)
    return F.interpolate(gt, size=(size, size), mode="bilinear", align_corners=False)


class LFDMStep:
    previews = True
    motion_supervised = True   # the loop adds the data's ground-truth flow64 / occ64 to its batches

    def __init__(self, config: RunConfig, model: nn.ModuleDict, device: torch.device, amp_ctx, dist: Dist = Dist()):
        self.cfg, self.model, self.device, self.amp = config.model, model, device, amp_ctx
        tr = config.train
        self.grad_clip = tr.grad_clip or float("inf")
        self.trainable = {"lfae": model["lfae"], "dm": model["dm"]}
        self.optimizers = {name: torch.optim.AdamW(m.parameters(), lr=tr.lr, betas=tr.betas,
                                                   weight_decay=tr.weight_decay)
                           for name, m in self.trainable.items()}
        self.lfae = dist.wrap(model["lfae"], device)   # LFAE.forward is stage 1's whole differentiable computation
        self.dm = dist.wrap(model["dm"], device)
        self.schedule = self.cfg.schedule(device)
        self.image_size = self.cfg.image_size

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        return config

    def __call__(self, batch: dict[str, torch.Tensor], gen: torch.Generator, step: int) -> dict[str, float]:
        if step < self.cfg.lfae_steps:
            return self.lfae_step(batch, gen)
        return self.dm_step(batch, gen)

    def _update(self, name: str, loss: torch.Tensor) -> float:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(self.trainable[name].parameters(), self.grad_clip)
        opt.step()
        return float(gnorm)

    def lfae_step(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, float]:
        c = self.cfg
        video = batch["video"]
        B, T = video.shape[:2]
        k = min(c.frames_per_video, T)
        frames = torch.stack([torch.randperm(T, generator=gen)[:k] for _ in range(B)]).to(self.device)
        rows = torch.arange(B, device=self.device)[:, None].expand(B, k)
        x_t = video[rows, frames].flatten(0, 1)                                  # [B k, 3, S, S]
        with self.amp():
            rebuilt, flow, logits = self.lfae(video[:, 0], x_t)
        rebuilt, flow, logits = rebuilt.float(), flow.float(), logits.float()
        rec = pyramid_l1(rebuilt, x_t)
        out = {"rec": rec.item()}
        loss = rec
        if "flow" in batch:
            h = flow.shape[-1]
            gt_flow = batch["flow"][rows, frames].flatten(0, 1).float().permute(0, 3, 1, 2)   # [B k, 2, 64, 64]
            gt_flow = to_latent_grid(gt_flow, h) * (c.image_size / GT_SIZE)
            gt_vis = 1 - to_latent_grid(batch["occ"][rows, frames].flatten(0, 1).float()[:, None], h)
            l_flow = (flow - gt_flow).abs().mean()
            l_vis = F.binary_cross_entropy_with_logits(logits, gt_vis)
            loss = loss + c.lambda_flow * l_flow + c.lambda_vis * l_vis
            out.update(flow=l_flow.item(), vis=l_vis.item())
        out["grad_norm"] = self._update("lfae", loss)
        return {"loss": loss.item(), **out}

    def dm_step(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, float]:
        c = self.cfg
        video, emotion = batch["video"], batch["emotion"]
        B, T = video.shape[:2]
        lfae = self.model["lfae"]
        with torch.no_grad():
            x_ref = video[:, 0]
            latent = lfae.encoder(x_ref)
            flow, logits = lfae.flow(x_ref.repeat_interleave(T, 0), video.flatten(0, 1))
            h = flow.shape[-1]
            x0 = encode_flows(flow.view(B, T, 2, h, h), torch.sigmoid(logits).view(B, T, 1, h, h), c.flow_scale)
        keep = (torch.rand(B, generator=gen) >= c.p_uncond).float().to(self.device)
        emo = one_hot(emotion).to(self.device) * keep[:, None]
        t = self.schedule.sample_timesteps(B, gen, self.device)
        eps = torch.randn(x0.shape, generator=gen).to(self.device)
        x_t = self.schedule.add_noise(x0, eps, t)
        with self.amp():
            pred = self.dm(x_t, t, emo, latent)
        loss = F.mse_loss(pred.float(), eps if c.prediction == "eps" else x0)
        gnorm = self._update("dm", loss)
        return {"loss": loss.item(), "dm": loss.item(), "grad_norm": gnorm}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}
