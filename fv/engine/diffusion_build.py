"""Modules of a diffusion setting: the U-Net, and the source of its motion codes.

onlyDM / EM-DM carry the frozen GRU R of their baseline / onlyEM checkpoint (so the checkpoint alone
can sample); both_retrievedMcs carries a bank of real training trajectories to retrieve from (3.4.4).
"""

from __future__ import annotations

import torch
from torch import nn

from fv.engine.config import RunConfig
from fv.engine.diffusion import DiffusionSchedule
from fv.engine.models.unet import ConditionalUNet


class MotionBank(nn.Module):
    """Expression-code trajectories of real training videos (thesis 3.4.2-3.4.4).

    Buffers: codes [N, T, D], emotions [N] (class index), subjects [N] (index)."""

    def __init__(self, size: int, n_frames: int, dim: int):
        super().__init__()
        self.register_buffer("codes", torch.zeros(size, n_frames, dim))
        self.register_buffer("emotions", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("subjects", torch.full((size,), -1, dtype=torch.long))

    def retrieve(self, emotion: int, seed: int) -> torch.Tensor:
        """The trajectory [T, D] of a training video of `emotion`, drawn with `seed` (thesis 3.4.4 step 1)."""
        pool = (self.emotions == int(emotion)).nonzero().flatten()
        if len(pool) == 0:
            raise ValueError(f"the motion bank holds no training video of emotion index {emotion}")
        g = torch.Generator().manual_seed(int(seed))
        return self.codes[pool[torch.randint(len(pool), (1,), generator=g).item()]]


def build_diffusion_model(config: RunConfig) -> nn.ModuleDict:
    from fv.engine.build import build_motion

    m = config.model
    schedule = DiffusionSchedule(m.num_steps, m.beta_start, m.beta_end)
    mods = {"unet": ConditionalUNet(m.unet, schedule)}
    if m.motion_source == "gru":
        if m.motion is None:
            raise ValueError("a gru-driven diffusion config needs the GRU's config (motion)")
        mods["R"] = build_motion(m.motion).requires_grad_(False)
    else:
        mods["bank"] = MotionBank(m.bank_size, 32, m.unet.motion_dim)
    return nn.ModuleDict(mods)
