"""fv.photo.raster against a per-pixel reference (numpy.linalg.solve of the barycentric system, a loop over
triangles with a depth test), and fv.photo.ict_motion's spline and rig on invariants: the thin-plate spline
interpolates its points and keeps an affine map affine; zero AUs give the crop back byte for byte; a jaw drop
moves the chin down and paints the mouth's inside, a brow raise paints nothing. The own-expression fit recovers the
AUs a face was made with (the model's own landmarks, moved by known weights and placed by a known similarity), and
undoes a smiling portrait's smile."""

from __future__ import annotations

import numpy as np
import pytest

from fv.photo.geometry import apply_affine, tps_apply, tps_fit
from fv.photo.ict_motion import (OWN_AUS, OWN_SMILE, SHIPPED, FaceMotionError, FaceRig, MotionOptions, load_model,
                                 own_expression)
from fv.photo.raster import rasterize


def reference(xy, z, tris, h, w):
    tri = np.full((h, w), -1)
    best = np.full((h, w), -np.inf)
    for k, t in enumerate(tris):
        A = np.vstack([xy[t].T, np.ones(3)])
        for y in range(h):
            for x in range(w):
                wts = np.linalg.solve(A, [x, y, 1.0])
                if wts.min() >= -1e-7 and wts @ z[t] > best[y, x]:
                    best[y, x], tri[y, x] = wts @ z[t], k
    return tri


def test_raster_matches_per_pixel_reference():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-2, 14, (30, 2))
    z = rng.uniform(0, 1, 30)
    tris = np.array([rng.choice(30, 3, replace=False) for _ in range(25)])
    got = rasterize(xy, z, tris, 12, 12)
    want = reference(xy, z, tris, 12, 12)
    assert (got.tri == want).mean() > 0.99       # ties on shared edges may go either way
    hit = got.tri >= 0
    vals = got.interpolate(tris, xy)             # interpolating the positions gives each pixel's own centre
    ys, xs = np.nonzero(hit)
    np.testing.assert_allclose(vals[hit], np.stack([xs, ys], 1), atol=1e-4)


def test_tps_interpolates_and_keeps_affine():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (20, 2))
    dst = src + rng.normal(0, 3, src.shape)
    spl = tps_fit(src, dst, lam=0.0, scale=100)
    np.testing.assert_allclose(tps_apply(spl, src), dst, atol=1e-6)
    M = np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, -3.0]])
    aff = tps_fit(src, src @ M[:, :2].T + M[:, 2], lam=1.0, scale=100)
    q = rng.uniform(-50, 150, (10, 2))
    np.testing.assert_allclose(tps_apply(aff, q), q @ M[:, :2].T + M[:, 2], atol=1e-6)


def _rig(shared_data):
    from fv.photo.face import load_face
    face = load_face(shared_data / "faces" / "biden.jpg", 64, hi=256)
    return face, FaceRig(face.hires, face.aligned.landmarks)


def test_rig_invariants(shared_data):
    face, rig = _rig(shared_data)
    K = len(rig.model.aus)
    assert np.array_equal(rig.frame(np.zeros(K)), face.hires)
    jaw = np.zeros(K, np.float32)
    jaw[rig.model.aus.index("AU26")] = 1.0
    xy, _ = rig.moved(jaw)
    chin = rig.model.landmarks[8]
    assert xy[chin, 1] - rig.p0[chin, 1] > 0.03 * rig.G          # the chin goes down the crop
    _, _, alpha = rig.frame_maps(jaw)
    assert alpha.max() > 0.5                                       # the opened mouth shows its inside
    brow = np.zeros(K, np.float32)
    brow[rig.model.aus.index("AU1")] = 1.0
    assert rig.frame_maps(brow)[2].max() == 0                      # a brow raise opens nothing
    moved = rig.frame(brow).astype(int)
    assert np.abs(moved - face.hires).max() > 10                   # ... but moves the face
    with pytest.raises(FaceMotionError):
        rig.frame(np.zeros(K + 1))


def test_missing_model_is_one_line(tmp_path):
    with pytest.raises(FaceMotionError, match="make_face_motion"):
        load_model(tmp_path / "none.npz")
    assert SHIPPED.is_file()


def _made_with(model, weights: dict[str, float]) -> np.ndarray:
    """The model's 68 landmarks at these AU intensities, frontal, placed by a rotated, scaled, shifted view."""
    w = np.zeros(len(model.aus), np.float32)
    for k, v in weights.items():
        w[model.aus.index(k)] = v
    pts = (model.rest + np.tensordot(w, model.delta, 1))[model.landmarks, :2] * [1.0, -1.0]
    a, c = 0.1, 9.0                                          # 0.1 rad roll, 9 px per cm
    sim = np.array([[c * np.cos(a), -c * np.sin(a), 120.0], [c * np.sin(a), c * np.cos(a), 140.0]])
    return apply_affine(sim, pts)


def test_own_expression_recovers_the_aus_a_face_was_made_with():
    model = load_model()
    made = {"AU12": 0.8, "AU26": 0.5, "AU16": 0.3}
    got = own_expression(_made_with(model, made), model, ridge=1e-8)
    for au in OWN_AUS:    # not exact: the mouth's shapes move the eye points a little (0.02 cm), and so the view
        tol = 0.03 if au == "AU12" else 0.08
        assert got[model.aus.index(au)] == pytest.approx(made.get(au, 0.0), abs=tol), au
    assert not np.any(np.delete(got, [model.aus.index(a) for a in OWN_AUS]))      # only the mouth's are fitted
    # a mouth that does not smile is the person's own shape: nothing to undo
    assert not own_expression(_made_with(model, {"AU12": OWN_SMILE / 2, "AU26": 0.5}), model, ridge=1e-8).any()
    assert not own_expression(_made_with(model, {}), model).any()


def test_a_smiling_portrait_s_smile_is_undone_at_the_apex(shared_data):
    from fv.photo.face import load_face
    face = load_face(shared_data / "faces" / "obama.jpg", 64, hi=256)
    rig = FaceRig(face.hires, face.aligned.landmarks)
    assert rig.own[rig.model.aus.index("AU12")] >= OWN_SMILE
    K = len(rig.model.aus)
    assert np.array_equal(rig.frame(np.zeros(K), progress=0.0), face.hires)     # frame 0: the photo itself
    xy, _ = rig.moved(np.zeros(K), progress=1.0)
    lm = rig.model.landmarks
    iod = np.linalg.norm(face.aligned.eyes[1] - face.aligned.eyes[0]) * rig.G / rig.size
    assert (xy[lm[[48, 54]], 1] - rig.p0[lm[[48, 54]], 1]).min() > 0.015 * iod    # the corners come down
    gap = lambda p: p[lm[66], 1] - p[lm[62], 1]                                  # noqa: E731
    assert gap(rig.p0) > 0.1 * iod and gap(xy) < 0.3 * gap(rig.p0)               # and the open lips close
    assert np.abs(rig.frame(np.zeros(K), progress=1.0).astype(int) - face.hires).max() > 10
    kept = FaceRig(face.hires, face.aligned.landmarks, opts=MotionOptions(relax=0.0))
    assert not kept.own.any()


def test_a_smiling_video_keeps_the_photo_s_smile(shared_data):
    from fv.photo.face import load_face
    face = load_face(shared_data / "faces" / "obama.jpg", 64, hi=128)
    rig = FaceRig(face.hires, face.aligned.landmarks)
    k = rig.model.aus.index("AU12")
    aus = np.zeros((4, len(rig.model.aus)), np.float32)
    aus[1:, k] = [0.5, 1.0, 0.5]
    aus[1:, rig.model.aus.index("AU6")] = 0.5
    aus *= rig.own[k] / rig.opts.gain           # the video's peak smile is the photo's: nothing of it is undone
    got = rig.video(aus)
    assert all(np.array_equal(g, rig.frame(a, progress=0.0)) for g, a in zip(got, aus))
    half = aus / 2                              # half of it: the other half is let go at the peak
    want = rig.frame(half[2], progress=0.5)
    assert np.array_equal(rig.video(half)[2], want) and not np.array_equal(want, rig.frame(half[2], progress=0.0))
