"""MAP adaptation (Reynolds et al. 2000) against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from gmmspeech import GMM, SufficientStats, enroll, map_adapt


def _ubm(kind="diag"):
    w = np.array([0.5, 0.3, 0.2])
    mu = np.array([[0.0, 0.0], [4.0, 1.0], [-3.0, 5.0]])
    if kind == "diag":
        cov = np.array([[1.0, 2.0], [0.5, 1.0], [1.5, 0.7]])
    else:
        cov = np.array([[[1.0, 0.3], [0.3, 2.0]], [[0.5, 0.1], [0.1, 1.0]], [[1.5, -0.4], [-0.4, 0.7]]])
    return GMM.from_params(w, mu, cov, covariance_type=kind)


def _posteriors(ubm, X):
    """Responsibilities computed here from scipy densities (independent of GMM.accumulate)."""
    from scipy.stats import multivariate_normal

    cov = ubm.covariances_
    dens = np.column_stack([
        ubm.weights_[k] * multivariate_normal(ubm.means_[k], np.diag(cov[k]) if cov.ndim == 2 else cov[k]).pdf(X)
        for k in range(len(ubm.weights_))
    ])
    return dens / dens.sum(1, keepdims=True)


def test_means_hand_computation():
    ubm = _ubm()
    r = np.random.default_rng(0)
    X = r.normal([3.5, 1.5], 0.6, size=(40, 2))
    g = _posteriors(ubm, X)
    n = g.sum(0)
    ex = (g.T @ X) / n[:, None]
    alpha = n / (n + 16.0)
    want = alpha[:, None] * ex + (1 - alpha[:, None]) * ubm.means_
    m = map_adapt(ubm, X, relevance_factor=16.0, adapt="m")
    np.testing.assert_allclose(m.means_, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.weights_, ubm.weights_)
    np.testing.assert_allclose(m.covariances_, ubm.covariances_)


def test_component_without_data_keeps_ubm_and_weights_renormalise():
    ubm = _ubm()
    n = np.array([10.0, 0.0, 30.0])
    f = np.array([[5.0, -10.0], [0.0, 0.0], [-60.0, 160.0]])
    s = np.array([[40.0, 50.0], [0.0, 0.0], [200.0, 900.0]])
    st = SufficientStats(n, f, s, 0.0, 40.0, "diag")
    m = map_adapt(ubm, st, relevance_factor={"m": 4.0, "w": 8.0, "v": 2.0}, adapt="mwv")
    np.testing.assert_array_equal(m.means_[1], ubm.means_[1])
    np.testing.assert_array_equal(m.covariances_[1], ubm.covariances_[1])
    # weights: gamma [alpha n/T + (1-alpha) w]
    aw = n / (n + 8.0)
    w = aw * n / n.sum() + (1 - aw) * ubm.weights_
    np.testing.assert_allclose(m.weights_, w / w.sum(), rtol=1e-12)
    assert m.weights_.sum() == pytest.approx(1.0)


def test_variance_formula_hand_computation():
    ubm = _ubm()
    n = np.array([10.0, 2.0, 30.0])
    f = np.array([[5.0, -10.0], [9.0, 2.5], [-60.0, 160.0]])
    s = np.array([[40.0, 50.0], [41.0, 4.0], [200.0, 900.0]])
    st = SufficientStats(n, f, s, 0.0, 42.0, "diag")
    rm, rv = 4.0, 2.0
    m = map_adapt(ubm, st, relevance_factor={"m": rm, "w": 16.0, "v": rv}, adapt="mv")
    for k in range(3):
        am, av = n[k] / (n[k] + rm), n[k] / (n[k] + rv)
        mu = am * f[k] / n[k] + (1 - am) * ubm.means_[k]
        var = av * s[k] / n[k] + (1 - av) * (ubm.covariances_[k] + ubm.means_[k] ** 2) - mu**2
        np.testing.assert_allclose(m.means_[k], mu, rtol=1e-12)
        np.testing.assert_allclose(m.covariances_[k], var, rtol=1e-10)


def test_full_covariance_hand_computation():
    ubm = _ubm("full")
    r = np.random.default_rng(1)
    X = r.normal([3.0, 1.0], 0.8, size=(60, 2))
    g = _posteriors(ubm, X)
    m = map_adapt(ubm, X, relevance_factor=10.0, adapt="mwv")
    for k in range(3):
        nk = g[:, k].sum()
        a = nk / (nk + 10.0)
        ex = g[:, k] @ X / nk
        exx = (g[:, k, None] * X).T @ X / nk
        mu = a * ex + (1 - a) * ubm.means_[k]
        cov = a * exx + (1 - a) * (ubm.covariances_[k] + np.outer(ubm.means_[k], ubm.means_[k])) - np.outer(mu, mu)
        np.testing.assert_allclose(m.means_[k], mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m.covariances_[k], cov, rtol=1e-4, atol=1e-6)


def test_huge_data_reaches_ml_estimate():
    ubm = _ubm()
    n = np.array([1e12, 2e12, 3e12])
    mu_ml = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    var_ml = np.array([[0.2, 0.4], [1.0, 3.0], [0.7, 0.1]])
    f = n[:, None] * mu_ml
    s = n[:, None] * (var_ml + mu_ml**2)
    st = SufficientStats(n, f, s, 0.0, n.sum(), "diag")
    m = map_adapt(ubm, st, relevance_factor=16.0, adapt="mwv")
    np.testing.assert_allclose(m.means_, mu_ml, rtol=1e-9)
    np.testing.assert_allclose(m.covariances_, var_ml, rtol=1e-6)
    np.testing.assert_allclose(m.weights_, n / n.sum(), rtol=1e-9)


def test_enroll_parallel_matches_sequential_and_input_forms():
    ubm = _ubm()
    r = np.random.default_rng(2)
    spk = {"a": r.normal(0, 1, (50, 2)), "b": [r.normal(4, 1, (20, 2)), r.normal(4, 1, (30, 2))]}
    seq = enroll(ubm, spk, n_jobs=1)
    par = enroll(ubm, spk, n_jobs=2)
    assert list(par) == ["a", "b"]
    for k in spk:
        np.testing.assert_allclose(par[k].means_, seq[k].means_)
    pooled = map_adapt(ubm, np.vstack(spk["b"]))
    np.testing.assert_allclose(seq["b"].means_, pooled.means_, rtol=1e-6)
    lst = enroll(ubm, [spk["a"], ubm.accumulate(spk["a"])])
    np.testing.assert_allclose(lst[0].means_, lst[1].means_)


def test_errors():
    ubm = _ubm()
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="adapt="):
        map_adapt(ubm, X, adapt="mx")
    with pytest.raises(ValueError, match="unknown keys"):
        map_adapt(ubm, X, relevance_factor={"mean": 3})
    with pytest.raises(ValueError, match=">= 0"):
        map_adapt(ubm, X, relevance_factor=-1)
    with pytest.raises(ValueError, match="no frames"):
        map_adapt(ubm, [np.zeros((0, 2))])
    tied = GMM.from_params([0.5, 0.5], [[0.0], [1.0]], np.eye(1), covariance_type="tied")
    with pytest.raises(ValueError, match="'diag' and 'full'"):
        map_adapt(tied, np.zeros((3, 1)))
