"""Reading and writing videos: files (mp4/avi/mov/mkv/webm via imageio-ffmpeg, gif via Pillow) or
folders of frames, uniform temporal subsampling (thesis 4.2.1), and atomic MP4/GIF/strip writers.

Frames are always uint8 RGB [T, H, W, 3].
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageSequence

from fv.engine.atomic import atomic_write
from fv.photo.errors import ImageReadError
from fv.photo.image import as_rgb, read_image

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


class VideoIOError(ValueError):
    """A video or frame folder that cannot be read, or frames that cannot be written."""


# ----------------------------------------------------------------------------- sampling

def uniform_indices(n_frames: int, k: int = 32) -> np.ndarray:
    """int64 [k]: i_j = floor(j (n - 1) / (k - 1)), j = 0..k-1 (thesis 4.2.1, uniform sampling).

    Integer arithmetic, so no float rounding: the first (0) and last (n - 1) frames are always taken
    and the indices strictly increase when n >= k; for n < k frames repeat (non-decreasing). This is
    np.linspace(0, n - 1, k) truncated to int, as in LFDM's MUG loader. k = 1 gives [0]."""
    if n_frames < 1 or k < 1:
        raise ValueError(f"uniform_indices needs n_frames >= 1 and k >= 1, got n_frames={n_frames}, k={k}")
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    j = np.arange(k, dtype=np.int64)
    return (j * (n_frames - 1)) // (k - 1)


def natural_key(name: str) -> list:
    """Sort key with digit runs compared as numbers: f2 < f10."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def frame_files(folder: str | Path) -> list[Path]:
    """The image files of a frame folder in natural order (other files are ignored)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS
             and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


# ----------------------------------------------------------------------------- reading

def _check_source(path: Path) -> None:
    if not path.exists():
        raise VideoIOError(f"cannot read video {path}: no such file or folder")
    if path.is_dir() and not frame_files(path):
        raise VideoIOError(f"cannot read video {path}: the folder holds no {'/'.join(FRAME_EXTENSIONS)} frames")
    if path.is_file() and path.suffix.lower() not in VIDEO_EXTENSIONS + (".gif",):
        raise VideoIOError(f"cannot read video {path}: unknown extension {path.suffix!r}; "
                           f"use one of {', '.join(VIDEO_EXTENSIONS + ('.gif',))} or a folder of frames")


def count_frames(path: str | Path) -> int:
    """Number of frames of a video file or frame folder (video files are decoded once to count)."""
    path = Path(path)
    _check_source(path)
    if path.is_dir():
        return len(frame_files(path))
    try:
        if path.suffix.lower() == ".gif":
            with Image.open(path) as im:
                return int(getattr(im, "n_frames", 1))
        with imageio.get_reader(str(path), format="FFMPEG") as reader:
            return int(reader.count_frames())
    except Exception as e:  # imageio/ffmpeg raise many types for damaged files
        raise VideoIOError(f"cannot read video {path}: {e}") from None


def read_video(path: str | Path, indices=None) -> np.ndarray:
    """uint8 [T, H, W, 3] of a video file (mp4/avi/mov/... , gif) or a folder of jpg/png frames in
    natural order. With indices (sorted or not, repeats allowed) only those frames are kept, in
    that order; for folders only those files are decoded."""
    path = Path(path)
    _check_source(path)
    want = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if path.is_dir():
        files = frame_files(path)
        picks = range(len(files)) if want is None else want
        _check_range(path, picks, len(files))
        try:
            frames = [read_image(files[i]) for i in picks]
        except ImageReadError as e:
            raise VideoIOError(str(e)) from None
        return _stack(path, frames)
    frames, seen = _decode_file(path, None if want is None else set(want.tolist()))
    if want is None:
        return _stack(path, [frames[i] for i in sorted(frames)])
    _check_range(path, want, seen)
    return _stack(path, [frames[int(i)] for i in want])


def _decode_file(path: Path, keep: set[int] | None) -> tuple[dict[int, np.ndarray], int]:
    """({index: frame} for the wanted indices (all when keep is None), frames decoded); decoding
    stops after the last wanted index."""
    last = max(keep) if keep else None
    out: dict[int, np.ndarray] = {}
    seen = 0
    try:
        if path.suffix.lower() == ".gif":
            with Image.open(path) as im:
                for i, fr in enumerate(ImageSequence.Iterator(im)):
                    seen = i + 1
                    if keep is None or i in keep:
                        out[i] = as_rgb(np.asarray(fr.convert("RGBA")))
                    if last is not None and i >= last:
                        break
        else:
            with imageio.get_reader(str(path), format="FFMPEG") as reader:
                for i, fr in enumerate(reader):
                    seen = i + 1
                    if keep is None or i in keep:
                        out[i] = as_rgb(np.asarray(fr))
                    if last is not None and i >= last:
                        break
    except Exception as e:
        raise VideoIOError(f"cannot read video {path}: {e}") from None
    if seen == 0:
        raise VideoIOError(f"cannot read video {path}: no frames decoded")
    return out, seen


def _check_range(path: Path, picks, n: int) -> None:
    bad = [int(i) for i in picks if not 0 <= int(i) < n]
    if bad:
        raise VideoIOError(f"{path} has {n} frames; frame indices {bad[:5]} are out of range")


def _stack(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise VideoIOError(f"frames of {path} differ in size: {sorted(shapes)[:3]}; resize them to one size")
    return np.stack(frames)


# ----------------------------------------------------------------------------- writing

def _check_frames(frames) -> np.ndarray:
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
        raise VideoIOError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {a.dtype} {a.shape}")
    return a


def write_mp4(path: str | Path, frames, fps: float = 8) -> Path:
    """H.264 MP4 (yuv420p, CRF-like quality 8/10); odd sizes are padded by one edge pixel."""
    a = _check_frames(frames)
    pad_h, pad_w = a.shape[1] % 2, a.shape[2] % 2   # yuv420p needs even sizes
    if pad_h or pad_w:
        a = np.pad(a, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")

    def write(tmp: Path) -> None:
        with imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                pixelformat="yuv420p", macro_block_size=2, ffmpeg_log_level="error") as w:
            for f in a:
                w.append_data(f)
    return atomic_write(path, write)


def write_gif(path: str | Path, frames, fps: float = 8) -> Path:
    """Looping GIF; frame duration 1000 / fps ms (GIF stores it in 10 ms units)."""
    a = _check_frames(frames)
    images = [Image.fromarray(f) for f in a]

    def write(tmp: Path) -> None:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0, optimize=False)
    return atomic_write(path, write)


def write_strip(path: str | Path, frames, n: int = 10) -> Path:
    """PNG of n evenly spaced frames (uniform_indices(T, n)) side by side: [H, n W, 3]."""
    a = _check_frames(frames)
    picks = uniform_indices(len(a), min(n, len(a)))
    strip = np.concatenate(list(a[picks]), axis=1)
    return atomic_write(path, lambda tmp: Image.fromarray(strip).save(tmp, format="PNG"))
