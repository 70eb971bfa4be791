"""Generated sets for `fv eval`: their index, their clips at 32 x 64 x 64, and each row's identity reference.

A generated set is a `fv render-set` folder (index.csv, or shard parts index*.csv / index/*.csv, with
columns video_id, emotion, ref_split, ref_row, file, setting, ref_frame; OUT/videos/<id>.npy uint8
[32, 64, 64, 3]; render_set.json naming its data set and split), or any index CSV with columns file,
emotion and one reference column: ref_row (row of the real split), ref_video_id (its video_id) or ref_image
(a photo). `file` (relative to the CSV's folder) is a .npy, a video (mp4, gif, ...) or a folder of frames.
Clips of T != 32 frames are resampled uniformly (thesis 4.2.1); frames larger than 64x64 get the
face-centred crop of training preprocessing, then INTER_AREA to 64x64 (thesis 4.3.1, as for LFDM's 128x128
samples); no face -> centre square crop. A row naming the digest of the frame it was rendered from
(ref_frame) must find that frame as its reference in the real split.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fv.engine.atomic import atomic_write
from fv.engine.labels import N_FRAMES, parse_emotion
from fv.engine.render_set import frame_digest, read_manifest
from fv.metrics.errors import MetricsError
from fv.metrics.frame_cache import _track

SIZE = 64


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
    files = sorted(generated.glob("index*.csv")) + sorted(p for p in (generated / "index").glob("*.csv")
                                                          if not p.name.startswith("."))   # not a writer's temp
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
        from fv.photo.aligner import FaceAligner
        from fv.photo.errors import FaceError
        from fv.photo.geometry import resize_frames
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
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise MetricsError(f"{path} is not a readable .npy video (damaged or truncated): {e}") from None
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


# ----------------------------------------------------------------------------- clip sets

@dataclass
class ClipSet:
    """Clips to score: uint8 [N, 32, 64, 64, 3], target emotions int [N], reference frames [N, 64, 64, 3]."""
    name: str
    source: str
    clips: np.ndarray
    emotions: np.ndarray
    ref_frames: np.ndarray
    inputs: dict[str, int] = field(default_factory=dict)


def _ref_frame(path: Path, crop: str) -> np.ndarray:
    from fv.photo.errors import FaceError
    from fv.photo.image import read_image
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
