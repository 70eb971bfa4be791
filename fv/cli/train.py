"""`fv train SETTING`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fv.cli import common
from fv.cli.app import app


@app.command()
def train(
    setting: str = typer.Argument(..., help="baseline | onlyEM | onlyDM | EM-DM | both_retrievedMcs | LFDM (latent flow "
                                  "diffusion, the thesis' external reference: flow autoencoder, then flow "
                                  "diffusion, one run) | embedder (both_retrievedMcs' FECNet-style expression "
                                  "embedder, trained by triplets)"),
    data: Optional[Path] = typer.Option(None, help="Prepared data folder (fv data ...). Default: "
                                        "data/synth, generated on first use."),
    preset: str = typer.Option("demo", help="demo (small, trains on a CPU) | thesis (thesis scale)"),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the preset's)."),
    batch_size: Optional[int] = typer.Option(None, help="Videos per batch (thesis: 16)."),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate (thesis: 2e-4 GAN, 1e-4 diffusion)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (data order, noise, targets)."),
    run_dir: Optional[Path] = typer.Option(None, help="Run folder (default: runs/SETTING)."),
    motion_checkpoint: Optional[Path] = typer.Option(
        None, help="onlyDM / EM-DM: the baseline / onlyEM checkpoint whose frozen GRU makes the motion "
                   "codes (default: the latest in runs/, else the demo's). With --init it replaces the GRU "
                   "inside the initial checkpoint."),
    init: Optional[Path] = typer.Option(None, help="Start from these weights (fine-tune), same setting; the loss "
                                                      "weights are the preset's."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    fresh: bool = typer.Option(False, "--fresh", help="Start over even if the run folder has a checkpoint "
                               "(default: resume from its last.safetensors)."),
    ckpt_every: Optional[int] = typer.Option(None, help="Steps between checkpoints."),
    sample_every: Optional[int] = typer.Option(None, help="Steps between preview strips (0: never)."),
    residual: Optional[bool] = typer.Option(
        None, "--residual/--frame", help="Diffusion settings, fresh run: what is diffused. --residual (fv's; the "
        "demo preset's default): the frame minus the neutral face, predicted directly by the U-Net, so identity "
        "and colour stay exact. --frame (the thesis; the thesis preset's default): the frame, eps prediction. "
        "Default: the preset's (a resumed or --init run keeps its checkpoint's). The two objectives of "
        "fv.engine.diffusion.OBJECTIVES."),
    embedder: Optional[str] = typer.Option(
        None, help="both_retrievedMcs, fresh run: the expression embedder its motion codes come from. fecnet-fv16 "
        "(the default): fv's FECNet-style embedder, shipped in fv/assets/checkpoints; fecnet:CHECKPOINT: one trained "
        "by `fv train embedder`; fer2013-wtf-spca16: the features of the FER2013 CNN that also scores AEA/DEA "
        "(the default before issue 15)."),
    override: bool = typer.Option(False, "--override", help="Resuming: apply --lr/--batch-size/--seed although "
                                  "the run was trained with others (recorded in its metrics.jsonl); without it "
                                  "a resumed run refuses them."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a setting of the thesis, or both_retrievedMcs' expression embedder; resumable (re-run the same
    command to continue)."""
    from fv.trainer.run import train_setting
    overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                       ckpt_every=ckpt_every, sample_every=sample_every).items()
                 if v is not None}
    from fv.engine.config import check_setting, default_config
    from fv.engine.families import family_of
    setting = check_setting(setting)
    run = run_dir or common.RUNS / setting
    config = default_config(setting, preset)
    need = family_of(config).motion_setting(config)
    if (need is not None and motion_checkpoint is None and init is None
            and (fresh or not (run / "last.safetensors").exists())):
        motion_checkpoint = common.default_checkpoint(need)
        common.info(f"[fv] motion codes: frozen GRU of {motion_checkpoint}")
    data_dir = common.ensure_data(data or common.DATA, explicit=data is not None)
    path = train_setting(setting, data_dir, run_dir=run, runs_root=common.RUNS, preset=preset,
                         overrides=overrides, device=device, resume=not fresh, init=init,
                         motion_checkpoint=motion_checkpoint, progress=progress, log=common.info,
                         objective=None if residual is None else ("residual-x0" if residual else "frame-eps"),
                         override=override, embedder=embedder)
    common.info(f"[fv] checkpoint: {path}")


@app.command()
def pack(checkpoint: Path = typer.Argument(..., help="A training checkpoint (e.g. runs/onlyDM/last.safetensors)."),
         out: Path = typer.Argument(..., help="Where to write the small inference checkpoint."),
         fp32: bool = typer.Option(False, "--fp32", help="Keep float32 weights (default: float16 storage)."),
         ) -> None:
    """Write a small inference checkpoint: EMA weights, no optimiser state (what fv ships for its demo)."""
    import torch

    from fv.trainer.pack import pack_checkpoint
    path = pack_checkpoint(checkpoint, out, torch.float32 if fp32 else torch.float16)
    common.info(f"[fv] packed {checkpoint} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
