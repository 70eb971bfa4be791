"""Bring-your-own-data loader (fv.data.folder): videos and frame folders + a CSV, on clips cut
from the Pexels video."""

from __future__ import annotations

import json

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from fv.data.folder import FolderDataError, prepare_folder, subject_split
from fv.data.layout import load_split
from fv.data.mug import SourceDataError
from fv.data.video_io import write_mp4

PAL_SMILE = list(range(230, 250)) + list(range(250, 229, -1))   # 41 frames, ends where it starts
PAL_SAD = list(range(0, 20)) + list(range(20, -1, -1))
PAL_LATE = list(range(400, 420)) + list(range(420, 399, -1))
CSV = """path,Subject,emotion,split,note
a/happy_01.mp4,a,happy,,first
b/sad.mp4,b,Sad,,
c_frames,c,angry,test,
short.mp4,a,surprised,,
b/sad.mp4,b,neutral,,
"""


@pytest.fixture(scope="module")
def videos(tmp_path_factory, pexels_video):
    need = set(PAL_SMILE + PAL_SAD + PAL_LATE)
    frames = {}
    with imageio.get_reader(str(pexels_video), format="FFMPEG") as r:
        for i, f in enumerate(r):
            if i in need:
                frames[i] = cv2.resize(np.asarray(f), (320, 180), interpolation=cv2.INTER_AREA)
            if i >= max(need):
                break
    root = tmp_path_factory.mktemp("byod")
    vids = root / "videos"
    write_mp4(vids / "a" / "happy_01.mp4", np.stack([frames[i] for i in PAL_SMILE]), fps=24)
    write_mp4(vids / "b" / "sad.mp4", np.stack([frames[i] for i in PAL_SAD]), fps=24)
    write_mp4(vids / "short.mp4", np.stack([frames[i] for i in PAL_SMILE[:20]]), fps=24)
    (vids / "c_frames").mkdir()
    for n, i in enumerate(PAL_LATE):
        Image.fromarray(np.ascontiguousarray(frames[i][:, ::-1])).save(vids / "c_frames" / f"{n}.png")
    (root / "clips.csv").write_text(CSV)
    return root


def test_prepare_folder(videos):
    out = videos / "out"
    counts = prepare_folder(videos / "videos", videos / "clips.csv", out, test_subjects=["b"], size224=True,
                            workers=1, progress=False, size128=True)
    assert counts["train"]["happiness"] == 1 and counts["train"]["total"] == 1
    assert counts["test"]["sadness"] == 1 and counts["test"]["anger"] == 1 and counts["test"]["total"] == 2
    assert counts["test"]["identities"] == 2
    assert counts["dropped"] == {"neutral": 1, "short": 1}
    train, test = load_split(out, "train"), load_split(out, "test")
    assert train.clips64.shape == (1, 32, 64, 64, 3) and test.clips224.shape == (2, 32, 224, 224, 3)
    assert train.rows[0]["video_id"] == "a_happy_01" and train.rows[0]["note"] == "first"
    assert train.rows[0]["source"] == "a/happy_01.mp4" and train.rows[0]["emotion"] == "happiness"
    assert sorted(r["subject"] for r in test.rows) == ["b", "c"]
    assert json.loads((out / "meta.json").read_text())["counts"] == counts
    assert not (out / ".cache").exists()
    v = train.videos([0])
    assert v.shape == (1, 32, 3, 64, 64) and -1 <= v.min() < v.max() <= 1
    # size128: the 256 px crop shrunk to 128 instead of 64 (INTER_AREA both), so 128 -> 64 is clips64 but for
    # rounding (2x2 means of 2x2 means vs 4x4 means)
    assert train.clips128.shape == (1, 32, 128, 128, 3) and test.clips128.shape == (2, 32, 128, 128, 3)
    assert json.loads((out / "meta.json").read_text())["alignment"]["medium"] == 128
    for split in (train, test):
        c128 = np.asarray(split.clips128).reshape(-1, 128, 128, 3)
        small = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in c128])
        diff = np.abs(small.reshape(split.clips64.shape).astype(np.int16) - np.asarray(split.clips64, np.int16))
        assert diff.max() <= 1, diff.max()
    assert test.videos([1], size=128).shape == (1, 32, 3, 128, 128)


def test_subject_split():
    subs = [f"s{i}" for i in range(10)]
    a, b = subject_split(subs, seed=3), subject_split(subs, seed=3)
    assert a == b and sum(v == "test" for v in a.values()) == 2
    assert sum(v == "test" for v in subject_split(subs[:2], test_fraction=0.1).values()) == 1   # at least one
    assert sum(v == "test" for v in subject_split(subs[:3], test_fraction=0.9).values()) == 2   # keeps one train
    assert subject_split(["017", "018"], test_subjects=[17]) == {"017": "test", "018": "train"}


def write_csv(videos, text):
    p = videos / "bad.csv"
    p.write_text(text)
    return p


def test_errors(videos, tmp_path):
    vids = videos / "videos"
    with pytest.raises(FolderDataError, match="does not exist"):
        prepare_folder(tmp_path / "none", videos / "clips.csv", tmp_path / "o", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderDataError, match="is empty"):
        prepare_folder(tmp_path / "empty", videos / "clips.csv", tmp_path / "o", progress=False)
    with pytest.raises(FolderDataError, match="lacks column.*emotion"):
        prepare_folder(vids, write_csv(videos, "path,subject\na/happy_01.mp4,a\n"), tmp_path / "o", progress=False)
    with pytest.raises(FolderDataError, match="row 3 of bad.csv: unknown emotion 'contempt'"):
        prepare_folder(vids, write_csv(videos, "path,subject,emotion\na/happy_01.mp4,a,happy\nb/sad.mp4,b,contempt\n"),
                       tmp_path / "o", progress=False)
    with pytest.raises(FolderDataError, match="row 2 of bad.csv: video .*missing.mp4 does not exist"):
        prepare_folder(vids, write_csv(videos, "path,subject,emotion\nmissing.mp4,a,happy\n"), tmp_path / "o",
                       progress=False)
    with pytest.raises(FolderDataError, match="split 'val'"):
        prepare_folder(vids, write_csv(videos, "path,subject,emotion,split\nb/sad.mp4,b,sad,val\n"), tmp_path / "o",
                       progress=False)
    with pytest.raises(FolderDataError, match="no rows"):
        prepare_folder(vids, write_csv(videos, "path,subject,emotion\n"), tmp_path / "o", progress=False)


@pytest.mark.slow
def test_worker_processes_give_the_same_clips(videos):
    # the process pool (spawned workers, one FaceAligner each) must write what the in-process run writes
    one, two = videos / "w1", videos / "w2"
    c1 = prepare_folder(videos / "videos", videos / "clips.csv", one, test_subjects=["b"], workers=1, progress=False)
    c2 = prepare_folder(videos / "videos", videos / "clips.csv", two, test_subjects=["b"], workers=2, progress=False)
    assert c1 == c2
    for split in ("train", "test"):
        np.testing.assert_array_equal(load_split(one, split).clips64, load_split(two, split).clips64)


def test_no_face_clips_are_dropped(tmp_path):
    vids = tmp_path / "v"
    grad = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 64, 0).repeat(3, 2)
    write_mp4(vids / "wall.mp4", np.stack([grad] * 32))
    (tmp_path / "c.csv").write_text("path,subject,emotion\nwall.mp4,x,fear\n")
    with pytest.warns(UserWarning, match="no face found"), \
            pytest.raises(SourceDataError, match="no clip survived.*no_face"):
        prepare_folder(vids, tmp_path / "c.csv", tmp_path / "out", workers=1, progress=False)
