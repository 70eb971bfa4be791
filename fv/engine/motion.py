"""Where motion codes come from (thesis 2.2.1, 3.3, 3.4.4): a GRU fed with noise, or a bank of real trajectories.

A `MotionSource` gives the codes [N, T, D] of N render requests; the engine, the training preview (which is
the engine on the EMA weights) and every backend use it, so a request's codes depend only on its own seed:
    GRUMotion   R(e, h0, z_a) with e [N, T, D], h0 [N, D] drawn from the request's motion stream,
                seed + MOTION_SEED_OFFSET (the pixel noise uses the seed itself). baseline / onlyEM train R;
                onlyDM / EM-DM carry the frozen R of their baseline / onlyEM checkpoint.
    BankMotion  both_retrievedMcs: the expression-code trajectory of a training video of the target emotion,
                drawn with the request's motion stream (3.4.4 step 1).
Training draws its codes through the same objects (`training_codes`) with the step's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fv.engine.labels import N_FRAMES, one_hot

MOTION_SEED_OFFSET = 1_000_003  # motion noise and pixel noise of one request use separate streams

GRU = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (noise, h0, category) -> codes


def motion_inputs(batch: int, dim: int = 10, n_frames: int = N_FRAMES,
                  generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise e_t [B, T, dim] and initial hidden state h0 [B, dim], both N(0, I) (MoCoGAN-style)."""
    e = torch.randn(batch, n_frames, dim, generator=generator)
    h0 = torch.randn(batch, dim, generator=generator)
    return e.to(device), h0.to(device)


def motion_noise(seeds: list[int], dim: int, n_frames: int = N_FRAMES,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRU's inputs per request, e_t [N, T, dim] and h0 [N, dim], each from its request's motion stream
    (seed + MOTION_SEED_OFFSET), so they never depend on the batch the request shares."""
    pairs = [motion_inputs(1, dim, n_frames, torch.Generator().manual_seed(int(s) + MOTION_SEED_OFFSET))
             for s in seeds]
    return torch.cat([p[0] for p in pairs]).to(device), torch.cat([p[1] for p in pairs]).to(device)


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


class GRUMotion:
    """Codes from a GRU R: any callable (noise, h0, category) -> codes, a torch module or a backend."""

    def __init__(self, gru: GRU, dim: int, n_frames: int = N_FRAMES):
        self.gru, self.dim, self.n_frames = gru, dim, n_frames

    def codes(self, emotions: torch.Tensor, seeds: list[int], device=None) -> torch.Tensor:
        """emotions [N] class indices, N seeds -> codes [N, T, D]."""
        noise, h0 = motion_noise(seeds, self.dim, self.n_frames, device)
        return self.gru(noise, h0, one_hot(emotions).to(device))

    def training_codes(self, emotions: torch.Tensor, gen: torch.Generator, device=None) -> torch.Tensor:
        """Fresh codes for a training batch, conditioned on its videos' emotions (EM-DM's onlyEM GRU)."""
        noise, h0 = motion_inputs(len(emotions), self.dim, self.n_frames, gen, device)
        return self.gru(noise, h0, one_hot(emotions).to(device))


class BankMotion:
    """Codes retrieved from a MotionBank (both_retrievedMcs)."""

    def __init__(self, bank: MotionBank):
        self.bank = bank
        self.dim = bank.codes.shape[-1]

    def codes(self, emotions: torch.Tensor, seeds: list[int], device=None) -> torch.Tensor:
        return torch.stack([self.bank.retrieve(int(e), int(s) + MOTION_SEED_OFFSET)
                            for e, s in zip(emotions, seeds)]).to(device)
