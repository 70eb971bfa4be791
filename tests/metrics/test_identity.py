"""dlib face embedder: model files, batching, errors, and identity separation on real faces
(the Pexels actress across her whole video vs Grace Hopper's photo from matplotlib)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fv.metrics.identity import (DLIB_LANDMARKS5, DLIB_RECOGNITION, FrameInputError, ModelUnavailableError,
                                 UnknownModelError, build_face_embedder, dlib_model_dir, embed_clips,
                                 largest_face_box)
from fv.metrics.scores import THRESHOLDS, identity_distances, recognition_rate


def pexels_frames(path, every: int) -> np.ndarray:
    import imageio.v3 as iio
    return np.stack([f for i, f in enumerate(iio.imiter(path, plugin="FFMPEG")) if i % every == 0])


def grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return np.asarray(Image.open(path).convert("RGB"))


def crop64(image: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """A 64x64 face crop around dlib's box grown by `margin` per side (fv frames are 64x64 crops)."""
    import cv2
    l, t, r, b = largest_face_box(image)
    m = int(margin * (r - l))
    h, w = image.shape[:2]
    c = image[max(0, t - m):min(h, b + m), max(0, l - m):min(w, r + m)]
    return cv2.resize(c, (64, 64), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def embedder():
    return build_face_embedder("dlib")


@pytest.fixture(scope="module")
def faces(pexels_video):
    """(her frames [15, 360, 640, 3] over the whole video, Grace Hopper [600, 512, 3])."""
    return pexels_frames(pexels_video, every=32), grace_hopper()


def test_model_files_found_without_importing_the_package():
    d = dlib_model_dir()
    assert (d / DLIB_RECOGNITION).is_file() and (d / DLIB_LANDMARKS5).is_file()


def test_batch_equals_single(embedder):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    e = embedder(frames)
    assert e.shape == (3, 128) and e.dtype == np.float32
    assert not embedder.last_detected.any()                 # noise: whole-frame box fallback
    for i in range(3):
        np.testing.assert_allclose(embedder(frames[i])[0], e[i], atol=1e-6)
    assert embed_clips(embedder, frames[None]).shape == (1, 3, 128)


def test_errors(embedder, tmp_path, monkeypatch):
    with pytest.raises(FrameInputError):
        embedder(np.zeros((1, 64, 64, 3), np.float64))
    with pytest.raises(UnknownModelError):
        build_face_embedder("facenet")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    for name, file in (("arcface", "arcface_weights.h5"), ("vgg-face", "vgg_face_weights.h5"),
                       ("openface", "openface_weights.h5")):
        with pytest.raises(ModelUnavailableError, match=file) as e:
            build_face_embedder(name)
        assert str(tmp_path) in str(e.value)


def _within_between(emb_her: np.ndarray, emb_other: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """ACD-I terms: her frame 0 vs her other frames, and Grace Hopper vs each of her frames."""
    within = identity_distances(emb_her[None, 1:], emb_her[None, 0], metric)[0]
    between = identity_distances(emb_her[None], emb_other[None, 0], metric)[0]
    return within, between


def test_same_person_far_closer_than_another_person(embedder, faces):
    her, hopper = faces
    e_her = embedder(her)
    assert embedder.last_detected.all()
    e_hop = embedder(hopper)
    assert embedder.last_detected.all()
    tau = THRESHOLDS["dlib"]["euclidean"]
    w, b = _within_between(e_her, e_hop, "euclidean")
    wc, bc = _within_between(e_her, e_hop, "cosine")
    print(f"full frames: ACD-I euclidean within {w.mean():.3f} (max {w.max():.3f}) vs other person "
          f"{b.mean():.3f} (min {b.min():.3f}); cosine {wc.mean():.3f} vs {bc.mean():.3f}; "
          f"rate@{tau} within {recognition_rate(w, tau):.2f} other {recognition_rate(b, tau):.2f}")
    assert w.mean() < tau < b.mean()
    assert b.mean() - w.mean() > 0.2 and bc.mean() > 2 * wc.mean()
    assert recognition_rate(w, tau) >= 0.7 and recognition_rate(b, tau) == 0.0


def test_64px_crops_upsampled(embedder, faces):
    """fv-sized 64x64 crops go through the upsampling path and keep the separation."""
    her, hopper = faces
    her64 = np.stack([crop64(f) for f in her])
    hop64 = crop64(hopper)[None]
    e_her, found_her = embedder(her64), embedder.last_detected.copy()
    e_hop = embedder(hop64)
    w, b = _within_between(e_her, e_hop, "euclidean")
    print(f"64x64 crops: detected {found_her.mean():.2f}; ACD-I euclidean within {w.mean():.3f} vs other "
          f"{b.mean():.3f}")
    assert w.mean() < THRESHOLDS["dlib"]["euclidean"] < b.mean() and b.mean() - w.mean() > 0.2
    # without detection: the whole 64x64 frame is the face box
    blind = build_face_embedder("dlib", detect=False)
    e_her2, e_hop2 = blind(her64), blind(hop64)
    assert not blind.last_detected.any()
    w2, b2 = _within_between(e_her2, e_hop2, "euclidean")
    print(f"64x64 crops, whole-frame box: within {w2.mean():.3f} vs other {b2.mean():.3f}")
    assert w2.mean() < b2.mean() - 0.2


def test_deepface_wrapper_passes_bgr_and_stacks(tmp_path, monkeypatch):
    """The DeepFace path with a stand-in `deepface` package (DeepFace itself is not installed here):
    the wrapper hands DeepFace BGR frames, detection not enforced, and stacks the embeddings."""
    pkg = tmp_path / "site" / "deepface"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "DeepFace.py").write_text(
        "def represent(img_path, model_name, enforce_detection, detector_backend):\n"
        "    assert model_name == 'ArcFace' and enforce_detection is False\n"
        "    return [{'embedding': [float(img_path[..., c].mean()) for c in range(3)]}]\n")
    weights = tmp_path / "home" / ".deepface" / "weights"
    weights.mkdir(parents=True)
    (weights / "arcface_weights.h5").write_bytes(b"")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(pkg.parent))
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[0, ..., 0] = 10                                    # red
    frames[1, ..., 2] = 20                                    # blue
    try:
        emb = build_face_embedder("ArcFace")(frames)
    finally:
        for name in [m for m in sys.modules if m == "deepface" or m.startswith("deepface.")]:
            del sys.modules[name]
    np.testing.assert_array_equal(emb, [[0, 0, 10], [20, 0, 0]])   # channels reversed: BGR
