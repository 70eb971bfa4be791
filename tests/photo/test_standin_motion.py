"""Stand-in motion transfer (fv.photo.standin_motion, synth_face.motion_field) against independent references: the
generator's forward field and the generator's own rendering of the moved face (the AU readout that feeds it:
tests/photo/test_au_readout.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from fv.data.synth import emotion_aus, synthetic_identity
from fv.data.synth_face import AUS, motion_field, render_frame, render_frame_motion, rest_pixels
from fv.data.synth_motion import displacement
from fv.photo.standin_motion import StandinOptions, au_track, retarget, standin_transfer

S = 128
IDT = synthetic_identity(0, 0)


def prototype(emotion: str, scale: float = 1.0) -> np.ndarray:
    p = emotion_aus(2)[emotion]
    return np.array([p.get(k, 0.0) * scale for k in AUS])


def test_motion_field_points_each_moved_point_back_to_where_it_rested():
    """The generator's forward field moves a rest point p (face units) to p + D(p); the backward flow at the
    moved point's pixel must lead back to p's pixel."""
    a = prototype("happiness")
    flow, _ = motion_field(IDT, a, S, grid=128)
    rng = np.random.default_rng(0)
    p = np.stack([rng.uniform(-0.35, 0.35, 200), rng.uniform(-0.1, 0.5, 200)], 1)     # cheeks, nose, mouth
    moved = p + displacement(IDT, dict(zip(AUS, a)), p)
    pr, pu = rest_pixels(IDT, p, S), rest_pixels(IDT, moved, S)
    ix = np.clip(np.round(pu).astype(int), 0, S - 1)
    back = pu + flow[ix[:, 1], ix[:, 0]] + (ix - pu) * 0       # flow at the nearest pixel centre
    moving = np.linalg.norm(pu - pr, axis=1) > 1.0
    assert moving.sum() > 20
    err = np.linalg.norm(back - pr, axis=1)[moving]
    assert np.median(err) < 0.6, np.median(err)
    # and it is the flow render_frame_motion gives the same frame (solved on the same grid)
    np.testing.assert_allclose(motion_field(IDT, a, 64, grid=64)[0], render_frame_motion(IDT, a, 64)[1], atol=1e-5)


def test_moving_the_standin_by_its_own_field_draws_what_the_generator_draws():
    """The neutral stand-in at 128 px, moved by the transfer at gain 1, must look like the generator's own
    rendering of the same AUs where the face changed (away from drawn texture and the mouth): much closer
    than the unmoved face is."""
    neutral = render_frame(IDT, np.zeros(len(AUS)), S)
    rt = retarget(S, np.eye(3)[:2], None, None)
    opts = StandinOptions(gain=1.0)
    for emotion in ("happiness", "surprise", "sadness"):
        a = prototype(emotion)
        moved = standin_transfer(neutral, a[None], IDT, 2, rt, opts)[0].astype(np.float64)
        truth, _, occ = render_frame_motion(IDT, a, S)
        keep = np.ones((S, S), bool)
        keep[occ > 0] = False
        import cv2
        keep &= cv2.erode(keep.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        keep &= np.abs(neutral.astype(np.float64) - truth).max(-1) > 8        # where the face changed
        assert keep.sum() > 100
        ours = np.abs(moved - truth)[keep].mean()
        still = np.abs(neutral.astype(np.float64) - truth)[keep].mean()
        assert ours < 0.2 * still, (emotion, ours, still)        # measured: 0.02, 0.02, 0.15 of it


def test_no_motion_gives_the_crop_back_and_parted_lips_are_shadowed_only_where_new():
    grey = np.full((S, S, 3), 200, np.uint8)
    rt = retarget(S, np.eye(3)[:2], None, None)
    opts = StandinOptions(gain=1.0, shadow=0.35, feather=0.004)
    a = prototype("surprise")
    out = standin_transfer(grey, np.stack([np.zeros(len(AUS)), a]), IDT, 2, rt, opts)
    np.testing.assert_array_equal(out[0], grey)
    _, parted = motion_field(IDT, a, S, grid=StandinOptions().grid)
    import cv2
    core = cv2.erode((parted > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    far = cv2.dilate((parted > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert core.sum() > 30
    np.testing.assert_allclose(out[1][core], 0.35 * 200, atol=4)
    np.testing.assert_array_equal(out[1][far], 200)
    # a photo whose own lips are apart where the gap's pixels come from shows its own mouth: no shadow
    from fv.photo.standin import standin_landmarks
    marks = standin_landmarks(S, 2)
    if marks is None:
        pytest.skip("dlib finds no face on the stand-in")
    wide = marks.copy()
    cx, cy = marks[60:68].mean(0)
    wide[60:68] = [[cx - 40, cy - 30], [cx, cy - 30], [cx + 40, cy - 30], [cx + 40, cy], [cx + 40, cy + 30],
                   [cx, cy + 30], [cx - 40, cy + 30], [cx - 40, cy]]
    rt2 = retarget(S, np.eye(3)[:2], wide, marks)
    np.testing.assert_array_equal(standin_transfer(grey, a[None], IDT, 2, rt2, opts)[0], grey)


def test_au_track_is_scipys_gaussian_from_frame_0_times_the_gain():
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(0.3, 0.2, (32, len(AUS))))
    got = au_track(a, StandinOptions(gain=0.5, smooth=1.5))
    ref = gaussian_filter1d(a, 1.5, axis=0, mode="nearest", truncate=4.0)
    np.testing.assert_allclose(got, 0.5 * np.clip(ref - ref[0], 0, None), atol=1e-9)
    from fv.data.synth_motion import POSED_GAIN
    assert StandinOptions().au_gain() == pytest.approx(1 / POSED_GAIN)
