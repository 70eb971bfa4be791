"""Face detection and landmarks with dlib, offline (thesis 3.4.1 and 4.2.1): FaceAligner finds the faces of a
photo or clip, predicts their 68 landmarks and aligns them with fv.photo.geometry's eye template
(fv.photo.paste puts a crop back into the photo).

Detector: dlib's HOG frontal face detector. Landmarks: dlib's 68-point shape predictor, loaded from
face_recognition_models' model folder, $FV_DLIB_MODELS or `model_dir`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path

import cv2
import dlib
import numpy as np

from fv.photo.errors import FaceError, FaceModelError, MultipleFacesWarning, NoFaceError
from fv.photo.geometry import (AlignedFace, ClipTrack, apply_affine, clip_eyes, eye_centred_targets, eye_centres,
                               face_targets, fill_missing, invert_affine, native_crop_size, similarity_from_eyes,
                               warp_affine, warp_clip)
from fv.photo.image import as_rgb, read_image

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
_DETECT_MAX_SIDE = 640   # detection works on the photo scaled to at most this long side ...
_DETECT_MIN_SIDE = 160   # ... and at least this short side (small photos are upsampled)
_DETECT_PAD = 0.15       # constant border (fraction of the long side) so faces touching the edge are found
_LANDMARK_FACE_PX = 200  # the predictor sees the face box resampled to this width
_REFINE_ROLL_DEG = 5.0   # faces tilted more than this are predicted again, upright
# dlib's 68 points of a mirrored face: point i of the photo is point MIRROR[i] of its mirror image
MIRROR = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
                  + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
                  + [64, 63, 62, 61, 60, 67, 66, 65])
# A mouth whose points move more than this (mean, inter-ocular distances) when the photo is mirrored is covered.
# benchmarks/mouth_cover.py, every 6th frame of the Pexels video: the 51 frames with the mouth in view move
# 0.006-0.025; of the 26 with a hand over it, 19 move 0.03-0.18 (the predictor guesses a covered mouth, and guesses
# differently for its mirror image), 7 less (a hand it fits as lips, or one that leaves their outline).
MOUTH_COVERED = 0.03


def default_model_dir() -> Path | None:
    """face_recognition_models' model folder, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@functools.lru_cache(maxsize=4)
def _load_models(model_dir: str | None):
    folder = Path(model_dir) if model_dir else (
        Path(os.environ["FV_DLIB_MODELS"]) if os.environ.get("FV_DLIB_MODELS") else default_model_dir())
    path = folder / PREDICTOR_FILE if folder else None
    if path is None or not path.is_file():
        where = folder if folder else "a folder of your choice"
        raise FaceModelError(
            f"dlib landmark model {PREDICTOR_FILE} not found in {where}; `pip install face-recognition-models` "
            f"or put the file in a folder and pass model_dir (or set FV_DLIB_MODELS)")
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


class FaceAligner:
    """dlib HOG detector + 68-point predictor, loaded once; detection, landmarks and eye alignment."""

    def __init__(self, model_dir: str | Path | None = None):
        self.detector, self.predictor = _load_models(str(model_dir) if model_dir else None)

    # -- detection --------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x0, y0, x1, y1) in photo pixels, largest first; [] when none.

        The photo is scaled to a long side <= 640 (short side >= 160 for small photos); if nothing is
        found it is padded with a constant border (faces cut by the edge), then dlib's 2x upsampling
        is tried, then a larger working size for big photos."""
        rgb = as_rgb(rgb)
        h, w = rgb.shape[:2]
        s = min(1.0, _DETECT_MAX_SIDE / max(h, w))
        if min(h, w) * s < _DETECT_MIN_SIDE:
            s = _DETECT_MIN_SIDE / min(h, w)
        stages = [(s, 0, 0.0), (s, 0, _DETECT_PAD), (s, 1, _DETECT_PAD)]
        if max(h, w) > _DETECT_MAX_SIDE:
            stages.append((min(1.0, 1600 / max(h, w)), 0, _DETECT_PAD))
        for scale, upsample, pad in stages:
            boxes = self._detect_at(rgb, scale, upsample, pad)
            if boxes:
                return boxes
        return []

    def _detect_at(self, rgb: np.ndarray, s: float, upsample: int, pad_frac: float) -> list[tuple[int, int, int, int]]:
        h, w = rgb.shape[:2]
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        work = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                               interpolation=interp)
        pad = int(round(pad_frac * max(work.shape[:2])))
        if pad:
            fill = [float(v) for v in work.reshape(-1, 3).mean(0)]
            work = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        sx, sy = w / (work.shape[1] - 2 * pad), h / (work.shape[0] - 2 * pad)
        rects = self.detector(work, upsample)
        boxes = [(int(round((r.left() - pad) * sx)), int(round((r.top() - pad) * sy)),
                  int(round((r.right() - pad) * sx)), int(round((r.bottom() - pad) * sy))) for r in rects]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    # -- landmarks --------------------------------------------------------------------------
    def landmarks(self, rgb: np.ndarray, box, refine: bool = True) -> np.ndarray:
        """float [68, 2] photo pixels for a box (x0, y0, x1, y1) or dlib.rectangle.

        The predictor runs on the region around the box resampled so the box is 200 px wide, so its
        cost and accuracy do not depend on the photo's size. dlib's predictor is not rotation
        equivariant: with refine, a face whose eye line is tilted by more than 5 degrees is predicted
        again on the region rotated upright (about 2 px -> 0.5 px eye error at 256 for a 25 degree tilt)."""
        rgb = as_rgb(rgb)
        if isinstance(box, dlib.rectangle):
            box = (box.left(), box.top(), box.right(), box.bottom())
        lm = self._predict(rgb, box, 0.0)
        if refine:
            d = eye_centres(lm)[1] - eye_centres(lm)[0]
            roll = float(np.arctan2(d[1], d[0]))
            if abs(roll) > np.radians(_REFINE_ROLL_DEG):
                lm = self._predict(rgb, box, roll)
        return lm

    def mirror_disagreement(self, rgb: np.ndarray, box, landmarks: np.ndarray) -> np.ndarray:
        """float [68]: how far each point moves (inter-ocular distances) when the face is predicted again on the
        mirrored photo and mapped back. dlib gives no confidence; where it sees the feature it finds the same
        point in both, where it guesses (a hand over the mouth) the two guesses differ."""
        rgb = as_rgb(rgb)
        w = rgb.shape[1]
        x0, y0, x1, y1 = (float(v) for v in box)
        back = self.landmarks(np.ascontiguousarray(rgb[:, ::-1]), (w - 1 - x1, y0, w - 1 - x0, y1))
        back[:, 0] = w - 1 - back[:, 0]
        iod = float(np.linalg.norm(np.subtract(*eye_centres(landmarks))))
        return np.linalg.norm(back[MIRROR] - landmarks, axis=1) / max(iod, 1e-6)

    def mouth_covered(self, rgb: np.ndarray, box, landmarks: np.ndarray) -> bool:
        """Whether something covers the mouth (a hand): its points disagree with the mirror's (MOUTH_COVERED)."""
        return bool(self.mirror_disagreement(rgb, box, landmarks)[48:68].mean() > MOUTH_COVERED)

    def _predict(self, rgb: np.ndarray, box, roll: float) -> np.ndarray:
        # region q = k R(-roll) (p - c) + (r/2, r/2): the box centre c to the middle of an r x r region,
        # box width -> 200 px (k = 200 / w), the eye line turned horizontal; r = 2.2 * 200.
        x0, y0, x1, y1 = (float(v) for v in box)
        w = max(x1 - x0, 1.0)
        k, half = _LANDMARK_FACE_PX / w, 1.1 * _LANDMARK_FACE_PX
        c, cs, sn = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.cos(roll), np.sin(roll)
        rot = k * np.array([[cs, sn], [-sn, cs]])
        m = np.hstack([rot, (np.array([half, half]) - rot @ c)[:, None]])
        size = int(round(2 * half))
        region = warp_affine(rgb, m, size, size)
        hb = k * (y1 - y0) / 2   # keep the box's aspect ratio
        rect = dlib.rectangle(int(round(half - _LANDMARK_FACE_PX / 2)), int(round(half - hb)),
                              int(round(half + _LANDMARK_FACE_PX / 2)), int(round(half + hb)))
        shape = self.predictor(region, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        return apply_affine(invert_affine(m), pts)

    # -- single photos ----------------------------------------------------------------------
    def _largest(self, rgb: np.ndarray, name: str) -> tuple[tuple[int, int, int, int], np.ndarray, int]:
        boxes = self.detect(rgb)
        if not boxes:
            raise NoFaceError(f"no face found in {name}; use a photo with one clearly visible frontal face")
        if len(boxes) > 1:
            warnings.warn(f"{len(boxes)} faces found in {name}; using the largest", MultipleFacesWarning,
                          stacklevel=3)
        return boxes[0], self.landmarks(rgb, boxes[0]), len(boxes)

    def _aligned(self, rgb, targets, size, name, found=None) -> AlignedFace:
        rgb = as_rgb(rgb)
        box, lm, n = found or self._largest(rgb, name)
        m = similarity_from_eyes(eye_centres(lm), targets)
        crop = warp_affine(rgb, m, size, size)
        crop_lm = apply_affine(m, lm)
        return AlignedFace(crop, crop_lm, eye_centres(crop_lm), m, invert_affine(m), box, lm, n)

    def align(self, rgb: np.ndarray, size: int = 256, name: str = "the image") -> AlignedFace:
        """Face-centred crop (thesis 4.2.1): eyes at fixed pixels, see face_targets."""
        return self._aligned(rgb, face_targets(size), size, name)

    def align_eyes(self, rgb: np.ndarray, size: int = 224, interocular: float = 55.0,
                   name: str = "the image") -> AlignedFace:
        """Eye-centred crop (thesis 3.4.1): eye midpoint at the centre, inter-ocular distance in px."""
        return self._aligned(rgb, eye_centred_targets(size, interocular), size, name)

    def face_crop(self, image_or_path, size: int = 64) -> tuple[np.ndarray, AlignedFace]:
        """Photo (array or path) -> (uint8 [size, size, 3], the 256 AlignedFace): the input of `fv render`."""
        if isinstance(image_or_path, (str, Path)):
            rgb, name = read_image(image_or_path), str(image_or_path)
        else:
            rgb, name = image_or_path, "the image"
        aligned = self.align(rgb, 256, name=name)
        small = aligned.image if size == 256 else cv2.resize(aligned.image, (size, size),
                                                              interpolation=cv2.INTER_AREA)
        return small, aligned

    def face_crops(self, image_or_path, size: int = 64, lo: int = 64, hi: int = 512,
                   name: str | None = None) -> tuple[np.ndarray, AlignedFace]:
        """Photo -> (the generator's uint8 [size, size, 3] input exactly as face_crop makes it, the face-centred
        AlignedFace at the face's own resolution, native_crop_size in [lo, hi]), from one detection. An image
        already read is named in messages by `name` (default "the image")."""
        if isinstance(image_or_path, (str, Path)):
            rgb, name = read_image(image_or_path), str(image_or_path)
        else:
            rgb, name = as_rgb(image_or_path), name or "the image"
        found = self._largest(rgb, name)
        native = native_crop_size(eye_centres(found[1]), lo, hi)
        small = self._aligned(rgb, face_targets(256), 256, name, found).image
        if size != 256:
            small = cv2.resize(small, (size, size), interpolation=cv2.INTER_AREA)
        return small, self._aligned(rgb, face_targets(native), native, name, found)

    # -- clips ------------------------------------------------------------------------------
    def track(self, frames: np.ndarray, name: str = "the clip") -> ClipTrack:
        """Landmarks of the largest face in every frame; gaps filled from the nearest found frame."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] != 3 or len(frames) == 0:
            raise FaceError(f"expected frames uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        lms = np.zeros((len(frames), 68, 2))
        n_faces = np.zeros(len(frames), dtype=np.int64)
        for t, frame in enumerate(frames):
            boxes = self.detect(frame)
            n_faces[t] = len(boxes)
            if boxes:
                lms[t] = self.landmarks(frame, boxes[0])
        found = n_faces > 0
        if not found.any():
            raise NoFaceError(f"no face found in any of the {len(frames)} frames of {name}; "
                              f"use a clip with one clearly visible frontal face")
        return ClipTrack(fill_missing(lms, found), found, n_faces)

    def align_clip(self, frames: np.ndarray, size: int = 256, smooth: float = 0.5,
                   name: str = "the clip") -> np.ndarray:
        """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3], every frame aligned by its own eyes
        (Gaussian-smoothed over time with sigma = smooth frames) onto the face-centred targets."""
        track = self.track(frames, name)
        return warp_clip(np.asarray(frames), clip_eyes(track, smooth), face_targets(size), size)
