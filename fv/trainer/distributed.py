"""Multi-GPU (or multi-process CPU) training through torchrun + DistributedDataParallel.

Launch any `fv train` command under torchrun, nothing else changes:
    torchrun --nproc_per_node 8 $(which fv) train onlyDM --batch-size 64
Every process reads the same data, builds the same global batch of step s (a function of (seed, s)) and
keeps its shard of it: batch_size is the GLOBAL batch and must divide by the number of processes. DDP
averages the gradients, so every process holds the same weights; rank 0 alone writes checkpoints,
metrics and preview strips. Backend: NCCL on CUDA (one GPU per process, cuda:LOCAL_RANK), gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """DDP around a module whose forward() is the whole differentiable computation; identity if alone."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, indices: list[int]) -> list[int]:
        """This process' videos of the global batch (contiguous, so rank r gets rows r*b .. r*b + b - 1)."""
        if not self.enabled:
            return indices
        b = len(indices) // self.world
        return indices[self.rank * b:(self.rank + 1) * b]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average the processes' loss values (for the log)."""
        if not self.enabled or not values:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist()))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def no_sync(module: nn.Module):
    """Skip DDP's gradient all-reduce for the next backward (e.g. D's gradients during the G update)."""
    return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()


def from_env() -> Dist:
    """Dist from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); single process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(d: Dist, device: torch.device) -> torch.device:
    """Join the process group; on CUDA each process takes GPU LOCAL_RANK. Returns the device to use."""
    if not d.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
