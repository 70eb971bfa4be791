"""The on-disk layout of a prepared data set, shared by every producer and consumer.

`fv data synth`, `fv data mug` and `fv data folder` all write this; training, rendering and
evaluation read it:

    ROOT/
      meta.json              {"name", "source", "n_frames": 32, "splits": {split: count}, ...}
      train/  test/          one folder per split
        clips64.npy          uint8 [N, 32, 64, 64, 3] RGB, the generators' input (thesis 4.2.1)
        clips128.npy         uint8 [N, 32, 128, 128, 3] RGB, clips64's frames at twice the resolution (the
                             same crop, not the eye-aligned one; for models trained at 128 px, e.g. LFDM's
                             MUG setting); optional (--size128)
        clips224.npy         uint8 [N, 32, 224, 224, 3] RGB, eye-aligned, for the expression
                             embedder (thesis 3.4.1); optional
        videos.csv           one row per clip: video_id, subject, emotion (a name of
                             fv.engine.labels.EMOTIONS), plus free columns (take, source, ...)
        aus.npy              float32 [N, 32, K] per-frame action-unit intensities; optional
                             (synthetic ground truth, column names in meta.json "aus")
        flow64.npy           float16 [N, 32, 64, 64, 2] ground-truth backward flow to frame 0: pixel
                             (x, y) of frame t was at (x + f_x, y + f_y) in frame 0 (pixel centres at
                             integers; cv2.remap(frame0, x + f_x, y + f_y) rebuilds frame t); optional
                             (synthetic set, version 2)
        occ64.npy            uint8 [N, 32, 64, 64] 1 where frame 0 cannot show frame t (the inside of an
                             opened mouth, wrinkles and other texture), else 0; optional, with flow64

Pixels are stored as uint8 and mapped to [-1, 1] with (x/255 - 0.5)/0.5 when loaded.
Model-side tensors are videos [B, T, 3, H, W] float32.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fv.engine.atomic import atomic_path, atomic_write, atomic_write_text
from fv.engine.labels import EMOTIONS, N_FRAMES

SPLITS = ("train", "test")
CLIP_SIZES = (64, 128, 224)   # clips{size}.npy: the frame sizes a split may hold
REQUIRED_COLUMNS = ("video_id", "subject", "emotion")


class DatasetError(RuntimeError):
    """A data folder that is missing, empty or not in fv's layout."""


@dataclass
class VideoSplit:
    root: Path
    split: str
    clips64: np.ndarray                 # uint8 [N, 32, 64, 64, 3] (memory-mapped)
    rows: list[dict[str, str]]
    clips224: np.ndarray | None = None  # uint8 [N, 32, 224, 224, 3] (memory-mapped) or None
    aus: np.ndarray | None = None       # float32 [N, 32, K] or None
    meta: dict = field(default_factory=dict)
    flow64: np.ndarray | None = None    # float16 [N, 32, 64, 64, 2] (memory-mapped) or None
    occ64: np.ndarray | None = None     # uint8 [N, 32, 64, 64] (memory-mapped) or None
    clips128: np.ndarray | None = None  # uint8 [N, 32, 128, 128, 3] (memory-mapped) or None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def emotions(self) -> np.ndarray:
        """int64 [N] class index of each clip's emotion (fv.engine.labels.CLASSES)."""
        return np.array([EMOTIONS.index(r["emotion"]) for r in self.rows], dtype=np.int64)

    @property
    def subjects(self) -> list[str]:
        return [r["subject"] for r in self.rows]

    @property
    def subject_ids(self) -> np.ndarray:
        """int64 [N] index of each clip's subject among this split's sorted subjects."""
        names = sorted(set(self.subjects))
        return np.array([names.index(s) for s in self.subjects], dtype=np.int64)

    def videos(self, index, size: int = 64) -> torch.Tensor:
        """Clips as float [B, T, 3, H, W] in [-1, 1], H = W = size (one of CLIP_SIZES)."""
        if size not in CLIP_SIZES:
            sizes = ", ".join(map(str, CLIP_SIZES))
            raise DatasetError(f"no {size} px clips in fv's layout: size must be one of {sizes}")
        arr = getattr(self, f"clips{size}")
        if arr is None:
            raise DatasetError(f"{self.root}/{self.split} has no clips{size}.npy; prepare the data again with "
                               f"--size{size} (`fv data synth`, `fv data mug` or `fv data folder`)")
        return to_model_range(np.asarray(arr[index]))


def to_model_range(clips_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1] ((x - 0.5) / 0.5, thesis 4.2.1)."""
    x = torch.from_numpy(np.ascontiguousarray(clips_uint8)).float().div_(255.0)
    x = x.movedim(-1, -3)
    return x.sub_(0.5).div_(0.5)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3]."""
    x = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda tmp: np.save(tmp, arr))


def write_split(root: str | Path, split: str, clips64: np.ndarray, rows: list[dict],
                clips224: np.ndarray | None = None, aus: np.ndarray | None = None,
                flow64: np.ndarray | None = None, occ64: np.ndarray | None = None,
                clips128: np.ndarray | None = None) -> Path:
    """Write one split. Each file is written to a temporary name and renamed into place; optional files
    not given are removed (an older run's would not match these clips), clips224.npy excepted."""
    root = Path(root)
    d = root / split
    d.mkdir(parents=True, exist_ok=True)
    clips64 = _checked_clips("clips64", clips64, 64, None)
    if clips128 is not None:
        clips128 = _checked_clips("clips128", clips128, 128, len(clips64))
    if len(rows) != len(clips64):
        raise ValueError(f"{len(rows)} rows for {len(clips64)} clips")
    for r in rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"row {r} lacks columns {missing}")
        if r["emotion"] not in EMOTIONS:
            raise ValueError(f"row {r}: emotion must be one of {EMOTIONS}")
    _atomic_save_npy(d / "clips64.npy", clips64)
    if clips224 is not None:
        _atomic_save_npy(d / "clips224.npy", np.asarray(clips224, dtype=np.uint8))
    if (flow64 is None) != (occ64 is None):
        raise ValueError("flow64 and occ64 come together")
    motion = {}
    if flow64 is not None:
        n, t = clips64.shape[:2]
        motion = {"flow64": (np.asarray(flow64, dtype=np.float16), (n, t, 64, 64, 2)),
                  "occ64": (np.asarray(occ64, dtype=np.uint8), (n, t, 64, 64))}
        for name, (arr, shape) in motion.items():
            if arr.shape != shape:
                raise ValueError(f"{name} must be {list(shape)}, got {list(arr.shape)}")
    if aus is not None:
        _atomic_save_npy(d / "aus.npy", np.asarray(aus, dtype=np.float32))
    optional = {"flow64": None, "occ64": None, **{k: arr for k, (arr, _) in motion.items()}, "clips128": clips128}
    for name, arr in optional.items():
        if arr is not None:
            _atomic_save_npy(d / f"{name}.npy", arr)
        else:
            (d / f"{name}.npy").unlink(missing_ok=True)
    columns = list(REQUIRED_COLUMNS) + sorted({k for r in rows for k in r} - set(REQUIRED_COLUMNS))
    with atomic_path(d / "videos.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})
    return d


def _checked_clips(name: str, clips: np.ndarray, size: int, n: int | None) -> np.ndarray:
    """clips as uint8 [N, 32, size, size, 3] (N = n unless n is None), else a ValueError naming them."""
    clips = np.asarray(clips)
    shape = (N_FRAMES, size, size, 3)
    if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[1:] != shape or n not in (None, len(clips)):
        want = f"[{'N' if n is None else n}, {', '.join(map(str, shape))}]"
        raise ValueError(f"{name} must be uint8 {want}, got {clips.dtype} {list(clips.shape)}")
    return clips


def write_meta(root: str | Path, **meta) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits = {s: len(list(csv.DictReader(open(root / s / "videos.csv"))))
              for s in SPLITS if (root / s / "videos.csv").exists()}
    meta = {"n_frames": N_FRAMES, "splits": splits, **meta}
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=2))


def load_split(root: str | Path, split: str = "train") -> VideoSplit:
    """Open one split of a prepared data set (arrays are memory-mapped, not read)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist; make one with `fv data synth {root}`")
    d = root / split
    if not (d / "clips64.npy").exists() or not (d / "videos.csv").exists():
        raise DatasetError(
            f"{root} has no '{split}' split in fv's layout (expected {d}/clips64.npy and videos.csv); "
            f"prepare data with `fv data synth`, `fv data mug` or `fv data folder`")
    rows = list(csv.DictReader(open(d / "videos.csv", newline="")))
    if not rows:
        raise DatasetError(f"{d} holds no videos")
    clips64 = _open_array(d / "clips64.npy")
    if len(clips64) != len(rows):
        raise DatasetError(f"{d}: clips64.npy has {len(clips64)} clips but videos.csv {len(rows)} rows")
    clips224 = _open_array(d / "clips224.npy") if (d / "clips224.npy").exists() else None
    clips128 = _open_array(d / "clips128.npy") if (d / "clips128.npy").exists() else None
    if clips128 is not None and len(clips128) != len(clips64):
        raise DatasetError(f"{d}: clips128.npy has {len(clips128)} clips but clips64.npy {len(clips64)}")
    aus = np.array(_open_array(d / "aus.npy")) if (d / "aus.npy").exists() else None
    meta = json.loads((root / "meta.json").read_text()) if (root / "meta.json").exists() else {}
    motion = {name: _open_array(d / f"{name}.npy") if (d / f"{name}.npy").exists() else None
              for name in ("flow64", "occ64")}
    for name, arr in motion.items():
        if arr is not None and arr.shape[:2] != clips64.shape[:2]:
            raise DatasetError(f"{d}: {name}.npy is {list(arr.shape)}, clips64.npy {list(clips64.shape)}")
    return VideoSplit(root, split, clips64, rows, clips224, aus, meta, **motion, clips128=clips128)


def _open_array(path: Path) -> np.ndarray:
    """A .npy file memory-mapped; a damaged one (bad header, truncated, not .npy) as a DatasetError naming it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path} is not a readable .npy array (damaged or truncated): {e}") from None
