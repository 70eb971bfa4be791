"""Action units moving a real face: the ICT Face Model's scanned expressions, fitted to a photo's landmarks.

fv/assets/face_motion_ict.npz (scripts/make_face_motion.py; ICT Face Model Light, MIT licence) holds a generic
neutral head in cm (x right, y up, z toward the viewer) with the 3-D displacement of every vertex for each of
fv's action units at intensity 1: the posed extremes of light-stage scans of real people, not the synthetic
set's cartoon amounts. A photo's face crop (S px) is moved in four steps:

  * Fit. With m(v) = (v_x, -v_y) the frontal view, s the similarity putting the model's eye centres on the
    photo's (dlib's 68 points: the model's landmark vertices are the same points), and T the thin-plate spline
    (Bookstein 1989, smoothing lam) through T(s(m(L_i))) = P_i for the photo's landmarks P (brows, nose, eyes,
    outer lips: points 17-59), every vertex v sits at p0(v) = T(s(m(v))) in the photo.
  * Move. At AU intensities a [K], v moves by d(v) = gain sum_k a_k D_k(v) (3-D), to
    p(v) = p0(v) + J(v) m(d(v)) with J = d(T o s) / dm at v (the spline's local linear map), depth v_z + d_z.
  * Render. The moved mesh is rasterized with a z-buffer on a grid of G = min(S, grid) px (fv.photo.raster):
    a pixel that shows skin (or an eye hole, closed by a fan so a widened eye shows the photo's own eye
    stretched) takes the photo's pixel at p0 of the same surface point, barycentric in the moved triangle; the
    backward map is bilinear on the grid and resized to S. A pixel that shows the mouth's inside (socket, gums
    and tongue, teeth; or no surface within the mouth's rim) is painted instead: colours taken from the photo
    (teeth from the whites of its eyes, or its own teeth when its mouth is open; tongue and socket from its
    lips), Lambert-shaded by the rest normals' z and darkened with depth behind the lips (a cavity with depth,
    darkest at the back). Interior coverage thinner than `sliver` grid px is ignored (the closed lips' seam).
  * The photo's own expression. A portrait often smiles; read as the start of every video, its smile would
    stay under any other emotion. The mouth's action units the photo already shows (OWN_AUS) are fitted to its
    mouth points (48-67) by non-negative least squares, ridge `own_ridge`, after the eye similarity s:
    own = argmin_{w >= 0} |s(m(L + sum_k w_k D_k)) - P|^2 + own_ridge |w|^2 in inter-ocular units (neutral
    mouths fit about 0-0.3, the smiling portraits 0.8-1.0 of AU12). The fit above is then made to the model at
    `own` (its mouth open where the photo's is, points 17-67), and frame t moves by gain a(t) - relax r(t) own,
    r(t) in [0, 1] the expression's progress (its AU sum over the video's largest): at the apex the photo's
    own expression is undone by the share `relax`, at frame 0 nothing moves. Only a smile is undone (OWN_SMILE):
    a neutral mouth's fit is the person's own shape. A video that smiles itself keeps as much of the photo's
    smile as it wants (r scaled by 1 - min(1, its peak AU12 gain / own AU12)): a happy video of a laughing
    photo laughs on, a sad one first lets the smile go. What the photo shows of its own
    mouth's inside (the triangles seen at the fit) keeps the photo's pixels; only what opens beyond it is painted.
  * Zero AUs give the crop back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fv.engine.assets import SHIPPED as _CHECKPOINTS
from fv.engine.assets import read_asset
from fv.photo.errors import FaceError
from fv.photo.geometry import apply_affine, eye_centres, similarity_from_eyes, tps_apply, tps_fit
from fv.photo.raster import rasterize

SHIPPED = _CHECKPOINTS.parent / "face_motion_ict.npz"
RETARGET = np.r_[17:60]          # brows, nose, eyes, outer lips (an open mouth's inner lips would pull the seam)
RETARGET_OWN = np.r_[17:68]      # ... and the inner lips, where the model's mouth is fitted open as the photo's is
OWN_AUS = ("AU12", "AU15", "AU16", "AU20", "AU23", "AU26")   # the mouth's: what its points tell apart
# The own expression is undone only where the photo smiles (its fitted AU12 at least this): a neutral mouth's fit
# (0-0.3 on the portraits and Pexels frames) is the person's own mouth shape, not an expression to undo
# (undoing it read worse: benchmarks/photo_ceiling.py, happiness and surprise on Biden and Pexels frame 0).
OWN_SMILE = 0.4
SKIN, EYE_FILL, SOCKET, GUMS, TEETH = range(5)


class FaceMotionError(FaceError):
    """A face motion model that is missing or damaged, or bad input to it."""


@dataclass(frozen=True)
class FaceModel:
    rest: np.ndarray        # float32 [N, 3] cm
    delta: np.ndarray       # float32 [K, N, 3] cm at AU intensity 1
    tris: np.ndarray        # int32 [M, 3]
    part: np.ndarray        # uint8 [M]
    landmarks: np.ndarray   # int32 [68] vertex of each dlib point
    mouth_loop: np.ndarray  # int32 [L] the skin's rim into the mouth
    aus: tuple[str, ...]
    normal_z: np.ndarray    # float32 [N] rest vertex normals' z (toward the viewer)


@lru_cache(maxsize=2)
def load_model(path: str | Path = SHIPPED) -> FaceModel:
    def arrays(p: Path) -> dict[str, np.ndarray]:
        with np.load(p) as f:
            return {k: f[k] for k in ("rest", "delta", "tris", "part", "landmarks", "mouth_loop", "aus")}
    a = read_asset(path, arrays, FaceMotionError, "face motion model",
                   f"python scripts/make_face_motion.py <ICT-FaceKit>/FaceXModel {path}")
    rest, tris = a["rest"].astype(np.float32), a["tris"].astype(np.int64)
    n = np.zeros_like(rest)
    u, v, w = rest[tris[:, 0]], rest[tris[:, 1]], rest[tris[:, 2]]
    fn = np.cross(v - u, w - u)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
    return FaceModel(rest, a["delta"].astype(np.float32), tris, a["part"], a["landmarks"].astype(np.int64),
                     a["mouth_loop"].astype(np.int64), tuple(str(x) for x in a["aus"]), nz.astype(np.float32))


# ----------------------------------------------------------------------------- one photo's rig

@dataclass(frozen=True)
class MotionOptions:
    gain: float = 1.0       # AU intensities times this (1: the scans' posed amounts)
    grid: int = 256         # the mesh is rasterized on at most this many px, the map resized to the crop
    lam: float = 1.0        # thin-plate smoothing
    sliver: float = 1.0     # interior coverage up to this many grid px deep is ignored; full from 2x it
    relax: float = 1.0      # the share of the photo's own expression (OWN_AUS) undone at the apex (0: kept)
    own_ridge: float = 0.02  # the own-expression fit's ridge (inter-ocular units squared per unit AU)


def _colour(crop: np.ndarray, polys: list[np.ndarray], keep: float, bright: bool) -> np.ndarray | None:
    """The median colour [3] of the `keep` brightest (or all, bright False) pixels inside the polygons."""
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polys], 1)
    px = crop[mask > 0].astype(np.float32)
    if len(px) < 4:
        return None
    if bright:
        y = px @ np.array([0.299, 0.587, 0.114], np.float32)
        px = px[y >= np.quantile(y, 1 - keep)]
    return np.median(px, 0)


def interior_colours(crop: np.ndarray, marks: np.ndarray) -> dict[int, np.ndarray]:
    """float32 [3] colours of the mouth's inside taken from the photo (module docstring)."""
    lips = _colour(crop, [marks[48:60]], 1.0, False)
    inner = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(marks[60:68]).astype(np.int32)], 1)
    own = inner.sum() > 0.002 * inner.size                        # its own mouth is open: its own teeth
    teeth = _colour(crop, [marks[60:68]], 0.3, True) if own else None
    if teeth is None:
        teeth = _colour(crop, [marks[36:42], marks[42:48]], 0.25, True)   # the whites of its eyes
    lips = np.array([150, 80, 80], np.float32) if lips is None else lips
    teeth = np.array([225, 220, 205], np.float32) if teeth is None else teeth
    teeth = np.maximum(teeth, 0.75 * teeth.max())                 # a tooth is pale: no strong hue
    return {TEETH: teeth * 0.92, GUMS: lips * 0.8, SOCKET: lips * 0.22}


def own_expression(marks: np.ndarray, model: FaceModel, ridge: float = 0.02) -> np.ndarray:
    """float32 [K]: the photo's own mouth expression, OWN_AUS fitted to its points 48-67 (module docstring); zeros
    unless it smiles (OWN_SMILE)."""
    from scipy.optimize import nnls
    marks = np.asarray(marks, np.float64)
    flip = np.array([1.0, -1.0])
    lm = model.rest[model.landmarks, :2].astype(np.float64) * flip
    photo_eyes = eye_centres(marks)
    sim = similarity_from_eyes(eye_centres(lm), photo_eyes)
    iod = float(np.linalg.norm(photo_eyes[1] - photo_eyes[0]))
    k = [model.aus.index(a) for a in OWN_AUS]
    mouth = model.landmarks[48:68]
    b = ((marks[48:68] - apply_affine(sim, lm[48:68])) / iod).ravel()
    A = np.stack([((model.delta[j, mouth, :2] * flip) @ sim[:, :2].T / iod).ravel() for j in k], 1)
    w, _ = nnls(np.concatenate([A, np.sqrt(ridge) * np.eye(len(k))]), np.concatenate([b, np.zeros(len(k))]))
    own = np.zeros(len(model.aus), np.float32)
    if w[OWN_AUS.index("AU12")] >= OWN_SMILE:
        own[k] = w
    return own


class FaceRig:
    """The face model fitted to one photo crop (module docstring): frame(aus) moves the crop."""

    def __init__(self, crop: np.ndarray, marks: np.ndarray, model: FaceModel | None = None,
                 opts: MotionOptions = MotionOptions()):
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] != 3:
            raise FaceMotionError(f"the crop must be uint8 [S, S, 3], got {crop.dtype} {crop.shape}")
        marks = np.asarray(marks, np.float64)
        if marks.shape != (68, 2) or not np.all(np.isfinite(marks)):
            raise FaceMotionError(f"the landmarks must be 68 finite (x, y) points, got {marks.shape}")
        self.model = model or load_model()
        self.crop, self.opts = crop, opts
        S = crop.shape[0]
        self.size, self.G = S, min(S, int(opts.grid))
        r = self.G / S
        photo = (marks + 0.5) * r - 0.5                                # landmarks in grid px
        mdl = self.model
        self.own = own_expression(marks, mdl, opts.own_ridge) if opts.relax > 0 else np.zeros(len(mdl.aus), np.float32)
        fitted = self.own.any()
        at = mdl.rest + np.tensordot(self.own, mdl.delta, 1)                 # the model at the photo's expression
        m = at[:, :2] * np.array([1.0, -1.0], np.float32)                    # frontal view
        lm = m[mdl.landmarks]
        sim = similarity_from_eyes(eye_centres(lm), eye_centres(photo))
        fit = RETARGET_OWN if fitted else RETARGET
        spline = tps_fit(apply_affine(sim, lm[fit]), photo[fit], opts.lam, scale=self.G)
        self.p0 = tps_apply(spline, apply_affine(sim, m)).astype(np.float32)            # [N, 2] grid px
        h = 0.05                                                                          # cm
        jx = (tps_apply(spline, apply_affine(sim, m + [h, 0])) - self.p0) / h
        jy = (tps_apply(spline, apply_affine(sim, m + [0, h])) - self.p0) / h
        self.jac = np.stack([jx, jy], -1).astype(np.float32)                             # [N, 2 (out), 2 (in)]
        self.z0 = at[:, 2].astype(np.float32)
        xs = np.arange(self.G, dtype=np.float32)
        self.grid = np.stack(np.meshgrid(xs, xs), -1)                                   # [G, G, 2] pixel centres
        self.colours = interior_colours(crop, marks)
        self.skin = np.isin(mdl.part, (SKIN, EYE_FILL))
        if fitted:                  # the inside the photo shows of its own mouth keeps the photo's pixels
            seen = rasterize(self.p0, self.z0, mdl.tris, self.G, self.G).tri
            self.skin[np.unique(seen[seen >= 0])] = True
        z = mdl.rest[:, 2]
        self.z_front = float(z[self.model.landmarks[48:68]].max())

    def moved(self, aus: np.ndarray, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(grid px [N, 2], depth [N]) of every vertex at AU intensities aus [K], the expression's progress in
        [0, 1] (how much of the photo's own expression is undone: relax * progress)."""
        w = np.asarray(aus, np.float32) * self.opts.gain - np.float32(self.opts.relax * progress) * self.own
        d = np.tensordot(w, self.model.delta, 1)                                               # [N, 3]
        d2 = d[:, :2] * np.array([1.0, -1.0], np.float32)
        return self.p0 + np.einsum("nij,nj->ni", self.jac, d2), self.z0 + d[:, 2]

    def frame_maps(self, aus: np.ndarray, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(backward flow float32 [G, G, 2] in grid px, interior colour float32 [G, G, 3], its alpha [G, G])."""
        G, mdl = self.G, self.model
        xy, z = self.moved(aus, progress)
        ras = rasterize(xy, z, mdl.tris, G, G)
        hit = ras.tri >= 0
        skin = hit & self.skin[np.maximum(ras.tri, 0)]
        src = ras.interpolate(mdl.tris, self.p0)
        flow = np.where(skin[..., None], src - self.grid, 0.0).astype(np.float32)
        rim = np.zeros((G, G), np.uint8)
        cv2.fillPoly(rim, [np.round(xy[mdl.mouth_loop] * 4).astype(np.int32)], 1, shift=2)
        inside = (hit & ~skin) | ((rim > 0) & ~hit)
        known = (skin | ~(rim > 0)).astype(np.float32)     # skin, or outside the mouth: the flow is known there
        if inside.any():                                   # the flow under the interior: its surroundings'
            k = (0, 0)
            num = cv2.GaussianBlur(flow * known[..., None], k, 3.0)
            den = cv2.GaussianBlur(known, k, 3.0)[..., None]
            flow = np.where(known[..., None] > 0, flow, num / np.maximum(den, 1e-6)).astype(np.float32)
        colour, alpha = self._interior(ras, inside, z)
        return flow, colour, alpha

    def _interior(self, ras, inside: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G, mdl = self.G, self.model
        colour = np.zeros((G, G, 3), np.float32)
        if not inside.any():
            return colour, np.zeros((G, G), np.float32)
        part = np.where(ras.tri >= 0, mdl.part[np.maximum(ras.tri, 0)], SOCKET)
        base = np.stack([self.colours[SOCKET], self.colours[GUMS], self.colours[TEETH]])   # by part - 2
        idx = np.clip(part.astype(np.int64) - SOCKET, 0, 2)
        nz = ras.interpolate(mdl.tris, mdl.normal_z[:, None], fill=0.0)[..., 0]
        depth = ras.interpolate(mdl.tris, z[:, None], fill=self.z_front - 4.0)[..., 0]
        lambert = 0.45 + 0.55 * np.clip(nz, 0, 1)
        behind = np.clip(1.0 - (self.z_front - depth) / 3.5, 0.2, 1.0)       # darker deeper in the mouth
        colour = base[idx] * (lambert * behind)[..., None]
        deep = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
        s = self.opts.sliver * max(1.0, G / 128)
        alpha = np.clip((deep - s) / s, 0, 1).astype(np.float32)
        return np.where(inside[..., None], colour, 0.0).astype(np.float32), alpha

    def frame(self, aus: np.ndarray, progress: float | None = None) -> np.ndarray:
        """uint8 [S, S, 3]: the crop moved to AU intensities aus [K] at the expression's progress (default: 1 for
        any expression, as at the apex); zeros at progress 0: the crop itself."""
        aus = np.asarray(aus, np.float32)
        if aus.shape != (len(self.model.aus),):
            raise FaceMotionError(f"aus must be [{len(self.model.aus)}] ({', '.join(self.model.aus)}), got {aus.shape}")
        progress = float(aus.any()) if progress is None else float(np.clip(progress, 0.0, 1.0))
        if not aus.any() and (progress == 0 or not self.own.any()):
            return self.crop.copy()
        S, G = self.size, self.G
        flow, colour, alpha = self.frame_maps(aus, progress)
        r = S / G
        if G != S:
            flow = cv2.resize(flow, (S, S), interpolation=cv2.INTER_LINEAR) * np.float32(r)
        xs = np.arange(S, dtype=np.float32)
        out = cv2.remap(self.crop, xs[None, :] + flow[..., 0], xs[:, None] + flow[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        if alpha.max() <= 0:
            return out
        if G != S:
            colour = cv2.resize(colour, (S, S), interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(alpha, (S, S), interpolation=cv2.INTER_LINEAR)
        a = alpha[..., None]
        return np.clip(np.round(out * (1 - a) + colour * a), 0, 255).astype(np.uint8)

    def video(self, aus: np.ndarray) -> np.ndarray:
        """uint8 [T, S, S, 3] for AU intensities [T, K]; frame t's progress is its AU sum over the largest (less
        the share of the photo's own smile the video keeps: module docstring)."""
        aus = np.asarray(aus, np.float32)
        total = np.abs(aus).sum(1)
        progress = total / total.max() if total.max() > 0 else total
        smile = self.model.aus.index("AU12")
        if self.own[smile] > 0:     # the share of the photo's smile the video wants anyway is kept, not undone
            progress = progress * (1 - min(1.0, float(aus[:, smile].max()) * self.opts.gain / self.own[smile]))
        return np.stack([self.frame(a, p) for a, p in zip(aus, progress)])


__all__ = ["FaceModel", "FaceMotionError", "FaceRig", "MotionOptions", "OWN_AUS", "OWN_SMILE", "RETARGET", "RETARGET_OWN", "SHIPPED",
           "interior_colours", "load_model", "own_expression"]
