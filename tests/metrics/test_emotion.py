"""The offline FER2013 emotion classifier: parity with the package it comes from, label mapping,
batching, errors, and a real video (Pexels: sad -> crying -> fear -> happy)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from fv.engine.labels import CLASSES
from fv.metrics.emotion import (FER_TO_FV, FERConvNet, build_emotion_classifier, classify_clips,
                                fer_preprocess, load_wtf_net, wtf_package_dir)
from fv.metrics.identity import FrameInputError, ModelUnavailableError, UnknownModelError, largest_face_box

HAPPY = CLASSES.index("happiness")


def pexels_frames(path, every: int) -> np.ndarray:
    """uint8 [n, 360, 640, 3]: every `every`-th frame of the video."""
    import imageio.v3 as iio
    return np.stack([f for i, f in enumerate(iio.imiter(path, plugin="FFMPEG")) if i % every == 0])


def face_crops64(frames: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """fv-like 64x64 face crops: the dlib HOG box grown by `margin` per side, squared, resized."""
    import cv2
    out = []
    for f in frames:
        l, t, r, b = largest_face_box(f)
        half = (1 + 2 * margin) * max(r - l, b - t) / 2
        cx, cy = (l + r) / 2, (t + b) / 2
        pad = int(half) + 1
        g = np.pad(f, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        y0, x0 = int(cy - half) + pad, int(cx - half) + pad
        side = int(2 * half)
        out.append(cv2.resize(g[y0:y0 + side, x0:x0 + side], (64, 64), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def package_model_module():
    """what_the_face_classification/model.py loaded from its file (the package __init__ is empty;
    inference.py is avoided because it imports pkg_resources)."""
    spec = importlib.util.spec_from_file_location("wtf_model", wtf_package_dir() / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fer_label_order_maps_by_name():
    # FER2013 order (angry, disgust, fear, happy, sad, surprise, neutral) -> fv CLASSES names
    expected = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    assert [CLASSES[i] for i in FER_TO_FV] == expected


def test_net_matches_package_model():
    ref = package_model_module().SimpleConvolutionalNetwork(
        3, [[1, 28], [28, 56], [56, 112]], [3, 3, 3], [0, 0, 0], 304, 1792)   # inference.py's arguments
    ref.load_state_dict(torch.load(wtf_package_dir() / "active_model.pth", map_location="cpu", weights_only=True))
    ours = load_wtf_net("active")
    x = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.eval()(x), rtol=0, atol=1e-5)
    # the other checkpoint has a different FC stack (1792-305-7); it loads into the same class
    other = load_wtf_net("last_active")
    assert other.fc1.out_features == 305 and other.fc2.out_features == 7
    assert isinstance(other, FERConvNet)


@pytest.mark.parametrize("hw", [(64, 64), (90, 70), (120, 200)])
def test_preprocess_matches_package_pil_pipeline(hw):
    from PIL import Image
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(48), T.CenterCrop(48), T.Grayscale(), T.ToTensor()])   # inference.py
    rng = np.random.default_rng(1)
    # smooth random images (upsampled noise), as faces are smooth at this scale
    small = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    imgs = np.stack([np.asarray(Image.fromarray(s).resize(hw[::-1], Image.BICUBIC)) for s in small])
    ref = torch.stack([tf(Image.fromarray(i)) for i in imgs])
    ours = fer_preprocess(torch.from_numpy(imgs))
    assert ours.shape == ref.shape == (3, 1, 48, 48)
    assert (ours - ref).abs().max() <= 1.01 / 255          # at most one grey level (rounding)
    assert (ours - ref).abs().mean() < 0.5 / 255


def test_batch_equals_single_and_probs_are_distributions():
    clf = build_emotion_classifier("wtf", device="cpu")
    frames = np.random.default_rng(2).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    labels, probs = clf(frames)
    assert labels.shape == (5,) and probs.shape == (5, 7) and labels.dtype == np.int64
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (labels == probs.argmax(1)).all()
    for i in range(5):
        li, pi = clf(frames[i])
        assert li[0] == labels[i]
        np.testing.assert_allclose(pi[0], probs[i], atol=1e-5)
    clip_labels, clip_probs = classify_clips(clf, frames.reshape(1, 5, 64, 64, 3))
    assert clip_labels.shape == (1, 5) and (clip_labels[0] == labels).all()


def test_errors(tmp_path, monkeypatch):
    clf = build_emotion_classifier()
    with pytest.raises(FrameInputError):
        clf(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(FrameInputError):
        clf(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(UnknownModelError):
        build_emotion_classifier("fer-plus")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))       # an empty folder: the weight file is absent
    with pytest.raises(ModelUnavailableError, match="facial_expression_model_weights.h5") as e:
        build_emotion_classifier("deepface")
    assert str(tmp_path) in str(e.value)


def test_pexels_last_third_is_happy(pexels_video):
    """She acts sad -> crying -> fear -> happy; the last third of the video is smiling."""
    frames = pexels_frames(pexels_video, every=12)                 # 40 frames
    n = len(frames)
    first, last = slice(0, n // 3), slice(2 * n // 3, n)
    # raw video frames, dlib face crop
    clf = build_emotion_classifier(face_crop=True)
    labels, _ = clf(frames)
    assert clf.last_face_found.all()
    happy_last = float(np.mean(labels[last] == HAPPY))
    happy_first = float(np.mean(labels[first] == HAPPY))
    print(f"face-crop: happy fraction last third {happy_last:.2f}, first third {happy_first:.2f}")
    assert happy_last >= 0.8 and happy_first <= 0.5
    # fv-like 64x64 aligned crops, classified whole (no detection)
    crops = face_crops64(frames)
    labels64, _ = build_emotion_classifier()(crops)
    happy64 = float(np.mean(labels64[last] == HAPPY))
    print(f"64x64 crops: happy fraction last third {happy64:.2f}")
    assert happy64 >= 0.8 and float(np.mean(labels64[first] == HAPPY)) <= 0.5


def test_deepface_wrapper_maps_names_and_percentages(tmp_path, monkeypatch):
    """The DeepFace path with a stand-in `deepface` package (DeepFace itself is not installed here):
    checks the wrapper's BGR order, the name -> fv index mapping and the % -> probability scaling."""
    pkg = tmp_path / "site" / "deepface"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    # DeepFace.analyze returns percentages keyed by FER names; "happy" wins where blue (BGR[0]) is bright
    (pkg / "DeepFace.py").write_text(
        "def analyze(img_path, actions, enforce_detection, detector_backend, silent):\n"
        "    assert actions == ['emotion'] and enforce_detection is False\n"
        "    blue = float(img_path[..., 0].mean())\n"
        "    happy = 80.0 if blue > 127 else 10.0\n"
        "    return [{'emotion': {'angry': 5.0, 'disgust': 5.0, 'fear': 5.0, 'happy': happy,\n"
        "                         'sad': 100.0 - happy - 25.0, 'surprise': 5.0, 'neutral': 5.0}}]\n")
    weights = tmp_path / "home" / ".deepface" / "weights"
    weights.mkdir(parents=True)
    (weights / "facial_expression_model_weights.h5").write_bytes(b"")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(pkg.parent))
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[0, ..., 2] = 255                                   # RGB blue channel -> BGR index 0
    try:
        labels, probs = build_emotion_classifier("deepface")(frames)
    finally:
        for name in [m for m in sys.modules if m == "deepface" or m.startswith("deepface.")]:
            del sys.modules[name]
    assert labels.tolist() == [HAPPY, CLASSES.index("sadness")]
    np.testing.assert_allclose(probs[0, HAPPY], 0.8, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
