"""`fv data synth | mug | folder`: prepare a data set in fv's layout (fv/data/layout.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fv.cli import common
from fv.cli.app import app

data_app = typer.Typer(help="Prepare data sets (synthetic, MUG, or your own videos).", no_args_is_help=True)
app.add_typer(data_app, name="data")
CROP128_HELP = ("Also write 128x128 clips (clips128.npy): the 64x64 clips' face crop at twice the resolution, "
                "for models trained at 128 px.")


@data_app.command("synth")
def synth(out: Path = typer.Argument(..., help="Output folder."),
          identities: int = typer.Option(60, help="Number of identities (train + test)."),
          test_identities: int = typer.Option(12, help="Identities held out for the test split."),
          takes: int = typer.Option(2, help="Takes per identity and emotion."),
          seed: int = typer.Option(0, help="Random seed."),
          size224: bool = typer.Option(False, help="Also write 224x224 clips (expression embedder input)."),
          size128: bool = typer.Option(False, help="Also write 128x128 clips (clips128.npy): the 64x64 clips "
                                       "rendered at twice the resolution (same AUs and head motion)."),
          version: int = typer.Option(2, "--version", help="Generator: 2 (default, what the shipped checkpoints "
                                      "learned) = faces on fv's alignment template moved by AU motion measured on a "
                                      "real face, with ground-truth flow and occlusion; 1 = the earlier drawing "
                                      "(AUs redraw the parts, own framing)."),
          ) -> None:
    """Generate the synthetic data set: procedural faces performing the six emotions through action units."""
    from fv.data.synth import make_synthetic
    path = make_synthetic(out, n_identities=identities, n_test_identities=test_identities, takes=takes,
                          seed=seed, size224=size224, version=version, size128=size128)
    common.info(f"[fv] synthetic data set written to {path}")


@data_app.command("mug")
def mug(raw: Path = typer.Argument(..., help="MUG's folder (the posed subset, as distributed)."),
        out: Path = typer.Argument(..., help="Output folder."),
        size224: bool = typer.Option(True, help="Also write 224x224 eye-aligned clips."),
        size128: bool = typer.Option(False, help=CROP128_HELP),
        ) -> None:
    """Preprocess the MUG Facial Expression Database (thesis 4.2): filters, subject split, alignment."""
    from fv.data.mug import format_counts, preprocess_mug
    counts = preprocess_mug(raw, out, size224=size224, size128=size128)
    common.info(format_counts(counts))


@data_app.command("folder")
def folder(videos: Path = typer.Argument(..., help="Folder of videos or frame folders."),
           csv: Path = typer.Argument(..., help="CSV with columns path, subject, emotion[, split]."),
           out: Path = typer.Argument(..., help="Output folder."),
           test_subjects: Optional[str] = typer.Option(None, help="Comma-separated test subjects "
                                                       "(default: the CSV's split column, else a seeded 20%)."),
           size224: bool = typer.Option(False, help="Also write 224x224 eye-aligned clips."),
           size128: bool = typer.Option(False, help=CROP128_HELP),
           ) -> None:
    """Prepare your own videos (RAVDESS-, CK+- or ADFES-like) in fv's layout."""
    from fv.data.folder import prepare_folder
    subjects = [s.strip() for s in test_subjects.split(",")] if test_subjects else None
    counts = prepare_folder(videos, csv, out, test_subjects=subjects, size224=size224,
                           size128=size128)
    common.info(f"[fv] prepared {out}: {counts}")
