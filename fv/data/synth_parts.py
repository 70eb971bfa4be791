"""The synthetic face's parts, drawn from AU intensities in face units (x right, y down, eye line at
y = EYE_Y) on a supersampled Canvas, with the curve primitives they are made of: the head (hair, neck,
ears, face outline with the AU26 jaw drop), the upper face (forehead lines, cheeks, eyes, brows: AU1, 2,
4, 5, 6, 7 and the lid part of AU9) and the lower face (nose, nasolabial folds, mouth: AU9, 12, 15, 16,
20, 23, 26). fv.data.synth_face frames and composes them (see its docstring for what each AU does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from fv.data.synth_face import Identity

EYE_Y = -0.10        # eye line, face units
_SHIFT = 4           # cv2 fixed-point bits: sub-pixel vertices
_N = 13              # samples per curve
Color = tuple[float, float, float]


def _mix(a, b, t: float) -> tuple[float, ...]:
    """(1-t)*a + t*b for colours."""
    return tuple(float(x) * (1 - t) + float(y) * t for x, y in zip(a, b))


_U = np.linspace(-1.0, 1.0, _N)      # curve parameter u
_V = (_U + 1) / 2                       # the same in [0, 1]
_BUMP = 1 - _U * _U                     # 1 - u^2


def _arc(x0: float, x1: float, y_end, y_mid, power: float = 1.0) -> np.ndarray:
    """[_N, 2] curve from x0 to x1: y(u) = y_end(u) + (y_mid - y_end(u)) * (1 - u^2)^power, u in [-1, 1].

    y_end may be a pair (left, right) interpolated linearly; power 1 is a parabola, 0.5 an ellipse."""
    yl, yr = (y_end, y_end) if np.isscalar(y_end) else y_end
    ye = yl + (yr - yl) * _V
    out = np.empty((_N, 2))
    out[:, 0] = x0 + (x1 - x0) * _V
    out[:, 1] = ye + (y_mid - ye) * (_BUMP if power == 1.0 else _BUMP ** power)
    return out


def _stroke(pts: np.ndarray, width) -> np.ndarray:
    """Closed polygon of a polyline [n, 2] drawn with (per-vertex) width: offsets along the normals."""
    d = np.empty_like(pts)                                     # central differences along the line
    d[1:-1] = pts[2:] - pts[:-2]
    d[0], d[-1] = pts[1] - pts[0], pts[-1] - pts[-2]
    off = d[:, ::-1] * [-0.5, 0.5] / (np.sqrt((d * d).sum(1)) + 1e-9)[:, None]   # unit normal / 2
    off *= np.reshape(width, (-1, 1))
    return np.concatenate([pts + off, (pts - off)[::-1]])


def _bezier(p0, p1, p2, n: int) -> np.ndarray:
    """[n, 2] quadratic Bezier B(t) = (1-t)^2 p0 + 2 (1-t) t p1 + t^2 p2."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t ** 2 * np.asarray(p2)


_CIRCLES: dict[int, np.ndarray] = {}


def _ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 20) -> np.ndarray:
    """[n, 2] polygon of an axis-aligned ellipse."""
    if n not in _CIRCLES:
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        _CIRCLES[n] = np.stack([np.cos(a), np.sin(a)], 1)
    return _CIRCLES[n] * [ax, ay] + [cx, cy]


class Canvas:
    """A supersampled RGB canvas with a face-units -> pixel affine map A (2x3).

    deform: optional forward motion of face-unit points at rest, [n, 2] -> [n, 2], applied before A (the
    texture drawn over a moved face follows its motion); mask: optional uint8 [canvas, canvas] that every
    fill also paints 255 (where texture covers the moved face: the occlusion mask)."""

    def __init__(self, img: np.ndarray, A: np.ndarray, deform=None, mask: np.ndarray | None = None):
        self.img, self.A, self.deform, self.mask = img, A, deform, mask

    def px(self, pts: np.ndarray) -> np.ndarray:
        if self.deform is not None:
            pts = self.deform(pts)
        p = pts @ self.A[:, :2].T + self.A[:, 2]
        return np.round(p * (1 << _SHIFT)).astype(np.int32)

    def rigid(self) -> "Canvas":
        """The same image and mask without the deformation (for shapes given at their moved positions)."""
        return Canvas(self.img, self.A, None, self.mask)

    def fill(self, pts: np.ndarray, color) -> None:
        q = self.px(pts)
        cv2.fillPoly(self.img, [q], tuple(float(c) for c in color), cv2.LINE_8, _SHIFT)
        if self.mask is not None:
            cv2.fillPoly(self.mask, [q], 255, cv2.LINE_8, _SHIFT)

    def line(self, pts: np.ndarray, color, width) -> None:
        self.fill(_stroke(pts, width), color)

    def faint(self, pts: np.ndarray, base, dark, a: float, width) -> None:
        """A wrinkle/crease: a stroke whose colour goes from `base` (a=0, invisible) to `dark` (a=1)."""
        if a > 1e-3:
            self.line(pts, _mix(base, dark, min(a, 1.0)), width)


def draw_head(cv: Canvas, idt: Identity, a: dict[str, float]) -> None:
    """Hair behind, neck, shoulders, ears, face outline (with the AU26 jaw drop), hair in front."""
    fw, chin_y, hair = idt.face_width, idt.face_length, idt.hair
    vol, style = idt.hair_volume, idt.hair_style
    jaw_drop = 0.16 * a["AU26"] + 0.02 * a["AU16"]
    # behind the head: hair silhouette (a big ellipse; long hair falls to the shoulders)
    if style == 3:  # long: falls past the jaw, rounded ends
        h = fw + 0.12 + vol
        cv.fill(np.array([[-h, -0.2], [h, -0.2], [h + 0.07, 0.55], [h + 0.02, 0.85], [h - 0.1, 0.95],
                          [-h + 0.1, 0.95], [-h - 0.02, 0.85], [-h - 0.07, 0.55]]), hair)
    if style == 6:  # curly: a bumpy silhouette
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        r = 1 + 0.05 * np.cos(9 * t)
        cv.fill(np.stack([np.cos(t) * r * (fw + 0.2 + vol), -0.25 + np.sin(t) * r * (0.65 + vol)], 1), hair)
    elif style != 7:
        cv.fill(_ellipse(0, -0.28, fw + 0.06 + vol * 0.6, 0.58 + vol, 28), hair)
    if style == 5:  # bun on top
        cv.fill(_ellipse(0, -0.86 - vol, 0.17, 0.13, 16), hair)
    # neck and shoulders
    neck = _mix(idt.skin, (0, 0, 0), 0.12)
    cv.fill(np.array([[-0.22, 0.3], [0.22, 0.3], [0.26, 1.1], [-0.26, 1.1]]) * [fw / 0.55, 1], neck)
    cv.fill(_ellipse(0, 1.32, 1.05, 0.42, 28), idt.shirt)
    cv.fill(_ellipse(0, chin_y + 0.12 + jaw_drop * 0.5, 0.2, 0.1, 14), _mix(neck, (0, 0, 0), 0.1))
    # ears
    ear = _mix(idt.skin, (0, 0, 0), 0.06)
    for s in (-1, 1):
        cv.fill(_ellipse(s * fw * 0.98, EYE_Y + 0.07, 0.065, 0.13, 14), ear)
    # face: upper half an ellipse, lower half a superellipse (jaw) narrowed at the chin
    t = np.linspace(np.pi, 2 * np.pi, 18)                      # upper half, y < 0.05
    top = np.stack([fw * np.cos(t), 0.05 + 0.85 * np.sin(t)], 1)
    n_exp = 2.0 + 2.0 * idt.jaw
    t = np.linspace(0, np.pi, 21)
    c, s = np.cos(t), np.sin(t)
    lo_y = 0.05 + (chin_y - 0.05) * np.abs(s) ** (2 / n_exp)
    v = (lo_y - 0.05) / (chin_y - 0.05)
    lo_x = fw * np.sign(c) * np.abs(c) ** (2 / n_exp) * (1 - idt.chin * v ** 2)
    lo_y = lo_y + jaw_drop * np.clip((lo_y - 0.15) / (chin_y - 0.15), 0, 1)   # mandible drops
    cv.fill(np.concatenate([top, np.stack([lo_x, lo_y], 1)]), idt.skin)
    # hair in front: cover the crown down to a hairline (style-specific)
    if style in (4, 7):
        if style == 4:
            cv.fill(np.concatenate([top[2:-2], _arc(fw * 0.85, -fw * 0.85, -0.45, -0.62)]),
                    _mix(hair, idt.skin, 0.35))
        return
    # outer edge: an ellipse round the crown from one temple (below the eye line) to the other
    ax, ay = fw + 0.03 + 0.3 * vol, 0.64 + vol
    al = np.arcsin(min(1.0, 0.12 / ay))
    t = np.linspace(np.pi - al, 2 * np.pi + al, 24)
    outer = np.stack([ax * np.cos(t), -0.2 + ay * np.sin(t)], 1)
    xs = fw * 0.9
    if style == 1:                                             # straight fringe
        line = _arc(xs, -xs, -0.30, -0.47, 3.0)
    elif style == 2:                                           # side part, sweeping down to one side
        line = _arc(xs, -xs, (-0.28, -0.40), -0.54, 0.6)
    else:                                                      # classic hairline
        line = _arc(xs, -xs, -0.30, -0.58, 0.5)
    side = np.array([[fw + 0.01, EYE_Y + 0.02], [fw - 0.05, EYE_Y - 0.04]])
    line = np.concatenate([side, line, side[::-1] * [-1, 1]])
    cv.fill(np.concatenate([outer, line]), hair)


def draw_upper_face(cv: Canvas, idt: Identity, a: dict[str, float], g: dict[str, float] | None = None,
                    texture_only: bool = False) -> None:
    """Forehead lines, cheeks, eyes, brows (AU1, 2, 4, 5, 6, 7 and the lid part of AU9).

    a: AU intensities of the texture (wrinkles, blush); g: those that move the parts (default a);
    texture_only: draw only what the AUs paint (over a face the motion field has already moved)."""
    g = a if g is None else g
    skin = idt.skin
    dark = _mix(skin, (30, 15, 10), 0.5)
    au1, au2, au4, au6, au7 = (a[k] for k in ("AU1", "AU2", "AU4", "AU6", "AU7"))
    g1, g2, g4, g5, g6, g7, g9 = (g[k] for k in ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9"))
    ex0, ew = idt.eye_sep / 2, idt.eye_size
    by = EYE_Y - 0.16                                          # brow line
    # forehead lines: raised brows fold the forehead (AU1 centre, AU2 full width)
    raise_ = max(au1, au2)
    if raise_ > 1e-3:
        half = 0.10 + 0.16 * au2 / (au1 + au2 + 1e-6)
        for i, dy in enumerate((0.13, 0.19, 0.25)):
            cv.faint(_arc(-half, half, by - dy + 0.02, by - dy - 0.015 * g1), skin, dark,
                     0.75 * raise_ - 0.15 * i, 0.012)
    # cheeks raised by AU6: a rosier, higher cheek
    if au6 > 1e-3:
        cheek = _mix(skin, idt.lips, 0.3 * au6)
        for s in (-1, 1):
            cv.fill(_ellipse(s * (ex0 + 0.03), EYE_Y + 0.24 - 0.06 * g6, 0.11, 0.065, 16), cheek)
    for s in (-1, 1):
        ex = s * ex0
        h_up = ew * idt.eye_open * (1 + 0.95 * g5) * (1 - 0.25 * g7 - 0.2 * g6 - 0.22 * g4 * (1 - g5))
        h_lo = ew * 0.32 * (1 - 0.55 * g7 - 0.5 * g6 - 0.3 * g9) + 0.002
        if not texture_only:
            _draw_eye(cv, idt, s, *_lids(idt, s, h_up, h_lo), skin, dark)
            crease_y = EYE_Y - max(ew * idt.eye_open + 0.035, h_up + 0.014)
            cv.faint(_arc(ex - ew * 0.8, ex + ew * 0.8, crease_y + 0.02, crease_y), skin, dark, 0.35, 0.008)
        # lower-lid bulge (AU6, AU7) and crow's feet (AU6)
        cv.faint(_arc(ex - ew * 0.8, ex + ew * 0.8, EYE_Y + h_lo + 0.02, EYE_Y + h_lo + 0.045),
                 skin, dark, 0.7 * au6 + 0.45 * au7, 0.01)
        for k in (-1, 0, 1):
            x0 = ex + s * (ew + 0.025)
            cv.faint(np.array([[x0, EYE_Y + 0.01 * k], [x0 + s * 0.06, EYE_Y + 0.035 * k]]),
                     skin, dark, 0.8 * au6, 0.009)
        if texture_only:
            continue
        # brow: inner, peak, outer keypoints; AU1 lifts inner, AU2 outer, AU4 lowers + pulls inward
        xi = s * (ex0 - 0.10 - 0.045 * g4)
        xo = s * (ex0 + 0.16)
        yi = by + 0.015 - 0.095 * g1 + 0.07 * g4 + 0.02 * g9
        yp = by - idt.brow_arch - 0.035 * g1 - 0.075 * g2 + 0.04 * g4 + 0.01 * g9
        yo = by + 0.025 - 0.085 * g2 + 0.015 * g4
        xp = s * (ex0 + 0.03)
        brow = _bezier((xi, yi), (xp, 2 * yp - (yi + yo) / 2), (xo, yo), 9)   # passes through the peak
        cv.line(brow, _mix(idt.hair, (35, 25, 20), 0.45), idt.brow_thick * np.linspace(1.15, 0.55, 9))
    # glabella: vertical furrows between knitted brows (AU4)
    for s in (-1, 1):
        cv.faint(np.array([[s * 0.035, by - 0.01], [s * 0.028, by + 0.07]]), skin, dark, 0.9 * au4, 0.012)


def _draw_eye(cv: Canvas, idt: Identity, s: int, up: np.ndarray, lo: np.ndarray, skin, dark) -> None:
    """One eye (s = -1 image-left, +1 image-right) between its lid curves up, lo [_N, 2]: white, iris and
    pupil clipped to the lids, lid line."""
    ex, ew = s * idt.eye_sep / 2, idt.eye_size
    cv.fill(np.concatenate([up, lo[::-1]]), (238, 236, 230))
    r_i = 0.47 * ew

    def clipped(r: float) -> np.ndarray:                       # clamp y between the lid curves at each x
        e = _ellipse(ex, EYE_Y + 0.005, r, r, 24)
        e[:, 0] = np.clip(e[:, 0], ex - ew, ex + ew)
        e[:, 1] = np.clip(e[:, 1], np.interp(e[:, 0], up[:, 0], up[:, 1]), np.interp(e[:, 0], lo[:, 0], lo[:, 1]))
        return e
    cv.fill(clipped(r_i), idt.iris)
    cv.fill(clipped(r_i * 0.45), (15, 12, 12))
    cv.line(up, (35, 25, 25), 0.016)                           # upper lid + lashes
    cv.faint(lo, skin, dark, 0.5, 0.006)


def draw_moved_eyes(cv: Canvas, idt: Identity, deform) -> None:
    """Both eyes redrawn between their lids as `deform` (rest face units -> moved) moves them: the lids
    slide over the eyeball (more or less white shows) instead of stretching the iris. cv: no deformation."""
    skin = idt.skin
    dark = _mix(skin, (30, 15, 10), 0.5)
    for s in (-1, 1):
        up, lo = _lids(idt, s, *rest_lids(idt))
        _draw_eye(cv, idt, s, deform(up), deform(lo), skin, dark)


def _lids(idt: Identity, s: int, h_up: float, h_lo: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid curves [_N, 2] of one eye (s = -1 image-left, +1 image-right)."""
    ex, ew = s * idt.eye_sep / 2, idt.eye_size
    tilt = (idt.eye_tilt * s, -idt.eye_tilt * s)               # (left, right) corner y: outer one up
    up = _arc(ex - ew, ex + ew, (EYE_Y + tilt[0], EYE_Y + tilt[1]), EYE_Y - h_up, 0.75)
    lo = _arc(ex - ew, ex + ew, (EYE_Y + tilt[0], EYE_Y + tilt[1]), EYE_Y + h_lo, 0.9)
    return up, lo


def rest_lids(idt: Identity) -> tuple[float, float]:
    """Heights (upper, lower) of the lids above / below the eye line at rest, face units."""
    return idt.eye_size * idt.eye_open, idt.eye_size * 0.32 + 0.002


def eye_landmark_centres(idt: Identity) -> np.ndarray:
    """[2, 2] eye centres (image-left first) at rest as dlib's 68-point model defines them: the mean of the
    two corners and the lid points a third of the way in from each (u = +-1/3 on the lid curves)."""
    h_up, h_lo = rest_lids(idt)
    out = []
    for s in (-1, 1):
        up, lo = _lids(idt, s, h_up, h_lo)
        k = (_N - 1) // 3                                      # index of u = -1/3 (u = -1 + 2k/(_N-1))
        out.append(np.concatenate([up[[0, k, _N - 1 - k, _N - 1]], lo[[k, _N - 1 - k]]]).mean(0))
    return np.array(out)


def mouth_rest(idt: Identity) -> tuple[float, float]:
    """(y, half-width) of the closed mouth's lip line at rest, face units."""
    return EYE_Y + idt.nose_len + 0.14, idt.mouth_width


def draw_lower_face(cv: Canvas, idt: Identity, a: dict[str, float], g: dict[str, float] | None = None,
                    texture_only: bool = False) -> None:
    """Nose (AU9), nasolabial folds and mouth (AU9 lip raise, 12, 15, 16, 20, 23, 26); a, g, texture_only
    as in draw_upper_face."""
    g = a if g is None else g
    skin = idt.skin
    dark = _mix(skin, (30, 15, 10), 0.55)
    au9, au12, au15, au16, au20, au23 = (a[k] for k in ("AU9", "AU12", "AU15", "AU16", "AU20", "AU23"))
    g9, g12, g15, g16, g20, g23, g26 = (g[k] for k in ("AU9", "AU12", "AU15", "AU16", "AU20", "AU23", "AU26"))
    ny = EYE_Y + idt.nose_len                                  # nose tip
    nw = idt.nose_width * (1 + 0.2 * g9)
    lift = 0.03 * g9                                           # AU9 pulls the wings up
    # nose: side shadow, wrinkles on the bridge (AU9), wings, nostrils
    if not texture_only:
        cv.fill(np.array([[0.02, EYE_Y + 0.02], [0.045, EYE_Y + 0.03], [nw * 0.75, ny - 0.03],
                          [nw * 0.3, ny - 0.02]]), _mix(skin, (0, 0, 0), 0.07))
    for i, dy in enumerate((0.0, 0.045, 0.09)):
        cv.faint(_arc(-0.055, 0.055, EYE_Y + dy + 0.01, EYE_Y + dy), skin, dark, 1.1 * au9 - 0.1 * i, 0.011)
    for s in (-1, 1):
        cv.faint(np.array([[s * 0.06, EYE_Y + 0.03], [s * 0.1, EYE_Y + 0.1]]), skin, dark, 0.8 * au9, 0.011)
        if not texture_only:
            cv.line(_arc(s * nw * 0.55, s * (nw + 0.015), (ny + 0.02 - lift, ny - 0.005 - lift), ny - 0.055 - lift),
                    _mix(skin, (0, 0, 0), 0.25), 0.011)
            cv.fill(_ellipse(s * nw * 0.45, ny + 0.012 - lift, 0.024, 0.012 + 0.004 * g9, 10),
                    _mix(skin, (20, 5, 5), 0.6))
    if not texture_only:
        cv.faint(_arc(-nw * 0.3, nw * 0.3, ny + 0.012 - lift, ny + 0.03 - lift), skin, dark, 0.35, 0.01)
    # mouth keypoints: corners (+-w, cy) and the centres up_c, lo_c of the inner lip lines
    y0, w = mouth_rest(idt)
    w = w * (1 + 0.18 * g12 + 0.6 * g20 - 0.12 * g23 - 0.15 * g26 * (1 - g20))
    cy = y0 - 0.095 * g12 + 0.075 * g15 + 0.03 * g20 + 0.015 * g26
    smile_sag = 0.03 * g12                                     # the middle of a smile stays low: a U
    up_c = y0 - 0.045 * g9 - 0.012 * g12 - 0.025 * g26 - 0.008 * g20 + smile_sag
    lo_c = y0 + 0.2 * g26 + 0.05 * g16 + 0.035 * g12 + 0.03 * g20 + 0.01 * g9 + smile_sag
    gap = lo_c - up_c
    rnd = max(0.35, 1.0 - 0.5 * g26 - 0.35 * g20)             # open mouth: lens -> oval/box
    thin = (1 - 0.72 * g23) * (1 - 0.3 * g20) * (1 - 0.2 * g12)
    t_lo, t_up = idt.lip_thick * thin, 0.7 * idt.lip_thick * thin
    taper = _BUMP ** 0.6
    in_up = _arc(-w, w, cy, up_c, rnd)
    in_lo = _arc(-w, w, cy, lo_c, rnd)
    out_up, out_lo = in_up.copy(), in_lo.copy()               # lips thin out towards the corners
    out_up[:, 1] -= t_up * taper
    out_lo[:, 1] += t_lo * taper
    # nasolabial folds: from the nose wings to just outside the mouth corners (AU12, AU9, AU6, AU20)
    deepen = 0.6 * au12 + 0.5 * au9 + 0.25 * a["AU6"] + 0.25 * au20
    fold = min(1.0, idt.folds + deepen)
    for s in (-1, 1):
        p0 = np.array([s * (nw + 0.02), ny - 0.035 - lift])
        p2 = np.array([s * (w + 0.035), cy + 0.035])
        if deepen > 1e-3 or not texture_only:
            cv.faint(_bezier(p0, (p0 + p2) / 2 + [s * 0.035, 0.0], p2, 8), skin, dark, fold, 0.013)
        # AU15: short downward creases at the depressed corners
        cv.faint(np.array([[s * (w + 0.01), cy + 0.01], [s * (w + 0.03), cy + 0.07]]), skin, dark,
                 0.6 * au15, 0.011)
    if texture_only and au23 <= 1e-3:
        return
    lips = _mix(idt.lips, skin, 0.4 * au23)
    cv.fill(np.concatenate([out_up, in_up[::-1]]), lips)
    cv.fill(np.concatenate([in_lo, out_lo[::-1]]), _mix(lips, (255, 255, 255), 0.1))
    seam = _mix(lips, (20, 5, 5), 0.55 + 0.2 * au23)
    cv.line((in_up + in_lo) / 2, seam, 0.012 + 0.006 * au23)
    if gap > 0.006:                                            # open mouth: cavity and teeth
        draw_mouth_inside(cv, in_up, in_lo, max(g12, g9, g20), max(g16, g20))


def draw_mouth_inside(cv: Canvas, in_up: np.ndarray, in_lo: np.ndarray, show_up: float, show_lo: float,
                      upper_rest: float = 0.02) -> None:
    """The open mouth between the inner lip lines [_N, 2]: cavity, upper teeth (upper_rest face units, more
    with show_up: AU12, 9, 20; none when both are 0), lower teeth where show_lo (AU16, 20) > 0.05."""
    cv.fill(np.concatenate([in_up, in_lo[::-1]]), (70, 22, 28))
    if upper_rest + show_up > 0:
        teeth_up = in_up.copy()
        teeth_up[:, 1] = np.minimum(in_up[:, 1] + upper_rest + 0.025 * show_up, in_lo[:, 1])
        cv.fill(np.concatenate([in_up, teeth_up[::-1]]), (238, 234, 222))
    if show_lo > 0.05:
        teeth_lo = in_lo.copy()
        teeth_lo[:, 1] = np.maximum(in_lo[:, 1] - 0.03 * show_lo, in_up[:, 1])
        cv.fill(np.concatenate([teeth_lo, in_lo[::-1]]), (225, 220, 208))
