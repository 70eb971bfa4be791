"""MUG Facial Expression Database preprocessing (thesis 4.2.1), and the per-clip pipeline that
fv.data.folder shares: sample 32 frames, align each by its own dlib landmarks, crop, write.

Assumed raw layout (the posed subset as MUG distributes it, folder 'subjects3'):

    RAW/[subjects3/]<subject, 3 digits>/[session<k>/]<emotion>/<take>/img_<NNNN>.jpg

emotion folders: anger, disgust, fear, happiness, sadness, surprise (kept), neutral (not a
generation target: dropped), mixed and extra (dropped, thesis 4.2.1); a few subjects (e.g. 002,
003, 049) hold session<k> folders above the emotions; take folders hold the frames (any other
files there, e.g. .avi, are ignored). An emotion folder holding frames directly is one take.

Per kept clip (thesis 4.2.1 / 3.4.1):
  1. >= 32 frames, else dropped ("short");
  2. 32 frames by uniform sampling, i_j = floor(j (n-1) / 31) (fv.data.video_io.uniform_indices);
     only those 32 files are decoded;
  3. every sampled frame aligned by its own eye centres (light Gaussian smoothing over time,
     sigma = 0.5 sampled frame) to the 256x256 face-centred crop, then INTER_AREA to 64x64 (with size128
     also to 128x128); with size224 also the 224x224 eye-centred crop, inter-ocular 55 px, warped from
     the frame itself;
  4. "ends neutral": MUG clips start neutral, so a clip ends neutral when its last sampled frame's
     landmarks match its first's: fv.photo.geometry.expression_distance (RMS displacement of points
     17-67, eye-normalised, inter-ocular units) <= neutral_tol = 0.06 (calibrated on the Pexels test
     video: consecutive frames ~0.01, calm face -> full laugh 0.10-0.15); else dropped;
  5. clips with no face in any sampled frame are dropped ("no_face").
Results are cached per clip in OUT/.cache (file named by a hash of the sampled source files'
names, sizes and mtimes and the settings), so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import shutil
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fv.data.layout import SPLITS, write_meta, write_split
from fv.data.video_io import (VideoIOError, count_frames, frame_files, natural_key, read_video,
                             uniform_indices)
from fv.engine.atomic import atomic_write
from fv.engine.labels import EMOTIONS, N_FRAMES, UnknownEmotionError, parse_emotion
from fv.photo.aligner import FaceAligner
from fv.photo.errors import FaceError, NoFaceError
from fv.photo.geometry import (clip_eyes, expression_distance, eye_centred_targets, face_targets, resize_frames,
                               warp_clip)
from fv.photo.image import read_image

MUG_TEST_SUBJECTS = (17, 34, 45, 55, 60, 64, 65, 73, 78, 83)
# Thesis Table 4.1: videos per emotion and split; identities 42 / 10.
EXPECTED = {
    "train": {"anger": 133, "disgust": 121, "fear": 108, "happiness": 135, "sadness": 112, "surprise": 138,
              "total": 761, "identities": 42},
    "test": {"anger": 30, "disgust": 30, "fear": 17, "happiness": 31, "sadness": 21, "surprise": 29,
             "total": 158, "identities": 10},
}
DROPPED_FOLDERS = {"mixed": "mixed/extra", "extra": "mixed/extra", "neutral": "neutral"}
NEUTRAL_TOL = 0.06
CLIP_SMOOTH = 0.5
SIZE_ALIGN, SIZE_SMALL, SIZE_MEDIUM, SIZE_EYES, INTEROCULAR = 256, 64, 128, 224, 55.0
PIPELINE_VERSION = 1


class SourceDataError(ValueError):
    """The raw data folder or CSV is missing, empty or not in the expected layout."""


@dataclass(frozen=True)
class ClipJob:
    key: str                          # unique, file-name safe id, also the video_id column
    subject: str
    emotion: str                      # a name of fv.engine.labels.EMOTIONS
    source: str                       # frame folder or video file
    n_frames: int                     # frames in the source
    files: tuple[str, ...] = ()       # the sampled frame files (frame folders); () = decode the video
    split: str | None = None          # explicit split, else decided by subject
    columns: dict = field(default_factory=dict, hash=False, compare=False)  # free videos.csv columns

    def indices(self) -> np.ndarray:
        return uniform_indices(self.n_frames, N_FRAMES)


@dataclass(frozen=True)
class ClipOutcome:
    status: str             # "ok", "no_face" or "unreadable"
    cache: str              # the .npz holding clip64 [32, 64, 64, 3] (and clip128, clip224) when ok
    neutral_dist: float     # expression_distance(first, last sampled frame); nan unless ok
    n_missed: int           # sampled frames without a detected face (filled from the nearest)
    message: str = ""


def sampled_job(key: str, subject: str, emotion: str, source: Path, **kw) -> ClipJob:
    """A job for a frame folder (only the 32 sampled files are listed) or a video file."""
    if source.is_dir():
        files = frame_files(source)
        picks = uniform_indices(len(files), N_FRAMES) if files else []
        return ClipJob(key, subject, emotion, str(source), len(files), tuple(str(files[i]) for i in picks), **kw)
    return ClipJob(key, subject, emotion, str(source), count_frames(source), (), **kw)


# ----------------------------------------------------------------------------- one clip

def load_sampled(job: ClipJob) -> np.ndarray:
    """uint8 [32, H, W, 3]: the sampled frames of a job."""
    if job.files:
        frames = [read_image(f) for f in job.files]
        if len({f.shape for f in frames}) > 1:
            raise VideoIOError(f"frames of {job.source} differ in size")
        return np.stack(frames)
    return read_video(job.source, job.indices())


def align_sampled(aligner: FaceAligner, frames: np.ndarray, size224: bool, name: str = "the clip",
                  size128: bool = False) -> dict:
    """Sampled frames -> {clip64 uint8 [T,64,64,3], clip128 uint8 [T,128,128,3] (the same crop) or None,
    clip224 uint8 [T,224,224,3] or None, neutral_dist, n_missed}. Raises NoFaceError when no frame has a face."""
    track = aligner.track(frames, name)
    eyes = clip_eyes(track, CLIP_SMOOTH)
    clip256 = warp_clip(frames, eyes, face_targets(SIZE_ALIGN), SIZE_ALIGN)
    return {
        "clip64": resize_frames(clip256, SIZE_SMALL),
        "clip128": resize_frames(clip256, SIZE_MEDIUM) if size128 else None,
        "clip224": warp_clip(frames, eyes, eye_centred_targets(SIZE_EYES, INTEROCULAR), SIZE_EYES)
        if size224 else None,
        "neutral_dist": expression_distance(track.landmarks[0], track.landmarks[-1]),
        "n_missed": int((~track.found).sum()),
    }


def fingerprint(job: ClipJob, size224: bool, size128: bool = False) -> str:
    """Hash of the sampled sources (names, sizes, mtimes) and the settings: the cache key (without size128 the
    key made before size128 existed)."""
    sizes = f"{size224}" + ("|128" if size128 else "")
    h = hashlib.sha1(f"v{PIPELINE_VERSION}|{sizes}|{job.source}|{job.n_frames}|{job.indices().tolist()}".encode())
    for f in job.files or (job.source,):
        st = os.stat(f)
        h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _cache_path(cache_dir: Path, job: ClipJob, size224: bool, size128: bool) -> Path:
    return cache_dir / f"{job.key}-{fingerprint(job, size224, size128)[:16]}.npz"


def _read_cached(path: Path) -> ClipOutcome | None:
    try:
        with np.load(path) as z:
            return ClipOutcome(str(z["status"]), str(path), float(z["neutral_dist"]), int(z["n_missed"]),
                               str(z["message"]))
    except (OSError, KeyError, ValueError, EOFError):
        return None


_ALIGNER: tuple[str | None, FaceAligner] | None = None   # (model_dir, aligner) of this process


def _init_worker(model_dir: str | None) -> None:
    global _ALIGNER
    _ALIGNER = (model_dir, FaceAligner(model_dir))


def _run_job(job: ClipJob, size224: bool, cache: str, model_dir: str | None, size128: bool) -> ClipOutcome:
    """Process one clip and store the result (arrays or the drop reason) in its cache file."""
    if _ALIGNER is None or _ALIGNER[0] != model_dir:
        _init_worker(model_dir)
    arrays: dict = {}
    try:
        res = align_sampled(_ALIGNER[1], load_sampled(job), size224, name=job.source, size128=size128)
        status, dist, missed, msg = "ok", res["neutral_dist"], res["n_missed"], ""
        arrays = {k: res[k] for k in ("clip64", "clip128", "clip224") if res[k] is not None}
    except NoFaceError as e:
        status, dist, missed, msg = "no_face", float("nan"), N_FRAMES, str(e)
    except (FaceError, VideoIOError) as e:   # an unreadable or damaged frame
        status, dist, missed, msg = "unreadable", float("nan"), N_FRAMES, str(e)
    path = Path(cache)
    atomic_write(path, lambda tmp: np.savez(tmp, status=status, neutral_dist=dist, n_missed=missed,
                                            message=msg, **arrays))
    return ClipOutcome(status, cache, dist, missed, msg)


def run_clips(jobs: list[ClipJob], cache_dir: str | Path, *, size224: bool, workers: int | None = None,
              progress: bool = True, model_dir: str | None = None, desc: str = "aligning clips",
              size128: bool = False) -> list[ClipOutcome]:
    """Process every job (cached ones are skipped), in worker processes when workers > 1."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = [_cache_path(cache_dir, j, size224, size128) for j in jobs]
    outcomes: list[ClipOutcome | None] = [_read_cached(p) if p.exists() else None for p in paths]
    todo = [i for i, o in enumerate(outcomes) if o is None]
    workers = default_workers() if workers is None else max(1, int(workers))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(desc, total=len(jobs), completed=len(jobs) - len(todo))
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                outcomes[i] = _run_job(jobs[i], size224, str(paths[i]), model_dir, size128)
                bar.advance(task)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                                     initargs=(model_dir,)) as pool:
                futures = {pool.submit(_run_job, jobs[i], size224, str(paths[i]), model_dir, size128): i
                           for i in todo}
                for fut in as_completed(futures):
                    outcomes[futures[fut]] = fut.result()
                    bar.advance(task)
    return outcomes  # type: ignore[return-value]


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1) - 1))


# ----------------------------------------------------------------------------- writing

def finish_dataset(out: str | Path, jobs: list[ClipJob], outcomes: list[ClipOutcome], *,
                   split_of: Callable[[ClipJob], str], size224: bool, neutral_tol: float | None,
                   dropped: Counter, meta: dict, keep_cache: bool = False, size128: bool = False) -> dict:
    """Apply the post-alignment filters, split, write both splits and meta.json; return the counts."""
    out = Path(out)
    kept: dict[str, list[tuple[ClipJob, ClipOutcome]]] = {s: [] for s in SPLITS}
    for job, oc in zip(jobs, outcomes):
        if oc.status != "ok":
            dropped[oc.status] += 1
            warnings.warn(f"dropped {job.source}: {oc.message}", stacklevel=2)
        elif neutral_tol is not None and not oc.neutral_dist <= neutral_tol:
            dropped["not_neutral_end"] += 1
        else:
            kept[split_of(job)].append((job, oc))
    if not any(kept.values()):
        raise SourceDataError(f"no clip survived preprocessing (dropped: {dict(dropped)}); "
                              f"check the source folder and the filters")
    counts: dict = {}
    for split in SPLITS:
        items = kept[split]
        c = Counter(j.emotion for j, _ in items)
        counts[split] = {e: c.get(e, 0) for e in EMOTIONS}
        counts[split].update(total=len(items), identities=len({j.subject for j, _ in items}))
        _write_one_split(out, split, items, size224, size128)
    counts["dropped"] = dict(sorted(dropped.items()))
    write_meta(out, counts=counts, neutral_tol=neutral_tol, pipeline_version=PIPELINE_VERSION,
               alignment={"crop": SIZE_ALIGN, "eye_y": 0.40, "interocular": 0.28, "small": SIZE_SMALL,
                          "medium": SIZE_MEDIUM if size128 else None,
                          "eyes224": {"size": SIZE_EYES, "interocular_px": INTEROCULAR} if size224 else None,
                          "smooth_sigma_frames": CLIP_SMOOTH}, **meta)
    if not keep_cache:
        shutil.rmtree(out / ".cache", ignore_errors=True)
    return counts


def _write_one_split(out: Path, split: str, items: list[tuple[ClipJob, ClipOutcome]], size224: bool,
                     size128: bool) -> None:
    d = out / split
    large = [size for size, on in ((SIZE_EYES, size224), (SIZE_MEDIUM, size128)) if on]
    stale = ["clips64.npy", "clips224.npy", "clips128.npy", "videos.csv", "aus.npy"] if not items else \
        ["aus.npy"] + [f"clips{size}.npy" for size in (SIZE_EYES, SIZE_MEDIUM) if size not in large]
    for name in stale:
        (d / name).unlink(missing_ok=True)
    if not items:
        return
    n = len(items)
    clips64 = np.empty((n, N_FRAMES, SIZE_SMALL, SIZE_SMALL, 3), dtype=np.uint8)
    # [N, 32, S, S, 3] is ~4.8 MB a clip at 224, 1.6 MB at 128: assemble on disk, not in memory
    tmps = {size: out / ".cache" / f"assemble{size}-{split}.npy" for size in large}
    if tmps:
        (out / ".cache").mkdir(parents=True, exist_ok=True)
    assembled = {size: np.lib.format.open_memmap(tmps[size], mode="w+", dtype=np.uint8,
                                                 shape=(n, N_FRAMES, size, size, 3)) for size in large}
    rows = []
    for i, (job, oc) in enumerate(items):
        with np.load(oc.cache) as z:
            clips64[i] = z["clip64"]
            for size in large:
                assembled[size][i] = z[f"clip{size}"]
        rows.append({**job.columns, "video_id": job.key, "subject": job.subject, "emotion": job.emotion,
                     "n_source_frames": job.n_frames, "neutral_dist": f"{oc.neutral_dist:.4f}",
                     "n_missed": oc.n_missed})
    try:
        write_split(out, split, clips64, rows, **{f"clips{size}": arr for size, arr in assembled.items()})
    finally:
        assembled.clear()                            # closes the memory maps
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def format_counts(counts: dict, expected: dict | None = EXPECTED) -> str:
    """Our videos per emotion and split beside the thesis' Table 4.1 (expected=None: ours only)."""
    head = f"{'emotion':<12}" + "".join(f"{s:>8}" + (f"{'(thesis)':>10}" if expected else "") for s in SPLITS)
    lines = [head, "-" * len(head)]
    for key in EMOTIONS + ("total", "identities"):
        cells = ""
        for s in SPLITS:
            cells += f"{counts.get(s, {}).get(key, 0):>8}"
            if expected:
                cells += f"{'(' + str(expected[s][key]) + ')':>10}"
        lines.append(f"{key:<12}{cells}")
    dropped = counts.get("dropped", {})
    if dropped:
        lines.append("dropped: " + ", ".join(f"{v} {k}" for k, v in dropped.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MUG

def _subjects_root(raw: Path) -> Path:
    if not raw.is_dir():
        raise SourceDataError(f"MUG folder {raw} does not exist")
    for cand in (raw, raw / "subjects3"):
        if cand.is_dir() and any(p.is_dir() and p.name.isdigit() for p in cand.iterdir()):
            return cand
    raise SourceDataError(f"{raw} holds no MUG subject folders (001, 002, ...); "
                          f"point it at MUG's 'subjects3' folder")


def _takes(emotion_dir: Path) -> list[Path]:
    takes = sorted((p for p in emotion_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    return takes or ([emotion_dir] if frame_files(emotion_dir) else [])


def find_mug_clips(raw: str | Path) -> tuple[list[ClipJob], Counter]:
    """Walk the MUG tree: (jobs for kept emotion takes with >= 32 frames, Counter of dropped takes)."""
    root = _subjects_root(Path(raw))
    jobs, dropped = [], Counter()
    for subj in sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        groups = [(None, d) for d in subj.iterdir() if d.is_dir() and not d.name.lower().startswith("session")]
        for sess in (d for d in subj.iterdir() if d.is_dir() and d.name.lower().startswith("session")):
            groups += [(sess.name, d) for d in sess.iterdir() if d.is_dir()]
        for session, emo_dir in sorted(groups, key=lambda g: (g[0] or "", g[1].name)):
            name = emo_dir.name.lower()
            takes = _takes(emo_dir)
            if name in DROPPED_FOLDERS:
                dropped[DROPPED_FOLDERS[name]] += len(takes)
                continue
            try:
                emotion = EMOTIONS[parse_emotion(name)]
            except UnknownEmotionError:
                dropped["unknown_folder"] += len(takes)
                continue
            for take in takes:
                parts = [subj.name] + ([session] if session else []) + [name, take.name]
                key = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts))
                job = sampled_job(key, subj.name, emotion, take, columns={
                    "take": take.name, "session": session or "", "source": str(take.relative_to(root))})
                if job.n_frames < N_FRAMES:
                    dropped["short"] += 1
                else:
                    jobs.append(job)
    return jobs, dropped


def preprocess_mug(raw: str | Path, out: str | Path, test_subjects=MUG_TEST_SUBJECTS, size224: bool = True,
                   workers: int | None = None, progress: bool = True, *, neutral_tol: float = NEUTRAL_TOL,
                   keep_cache: bool = False, model_dir: str | None = None, size128: bool = False) -> dict:
    """MUG posed subset -> fv's data layout in `out` (thesis 4.2.1); returns the count table."""
    jobs, dropped = find_mug_clips(raw)
    if not jobs:
        raise SourceDataError(f"{raw} holds no usable MUG takes (emotion folders with >= {N_FRAMES} frames)")
    test = {int(s) for s in test_subjects}
    outcomes = run_clips(jobs, Path(out) / ".cache", size224=size224, workers=workers, progress=progress,
                         model_dir=model_dir, desc="aligning MUG clips", size128=size128)
    return finish_dataset(out, jobs, outcomes, split_of=lambda j: "test" if int(j.subject) in test else "train",
                          size224=size224, size128=size128, neutral_tol=neutral_tol, dropped=dropped,
                          keep_cache=keep_cache,
                          meta={"name": "mug", "source": str(raw), "test_subjects": sorted(test)})
