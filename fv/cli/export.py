"""`fv export [CHECKPOINT] [--trt] [--precision fp32|fp16|bf16] [--out DIR]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fv.cli import common
from fv.cli.app import app


@app.command()
def export(
    checkpoint: Optional[Path] = typer.Argument(None, help="An fv checkpoint (default: the latest in runs/, "
                                                "else the demo's, else the one shipped with fv)."),
    trt: bool = typer.Option(False, "--trt", help="Also build TensorRT engines (needs TensorRT and a GPU)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | bf16: precision of the TensorRT "
                                  "engines (with --trt; ONNX files are always fp32)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Exports folder (default: exports/ beside the "
                                       "runs folder, or $FV_EXPORTS)."),
) -> None:
    """Export the networks of a checkpoint to ONNX (checked against PyTorch), optionally to TensorRT."""
    from fv.engine.backends.artifacts import default_exports_dir
    from fv.export.stages import export_checkpoint

    ckpt = checkpoint or common.default_checkpoint(None)
    res = export_checkpoint(ckpt, out or default_exports_dir(), trt=trt, precision=precision,
                            log=common.info)
    common.info(f"[fv] ONNX: {res.onnx.folder} (max abs error vs PyTorch {res.manifest['max_abs_error']:.2e})")
    if res.trt is not None:
        common.info(f"[fv] TensorRT: {res.trt.folder} "
                    f"(max abs error vs PyTorch {res.trt_manifest['max_abs_error']:.2e})")
