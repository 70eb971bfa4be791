"""Pasting a face crop (or a face video) back into its photo, and the masks of an aligned face
(fv.photo.aligner's AlignedFace): the feathered face ellipse the paste blends with, and where an opening mouth may
show what the photo has not (from the landmarks, or the template's for a crop without them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from fv.photo.errors import FaceError
from fv.photo.geometry import AlignedFace, resize_matrix, warp_affine
from fv.photo.image import as_rgb

if TYPE_CHECKING:
    from fv.photo.face import PhotoFace


def face_mask(aligned: AlignedFace, feather: float = 0.06) -> np.ndarray:
    """float32 [size, size] in [0, 1]: a feathered ellipse over the face in crop pixels.

    The ellipse spans the jaw line horizontally and from above the brows (0.6 inter-ocular
    distances, the forehead) to the chin; its edge is a Gaussian blur of sigma feather * size."""
    s, lm = aligned.size, aligned.landmarks
    iod = float(np.linalg.norm(aligned.eyes[1] - aligned.eyes[0]))
    x0, x1 = lm[0:17, 0].min(), lm[0:17, 0].max()
    y0, y1 = lm[17:27, 1].min() - 0.6 * iod, lm[0:17, 1].max()
    sigma = feather * s
    # shrink by one sigma so the blurred edge stays inside the ellipse drawn from the landmarks
    axes = (max(1, int(round((x1 - x0) / 2 - sigma))), max(1, int(round((y1 - y0) / 2 - sigma))))
    mask = np.zeros((s, s), dtype=np.float32)
    cv2.ellipse(mask, (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))), axes, 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma)


def mouth_mask(aligned: AlignedFace, grow: float = 0.25, drop: float = 0.45) -> np.ndarray:
    """float32 [size, size] in {0, 1}: where an opening mouth may show what the photo has not (crop
    pixels): the hull of the mouth points 48-67 grown by grow inter-ocular distances, and stretched down
    by drop of them (the jaw drops)."""
    s, iod = aligned.size, float(np.linalg.norm(aligned.eyes[1] - aligned.eyes[0]))
    mouth = aligned.landmarks[48:68]
    pts = np.concatenate([mouth, mouth + [0.0, drop * iod]])
    mask = np.zeros((s, s), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(pts.astype(np.float32))[:, 0]).astype(np.int32), 1)
    r = max(1, int(round(grow * iod)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(np.float32)


def paste_back(photo: np.ndarray, aligned: AlignedFace, crop: np.ndarray) -> np.ndarray:
    """Warp a (generated) crop uint8 [s, s, 3] of the aligned face back into the photo uint8 [H, W, 3]
    through aligned.inverse, blended with the feathered face mask: out = photo (1 - m) + crop' m."""
    photo, crop = as_rgb(photo), as_rgb(crop)
    if crop.shape[0] != crop.shape[1]:
        raise FaceError(f"the crop must be square, got {crop.shape}")
    h, w = photo.shape[:2]
    to_photo = aligned.inverse @ np.vstack([resize_matrix(crop.shape[0], aligned.size), [0, 0, 1]])
    face = warp_affine(crop, to_photo, w, h).astype(np.float32)
    mask = cv2.warpAffine(face_mask(aligned), aligned.inverse, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    out = photo.astype(np.float32) * (1.0 - mask) + face * mask
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def pasted(face: PhotoFace, video: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3]: each frame of the S-pixel face video pasted back into the photo at its own size."""
    return np.stack([paste_back(face.photo, face.aligned, frame) for frame in video])


def template_mouth(size: int) -> np.ndarray:
    """float32 [size, size]: the mouth region of the face-centred template (for crops without landmarks)."""
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (round(0.5 * size), round(0.74 * size)), (round(0.19 * size), round(0.14 * size)),
                0, 0, 360, 1.0, -1)
    return mask
