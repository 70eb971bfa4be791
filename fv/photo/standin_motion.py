"""Stand-in motion transfer: the synthetic generator's own motion field, at the action units a checkpoint
gave its stand-in face, moves a photo's own pixels (`fv render --mode transfer`, issue 13).

A checkpoint trained on synthetic faces renders a neutral synthetic stand-in face with the target emotion;
fv.photo.au_readout reads its frames back as AU intensities a_t; the generator's motion field for a_t
(fv.data.synth_face.motion_field: one-to-one, no folds, the lips' parting known exactly) is carried from
the stand-in onto the photo's face:

  * Amounts. The synthetic set moves faces POSED_GAIN (1.8) times the amounts measured on a real face
    (fv.data.synth_motion), so that its cartoon expressions read to an emotion classifier. On a photo the
    transfer applies the measured amounts: a_t gain with gain = 1 / POSED_GAIN by default (at the posed
    amounts a happy mouth's corners rise 0.45 inter-ocular distances and bulge the upper lip; disgust and
    fear become grimaces).
  * Time. a_t is smoothed by a Gaussian of `smooth` frames, a_0 = 0 kept.
  * Retargeting. The stand-in and the photo share the eye template, not their proportions: with T the
    thin-plate spline (Bookstein 1989) through T(P_i) = Q_i, P the photo's landmarks and Q the stand-in's
    (dlib on its neutral frame, mapped into the crop's layout; brows, eyes, nose and outer lips, points
    17-59: an open mouth's inner lips would be squashed onto the stand-in's closed ones), and T^-1 the
    spline the other way, the photo's pixel p of frame t comes from
        p_0 = T^-1( m(q + F_t(q)) ),   q = m^-1(T(p)),
    F_t the stand-in's backward flow (its pixels) and m its pixels -> the crop's layout. Zero AUs give the
    crop back exactly.
  * The opened mouth. Where the stand-in's lips part (no rest point moves there), frame t shows what the
    photo cannot: the warped crop darkened to `shadow` of its brightness, with a Gaussian edge of `feather` x
    the crop size, except where that pixel comes from the photo's own open mouth (its inner-lip polygon, shrunk
    by 1% of the crop: teeth it shows stay teeth). A shadowed mouth in the photo's own colours; never a
    generated tooth or colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from fv.photo.errors import FaceError
from fv.photo.geometry import apply_affine
from fv.photo.motion_transfer import SHADOW

RETARGET = np.r_[17:60]    # brows, nose, eyes, outer lips


class StandinMotionError(FaceError):
    """Bad input to stand-in motion transfer."""


@dataclass(frozen=True)
class StandinOptions:
    gain: float | None = None   # AU intensities on a photo: None = 1 / POSED_GAIN (the measured real amounts)
    smooth: float = 1.0         # temporal Gaussian sigma of the AU intensities, frames (0 = none)
    grid: int = 96              # the motion field is solved on a grid of this many px, then resized
    shadow: float = SHADOW      # the parted lips: this share of the warped crop's brightness
    feather: float = 0.008      # their edge: Gaussian sigma as a fraction of the crop size
    lam: float = 1.0            # thin-plate smoothing (fv.photo.motion_transfer.tps_map)

    def au_gain(self) -> float:
        from fv.data.synth_motion import POSED_GAIN
        return 1.0 / POSED_GAIN if self.gain is None else float(self.gain)


def au_track(aus: np.ndarray, opts: StandinOptions = StandinOptions()) -> np.ndarray:
    """float [T, K] >= 0: read AU intensities [T, K] smoothed in time (a Gaussian of opts.smooth frames, edges
    replicated), frame 0's subtracted, times the gain."""
    a = np.asarray(aus, np.float64)
    if opts.smooth > 0:
        a = gaussian_filter1d(a, opts.smooth, axis=0, mode="nearest")
    return np.clip(a - a[:1], 0.0, None) * opts.au_gain()


def _sample(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """field [S, S, C] or [S, S] at points pts [..., 2] (pixels), bilinear, edges replicated."""
    return cv2.remap(field, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class Retarget:
    """The maps between the photo's crop (S px) and the stand-in's own pixels at S (module docstring)."""
    to_standin: np.ndarray     # float32 [S, S, 2]: q = m^-1(T(p)) for every crop pixel p
    to_photo: np.ndarray       # float32 [S, S, 2]: T^-1 at every layout pixel
    matrix: np.ndarray         # float32 [2, 3] m: stand-in px -> layout px
    open_mouth: np.ndarray     # float32 [S, S]: where the photo's own lips are already apart (crop px)


def retarget(size: int, matrix: np.ndarray, photo_marks: np.ndarray | None, standin_marks: np.ndarray | None,
             lam: float = 1.0) -> Retarget:
    """The maps for a crop of `size` px; matrix m (stand-in px -> the crop's layout, both at size); without
    landmarks (either None) the shared eye template alone places the stand-in (T = identity)."""
    xs = np.arange(size, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs), -1)
    open_mouth = np.zeros((size, size), np.float32)
    if photo_marks is None or standin_marks is None:
        T = Ti = grid
    else:
        open_mouth = _open_mouth(np.asarray(photo_marks), size)
        P, Q = np.asarray(photo_marks)[RETARGET], np.asarray(standin_marks)[RETARGET]
        T, Ti = _coarse_tps(P, Q, size, lam), _coarse_tps(Q, P, size, lam)
    m_inv = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    return Retarget(apply_affine(m_inv.astype(np.float32), T.astype(np.float32)), Ti.astype(np.float32),
                    np.asarray(matrix, np.float32), open_mouth)


def _open_mouth(marks: np.ndarray, size: int, erode: float = 0.01) -> np.ndarray:
    """float32 [size, size] in {0, 1}: the polygon of the inner lips (points 60-67) shrunk by erode x size, so
    a closed mouth's sliver of a polygon leaves nothing."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(marks[60:68]).astype(np.int32)], 1)
    r = max(1, round(erode * size))
    return cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(np.float32)


def _coarse_tps(src: np.ndarray, dst: np.ndarray, size: int, lam: float, step: int = 4) -> np.ndarray:
    """float32 [size, size, 2]: fv.photo.motion_transfer.tps_map evaluated on a grid `step` times coarser
    and resized (the spline is smooth; a 512 px crop's full map costs 2.5 s), pixel centres kept."""
    from fv.photo.motion_transfer import tps_map
    small = max(8, -(-size // step))
    r = small / size
    T = tps_map((np.asarray(src) + 0.5) * r - 0.5, (np.asarray(dst) + 0.5) * r - 0.5, small, lam)
    return (cv2.resize(T, (size, size), interpolation=cv2.INTER_LINEAR) + 0.5) / r - 0.5


def move_frame(crop: np.ndarray, flow: np.ndarray, parted: np.ndarray, rt: Retarget,
               opts: StandinOptions = StandinOptions()) -> np.ndarray:
    """uint8 [S, S, 3]: the crop moved by the stand-in's backward flow [S, S, 2] (its pixels), the parted lips
    [S, S] (its pixels, [0, 1]) shadowed (module docstring)."""
    from fv.photo.motion_transfer import feather
    size = crop.shape[0]
    q = rt.to_standin
    q0 = q + _sample(flow, q)
    p0 = _sample(rt.to_photo, apply_affine(rt.matrix, q0))
    out = cv2.remap(crop, p0[..., 0], p0[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gap = _sample(parted.astype(np.float32), q) * (1 - _sample(rt.open_mouth, p0))   # the photo shows its own
    if gap.max() <= 0:
        return out
    m = feather(gap, opts.feather * size)[..., None]
    return np.clip(np.round(out * (1 - (1 - opts.shadow) * m)), 0, 255).astype(np.uint8)


def standin_transfer(crop: np.ndarray, aus: np.ndarray, identity, version: int, rt: Retarget,
                     opts: StandinOptions = StandinOptions()) -> np.ndarray:
    """uint8 [T, S, S, 3]: the crop uint8 [S, S, 3] moved by the stand-in identity's motion field (generator
    `version`) at AU intensities aus [T, K] (already tracked: au_track); all-zero rows give the crop itself."""
    from fv.data.synth_face import motion_field
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] != 3:
        raise StandinMotionError(f"the crop must be uint8 [S, S, 3], got {crop.dtype} {crop.shape}")
    if rt.to_standin.shape[:2] != crop.shape[:2]:
        raise StandinMotionError(f"the maps are for a {rt.to_standin.shape[0]} px crop, not {crop.shape[0]} px")
    out = np.empty((len(aus),) + crop.shape, np.uint8)
    for t, a in enumerate(np.asarray(aus, np.float64)):
        if not a.any():
            out[t] = crop
            continue
        flow, parted = motion_field(identity, a, crop.shape[0], opts.grid, version)
        out[t] = move_frame(crop, flow, parted, rt, opts)
    return out


__all__ = ["RETARGET", "Retarget", "StandinMotionError", "StandinOptions", "au_track", "move_frame", "retarget",
           "standin_transfer"]
