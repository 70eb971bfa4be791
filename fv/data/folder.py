"""Bring your own data: a folder of videos or frame folders plus a CSV -> fv's data layout.

CSV columns (header names case-insensitive):
    path      video file or frame folder, relative to videos_dir
    subject   identity (the split is by subject, never by clip)
    emotion   a name or alias of fv.engine.labels (angry, happy, sad, ...); neutral rows are skipped
    split     optional: train / test per row; rows without it are split by subject
Other columns are copied into videos.csv. Alignment, 32-frame uniform sampling and writing are the
MUG pipeline's (fv.data.mug: run_clips, finish_dataset), so RAVDESS-, CK+- or ADFES-like data come
out exactly like MUG. The MUG-only "ends neutral" filter is off unless neutral_tol is given
(CK+ clips, for one, end at the apex).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np

from fv.data.layout import SPLITS
from fv.data.mug import SourceDataError, finish_dataset, run_clips, sampled_job
from fv.data.video_io import VideoIOError
from fv.engine.labels import CLASSES, N_FRAMES, UnknownEmotionError, parse_emotion

REQUIRED = ("path", "subject", "emotion")


class FolderDataError(SourceDataError):
    """The videos folder or its CSV is missing, empty or malformed."""


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """CSV rows with lower-case, stripped keys and stripped values; checks the required columns."""
    if not csv_path.is_file():
        raise FolderDataError(f"CSV {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise FolderDataError(f"CSV {csv_path} lacks column(s) {', '.join(missing)} "
                                  f"(found: {', '.join(header) or 'none'}); it needs path, subject, emotion")
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not rows:
        raise FolderDataError(f"CSV {csv_path} has a header but no rows")
    return rows


def subject_split(subjects: list[str], test_subjects=None, test_fraction: float = 0.2,
                  seed: int = 0) -> dict[str, str]:
    """{subject: split}. Given test_subjects (names or numbers; '017' matches 17) those are test;
    else round(test_fraction * n) subjects drawn with numpy's default_rng(seed), at least one of
    each split when there are two or more subjects and test_fraction > 0."""
    names = sorted(set(subjects), key=str)
    if test_subjects is not None:
        wanted = {_norm_subject(s) for s in test_subjects}
        return {s: "test" if _norm_subject(s) in wanted else "train" for s in names}
    n_test = int(round(test_fraction * len(names)))
    if len(names) >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    test = {names[i] for i in order[:n_test]}
    return {s: "test" if s in test else "train" for s in names}


def _norm_subject(s) -> str:
    s = str(s).strip()
    return str(int(s)) if s.isdigit() else s


def prepare_folder(videos_dir: str | Path, csv_path: str | Path, out: str | Path, test_subjects=None,
                   test_fraction: float = 0.2, seed: int = 0, size224: bool = False, *,
                   workers: int | None = None, progress: bool = True, min_frames: int = N_FRAMES,
                   neutral_tol: float | None = None, keep_cache: bool = False,
                   model_dir: str | None = None, size128: bool = False) -> dict:
    """Videos/frame folders + CSV -> fv's data layout in `out`; returns the count table.

    Clips shorter than min_frames are dropped ("short"); with min_frames < 32 shorter clips are
    kept and uniform sampling repeats frames."""
    videos_dir, csv_path = Path(videos_dir), Path(csv_path)
    if not videos_dir.is_dir():
        raise FolderDataError(f"videos folder {videos_dir} does not exist")
    if not any(videos_dir.iterdir()):
        raise FolderDataError(f"videos folder {videos_dir} is empty")
    rows = read_rows(csv_path)
    jobs, dropped, keys = [], Counter(), Counter()
    for line, row in enumerate(rows, start=2):   # line 1 is the header
        where = f"row {line} of {csv_path.name}"
        try:
            label = CLASSES[parse_emotion(row["emotion"], allow_neutral=True)]
        except UnknownEmotionError as e:
            raise FolderDataError(f"{where}: {e}") from None
        if not row["subject"]:
            raise FolderDataError(f"{where}: empty subject")
        split = row.get("split", "").lower() or None
        if split is not None and split not in SPLITS:
            raise FolderDataError(f"{where}: split {row['split']!r} must be one of {', '.join(SPLITS)} or empty")
        source = videos_dir / row["path"]
        if not row["path"] or not source.exists():
            raise FolderDataError(f"{where}: video {source} does not exist")
        if label == "neutral":
            dropped["neutral"] += 1
            continue
        key = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(row["path"]).with_suffix(""))).strip("_") or "clip"
        keys[key] += 1
        if keys[key] > 1:
            key = f"{key}_{keys[key]}"
        extra = {k: v for k, v in row.items() if k and k not in REQUIRED + ("split",)}
        try:
            job = sampled_job(key, row["subject"], label, source, split=split, columns={"source": row["path"], **extra})
        except VideoIOError as e:
            raise FolderDataError(f"{where}: {e}") from None
        if job.n_frames < max(1, min_frames):
            dropped["short"] += 1
        else:
            jobs.append(job)
    if not jobs:
        raise FolderDataError(f"no usable clips in {csv_path} (all neutral or shorter than {min_frames} frames)")
    by_subject = subject_split([j.subject for j in jobs if j.split is None], test_subjects, test_fraction, seed)
    outcomes = run_clips(jobs, Path(out) / ".cache", size224=size224, workers=workers, progress=progress,
                         model_dir=model_dir, desc="aligning clips", size128=size128)
    return finish_dataset(out, jobs, outcomes, split_of=lambda j: j.split or by_subject[j.subject],
                          size224=size224, size128=size128, neutral_tol=neutral_tol, dropped=dropped,
                          keep_cache=keep_cache,
                          meta={"name": videos_dir.name, "source": str(videos_dir), "csv": str(csv_path)})
