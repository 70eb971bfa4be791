"""One backend interface for every runtime (STYLE practice 10).

A backend runs ONE exported network (fv.engine.iospec):
    backend(feeds: dict[str, Tensor]) -> dict[str, Tensor]     names and shapes per backend.spec
    backend.spec: NetworkSpec, backend.device: torch.device, backend.max_batch: int | None
Outputs come back as float32 tensors on backend.device. Kinds: TorchBackend (eager, torch.compile, CUDA
graphs, bf16/fp16 autocast), OrtBackend (ONNX Runtime, CPU / CUDA EP, IO binding), TrtBackend (TensorRT
engines, preallocated buffers, CUDA graph). The samplers never branch on which one they hold.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fv.engine.backends.base import KINDS, Backend, BackendError, checked_batch

__all__ = ["KINDS", "Backend", "BackendError", "checked_batch", "make_backends"]


def make_backends(kind: str, checkpoint: str | Path, artifacts_dir: str | Path | None = None,
                  device: str | torch.device = "cpu", precision: str = "fp32",
                  **torch_options) -> dict[str, Backend]:
    """{network name: backend} for the networks of `checkpoint`'s setting (fv.engine.families.network_specs).

    torch:        the checkpoint's EMA modules; precision fp32 | bf16 | fp16, torch_options compile / cuda_graph.
    onnxruntime:  the ONNX files `fv export` wrote for exactly this checkpoint (found by key).
    tensorrt:     the engines `fv export --trt [--precision fp16|bf16]` built from them (precision fp32 | fp16 | bf16).
    A missing artefact is a BackendError that tells the user which command makes it."""
    from fv.engine.checkpoint import load_checkpoint
    from fv.engine.families import network_modules, network_specs

    if kind not in KINDS:
        raise BackendError(f"unknown backend {kind!r}; choose one of: {', '.join(KINDS)}")
    if kind == "torch":
        from fv.engine.backends.torch_backend import TorchBackend
        config, model = load_checkpoint(checkpoint, device="cpu")
        specs, mods = network_specs(config), network_modules(config, model)
        return {n: TorchBackend(mods[n], specs[n], device, precision, **torch_options) for n in specs}
    from fv.engine.backends.artifacts import find_export, find_trt
    export = find_export(checkpoint, artifacts_dir)
    if kind == "onnxruntime":
        from fv.engine.backends.ort_backend import OrtBackend
        return {n: OrtBackend(export.onnx_path(n), s, device) for n, s in export.specs.items()}
    from fv.engine.backends.trt_backend import TrtBackend
    engines = find_trt(export, precision)
    return {n: TrtBackend(engines.engine_path(n), s) for n, s in export.specs.items()}
