"""Gaussian statistics of features and the Fréchet distance between them (thesis 4.4.1, eqs. 4.1-4.2).

    mu = (1/N) sum_i x_i,   Sigma = 1/(N-1) sum_i (x_i - mu)(x_i - mu)^T        (4.1, unbiased)
    d^2 = ||mu_1 - mu_2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})                      (4.2)

The trace of the matrix square root is taken in the symmetric form that TF-GAN's
`frechet_classifier_distance_from_activations` (the thesis' FVD path) also uses:
S1 S2 = S1^{1/2} (S1^{1/2} S2 S1^{1/2}) S1^{-1/2} is similar to the symmetric PSD matrix
M = S1^{1/2} S2 S1^{1/2}, so Tr (S1 S2)^{1/2} = sum_k sqrt(lambda_k(M)). Both square roots come
from `eigh` in float64 with eigenvalues within round-off of 0 set to 0: real by construction
(no imaginary parts to discard) and finite for rank-deficient covariances (N <= D), where
scipy.linalg.sqrtm of the non-symmetric S1 S2 can fail or go complex.
"""

from __future__ import annotations

import numpy as np


class FeatureShapeError(ValueError):
    """Features or statistics with shapes that do not fit together."""


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features [N, D] -> (mu [D], sigma [D, D]) in float64, unbiased covariance (eq. 4.1), N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FeatureShapeError(f"features must be [N, D] with N >= 2 samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise FeatureShapeError("features contain NaN or inf; check the clips fed to the feature extractor")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma


def _psd_eig_sqrt(w: np.ndarray) -> np.ndarray:
    """sqrt of the eigenvalues w of a symmetric PSD matrix; those within round-off of 0 count as 0.

    eigh's error is ~ D eps max|w|: such eigenvalues (negative ones included) are noise, and their
    square roots (~1e-8 each) would otherwise add up over the D directions of a singular covariance.
    """
    tol = w.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), np.finfo(np.float64).tiny)
    return np.sqrt(np.where(w > tol, w, 0.0))


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Principal square root of a symmetric PSD matrix via eigh: V diag(sqrt w) V^T."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * _psd_eig_sqrt(w)) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^{1/2} = sum sqrt(eig(S1^{1/2} S2 S1^{1/2})) for symmetric PSD S1, S2."""
    s1h = _sym_sqrt(np.asarray(sigma1, dtype=np.float64))
    m = s1h @ np.asarray(sigma2, dtype=np.float64) @ s1h
    return float(_psd_eig_sqrt(np.linalg.eigvalsh((m + m.T) / 2)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2) (eq. 4.2), >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if d < 0 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise FeatureShapeError(f"need mu [D] and sigma [D, D] for both sets, got {mu1.shape}, "
                                f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    dist = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    # Round-off can leave a tiny negative number for (near-)identical Gaussians; the distance is >= 0.
    return float(max(dist, 0.0))


def frechet_distance_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Eq. 4.2 between the Gaussians fitted (eq. 4.1) to two feature sets [N1, D] and [N2, D]."""
    f1, f2 = np.asarray(feats1), np.asarray(feats2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise FeatureShapeError(f"feature sets must be [N, D] with the same D, got {f1.shape} and {f2.shape}")
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def frechet_distance_low_rank(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Eq. 4.2 between two feature sets [n1, D], [n2, D] through an n1 x n2 SVD instead of a D x D square root.

    With A = centred features / sqrt(n - 1), S = A^T A, and the non-zero eigenvalues of S1 S2 are the squared
    singular values of A1 A2^T, so Tr (S1 S2)^{1/2} is that matrix's nuclear norm. Equal to
    frechet_distance_from_features (before its clamp at 0) and far cheaper when n << D, as in a bootstrap over
    a few hundred videos' 400-d I3D features.
    """
    x1, x2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a = (x1 - mu1) / np.sqrt(len(x1) - 1)
    b = (x2 - mu2) / np.sqrt(len(x2) - 1)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(((mu1 - mu2) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2 * nuclear)
