"""Parity of an exported network with its PyTorch module (STYLE practice 9).

The reference is the fp32 eager module on the CPU; the candidate is any backend (ONNX Runtime,
TensorRT). Inputs are FRESH: drawn from the spec with a new random seed (recorded), at two batch sizes,
never the inputs the exporter traced with. The measure per network is
    err = max over batches, outputs and elements of |y_backend - y_torch|
and the export fails when err > tolerance (or is not finite).
"""

from __future__ import annotations

import math
import secrets

import torch
from torch import nn

from fv.engine.backends import Backend
from fv.export.errors import ExportError

# max abs error allowed, per backend precision. ONNX Runtime fp32 reorders float sums only (measured
# ~1e-6 on the demo U-Net, see the report); TensorRT fp32 may use TF32 tensor cores (10-bit mantissa);
# fp16 has an 11-bit mantissa throughout, bf16 an 8-bit one (8x fp16's rounding error).
TOLERANCE = {"onnxruntime-fp32": 1e-4, "tensorrt-fp32": 1e-2, "tensorrt-fp16": 5e-2, "tensorrt-bf16": 4e-1}
BATCHES = (1, 3)


def reference_outputs(module: nn.Module, spec, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The module's outputs on the CPU in fp32 eager mode, by output name."""
    with torch.no_grad():
        out = module.to("cpu").eval()(*[feeds[n] for n in spec.input_names])
    out = (out,) if torch.is_tensor(out) else tuple(out)
    return dict(zip(spec.output_names, out))


def parity(module: nn.Module, backend: Backend, tolerance: float, batches: tuple[int, ...] = BATCHES,
           seed: int | None = None) -> dict:
    """Check `backend` against `module` on fresh inputs; returns the record kept in the manifest.

    ExportError when the error is above `tolerance`."""
    spec = backend.spec
    seed = secrets.randbits(63) if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    per_batch = {}
    for b in batches:
        feeds = spec.sample_inputs(b, gen)
        want = reference_outputs(module, spec, feeds)
        got = backend({k: v.to(backend.device) for k, v in feeds.items()})
        per_batch[str(b)] = {n: float((got[n].float().cpu() - want[n]).abs().max()) for n in spec.output_names}
    err = max(e for outs in per_batch.values() for e in outs.values())
    record = {"max_abs_error": err, "tolerance": tolerance, "seed": seed, "batches": list(batches),
              "per_batch": per_batch}
    if not math.isfinite(err) or err > tolerance:
        raise ExportError(f"{spec.name}: {type(backend).__name__} differs from PyTorch by max abs {err:.3g} "
                          f"> tolerance {tolerance:g} (seed {seed}); the export is not written")
    return record
