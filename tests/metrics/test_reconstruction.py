"""PSNR, SSIM and end-point error (fv.metrics.reconstruction) against hand computations."""

import numpy as np
import pytest

from fv.metrics.reconstruction import C1, C2, epe, psnr, ssim


def test_psnr_by_hand():
    a = np.zeros((8, 8, 3))
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    assert psnr(a, a) == float("inf")


def test_ssim_of_flat_images_is_the_luminance_term():
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 140.0)
    want = (2 * 100 * 140 + C1) / (100 ** 2 + 140 ** 2 + C1)     # zero variances: the structure term is C2 / C2
    assert ssim(a, b) == pytest.approx(want, rel=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)


def _ssim_sliding(x, y, sigma=1.5, radius=5):
    """Wang et al. 2004 with an explicit 11x11 Gaussian kernel over symmetric-padded windows (no scipy)."""
    k = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma ** 2))
    k = np.outer(k, k) / np.outer(k, k).sum()
    win = lambda img: np.lib.stride_tricks.sliding_window_view(np.pad(img, radius, mode="symmetric"),  # noqa: E731
                                                               (2 * radius + 1,) * 2)
    mean = lambda img: (win(img) * k).sum((-1, -2))                                                     # noqa: E731
    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx ** 2, mean(y * y) - my ** 2, mean(x * y) - mx * my
    return (((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2))).mean()


def test_ssim_matches_a_sliding_window_computation():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 20, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255)
    want = np.mean([_ssim_sliding(a[..., c], b[..., c]) for c in range(3)])
    assert ssim(a, b) == pytest.approx(want, rel=1e-9)
    assert ssim(a, b) < ssim(a, a) == pytest.approx(1.0)


def test_epe_by_hand():
    gt = np.zeros((2, 2, 2))
    flow = np.array([[[3, 4], [0, 0]], [[0, 1], [1, 0]]], float)
    assert epe(flow, gt) == pytest.approx((5 + 0 + 1 + 1) / 4)
