"""`fv render-set`: render every video of a split from its (first frame, emotion), for evaluation.

Layout of OUT (read by `fv eval`):
    OUT/render_set.json       what the set was rendered with: checkpoint (and its sha256), setting, every
                              sampling option, backend, precision, base seed, data set folder and split;
                              a later run into OUT must match it (MATCH_KEYS), and `fv eval` reads its
                              data set and split from it
    OUT/videos/<stem>.npy     uint8 [32, S, S, 3], one per (video, repeat); <stem> = video_id for repeat 0,
                              video_id + "_r<k>" for repeat k >= 1 (so --repeats 2 extends a --repeats 1 set)
    OUT/videos/<stem>.<ext>   optional extra files (e.g. mp4), written by callables the caller passes
    OUT/rows/<stem>.json      the video's index row; written LAST, so it exists only for complete videos;
                              its ref_frame is frame_digest of the reference frame it was rendered from
    OUT/index.csv             all rows, columns COLUMNS, `file` relative to OUT (rebuilt from rows/ at the
                              end of every run)
    OUT/index/shard-<i>-of-<n>.csv   with --shard i/n, n > 1: the rows of shard i alone (one writer, exact)

Concurrency and resumability: every file is written to a temporary name beside it and os.replace'd into
place (fv.engine.atomic), so a killed run never leaves a partial file under its final name; a video counts
as done when its row file and its .npy exist, and a re-run renders only the others. Shards (video i goes to
shard i % n) write disjoint files, so any number of processes or machines (on a shared folder) can run at
once into the same OUT. index.csv is a snapshot each run rewrites from rows/ (re-read until stable), so two
shards that finish at the same instant could leave it one row short; each shard's own part file is exact,
and readers merge index.csv with index/*.csv de-duplicated by `file` (fv eval does) or call
`read_index(OUT)`, which merges rows/ itself.

Seeds: the seed of (video_id, repeat) is derive_seed(base seed, "video_id/repeat"), independent of the
shard, the order and the batch it was rendered in, so 2 shards give the same set as 1 run.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fv.engine.atomic import atomic_write_bytes, stale_temps
from fv.engine.labels import EMOTIONS, N_FRAMES
from fv.engine.requests import derive_seed

MANIFEST = "render_set.json"
INDEX = "index.csv"
FORMAT = 2
COLUMNS = ("video_id", "emotion", "subject", "ref_split", "ref_row", "seed", "file", "setting",
           "checkpoint_sha256", "repeat", "ref_frame")
# what a run into an existing OUT must share with the run that made it ("options": every field)
MATCH_KEYS = ("format", "checkpoint_sha256", "setting", "options", "backend", "precision", "seed", "data",
              "split")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

ExtraWriter = Callable[[Path, np.ndarray], object]  # (path, uint8 [T, H, W, 3]) -> anything, atomic


class RenderSetError(ValueError):
    """A render-set request that cannot run as asked (bad shard, mismatched output folder, bad rows)."""


@dataclasses.dataclass(frozen=True)
class SetItem:
    row: int          # row of the split (its frame 0 is the reference; shard = row % n)
    repeat: int
    video_id: str
    emotion: str
    subject: str
    seed: int
    stem: str         # file name stem under videos/ and rows/


@dataclasses.dataclass(frozen=True)
class RenderSetResult:
    out: Path
    rendered: int     # videos rendered by this run
    skipped: int      # videos of this shard already done
    remaining: int    # videos of this shard still to do (max_videos stopped early)
    index: Path


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    m = _SHARD.match(str(text))
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise RenderSetError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def plan_items(rows: Sequence[dict], repeats: int = 1, seed: int = 0) -> list[SetItem]:
    """One item per (row, repeat), in row order; stems checked unique."""
    if int(repeats) != repeats or repeats < 1:
        raise RenderSetError(f"--repeats must be a positive integer, got {repeats!r}")
    items, stems = [], {}
    for i, r in enumerate(rows):
        if r.get("emotion") not in EMOTIONS:
            raise RenderSetError(f"row {i} ({r.get('video_id')}): emotion {r.get('emotion')!r} is not one of "
                                 f"{', '.join(EMOTIONS)}")
        vid = str(r["video_id"])
        base = _UNSAFE.sub("_", vid) or f"row{i}"
        for k in range(int(repeats)):
            stem = base if k == 0 else f"{base}_r{k}"
            if stem in stems:
                raise RenderSetError(f"videos {stems[stem]!r} and {vid!r} map to the same file name {stem!r}")
            stems[stem] = vid
            items.append(SetItem(i, k, vid, r["emotion"], str(r.get("subject", "")),
                                 derive_seed(seed, f"{vid}/{k}"), stem))
    return items


def render_set(engine, first_frames: np.ndarray, rows: Sequence[dict], out: str | Path, split: str = "test",
               shard: tuple[int, int] = (0, 1), repeats: int = 1, seed: int = 0,
               extra_writers: dict[str, ExtraWriter] | None = None, max_videos: int | None = None,
               progress: bool = False, data: str | Path | None = None) -> RenderSetResult:
    """Render this shard's missing videos of a split (first_frames uint8 [N, H, W, 3], rows its videos.csv;
    `data` the data set folder they come from) into OUT, chunk by chunk; then rebuild OUT/index.csv.
    See the module docstring for the layout."""
    out = Path(out)
    first_frames = np.asarray(first_frames)
    if first_frames.dtype != np.uint8 or first_frames.ndim != 4 or first_frames.shape[-1] != 3:
        raise RenderSetError(f"first frames must be uint8 [N, H, W, 3], got {first_frames.dtype} {first_frames.shape}")
    if len(first_frames) != len(rows):
        raise RenderSetError(f"{len(first_frames)} first frames for {len(rows)} rows")
    i, n = shard
    items = [it for it in plan_items(rows, repeats, seed) if it.row % n == i]
    _prepare(out, _manifest(engine, split, seed, data))
    todo = [it for it in items if not is_done(out, it)]
    skipped = len(items) - len(todo)
    if max_videos is not None:
        todo = todo[:max(0, int(max_videos))]
    for it in todo:
        _remove_stale(out, it)
    rendered = 0
    if todo:
        faces = _model_faces(first_frames[[it.row for it in todo]], engine.image_size)
        emotions = [EMOTIONS.index(it.emotion) for it in todo]
        seeds = [it.seed for it in todo]
        for start, videos in engine.render_chunks(faces, emotions, seeds, progress=progress):
            for it, video in zip(todo[start:start + len(videos)], videos):
                _write_video(out, it, video, engine, split, frame_digest(first_frames[it.row]), extra_writers or {})
                rendered += 1
    if n > 1:
        mine = [r for r in read_index(out) if int(r["ref_row"]) % n == i]
        atomic_write_bytes(out / "index" / f"shard-{i}-of-{n}.csv", _csv_bytes(mine))
    index = write_index(out)
    return RenderSetResult(out, rendered, skipped, len(items) - skipped - rendered, index)


# ---------------------------------------------------------------------- layout

def video_path(out: Path, stem: str) -> Path:
    return Path(out) / "videos" / f"{stem}.npy"


def row_path(out: Path, stem: str) -> Path:
    return Path(out) / "rows" / f"{stem}.json"


def is_done(out: Path, item: SetItem) -> bool:
    return row_path(out, item.stem).is_file() and video_path(out, item.stem).is_file()


def read_index(out: str | Path) -> list[dict[str, str]]:
    """Every finished video's row (merged from OUT/rows/), sorted by (ref_row, repeat)."""
    rows = []
    for p in sorted((Path(out) / "rows").glob("*.json")):
        if p.name.startswith("."):
            continue  # a killed writer's temporary file (fv.engine.atomic: .<stem>.<pid>.tmp.json), not a row
        try:
            rows.append({k: str(v) for k, v in json.loads(p.read_text()).items()})
        except (OSError, json.JSONDecodeError):
            continue  # only a file replaced or removed under us can fail; rows are written atomically
    return sorted(rows, key=lambda r: (int(r["ref_row"]), int(r["repeat"]), r["video_id"]))


def write_index(out: str | Path, tries: int = 3) -> Path:
    """Rewrite OUT/index.csv from rows/ atomically; re-read until no shard added a row meanwhile."""
    out = Path(out)
    rows = read_index(out)
    for _ in range(tries):
        atomic_write_bytes(out / INDEX, _csv_bytes(rows))
        again = read_index(out)
        if again == rows:
            break
        rows = again
    return out / INDEX


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def read_manifest(out: str | Path) -> dict | None:
    """OUT/render_set.json, or None when OUT holds none (or an unreadable one)."""
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def frame_digest(frame: np.ndarray) -> str:
    """blake2b-128 of a frame's shape and bytes (uint8 [H, W, 3]): names a reference frame in index rows."""
    h = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
    h.update(np.ascontiguousarray(frame).data)
    return h.hexdigest()


def load_videos(out: str | Path) -> tuple[list[dict[str, str]], np.ndarray]:
    """(index rows, uint8 [N, 32, S, S, 3]) of a rendered set."""
    rows = read_index(out)
    if not rows:
        raise RenderSetError(f"{out} holds no rendered videos (run `fv render-set`)")
    return rows, np.stack([np.load(Path(out) / r["file"]) for r in rows])


# ---------------------------------------------------------------------- internals

def _manifest(engine, split: str, seed: int, data: str | Path | None) -> dict:
    """The set's description, as JSON reads it back (GAN engines have no sampling options: None)."""
    options = None if engine.options is None else dataclasses.asdict(engine.options)
    return json.loads(json.dumps({
        "format": FORMAT, "setting": engine.setting, "checkpoint": str(engine.checkpoint),
        "checkpoint_sha256": engine.checkpoint_sha256, "options": options, "backend": engine.backend_kind,
        "precision": engine.precision, "seed": int(seed), "data": None if data is None else str(Path(data).resolve()),
        "split": split, "n_frames": N_FRAMES, "image_size": engine.image_size}))


def _prepare(out: Path, manifest: dict) -> None:
    if out.exists() and not out.is_dir():
        raise RenderSetError(f"--out {out} is a file, not a folder")
    old = read_manifest(out)
    if old is not None:
        diff = _differences(old, manifest)
        if diff:
            raise RenderSetError(f"{out} holds a render set made differently ({diff}); resume it with "
                                 f"those, or use another --out (or delete that folder)")
        return
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())


def _differences(old: dict, new: dict) -> str:
    """'field: was A, now B; ...' over MATCH_KEYS (options compared field by field), '' when equal."""
    by_field = isinstance(old.get("options"), dict) and isinstance(new.get("options"), dict)

    def flat(m: dict) -> dict:
        out = {k: m.get(k) for k in MATCH_KEYS}
        if by_field:
            out.update({f"options.{k}": v for k, v in out.pop("options").items()})
        return out
    a, b = flat(old), flat(new)
    return "; ".join(f"{k}: was {a.get(k)!r}, now {b.get(k)!r}" for k in dict.fromkeys([*a, *b])
                     if a.get(k) != b.get(k))


def _model_faces(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, size, size] in [-1, 1] ((x/255 - 0.5)/0.5, thesis 4.2.1);
    area-resized when the model's frame size differs from the data's."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div(255.0).permute(0, 3, 1, 2).sub(0.5).div(0.5)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area").clamp(-1, 1)
    return x


def _write_video(out: Path, it: SetItem, video: np.ndarray, engine, split: str, ref_frame: str,
                 extra_writers: dict[str, ExtraWriter]) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(video))
    atomic_write_bytes(video_path(out, it.stem), buf.getvalue())
    for ext, write in extra_writers.items():
        write(out / "videos" / f"{it.stem}.{ext}", video)
    row = {"video_id": it.video_id, "emotion": it.emotion, "subject": it.subject, "ref_split": split,
           "ref_row": it.row, "seed": it.seed, "file": f"videos/{it.stem}.npy", "setting": engine.setting,
           "checkpoint_sha256": engine.checkpoint_sha256, "repeat": it.repeat, "ref_frame": ref_frame}
    atomic_write_bytes(row_path(out, it.stem), json.dumps(row, sort_keys=True).encode())  # marks the video done


def _remove_stale(out: Path, it: SetItem) -> None:
    """Temporary files a killed run left for this item (only its shard ever writes them; fv.engine.atomic
    names them .<stem>.<pid>.tmp.<ext>)."""
    for folder in (out / "videos", out / "rows"):
        for p in stale_temps(folder, it.stem):
            p.unlink(missing_ok=True)
