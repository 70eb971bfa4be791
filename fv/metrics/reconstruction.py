"""Frame reconstruction and flow metrics: PSNR, SSIM (Wang et al. 2004) and end-point error.

Frames are uint8-range arrays [..., H, W, C] (data range L = 255). SSIM uses the paper's Gaussian window
(sigma 1.5, 11 x 11: scipy's gaussian_filter truncated at 3.5 sigma, mirrored at the borders) per channel,
C1 = (0.01 L)^2, C2 = (0.03 L)^2, and the mean of the SSIM map over pixels and channels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

L = 255.0
C1, C2 = (0.01 * L) ** 2, (0.03 * L) ** 2
SIGMA, TRUNCATE = 1.5, 3.5   # radius int(3.5 * 1.5 + 0.5) = 5: the 11 x 11 window


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """10 log10(L^2 / MSE) over the whole array (inf for identical arrays)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(L * L / mse)


def _blur(x: np.ndarray) -> np.ndarray:
    return gaussian_filter(x, SIGMA, truncate=TRUNCATE, mode="reflect")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two images [H, W, C] (or [H, W])."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    vals = []
    for c in range(a.shape[-1]):
        x, y = a[..., c], b[..., c]
        mx, my = _blur(x), _blur(y)
        vx, vy, cxy = _blur(x * x) - mx * mx, _blur(y * y) - my * my, _blur(x * y) - mx * my
        m = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
        vals.append(m.mean())
    return float(np.mean(vals))


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean end-point error |flow - gt|_2 over points; flows [..., 2]."""
    return float(np.linalg.norm(np.asarray(flow, np.float64) - np.asarray(gt, np.float64), axis=-1).mean())
