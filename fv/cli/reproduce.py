"""`fv reproduce`: the thesis' experiment end to end (fv.reproduce), resumable at every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fv.cli import common
from fv.cli.app import app


@app.command()
def reproduce(
    preset: str = typer.Option("demo", help="tiny (a test's: 3 synthetic identities, 3 steps a network, emotion "
                               "scores only; minutes) | demo (this CPU: synthetic set, ONE budget of 300 steps for "
                               "every network, fine-tuning fv's shipped checkpoints where they exist; hours) | "
                               "thesis (MUG, the thesis presets; needs --data; prints the torchrun plan without "
                               "a GPU). See fv/reproduce/plan.py."),
    data: Optional[Path] = typer.Option(None, help="A prepared data set (`fv data mug RAW DIR`); default: the "
                                        "preset's synthetic set, made in OUT/data/synth."),
    out: Path = typer.Option(Path("reproduce"), help="Output folder; re-run the same command to continue."),
    steps: Optional[int] = typer.Option(None, help="Optimiser steps per network (default: the preset's)."),
    init: Optional[str] = typer.Option(None, help="shipped (fine-tune fv's shipped checkpoint where one exists) | "
                                       "scratch (default: the preset's: demo shipped, others scratch)."),
    sample_steps: Optional[int] = typer.Option(None, help="Diffusion sampling steps of the render sets (default: "
                                               "the preset's; demo/thesis: each checkpoint's own)."),
    metrics: Optional[str] = typer.Option(None, help="fv eval's metrics, comma-separated: fvd, emotion, identity "
                                          "(default: tiny emotion; demo/thesis all three)."),
    identity_model: Optional[str] = typer.Option(None, help="ACD embedders, comma-separated: dlib | vgg-face | "
                                                 "openface | arcface (default: demo dlib, thesis the DeepFace three)."),
    gpus: int = typer.Option(8, help="--preset thesis without a GPU: GPUs per torchrun command in the printed plan."),
    plan: bool = typer.Option(False, "--plan", help="Print the stages' commands (torchrun for training) and stop."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    progress: bool = typer.Option(True, help="Show one progress bar over the stages."),
) -> None:
    """Train the six settings of the thesis (and both_retrievedMcs' embedder), render the test split with each,
    score them with one `fv eval`, and write OUT/report.md: tables 5.2-5.5 beside the thesis' and its findings."""
    import torch

    from fv.reproduce.plan import budget, torchrun_plan
    from fv.reproduce.run import run_reproduce
    split = (lambda s: None if s is None else tuple(x.strip() for x in s.split(",") if x.strip()))
    b = budget(preset, steps, init, sample_steps, split(metrics), split(identity_model))
    if b.synth is None and data is None:
        common.fail(ValueError(f"--preset {preset} needs --data MUG_DIR (prepared by `fv data mug RAW DIR`)"))
        raise typer.Exit(2)
    if plan or (b.name == "thesis" and device in ("auto", "cpu") and not torch.cuda.is_available()):
        common.info("\n".join(torchrun_plan(b, data or out / "data" / "synth", out, gpus)))
        return
    p = run_reproduce(out, b, data, device, progress, common.info)
    common.info("[fv] reproduce: " + ", ".join(f"{k} {v:.0f} s" for k, v in p.seconds.items())
                + f"; report: {out / 'report.md'}")
