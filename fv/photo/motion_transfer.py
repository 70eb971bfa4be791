"""Dense motion transfer: move a high-resolution face crop's OWN pixels with the dense motion of a generated
low-resolution video (the idea of LFDM, thesis 2.3: warp the input by flows and fill only what the flow
cannot explain; here the flow is measured on the generator's frames with DIS optical flow).

Coordinates are OpenCV's: pixel centres at integers, flow [H, W, 2] = (dx, dy) in pixels.
  * Backward flow F_t from frame t to frame 0: I_t(p) ~ I_0(p + F_t(p)); warping the crop C by it gives
        W_t(p) = C(p + F_t(p))                                   (bilinear, cv2.remap)
    so a zero flow gives C back exactly.
  * A flow measured at size s is used at size S = r s as  F^S(p) = r F^s((p + 0.5) / r - 0.5).
  * Occlusion (Sundaram, Brox & Keutzer 2010, forward-backward check): with the forward flow G_t (0 -> t),
    pixel p of frame t is inconsistent when
        |F(p) + G(p + F(p))|^2 > a (|F(p)|^2 + |G(p + F(p))|^2) + b,
    and it shows new content (the inside of an opened mouth) when the generated frame departs from the
    warped generated frame 0:  max_c |I_t(p) - I_0(p + F(p))| > tau.  Both ramp softly to 1.
  * Colour match (Reinhard et al. 2001, per channel, per connected region): the generated pixels inside a
    region get the mean and standard deviation the photo has in a ring around it,
        x' = (x - mu_gen) sd_photo / sd_gen + mu_photo,
    and are blended in with the Gaussian-feathered mask: out = W (1 - m) + x' m. By default a fill only
    darkens and keeps the photo's colours: x'' = W clip(Y(x') / Y(W), shadow, 1), Y = BT.601 luma (a revealed mouth
    interior is in shadow; no generated hue or bright teeth bar reaches the photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fv.photo.errors import FaceError
from fv.photo.geometry import resize_matrix, tps_apply, tps_fit, warp_affine


LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # ITU-R BT.601 luma weights
SHADOW = 0.35   # what a photo cannot show (an opened mouth) keeps this share of its brightness, in every mode


class MotionTransferError(FaceError):
    """Bad input to motion transfer (shapes, sizes)."""


@dataclass(frozen=True)
class TransferOptions:
    flow_size: int = 128         # the motion video is measured at this size (DIS needs more than 64 px)
    fb_a: float = 0.05           # forward-backward test: relative tolerance a ...
    fb_b: float = 0.5            # ... and absolute tolerance b, in flow_size pixels^2
    tau: float = 60.0            # grey levels (0-255) from which generated content counts as new
    feather: float = 0.025       # mask edge: Gaussian sigma as a fraction of the crop size
    ring: float = 0.03           # colour-match ring width as a fraction of the crop size
    min_region: float = 0.0005   # regions smaller than this fraction of the crop are not filled
    darken_only: bool = True     # a fill may darken the warped crop, never brighten it (an opened mouth is in
                                 # shadow; a model's bright teeth bar must not paint over the photo)
    shadow: float = SHADOW       # ... and to no less than this share of its luma (a shadowed mouth, not a hole)


# ----------------------------------------------------------------------------- flow

def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def dis_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """float32 [H, W, 2] flow F with src(p) ~ dst(p + F(p)) (OpenCV's DIS, medium preset), uint8 RGB in."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(src), _grey(dst), None)


def tps_map(src: np.ndarray, dst: np.ndarray, size: int, lam: float = 1.0) -> np.ndarray:
    """float32 [size, size, 2]: T(p) at every pixel centre p = (x, y) of a size-pixel frame, for the thin-plate
    spline (fv.photo.geometry.tps_fit, at unit scale) with T(src_i) ~ dst_i (points [n, 2] in pixels; lam:
    smoothing, in the kernel's units, that lets noisy landmarks be missed a little), plus the frame's corners and
    edge midpoints held still."""
    edge = np.array([[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0.5]]) * (size - 1)
    spline = tps_fit(np.concatenate([np.asarray(src, np.float64), edge]),
                     np.concatenate([np.asarray(dst, np.float64), edge]), lam, scale=size)
    xs = np.arange(size, dtype=np.float64)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    return tps_apply(spline, grid).reshape(size, size, 2).astype(np.float32)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """[s, s, 2] -> [size, size, 2]: F^S(p) = r F^s((p + 0.5) / r - 0.5), r = size / s (bilinear)."""
    r = size / flow.shape[0]
    return cv2.resize(flow, (size, size), interpolation=cv2.INTER_LINEAR) * np.float32(r)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """W(p) = image(p + flow(p)), bilinear, edges replicated; image [H, W, C] or [H, W], flow [H, W, 2]."""
    h, w = flow.shape[:2]
    if image.shape[:2] != (h, w):
        raise MotionTransferError(f"image {image.shape[:2]} and flow {flow.shape[:2]} differ in size")
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


# ----------------------------------------------------------------------------- occlusion

def fb_inconsistency(backward: np.ndarray, forward: np.ndarray, a: float = 0.05, b: float = 0.5) -> np.ndarray:
    """float32 [H, W] >= 0: |F + G(p + F)|^2 / (a (|F|^2 + |G(p + F)|^2) + b); above 1 = inconsistent."""
    g = warp(forward, backward)
    err = ((backward + g) ** 2).sum(-1)
    return err / (a * ((backward ** 2).sum(-1) + (g ** 2).sum(-1)) + b)


def occlusion_mask(frame_t: np.ndarray, frame_0: np.ndarray, backward: np.ndarray, forward: np.ndarray,
                   a: float = 0.05, b: float = 0.5, tau: float = 60.0) -> np.ndarray:
    """float32 [H, W] in [0, 1]: where frame t of a video shows what its frame 0 moved by the flow cannot
    (module docstring); the forward-backward ratio ramps 1 -> 2 and the colour residual tau -> 1.5 tau."""
    resid = np.abs(frame_t.astype(np.float32) - warp(frame_0, backward).astype(np.float32)).max(-1)
    fb = np.clip(fb_inconsistency(backward, forward, a, b) - 1.0, 0, 1)
    new = np.clip((resid - tau) / (0.5 * tau), 0, 1)
    return np.maximum(fb * (resid > 0.5 * tau), new).astype(np.float32)


# ----------------------------------------------------------------------------- colour and blending

def colour_match(fill: np.ndarray, photo: np.ndarray, mask: np.ndarray, ring_px: int,
                 min_px: int = 1) -> np.ndarray:
    """fill, photo uint8/float [H, W, 3], mask [H, W] (> 0.5 = the regions) -> float32 fill whose every
    connected region has the photo's per-channel mean and std of a ring of ring_px pixels around it."""
    out = fill.astype(np.float32).copy()
    hard = (mask > 0.5).astype(np.uint8)
    n, labels = cv2.connectedComponents(hard)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    for k in range(1, n):
        region = (labels == k).astype(np.uint8)
        if region.sum() < min_px:
            continue
        near = cv2.dilate(region, kernel) > 0       # the region and its ring get the same map
        ring = near & (region == 0)
        if ring.sum() < 4:
            continue
        g, p = fill[ring].astype(np.float32), photo[ring].astype(np.float32)
        scale = np.clip(p.std(0) / np.maximum(g.std(0), 1.0), 0.5, 2.0)
        out[near] = (out[near] - g.mean(0)) * scale + p.mean(0)
    return out


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred mask, float32 [H, W] in [0, 1]; sigma in pixels (0 = as is)."""
    m = mask.astype(np.float32)
    return np.clip(cv2.GaussianBlur(m, (0, 0), sigmaX=sigma), 0, 1) if sigma > 0 else m


def fill_occluded(warped: np.ndarray, generated: np.ndarray, mask: np.ndarray,
                  opts: TransferOptions = TransferOptions()) -> np.ndarray:
    """uint8 [S, S, 3]: the warped crop with the generated frame (same size) colour-matched and
    feathered in where mask [S, S] says the flow cannot explain the frame."""
    s = warped.shape[0]
    hard = (mask > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hard)
    keep = np.isin(labels, [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= opts.min_region * s * s])
    if not keep.any():
        return warped
    matched = colour_match(generated, warped, keep.astype(np.float32), max(1, round(opts.ring * s)))
    if opts.darken_only:   # the warped photo's own colours, darkened by the fill's luma ratio (at most 1)
        w = warped.astype(np.float32)
        ratio = (matched @ LUMA) / np.maximum(w @ LUMA, 1.0)
        matched = w * np.clip(ratio, opts.shadow, 1)[..., None]
    m = feather(keep.astype(np.float32), opts.feather * s)[..., None]
    out = warped.astype(np.float32) * (1 - m) + matched * m
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the whole video

def resize_video(frames: np.ndarray, size: int, matrix: np.ndarray | None = None) -> np.ndarray:
    """uint8 [T, s, s, 3] -> [T, size, size, 3]; matrix (2x3, s-pixel coordinates) first maps each frame
    into the crop's layout (e.g. a stand-in face's eyes onto the template's), else a plain bicubic resize."""
    s = frames.shape[1]
    if matrix is None:
        return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in frames])
    m = np.vstack([resize_matrix(s, size), [0, 0, 1]]) @ np.vstack([matrix, [0, 0, 1]])
    return np.stack([warp_affine(f, m[:2], size, size) for f in frames])


def check_transfer_input(crop: np.ndarray, motion: np.ndarray) -> None:
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] != 3:
        raise MotionTransferError(f"the crop must be uint8 [S, S, 3], got {crop.dtype} {crop.shape}")
    if motion.dtype != np.uint8 or motion.ndim != 4 or motion.shape[1] != motion.shape[2] or motion.shape[3] != 3:
        raise MotionTransferError(f"the motion video must be uint8 [T, s, s, 3], got {motion.dtype} {motion.shape}")


def transfer_video(crop: np.ndarray, motion: np.ndarray, matrix: np.ndarray | None = None,
                   opts: TransferOptions = TransferOptions(), allow: np.ndarray | None = None) -> np.ndarray:
    """crop uint8 [S, S, 3] + a generated video uint8 [T, s, s, 3] whose frame 0 is a neutral face (matrix:
    its pixels -> the crop's layout at size s, None when it already shares the crop's eye template) ->
    uint8 [T, S, S, 3]: frame t = the crop warped by the video's backward flow t -> 0 (measured at
    opts.flow_size, upscaled to S), with the video's own pixels only where it is occluded and allow
    (float [S, S] in [0, 1], e.g. the mouth; None = anywhere, zeros = never) permits."""
    check_transfer_input(crop, motion)
    if allow is not None and allow.shape != crop.shape[:2]:
        raise MotionTransferError(f"allow must be [{crop.shape[0]}, {crop.shape[1]}], got {allow.shape}")
    fill = allow is None or bool(np.any(allow > 0))
    size = crop.shape[0]
    work = resize_video(motion, opts.flow_size, matrix)              # [T, w, w, 3] in the crop's layout
    gen = resize_video(work, size) if fill else None                # [T, S, S, 3], only for the fills
    out = np.empty((len(motion), size, size, 3), dtype=np.uint8)
    for t in range(len(motion)):
        back = dis_flow(work[t], work[0])                           # [w, w, 2], t -> 0
        warped = warp(crop, resize_flow(back, size))
        if fill and t > 0:
            fwd = dis_flow(work[0], work[t])
            occ = occlusion_mask(work[t], work[0], back, fwd, opts.fb_a, opts.fb_b, opts.tau)
            occ_s = cv2.resize(occ, (size, size), interpolation=cv2.INTER_LINEAR)
            occ_s = occ_s if allow is None else occ_s * allow
            warped = fill_occluded(warped, gen[t], occ_s, opts)
        out[t] = warped
    return out


__all__ = ["SHADOW", "MotionTransferError", "TransferOptions", "colour_match", "dis_flow", "fb_inconsistency",
           "feather", "fill_occluded", "occlusion_mask", "resize_flow", "tps_map", "resize_video", "transfer_video",
           "warp"]
