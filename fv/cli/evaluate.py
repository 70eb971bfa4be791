"""`fv eval GENERATED... [--data DIR]`: FVD, AEA/DEA(_WN), ACD-I/ACD-C and per-frame profiles (thesis 4.4, 5.1)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fv.cli import common
from fv.cli.app import app


def _names(values: List[str]) -> tuple[str, ...]:
    """Repeated and/or comma-separated option values -> a tuple."""
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


@app.command("eval")
def evaluate(
    generated: List[Path] = typer.Argument(..., help="`fv render-set` output folder(s), or index CSV(s) with "
                                           "columns file, emotion, ref_row|ref_video_id|ref_image."),
    data: Optional[Path] = typer.Option(None, help="Prepared data set with the real split (default: the one "
                                        "the render set was rendered from, else data/synth)."),
    split: Optional[str] = typer.Option(None, help="Real split (default: the render set's, else the index's "
                                        "ref_split, else test)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: GENERATED/eval; needed for several sets)."),
    metrics: str = typer.Option("fvd,emotion,identity", help="Which metrics: fvd, emotion, identity."),
    fvd_feature: str = typer.Option("logits", help="I3D feature for FVD: logits (FVD reference) | mixed_5c."),
    emotion_model: str = typer.Option("wtf", help="Emotion classifier: wtf (offline FER2013 CNN) | deepface."),
    identity_model: List[str] = typer.Option(["dlib"], help="Face embedder(s), repeatable or comma-separated: "
                                             "dlib | vgg-face | openface | arcface."),
    real: bool = typer.Option(True, help="Also score the real videos (the 'real data' row and curves)."),
    real_fvd_split: Optional[str] = typer.Option(None, help="Give the real data an FVD against this split "
                                                 "(e.g. train)."),
    crop: str = typer.Option("face", help="Frames larger than 64x64: face (aligned crop) | center."),
    name: List[str] = typer.Option([], help="Table name of each generated set (default: its setting column)."),
    cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: OUT/cache)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    plots: bool = typer.Option(True, help="Write the per-frame AEA / ACD-I plots."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Score generated videos against a real split; writes metrics.json, tables.md and plots."""
    from fv.metrics.errors import MetricsError
    from fv.metrics.evaluate import EvalOptions
    from fv.metrics.evaluate import evaluate as run_eval
    from fv.metrics.generated import recorded_source
    if len(generated) > 1 and out is None:
        raise MetricsError("several generated sets need --out DIR for their joint tables")
    if data is None and recorded_source(generated) is None:
        data = common.DATA
    options = EvalOptions(data=None if data is None else str(data), split=split, metrics=_names([metrics]),
                          fvd_feature=fvd_feature, emotion_model=emotion_model,
                          identity_models=_names(identity_model), real=real, real_fvd_split=real_fvd_split,
                          crop=crop, device=device, cache_dir=None if cache is None else str(cache))
    result = run_eval(generated, options, out=out, names=_names(name) or None, progress=progress, plots=plots,
                      log=common.info)
    for r in result["generated"]:
        emo = (r.get("emotion") or {}).get("groups", {}).get("all", {})
        fvd = (r.get("fvd") or {}).get("all")
        common.info(f"fv eval: {r['name']}: FVD {'–' if fvd is None else f'{fvd:.1f}'}, "
                    f"AEA {emo.get('aea', float('nan')):.2f}, DEA {emo.get('dea', float('nan')):.2f}")
