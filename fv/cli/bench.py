"""`fv bench`: sampling throughput per backend, sampler and step count (a table + JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fv.cli import common
from fv.cli.app import app


@app.command()
def bench(checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the latest onlyDM, "
                                                       "else any, in runs/, demo_out/runs/ or fv's shipped ones)."),
          backend: List[str] = typer.Option(["torch"], help="torch | onnxruntime | tensorrt (repeatable)."),
          sampler: List[str] = typer.Option(["ddim"], help="ddim | ddpm | dpmpp2m | unipc (repeatable; ignored "
                                            "for GAN settings)."),
          steps: List[str] = typer.Option(["10", "50"], help="Denoising steps (repeatable): N (= ddimN), or a "
                                          "respacing spec such as linspace10 for dpmpp2m / unipc."),
          videos: int = typer.Option(4, help="Videos rendered per timed run."),
          repeats: int = typer.Option(3, help="Timed runs per configuration (the median is reported)."),
          guidance: Optional[float] = typer.Option(None, help="Guidance scale (default: the checkpoint's)."),
          device: str = typer.Option("auto", help="auto | cpu | cuda"),
          precision: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (torch on GPU, TensorRT)."),
          max_frames_per_call: int = typer.Option(512, help="Largest batch of frames per network call."),
          artifacts: Optional[Path] = typer.Option(None, help="Export folder for onnxruntime/tensorrt "
                                                   "(default: exports/; exported if missing)."),
          json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
          ) -> None:
    """Measure rendering throughput (frames/s, videos/s); warm-up, then the median of timed runs."""
    import torch

    from fv.bench import print_table, throughput, write_json
    ckpt = checkpoint or _default()
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    steps = [_step_spec(s) for s in steps]
    rows = throughput(ckpt, backend, sampler, steps, videos, repeats, dev, guidance, artifacts,
                      max_frames_per_call, precision, log=common.info)
    print_table(rows)
    if json_out:
        common.info(f"[fv] wrote {write_json(json_out, rows)}")


def _step_spec(text: str) -> int | str:
    """--steps N (an int, ddimN) or a respacing spec, checked before anything is loaded (one-line error)."""
    from fv.cli.validate import OptionError
    from fv.engine.diffusion import TimestepSpecError, space_timesteps
    text = text.strip()
    spec = common.steps_spec(text)
    if isinstance(spec, int) and spec < 1:
        raise OptionError(f"--steps must be >= 1, got {spec}")
    try:
        space_timesteps(1000, spec)
    except TimestepSpecError as e:
        raise OptionError(f"--steps {text}: {e}") from None
    return spec


def _default() -> Path:
    from fv.engine.checkpoint import CheckpointError
    try:
        return common.default_checkpoint("onlyDM")
    except CheckpointError:
        return common.default_checkpoint(None)
