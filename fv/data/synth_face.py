"""Procedural face renderer for fv's synthetic data set: a face drawn from facial action units.

A face lives in *face units*: x to the right, y down, the eye line at y = EYE_Y. Geometry is a pure
function of (Identity, AU intensities); drawing is cv2 polygons on a canvas 4x larger (2x above 128 px),
reduced with INTER_AREA (anti-aliasing). Head motion is a sub-pixel warp of that canvas; the neutral face
and the jaw-at-rest head are cached.

One renderer, two generator versions (SynthStyle; the data set records its version in meta.json):
  1  framing "identity": [-1, 1]^2 onto the image, scaled and offset per identity (eye line near 0.45 of
     the frame, inter-ocular ~0.22); motion "drawn": the AUs redraw the parts (small moves, mostly texture).
  2  framing "template": the eye centres (as dlib's 68 points define them) on fv's face-crop template
     (fv.photo.geometry.crop_eye_targets, what FaceAligner.face_crop and MUG use); motion "field": the AUs
     move the neutral face by the motion field of fv.data.synth_motion (magnitudes measured on a real face),
     the AUs' texture (wrinkles, blush, the open mouth and teeth) is drawn on top, and each frame comes with
     its ground-truth backward flow to frame 0 and an occlusion mask (what the texture covers).

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

from fv.data.synth_motion import displacement, inverse
from fv.data.synth_parts import (EYE_Y, Canvas, Color, draw_head, draw_lower_face, draw_mouth_inside,
                                 draw_moved_eyes,
                                 draw_upper_face, eye_landmark_centres, mouth_rest)
from fv.photo.geometry import apply_affine, crop_eye_targets, eye_centred_targets, resize_matrix, similarity_from_eyes

AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9",
                        "AU12", "AU15", "AU16", "AU20", "AU23", "AU26")
INTEROCULAR = 55.0   # eye-aligned crops: inter-ocular distance in px at 224 (thesis 3.4.1)


class SynthInputError(ValueError):
    """Bad input to the synthetic renderer (AU array shape, size, pose, version)."""


@dataclass(frozen=True)
class SynthStyle:
    """The parameters that tell generator versions apart (module docstring)."""
    framing: str   # "identity" | "template"
    motion: str    # "drawn" | "field"


VERSIONS: dict[int, SynthStyle] = {1: SynthStyle("identity", "drawn"), 2: SynthStyle("template", "field")}
LATEST_VERSION = 2
# what fv makes unless asked, and what the shipped checkpoints learned (tests/data/test_synth_motion.py holds
# the two together); version 1 stays for checkpoints trained on it
DEFAULT_VERSION = 2


def synth_style(version: int) -> SynthStyle:
    if version not in VERSIONS:
        raise SynthInputError(f"unknown synthetic generator version {version!r}; choose one of {sorted(VERSIONS)}")
    return VERSIONS[version]


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


@dataclass(frozen=True)
class _Setup:
    """How a frame is framed and supersampled: canvas = size * ss px."""
    size: int
    ss: int
    eye_aligned: bool
    framing: str

    @property
    def canvas(self) -> int:
        return self.size * self.ss


def _setup(size: int, eye_aligned: bool, style: SynthStyle) -> _Setup:
    if int(size) < 8:
        raise SynthInputError(f"size must be at least 8 px, got {size}")
    return _Setup(int(size), 4 if size <= 128 else 2, bool(eye_aligned), style.framing)   # ss: supersampling


def _view(idt: Identity, st: _Setup) -> np.ndarray:
    """2x3 affine face units -> canvas px, head at rest. Framing "identity": [-1,1]^2 scaled and offset by
    the identity; eye-aligned: mid-eye at the centre, inter-ocular 55 px at 224 (thesis 3.4.1). Framing
    "template": the similarity sending the eye centres onto fv's crop template at the output size
    (crop_eye_targets; eye_centred_targets when eye-aligned), then onto the canvas."""
    canvas = st.canvas
    if st.framing == "template":
        dst = (eye_centred_targets(st.size, INTEROCULAR * st.size / 224.0) if st.eye_aligned
               else crop_eye_targets(st.size))
        return similarity_from_eyes(eye_landmark_centres(idt), apply_affine(resize_matrix(st.size, canvas), dst))
    if st.eye_aligned:
        k = INTEROCULAR * canvas / 224.0 / idt.eye_sep
        return np.array([[k, 0.0, canvas / 2], [0.0, k, canvas / 2 - k * EYE_Y]])
    k = canvas / 2 * idt.scale
    return np.array([[k, 0.0, canvas / 2 * (1 + idt.offset[0])], [0.0, k, canvas / 2 * (1 + idt.offset[1])]])


def rest_pixels(identity: Identity, points, size: int = 64, version: int = DEFAULT_VERSION,
                eye_aligned: bool = False) -> np.ndarray:
    """Face-unit points [N, 2] -> where render_frame draws them with the head at rest, in output pixels: the
    framing (_view) onto the supersampled canvas, then the canvas shrunk to `size` (x' = (x + 0.5) / ss - 0.5)."""
    st = _setup(size, eye_aligned, synth_style(version))
    return apply_affine(resize_matrix(st.canvas, size), apply_affine(_view(identity, st), np.asarray(points, float)))


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


def _draw(identity: Identity, a: dict[str, float], st: _Setup) -> np.ndarray:
    """The supersampled face, head at rest: uint8 [canvas, canvas, 3]."""
    A = _view(identity, st)
    if a["AU26"] == 0.0 and a["AU16"] == 0.0:                 # no jaw drop: the head layer is shared
        cv = Canvas(_head_layer(identity, st).copy(), A)
    else:
        cv = Canvas(_background(identity.background, identity.background2, st.canvas).copy(), A)
        draw_head(cv, identity, a)
    draw_upper_face(cv, identity, a)
    draw_lower_face(cv, identity, a)
    return cv.img


@lru_cache(maxsize=16)
def _head_layer(identity: Identity, st: _Setup) -> np.ndarray:
    """Background, hair, neck, ears and face outline with the jaw at rest (read-only, cached)."""
    cv = Canvas(_background(identity.background, identity.background2, st.canvas).copy(), _view(identity, st))
    draw_head(cv, identity, _REST)
    cv.img.flags.writeable = False
    return cv.img


@lru_cache(maxsize=16)
def _rest_face(identity: Identity, st: _Setup) -> np.ndarray:
    """The neutral face (all AUs 0), head at rest (read-only, cached)."""
    img = _draw(identity, _REST, st)
    img.flags.writeable = False
    return img


def _check_pose(pose) -> np.ndarray | None:
    if pose is not None and np.shape(pose) != (3,):
        raise SynthInputError(f"pose must be (dx, dy, roll), got shape {np.shape(pose)}")
    return None if pose is None or not np.any(np.asarray(pose, dtype=np.float64) != 0) else pose


def _drawn(identity: Identity, aus: np.ndarray, st: _Setup, pose) -> np.ndarray:
    """Motion "drawn" (version 1): the AUs redraw the parts; head motion warps the canvas."""
    img = _draw(identity, _au(aus), st) if aus.any() else _rest_face(identity, st)
    if pose is not None and not st.eye_aligned:
        M = _pose_warp(_view(identity, st), st.canvas, pose)
        img = cv2.warpAffine(img, M, (st.canvas, st.canvas), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(img, (st.size, st.size), interpolation=cv2.INTER_AREA)


def _field(identity: Identity, aus: np.ndarray, st: _Setup, pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Motion "field" (version 2) -> (frame uint8 [S, S, 3], backward flow float32 [S, S, 2], occlusion uint8 [S, S]).

    Flow: frame t's pixel (x, y) was at (x + f_x, y + f_y) in frame 0 (pixel centres at integers), i.e. the
    inverse of  pose o A o F o A^-1  at the output's pixel centres, A the view, F the AU motion field.
    The frame is the neutral canvas remapped through that flow (resized to the canvas), with the AUs'
    texture drawn over it at the moved positions; occlusion is 1 where the texture covers it or where
    the lips part (no rest point moves there)."""
    a = _au(aus)
    S, ss, canvas = st.size, st.ss, st.canvas
    rest = _rest_face(identity, st)
    if not aus.any() and pose is None:
        return (cv2.resize(rest, (S, S), interpolation=cv2.INTER_AREA), np.zeros((S, S, 2), np.float32),
                np.zeros((S, S), np.uint8))
    A = _view(identity, st)
    M = np.vstack([_pose_warp(A, canvas, pose) if pose is not None and not st.eye_aligned else np.eye(3)[:2],
                   [0, 0, 1]]) @ np.vstack([A, [0, 0, 1]])      # face units -> moved canvas px
    g = min(S, 64)                                            # the flow is solved on a grid of g px, resized
    flow, miss = _backward_flow(identity, a, st, A, M, g)
    # the canvas map: frame-0 canvas px of each canvas px, from the flow at size S
    cx = np.arange(canvas, dtype=np.float32)
    fc = cv2.resize(flow, (canvas, canvas), interpolation=cv2.INTER_LINEAR) * ss
    img = cv2.remap(rest, cx[None, :] + fc[..., 0], cx[:, None] + fc[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((canvas, canvas), np.uint8)
    def deform(pts: np.ndarray) -> np.ndarray:
        return pts + displacement(identity, a, pts)
    cv = Canvas(img, M[:2], deform, mask)
    if max(a["AU5"], a["AU6"], a["AU7"]) > 1e-3:               # the lids slide over the eyeball
        draw_moved_eyes(cv.rigid(), identity, deform)
    draw_upper_face(cv, identity, a, _REST, texture_only=True)
    draw_lower_face(cv, identity, a, _REST, texture_only=True)
    y0, w = mouth_rest(identity)
    line = np.stack([np.linspace(-w, w, 13), np.full(13, y0)], 1)
    up, lo = (line + displacement(identity, a, line, side) for side in (-1, 1))
    if (lo[:, 1] - up[:, 1]).max() > 0.006:                  # parted lips: cavity and teeth
        draw_mouth_inside(cv.rigid(), up, lo, max(a["AU12"], a["AU9"]), max(a["AU16"], a["AU20"]),
                          upper_rest=0.02 * max(a["AU12"], a["AU9"], a["AU26"]) ** 0.5)
    occ = cv2.resize(mask, (S, S), interpolation=cv2.INTER_AREA) > 0
    miss = cv2.resize(miss.reshape(g, g).astype(np.uint8), (S, S), interpolation=cv2.INTER_NEAREST) > 0
    return cv2.resize(img, (S, S), interpolation=cv2.INTER_AREA), flow, (occ | miss).astype(np.uint8)


def _backward_flow(identity: Identity, a: dict[str, float], st: _Setup, A: np.ndarray, M: np.ndarray,
                   g: int) -> tuple[np.ndarray, np.ndarray]:
    """(backward flow float32 [S, S, 2] at the output size S, bool [g * g] where the lips part): solved on a
    grid of g px and resized; A the view (face units -> canvas px), M the moved one (3x3)."""
    S, canvas = st.size, st.canvas
    to_canvas = np.vstack([resize_matrix(S, canvas), [0, 0, 1]])
    xs = np.arange(g, dtype=np.float64)
    q = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    q_canvas = apply_affine(resize_matrix(g, canvas), q)
    u = apply_affine(np.linalg.inv(M)[:2], q_canvas)           # moved face units
    p, miss = inverse(identity, a, u)
    back = apply_affine(np.linalg.inv(to_canvas)[:2], apply_affine(A, p))   # frame-0 px at size S
    flow = (back - apply_affine(resize_matrix(g, S), q)).reshape(g, g, 2).astype(np.float32)
    if g != S:
        flow = cv2.resize(flow, (S, S), interpolation=cv2.INTER_LINEAR)
    return flow, miss


def motion_field(identity: Identity, aus: np.ndarray, size: int, grid: int = 128,
                 version: int = DEFAULT_VERSION) -> tuple[np.ndarray, np.ndarray]:
    """The motion alone, no drawing, for a head at rest (version 2): (backward flow float32 [size, size, 2] to
    frame 0, float32 [size, size] in [0, 1] where the lips part: what frame 0 cannot show), the flow solved on a
    grid of min(size, grid) px (finer than the data's 64 keeps the lip line sharp at a photo's size)."""
    style = synth_style(version)
    if style.motion == "drawn":
        raise SynthInputError(f"generator version {version} draws its motion: it has no motion field")
    st = _setup(size, False, style)
    a = _au(_check_aus(aus, 1))
    A = _view(identity, st)
    g = min(int(size), int(grid))
    flow, miss = _backward_flow(identity, a, st, A, np.vstack([A, [0, 0, 1]]), g)
    miss = miss.reshape(g, g).astype(np.float32)
    if g != size:
        miss = cv2.resize(miss, (size, size), interpolation=cv2.INTER_LINEAR)
    return flow, miss


def render_frame(identity: Identity, aus: np.ndarray, size: int = 64, pose=None,
                 eye_aligned: bool = False, version: int = DEFAULT_VERSION) -> np.ndarray:
    """One face as uint8 [size, size, 3] RGB for AU intensities [len(AUS)] in [0, 1].

    pose: optional (dx, dy, roll) head motion (shifts in half-image units, roll in radians), a warp of the
    supersampled canvas; eye_aligned: crop centred on the eyes with inter-ocular 55 px at 224 (the
    expression embedder's framing, thesis 3.4.1), where per-frame alignment cancels head motion;
    version: the generator version (module docstring)."""
    return render_frame_motion(identity, aus, size, pose, eye_aligned, version)[0]


def render_frame_motion(identity: Identity, aus: np.ndarray, size: int = 64, pose=None, eye_aligned: bool = False,
                        version: int = DEFAULT_VERSION) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(frame, backward flow float32 [size, size, 2] to frame 0, occlusion uint8 [size, size]); flow and
    occlusion are None for motion "drawn" (version 1), which has no ground-truth motion."""
    style = synth_style(version)
    st = _setup(size, eye_aligned, style)
    aus, pose = _check_aus(aus, 1), _check_pose(pose)
    if style.motion == "drawn":
        return _drawn(identity, aus, st, pose), None, None
    return _field(identity, aus, st, pose)


def render_clip(identity: Identity, aus: np.ndarray, size: int = 64, pose=None, eye_aligned: bool = False,
                version: int = DEFAULT_VERSION) -> np.ndarray:
    """Frames for an AU trajectory [T, len(AUS)] (T = 32 in fv) -> uint8 [T, size, size, 3].

    pose: optional [T, 3] per-frame head motion (see render_frame)."""
    return render_clip_motion(identity, aus, size, pose, eye_aligned, version)[0]


def render_clip_motion(identity: Identity, aus: np.ndarray, size: int = 64, pose=None, eye_aligned: bool = False,
                       version: int = DEFAULT_VERSION) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(frames uint8 [T, S, S, 3], flows float32 [T, S, S, 2] | None, occlusion uint8 [T, S, S] | None)."""
    aus = _check_aus(aus, 2)
    if pose is not None:
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (len(aus), 3):
            raise SynthInputError(f"pose must be [{len(aus)}, 3] (dx, dy, roll) per frame, got {pose.shape}")
    out = [render_frame_motion(identity, aus[t], size, None if pose is None else pose[t], eye_aligned, version)
           for t in range(len(aus))]
    frames = np.stack([o[0] for o in out])
    if out[0][1] is None:
        return frames, None, None
    return frames, np.stack([o[1] for o in out]), np.stack([o[2] for o in out])
