"""Batched scoring against scikit-learn and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from gmmspeech import GMM, map_adapt, score


def _sk(g):
    s = GaussianMixture(g.n_components, covariance_type=g.covariance_type)
    s.weights_ = np.asarray(g.weights_, float)
    s.means_ = np.asarray(g.means_, float)
    s.covariances_ = np.asarray(g.covariances_, float)
    if g.covariance_type == "full":
        s.precisions_cholesky_ = np.stack([np.linalg.cholesky(np.linalg.inv(c)) for c in s.covariances_])
    else:
        s.precisions_cholesky_ = 1.0 / np.sqrt(s.covariances_)
    return s


@pytest.fixture(scope="module")
def setup():
    r = np.random.default_rng(0)
    K, D = 16, 5
    w = r.dirichlet(np.ones(K) * 3)
    mu = r.normal(0, 2, (K, D))
    var = r.uniform(0.3, 2.0, (K, D))
    ubm = GMM.from_params(w, mu, var)
    utts = [r.normal(0, 2, (int(n), D)).astype(np.float32) for n in r.integers(20, 200, 9)]
    models_m = [map_adapt(ubm, r.normal(c, 1.5, (150, D)), 8.0, "m") for c in r.normal(0, 1, (4, D))]
    models_mwv = [map_adapt(ubm, r.normal(c, 1.5, (150, D)), 8.0, "mwv") for c in r.normal(0, 1, (3, D))]
    return ubm, utts, models_m, models_mwv


def _sk_llr(models, ubm, utts):
    su = _sk(ubm)
    return np.array([[_sk(m).score(u) - su.score(u) for m in models] for u in utts])


@pytest.mark.parametrize("which", ["models_m", "models_mwv"])
def test_exact_equals_sklearn(setup, which):
    ubm, utts, mm, mv = setup
    models = mm if which == "models_m" else mv
    got = score(models, ubm, utts)
    np.testing.assert_allclose(got, _sk_llr(models, ubm, utts), atol=2e-4)
    got64 = score(models, ubm, utts, dtype=np.float64, chunk_frames=37)
    np.testing.assert_allclose(got64, _sk_llr(models, ubm, utts), atol=2e-5)


def test_no_ubm_gives_plain_loglik_and_mapping_order(setup):
    ubm, utts, mm, _ = setup
    got = score({"b": mm[1], "a": mm[0]}, None, utts)
    ref = np.array([[_sk(mm[1]).score(u), _sk(mm[0]).score(u)] for u in utts])
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_topc_approximates_exact_and_equals_topc_reference(setup):
    ubm, utts, mm, mv = setup
    for models in (mm, mv):
        exact = score(models, ubm, utts)
        for C in (3, 16):
            got = score(models, ubm, utts, top_c=C)
            # independent top-C reference: UBM picks C components per frame
            ref = np.zeros_like(got)
            su = _sk(ubm)
            for i, u in enumerate(utts):
                lu = su._estimate_weighted_log_prob(u.astype(float))
                idx = np.argsort(-lu, axis=1)[:, :C]
                ubm_ll = np.logaddexp.reduce(np.take_along_axis(lu, idx, 1), axis=1)
                for j, m in enumerate(models):
                    lm = _sk(m)._estimate_weighted_log_prob(u.astype(float))
                    ref[i, j] = np.mean(np.logaddexp.reduce(np.take_along_axis(lm, idx, 1), axis=1) - ubm_ll)
            np.testing.assert_allclose(got, ref, atol=2e-4)
        np.testing.assert_allclose(score(models, ubm, utts, top_c=16), exact, atol=2e-4)
        assert np.max(np.abs(score(models, ubm, utts, mode="topc") - exact)) < 0.05


def test_linear_closed_form(setup):
    ubm, utts, mm, _ = setup
    got = score(mm, ubm, utts, mode="linear")
    su = _sk(ubm)
    for i, u in enumerate(utts):
        g = su.predict_proba(u.astype(float))
        N = g.sum(0)
        F = g.T @ u.astype(float)
        for j, m in enumerate(mm):
            ref = 0.0
            for k in range(ubm.n_components):
                for d in range(u.shape[1]):
                    ref += ((m.means_[k, d] - ubm.means_[k, d]) / ubm.covariances_[k, d]
                            * (F[k, d] - N[k] * ubm.means_[k, d]))
            assert got[i, j] == pytest.approx(ref / len(u), rel=1e-6, abs=1e-9)


def test_linear_and_topc_agree_with_exact_decisions(setup):
    ubm, *_ = setup
    r = np.random.default_rng(5)
    centres = r.normal(0, 1.0, (5, ubm.means_.shape[1]))
    models = [map_adapt(ubm, r.normal(c, 1.5, (300, len(c))), 16.0, "m") for c in centres]
    utts = [r.normal(c, 1.5, (150, len(c))) for c in centres for _ in range(3)]
    truth = np.repeat(np.arange(5), 3)
    exact = score(models, ubm, utts)
    assert np.mean(exact.argmax(1) == truth) >= 0.8
    topc = score(models, ubm, utts, mode="topc")
    assert np.mean(topc.argmax(1) == exact.argmax(1)) == 1.0
    assert np.corrcoef(topc.ravel(), exact.ravel())[0, 1] > 0.999
    # linear scoring is a first-order approximation: correlated, most decisions agree
    lin = score(models, ubm, utts, mode="linear")
    assert np.mean(lin.argmax(1) == exact.argmax(1)) >= 0.7
    assert np.corrcoef(lin.ravel(), exact.ravel())[0, 1] > 0.85


def test_full_covariance_exact_and_linear():
    r = np.random.default_rng(4)
    K, D = 4, 3
    A = r.normal(size=(K, D, D))
    cov = A @ A.transpose(0, 2, 1) + np.eye(D)
    ubm = GMM.from_params(np.full(K, 0.25), r.normal(0, 2, (K, D)), cov, covariance_type="full")
    models = [map_adapt(ubm, r.normal(1, 1, (80, D)), 8.0, "m")]
    utts = [r.normal(0, 2, (50, D))]
    np.testing.assert_allclose(score(models, ubm, utts), _sk_llr(models, ubm, utts), atol=1e-6)
    lin = score(models, ubm, utts, mode="linear")
    assert lin.shape == (1, 1) and np.isfinite(lin).all()
    with pytest.raises(ValueError, match="diagonal"):
        score(models, ubm, utts, mode="topc")


def test_errors(setup):
    ubm, utts, mm, _ = setup
    with pytest.raises(ValueError, match="mode="):
        score(mm, ubm, utts, mode="fast")
    with pytest.raises(ValueError, match="utterances\\[1\\] has 3 dims"):
        score(mm, ubm, [utts[0], utts[1][:, :3]])
    with pytest.raises(ValueError, match="no frames"):
        score(mm, ubm, [utts[0][:0]])
    with pytest.raises(ValueError, match="models is empty"):
        score([], ubm, utts)
    with pytest.raises(ValueError, match="needs a UBM"):
        score(mm, None, utts, mode="linear")


def test_parallel_groups_equal_sequential(setup):
    ubm, utts, mm, _ = setup
    seq = score(mm, ubm, utts)
    np.testing.assert_allclose(score(mm, ubm, utts, n_jobs=2), seq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(score(mm, ubm, utts, n_jobs=2, backend="threading", mode="topc"),
                               score(mm, ubm, utts, mode="topc"), rtol=1e-12, atol=1e-12)


def test_exact_pruned_means_only_equals_sklearn(monkeypatch):
    # well separated components: exact mode skips (frame, component) pairs whose bound is
    # > 25 nats below every model's likelihood; results must still match scikit-learn
    from gmmspeech.speaker import _kernels as kern

    r = np.random.default_rng(3)
    K, D, M = 96, 39, 6
    w = r.dirichlet(np.full(K, 2.0))
    mu = r.normal(0, 1.5, (K, D))
    var = r.uniform(0.2, 1.0, (K, D))
    ubm = GMM.from_params(w, mu, var)
    models = [GMM.from_params(w, mu + r.normal(0, 0.15, (K, D)), var) for _ in range(M)]
    z = r.choice(K, size=(5, 120), p=w)
    utts = [(mu[zz] + np.sqrt(var[zz]) * r.standard_normal((120, D))).astype(np.float32) for zz in z]
    utts.append(r.normal(0, 3.0, (40, D)).astype(np.float32))  # outlying frames
    calls = []
    real = kern.pruned_scores
    monkeypatch.setattr(kern, "pruned_scores", lambda *a: (calls.append(1), real(*a))[1])
    got = score(models, ubm, utts)
    assert calls, "the pruned kernel was not used on well separated components"
    np.testing.assert_allclose(got, _sk_llr(models, ubm, utts), atol=2e-5)
