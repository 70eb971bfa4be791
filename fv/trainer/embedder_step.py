"""One training step of the expression embedder (`fv train embedder`; fv.engine.models.fecnet).

A batch of B videos (the loop's, fv.trainer.loop) gives k = frames_per_video frames each, drawn with the step's
generator from the frames its similarity can use (fv.trainer.triplets.usable_frames); the N = B k frames are
shifted by up to `shift` pixels (edge-replicated) and flipped left-right with probability 1/2 (an expression
is symmetric enough; the descriptors do not change), embedded, mined into triplets within the batch and
scored with FECNet's triplet loss (fv.trainer.triplets). Every random number comes from the step's
generator, so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fv.data.layout import VideoSplit
from fv.engine.config import ConfigError, RunConfig
from fv.trainer.distributed import Dist
from fv.trainer.triplets import (frame_classes, frame_descriptors, mine_triplets, triplet_loss, triplet_margins,
                                 usable_frames)


def augment(x: torch.Tensor, shift: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """frames [N, 3, S, S] -> each moved by (dy, dx) ~ U{-shift..shift}^2 (edges replicated) and, with
    probability 1/2, mirrored; 3 N numbers drawn from `gen`."""
    N, _, S, _ = x.shape
    off = torch.randint(0, 2 * shift + 1, (N, 2), generator=gen)
    mirror = torch.rand(N, generator=gen) < 0.5
    if shift:
        padded = nn.functional.pad(x, (shift,) * 4, mode="replicate")
        x = torch.stack([padded[i, :, dy:dy + S, dx:dx + S] for i, (dy, dx) in enumerate(off.tolist())])
    if flip:
        x = torch.where(mirror.to(x.device)[:, None, None, None], x.flip(-1), x)
    return x


class EmbedderStep:
    previews = False   # an embedder renders no preview strips

    def __init__(self, config: RunConfig, model: nn.ModuleDict, device: torch.device, amp_ctx,
                 dist: Dist = Dist()):
        self.cfg = config.model
        self.net = dist.wrap(model["net"], device)
        self.device, self.amp = device, amp_ctx
        tr = config.train
        self.grad_clip = tr.grad_clip
        self.trainable = {"net": model["net"]}
        self.optimizers = {"net": torch.optim.AdamW(model["net"].parameters(), lr=tr.lr, betas=tr.betas,
                                                    weight_decay=tr.weight_decay)}
        self.frames = usable_frames(self.cfg.similarity, self.cfg.neutral_edge)

    @staticmethod
    def adapt_config(config: RunConfig, data: VideoSplit) -> RunConfig:
        """Similarity from the data: its action units where it has them, else its labels and phases."""
        want = config.model.similarity or ("aus" if data.aus is not None else "labels")
        if want == "aus" and data.aus is None:
            raise ConfigError(f"{data.root}/{data.split} has no aus.npy for the AU similarity")
        return config.replace(model=dataclasses.replace(config.model, similarity=want))

    def loss(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The triplet loss of one batch (frames, augmentation and triplets drawn from `gen`) and its statistics."""
        c = self.cfg
        video, emotion = batch["video"], batch["emotion"].cpu()
        B = video.shape[0]
        k = min(c.frames_per_video, len(self.frames))
        frames = self.frames[torch.stack([torch.randperm(len(self.frames), generator=gen)[:k] for _ in range(B)])]
        rows = torch.arange(B)[:, None].expand(B, k)
        x = video[rows.to(video.device), frames.to(video.device)].reshape(B * k, *video.shape[2:])   # [N, 3, S, S]
        x = augment(x, c.shift, c.flip, gen)
        aus = batch.get("aus")                                                  # [B, T, K] where the data has it
        desc = frame_descriptors(c.similarity, frames, emotion, None if aus is None else aus.cpu())
        subjects = batch["subject"].cpu().repeat_interleave(k)
        a, p, n = mine_triplets(desc, subjects, gen, c.au_gap, c.positive_pool)
        margin = triplet_margins(frame_classes(emotion, frames).reshape(-1), a, p, n, c.margin_same, c.margin_cross)
        with self.amp():
            e = self.net(x)                                                     # [N, D]
        loss, active, ordered = triplet_loss(e.float(), a.to(e.device), p.to(e.device), n.to(e.device), margin)
        return loss, {"active": float(active), "ordered": float(ordered), "triplets": len(a)}

    def __call__(self, batch: dict[str, torch.Tensor], gen: torch.Generator, step: int) -> dict[str, float]:
        loss, stats = self.loss(batch, gen)
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(self.trainable["net"].parameters(), self.grad_clip or float("inf"))
        opt.step()
        return {"loss": loss.item(), **stats, "grad_norm": float(gnorm)}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}
