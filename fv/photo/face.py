"""A photo's face, read once: the generator's input crop and the same face at its own resolution (`fv render`).

The face is aligned to the eye template of the generator's input (fv.photo.geometry.face_targets) at the size
where it keeps its own scale (native_crop_size, 64..512 px); the checkpoint still generates at its own size
(64 px). The photo is decoded once: detection and both crops work on the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy, OpenCV and dlib load on first use: `fv --help` stays quick
    import numpy as np

    from fv.photo.geometry import AlignedFace


@dataclass(frozen=True)
class PhotoFace:
    crop: np.ndarray                 # uint8 [s, s, 3] the generator's input (s = the checkpoint's size)
    hires: np.ndarray                # uint8 [S, S, 3] the same face at its own resolution, S in [64, 512]
    photo: np.ndarray                # uint8 [H, W, 3]
    aligned: AlignedFace | None      # the S-pixel alignment (None: the photo was an aligned crop)
    mouth_covered: bool = False      # something covers the mouth (a hand): the modes leave the mouth as it is

    @property
    def size(self) -> int:
        return int(self.hires.shape[0])


def load_face(path: str | Path, model_size: int, aligned: bool = False, lo: int = 64, hi: int = 512) -> PhotoFace:
    """Detect and align the photo's largest face (or take an aligned crop as it is, resized to [lo, hi]). A photo
    with several faces warns (fv.photo.errors.MultipleFacesWarning) and uses the largest; one whose mouth is
    covered (a hand over it: FaceAligner.mouth_covered) warns with MouthCoveredWarning."""
    from fv.photo.aligner import FaceAligner
    from fv.photo.image import read_image
    photo = read_image(path)
    if aligned:
        size = int(min(hi, max(lo, 2 * round(min(photo.shape[:2]) / 2))))
        hires = _resize(photo, size)
        return PhotoFace(_resize(photo, model_size), hires, photo, None)
    aligner = FaceAligner()
    crop, al = aligner.face_crops(photo, model_size, lo, hi, name=str(path))
    covered = aligner.mouth_covered(photo, al.box, al.photo_landmarks)
    if covered:
        import warnings

        from fv.photo.errors import MouthCoveredWarning
        warnings.warn(f"something covers the mouth in {path} (its landmarks are a guess there); the mouth is left "
                      f"as it is", MouthCoveredWarning, stacklevel=2)
    return PhotoFace(crop, al.image, photo, al, covered)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2
    interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def face_landmarks(face: PhotoFace) -> np.ndarray | None:
    """float [68, 2] the face's landmarks in its S-pixel crop: the alignment's, or dlib's on an aligned crop
    (None where it finds no face)."""
    if face.aligned is not None:
        return face.aligned.landmarks
    from fv.photo.aligner import FaceAligner
    aligner = FaceAligner()
    boxes = aligner.detect(face.hires)
    return aligner.landmarks(face.hires, boxes[0]) if boxes else None
