"""MUG preprocessing (fv.data.mug) on a small tree in MUG's layout built from the Pexels video:
different frame ranges and a mirror image stand in for different subjects."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from fv.data.layout import load_split
from fv.data.mug import EXPECTED, SourceDataError, find_mug_clips, fingerprint, format_counts, preprocess_mug
from fv.data.video_io import uniform_indices
from fv.photo.aligner import FaceAligner
from fv.photo.geometry import eye_centres

# Palindromes end on the frame they start with (they "end neutral"); TO_LAUGH goes from a calm
# face (220) to a full laugh (298); SHORT has 20 frames.
PAL_SMILE = list(range(230, 250)) + list(range(250, 229, -1))   # 41 frames
PAL_SAD = list(range(0, 20)) + list(range(20, -1, -1))          # 41
PAL_LATE = list(range(400, 420)) + list(range(420, 399, -1))    # 41
TO_LAUGH = list(range(220, 300, 2))                             # 40
SHORT = list(range(230, 250))                                   # 20
EYES_224 = np.array([[111.5 - 27.5, 111.5], [111.5 + 27.5, 111.5]])   # thesis 3.4.1 layout, written out
EYES_256 = np.array([[127.5 - 35.84, 102.4], [127.5 + 35.84, 102.4]])  # 0.40 s eye line, 0.28 s apart


def write_take(folder, frames, ids, flip=False):
    folder.mkdir(parents=True)
    for n, i in enumerate(ids):
        f = frames[i][:, ::-1] if flip else frames[i]
        Image.fromarray(np.ascontiguousarray(f)).save(folder / f"img_{n:04d}.jpg", quality=92)
    (folder / "take.avi").write_bytes(b"ignored")   # non-frame files beside the frames are ignored


@pytest.fixture(scope="module")
def mug(tmp_path_factory, pexels_video):
    need = set(PAL_SMILE + PAL_SAD + PAL_LATE + TO_LAUGH)
    frames = {}
    with imageio.get_reader(str(pexels_video), format="FFMPEG") as r:
        for i, f in enumerate(r):
            if i in need:
                frames[i] = cv2.resize(np.asarray(f), (320, 180), interpolation=cv2.INTER_AREA)
            if i >= max(need):
                break
    root = tmp_path_factory.mktemp("mug")
    raw = root / "subjects3"
    write_take(raw / "001" / "happiness" / "take000", frames, PAL_SMILE)
    write_take(raw / "001" / "happiness" / "take001", frames, TO_LAUGH)             # not neutral at the end
    write_take(raw / "001" / "sadness" / "take000", frames, PAL_SAD)
    write_take(raw / "001" / "anger" / "take000", frames, SHORT)                    # < 32 frames
    write_take(raw / "001" / "mixed" / "take000", frames, PAL_SAD)
    write_take(raw / "001" / "neutral" / "take000", frames, PAL_SAD)
    write_take(raw / "002" / "session0" / "happiness" / "take000", frames, PAL_LATE)
    write_take(raw / "002" / "session1" / "surprise" / "take000", frames, PAL_SMILE)
    write_take(raw / "017" / "anger" / "take000", frames, PAL_LATE, flip=True)     # a test subject
    disgust = raw / "017" / "disgust" / "take000"
    write_take(disgust, frames, PAL_SMILE, flip=True)
    # frames the uniform sampling skips are garbage: only the 32 sampled files may be decoded
    skipped = sorted(set(range(len(PAL_SMILE))) - set(uniform_indices(len(PAL_SMILE), 32).tolist()))
    assert len(skipped) == 9
    for n in skipped:
        (disgust / f"img_{n:04d}.jpg").write_bytes(b"not a jpeg")
    out = root / "out"
    counts = preprocess_mug(root, out, workers=1, progress=False, keep_cache=True)
    return root, out, counts


def test_counts_and_filters(mug):
    _, out, counts = mug
    assert counts["train"] == {"anger": 0, "disgust": 0, "fear": 0, "happiness": 2, "sadness": 1, "surprise": 1,
                               "total": 4, "identities": 2}
    assert counts["test"] == {"anger": 1, "disgust": 1, "fear": 0, "happiness": 0, "sadness": 0, "surprise": 0,
                              "total": 2, "identities": 1}
    assert counts["dropped"] == {"mixed/extra": 1, "neutral": 1, "not_neutral_end": 1, "short": 1}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == counts and meta["splits"] == {"train": 4, "test": 2} and meta["n_frames"] == 32
    table = format_counts(counts)
    assert "761" in table and "158" in table and "happiness" in table
    assert str(EXPECTED["train"]["anger"]) in table


def test_written_clips(mug):
    _, out, _ = mug
    train, test = load_split(out, "train"), load_split(out, "test")
    assert train.clips64.shape == (4, 32, 64, 64, 3) and train.clips64.dtype == np.uint8
    assert test.clips224.shape == (2, 32, 224, 224, 3) and test.clips224.dtype == np.uint8
    assert {r["subject"] for r in test.rows} == {"017"} and {r["subject"] for r in train.rows} == {"001", "002"}
    ids = {r["video_id"] for r in train.rows}
    assert ids == {"001_happiness_take000", "001_sadness_take000", "002_session0_happiness_take000",
                   "002_session1_surprise_take000"}
    for split in (train, test):
        v = split.videos(slice(None))
        assert v.min() >= -1 and v.max() <= 1 and v.std() > 0.1
        for r in split.rows:
            assert float(r["neutral_dist"]) < 0.06 and int(r["n_missed"]) == 0


def test_eyes_fixed_across_frames(mug):
    _, out, _ = mug
    aligner = FaceAligner()
    for split in ("train", "test"):
        s = load_split(out, split)
        for c in range(len(s)):
            for t in range(0, 32, 2):
                f224 = np.asarray(s.clips224[c, t])
                e = eye_centres(aligner.landmarks(f224, aligner.detect(f224)[0]))
                assert np.abs(e - EYES_224).max() < 2.0, (split, c, t, e)
                if t % 4:
                    continue
                # the 64 crop is the 256 crop shrunk 4x: re-detect on a 4x upscale, expect 256 targets
                f256 = cv2.resize(np.asarray(s.clips64[c, t]), (256, 256), interpolation=cv2.INTER_CUBIC)
                e = eye_centres(aligner.landmarks(f256, aligner.detect(f256)[0]))
                assert np.abs(e - EYES_256).max() < 4.0, (split, c, t, e)


def test_resume_uses_the_cache(mug, tmp_path):
    root, out, counts = mug
    cache = out / ".cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(before) == 7        # one per aligned clip: 6 kept + 1 not ending neutral
    first = np.asarray(load_split(out, "train").clips64).copy()
    assert preprocess_mug(root, out, workers=1, progress=False, keep_cache=True) == counts
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before      # nothing recomputed
    np.testing.assert_array_equal(load_split(out, "train").clips64, first)
    # a changed source frame invalidates exactly that clip's cache entry
    take = root / "subjects3" / "001" / "sadness" / "take000" / "img_0000.jpg"
    os.utime(take, ns=(take.stat().st_atime_ns, take.stat().st_mtime_ns + 10**9))
    other = tmp_path / "out"
    shutil.copytree(out, other)
    assert preprocess_mug(root, other, workers=1, progress=False) == counts
    assert not (other / ".cache").exists()                       # removed after a finished run
    assert preprocess_mug(root, out, workers=1, progress=False, keep_cache=True) == counts
    assert len(set(p.name for p in cache.iterdir()) - set(before)) == 1


def test_layout_discovery_and_errors(mug, tmp_path):
    root, _, _ = mug
    jobs, dropped = find_mug_clips(root / "subjects3")         # subjects3 itself or its parent
    assert len(jobs) == 7 and all(len(j.files) == 32 for j in jobs)
    assert dropped == {"short": 1, "mixed/extra": 1, "neutral": 1}
    # a cache entry made without 128 px clips is not one made with them
    keys = {fingerprint(jobs[0], True), fingerprint(jobs[0], True, size128=True), fingerprint(jobs[0], False)}
    assert len(keys) == 3 and fingerprint(jobs[0], True) == fingerprint(jobs[0], True, size128=False)
    with pytest.raises(SourceDataError, match="does not exist"):
        preprocess_mug(tmp_path / "nowhere", tmp_path / "o", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceDataError, match="subjects3"):
        preprocess_mug(tmp_path / "empty", tmp_path / "o", progress=False)
