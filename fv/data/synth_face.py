"""Procedural face renderer for fv's synthetic data set: a face drawn from facial action units.

A face lives in *face units*: x to the right, y down, the default 64x64 framing maps [-1, 1]^2 onto
the image; the eye line sits at y = EYE_Y. Geometry is a pure function of (Identity, AU intensities);
drawing is cv2 polygons on a canvas 4x larger (2x above 128 px), reduced with INTER_AREA (anti-aliasing).
Head motion is a sub-pixel warp of that canvas; the neutral face and the jaw-at-rest head are cached.

Each AU moves only its own facial part (EMFACS, thesis 4.2 uses MUG's posed basic emotions):
  AU1 inner brow raise, AU2 outer brow raise, AU4 brow lowerer (knit + glabella lines), AU5 upper lid
  raise, AU6 cheek raise (lower lid up, crow's feet, cheek), AU7 lid tightener, AU9 nose wrinkle (+ upper
  lip raise), AU12 lip-corner pull, AU15 lip-corner depress, AU16 lower-lip depress, AU20 lip stretch,
  AU23 lip tightener, AU26 jaw drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from fv.data.synth_parts import EYE_Y, Canvas, Color, draw_head, draw_lower_face, draw_upper_face

AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9",
                        "AU12", "AU15", "AU16", "AU20", "AU23", "AU26")
INTEROCULAR = 55.0   # eye-aligned crops: inter-ocular distance in px at 224 (thesis 3.4.1)


class SynthInputError(ValueError):
    """Bad input to the synthetic renderer (AU array shape, size, pose)."""


@dataclass(frozen=True)
class Identity:
    """Every appearance parameter of one synthetic subject (face units, RGB 0-255 colours)."""
    skin: Color
    hair: Color
    hair_style: int       # 0 short, 1 fringe, 2 side part, 3 long, 4 buzz, 5 bun, 6 curly, 7 bald
    hair_volume: float    # extra hair height/width, 0..0.12
    iris: Color
    lips: Color
    background: Color
    background2: Color    # bottom of the vertical background gradient
    shirt: Color
    face_width: float     # half-width at the cheekbones (0.50..0.62)
    face_length: float    # chin y (0.70..0.82); the crown sits at -0.80
    jaw: float            # 0 round .. 1 square lower face
    chin: float           # narrowing of the chin, 0..0.35
    eye_sep: float        # distance between eye centres (0.38..0.48)
    eye_size: float       # eye half-width (0.085..0.12)
    eye_open: float       # upper-lid height / eye half-width (0.38..0.55)
    eye_tilt: float       # outer corner up (+) or down (-), face units
    brow_thick: float     # 0.02..0.045
    brow_arch: float      # 0.01..0.05
    nose_len: float       # eye line -> nose tip (0.24..0.33)
    nose_width: float     # half-width of the nostril wings (0.07..0.11)
    mouth_width: float    # half-width of the closed mouth (0.14..0.21)
    lip_thick: float      # lower-lip thickness (0.035..0.06); the upper lip is 0.7 of it
    folds: float          # neutral nasolabial fold visibility (age), 0..0.35
    offset: tuple[float, float] = (0.0, 0.0)   # head offset in the frame, face units
    scale: float = 1.0    # head scale in the frame


def _view(idt: Identity, canvas: int, eye_aligned: bool) -> np.ndarray:
    """2x3 affine face units -> canvas px, head at rest. Default: [-1,1]^2 framing scaled and offset by
    the identity. Eye-aligned: mid-eye at the centre, inter-ocular 55 px at 224 (thesis 3.4.1)."""
    if eye_aligned:
        k = INTEROCULAR * canvas / 224.0 / idt.eye_sep
        return np.array([[k, 0.0, canvas / 2], [0.0, k, canvas / 2 - k * EYE_Y]])
    k = canvas / 2 * idt.scale
    return np.array([[k, 0.0, canvas / 2 * (1 + idt.offset[0])], [0.0, k, canvas / 2 * (1 + idt.offset[1])]])


def _pose_warp(A: np.ndarray, canvas: int, pose) -> np.ndarray:
    """2x3 pixel warp of head motion (dx, dy, roll): rotate by roll about the face origin A @ (0, 0, 1),
    then shift by (dx, dy) face-frame units (canvas/2 px each): x' = R (x - c) + c + canvas/2 (dx, dy)."""
    dx, dy, rot = (float(v) for v in pose)
    c = A[:, 2]
    R = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    return np.concatenate([R, (c - R @ c + canvas / 2 * np.array([dx, dy]))[:, None]], 1)


def _au(aus: np.ndarray) -> dict[str, float]:
    return {n: float(v) for n, v in zip(AUS, aus)}


def _check_aus(aus: np.ndarray, ndim: int) -> np.ndarray:
    aus = np.asarray(aus, dtype=np.float64)
    if aus.ndim != ndim or aus.shape[-1] != len(AUS):
        want = "[K]" if ndim == 1 else "[T, K]"
        raise SynthInputError(f"aus must be {want} with K = {len(AUS)} columns {AUS}, got shape {aus.shape}")
    if not np.all(np.isfinite(aus)):
        raise SynthInputError("aus contains NaN or inf; AU intensities must be finite values in [0, 1]")
    return np.clip(aus, 0.0, 1.0)


@lru_cache(maxsize=8)
def _background(top: Color, bottom: Color, canvas: int) -> np.ndarray:
    """uint8 [canvas, canvas, 3] vertical gradient from `top` to `bottom` (read-only, cached)."""
    ramp = np.linspace(0.0, 1.0, canvas)[:, None, None]
    img = np.ascontiguousarray(np.broadcast_to(
        (np.asarray(top) * (1 - ramp) + np.asarray(bottom) * ramp).round().astype(np.uint8),
        (canvas, canvas, 3)))
    img.flags.writeable = False
    return img


_REST = dict.fromkeys(AUS, 0.0)


def _draw(identity: Identity, a: dict[str, float], canvas: int, eye_aligned: bool) -> np.ndarray:
    """The supersampled face, head at rest: uint8 [canvas, canvas, 3]."""
    A = _view(identity, canvas, eye_aligned)
    if a["AU26"] == 0.0 and a["AU16"] == 0.0:                 # no jaw drop: the head layer is shared
        cv = Canvas(_head_layer(identity, canvas, eye_aligned).copy(), A)
    else:
        cv = Canvas(_background(identity.background, identity.background2, canvas).copy(), A)
        draw_head(cv, identity, a)
    draw_upper_face(cv, identity, a)
    draw_lower_face(cv, identity, a)
    return cv.img


@lru_cache(maxsize=16)
def _head_layer(identity: Identity, canvas: int, eye_aligned: bool) -> np.ndarray:
    """Background, hair, neck, ears and face outline with the jaw at rest (read-only, cached)."""
    cv = Canvas(_background(identity.background, identity.background2, canvas).copy(),
                 _view(identity, canvas, eye_aligned))
    draw_head(cv, identity, _REST)
    cv.img.flags.writeable = False
    return cv.img


@lru_cache(maxsize=16)
def _rest_face(identity: Identity, canvas: int, eye_aligned: bool) -> np.ndarray:
    """The neutral face (all AUs 0), head at rest (read-only, cached)."""
    img = _draw(identity, _REST, canvas, eye_aligned)
    img.flags.writeable = False
    return img


def render_frame(identity: Identity, aus: np.ndarray, size: int = 64, pose=None,
                 eye_aligned: bool = False) -> np.ndarray:
    """One face as uint8 [size, size, 3] RGB for AU intensities [len(AUS)] in [0, 1].

    pose: optional (dx, dy, roll) head motion (shifts in half-image units, roll in radians), a warp of the
    supersampled canvas; eye_aligned: crop centred on the eyes with inter-ocular 55 px at 224 (the
    expression embedder's framing, thesis 3.4.1), where per-frame alignment cancels head motion."""
    if int(size) < 8:
        raise SynthInputError(f"size must be at least 8 px, got {size}")
    aus = _check_aus(aus, 1)
    ss = 4 if size <= 128 else 2                               # supersampling factor
    canvas = int(size) * ss
    if not aus.any():
        img = _rest_face(identity, canvas, eye_aligned)
    else:
        img = _draw(identity, _au(aus), canvas, eye_aligned)
    if pose is not None and np.shape(pose) != (3,):
        raise SynthInputError(f"pose must be (dx, dy, roll), got shape {np.shape(pose)}")
    if pose is not None and not eye_aligned and np.any(np.asarray(pose, dtype=np.float64) != 0):
        M = _pose_warp(_view(identity, canvas, False), canvas, pose)
        img = cv2.warpAffine(img, M, (canvas, canvas), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def render_clip(identity: Identity, aus: np.ndarray, size: int = 64, pose=None,
                eye_aligned: bool = False) -> np.ndarray:
    """Frames for an AU trajectory [T, len(AUS)] (T = 32 in fv) -> uint8 [T, size, size, 3].

    pose: optional [T, 3] per-frame head motion (see render_frame)."""
    aus = _check_aus(aus, 2)
    if pose is not None:
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (len(aus), 3):
            raise SynthInputError(f"pose must be [{len(aus)}, 3] (dx, dy, roll) per frame, got {pose.shape}")
    return np.stack([render_frame(identity, aus[t], size, None if pose is None else pose[t], eye_aligned)
                     for t in range(len(aus))])
