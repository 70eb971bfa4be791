"""`fv demo`: synthetic data -> brief training of baseline, onlyDM and LFDM -> rendered videos, in demo_out/."""

from __future__ import annotations

from pathlib import Path

import typer

from fv.cli import common
from fv.cli.app import app


@app.command()
def demo(out: Path = typer.Option(Path("demo_out"), help="Output folder."),
         baseline_steps: int = typer.Option(60, help="Fine-tuning steps for baseline (VICEGAN)."),
         dm_steps: int = typer.Option(60, help="Fine-tuning steps for onlyDM (diffusion)."),
         lfdm_steps: int = typer.Option(40, help="Fine-tuning steps for LFDM (half the flow autoencoder, half "
                                          "the flow diffusion)."),
         faces: int = typer.Option(2, help="Held-out test faces to animate (x 6 emotions)."),
         sample_steps: int = typer.Option(25, help="DDIM steps when rendering onlyDM and LFDM."),
         progress: bool = typer.Option(True, help="Show progress bars."),
         ) -> None:
    """Run the embedded default end to end: data, training, rendering (minutes on a CPU)."""
    from fv.demo import run_demo
    run_demo(out, baseline_steps, dm_steps, faces, sample_steps, progress=progress, log=common.info,
             lfdm_steps=lfdm_steps)
