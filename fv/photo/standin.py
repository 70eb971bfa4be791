"""The synthetic stand-in face: a neutral face drawn by the synthetic generator (fv.data.synth_face) in the domain a
checkpoint learned, that `fv render --mode transfer` and `--mode flow-standin` have the model animate instead of the
photo; and which generator version a checkpoint learned.

The stand-in is drawn, its eye matrix solved and its landmarks found once per (size, generator version) in a
process (a render asks for it at the model's size and at the face's); callers get copies, so the cache cannot be
written through.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy, OpenCV and the generator load on first use: `fv --help` stays quick
    import numpy as np

    from fv.data.synth_face import Identity

STANDIN = (0, 0)          # fv.data.synth.synthetic_identity(seed, index) of the stand-in face


def generator_version(version: int | None) -> int:
    """The generator version the stand-in is drawn by: `version`, or fv's default for None."""
    from fv.data.synth_face import DEFAULT_VERSION
    return DEFAULT_VERSION if version is None else int(version)


@lru_cache(maxsize=1)
def standin_identity() -> Identity:
    from fv.data.synth import synthetic_identity
    return synthetic_identity(*STANDIN)


def standin(size: int, version: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [size, size, 3] the neutral synthetic stand-in face drawn by generator `version` (default: fv's
    default), float [2, 3] its pixels -> the eye template's pixels at the same size). Its eye centres are the
    face-unit points u = (-+eye_sep / 2, EYE_Y), placed where the renderer draws them (synth_face.rest_pixels)."""
    v = generator_version(version)
    return _drawn(size, v).copy(), _matrix(size, v).copy()


def standin_matrix(size: int, version: int | None = None) -> np.ndarray:
    """float [2, 3]: the stand-in's pixels -> the eye template's pixels at `size` (standin's matrix, without
    drawing the face)."""
    return _matrix(size, generator_version(version)).copy()


def standin_landmarks(size: int, version: int | None = None) -> np.ndarray | None:
    """float [68, 2]: dlib's landmarks of the neutral stand-in in the crop layout at `size` (where its matrix
    puts it; found at 256 px or more), None where dlib finds no face."""
    marks = _landmarks(size, generator_version(version))
    return None if marks is None else marks.copy()


@lru_cache(maxsize=8)
def _drawn(size: int, version: int) -> np.ndarray:
    import numpy as np

    from fv.data.synth_face import AUS, render_frame
    return render_frame(standin_identity(), np.zeros(len(AUS)), size, version=version)


@lru_cache(maxsize=8)
def _matrix(size: int, version: int) -> np.ndarray:
    from fv.data.synth_face import rest_pixels
    from fv.data.synth_parts import EYE_Y
    from fv.photo.geometry import face_targets, similarity_from_eyes
    idt = standin_identity()
    eyes = rest_pixels(idt, [[-idt.eye_sep / 2, EYE_Y], [idt.eye_sep / 2, EYE_Y]], size, version)
    return similarity_from_eyes(eyes, face_targets(size))


@lru_cache(maxsize=8)
def _landmarks(size: int, version: int) -> np.ndarray | None:
    import cv2

    from fv.photo.aligner import FaceAligner
    from fv.photo.geometry import warp_affine
    img, m = _drawn(size, version), _matrix(size, version)
    up = max(1, -(-256 // size))
    layout = cv2.resize(warp_affine(img, m, size, size), (size * up,) * 2, interpolation=cv2.INTER_CUBIC)
    aligner = FaceAligner()
    boxes = aligner.detect(layout)
    return None if not boxes else (aligner.landmarks(layout, boxes[0]) + 0.5) / up - 0.5


# ----------------------------------------------------------------------------- what a checkpoint learned from

def standin_version(config) -> int | None:
    """The generator version of the stand-in for a checkpoint's RunConfig: the one its synthetic training faces
    were drawn by (1 for one that predates version 2); None (fv's default) for one trained on real faces."""
    from fv.engine.config import learned_synth_version
    return learned_synth_version(config) or None


def trained_on_synthetic(config) -> bool:
    """Whether a RunConfig's training data (RunConfig.data) is a synthetic set: its meta.json's name or
    source says "synthetic", or, where the folder is not on this machine, its name starts with "synth"."""
    from fv.engine.config import learned_synth_version
    return learned_synth_version(config) > 0
