"""Exponential moving average of trainable parameters, used for sampling (trainer practice 7)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, modules: dict[str, nn.Module], decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup  # False when the average starts from trained weights (fine-tuning)
        self.shadow = {f"{name}.{k}": p.detach().clone()
                       for name, m in modules.items() for k, p in m.named_parameters()}
        self.modules = modules

    @torch.no_grad()
    def update(self, step: int) -> None:
        # warm-up: d = min(decay, (1 + step) / (10 + step)) so early averages are not stuck at init
        d = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        for name, m in self.modules.items():
            for k, p in m.named_parameters():
                self.shadow[f"{name}.{k}"].mul_(d).add_(p.detach(), alpha=1 - d)

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for k in self.shadow:
            if k not in tensors:
                raise KeyError(f"EMA state lacks {k}")
            self.shadow[k].copy_(tensors[k])

    @torch.no_grad()
    def copy_to(self, target: nn.ModuleDict) -> None:
        """Write the averaged weights into a module dict of the same structure (e.g. a sampling copy)."""
        for key, v in self.shadow.items():
            name, k = key.split(".", 1)
            target[name].get_parameter(k).copy_(v)
