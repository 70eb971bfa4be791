"""A hand over the mouth (issue 21): fv.photo.aligner.FaceAligner.mouth_covered finds it on real frames of the
Pexels video (which frames show a hand over the mouth was decided by looking at them, not by the code), load_face
says so in one warning, and the modes leave that mouth as the photo has it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from fv.data.synth_face import AUS
from fv.data.video_io import read_video
from fv.photo.aligner import MIRROR
from fv.photo.errors import MouthCoveredWarning
from fv.photo.face import PhotoFace, load_face
from fv.photo.modes import MOUTH_AUS, keep_mouth, still_mouth

COVERED, CLEAR = (96, 114, 126), (0, 240, 300)


@pytest.fixture(scope="module")
def some_frames(pexels_video) -> dict[int, np.ndarray]:
    idx = COVERED + CLEAR
    return dict(zip(idx, read_video(pexels_video, list(idx))))


def test_mirror_pairs_are_an_involution_mapping_left_to_right():
    assert sorted(MIRROR) == list(range(68))
    assert (MIRROR[MIRROR] == np.arange(68)).all()
    # the jaw's ends, the eyes' outer corners and the mouth's corners swap; the nose's ridge stays
    assert (MIRROR[0], MIRROR[36], MIRROR[48], MIRROR[27], MIRROR[62]) == (16, 45, 54, 27, 62)


def test_a_hand_over_the_mouth_is_found_and_a_clear_mouth_is_not(some_frames, aligner):
    for i, f in some_frames.items():
        box = aligner.detect(f)[0]
        assert aligner.mouth_covered(f, box, aligner.landmarks(f, box)) == (i in COVERED), i


def test_load_face_warns_once_for_a_covered_mouth(some_frames, tmp_path):
    for i in (COVERED[0], CLEAR[0]):
        Image.fromarray(some_frames[i]).save(tmp_path / f"{i}.png")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            face = load_face(tmp_path / f"{i}.png", 64)
        mine = [w for w in caught if issubclass(w.category, MouthCoveredWarning)]
        assert face.mouth_covered == (i in COVERED) and len(mine) == (i in COVERED)
        if mine:
            assert str(tmp_path / f"{i}.png") in str(mine[0].message) and "\n" not in str(mine[0].message)


def test_a_covered_mouth_keeps_its_action_units_at_zero_and_its_pixels(some_frames, tmp_path):
    Image.fromarray(some_frames[COVERED[0]]).save(tmp_path / "c.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = load_face(tmp_path / "c.png", 64)
    rng = np.random.default_rng(0)
    aus = rng.uniform(0, 1, (32, len(AUS))).astype(np.float32)
    held = still_mouth(face, aus)
    mouth = [AUS.index(a) for a in MOUTH_AUS]
    assert (held[:, mouth] == 0).all()
    others = [k for k in range(len(AUS)) if k not in mouth]
    assert (held[:, others] == aus[:, others]).all() and (aus[:, mouth] > 0).all()   # the input is not changed
    clear = PhotoFace(face.crop, face.hires, face.photo, face.aligned, False)
    assert still_mouth(clear, aus) is aus
    video = rng.integers(0, 256, (4, *face.hires.shape), dtype=np.uint8)
    out = keep_mouth(face, video)
    lip = np.round(face.aligned.landmarks[[51, 57, 62, 66]]).astype(int)     # on the lips: the photo's own
    assert (out[:, lip[:, 1], lip[:, 0]] == face.hires[lip[:, 1], lip[:, 0]]).all()
    assert (out[:, :10] == video[:, :10]).all()                              # far from the mouth: the video's
    assert keep_mouth(clear, video) is video
