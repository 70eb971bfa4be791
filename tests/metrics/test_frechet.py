"""Fréchet distance (thesis eqs. 4.1-4.2) against numpy/scipy references and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from fv.metrics.frechet import (FeatureShapeError, frechet_distance, frechet_distance_from_features,
                                frechet_distance_low_rank, gaussian_stats, trace_sqrt_product)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_gaussian_stats_match_numpy_unbiased_cov():
    x = np.random.default_rng(0).standard_normal((13, 5)).astype(np.float32)
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, ddof=1), rtol=1e-10)


@pytest.mark.parametrize("d", [3, 16])
def test_trace_sqrt_product_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-9)


def test_frechet_matches_scipy_formula():
    rng = np.random.default_rng(1)
    d = 8
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)


def test_equal_gaussians_give_zero():
    rng = np.random.default_rng(2)
    mu, s = rng.standard_normal(10), _spd(rng, 10)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9 * np.trace(s))


def test_shifted_mean_same_cov_gives_squared_norm():
    rng = np.random.default_rng(3)
    mu1, mu2, s = rng.standard_normal(6), rng.standard_normal(6), _spd(rng, 6)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0.1, 3.0, 7), rng.uniform(0.1, 3.0, 7)
    mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
    ref = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(ref, rel=1e-10)


def test_one_dimensional_textbook_case():
    # W2^2(N(0, 1), N(3, 4)) = 3^2 + (1 - 2)^2 = 10
    assert frechet_distance(np.zeros(1), np.eye(1), np.full(1, 3.0), 4 * np.eye(1)) == pytest.approx(10.0)


def test_rank_deficient_projectors_closed_form():
    # S1 = a P, S2 = b P with P a rank-r projector: Tr(S1 + S2 - 2 sqrt(S1 S2)) = r (sqrt a - sqrt b)^2.
    rng = np.random.default_rng(5)
    d, r, a, b = 12, 4, 2.0, 0.5
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    p = q @ q.T
    mu = np.zeros(d)
    assert frechet_distance(mu, a * p, mu, b * p) == pytest.approx(r * (np.sqrt(a) - np.sqrt(b)) ** 2, rel=1e-8)


def test_few_samples_many_dims_stays_finite_nonnegative_symmetric():
    rng = np.random.default_rng(6)
    f1 = rng.standard_normal((5, 64))
    f2 = rng.standard_normal((7, 64)) + 0.3
    d12, d21 = frechet_distance_from_features(f1, f2), frechet_distance_from_features(f2, f1)
    assert np.isfinite(d12) and d12 > 0
    assert d12 == pytest.approx(d21, rel=1e-8)  # Tr sqrt(S1 S2) = Tr sqrt(S2 S1)
    same = frechet_distance_from_features(f1, f1)
    assert 0.0 <= same < 1e-6 * np.trace(np.cov(f1, rowvar=False))


def test_rank_deficient_trace_equals_nuclear_norm():
    # S1 = A^T A, S2 = B^T B (A, B centred features / sqrt(N - 1)): the nonzero eigenvalues of S1 S2 are
    # those of (A B^T)(A B^T)^T, so Tr sqrt(S1 S2) = sum of singular values of A B^T, exact for N < D.
    rng = np.random.default_rng(7)
    f1, f2 = rng.standard_normal((6, 40)), rng.standard_normal((9, 40))
    a = (f1 - f1.mean(0)) / np.sqrt(5)
    b = (f2 - f2.mean(0)) / np.sqrt(8)
    ref = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    assert trace_sqrt_product(gaussian_stats(f1)[1], gaussian_stats(f2)[1]) == pytest.approx(ref, rel=1e-9)


def test_low_rank_form_equals_the_eigh_form():
    """The bootstrap's n1 x n2 SVD form (fv reproduce's FVD spread) against scipy's sqrtm of S1 S2 by hand."""
    rng = np.random.default_rng(3)
    for a, b in [(rng.normal(size=(12, 40)), rng.normal(0.3, 1.2, size=(9, 40))),   # fewer videos than dims
                 (rng.normal(size=(60, 8)), 2 * rng.normal(size=(30, 8)))]:         # more videos than dims
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
        assert frechet_distance_low_rank(a, b) == pytest.approx(ref, rel=1e-6)
        assert frechet_distance_low_rank(a, b) == pytest.approx(frechet_distance_from_features(a, b), rel=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(FeatureShapeError, match="N >= 2"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(FeatureShapeError, match="same D"):
        frechet_distance_from_features(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(FeatureShapeError, match="sigma"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(FeatureShapeError, match="NaN"):
        gaussian_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))
