"""MMI training of isolated-word GMM-HMMs (gmmspeech.mixture.mmi): statistics against a plain
numpy loop transcription written here, the EBW update against its closed form computed here,
objective / accuracy on a mismatched synthetic problem, degenerate inputs, the tau -> inf limit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gmmspeech.mixture import io as mio
from gmmspeech.mixture.hmm import GMMHMM
from gmmspeech.mixture.mmi import ebw_update, ebw_weights, mmi_stats, mmi_train
from gmmspeech.mixture.stats import SufficientStats

# ----------------------------------------------------------------------------- references


def tiny_model(rng, s=2, m=2, d=2, shift=0.0):
    a = np.zeros((s, s))
    for i in range(s - 1):
        a[i, i] = rng.uniform(0.4, 0.8)
        a[i, i + 1] = 1 - a[i, i]
    a[-1, -1] = 1.0
    w = rng.uniform(0.3, 1.0, (s, m))
    w /= w.sum(axis=1, keepdims=True)
    means = rng.normal(0, 1.5, (s, m, d)) + shift
    cov = rng.uniform(0.5, 2.0, (s, m, d))
    return GMMHMM.from_params(np.eye(1, s)[0], a, w, means, cov, max_jump=1, dtype=np.float64)


def gauss_logpdf(x, mu, var):
    """log N(x; mu, diag(var)) of one frame, element by element."""
    out = 0.0
    for k in range(x.shape[0]):
        out += -0.5 * (math.log(2 * math.pi * var[k]) + (x[k] - mu[k]) ** 2 / var[k])
    return out


def loop_occupancies(model, x):
    """Plain-loop log-domain forward-backward for one sequence (T >= S: the path ends in the
    last state); returns (log p(x), occupancy (T, S*M) state-major)."""
    s, m, _ = model.means_.shape
    t_len = x.shape[0]
    comp = np.zeros((t_len, s, m))
    for t in range(t_len):
        for j in range(s):
            for k in range(m):
                comp[t, j, k] = math.log(model.weights_[j, k]) + gauss_logpdf(
                    x[t], model.means_[j, k], model.covariances_[j, k])
    lb = np.zeros((t_len, s))
    for t in range(t_len):
        for j in range(s):
            mx = comp[t, j].max()
            lb[t, j] = mx + math.log(sum(math.exp(v - mx) for v in comp[t, j]))

    def lse(vals):
        vals = [v for v in vals if v > -np.inf]
        if not vals:
            return -np.inf
        mx = max(vals)
        return mx + math.log(sum(math.exp(v - mx) for v in vals))

    def la(i, j):
        p = model.transmat_[i, j]
        return math.log(p) if p > 0 else -np.inf

    alpha = np.full((t_len, s), -np.inf)
    alpha[0, 0] = lb[0, 0]
    for t in range(1, t_len):
        for j in range(s):
            alpha[t, j] = lse([alpha[t - 1, i] + la(i, j) for i in range(s)]) + lb[t, j]
    beta = np.full((t_len, s), -np.inf)
    beta[-1, s - 1] = 0.0
    for t in range(t_len - 2, -1, -1):
        for i in range(s):
            beta[t, i] = lse([la(i, j) + lb[t + 1, j] + beta[t + 1, j] for j in range(s)])
    ll = alpha[-1, s - 1]
    occ = np.zeros((t_len, s * m))
    for t in range(t_len):
        for j in range(s):
            g = math.exp(alpha[t, j] + beta[t, j] - ll)
            for k in range(m):
                occ[t, j * m + k] = g * math.exp(comp[t, j, k] - lb[t, j])
    return ll, occ


def loop_mmi_stats(models, X, y, kappa):
    labels = list(models)
    ll = np.zeros((len(X), len(labels)))
    occs = {}
    for u, x in enumerate(X):
        for k, c in enumerate(labels):
            ll[u, k], occs[u, c] = loop_occupancies(models[c], x)
    num, den = {}, {}
    post = np.zeros_like(ll)
    for u in range(len(X)):
        a = kappa * ll[u]
        p = np.exp(a - a.max())
        post[u] = p / p.sum()
    for k, c in enumerate(labels):
        s, m, d = models[c].means_.shape
        stats = {key: [np.zeros(s * m), np.zeros((s * m, d)), np.zeros((s * m, d))] for key in ("num", "den")}
        for u, x in enumerate(X):
            occ = occs[u, c]
            for key, wgt in (("num", 1.0 if y[u] == c else 0.0), ("den", post[u, k])):
                for t in range(x.shape[0]):
                    for g in range(s * m):
                        stats[key][0][g] += wgt * occ[t, g]
                        stats[key][1][g] += wgt * occ[t, g] * x[t]
                        stats[key][2][g] += wgt * occ[t, g] * x[t] ** 2
        num[c], den[c] = stats["num"], stats["den"]
    return ll, post, num, den


def two_class_data(rng):
    X, y = [], []
    for c, shift in (("a", 0.0), ("b", 0.7)):
        for _ in range(3):
            t = int(rng.integers(3, 7))
            X.append(rng.normal(shift, 1.2, (t, 2)))
            y.append(c)
    return X, y


# ----------------------------------------------------------------------------- statistics


def test_statistics_match_plain_loop_transcription():
    rng = np.random.default_rng(1)
    models = {"a": tiny_model(rng), "b": tiny_model(rng, shift=0.5)}
    X, y = two_class_data(rng)
    kappa = 0.7
    st = mmi_stats(models, X, y, acoustic_scale=kappa, min_posterior=0.0)
    ll, post, num, den = loop_mmi_stats(models, X, y, kappa)
    np.testing.assert_allclose(st.loglik, ll, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(st.posteriors, post, rtol=1e-8, atol=1e-12)
    yi = np.array([0 if c == "a" else 1 for c in y])
    np.testing.assert_allclose(st.objective, np.log(post[np.arange(len(X)), yi]).sum(), rtol=1e-9)
    assert st.accuracy == pytest.approx(np.mean(np.argmax(ll, axis=1) == yi))
    for c in models:
        for got, ref in ((st.num[c], num[c]), (st.den[c], den[c])):
            np.testing.assert_allclose(got.n, ref[0], rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(got.f, ref[1], rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(got.s, ref[2], rtol=1e-8, atol=1e-10)
    # the numerator counts are the frames of the class; the denominator counts sum to the
    # posterior-weighted frames
    lengths = np.array([x.shape[0] for x in X])
    for k, c in enumerate(models):
        assert st.num[c].n.sum() == pytest.approx(lengths[yi == k].sum())
        assert st.den[c].n.sum() == pytest.approx((post[:, k] * lengths).sum())


def test_pruning_drops_only_small_denominator_pairs():
    rng = np.random.default_rng(2)
    models = {"a": tiny_model(rng), "b": tiny_model(rng, shift=3.0)}
    X, y = two_class_data(rng)
    full = mmi_stats(models, X, y, acoustic_scale=1.0, min_posterior=0.0)
    thr = 0.05
    pruned = mmi_stats(models, X, y, acoustic_scale=1.0, min_posterior=thr)
    for k, c in enumerate(models):
        kept = (full.posteriors[:, k] >= thr) | (np.array(y) == c)
        lengths = np.array([x.shape[0] for x in X])
        assert pruned.den[c].n.sum() == pytest.approx((full.posteriors[kept, k] * lengths[kept]).sum())
        np.testing.assert_allclose(pruned.num[c].f, full.num[c].f)


# ----------------------------------------------------------------------------- EBW update


def hand_ebw(gn, xn, sn, gd, xd, sd, mu, var, tau, E, floor):
    """Closed-form I-smoothed EBW of one diagonal Gaussian; D_min by bisection on the
    positivity of every variance (independent of the library's quadratic)."""
    mu_ml = xn / gn
    var_ml = np.maximum(sn / gn - mu_ml**2, floor)
    gn2, xn2, sn2 = gn + tau, xn + tau * mu_ml, sn + tau * (var_ml + mu_ml**2)

    def update(D):
        den = gn2 - gd + D
        m = (xn2 - xd + D * mu) / den
        v = (sn2 - sd + D * (var + mu**2)) / den - m**2
        return m, v, den

    def ok(D):
        _, v, den = update(D)
        return den > 0 and np.all(v > 0)

    lo, hi = 0.0, 1.0
    if ok(0.0):
        d_min = 0.0
    else:
        while not ok(hi):
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        d_min = hi
    D = max(2 * d_min, E * gd)
    m, v, _ = update(D)
    return m, np.maximum(v, floor), D


@pytest.mark.parametrize("seed", range(6))
def test_ebw_update_matches_closed_form(seed):
    rng = np.random.default_rng(seed)
    k, d = 4, 3
    x = rng.normal(size=(40, d))
    rn = rng.dirichlet(np.ones(k), 40)
    rd = rng.dirichlet(np.ones(k), 40) * rng.uniform(0.5, 3.0)  # denominators may exceed numerators
    num = SufficientStats(rn.sum(0), rn.T @ x, rn.T @ x**2)
    den = SufficientStats(rd.sum(0), rd.T @ (x + 0.3), rd.T @ (x + 0.3) ** 2)
    mu0 = rng.normal(size=(k, d))
    var0 = rng.uniform(0.3, 2.0, (k, d))
    floor = np.full(d, 1e-3)
    tau, E = float(rng.choice([0.0, 5.0, 50.0])), 2.0
    mu, var, D = ebw_update(num, den, means=mu0, covariances=var0, var_floor=floor, tau=tau, E=E)
    for g in range(k):
        m_ref, v_ref, d_ref = hand_ebw(num.n[g], num.f[g], num.s[g], den.n[g], den.f[g], den.s[g],
                                       mu0[g], var0[g], tau, E, floor)
        assert D[g] == pytest.approx(d_ref, rel=1e-6)
        np.testing.assert_allclose(mu[g], m_ref, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(var[g], v_ref, rtol=1e-6, atol=1e-9)
    assert np.all(var >= floor) and np.all(np.isfinite(mu))


def test_weight_update_maximises_povey_auxiliary():
    rng = np.random.default_rng(3)
    gn = rng.uniform(0, 10, (3, 4))
    gd = rng.uniform(0, 10, (3, 4))
    c0 = rng.dirichlet(np.ones(4), 3)
    c = ebw_weights(gn, gd, c0, tau=0.0, update="mmi", n_iter=2000)
    np.testing.assert_allclose(c.sum(axis=1), 1.0)

    def aux(w):
        return np.sum(gn * np.log(w) - gd * w / c0, axis=1)

    # the fixed point maximises the (concave) auxiliary on the simplex: no random point beats it
    for _ in range(200):
        w = rng.dirichlet(np.ones(4), 3)
        assert np.all(aux(c) >= aux(w) - 1e-9)
    np.testing.assert_allclose(ebw_weights(gn, gd, c0, update="ml"), gn / gn.sum(axis=1, keepdims=True),
                               rtol=1e-4)


# ----------------------------------------------------------------------------- training


def mismatched_problem(seed=0):
    """3 overlapping classes with heavy-tailed (Student t) frames; models with one Gaussian per state."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    base = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    for c in range(3):
        for _ in range(30):
            t = int(rng.integers(15, 30))
            seg = np.repeat(np.arange(3), t // 3 + 1)[:t]
            X.append(base[seg] + c * np.array([0.6, 0.3]) + 0.8 * rng.standard_t(3, size=(t, 2)))
            y.append(f"w{c}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {c: GMMHMM(3, 1, n_threads=1).fit([x for x, lab in zip(X, y) if lab == c]) for c in sorted(set(y))}
    return models, X, y


@pytest.fixture(scope="module")
def problem():
    return mismatched_problem()


def test_objective_increases_and_accuracy_holds(problem):
    models, X, y = problem
    before = {c: (m.means_.copy(), m.covariances_.copy(), m.weights_.copy()) for c, m in models.items()}
    res = mmi_train(models, X, y, n_iter=4, acoustic_scale=1.0, tau=10.0)
    obj = [t["objective"] for t in res.trace]
    acc = [t["accuracy"] for t in res.trace]
    assert len(res.trace) == 5 and len(res.history) == 5
    assert np.all(np.diff(obj) > 0), obj
    assert acc[-1] >= acc[0], acc
    # inputs untouched, outputs new objects
    for c, m in models.items():
        np.testing.assert_array_equal(m.means_, before[c][0])
        np.testing.assert_array_equal(m.covariances_, before[c][1])
        np.testing.assert_array_equal(m.weights_, before[c][2])
        assert res.models[c] is not m and res.history[0][c] is m
        np.testing.assert_array_equal(res.models[c].transmat_, m.transmat_)
    # the trace's objective is that of the returned models
    st = mmi_stats(res.models, X, y, acoustic_scale=1.0)
    assert st.objective == pytest.approx(obj[-1], rel=1e-9)


def test_tau_infinite_gives_ml_reestimate(problem):
    models, X, y = problem
    res = mmi_train(models, X, y, n_iter=1, tau=np.inf, acoustic_scale=1.0)
    huge = mmi_train(models, X, y, n_iter=1, tau=1e9, acoustic_scale=1.0)
    for c, m in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml = GMMHMM(3, 1, init_params="", max_iter=1, n_threads=1)
            ml.set_params(**{k: v for k, v in m.get_params().items() if k not in ("init_params", "max_iter")})
            for a in ("startprob_", "transmat_", "weights_", "means_", "covariances_", "precisions_cholesky_",
                      "var_floor_"):
                setattr(ml, a, getattr(m, a).copy())
            ml.fit([x for x, lab in zip(X, y) if lab == c])
        for got in (res.models[c], huge.models[c]):
            np.testing.assert_allclose(got.means_, ml.means_, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got.covariances_, ml.covariances_, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got.weights_, ml.weights_, rtol=1e-5, atol=1e-6)


def test_degenerate_inputs_stay_finite():
    rng = np.random.default_rng(5)
    X, y = [], []
    for c in range(2):
        for _ in range(6):
            t = int(rng.integers(8, 14))
            x = rng.normal(c * 0.3, 1.0, (t, 3))
            x[:, 1] = 2.5  # a constant feature
            X.append(x)
            y.append(c)
    X.append(np.full((2, 3), 2.5))  # a class with one sequence shorter than the states
    y.append(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {c: GMMHMM(4, 2, n_threads=1).fit([x for x, lab in zip(X, y) if lab == c]) for c in range(3)}
        for tau in (0.0, 100.0):
            res = mmi_train(models, X, y, n_iter=3, acoustic_scale=1.0, tau=tau, min_posterior=0.0)
            for m in res.models.values():
                assert np.all(np.isfinite(m.means_)) and np.all(np.isfinite(m.weights_))
                assert np.all(np.isfinite(m.covariances_)) and np.all(m.covariances_ >= m.var_floor_ * (1 - 1e-12))
                np.testing.assert_allclose(m.weights_.sum(axis=1), 1.0)
                assert np.all(np.isfinite(m.score_sequences(X)))
            assert all(np.isfinite(t["objective"]) for t in res.trace)


def test_result_is_a_working_model(problem, tmp_path):
    models, X, y = problem
    res = mmi_train(models, X, y, n_iter=1, acoustic_scale=0.5)
    m = res.models["w1"]
    path = mio.save(m, tmp_path / "w1.npz")
    back = mio.load(path)
    np.testing.assert_allclose(back.score_sequences(X[:5]), m.score_sequences(X[:5]), rtol=1e-10)


def test_bad_arguments_are_named(problem):
    models, X, y = problem
    for kw, word in ((dict(acoustic_scale=0.0), "acoustic_scale"), (dict(tau=-1.0), "tau"), (dict(E=np.nan), "E"),
                     (dict(min_posterior=1.0), "min_posterior"), (dict(weight_update="x"), "weight_update"),
                     (dict(n_iter=-1), "n_iter")):
        with pytest.raises(ValueError, match=word):
            mmi_train(models, X, y, **kw)
    with pytest.raises(ValueError, match="same length"):
        mmi_train(models, X, y[:-1])
    with pytest.raises(ValueError, match="no model"):
        mmi_train(models, X, ["zz"] * len(X))
    rng = np.random.default_rng(0)
    full = GMMHMM.from_params(np.eye(1, 2)[0], np.array([[0.5, 0.5], [0, 1.0]]), np.ones((2, 1)),
                              rng.normal(size=(2, 1, 2)), np.tile(np.eye(2), (2, 1, 1, 1)), covariance_type="full")
    with pytest.raises(ValueError, match="covariance_type"):
        mmi_train({"a": full, "b": full}, [rng.normal(size=(5, 2))] * 2, ["a", "b"])


def test_parallel_classes_give_the_same_statistics(problem):
    models, X, y = problem
    one = mmi_stats(models, X[::3], y[::3], acoustic_scale=0.5, n_jobs=1)
    two = mmi_stats(models, X[::3], y[::3], acoustic_scale=0.5, n_jobs=2)
    np.testing.assert_allclose(two.loglik, one.loglik, rtol=1e-12)
    for c in models:
        for a, b in ((one.num[c], two.num[c]), (one.den[c], two.den[c])):
            np.testing.assert_allclose(b.n, a.n, rtol=1e-12)
            np.testing.assert_allclose(b.f, a.f, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(b.s, a.s, rtol=1e-12, atol=1e-12)
