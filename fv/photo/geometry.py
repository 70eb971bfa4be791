"""The eye-based alignment geometry and its one template (thesis 3.4.1 and 4.2.1; STYLE practice 17: photos, MUG
and the synthetic set all sit on crop_eye_targets), and the alignment's results. Detection and landmarks (dlib)
are fv.photo.aligner's.

Landmarks follow dlib's 68-point iBUG 300-W indexing: 0-16 jaw, 17-26 brows, 27-35 nose, 36-41 the
image-left eye, 42-47 the image-right eye, 48-67 mouth.

Alignment is a similarity transform (rotation, uniform scale, translation; no shear) fixed by the
two eye centres. Writing points as complex numbers z = x + iy, the map z' = a z + b with
    a = (r' - l') / (r - l),   b = l' - a l
sends the eye centres l, r of the photo exactly onto the targets l', r' of the crop. Two layouts:
  * face-centred crop (thesis 4.2.1): eyes on the line y = 0.40 s, inter-ocular 0.28 s, s = 256;
    the 64x64 generator input is this crop resized with INTER_AREA;
  * eye-centred crop (thesis 3.4.1, FECNet): eye midpoint at the crop centre, inter-ocular 55 px, s = 224.
Pixel centres sit at integer coordinates (OpenCV's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from fv.photo.errors import FaceError, NoFaceError

FACE_EYE_Y = 0.40        # face-centred crop: eye line at 0.40 s
FACE_INTEROCULAR = 0.28  # face-centred crop: inter-ocular distance 0.28 s (72 px at 256)
LEFT_EYE = slice(36, 42)   # the eye on the image's left (the subject's right eye)
RIGHT_EYE = slice(42, 48)
EXPRESSION_POINTS = slice(17, 68)  # brows, nose, eyes, mouth (the jaw line follows pose more than expression)


@dataclass(frozen=True)
class AlignedFace:
    image: np.ndarray         # uint8 [size, size, 3] crop
    landmarks: np.ndarray     # float [68, 2] in crop pixels
    eyes: np.ndarray          # float [2, 2] (image-left, image-right) eye centres in crop pixels
    matrix: np.ndarray        # float [2, 3] photo -> crop
    inverse: np.ndarray       # float [2, 3] crop -> photo
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) detection box in the photo
    photo_landmarks: np.ndarray     # float [68, 2] in photo pixels
    n_faces: int = 1

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class ClipTrack:
    landmarks: np.ndarray  # float [T, 68, 2] photo pixels; frames without a face copy the nearest found one
    found: np.ndarray      # bool [T]
    n_faces: np.ndarray    # int [T] faces detected per frame


# ----------------------------------------------------------------------------- geometry

def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """[..., 68, 2] -> [..., 2, 2]: mean of the six points of each eye (image-left first)."""
    return np.stack([landmarks[..., LEFT_EYE, :].mean(-2), landmarks[..., RIGHT_EYE, :].mean(-2)], -2)


def face_targets(size: int = 256) -> np.ndarray:
    """Eye positions [2, 2] of the face-centred crop (thesis 4.2.1)."""
    c, half = (size - 1) / 2.0, FACE_INTEROCULAR * size / 2.0
    return np.array([[c - half, FACE_EYE_Y * size], [c + half, FACE_EYE_Y * size]])


def eye_centred_targets(size: int = 224, interocular: float = 55.0) -> np.ndarray:
    """Eye positions [2, 2] of the eye-centred crop: midpoint at the centre, given distance (thesis 3.4.1)."""
    c = (size - 1) / 2.0
    return np.array([[c - interocular / 2.0, c], [c + interocular / 2.0, c]])


def native_crop_size(eyes: np.ndarray, lo: int = 64, hi: int = 512) -> int:
    """The face-centred crop size at which a face with photo eye centres [2, 2] keeps its own scale
    (inter-ocular d px -> d / FACE_INTEROCULAR), rounded to an even size and clamped to [lo, hi]."""
    if lo > hi or lo < 8:
        raise FaceError(f"crop size bounds must satisfy 8 <= lo <= hi, got [{lo}, {hi}]")
    d = float(np.linalg.norm(np.asarray(eyes)[1] - np.asarray(eyes)[0]))
    return int(min(hi, max(lo, 2 * round(d / FACE_INTEROCULAR / 2))))


def similarity_from_eyes(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity sending src eyes [2, 2] onto dst eyes [2, 2] (a = (r'-l')/(r-l), b = l' - a l)."""
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    if abs(zs[1] - zs[0]) < 1e-6:
        raise FaceError("the two eye centres coincide; cannot align this face")
    a = (zd[1] - zd[0]) / (zs[1] - zs[0])
    b = zd[0] - a * zs[0]
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[..., 2] points through a 2x3 matrix."""
    return points @ m[:, :2].T + m[:, 2]


def resize_matrix(src_size: int, dst_size: int) -> np.ndarray:
    """2x3 map between pixel-centre coordinates of a square image resized src -> dst: x' = (x+.5)r - .5."""
    r = dst_size / src_size
    return np.array([[r, 0.0, 0.5 * r - 0.5], [0.0, r, 0.5 * r - 0.5]])


def warp_affine(img: np.ndarray, m: np.ndarray, width: int, height: int,
                border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """cv2.warpAffine (bilinear) with an INTER_AREA pre-shrink when m downscales below 0.8 (no aliasing)."""
    m = np.asarray(m, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.8:
        h, w = img.shape[:2]
        f = 1.25 * scale
        ws, hs = max(1, round(w * f)), max(1, round(h * f))
        fx, fy = ws / w, hs / h
        img = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
        # x = (xs + 0.5) / fx - 0.5 takes the small image's coordinates back to the original's
        back = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m = m @ back
    return cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=border)


def expression_distance(first: np.ndarray, last: np.ndarray) -> float:
    """RMS displacement of points 17-67 between two [68, 2] landmark sets, in inter-ocular units,
    after each set is mapped by the similarity putting its eyes at (0, 0) and (1, 0)."""
    unit = np.array([[0.0, 0.0], [1.0, 0.0]])
    pa = apply_affine(similarity_from_eyes(eye_centres(first), unit), first)[EXPRESSION_POINTS]
    pb = apply_affine(similarity_from_eyes(eye_centres(last), unit), last)[EXPRESSION_POINTS]
    return float(np.sqrt(((pa - pb) ** 2).sum(-1).mean()))


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Copy each frame without a detection from the nearest frame with one (earlier on ties)."""
    good = np.flatnonzero(found)
    if len(good) == 0:
        raise NoFaceError("no face found in any frame")
    t = np.arange(len(found))
    nearest = good[np.abs(t[:, None] - good[None, :]).argmin(1)]
    return values[nearest]


def clip_eyes(track: ClipTrack, smooth: float = 0.5) -> np.ndarray:
    """[T, 2, 2] eye centres per frame, Gaussian-smoothed over time (sigma = smooth frames; 0 = off)."""
    eyes = eye_centres(track.landmarks)
    if smooth > 0 and len(eyes) > 1:
        eyes = gaussian_filter1d(eyes, sigma=smooth, axis=0, mode="nearest")
    return eyes


def warp_clip(frames: np.ndarray, eyes: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] + eyes [T, 2, 2] -> uint8 [T, size, size, 3], each frame's eyes onto targets."""
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for t, (frame, e) in enumerate(zip(frames, eyes)):
        out[t] = warp_affine(frame, similarity_from_eyes(e, targets), size, size)
    return out


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, S, S, 3] -> uint8 [T, size, size, 3] with INTER_AREA (the 256 -> 64 step)."""
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


FACE_CROP_SIZE = 256     # fv aligns photos and MUG at this size, then resizes (FaceAligner.face_crop)


def crop_eye_targets(size: int, aligned: int = FACE_CROP_SIZE) -> np.ndarray:
    """Eye positions [2, 2] in a `size` px face crop made as fv makes them (FaceAligner.face_crop, MUG):
    aligned onto face_targets(aligned), then resized to `size` (pixel centres: x' = (x + .5) r - .5).
    The one template every face fv shows a model sits on, photos, MUG and the synthetic set alike."""
    return apply_affine(resize_matrix(aligned, size), face_targets(aligned))


# ----------------------------------------------------------------------------- the thin-plate spline

def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:      # U(r) = r^2 log r^2
    r2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    return np.where(r2 > 0, r2 * np.log(np.maximum(r2, 1e-12)), 0.0)


def tps_fit(src: np.ndarray, dst: np.ndarray, lam: float = 1.0, scale: float = 1.0):
    """The spline T with T(src_i) ~ dst_i (points [n, 2]; lam smooths in the kernel's units at `scale`, the
    coordinates divided by it for a well-conditioned system): (centres, coefficients [n + 3, 2], scale)."""
    s = np.asarray(src, np.float64) / scale
    n = len(s)
    P = np.concatenate([np.ones((n, 1)), s], 1)
    A = np.zeros((n + 3, n + 3))
    A[:n, :n] = _tps_kernel(s, s) + lam * 1e-3 * np.eye(n)
    A[:n, n:], A[n:, :n] = P, P.T
    coef = np.linalg.solve(A, np.concatenate([np.asarray(dst, np.float64) / scale, np.zeros((3, 2))]))
    return s, coef, scale


def tps_apply(spline, pts: np.ndarray) -> np.ndarray:
    """T(pts) for points [m, 2]."""
    s, coef, scale = spline
    q = np.asarray(pts, np.float64) / scale
    n = len(s)
    return (_tps_kernel(q, s) @ coef[:n] + np.concatenate([np.ones((len(q), 1)), q], 1) @ coef[n:]) * scale
