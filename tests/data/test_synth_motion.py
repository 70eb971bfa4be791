"""Synthetic generator version 2: faces on fv's alignment template, AU motion as a field, ground-truth flow
and occlusion stored beside the clips; version 1 kept bit for bit (hashes made before version 2 existed)."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fv.data.layout import load_split, write_split
from fv.data.synth import (AUS, EMOTION_AUS, LATEST_VERSION, SynthInputError, au_trajectory, make_synthetic,
                           render_clip, render_frame, synthetic_identity)
from fv.data.synth_face import _setup, _view, render_frame_motion, rest_pixels, synth_style
from fv.data.synth_motion import MOTION_IOD, POSED_GAIN, displacement, inverse
from fv.data.synth_parts import eye_landmark_centres, mouth_rest
from fv.photo.geometry import apply_affine, crop_eye_targets, face_targets
from fv.photo.motion_transfer import warp   # frame 0 pulled through a backward flow (tested on its own)

HERE = Path(__file__).resolve().parent
ZERO = np.zeros(len(AUS))
# this module tests version 2 (fv's default, said explicitly: version 1 is tested in test_synth.py)
render_frame = functools.partial(render_frame, version=2)
render_frame_motion = functools.partial(render_frame_motion, version=2)


def _aus(**kw) -> np.ndarray:
    a = ZERO.copy()
    for k, v in kw.items():
        a[AUS.index(k)] = v
    return a


def _prototype(emotion: str) -> np.ndarray:
    return _aus(**EMOTION_AUS[emotion])


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthv")
    kw = dict(n_identities=3, n_test_identities=1, takes=1, seed=5, workers=1, progress=False)
    return make_synthetic(root / "v1", version=1, **kw), make_synthetic(root / "v2", version=2, **kw)


# ---- versions --------------------------------------------------------------------------------------

def test_version_1_reproduces_the_clips_made_before_version_2(tiny_sets):
    want = json.loads((HERE / "synth_v1_hashes.json").read_text())
    for split in ("train", "test"):
        s = load_split(tiny_sets[0], split)
        assert [_digest(c) for c in s.clips64] == want[split]["clips64"]
        assert _digest(s.aus) == want[split]["aus"]
    idt = synthetic_identity(5, 0)
    a = au_trajectory("surprise", np.random.default_rng([5, 0, 6, 0]))
    assert _digest(render_clip(idt, a[::8], 224, eye_aligned=True, version=1)) == want["eye_aligned224"]


def test_meta_records_the_version_and_motion_files_are_optional(tiny_sets):
    v1, v2 = (load_split(r, "train") for r in tiny_sets)
    assert v1.meta["synth_version"] == 1 and v2.meta["synth_version"] == LATEST_VERSION == 2
    assert v1.flow64 is None and v1.occ64 is None                       # a set without them still loads
    assert v2.flow64.dtype == np.float16 and v2.flow64.shape == (12, 32, 64, 64, 2)
    assert v2.occ64.dtype == np.uint8 and v2.occ64.shape == (12, 32, 64, 64) and set(np.unique(v2.occ64)) <= {0, 1}
    assert not np.asarray(v2.flow64[:, 0]).any() and not np.asarray(v2.occ64[:, 0]).any()   # frame 0 is frame 0
    assert np.abs(np.asarray(v2.flow64[:, 10:22], np.float32)).max() > 1.0
    assert not np.array_equal(v1.clips64, v2.clips64)


def test_unknown_version_is_a_clear_error(tmp_path):
    with pytest.raises(SynthInputError, match="version"):
        render_frame(synthetic_identity(0, 0), ZERO, version=7)
    with pytest.raises(SynthInputError, match="version"):
        make_synthetic(tmp_path, n_identities=2, n_test_identities=1, takes=1, version=0, progress=False)


def test_layout_checks_motion_shapes(tmp_path):
    clips = np.zeros((2, 32, 64, 64, 3), np.uint8)
    rows = [{"video_id": str(i), "subject": "s", "emotion": "anger"} for i in range(2)]
    with pytest.raises(ValueError, match="together"):
        write_split(tmp_path, "train", clips, rows, flow64=np.zeros((2, 32, 64, 64, 2)))
    with pytest.raises(ValueError, match="flow64"):
        write_split(tmp_path, "train", clips, rows, flow64=np.zeros((2, 32, 64, 64)), occ64=np.zeros((2, 32, 64, 64)))
    write_split(tmp_path, "train", clips, rows, flow64=np.ones((2, 32, 64, 64, 2)), occ64=np.ones((2, 32, 64, 64)))
    assert np.asarray(load_split(tmp_path, "train").flow64, np.float64).sum() == 2 * 32 * 64 * 64 * 2
    write_split(tmp_path, "train", clips, rows)                  # rewritten without motion: the old files go
    assert load_split(tmp_path, "train").flow64 is None


# ---- framing ---------------------------------------------------------------------------------------

def test_crop_template_by_hand():
    # face_targets(256): eyes at x = 127.5 -+ 0.14 * 256 = 91.66 / 163.34, y = 0.40 * 256 = 102.4;
    # resized to 64: x' = (x + 0.5) / 4 - 0.5
    assert crop_eye_targets(64) == pytest.approx(np.array([[22.54, 25.225], [40.46, 25.225]]), abs=1e-9)
    assert crop_eye_targets(256) == pytest.approx(face_targets(256))


@pytest.mark.parametrize("index", [0, 13, 41])
def test_version_2_puts_the_eye_centres_on_the_crop_template(index):
    idt = synthetic_identity(0, index)
    assert rest_pixels(idt, eye_landmark_centres(idt), 64, version=2) == pytest.approx(crop_eye_targets(64), abs=1e-9)


def test_dlib_finds_the_eyes_where_the_aligner_puts_them():
    from fv.photo.errors import FaceModelError
    from fv.photo.geometry import eye_centres
    try:
        from fv.photo.aligner import FaceAligner
        aligner = FaceAligner()
    except FaceModelError as e:
        pytest.skip(str(e))
    for index in (2, 30):
        img = cv2.resize(render_frame(synthetic_identity(0, index), ZERO), (256, 256), interpolation=cv2.INTER_CUBIC)
        box = aligner.detect(img)[0]
        eyes = eye_centres(aligner.landmarks(img, box))
        assert np.abs(eyes - face_targets(256)).max() < 2.0, (index, eyes)


# ---- the motion field -------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [1, 19, 26])
def test_field_is_one_to_one(index):
    # det of dF/dp = (1 + dDx/dx)(1 + dDy/dy) - dDx/dy dDy/dx > 0 off the lip line (where the lips part)
    idt = synthetic_identity(0, index)
    xs = np.linspace(-1, 1, 161)
    p = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    y0, w = mouth_rest(idt)
    p = p[~((np.abs(p[:, 1] - y0) < 0.02) & (np.abs(p[:, 0]) < w))]
    h = 1e-5
    for emotion in EMOTION_AUS:
        a = dict(zip(AUS, _prototype(emotion)))
        jx = (displacement(idt, a, p + [h, 0]) - displacement(idt, a, p - [h, 0])) / (2 * h)
        jy = (displacement(idt, a, p + [0, h]) - displacement(idt, a, p - [0, h])) / (2 * h)
        det = (1 + jx[:, 0]) * (1 + jy[:, 1]) - jy[:, 0] * jx[:, 1]
        assert det.min() > 0.1, (emotion, det.min())


def test_inverse_undoes_the_field():
    idt = synthetic_identity(0, 4)
    a = dict(zip(AUS, _prototype("fear")))
    p = np.random.default_rng(0).uniform(-0.8, 0.8, (500, 2))
    p = p[np.abs(p[:, 1] - mouth_rest(idt)[0]) > 0.02]
    back, miss = inverse(idt, a, p + displacement(idt, a, p))
    assert not miss.any() and np.abs(back - p).max() < 1e-4


@pytest.mark.parametrize("au, anchor, rest", [("AU12", "lip_corner", lambda i: mouth_rest(i)[::-1]),
                                              ("AU26", "jaw", lambda i: (0.0, i.face_length))])
def test_an_au_moves_its_anchor_by_the_measured_amount(au, anchor, rest):
    # the posed field is two steps of the measured one at POSED_GAIN / 2: the first moves the anchor by half
    # the posed amount; the second, evaluated where the first left it (off the kernel's peak), by a little less
    idt = synthetic_identity(0, 9)
    got = displacement(idt, {au: 1.0}, np.array([rest(idt)]))[0]
    want = POSED_GAIN * np.array(MOTION_IOD[au][anchor]) * idt.eye_sep            # IOD units -> face units
    assert np.linalg.norm(got) <= np.linalg.norm(want) + 1e-9
    assert got == pytest.approx(want, rel=0.25, abs=0.004)


# ---- ground-truth flow and occlusion ----------------------------------------------------------------

def test_a_head_shift_has_the_hand_computed_flow():
    # dx = 1/16 half-image units = 2 px at 64: every pixel of frame t was 2 px to the left in frame 0
    idt = synthetic_identity(0, 3)
    frame, flow, occ = render_frame_motion(idt, ZERO, pose=(1 / 16, 0, 0))
    assert flow[..., 0] == pytest.approx(np.full((64, 64), -2.0), abs=1e-4)
    assert flow[..., 1] == pytest.approx(np.zeros((64, 64)), abs=1e-4) and not occ.any()
    f0 = render_frame(idt, ZERO)
    assert np.abs(frame[:, 4:60].astype(int) - f0[:, 2:58]).mean() < 0.5


@pytest.mark.parametrize("emotion", sorted(EMOTION_AUS))
def test_flow_maps_frame_0_onto_the_apex_where_nothing_is_occluded(emotion):
    idt = synthetic_identity(0, 7)
    f0 = render_frame(idt, ZERO)
    frame, flow, occ = render_frame_motion(idt, _prototype(emotion), pose=(0.01, -0.005, 0.008))
    keep = (occ == 0) & (np.linalg.norm(flow, axis=-1) > 0.5)           # pixels that moved, not occluded
    warped = np.abs(warp(f0, flow).astype(int) - frame).mean(-1)[keep]
    still = np.abs(f0.astype(int) - frame).mean(-1)[keep]
    assert keep.sum() > 200
    assert warped.mean() < 3.0 and warped.mean() < 0.4 * still.mean(), (warped.mean(), still.mean())


def test_the_open_mouth_is_occluded_and_a_neutral_frame_is_not():
    idt = synthetic_identity(0, 11)
    assert not render_frame_motion(idt, ZERO)[2].any()
    frame, flow, occ = render_frame_motion(idt, _aus(AU26=1.0))
    y0 = apply_affine(_view(idt, _setup(64, False, synth_style(2))), np.array([[0.0, mouth_rest(idt)[0]]]))[0]
    row, col = int(round((y0[1] + 0.5) / 4 - 0.5)), 32       # the lip line's middle, at 64 px
    assert occ[row:row + 3, col - 2:col + 3].all()           # the gap opens downwards from the lip line
    assert occ.mean() < 0.1


def test_fv_makes_the_version_the_shipped_checkpoints_learned(tmp_path):
    import inspect

    from fv.cli.data import synth
    from fv.data.synth import DEFAULT_VERSION
    from fv.engine.backends.artifacts import read_config
    from fv.engine.config import data_synth_version, learned_synth_version
    from fv.demo import shipped_checkpoint
    assert inspect.signature(synth).parameters["version"].default.default == DEFAULT_VERSION
    for setting in ("baseline", "onlyDM"):   # the demo fine-tunes them on the default data
        assert learned_synth_version(read_config(shipped_checkpoint(setting))) == DEFAULT_VERSION, setting
    made = make_synthetic(tmp_path / "d", n_identities=2, n_test_identities=1, takes=1, workers=1, progress=False)
    assert data_synth_version(str(made)) == DEFAULT_VERSION
