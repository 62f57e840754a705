"""SufficientStats algebra and the E-step statistics against scipy-computed references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gmmspeech import GMM, SufficientStats


def _mixture(rng, k=3, d=4, covariance_type="diag"):
    means = rng.normal(scale=3.0, size=(k, d))
    weights = rng.dirichlet(np.ones(k) * 3)
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        cov = a @ np.swapaxes(a, 1, 2) / d + 0.5 * np.eye(d)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        cov = a @ a.T / d + 0.5 * np.eye(d)
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 2.0, size=(k, d))
    else:
        cov = rng.uniform(0.3, 2.0, size=k)
    return weights, means, cov


def _full_covs(cov, covariance_type, k, d):
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.repeat(cov[None], k, axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(d) * c for c in cov])


def _reference_logprob(X, weights, means, covs):
    """log phi_k + log N(x | k) with scipy (independent of gmmspeech)."""
    return np.stack(
        [np.log(w) + multivariate_normal(m, c).logpdf(X) for w, m, c in zip(weights, means, covs)], axis=1
    )


# ----------------------------------------------------------------------------- algebra


def test_zeros_add_sum_and_shapes():
    z = SufficientStats.zeros(3, 2)
    assert z.n.shape == (3,) and z.f.shape == (3, 2) and z.s.shape == (3, 2) and z.kind == "diag"
    zf = SufficientStats.zeros(3, 2, "full")
    assert zf.s.shape == (3, 2, 2)
    a = SufficientStats(np.array([1.0, 2, 3]), np.ones((3, 2)), np.ones((3, 2)) * 2, -5.0, 6.0)
    b = SufficientStats(np.array([0.5, 0, 1]), np.ones((3, 2)) * 3, np.ones((3, 2)), -1.0, 1.5)
    c = a + b
    np.testing.assert_array_equal(c.n, [1.5, 2, 4])
    np.testing.assert_array_equal(c.f, np.full((3, 2), 4.0))
    np.testing.assert_array_equal(c.s, np.full((3, 2), 3.0))
    assert c.loglik == -6.0 and c.n_frames == 7.5
    tot = sum([a, b, z])  # starts from 0
    np.testing.assert_array_equal(tot.n, c.n)
    assert (0 + a).n is not a.n  # a copy, not an alias
    a2 = a.copy()
    a2 += b
    np.testing.assert_array_equal(a2.f, c.f)
    np.testing.assert_array_equal(a.f, np.ones((3, 2)))  # += did not touch the original
    assert a.n.dtype == np.float64
    np.testing.assert_array_equal(a.scaled(2.0).n, [2.0, 4, 6])
    assert a.average_loglik == pytest.approx(-5.0 / 6.0)


def test_incompatible_stats_raise():
    with pytest.raises(ValueError, match="different shapes or kinds"):
        SufficientStats.zeros(3, 2) + SufficientStats.zeros(3, 2, "full")
    with pytest.raises(ValueError, match="different shapes"):
        SufficientStats.zeros(3, 2) + SufficientStats.zeros(4, 2)
    with pytest.raises(TypeError):
        SufficientStats.zeros(3, 2) + "x"
    with pytest.raises(ValueError, match="'kind'"):
        SufficientStats.zeros(3, 2, "banded")
    with pytest.raises(ValueError, match="s must have shape"):
        SufficientStats(np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3, 3)), kind="diag")


def test_to_diag_takes_diagonals():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2, 3, 3))
    st = SufficientStats(np.ones(2), np.zeros((2, 3)), s, kind="full").to_diag()
    np.testing.assert_array_equal(st.s, np.diagonal(s, axis1=1, axis2=2))
    assert st.kind == "diag"


# ----------------------------------------------------------------------------- E-step


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulate_matches_scipy_reference(covariance_type, dtype):
    rng = np.random.default_rng(1)
    k, d = 3, 4
    weights, means, cov = _mixture(rng, k, d, covariance_type)
    X = rng.normal(scale=3.0, size=(500, d)) + 100.0  # offset: exercises the centring
    means = means + 100.0
    sw = rng.uniform(0.0, 2.0, size=500)
    gmm = GMM.from_params(weights, means, cov, covariance_type, dtype=dtype, chunk_size=128)
    st = gmm.accumulate(X, sample_weight=sw)

    lp = _reference_logprob(X, weights, means, _full_covs(cov, covariance_type, k, d))
    logp = logsumexp(lp, axis=1)
    r = np.exp(lp - logp[:, None]) * sw[:, None]
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(st.n, r.sum(0), rtol=rtol)
    np.testing.assert_allclose(st.f, r.T @ X, rtol=rtol)
    if covariance_type in ("full", "tied"):
        assert st.kind == "full"
        np.testing.assert_allclose(st.s, np.einsum("nk,ni,nj->kij", r, X, X), rtol=rtol)
    else:
        assert st.kind == "diag"
        np.testing.assert_allclose(st.s, r.T @ X**2, rtol=rtol)
    np.testing.assert_allclose(st.loglik, sw @ logp, rtol=rtol)
    assert st.n_frames == pytest.approx(sw.sum())
    # weighted_log_prob is the same quantity, float64 out
    wlp = gmm.weighted_log_prob(X)
    assert wlp.dtype == np.float64 and wlp.shape == (500, k)
    np.testing.assert_allclose(wlp, lp, rtol=rtol, atol=1e-9 if dtype == np.float64 else 1e-3)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_accumulate_is_additive_over_chunks(covariance_type):
    rng = np.random.default_rng(2)
    weights, means, cov = _mixture(rng, 4, 3, covariance_type)
    X = rng.normal(scale=3.0, size=(700, 3))
    gmm = GMM.from_params(weights, means, cov, covariance_type, dtype=np.float64, chunk_size=100)
    a, b = X[:333], X[333:]
    whole = gmm.accumulate(X)
    parts = gmm.accumulate(a) + gmm.accumulate(b)
    for name in ("n", "f", "s"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12, atol=1e-9)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-12)
    assert parts.n_frames == whole.n_frames == 700


def test_top_c_posteriors_renormalised_over_best_components():
    rng = np.random.default_rng(3)
    k, d, c = 8, 2, 2
    weights, means, cov = _mixture(rng, k, d, "diag")
    X = rng.normal(scale=3.0, size=(300, d))
    gmm = GMM.from_params(weights, means, cov, "diag", dtype=np.float64)
    st = gmm.accumulate(X, top_c=c)
    lp = _reference_logprob(X, weights, means, _full_covs(cov, "diag", k, d))
    keep = np.argsort(-lp, axis=1)[:, :c]
    r = np.zeros_like(lp)
    rows = np.arange(len(X))[:, None]
    sub = lp[rows, keep]
    r[rows, keep] = np.exp(sub - logsumexp(sub, axis=1, keepdims=True))
    np.testing.assert_allclose(st.n, r.sum(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.f, r.T @ X, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st.loglik, logsumexp(sub, axis=1).sum(), rtol=1e-10)
    # top_c >= K is the exact E-step
    full = gmm.accumulate(X)
    np.testing.assert_allclose(gmm.accumulate(X, top_c=k).n, full.n, rtol=1e-12)


def test_stats_sum_then_one_m_step_equals_one_em_step():
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, (400, 2)), rng.normal(4, 1, (400, 2))])
    init = dict(weights_init=[0.5, 0.5], means_init=[[0.5, 0.5], [3.0, 3.0]], precisions_init=[[1.0, 1.0], [1.0, 1.0]])
    one = GMM(2, max_iter=1, tol=0, dtype=np.float64, **init)
    with pytest.warns(UserWarning, match="did not converge"):
        one.fit(X)
    model = GMM(2, dtype=np.float64, **init).initialize(X)
    chunks = np.array_split(X, 5)
    model.m_step(sum(model.accumulate(c) for c in chunks))
    np.testing.assert_allclose(model.means_, one.means_, rtol=1e-12)
    np.testing.assert_allclose(model.covariances_, one.covariances_, rtol=1e-12)
    np.testing.assert_allclose(model.weights_, one.weights_, rtol=1e-12)


def test_m_step_rejects_wrong_stats():
    gmm = GMM.from_params([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1.0]], "diag")
    with pytest.raises(ValueError, match="3 components"):
        gmm.m_step(SufficientStats.zeros(3, 1))
    with pytest.raises(ValueError, match="no frames"):
        gmm.m_step(SufficientStats.zeros(2, 1))
    full = GMM.from_params([1.0], [[0.0, 0.0]], [np.eye(2)], "full")
    with pytest.raises(ValueError, match="needs full statistics"):
        full.m_step(SufficientStats.zeros(1, 2, "diag"))
    with pytest.raises(TypeError):
        gmm.m_step({"n": 1})


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_float32_narrow_component_far_from_the_mixture_mean_is_exact(covariance_type):
    # component 1 is 1e4 of its own sigmas away from the mixture mean: the GEMM expansion
    # would lose every digit in float32; such components are scored with exact centring
    rng = np.random.default_rng(5)
    d = 3
    means = np.array([[0.0] * d, [50.0] * d])
    var = np.array([[1.0] * d, [1e-4] * d])
    cov = var if covariance_type == "diag" else np.stack([np.diag(v) for v in var])
    X = np.vstack([rng.normal(0, 1, (200, d)), 50.0 + 1e-2 * rng.normal(size=(200, d))])
    g32 = GMM.from_params([0.5, 0.5], means, cov, covariance_type, dtype=np.float32)
    g64 = GMM.from_params([0.5, 0.5], means, cov, covariance_type, dtype=np.float64)
    assert g32._plan().risky.tolist() == [1]
    np.testing.assert_allclose(g32.score_samples(X), g64.score_samples(X), atol=2e-3)
    ref = _reference_logprob(X, [0.5, 0.5], means, _full_covs(cov, covariance_type, 2, d))
    np.testing.assert_allclose(g32.weighted_log_prob(X), ref, rtol=1e-5, atol=2e-3)
    s32, s64 = g32.accumulate(X), g64.accumulate(X)
    np.testing.assert_allclose(s32.n, s64.n, rtol=1e-5)
    np.testing.assert_allclose(s32.f / s32.n[:, None], s64.f / s64.n[:, None], rtol=1e-6, atol=1e-4)
    # the variance of the narrow component survives (S/n - mu^2 is ~1e-4 of S/n)
    var32 = s32.to_diag().s[1] / s32.n[1] - (s32.f[1] / s32.n[1]) ** 2
    var64 = s64.to_diag().s[1] / s64.n[1] - (s64.f[1] / s64.n[1]) ** 2
    np.testing.assert_allclose(var32, var64, rtol=1e-3)
