"""`fv eval`: every metric of the thesis on saved videos against a real split (thesis 4.4, 5.1).

Inputs (metrics read saved samples, never a model):
  * generated sets (fv.metrics.generated): `fv render-set` folders or index CSVs of videos, read as clips
    of 32 x 64 x 64 with an identity reference frame each.
  * the real split of a prepared data set (fv/data/layout.py): FVD's reference distribution, the identity
    reference frame f(0) (ACD-I), and the "real data" row and curves. A `fv render-set` folder names its
    data set and split in render_set.json (used when options.data / options.split are None) and each row
    the digest of the frame it was rendered from (ref_frame): a row whose reference in the real split is
    another frame (a render of another data set) is an error, not a silently wrong pairing.
Metrics: FVD (I3D logits or mixed_5c; overall and per emotion), AEA / DEA / AEA_WN / DEA_WN, ACD-I / ACD-C
(cosine and Euclidean, recognition rates) per embedder, per-frame AEA and ACD-I profiles.
Caches (under options.cache_dir, keyed by content, so re-runs and overlapping sets are cheap):
I3D features per clip set (fv.metrics.fvd.cached_features), classifier and embedder outputs per frame
(FrameCache: blake2b of each frame's bytes + the network's weights digest), decoded generic videos.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fv.metrics.errors import MetricsError
from fv.metrics.generated import load_generated, read_index, real_clip_set, recorded_source
from fv.metrics.scorer import Scorer

METRICS = ("fvd", "emotion", "identity")
CROPS = ("face", "center")


@dataclass(frozen=True)
class EvalOptions:
    """Everything that decides the numbers; saved in metrics.json."""
    data: str | None = None                     # prepared data set (fv data ...); None: the render set's own
    split: str | None = None                    # real split; None: the render set's, the index's ref_split, "test"
    metrics: tuple[str, ...] = METRICS
    fvd_feature: str = "logits"                 # I3D logits (FVD reference) | mixed_5c (thesis text)
    emotion_model: str = "wtf"                  # wtf | deepface
    identity_models: tuple[str, ...] = ("dlib",)  # dlib | vgg-face | openface | arcface
    real: bool = True                           # also score the real split (the "real data" row/curves)
    real_fvd_split: str | None = None           # FVD of the real split against this split (e.g. "train")
    crop: str = "face"                          # frames > 64x64: face | center
    device: str = "auto"
    batch_size: int = 8                         # I3D clips per batch
    cache_dir: str | None = None                # default: <out>/cache


def _check_options(o: EvalOptions) -> None:
    from fv.metrics.emotion import CLASSIFIERS
    from fv.metrics.fvd import FEATURES
    from fv.metrics.identity import EMBEDDERS

    bad = [m for m in o.metrics if m not in METRICS]
    for ok, what, value, choices in ((not bad, "metric", ",".join(bad), METRICS),
                                     (o.fvd_feature in FEATURES, "FVD feature", o.fvd_feature, FEATURES),
                                     (o.emotion_model in CLASSIFIERS, "emotion model", o.emotion_model, CLASSIFIERS),
                                     (o.crop in CROPS, "crop", o.crop, CROPS)):
        if not ok:
            raise MetricsError(f"unknown {what} {value!r}; choose from: {', '.join(choices)}")
    unknown = [m for m in o.identity_models if m not in EMBEDDERS]
    if unknown:
        raise MetricsError(f"unknown identity model {unknown[0]!r}; choose from: {', '.join(EMBEDDERS)}")


def _load_real(data: str | Path, split: str):
    from fv.data.layout import DatasetError, load_split
    try:
        return load_split(data, split)
    except DatasetError as e:
        raise MetricsError(str(e)) from None


def _split_of(generated: Sequence[Path], split: str | None) -> str:
    if split is not None:
        return split
    found = {r.ref_split for g in generated for r in read_index(g) if r.ref_split}
    if len(found) > 1:
        raise MetricsError(f"the index references several splits {sorted(found)}; pass --split")
    return found.pop() if found else "test"


def evaluate(generated: str | Path | Sequence[str | Path], options: EvalOptions, out: str | Path | None = None,
             names: Sequence[str] | None = None, progress: bool = False, plots: bool = True,
             log: Callable[[str], None] | None = None) -> dict:
    """Score generated set(s) against the real split; write metrics.json, tables.md and plots to `out`
    (default <first generated>/eval). Returns the metrics.json content."""
    from fv.metrics.report import write_report

    gens = [Path(generated)] if isinstance(generated, (str, Path)) else [Path(g) for g in generated]
    if not gens:
        raise MetricsError("no generated set given")
    _check_options(options)
    log = log or (lambda msg: None)
    out = Path(out) if out is not None else (gens[0] if gens[0].is_dir() else gens[0].parent) / "eval"
    cache_dir = Path(options.cache_dir) if options.cache_dir else out / "cache"
    recorded = recorded_source(gens) or {}
    data = options.data or recorded.get("data")
    if data is None:
        raise MetricsError(f"which data set? {gens[0]} does not name the one it was rendered from "
                           f"(no render_set.json): pass --data")
    split = _split_of(gens, options.split or recorded.get("split"))
    options = EvalOptions(**{**asdict(options), "data": data, "split": split})
    real = _load_real(data, split)
    try:
        return _run(gens, options, real, out, cache_dir, names, progress, plots, log, write_report)
    except _input_errors() as e:  # the metric modules' own input / model errors, as one line
        raise MetricsError(str(e)) from None


def _input_errors() -> tuple[type[BaseException], ...]:
    from fv.data.layout import DatasetError
    from fv.data.video_io import VideoIOError
    from fv.photo.errors import FaceError
    from fv.metrics.frechet import FeatureShapeError
    from fv.metrics.fvd import ClipFormatError
    from fv.metrics.i3d import I3DInputError, I3DWeightsMismatch, I3DWeightsMissing
    from fv.metrics.identity import FrameInputError, ModelUnavailableError, UnknownModelError
    from fv.metrics.scores import MetricInputError
    return (DatasetError, VideoIOError, FaceError, FeatureShapeError, ClipFormatError, I3DInputError,
            I3DWeightsMismatch, I3DWeightsMissing, FrameInputError, ModelUnavailableError, UnknownModelError,
            MetricInputError)


def _run(gens, options, real, out, cache_dir, names, progress, plots, log, write_report) -> dict:
    t_start = time.perf_counter()
    scorer = Scorer(options, cache_dir, progress)
    sets = [load_generated(g, real, options.crop, cache_dir, names[i] if names and i < len(names) else None,
                           progress) for i, g in enumerate(gens)]
    log(f"fv eval: {len(real)} real videos ({real.root}/{real.split}); generated: "
        + ", ".join(f"{s.name} ({len(s.clips)})" for s in sets))
    real_set = real_clip_set(real)
    real_feats = scorer.features(real_set.clips) if "fvd" in options.metrics else None
    real_res = None
    if options.real:
        real_res = scorer.score(real_set, None, None)
        if options.real_fvd_split and real_feats is not None:
            other = _load_real(options.data, options.real_fvd_split)
            real_res["fvd"] = {"feature": options.fvd_feature, "reference": options.real_fvd_split,
                               **scorer.fvd_groups(real_feats, real.emotions,
                                                   scorer.features(np.array(other.clips64)), other.emotions)}
    results = [scorer.score(s, real_feats, real.emotions) for s in sets]
    _unique_names(results)
    metrics = {"version": 1, "options": asdict(options), "device": scorer.device,
               "real_split": {"root": str(real.root), "split": real.split, "n_videos": len(real)},
               "real": real_res, "generated": results, "cache": scorer.cache_counts(),
               "timing_s": {"total": time.perf_counter() - t_start}}
    files = write_report(metrics, out, plots=plots)
    log(f"fv eval: wrote {', '.join(str(p) for p in files.values())}")
    return metrics


def _unique_names(results: list[dict]) -> None:
    seen: dict[str, int] = {}
    for r in results:
        k = seen[r["name"]] = seen.get(r["name"], 0) + 1
        if k > 1:
            r["name"] = f"{r['name']} ({k})"
