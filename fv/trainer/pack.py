"""Small inference checkpoints: EMA weights as the model weights, no optimiser state, fp16 storage.

What fv ships for its demo (fv/assets/checkpoints/) and what a user shares. `fv render` and
`fv train --init` load them like any checkpoint (weights are cast back to float32 on load)."""

from __future__ import annotations

from pathlib import Path

import torch

from fv.engine.checkpoint import read_checkpoint, save_checkpoint


def pack_checkpoint(src: str | Path, dst: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    ckpt = read_checkpoint(src)
    model = ckpt.section("model")
    model.update(ckpt.section("ema"))                       # EMA weights replace the raw ones
    tensors = {f"model.{k}": (v.to(dtype) if v.is_floating_point() else v).contiguous()
               for k, v in model.items()}
    meta = {k: v for k, v in ckpt.meta.items() if k != "optim"}
    meta["packed_from"] = {"path": str(src), "step": ckpt.step}
    return save_checkpoint(dst, ckpt.config, ckpt.step, tensors, meta=meta)
