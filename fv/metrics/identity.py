"""Face embedders for ACD-I / ACD-C (thesis 4.4.4), all offline.

    FaceEmbedder.__call__(frames uint8 [N, H, W, 3] RGB) -> float32 [N, D]

- "dlib" (default): dlib's 128-D ResNet face descriptor (dlib_face_recognition_resnet_model_v1)
  with the 5-point landmark predictor, model files from the installed face_recognition_models
  package. dlib aligns every face to a 150x150 chip from the 5 landmarks before the ResNet.
  fv frames are 64x64 aligned crops: a frame whose shorter side is below `min_size` (150 px) is first
  upsampled (bicubic) so that the HOG detector and the landmark predictor see a usable face; if
  the HOG detector still finds no face, the whole frame is taken as the face box (like the thesis'
  enforce_detection=False) and the 5 landmarks are predicted inside it. `last_detected` records
  which frames of the last call used a detected box.
- "vgg-face" (4096-D), "openface" (128-D), "arcface" (512-D): DeepFace.represent, as in the thesis,
  only where the `deepface` package and the model's weight file are already installed; fv never
  downloads weights.

This module also holds the checks shared with fv.metrics.emotion: frame validation, the DeepFace
weight-folder lookup and the dlib HOG face boxes.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np


class FrameInputError(ValueError):
    """Frames that are not uint8 [N, H, W, 3] RGB."""


class ModelUnavailableError(RuntimeError):
    """A metric network whose package or weight file is not installed."""


class UnknownModelError(ValueError):
    """A classifier or embedder name fv does not know."""


def check_frames(frames) -> np.ndarray:
    """uint8 [N, H, W, 3] (a single [H, W, 3] frame becomes N = 1) -> contiguous numpy array."""
    if hasattr(frames, "detach"):  # torch tensor
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise FrameInputError(f"frames must be uint8 [N, H, W, 3] RGB, got {frames.dtype} {frames.shape} "
                              f"(convert [-1, 1] tensors with fv.data.layout.to_uint8)")
    return np.ascontiguousarray(frames)


# ----------------------------------------------------------------------------------------------
# DeepFace (optional; the thesis' backend)
# ----------------------------------------------------------------------------------------------

DEEPFACE_WEIGHTS = {
    "emotion": "facial_expression_model_weights.h5",
    "vgg-face": "vgg_face_weights.h5",
    "openface": "openface_weights.h5",
    "arcface": "arcface_weights.h5",
}
DEEPFACE_MODEL_NAMES = {"vgg-face": "VGG-Face", "openface": "OpenFace", "arcface": "ArcFace"}
DEEPFACE_DIMS = {"vgg-face": 4096, "openface": 128, "arcface": 512}


def deepface_weights_dir() -> Path:
    """$DEEPFACE_HOME/.deepface/weights (DEEPFACE_HOME defaults to the home folder, as in DeepFace)."""
    home = os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    return Path(home) / ".deepface" / "weights"


def require_deepface(model: str):
    """Import deepface.DeepFace after checking the package and the weight file are present.

    Raises ModelUnavailableError naming what to install and where to put the file; checks the file
    before importing so that DeepFace never starts a download.
    """
    weight = deepface_weights_dir() / DEEPFACE_WEIGHTS[model]
    missing = []
    if importlib.util.find_spec("deepface") is None:
        missing.append("the `deepface` package (pip install deepface, which brings TensorFlow)")
    if not weight.is_file():
        missing.append(f"the weight file {weight.name} in {weight.parent} "
                       f"(set DEEPFACE_HOME to use another folder)")
    if missing:
        raise ModelUnavailableError(f"DeepFace {model} model unavailable: install " + " and ".join(missing)
                                    + "; fv never downloads weights")
    from deepface import DeepFace
    return DeepFace


# ----------------------------------------------------------------------------------------------
# dlib
# ----------------------------------------------------------------------------------------------

DLIB_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS5 = "shape_predictor_5_face_landmarks.dat"


def dlib_model_dir() -> Path:
    """The model folder of face_recognition_models, found without importing the package
    (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("dlib face models unavailable: pip install face-recognition-models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _dlib_file(name: str) -> str:
    path = dlib_model_dir() / name
    if not path.is_file():
        raise ModelUnavailableError(f"dlib model file {name} is missing from {path.parent}; "
                                    f"reinstall face-recognition-models")
    return str(path)


_HOG = None


def hog_detector():
    """dlib's frontal-face HOG detector (built once per process)."""
    global _HOG
    if _HOG is None:
        import dlib
        _HOG = dlib.get_frontal_face_detector()
    return _HOG


def largest_face_box(image: np.ndarray, upsample: int | None = None) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the largest HOG face in uint8 [H, W, 3], None if none.

    upsample: the detector's image doublings; default 1 for images under 400 px, else 0 (HOG finds
    faces of about 80 px and up).
    """
    if upsample is None:
        upsample = 1 if max(image.shape[:2]) < 400 else 0
    rects = hog_detector()(np.ascontiguousarray(image), upsample)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return r.left(), r.top(), r.right(), r.bottom()


def _upsample_to(image: np.ndarray, min_size: int) -> np.ndarray:
    import cv2
    h, w = image.shape[:2]
    if min(h, w) >= min_size:
        return image
    s = min_size / min(h, w)
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)


class FaceEmbedder:
    """frames uint8 [N, H, W, 3] RGB -> float32 [N, dim] identity embeddings."""
    name: str = ""
    dim: int = 0

    def __call__(self, frames) -> np.ndarray:
        raise NotImplementedError


class DlibFaceEmbedder(FaceEmbedder):
    """dlib ResNet 128-D descriptor on 5-landmark-aligned 150x150 chips (module docstring)."""
    name = "dlib"
    dim = 128

    def __init__(self, min_size: int = 150, detect: bool = True, num_jitters: int = 0, batch_size: int = 64):
        import dlib
        self._dlib = dlib
        self.landmarks = dlib.shape_predictor(_dlib_file(DLIB_LANDMARKS5))
        self.net = dlib.face_recognition_model_v1(_dlib_file(DLIB_RECOGNITION))
        self.min_size, self.detect, self.num_jitters, self.batch_size = min_size, detect, num_jitters, batch_size
        self.last_detected = np.zeros(0, dtype=bool)  # [N] of the last call: True = HOG box, False = whole frame

    def _shape(self, image: np.ndarray) -> tuple[object, bool]:
        box = largest_face_box(image) if self.detect else None
        found = box is not None
        if box is None:  # whole frame as the face box
            box = (0, 0, image.shape[1] - 1, image.shape[0] - 1)
        rect = self._dlib.rectangle(*box)
        return self.landmarks(image, rect), found

    def __call__(self, frames) -> np.ndarray:
        frames = check_frames(frames)
        out = np.zeros((len(frames), self.dim), dtype=np.float32)
        found = np.zeros(len(frames), dtype=bool)
        for s in range(0, len(frames), self.batch_size):
            images, shapes = [], []
            for i in range(s, min(s + self.batch_size, len(frames))):
                img = np.ascontiguousarray(_upsample_to(frames[i], self.min_size))
                shape, found[i] = self._shape(img)
                dets = self._dlib.full_object_detections()
                dets.append(shape)
                images.append(img)
                shapes.append(dets)
            # batched form: one list of images, one full_object_detections per image
            vecs = self.net.compute_face_descriptor(images, shapes, self.num_jitters)
            out[s:s + len(images)] = np.array([np.array(v[0]) for v in vecs], dtype=np.float32)
        self.last_detected = found
        return out


class DeepFaceEmbedder(FaceEmbedder):
    """DeepFace.represent per frame (thesis 4.4.4, eq. 4.8-4.9), detection not enforced."""

    def __init__(self, name: str = "arcface", detector_backend: str = "opencv"):
        self._deepface = require_deepface(name)
        self.name, self.dim = name, DEEPFACE_DIMS[name]
        self.model_name = DEEPFACE_MODEL_NAMES[name]
        self.detector_backend = detector_backend  # DeepFace's default, as the thesis ran it

    def __call__(self, frames) -> np.ndarray:
        frames = check_frames(frames)
        out = []
        for f in frames:
            res = self._deepface.represent(img_path=np.ascontiguousarray(f[..., ::-1]),  # DeepFace wants BGR
                                           model_name=self.model_name, enforce_detection=False,
                                           detector_backend=self.detector_backend)
            res = res[0] if isinstance(res, list) else res   # first face (the whole frame if none found)
            out.append(np.asarray(res["embedding"], dtype=np.float32))
        return np.stack(out) if out else np.zeros((0, self.dim), dtype=np.float32)


EMBEDDERS = ("dlib", "vgg-face", "openface", "arcface")


def build_face_embedder(name: str = "dlib", **kwargs) -> FaceEmbedder:
    """"dlib" (default, offline), or "vgg-face" / "openface" / "arcface" through DeepFace."""
    key = name.strip().lower().replace("_", "-")
    key = {"vggface": "vgg-face", "vgg": "vgg-face"}.get(key, key)
    if key == "dlib":
        return DlibFaceEmbedder(**kwargs)
    if key in DEEPFACE_MODEL_NAMES:
        return DeepFaceEmbedder(key, **kwargs)
    raise UnknownModelError(f"unknown face embedder {name!r}; choose one of: {', '.join(EMBEDDERS)}")


def embed_clips(embedder: FaceEmbedder, clips) -> np.ndarray:
    """uint8 [N, T, H, W, 3] -> float32 [N, T, D] (frames embedded as one flat batch)."""
    clips = np.asarray(clips)
    if clips.ndim != 5:
        raise FrameInputError(f"clips must be uint8 [N, T, H, W, 3], got shape {clips.shape}")
    n, t = clips.shape[:2]
    return embedder(clips.reshape(n * t, *clips.shape[2:])).reshape(n, t, -1)
