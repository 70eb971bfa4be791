"""The alignment geometry (fv.photo.geometry) against closed forms: the eye similarity, warps, the resize map, the
expression distance, the layouts' eye targets and the native crop size."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fv.photo.errors import FaceError, NoFaceError
from fv.photo.geometry import (apply_affine, expression_distance, eye_centred_targets, eye_centres, face_targets,
                               fill_missing, native_crop_size, resize_matrix, similarity_from_eyes, warp_affine)

# The documented layouts, written out: 256 face-centred crop, eye line y = 0.40 * 256, inter-ocular
# 0.28 * 256 = 71.68 px around x = 127.5; 224 eye-centred crop, midpoint (111.5, 111.5), 55 px apart.
EYES_256 = np.array([[127.5 - 35.84, 102.4], [127.5 + 35.84, 102.4]])
EYES_224 = np.array([[111.5 - 27.5, 111.5], [111.5 + 27.5, 111.5]])


# ----------------------------------------------------------------------------- geometry, closed form

def test_similarity_from_eyes_is_the_closed_form_similarity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        src, dst = rng.uniform(-100, 300, (2, 2)), rng.uniform(-100, 300, (2, 2))
        m = similarity_from_eyes(src, dst)
        np.testing.assert_allclose(apply_affine(m, src), dst, atol=1e-9)
        ds, dd = src[1] - src[0], dst[1] - dst[0]
        scale = math.hypot(*dd) / math.hypot(*ds)
        angle = math.atan2(dd[1], dd[0]) - math.atan2(ds[1], ds[0])
        rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)


def blob(h: int, w: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * g).round().astype(np.uint8)[..., None], 3, axis=2)


def centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 0].astype(np.float64)
    y, x = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    return np.array([(g * x).sum(), (g * y).sum()]) / g.sum()


@pytest.mark.parametrize("scale", [0.3, 0.7, 1.0, 2.5])
def test_warp_affine_moves_a_point_where_the_matrix_says(scale):
    # a blob at p must land at M p, also through the INTER_AREA pre-shrink used below scale 0.8
    img = blob(400, 500, 230.3, 180.7, sigma=12.0)
    m = similarity_from_eyes(np.array([[200.0, 150.0], [260.0, 160.0]]),
                             np.array([[100.0, 90.0], [100.0 + 60.8 * scale, 90.0]]))
    out = warp_affine(img, m, 300, 300, border=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(centroid(out), apply_affine(m, np.array([230.3, 180.7])), atol=0.25)


def test_resize_matrix_matches_inter_area():
    img = blob(256, 256, 101.2, 140.6, sigma=10.0)
    small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(centroid(small), apply_affine(resize_matrix(256, 64), np.array([101.2, 140.6])),
                               atol=0.05)


def test_expression_distance_closed_form():
    rng = np.random.default_rng(1)
    lm = rng.uniform(50, 150, (68, 2))
    lm[36:42] = [80, 90] + rng.normal(0, 1, (6, 2))
    lm[42:48] = [120, 92] + rng.normal(0, 1, (6, 2))
    # invariant to any similarity of the whole face (pose, scale, position)
    m = similarity_from_eyes(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[13.0, -4.0], [40.0, 9.0]]))
    assert expression_distance(lm, apply_affine(m, lm)) < 1e-9
    # moving the 20 mouth points by delta inter-ocular units: RMS over points 17-67 (51) = delta sqrt(20/51)
    iod = np.linalg.norm(eye_centres(lm)[1] - eye_centres(lm)[0])
    moved = lm.copy()
    moved[48:68, 1] += 0.1 * iod
    assert expression_distance(lm, moved) == pytest.approx(0.1 * math.sqrt(20 / 51), rel=1e-9)


def test_fill_missing_takes_nearest_found_frame():
    vals = np.arange(6.0)
    found = np.array([False, True, False, False, True, False])
    np.testing.assert_array_equal(fill_missing(vals, found), [1, 1, 1, 4, 4, 4])
    with pytest.raises(NoFaceError):
        fill_missing(vals, np.zeros(6, bool))


def test_target_layouts():
    np.testing.assert_allclose(face_targets(256), EYES_256)
    np.testing.assert_allclose(eye_centred_targets(224, 55), EYES_224)


def test_native_crop_size_keeps_the_face_scale_and_clamps():
    eyes = np.array([[100.0, 50.0], [184.0, 50.0]])          # 84 px apart: 84 / 0.28 = 300 px
    assert native_crop_size(eyes) == 300
    assert native_crop_size(eyes * [1.01, 1]) == 2 * round(84.84 / 0.28 / 2)   # 303 -> an even 302 or 304
    assert native_crop_size(eyes / 10) == 64 and native_crop_size(eyes * 3) == 512
    assert native_crop_size(eyes, 32, 128) == 128
    with pytest.raises(FaceError, match="bounds"):
        native_crop_size(eyes, 600, 512)
