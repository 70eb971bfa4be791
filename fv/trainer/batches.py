"""Deterministic batches: the indices and random numbers of step s are a function of (seed, s) alone,
so a run stopped after any checkpoint and resumed reproduces the uninterrupted run exactly."""

from __future__ import annotations

import torch


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for step `step` (streams separate independent uses within one step)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 97 + stream)


class EpochBatches:
    """Batch s = positions [s*B, (s+1)*B) of the infinite concatenation of per-epoch permutations."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n <= 0:
            raise ValueError("no training videos")
        self.n, self.bs, self.seed = n, batch_size, seed
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            self._cache = {epoch: torch.randperm(self.n, generator=step_generator(self.seed, epoch, 7))}
        return self._cache[epoch]

    def indices(self, step: int) -> list[int]:
        out = []
        for pos in range(step * self.bs, (step + 1) * self.bs):
            epoch, i = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[i]))
        return out
