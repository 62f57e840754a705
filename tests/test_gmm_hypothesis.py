"""Property test: random fits on nasty data never leave NaN or Inf in any parameter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmmspeech import GMM


@st.composite
def nasty_data(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "duplicates", "integers", "constant_dim", "tiny_spread"]))
    X = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if kind == "duplicates":
        X = X[rng.integers(0, max(1, n // 4), size=n)]
    elif kind == "integers":
        X = np.round(X * 2)
    elif kind == "constant_dim":
        X[:, rng.integers(0, d)] = draw(st.sampled_from([0.0, 7.0, -1e6]))
    elif kind == "tiny_spread":
        X = 1.0 + 1e-9 * X
    X = X + draw(st.sampled_from([0.0, 1e4, 1e6, -1e6]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return X.astype(dtype) if draw(st.booleans()) else X, dtype


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=nasty_data(),
    k=st.integers(1, 5),
    covariance_type=st.sampled_from(["diag", "full", "spherical", "tied"]),
    init_params=st.sampled_from(["kmeans", "k-means++", "random", "random_from_data", "split"]),
    var_floor_rel=st.sampled_from([0.0, 1e-3]),
    seed=st.integers(0, 1000),
)
def test_fit_never_produces_non_finite_parameters(data, k, covariance_type, init_params, var_floor_rel, seed):
    X, dtype = data
    n_distinct = np.unique(X, axis=0).shape[0]
    model = GMM(k, covariance_type=covariance_type, init_params=init_params, var_floor_rel=var_floor_rel,
                random_state=seed, max_iter=15, dtype=dtype)
    if k > X.shape[0]:
        with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
            model.fit(X)
        return
    if k > n_distinct:
        with pytest.raises(ValueError, match="distinct points"):
            model.fit(X)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        arr = getattr(model, name)
        assert np.all(np.isfinite(arr)), (name, arr)
    assert np.all(model.weights_ >= 0) and model.weights_.sum() == pytest.approx(1.0)
    cov = model.covariances_
    if covariance_type in ("full", "tied"):
        cov = np.linalg.eigvalsh(cov)
    assert np.all(cov > 0)
    assert all(np.isfinite(h) for h in model.history_)
    assert np.all(np.isfinite(model.score_samples(X)))


def test_anderson_step_on_degenerate_secants_falls_back_to_plain_em(monkeypatch):
    """Found by the property test above (7 values 1e6 apart by 1e-3, full covariances, no
    relative floor): LAPACK's least squares raised "SVD did not converge" on the secants and
    the fit crashed. Non-finite secants, or LAPACK giving up, now mean a plain EM step."""
    from gmmspeech.mixture import gmm as gmm_module

    x = np.array([1.0, 2.0, 3.0])
    for bad in (np.nan, np.inf):
        assert gmm_module._anderson_step([x, x + 1, x + bad], [x, x + 2, x + 5]) == (None, None)
    ok = gmm_module._anderson_step([x, x + 1, x + 3], [x + 1, x + 3, x + 4])
    assert ok[0] is not None

    def give_up(*a, **k):
        raise np.linalg.LinAlgError("SVD did not converge in Linear Least Squares")

    monkeypatch.setattr(gmm_module.np.linalg, "lstsq", give_up)
    assert gmm_module._anderson_step([x, x + 1, x + 3], [x + 1, x + 3, x + 4]) == (None, None)
