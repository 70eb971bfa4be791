"""`fv eval`: every metric of the thesis on saved videos against a real split (thesis 4.4, 5.1).

Inputs (metrics read saved samples, never a model):
  * a generated set: the `fv render-set` folder (index.csv, or shard parts index*.csv / index/*.csv, with
    columns video_id, emotion, ref_split, ref_row, file, setting; OUT/videos/<id>.npy uint8 [32, 64, 64, 3]),
    or any index CSV with columns file, emotion and one reference column: ref_row (row of the real split),
    ref_video_id (its video_id) or ref_image (a photo). `file` (relative to the CSV's folder) is a .npy,
    a video (mp4, gif, ...) or a folder of frames. Clips of T != 32 frames are resampled uniformly
    (thesis 4.2.1); frames larger than 64x64 get the face-centred crop of training preprocessing, then
    INTER_AREA to 64x64 (thesis 4.3.1, as for LFDM's 128x128 samples); no face -> centre square crop.
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

import csv
import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fv.engine.atomic import atomic_write
from fv.engine.labels import EMOTIONS, N_FRAMES, parse_emotion
from fv.engine.render_set import frame_digest, read_manifest
from fv.metrics.errors import MetricsError
from fv.metrics.frame_cache import FrameCache, _track, model_key

METRICS = ("fvd", "emotion", "identity")
CROPS = ("face", "center")
SIZE = 64


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


# ----------------------------------------------------------------------------- the index

@dataclass
class GenRow:
    video_id: str
    emotion: int                # EMOTIONS index
    file: Path
    ref_split: str | None
    ref_row: int | None = None
    ref_video_id: str | None = None
    ref_image: Path | None = None
    setting: str = ""
    ref_frame: str | None = None    # frame_digest of the reference frame it was rendered from (fv render-set)


def _index_files(generated: Path) -> list[Path]:
    if generated.is_file():
        return [generated]
    if not generated.is_dir():
        raise MetricsError(f"generated set {generated} does not exist; pass a `fv render-set` folder or an index CSV")
    files = sorted(generated.glob("index*.csv")) + sorted((generated / "index").glob("*.csv"))
    if not files:
        raise MetricsError(f"no index.csv in {generated}: expected `fv render-set` output (index.csv + videos/), "
                           f"or an index CSV with columns file, emotion and ref_row|ref_video_id|ref_image")
    return files


def read_index(generated: str | Path) -> list[GenRow]:
    """Rows of a generated set's index (shard parts merged; a file listed twice counts once)."""
    generated = Path(generated)
    rows, seen = [], set()
    for path in _index_files(generated):
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or ())
            missing = [c for c in ("file", "emotion") if c not in cols]
            if missing or not cols & {"ref_row", "ref_video_id", "ref_image"}:
                raise MetricsError(f"{path} lacks columns {missing or []} and/or a reference column; "
                                   f"need file, emotion and ref_row|ref_video_id|ref_image")
            # `fv render-set`'s shard parts OUT/index/*.csv list files relative to OUT, like OUT/index.csv
            base = generated if generated.is_dir() and path.parent == generated / "index" else path.parent
            for i, r in enumerate(reader, start=2):  # line 1 is the header
                rows.append(_parse_row(r, path, i, base))
    out = []
    for r in rows:
        if r.file.resolve() not in seen:
            seen.add(r.file.resolve())
            out.append(r)
    if not out:
        raise MetricsError(f"the index of {generated} lists no videos")
    return out


def _parse_row(r: dict[str, str], path: Path, line: int, base: Path) -> GenRow:
    where = f"{path} line {line}"
    try:
        emotion = parse_emotion(r["emotion"])
    except ValueError as e:
        raise MetricsError(f"{where}: {e}") from None
    file = base / (r.get("file") or "")
    if not r.get("file") or not file.exists():
        raise MetricsError(f"{where}: video file {file} does not exist")
    get = lambda k: (r.get(k) or "").strip() or None  # noqa: E731
    ref_row = get("ref_row")
    if ref_row is not None and not ref_row.lstrip("-").isdigit():
        raise MetricsError(f"{where}: ref_row must be an integer row of the real split, got {ref_row!r}")
    ref_image = get("ref_image")
    if ref_row is None and get("ref_video_id") is None and ref_image is None:
        raise MetricsError(f"{where}: no reference (ref_row, ref_video_id or ref_image) for ACD-I")
    return GenRow(video_id=get("video_id") or r["file"], emotion=emotion, file=file,
                  ref_split=get("ref_split"), ref_row=None if ref_row is None else int(ref_row),
                  ref_video_id=get("ref_video_id"), ref_image=None if ref_image is None else path.parent / ref_image,
                  setting=get("setting") or "", ref_frame=get("ref_frame"))


# ----------------------------------------------------------------------------- clips to 32 x 64 x 64

def to_eval_frames(frames: np.ndarray, crop: str = "face") -> tuple[np.ndarray, str]:
    """uint8 [T, H, W, 3] -> (uint8 [T, 64, 64, 3], how): as is, "face" (aligned crop) or "center"."""
    import cv2

    if frames.shape[1:3] == (SIZE, SIZE):
        return frames, "as_is"
    if crop == "face":
        from fv.engine.faces import FaceAligner, FaceError, resize_frames
        try:
            return resize_frames(FaceAligner().align_clip(frames, 256), SIZE), "face"
        except FaceError:
            pass  # no face in any frame: fall back to the centre square
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    interp = cv2.INTER_AREA if s >= SIZE else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(f[top:top + s, left:left + s]), (SIZE, SIZE),
                                interpolation=interp) for f in frames]), "center"


def _source_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for p in files:
        if p.is_file():
            h.update(p.name.encode() if path.is_dir() else b"")
            h.update(p.read_bytes())
    return h.hexdigest()


def load_clip(path: Path, crop: str = "face", cache_dir: Path | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """One generated video -> (uint8 [32, 64, 64, 3], counts of how it was read)."""
    from fv.data.video_io import VideoIOError, count_frames, read_video, uniform_indices

    is_npy = path.suffix == ".npy"
    if is_npy:
        arr = np.load(path, mmap_mode="r")
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise MetricsError(f"{path} must hold uint8 [T, H, W, 3] RGB frames, got {arr.dtype} {arr.shape}")
        if arr.shape == (N_FRAMES, SIZE, SIZE, 3):
            return np.asarray(arr), {"npy": 1}
    cached = None if cache_dir is None else cache_dir / "clips" / f"{_source_digest(path)}-{crop}.npy"
    if cached is not None and cached.is_file():
        return np.load(cached), {"decoded_cached": 1}
    try:
        n = len(arr) if is_npy else count_frames(path)
        pick = None if n == N_FRAMES else uniform_indices(n, N_FRAMES)   # thesis 4.2.1 uniform sampling
        frames = np.asarray(arr if pick is None else arr[pick]) if is_npy else read_video(path, pick)
    except VideoIOError as e:
        raise MetricsError(str(e)) from None
    how = {"npy" if is_npy else "frames" if path.is_dir() else "video": 1}
    if pick is not None:
        how["resampled"] = 1
    frames, mode = to_eval_frames(frames, crop)
    how[mode] = 1
    if cached is not None:
        atomic_write(cached, lambda tmp: np.save(tmp, frames))
    return frames, how


# ----------------------------------------------------------------------------- the pipeline

@dataclass
class ClipSet:
    """Clips to score: uint8 [N, 32, 64, 64, 3], target emotions int [N], reference frames [N, 64, 64, 3]."""
    name: str
    source: str
    clips: np.ndarray
    emotions: np.ndarray
    ref_frames: np.ndarray
    inputs: dict[str, int] = field(default_factory=dict)


def _device(device: str) -> str:
    import torch
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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


def _ref_frame(path: Path, crop: str) -> np.ndarray:
    from fv.engine.faces import FaceError, read_image
    try:
        img = read_image(path)
    except FaceError as e:
        raise MetricsError(str(e)) from None
    return to_eval_frames(img[None], crop)[0][0]


def load_generated(generated: str | Path, real, crop: str = "face", cache_dir: Path | None = None,
                   name: str | None = None, progress: bool = False) -> ClipSet:
    """Read a generated set and resolve every row's reference against the real split."""
    rows = read_index(generated)
    ids = {r["video_id"]: i for i, r in enumerate(real.rows)}
    recorded = recorded_source([Path(generated)])
    made_from = f"; it was rendered from {recorded['data']} split {recorded['split']}" if recorded else ""
    clips, refs, inputs = [], [], {}
    for r in _track(rows, progress, f"reading {Path(generated).name}"):
        refs.append(_reference(r, real, ids, crop, made_from))
        clip, how = load_clip(r.file, crop, cache_dir)
        clips.append(clip)
        for k, v in how.items():
            inputs[k] = inputs.get(k, 0) + v
    settings = sorted({r.setting for r in rows if r.setting})
    generated = Path(generated).resolve()
    name = name or (settings[0] if len(settings) == 1 else generated.stem if generated.is_file() else generated.name)
    return ClipSet(name, str(generated), np.stack(clips), np.array([r.emotion for r in rows], np.int64),
                   np.stack(refs), inputs)


def _reference(r: GenRow, real, ids: dict[str, int], crop: str, made_from: str) -> np.ndarray:
    """The identity reference frame uint8 [64, 64, 3] of row r: frame 0 of its real video, or its photo."""
    if r.ref_split is not None and r.ref_split != real.split and r.ref_image is None:
        raise MetricsError(f"{r.video_id}: its reference is in split {r.ref_split!r} but the real split is "
                           f"{real.split!r}; pass --split {r.ref_split}")
    if r.ref_row is None and r.ref_video_id is None:
        return _ref_frame(r.ref_image, crop)
    if r.ref_row is not None and not 0 <= r.ref_row < len(real):
        raise MetricsError(f"{r.video_id}: ref_row {r.ref_row} is outside the real split "
                           f"({len(real)} videos in {real.root}/{real.split})")
    if r.ref_row is None and r.ref_video_id not in ids:
        raise MetricsError(f"{r.video_id}: ref_video_id {r.ref_video_id!r} is not in {real.root}/{real.split}")
    row = r.ref_row if r.ref_row is not None else ids[r.ref_video_id]
    frame = np.asarray(real.clips64[row, 0])
    if r.ref_frame is not None and r.ref_frame != frame_digest(frame):  # `fv render-set` rows name their frame
        raise MetricsError(f"{r.video_id}: it was not rendered from frame 0 of row {row} of {real.root}/{real.split}, "
                           f"its reference there{made_from}; pass the --data and --split it was rendered from")
    return frame


def real_clip_set(real) -> ClipSet:
    clips = np.array(real.clips64)  # a writable copy of the memory map
    return ClipSet("real data", f"{real.root}/{real.split}", clips, real.emotions, clips[:, 0].copy())


class _CountingExtractor:
    """An I3D extractor for cached_features that counts the clips it really computes (cache misses)."""

    def __init__(self, inner):
        self.inner, self.key, self.computed = inner, inner.key, 0

    def __call__(self, clips: np.ndarray, batch_size: int = 8) -> np.ndarray:
        self.computed += len(clips)
        return self.inner(clips, batch_size=batch_size)


class Scorer:
    """Holds the metric networks and their caches; scores ClipSets."""

    def __init__(self, options: EvalOptions, cache_dir: Path | None, progress: bool = False):
        self.o, self.cache_dir, self.progress = options, cache_dir, progress
        self.device = _device(options.device)
        self._i3d: _CountingExtractor | None = None
        self._classifier, self._emotion_cache = None, None
        self._embedders: dict[str, tuple[object, FrameCache]] = {}

    # -- FVD (thesis 4.4.1)
    def features(self, clips: np.ndarray) -> np.ndarray:
        """I3D features [N, D] of uint8 clips [N, 32, 64, 64, 3], through the content-keyed cache."""
        from fv.metrics.fvd import I3DFeatures, cached_features
        if self._i3d is None:
            self._i3d = _CountingExtractor(I3DFeatures(self.o.fvd_feature, self.device, progress=self.progress))
        if self.cache_dir is None:
            return self._i3d(clips, self.o.batch_size)
        return cached_features(self._i3d, clips, self.cache_dir / "i3d", batch_size=self.o.batch_size)

    @staticmethod
    def fvd_groups(real_feats: np.ndarray, real_em: np.ndarray, gen_feats: np.ndarray,
                   gen_em: np.ndarray) -> dict[str, float | None]:
        """FVD overall and per target emotion (None where a side has fewer than 2 clips)."""
        from fv.metrics.fvd import fvd
        out: dict[str, float | None] = {}
        for g in ("all",) + EMOTIONS:
            a = real_feats if g == "all" else real_feats[real_em == EMOTIONS.index(g)]
            b = gen_feats if g == "all" else gen_feats[gen_em == EMOTIONS.index(g)]
            out[g] = fvd(a, b) if len(a) >= 2 and len(b) >= 2 else None
        return out

    # -- emotion (thesis 4.4.2-4.4.3)
    def emotion(self, s: ClipSet) -> dict:
        from fv.metrics.emotion import build_emotion_classifier
        from fv.metrics.scores import emotion_scores
        if self._classifier is None:
            self._classifier = build_emotion_classifier(self.o.emotion_model, device=self.device)
            self._emotion_cache = FrameCache(self.cache_dir, "emotion", model_key(self._classifier))
        clf = self._classifier

        def compute(frames):
            labels, probs = clf(frames)
            return {"labels": labels, "probs": probs}
        n, t = s.clips.shape[:2]
        out = self._emotion_cache(s.clips.reshape(n * t, *s.clips.shape[2:]), compute, self.progress,
                                  f"emotions {s.name}")
        report = emotion_scores(out["labels"].reshape(n, t), s.emotions)
        return {"classifier": self.o.emotion_model, "groups": report.to_dict()}

    # -- identity and continuity (thesis 4.4.4)
    def identity(self, s: ClipSet, name: str) -> dict:
        from fv.metrics.identity import build_face_embedder
        from fv.metrics.scores import identity_scores
        if name not in self._embedders:
            net = build_face_embedder(name)
            self._embedders[name] = (net, FrameCache(self.cache_dir, "embed", model_key(net)))
        net, cache = self._embedders[name]
        n, t = s.clips.shape[:2]
        frames = np.concatenate([s.clips.reshape(n * t, *s.clips.shape[2:]), s.ref_frames])
        emb = cache(frames, lambda f: {"emb": net(f)}, self.progress, f"{name} {s.name}")["emb"]
        report = identity_scores(emb[:n * t].reshape(n, t, -1), emb[n * t:], s.emotions, embedder=net.name)
        return report.to_dict()

    def score(self, s: ClipSet, real_feats: np.ndarray | None, real_em: np.ndarray | None) -> dict:
        res: dict = {"name": s.name, "source": s.source, "n_videos": int(len(s.clips)), "inputs": s.inputs,
                     "timing_s": {}}
        t0 = time.perf_counter()
        if "fvd" in self.o.metrics and real_feats is not None:
            res["fvd"] = {"feature": self.o.fvd_feature,
                          **self.fvd_groups(real_feats, real_em, self.features(s.clips), s.emotions)}
            res["timing_s"]["fvd"] = time.perf_counter() - t0
        if "emotion" in self.o.metrics:
            t0 = time.perf_counter()
            res["emotion"] = self.emotion(s)
            res["timing_s"]["emotion"] = time.perf_counter() - t0
        if "identity" in self.o.metrics:
            res["identity"] = {}
            for name in self.o.identity_models:
                t0 = time.perf_counter()
                res["identity"][name] = self.identity(s, name)
                res["timing_s"][f"identity_{name}"] = time.perf_counter() - t0
        return res

    def cache_counts(self) -> dict[str, dict[str, int]]:
        out = {"i3d": {"computed_clips": 0 if self._i3d is None else self._i3d.computed}}
        if self._emotion_cache is not None:
            out["emotion"] = {"computed_frames": self._emotion_cache.computed, "reused_frames": self._emotion_cache.reused}
        for name, (_, c) in self._embedders.items():
            out[f"identity_{name}"] = {"computed_frames": c.computed, "reused_frames": c.reused}
        return out


def recorded_source(generated: Sequence[Path]) -> dict[str, str | None] | None:
    """{"data", "split"} that the `fv render-set` folders among `generated` were rendered from (their
    render_set.json; an index CSV is read beside its folder's), or None when none says."""
    found = {}
    for g in generated:
        m = read_manifest(g if g.is_dir() else g.parent)
        if m is not None and m.get("data"):
            found[g] = (m["data"], m.get("split"))
    if len(set(found.values())) > 1:
        what = "; ".join(f"{g}: {d} split {s}" for g, (d, s) in found.items())
        raise MetricsError(f"the generated sets were rendered from different data ({what}); evaluate them "
                           f"separately or pass --data and --split")
    if not found:
        return None
    data, split = next(iter(found.values()))
    return {"data": data, "split": split}


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
    from fv.engine.faces import FaceError
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
