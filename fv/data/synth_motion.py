"""How action units move a synthetic face (synth version 2): a forward motion field in face units, its
inverse (the ground-truth backward flow to frame 0) and the amounts, measured on a real face.

Magnitudes. Each AU at intensity 1 (FACS "E", the maximum) moves its anchor (lip corner, lid, brow, cheek,
nose wing, lip, chin) as far as a real face moves it: dlib 68 landmarks over every 2nd frame (236) of the
Pexels video (one woman: sadness, crying, fear, happiness), each frame mapped by the similarity putting its
eye centres at (0, 0) and (1, 0), i.e. in inter-ocular distances (IOD); the 1st, 50th and 99th
percentiles over the frames (benchmarks/pexels_motion.py prints them) give each landmark group's range:
    group (points)                    up (p50 - p1)  down (p99 - p50)  span (p99 - p1)
    lip corners, height (48, 54)          0.251          0.207            0.458
    mouth width (54 - 48)                 0.264 wider    0.172 narrower   0.437
    chin (8)                              0.242          0.099            0.341
    lip gap (66 - 62)                                                     0.309
    inner brows (21, 22)                  0.089          0.060            0.149
    outer brows (17, 26)                  0.129          0.072            0.201
    inner-brow distance (22 - 21)                                         0.162
    upper lids (37, 38, 43, 44)           0.026          0.070            0.096
    lower lids (40, 41, 46, 47)           0.029          0.024            0.053
    nose wings (31, 35)                                                   0.155
    upper lip (51)                                                        0.203
    lower lip (57)                        0.165          0.169            0.335
Per AU (IOD): AU12 raises the corners 0.25 and pulls each out 0.13 (half the widening); AU15 lowers them
0.21; AU20 stretches each 0.15 out and 0.15 down (set by hand: with the 0.03 down first read from the fear
frames, fear's stretched open mouth was a grin to the FER classifier), the lower lip 0.10; AU23 narrows each 0.086 (half the narrowing); AU26 drops the
chin 0.34 (its span; the lower lip goes with it: the lip gap spans 0.31); AU16 lowers the lower lip 0.17;
AU1 raises the inner brows 0.149, AU2 the outer 0.201 (their spans); AU4 lowers the inner brows 0.10 and pulls
each in 0.081 (half the distance span); AU5 raises the upper lid 0.096; AU6 and AU7 raise the lower lid 0.053
(AU6 the cheek below it 0.08, 1.5x the lid, as FACS has the cheek push the lid up; AU7 lowers the upper lid
0.03); AU9 lifts the nose wings 0.155 and the upper lip 0.14 (0.7 of its span, the rest being its fall with
the jaw) and lowers the inner brows 0.04. The video shows no anger or disgust: AU4, AU9 and AU23 are read
from the same landmarks moving in its crying and fear. The posed field moves 1.8x (POSED_GAIN) further.

Field. One step S(p) = (POSED_GAIN / 2) sum_k a_k D_k(p) moves a point p of the face at rest (face units) to
p + S(p); the posed field is two such steps, F(p) = p + D(p) with D(p) = S(p) + S(p + S(p)). A
kernel D_k is a displacement v times an anisotropic Gaussian around its anchor (mirrored for the two sides
of the face); mouth kernels act on one lip only: weight W_lo(p) = s(p) r(p) below the lip line, W_up(p) =
(1 - s(p)) r(p) above it, s a sharp step at the line and r(p) = lens(x) + (1 - lens(x)) ramp(|y - y0| / R)
so the two lips separate inside the mouth (a lens, closed at the corners) while the skin beyond the corners
stretches smoothly. The jaw (AU26) moves everything below the lip line, fading out at the sides of the face
and below the chin. The backward flow G = F^-1 undoes the steps, the last first, each by the fixed-point
iteration p = u - S(p) (S's gradient stays below 1: each step, and so F, is one-to-one, see tests); where the
lips part no p exists (what frame 0 cannot show).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from fv.data.synth_parts import EYE_Y, mouth_rest, rest_lids

if TYPE_CHECKING:
    from fv.data.synth_face import Identity

# Full-intensity displacement of each AU's anchor on a real face, IOD units (module docstring: Pexels spans,
# one spontaneous actress); the field applies it POSED_GAIN times over (see below).
MOTION_IOD: dict[str, dict[str, tuple[float, float]]] = {
    "AU1": {"inner_brow": (0.0, -0.149)},
    "AU2": {"outer_brow": (0.0, -0.201)},
    "AU4": {"inner_brow": (-0.081, 0.10)},
    "AU5": {"upper_lid": (0.0, -0.096)},
    "AU6": {"lower_lid": (0.0, -0.053), "cheek": (0.0, -0.08)},
    "AU7": {"lower_lid": (0.0, -0.053), "upper_lid": (0.0, 0.03)},
    "AU9": {"nose_wing": (0.0, -0.155), "upper_lip": (0.0, -0.14), "inner_brow": (0.0, 0.04)},
    "AU12": {"lip_corner": (0.13, -0.25), "upper_lip": (0.0, -0.03), "lower_lip": (0.0, 0.05)},
    "AU15": {"lip_corner": (0.0, 0.21)},
    "AU16": {"lower_lip": (0.0, 0.17)},
    "AU20": {"lip_corner": (0.15, 0.15), "lower_lip": (0.0, 0.10)},
    "AU23": {"lip_corner": (-0.086, 0.0)},
    "AU26": {"jaw": (0.0, 0.34)},
}
# Posed expressions (MUG's, the thesis' data) move further than spontaneous ones. The gain is fv's calibration,
# not a measurement (benchmarks/synth_gain.py, the FER classifier on the default set's test clips, apex frames):
# of 1.0 / 1.6 / 1.8 / 2.2, the best read (mean 0.27 / 0.40 / 0.42 / 0.43; version 1's drawing 0.27) among the
# gains that read no emotion less often than version 1 does (2.2 loses surprise). At 1.8 the lip corners rise
# ~0.45 IOD, the Pexels video's whole p1-p99 span (0.458).
POSED_GAIN = 1.8
# The posed field is the measured one at POSED_GAIN / _STEPS applied _STEPS times (F = F_s o F_s): a
# composition of one-to-one maps is one-to-one, where the measured field scaled in one go folds the skin
# (the mouth's kernels stack under the lower lip).
_STEPS = 2
_STEP = 0.004      # width of the lip line's step (face units): sharp, under a tenth of a pixel at 64
_RAMP = 0.35       # r(p): lip kernels reach full strength this far (face units) above / below the lip line


@dataclass(frozen=True)
class Anchor:
    """Where a kernel acts: centre (image-right side; mirrored when `mirror`), Gaussian widths (x, above,
    below), side 0 both lips / -1 upper / +1 lower."""
    centre: tuple[float, float]
    sx: float
    sy_up: float
    sy_down: float
    side: int = 0
    mirror: bool = True


@lru_cache(maxsize=64)
def anchors(idt: Identity) -> dict[str, Anchor]:
    """The face's motion anchors at rest (face units), from its own geometry."""
    ex0, ew = idt.eye_sep / 2, idt.eye_size
    h_up, h_lo = rest_lids(idt)
    by = EYE_Y - 0.16                                          # brow line (synth_parts)
    y0, w = mouth_rest(idt)
    return {
        "inner_brow": Anchor((ex0 - 0.08, by), 0.07, 0.09, 0.07),
        "outer_brow": Anchor((ex0 + 0.12, by), 0.08, 0.09, 0.06),
        "upper_lid": Anchor((ex0, EYE_Y - h_up), 0.9 * ew, 0.05, 0.035),
        "lower_lid": Anchor((ex0, EYE_Y + h_lo), ew, 0.03, 0.05),
        "cheek": Anchor((ex0 + 0.03, EYE_Y + 0.22), 0.1, 0.08, 0.08),
        "nose_wing": Anchor((idt.nose_width, EYE_Y + idt.nose_len), 0.06, 0.06, 0.05),
        "upper_lip": Anchor((0.0, y0 - 0.03), 0.8 * w, 0.06, 0.05, side=-1, mirror=False),
        "lower_lip": Anchor((0.0, y0 + 0.03), 0.7 * w, 0.05, 0.07, side=1, mirror=False),
        "lip_corner": Anchor((w, y0), 0.1, 0.1, 0.1),
    }


def _gauss(p: np.ndarray, c: tuple[float, float], k: Anchor) -> np.ndarray:
    dx, dy = p[:, 0] - c[0], p[:, 1] - c[1]
    sy = np.where(dy < 0, k.sy_up, k.sy_down)
    return np.exp(-0.5 * ((dx / k.sx) ** 2 + (dy / sy) ** 2))


def _lip_weights(idt: Identity, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W_up, W_lo) [n]: how much of an upper- / lower-lip motion a point gets (module docstring)."""
    y0, w = mouth_rest(idt)
    s = 0.5 * (1.0 + np.tanh((p[:, 1] - y0) / _STEP))
    lens = np.clip(1.0 - (p[:, 0] / w) ** 2, 0.0, 1.0) ** 1.5    # the gap: 0 with zero slope at the corners
    ramp = np.clip(np.abs(p[:, 1] - y0) / _RAMP, 0.0, 1.0)
    r = lens + (1.0 - lens) * ramp * ramp * (3 - 2 * ramp)
    return (1.0 - s) * r, s * r


def _jaw(idt: Identity, p: np.ndarray) -> np.ndarray:
    """[n] share of the chin drop: 1 on the mandible, fading beside the face and under the chin."""
    fw, chin = idt.face_width, idt.face_length
    lateral = np.clip((1.1 * fw - np.abs(p[:, 0])) / (0.5 * fw), 0.0, 1.0)
    neck = np.clip(1.0 - (p[:, 1] - chin) / 0.35, 0.0, 1.0)
    return lateral * neck


def displacement(idt: Identity, aus: dict[str, float], p: np.ndarray, side: int | None = None) -> np.ndarray:
    """Forward displacement D(p) [n, 2] (face units) of rest points p [n, 2] for AU intensities `aus`: the
    posed field, _STEPS steps of the measured one at POSED_GAIN / _STEPS each.

    side: None as the field is (lip weights from p), -1 / +1 forces p onto the upper / lower lip (the two
    edges of the lip line, where the field is discontinuous inside the mouth); it holds for every step."""
    p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
    q = p.copy()
    for _ in range(_STEPS):
        q += _step(idt, aus, q, side)
    return q - p


def _step(idt: Identity, aus: dict[str, float], p: np.ndarray, side: int | None = None) -> np.ndarray:
    """One step of the field: the measured displacement at POSED_GAIN / _STEPS (module docstring)."""
    out = np.zeros_like(p)
    active = [(au, v) for au, v in aus.items() if v > 0 and au in MOTION_IOD]
    if not active:
        return out
    iod = idt.eye_sep
    w_up, w_lo = _lip_weights(idt, p)
    if side is not None:                                       # all of the lip weight on one lip
        total = w_up + w_lo
        w_up, w_lo = (total, 0.0 * total) if side < 0 else (0.0 * total, total)
    sided = {0: 1.0, -1: w_up, 1: w_lo}
    anc = anchors(idt)
    pull: dict[str, np.ndarray] = {}                           # the AUs' vectors summed per anchor: one kernel each
    for au, a in active:
        for name, (vx, vy) in MOTION_IOD[au].items():
            pull[name] = pull.get(name, 0.0) + a * iod * POSED_GAIN / _STEPS * np.array([vx, vy])
    for name, v in pull.items():
        if name == "jaw":
            out += (w_lo * _jaw(idt, p))[:, None] * v
            continue
        k = anc[name]
        out += (_gauss(p, k.centre, k) * sided[k.side])[:, None] * v
        if k.mirror:                                           # the image-left twin: x and dx mirrored
            out += (_gauss(p, (-k.centre[0], k.centre[1]), k) * sided[k.side])[:, None] * (v * [-1, 1])
    return out


def inverse(idt: Identity, aus: dict[str, float], u: np.ndarray, iters: int = 40,
            tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Rest points p [n, 2] with p + D(p) = u for moved points u [n, 2], and bool [n] where none exists
    (the parted lips): each step undone in turn, the last first."""
    p = np.asarray(u, dtype=np.float64).reshape(-1, 2)
    miss = np.zeros(len(p), bool)
    for _ in range(_STEPS):
        p, m = _inverse_step(idt, aus, p, iters, tol)
        miss |= m
    return p, miss


def _inverse_step(idt: Identity, aus: dict[str, float], u: np.ndarray, iters: int,
                  tol: float) -> tuple[np.ndarray, np.ndarray]:
    """p with p + S(p) = u for one step S, by the iteration p <- u - S(p) (S's gradient stays below 1); bool
    [n] where it did not settle."""
    p = u.copy()
    todo = np.arange(len(u))
    for _ in range(iters):                                     # points that have settled stop
        step = u[todo] - _step(idt, aus, p[todo]) - p[todo]
        p[todo] += step
        todo = todo[np.abs(step).max(1) >= 0.01 * tol]
        if not len(todo):
            break
    miss = np.linalg.norm(p + _step(idt, aus, p) - u, axis=1) > tol
    return p, miss
