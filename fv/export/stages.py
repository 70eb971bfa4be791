"""`fv export`: checkpoint -> ONNX (checked against PyTorch) -> TensorRT engines (checked too).

Staged and keyed (STYLE practice 11): export if missing, build if missing, load. Each stage is made in a
hidden temporary folder and renamed to its keyed name only after every network passed its parity check
and the manifest is written, so a folder with the right key is always complete and verified
(fv.engine.backends.artifacts). Re-running with the same checkpoint and libraries reuses it; a new
checkpoint, spec, precision or library version gives a new key and a new folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from fv.engine.atomic import atomic_dir
from fv.engine.backends.artifacts import (OPSET, TRT_PRECISIONS, StageDir, file_sha256, onnx_stage,
                                          onnx_versions, trt_stage)
from fv.engine.backends.ort_backend import OrtBackend
from fv.engine.checkpoint import load_checkpoint
from fv.engine.families import network_modules
from fv.export.errors import ExportError
from fv.export.manifest import build_manifest, load_manifest, write_manifest
from fv.export.onnx_export import EXPORTER, export_onnx
from fv.export.parity import BATCHES, TOLERANCE, parity


@dataclass
class ExportResult:
    onnx: StageDir
    onnx_reused: bool
    manifest: dict
    trt: StageDir | None = None
    trt_reused: bool = False
    trt_manifest: dict | None = field(default=None)

    @property
    def folder(self) -> Path:
        return (self.trt or self.onnx).folder


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path | None = None, trt: bool = False,
                      precision: str = "fp32", log: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Export every network of `checkpoint` to ONNX (always fp32) and, with trt=True, build TensorRT
    engines in `precision` (fp32 | fp16 | bf16) under `out_dir`."""
    checkpoint = Path(checkpoint)
    if precision not in TRT_PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of: {', '.join(TRT_PRECISIONS)}")
    if precision != "fp32" and not trt:
        raise ExportError(f"--precision {precision} applies to TensorRT engines; add --trt "
                          f"(ONNX files are always fp32)")
    if trt:
        from fv.export.trt_build import precision_flag, tensorrt
        precision_flag(tensorrt(), precision)  # fail fast, before the ONNX stage: no TensorRT, CUDA or flag
    config, model = load_checkpoint(checkpoint, device="cpu")  # EMA weights, eval mode
    sha = file_sha256(checkpoint)
    stage = onnx_stage(checkpoint, out_dir, config=config, checkpoint_sha=sha)
    modules = network_modules(config, model)
    reused = stage.valid() is None
    if reused:
        log(f"[fv] ONNX export {stage.folder} is up to date (key {stage.key})")
    else:
        log(f"[fv] exporting {', '.join(stage.specs)} of {checkpoint} to {stage.folder}")
        _make_onnx(stage, modules, checkpoint, sha, config, log)
    result = ExportResult(stage, reused, load_manifest(stage.folder))
    if trt:
        _trt_stage(result, modules, checkpoint, sha, config, precision, log)
    return result


def _make_onnx(stage: StageDir, modules, checkpoint: Path, sha: str, config, log) -> None:
    # an incomplete or tampered folder of the same key is replaced whole
    with atomic_dir(stage.folder) as tmp:
        files, checks = {}, {}
        tol = TOLERANCE["onnxruntime-fp32"]
        for name, spec in stage.specs.items():
            path = export_onnx(modules[name], spec, tmp / stage.path(name).name)
            checks[name] = parity(modules[name], OrtBackend(path, spec, "cpu"), tol, BATCHES)
            files[name] = path
            log(f"[fv]   {name}: ONNX Runtime vs PyTorch max abs error {checks[name]['max_abs_error']:.2e} "
                f"(tolerance {tol:g})")
        write_manifest(tmp, build_manifest("onnx", stage.key, checkpoint, sha, config, stage.specs,
                                           onnx_versions(), "fp32", files, checks, opset=OPSET,
                                           exporter=EXPORTER, reference="PyTorch fp32 eager on the CPU",
                                           runtime="onnxruntime CPUExecutionProvider"))


def _trt_stage(result: ExportResult, modules, checkpoint: Path, sha: str, config, precision: str, log) -> None:
    from fv.engine.backends.trt_backend import TrtBackend, trt_versions
    from fv.export.trt_build import build_engine

    versions = trt_versions()
    stage = trt_stage(result.onnx, precision, versions)
    result.trt = stage
    if stage.valid() is None:
        result.trt_reused = True
        result.trt_manifest = load_manifest(stage.folder)
        log(f"[fv] TensorRT {precision} engines {stage.folder} are up to date (key {stage.key})")
        return
    log(f"[fv] building TensorRT {precision} engines in {stage.folder}")
    with atomic_dir(stage.folder) as tmp:
        files, checks = {}, {}
        tol = TOLERANCE[f"tensorrt-{precision}"]
        for name, spec in stage.specs.items():
            path = build_engine(result.onnx.path(name), spec, tmp / stage.path(name).name, precision)
            backend = TrtBackend(path, spec, cuda_graph=False)
            checks[name] = parity(modules[name], backend, tol, BATCHES)
            files[name] = path
            log(f"[fv]   {name}: TensorRT {precision} vs PyTorch max abs error "
                f"{checks[name]['max_abs_error']:.2e} (tolerance {tol:g})")
            del backend
            torch.cuda.empty_cache()
        result.trt_manifest = build_manifest(
            "tensorrt", stage.key, checkpoint, sha, config, stage.specs, versions, precision, files, checks,
            onnx_key=result.onnx.key, profiles={n: list(s.batch_range) for n, s in stage.specs.items()},
            reference="PyTorch fp32 eager on the CPU", runtime="TensorRT")
        write_manifest(tmp, result.trt_manifest)
