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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adapted_model_computes_in_its_ubms_dtype(dtype):
    ubm = _ubm()
    ubm.set_params(dtype=dtype)
    X = np.random.default_rng(0).normal([3.5, 1.5], 0.6, size=(40, 2))
    m = map_adapt(ubm, X, relevance_factor=16.0, adapt="mwv")
    assert np.dtype(m.dtype) == np.dtype(dtype)
    # float64 scores of the adapted model: its own density, to float64 precision
    from scipy.stats import multivariate_normal

    ref = np.log(sum(m.weights_[k] * multivariate_normal(m.means_[k], np.diag(m.covariances_[k])).pdf(X)
                     for k in range(3)))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(m.score_samples(X), ref, rtol=tol, atol=tol)


def test_frames_the_ubm_cannot_score_are_an_error_not_the_ubm_again():
    # frames ~1e150 overflow the float32 E-step: every posterior NaN, which compared as "no
    # data", so the adapted model was the UBM itself with a NaN map_n_ and no error
    ubm = _ubm()
    X = np.random.default_rng(0).normal([3.5, 1.5], 0.6, size=(40, 2))
    with pytest.raises(ValueError, match="MAP adaptation: the statistics hold NaN or infinite values"):
        map_adapt(ubm, X * 1e150, relevance_factor=16.0, adapt="m")
    ubm.set_params(dtype=np.float64)  # float64 scores them (as improbable, but finite)
    m = map_adapt(ubm, X * 1e150, relevance_factor=16.0, adapt="m")
    assert np.all(np.isfinite(m.map_n_)) and np.all(np.isfinite(m.means_))


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
    """Different alpha^m and alpha^v: the variance is adapted around the adapted mean."""
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
        # E_k[(x - mu)^2] from the raw sums, then the UBM's second moment about mu
        e_data = s[k] / n[k] - 2 * mu * f[k] / n[k] + mu**2
        var = av * e_data + (1 - av) * (ubm.covariances_[k] + (ubm.means_[k] - mu) ** 2)
        np.testing.assert_allclose(m.means_[k], mu, rtol=1e-12)
        np.testing.assert_allclose(m.covariances_[k], var, rtol=1e-10)


def _eq13_diag(ubm, n, f, s, a):
    """Reynolds et al. (2000) eq. 12 and 13, transcribed (one alpha for means and variances)."""
    mu = a[:, None] * f / n[:, None] + (1 - a[:, None]) * ubm.means_
    var = (a[:, None] * s / n[:, None] + (1 - a[:, None]) * (ubm.covariances_ + ubm.means_**2)
           - mu**2)
    return mu, var


def _eq13_full(ubm, n, f, S, a):
    K = len(n)
    mu = a[:, None] * f / n[:, None] + (1 - a[:, None]) * ubm.means_
    cov = np.empty_like(S)
    for k in range(K):
        cov[k] = (a[k] * S[k] / n[k]
                  + (1 - a[k]) * (ubm.covariances_[k] + np.outer(ubm.means_[k], ubm.means_[k]))
                  - np.outer(mu[k], mu[k]))
    return mu, cov


@pytest.mark.parametrize("kind", ["diag", "full"])
@pytest.mark.parametrize("adapt", ["mv", "mwv"])
@pytest.mark.parametrize("rel", [16.0, 3.0, {"m": 5.0, "w": 1.0, "v": 5.0}])
def test_equals_reynolds_eq13_when_coefficients_are_equal(kind, adapt, rel):
    ubm = _ubm(kind)
    X = np.random.default_rng(5).normal([2.0, 1.5], [1.5, 0.8], size=(80, 2))
    g = _posteriors(ubm, X)
    n = g.sum(0)
    f = g.T @ X
    if kind == "diag":
        s = g.T @ X**2
        r = rel if isinstance(rel, float) else rel["m"]
        mu, var = _eq13_diag(ubm, n, f, s, n / (n + r))
    else:
        s = np.einsum("tk,ti,tj->kij", g, X, X)
        r = rel if isinstance(rel, float) else rel["m"]
        mu, var = _eq13_full(ubm, n, f, s, n / (n + r))
    st = SufficientStats(n, f, s, 0.0, float(n.sum()), kind)
    m = map_adapt(ubm, st, relevance_factor=rel, adapt=adapt)
    np.testing.assert_allclose(m.means_, mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.covariances_, var, rtol=1e-9, atol=1e-12)


def _shifted(ubm, c):
    kind = ubm.covariance_type
    return GMM.from_params(ubm.weights_, ubm.means_ + c, ubm.covariances_, covariance_type=kind)


ADAPTS = ["m", "w", "v", "mw", "mv", "wv", "mwv"]
RELEVANCES = [16.0, 4.0, 0.5, {"m": 4.0}, {"v": 4.0}, {"m": 2.0, "w": 8.0, "v": 32.0},
              {"m": 32.0, "w": 1.0, "v": 0.25}]


@pytest.mark.parametrize("kind", ["diag", "full"])
@pytest.mark.parametrize("rel", RELEVANCES, ids=lambda r: str(r))
@pytest.mark.parametrize("adapt", ADAPTS)
def test_shift_invariance_for_every_adapt_and_relevance(kind, adapt, rel):
    """Shifting the UBM and the data by a constant moves the means by it and changes no
    variance beyond rounding, whatever the coefficients (eq. 13 with alpha^v != alpha^m
    fails this: 321 of 640 variances hit the floor after a +5 shift)."""
    ubm = _ubm(kind)
    X = np.random.default_rng(7).normal([2.5, 2.0], [1.2, 0.9], size=(60, 2))
    g = _posteriors(ubm, X)  # the same posteriors before and after the shift
    n = g.sum(0)
    c = np.array([5.0, -40.0])
    Xs = X + c
    if kind == "diag":
        s, ss = g.T @ X**2, g.T @ Xs**2
    else:
        s, ss = (np.einsum("tk,ti,tj->kij", g, Y, Y) for Y in (X, Xs))
    a = map_adapt(ubm, SufficientStats(n, g.T @ X, s, 0.0, 60.0, kind), relevance_factor=rel,
                  adapt=adapt)
    b = map_adapt(_shifted(ubm, c), SufficientStats(n, g.T @ Xs, ss, 0.0, 60.0, kind),
                  relevance_factor=rel, adapt=adapt)
    np.testing.assert_allclose(b.means_ - c, a.means_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-12)
    # variances stay positive (definite) and untouched unless "v" is adapted
    if kind == "diag":
        assert np.all(a.covariances_ > 0)
    else:
        assert np.all(np.linalg.eigvalsh(a.covariances_) > 0)
    if "v" not in adapt:
        np.testing.assert_array_equal(a.covariances_, ubm.covariances_)
    else:
        assert not np.allclose(a.covariances_, ubm.covariances_)
    # through the frames (E-step included): the same up to float32 E-step rounding
    a2 = map_adapt(ubm, X, relevance_factor=rel, adapt=adapt)
    b2 = map_adapt(_shifted(ubm, c), Xs, relevance_factor=rel, adapt=adapt)
    np.testing.assert_allclose(b2.covariances_, a2.covariances_, rtol=2e-4, atol=1e-6)


def test_eq13_with_unequal_coefficients_is_not_shift_invariant():
    """The reason for the form above: the textbook eq. 13 transcribed with alpha^v != alpha^m
    changes under a shift (so the shift test can tell the two apart)."""
    ubm = _ubm()
    X = np.random.default_rng(7).normal([2.5, 2.0], [1.2, 0.9], size=(60, 2))
    g = _posteriors(ubm, X)
    n = g.sum(0)

    def eq13(u, Y, am, av):
        mu = am[:, None] * (g.T @ Y) / n[:, None] + (1 - am[:, None]) * u.means_
        return (av[:, None] * (g.T @ Y**2) / n[:, None]
                + (1 - av[:, None]) * (u.covariances_ + u.means_**2) - mu**2)

    am, av = n / (n + 4.0), n / (n + 16.0)
    c = np.array([5.0, 5.0])
    assert not np.allclose(eq13(_shifted(ubm, c), X + c, am, av), eq13(ubm, X, am, av), rtol=1e-3)
    m = map_adapt(ubm, X, relevance_factor={"m": 4.0}, adapt="mv")
    assert not np.allclose(m.covariances_, np.maximum(eq13(ubm, X, am, av), 1e-6), rtol=1e-3)


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
