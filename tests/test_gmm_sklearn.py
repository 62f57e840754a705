"""Equivalence with scikit-learn's GaussianMixture: same initial parameters, same number of
EM iterations, same parameters (float64, reg_covar semantics, no relative floor)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn_mixture = pytest.importorskip("sklearn.mixture")
GaussianMixture = sklearn_mixture.GaussianMixture

from gmmspeech import GMM  # noqa: E402

TYPES = ["spherical", "tied", "diag", "full"]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 3))
    return np.vstack([
        rng.normal([0, 0, 0], 1.0, size=(250, 3)),
        rng.multivariate_normal([4, 1, -2], a @ a.T + 0.2 * np.eye(3), size=250),
        rng.normal([-3, 5, 2], [0.5, 2.0, 1.0], size=(250, 3)),
        rng.normal([2, -4, 6], 1.5, size=(250, 3)),
    ]) + np.array([100.0, -50.0, 3.0])


def _init(X, covariance_type, k=4, seed=1):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), size=k, replace=False)]
    weights = rng.dirichlet(np.ones(k) * 5)
    var = X.var(axis=0)
    prec = {
        "spherical": np.full(k, 1.0 / var.mean()),
        "diag": np.repeat((1.0 / var)[None], k, axis=0) * rng.uniform(0.5, 2.0, size=(k, 1)),
        "tied": np.linalg.inv(np.cov(X, rowvar=False)),
        "full": np.stack([np.linalg.inv(np.cov(X, rowvar=False)) * s for s in rng.uniform(0.5, 2.0, k)]),
    }[covariance_type]
    return dict(weights_init=weights, means_init=means, precisions_init=prec)


def _pair(X, covariance_type, n_iter, tol=0.0, **extra):
    init = _init(X, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = GaussianMixture(4, covariance_type=covariance_type, max_iter=n_iter, tol=tol, reg_covar=1e-6,
                             **init).fit(X)
        ours = GMM(4, covariance_type=covariance_type, max_iter=n_iter, tol=tol, reg_covar=1e-6,
                   var_floor_rel=0.0, dtype=np.float64, accelerate=None, stopping="gain", **init,
                   **extra).fit(X)
    return sk, ours


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("n_iter", [1, 8])
def test_parameters_equal_sklearn_after_same_iterations(covariance_type, n_iter):
    X = _data()
    sk, ours = _pair(X, covariance_type, n_iter, chunk_size=97)
    np.testing.assert_allclose(ours.weights_, sk.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.precisions_, sk.precisions_, rtol=1e-6, atol=1e-12)
    pc_ours = ours.precisions_cholesky_
    pc_sk = sk.precisions_cholesky_
    if covariance_type in ("full", "tied"):  # compare the products (the factors' triangle may differ)
        np.testing.assert_allclose(pc_ours @ np.swapaxes(pc_ours, -1, -2),
                                   pc_sk @ np.swapaxes(pc_sk, -1, -2), rtol=1e-6)
    else:
        np.testing.assert_allclose(pc_ours, pc_sk, rtol=1e-6)
    assert ours.n_iter_ == sk.n_iter_ == n_iter
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9)
    # predictions on the fitted model
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-9)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-9)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_convergence_by_tol_stops_at_the_same_iteration(covariance_type):
    X = _data(1)
    sk, ours = _pair(X, covariance_type, 200, tol=1e-4)
    assert sk.converged_ and ours.converged_
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_float32_engine_close_to_sklearn(covariance_type):
    X = _data(2)
    init = _init(X, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = GaussianMixture(4, covariance_type=covariance_type, max_iter=5, tol=0, **init).fit(X)
        ours = GMM(4, covariance_type=covariance_type, max_iter=5, tol=0, var_floor_rel=0.0,
                   dtype=np.float32, accelerate=None, stopping="gain", **init).fit(X.astype(np.float32))
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-3, atol=1e-4)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, abs=1e-4)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_univariate_shapes_match_sklearn(covariance_type):
    x = np.concatenate([np.random.default_rng(0).normal(0, 1, 150), np.random.default_rng(1).normal(6, 1, 150)])
    ours = GMM(2, covariance_type=covariance_type, random_state=0).fit(x)
    sk = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(x[:, None])
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(ours, name).shape == getattr(sk, name).shape, name
    assert ours.sample(5)[0].shape == sk.sample(5)[0].shape


def test_clone_with_sklearn():
    from sklearn.base import clone

    gmm = GMM(3, covariance_type="tied", reg_covar=1e-4, random_state=2)
    c = clone(gmm)
    assert c.get_params() == gmm.get_params()
