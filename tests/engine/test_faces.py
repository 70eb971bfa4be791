"""Face detection, landmarks, eye alignment and paste-back (fv.engine.faces, fv.engine.face_aligner), on
frames of the real Pexels video and on synthetic images whose geometry is known in closed form."""

from __future__ import annotations

import math

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from fv.engine.face_aligner import FaceAligner, mouth_mask, paste_back
from fv.engine.faces import (FaceError, FaceModelError, ImageReadError, MultipleFacesWarning, NoFaceError,
                             apply_affine, expression_distance, eye_centred_targets, eye_centres, face_targets,
                             fill_missing, native_crop_size, read_image, resize_matrix, similarity_from_eyes, warp_affine)

FRAMES = (0, 300, 430, 440, 450, 460)
# The documented layouts, written out: 256 face-centred crop, eye line y = 0.40 * 256, inter-ocular
# 0.28 * 256 = 71.68 px around x = 127.5; 224 eye-centred crop, midpoint (111.5, 111.5), 55 px apart.
EYES_256 = np.array([[127.5 - 35.84, 102.4], [127.5 + 35.84, 102.4]])
EYES_224 = np.array([[111.5 - 27.5, 111.5], [111.5 + 27.5, 111.5]])


@pytest.fixture(scope="module")
def frames(pexels_video) -> dict[int, np.ndarray]:
    out = {}
    with imageio.get_reader(str(pexels_video), format="FFMPEG") as r:
        for i, f in enumerate(r):
            if i in FRAMES:
                out[i] = np.asarray(f)
            if i >= max(FRAMES):
                break
    return out


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()


def redetected_eyes(aligner: FaceAligner, img: np.ndarray) -> np.ndarray:
    """Eye centres [2, 2] found afresh on an (aligned) image: the independent check of alignment."""
    boxes = aligner.detect(img)
    assert boxes, "no face re-detected on the aligned crop"
    return eye_centres(aligner.landmarks(img, boxes[0]))


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


# ----------------------------------------------------------------------------- reading images

def test_read_image_formats(tmp_path, frames):
    rgb = frames[0]
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - rgb).mean() < 3

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:50, :, :3], rgba[:50, :, 3] = (10, 200, 30), 0          # transparent -> white
    rgba[50:60, :, 3] = 128                                      # half -> (c 128 + 255 127) / 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    got = read_image(tmp_path / "b.png").astype(np.float64)
    assert (got[:50] == 255).all()
    np.testing.assert_array_equal(got[60:], rgb[60:])
    want = (rgb[50:60].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(got[50:60] - want).max() <= 0.5 + 1e-9

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == rgb.shape and (g[..., 0] == grey).all() and (g[..., 2] == grey).all()

    g16 = (grey.astype(np.uint16) * 257 + 100)                    # 16-bit: x16 / 257, rounded
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    got16 = read_image(tmp_path / "g16.png")
    assert got16.dtype == np.uint8
    np.testing.assert_array_equal(got16[..., 1], np.clip(np.round(g16 / 257.0), 0, 255).astype(np.uint8))


def test_read_image_errors(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.jpg").write_text("not a jpeg")
    with pytest.raises(ImageReadError, match="text.jpg"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(ImageReadError):
        read_image(tmp_path)


# ----------------------------------------------------------------------------- photos

def test_target_layouts():
    np.testing.assert_allclose(face_targets(256), EYES_256)
    np.testing.assert_allclose(eye_centred_targets(224, 55), EYES_224)


def test_align_puts_eyes_at_targets(aligner, frames):
    for i in (0, 300):
        al = aligner.align(frames[i])
        assert al.image.shape == (256, 256, 3) and al.image.dtype == np.uint8
        np.testing.assert_allclose(apply_affine(al.matrix, eye_centres(al.photo_landmarks)), EYES_256,
                                   atol=1e-6)
        np.testing.assert_allclose(apply_affine(al.inverse, apply_affine(al.matrix, al.photo_landmarks)),
                                   al.photo_landmarks, atol=1e-6)
        assert np.abs(redetected_eyes(aligner, al.image) - EYES_256).max() < 2.0


def test_align_eyes_224_interocular_55(aligner, frames):
    al = aligner.align_eyes(frames[300])
    assert al.image.shape == (224, 224, 3)
    eyes = redetected_eyes(aligner, al.image)
    assert np.abs(eyes - EYES_224).max() < 2.0
    assert abs(np.linalg.norm(eyes[1] - eyes[0]) - 55) < 2.0
    assert abs(eyes[:, 0].mean() - 111.5) < 1.5 and abs(eyes[:, 1].mean() - 111.5) < 1.5


@pytest.mark.parametrize("variant", ["png", "jpg", "rgba", "grey", "small", "tiny", "large"])
def test_face_crop_from_any_photo(tmp_path, aligner, frames, variant):
    rgb = frames[300]
    ref, ref_al = aligner.face_crop(rgb)
    img, scale = rgb, 1.0
    if variant in ("small", "tiny", "large"):
        scale = {"small": 0.25, "tiny": 0.18, "large": 3.0}[variant]   # faces of ~55, ~40 and ~650 px
        img = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    path = tmp_path / f"photo.{'jpg' if variant == 'jpg' else 'png'}"
    if variant == "rgba":
        Image.fromarray(np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]), "RGBA").save(path)
    elif variant == "grey":
        Image.fromarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)).save(path)
    else:
        Image.fromarray(img).save(path, **({"quality": 95} if variant == "jpg" else {}))
    crop, al = aligner.face_crop(path)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    # the same face lands in the same place: eyes found in the photo agree with the reference's
    iod = np.linalg.norm(np.diff(eye_centres(ref_al.photo_landmarks), axis=0))
    assert np.abs(eye_centres(al.photo_landmarks) / scale - eye_centres(ref_al.photo_landmarks)).max() < 0.1 * iod
    ref_cmp = ref if variant != "grey" else np.repeat(cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    assert np.abs(crop.astype(int) - ref_cmp).mean() < 12


def test_no_face_raises(tmp_path, aligner):
    grad = np.repeat(np.linspace(0, 255, 300).astype(np.uint8)[None, :, None], 200, 0).repeat(3, 2)
    Image.fromarray(grad).save(tmp_path / "gradient.png")
    with pytest.raises(NoFaceError, match="no face found in .*gradient.png"):
        aligner.face_crop(tmp_path / "gradient.png")
    assert aligner.detect(grad) == []


def test_two_faces_use_largest_with_warning(aligner, frames):
    rgb = frames[300]
    box = aligner.detect(rgb)[0]
    x0, y0, x1, y1 = box
    pad = 40
    face = rgb[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
    small = cv2.resize(face, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA)
    canvas = np.full((rgb.shape[0], rgb.shape[1] + small.shape[1] + 20, 3), 40, np.uint8)
    canvas[:, :rgb.shape[1]] = rgb
    top = (rgb.shape[0] - small.shape[0]) // 2
    canvas[top:top + small.shape[0], rgb.shape[1] + 10:rgb.shape[1] + 10 + small.shape[1]] = small
    assert len(aligner.detect(canvas)) == 2
    with pytest.warns(MultipleFacesWarning, match="2 faces"):
        _, al = aligner.face_crop(canvas)
    cx = (al.box[0] + al.box[2]) / 2
    assert cx < rgb.shape[1] and abs(cx - (x0 + x1) / 2) < 0.1 * (x1 - x0)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FaceModelError, match="shape_predictor_68_face_landmarks.dat.*" + tmp_path.name):
        FaceAligner(model_dir=tmp_path)


# ----------------------------------------------------------------------------- paste back

def test_paste_back_round_trip(aligner, frames):
    rgb = frames[0]
    al = aligner.align(rgb)
    out = paste_back(rgb, al, al.image)
    diff = np.abs(out.astype(int) - rgb).max(-1)
    face = al.photo_landmarks
    fx0, fy0 = face.min(0).astype(int)
    fx1, fy1 = face.max(0).astype(int)
    assert diff[fy0:fy1, fx0:fx1].mean() < 4           # the crop's own pixels go back where they came from
    assert (out[:, :fx0 - 60] == rgb[:, :fx0 - 60]).all()   # far from the face: untouched

    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 255
    out = paste_back(rgb, al, green)
    nx, ny = face[30].round().astype(int)              # nose tip: fully inside the mask
    assert abs(int(out[ny, nx, 1]) - 255) <= 2 and out[ny, nx, 0] <= 2
    changed = np.abs(out.astype(int) - rgb).sum(-1) > 30
    cy, cx = np.argwhere(changed).mean(0)
    width = face[:, 0].max() - face[:, 0].min()
    assert abs(cx - face[:17, 0].mean()) < 0.1 * width   # the pasted ellipse sits on the face
    assert fy0 - 0.5 * width < cy < fy1


def test_native_crop_size_keeps_the_face_scale_and_clamps():
    eyes = np.array([[100.0, 50.0], [184.0, 50.0]])          # 84 px apart: 84 / 0.28 = 300 px
    assert native_crop_size(eyes) == 300
    assert native_crop_size(eyes * [1.01, 1]) == 2 * round(84.84 / 0.28 / 2)   # 303 -> an even 302 or 304
    assert native_crop_size(eyes / 10) == 64 and native_crop_size(eyes * 3) == 512
    assert native_crop_size(eyes, 32, 128) == 128
    with pytest.raises(FaceError, match="bounds"):
        native_crop_size(eyes, 600, 512)


def test_face_crops_small_input_unchanged_and_a_native_size_crop(aligner, frames, tmp_path):
    rgb = frames[0]
    small, al = aligner.face_crops(rgb, 64)
    np.testing.assert_array_equal(small, aligner.face_crop(rgb, 64)[0])   # the generator's input as before
    d = np.linalg.norm(np.subtract(*eye_centres(al.photo_landmarks)))
    assert al.size == native_crop_size(eye_centres(al.photo_landmarks)) and abs(al.size - d / 0.28) <= 1
    np.testing.assert_allclose(al.eyes, face_targets(al.size), atol=1e-6)   # the same eye template, larger
    half, al2 = aligner.face_crops(cv2.resize(rgb, (320, 180), interpolation=cv2.INTER_AREA), 64)
    assert abs(al2.size - al.size / 2) <= 4                  # half the photo, half the face, half the crop
    m = mouth_mask(al)
    mouth = al.landmarks[48:68].round().astype(int)
    assert m[mouth[:, 1], mouth[:, 0]].all()                 # covers every mouth point ...
    eyes = al.eyes.round().astype(int)
    assert not m[eyes[:, 1], eyes[:, 0]].any() and m.mean() < 0.2   # ... and not the eyes


# ----------------------------------------------------------------------------- clips

def test_align_clip_eyes_fixed_across_frames(aligner, frames):
    clip = np.stack([frames[i] for i in (430, 440, 450, 460)])
    blank = np.full_like(clip[0], 90)
    clip = np.concatenate([clip[:2], blank[None], clip[2:]])   # frame 2 has no face
    track = aligner.track(clip)
    assert track.found.tolist() == [True, True, False, True, True]
    np.testing.assert_array_equal(track.landmarks[2], track.landmarks[1])   # nearest found frame (earlier on ties)
    out = aligner.align_clip(clip, size=256, smooth=0.0)
    assert out.shape == (5, 256, 256, 3) and out.dtype == np.uint8
    for t in (0, 1, 3, 4):
        assert np.abs(redetected_eyes(aligner, out[t]) - EYES_256).max() < 2.0
    with pytest.raises(NoFaceError, match="no face found in any of the 3 frames"):
        aligner.align_clip(np.stack([blank] * 3))
