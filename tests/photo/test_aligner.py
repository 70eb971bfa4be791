"""Face detection, landmarks and eye alignment (fv.photo.aligner), on frames of the real Pexels video (the
geometry's closed forms: test_geometry.py; the paste-back: test_paste.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from fv.photo.aligner import FaceAligner
from fv.photo.errors import FaceModelError, MultipleFacesWarning, NoFaceError
from fv.photo.geometry import apply_affine, eye_centres, face_targets, native_crop_size
from fv.photo.paste import mouth_mask
from tests.photo.test_geometry import EYES_224, EYES_256


def redetected_eyes(aligner: FaceAligner, img: np.ndarray) -> np.ndarray:
    """Eye centres [2, 2] found afresh on an (aligned) image: the independent check of alignment."""
    boxes = aligner.detect(img)
    assert boxes, "no face re-detected on the aligned crop"
    return eye_centres(aligner.landmarks(img, boxes[0]))


# ----------------------------------------------------------------------------- photos

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
