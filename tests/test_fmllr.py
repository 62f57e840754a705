"""fMLLR (gmmspeech.mixture.fmllr): statistics, the row-by-row estimate, HMM statistics, two-pass scoring."""

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp

from gmmspeech.mixture.fmllr import (
    FmllrStats,
    apply_fmllr,
    estimate_fmllr,
    fmllr_auxiliary,
    fmllr_stats,
    hmm_fmllr_stats,
    speaker_adapted_scores,
    speaker_transforms,
)
from gmmspeech.mixture.hmm import GMMHMM


def _gmm(rng, g=4, d=3):
    w = rng.dirichlet(np.ones(g) * 5)
    mu = rng.normal(scale=3.0, size=(g, d))
    var = rng.uniform(0.3, 1.5, size=(g, d))
    return w, mu, var


def _sample(rng, w, mu, var, n):
    z = rng.choice(len(w), size=n, p=w)
    return mu[z] + rng.normal(size=(n, mu.shape[1])) * np.sqrt(var[z]), z


def _log_gauss(X, mu, var):
    # (N, G) log N(x; mu_g, diag var_g), written out
    diff = X[:, None, :] - mu[None]
    return -0.5 * (np.sum(diff**2 / var[None], axis=2) + np.sum(np.log(2 * np.pi * var), axis=1)[None])


def _posteriors(X, w, mu, var):
    lp = np.log(w)[None] + _log_gauss(X, mu, var)
    return np.exp(lp - logsumexp(lp, axis=1, keepdims=True))


def _aux_direct(X, post, mu, var, W):
    """sum_t sum_m gamma log N(W xi_t; mu_m, var_m) + beta log|det A| (with all constants)."""
    Y = X @ W[:, :-1].T + W[:, -1]
    return float(np.sum(post * _log_gauss(Y, mu, var)) + post.sum() * np.linalg.slogdet(W[:, :-1])[1])


def _const(post, mu, var):
    return float(np.sum(post * (-0.5 * np.sum(mu**2 / var + np.log(2 * np.pi * var), axis=1))[None]))


def test_stats_equal_numpy_transcription():
    rng = np.random.default_rng(0)
    w, mu, var = _gmm(rng, 5, 4)
    X, _ = _sample(rng, w, mu, var, 300)
    post = _posteriors(X, w, mu, var) * rng.uniform(0.5, 1.0, size=(300, 1))  # frame weights allowed
    st = fmllr_stats(X, posteriors=post, means=mu, covariances=var)
    d = X.shape[1]
    beta, K, G = 0.0, np.zeros((d, d + 1)), np.zeros((d, d + 1, d + 1))
    for t in range(X.shape[0]):
        xi = np.append(X[t], 1.0)
        for m in range(len(w)):
            beta += post[t, m]
            for i in range(d):
                K[i] += post[t, m] * mu[m, i] / var[m, i] * xi
                G[i] += post[t, m] / var[m, i] * np.outer(xi, xi)
    np.testing.assert_allclose(st.beta, beta, rtol=1e-12)
    np.testing.assert_allclose(st.k, K, rtol=1e-10)
    np.testing.assert_allclose(st.g, G, rtol=1e-10)
    # additive: two halves pooled = the whole
    a = fmllr_stats(X[:100], posteriors=post[:100], means=mu, covariances=var)
    b = fmllr_stats(X[100:], posteriors=post[100:], means=mu, covariances=var)
    both = sum([a, b])
    np.testing.assert_allclose(both.g, G, rtol=1e-10)
    assert both.beta == pytest.approx(beta)
    # the auxiliary function is the expected log-likelihood with the Jacobian, up to a constant
    W = np.hstack([np.eye(d) + 0.1 * rng.normal(size=(d, d)), rng.normal(size=(d, 1))])
    assert fmllr_auxiliary(st, W) + _const(post, mu, var) == pytest.approx(_aux_direct(X, post, mu, var, W), rel=1e-10)


@pytest.mark.parametrize("update", ["full", "diag", "offset"])
def test_estimate_maximises_auxiliary_like_scipy(update):
    rng = np.random.default_rng(1)
    d = 3
    w, mu, var = _gmm(rng, 4, d)
    X, _ = _sample(rng, w, mu, var, 400)
    X = X @ (np.eye(d) + 0.3 * rng.normal(size=(d, d))).T + 1.0
    st = fmllr_stats(X, posteriors=_posteriors(X, w, mu, var), means=mu, covariances=var)
    tr = estimate_fmllr(st, update=update, n_iter=200, tol=1e-13)
    assert tr.update == update
    q = fmllr_auxiliary(st, tr.matrix)

    def unpack(p):
        W = np.hstack([np.eye(d), np.zeros((d, 1))])
        if update == "full":
            W = p.reshape(d, d + 1)
        elif update == "diag":
            W[np.arange(d), np.arange(d)] = p[:d]
            W[:, d] = p[d:]
        else:
            W[:, d] = p
        return W

    def neg(p):
        v = fmllr_auxiliary(st, unpack(p))
        return 1e300 if not np.isfinite(v) else -v / st.beta

    start = {"full": np.hstack([np.eye(d), np.zeros((d, 1))]).ravel(),
             "diag": np.r_[np.ones(d), np.zeros(d)], "offset": np.zeros(d)}[update]
    res = optimize.minimize(neg, start, method="Nelder-Mead",
                            options={"maxiter": 40000, "maxfev": 40000, "xatol": 1e-10, "fatol": 1e-13})
    res = optimize.minimize(neg, res.x, method="BFGS", options={"gtol": 1e-10})
    assert q / st.beta >= -res.fun - 1e-9  # scipy finds nothing better
    assert q / st.beta == pytest.approx(-res.fun, abs=1e-6)
    np.testing.assert_allclose(tr.matrix, unpack(res.x), atol=2e-3)
    # the sweeps never decrease the auxiliary function
    assert np.all(np.diff(tr.auxf) >= -1e-12)


def test_recovers_known_affine_distortion():
    rng = np.random.default_rng(2)
    d = 4
    w, mu, var = _gmm(rng, 6, d)
    X, z = _sample(rng, w, mu, var, 20000)
    A = np.eye(d) + 0.25 * rng.normal(size=(d, d))
    b = rng.normal(size=d)
    Y = X @ np.linalg.inv(A).T - np.linalg.solve(A, b)  # distorted: A y + b = x
    W = None
    for _ in range(15):  # EM: posteriors under the current transform
        Yt = Y if W is None else apply_fmllr(Y, transform=W)
        st = fmllr_stats(Y, posteriors=_posteriors(Yt, w, mu, var), means=mu, covariances=var)
        W = estimate_fmllr(st).matrix
    np.testing.assert_allclose(W[:, :d], A, atol=0.05)
    np.testing.assert_allclose(W[:, d], b, atol=0.08)
    np.testing.assert_allclose(apply_fmllr(Y, transform=W), X, atol=0.25 * np.abs(X).max())


def test_log_likelihood_never_decreases_over_row_iterations():
    rng = np.random.default_rng(3)
    d = 5
    w, mu, var = _gmm(rng, 4, d)
    X, _ = _sample(rng, w, mu, var, 2000)
    X = X @ (np.eye(d) + 0.4 * rng.normal(size=(d, d))).T - 2.0
    post = _posteriors(X, w, mu, var)
    st = fmllr_stats(X, posteriors=post, means=mu, covariances=var)
    prev = _aux_direct(X, post, mu, var, np.hstack([np.eye(d), np.zeros((d, 1))]))
    gains = []
    for n in range(1, 8):
        W = estimate_fmllr(st, n_iter=n, tol=-np.inf).matrix
        cur = _aux_direct(X, post, mu, var, W)
        gains.append(cur - prev)
        prev = cur
    assert gains[0] > 0 and min(gains) >= -1e-8 * abs(prev)


def test_identity_when_data_already_fit_and_too_few_frames():
    rng = np.random.default_rng(4)
    d = 3
    w, mu, var = _gmm(rng, 3, d)
    X, z = _sample(rng, w, mu, var, 50000)
    post = np.eye(3)[z]  # the true component of every frame
    tr = estimate_fmllr(fmllr_stats(X, posteriors=post, means=mu, covariances=var))
    np.testing.assert_allclose(tr.matrix, np.hstack([np.eye(d), np.zeros((d, 1))]), atol=0.03)
    few = estimate_fmllr(fmllr_stats(X[:5], posteriors=post[:5], means=mu, covariances=var))
    assert few.update == "none" and "min_count" in few.reason
    np.testing.assert_array_equal(few.matrix, np.hstack([np.eye(d), np.zeros((d, 1))]))
    # a constant feature: no NaN, the transform stays finite
    Xc = X.copy()
    Xc[:, 1] = 0.5
    tc = estimate_fmllr(fmllr_stats(Xc, posteriors=post, means=mu, covariances=var))
    assert np.all(np.isfinite(tc.matrix)) and np.all(np.isfinite(tc.auxf))


def test_bad_arguments():
    st = FmllrStats.zeros(2)
    with pytest.raises(ValueError, match="'update'"):
        estimate_fmllr(st, update="block")
    with pytest.raises(ValueError, match="shape"):
        apply_fmllr(np.zeros((3, 2)), transform=np.eye(2))
    with pytest.raises(ValueError, match="'posteriors'"):
        fmllr_stats(np.zeros((3, 2)), posteriors=np.zeros((2, 1)), means=np.zeros((1, 2)), covariances=np.ones((1, 2)))
    with pytest.raises(ValueError, match="'passes'"):
        speaker_adapted_scores([None], [], passes=-1)


def _word_models(rng, d=3):
    """Two 3-state word models over the same sounds in opposite orders ('up' and 'down')."""
    states = rng.normal(scale=3.0, size=(3, 1, d)) + rng.normal(scale=0.5, size=(3, 2, d))
    var = rng.uniform(0.3, 0.6, size=(3, 2, d))
    return [GMMHMM.from_params(np.eye(1, 3)[0], np.array([[0.8, 0.2, 0], [0, 0.8, 0.2], [0, 0, 1.0]]),
                               np.full((3, 2), 0.5), states[order], var[order])
            for order in ([0, 1, 2], [2, 1, 0])]


def test_hmm_stats_equal_numpy_from_posteriors():
    rng = np.random.default_rng(5)
    up, _ = _word_models(rng)
    seqs = [up.sample(n, random_state=k)[0] for k, n in enumerate((12, 20, 7))]
    for method in ("viterbi", "forward-backward"):
        post = up.gaussian_posteriors(seqs, method=method)
        np.testing.assert_allclose(post.sum(axis=1), 1.0)
        gamma = post.reshape(-1, 3, 2).sum(axis=2)
        if method == "viterbi":  # one state per frame: the best path
            np.testing.assert_array_equal(np.argmax(gamma, axis=1), np.concatenate(up.align(seqs)))
            np.testing.assert_allclose(gamma.max(axis=1), 1.0, rtol=1e-14)
        else:
            np.testing.assert_allclose(gamma, up.predict_proba(seqs), atol=1e-10)
        st = hmm_fmllr_stats(up, seqs, method=method)
        ref = fmllr_stats(np.concatenate(seqs), posteriors=post, means=up.means_.reshape(6, 3),
                          covariances=up.covariances_.reshape(6, 3))
        np.testing.assert_allclose(st.g, ref.g)
        # within-state posteriors: the state's weighted Gaussian densities, normalised
        X = np.concatenate(seqs)
        j = np.argmax(gamma, axis=1) if method == "viterbi" else None
        if j is not None:
            lp = np.log(up.weights_[j]) + np.stack(
                [_log_gauss(X[t : t + 1], up.means_[j[t]], up.covariances_[j[t]])[0] for t in range(len(X))])
            r = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
            # (the model's densities are float32 GEMMs)
            np.testing.assert_allclose(post.reshape(-1, 3, 2)[np.arange(len(X)), j], r, atol=1e-5)


def test_speaker_adapted_scores_undo_a_speaker_distortion():
    rng = np.random.default_rng(6)
    d = 3
    models = _word_models(rng, d)
    seqs, truth = [], []
    for k in range(40):
        c = k % 2
        seqs.append(models[c].sample(int(rng.integers(15, 30)), random_state=100 + k)[0])
        truth.append(c)
    # the "speaker": a rotated, shifted voice
    theta = 0.3
    A = np.eye(d)
    A[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    spk = [x @ A.T + 1.5 for x in seqs]
    clean = np.mean(np.argmax(np.stack([m.score_sequences(seqs) for m in models], axis=1), axis=1) == truth)
    s0, t0 = speaker_adapted_scores(models, spk, passes=0)
    assert t0.update == "none"
    acc0 = np.mean(np.argmax(s0, axis=1) == truth)
    assert acc0 < clean  # the distortion costs
    errors = []
    for passes in (1, 2, 3):
        s, t = speaker_adapted_scores(models, spk, passes=passes)
        assert t.update == "full" and t.gain > 0
        errors.append(np.abs(np.concatenate([t.apply(x) for x in spk]) - np.concatenate(seqs)).max())
    # each pass gets closer to undoing the distortion, and the decisions are the clean data's
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.8
    assert np.mean(np.argmax(s, axis=1) == truth) == clean
    # too little data: identity kept, pass-0 scores returned
    s_few, t_few = speaker_adapted_scores(models, spk[:1], passes=1, min_count=1e6)
    assert t_few.update == "none"
    np.testing.assert_allclose(s_few, s0[:1])


def test_speaker_transforms_and_si_models():
    rng = np.random.default_rng(7)
    d = 3
    models = _word_models(rng, d)
    seqs, labels, spk = [], [], []
    for k in range(60):
        seqs.append(models[k % 2].sample(int(rng.integers(15, 30)), random_state=200 + k)[0])
        labels.append("up" if k % 2 == 0 else "down")
        spk.append("a" if k < 30 else "b")
    by_label = {"up": models[0], "down": models[1]}
    shifted = [x + (1.0 if s == "b" else 0.0) for x, s in zip(seqs, spk)]  # speaker b: a shifted voice
    tr = speaker_transforms(by_label, shifted, labels, spk)
    assert set(tr) == {"a", "b"}
    # speaker b's transform: the manual sum of its statistics per label, then the estimate
    st = sum(hmm_fmllr_stats(by_label[c], [shifted[k] for k in range(30, 60) if labels[k] == c]) for c in ("up", "down"))
    np.testing.assert_allclose(tr["b"].matrix, estimate_fmllr(st).matrix)
    np.testing.assert_allclose(tr["b"].matrix[:, d], -1.0, atol=0.25)  # the shift undone
    np.testing.assert_allclose(tr["a"].matrix[:, d], 0.0, atol=0.25)
    with pytest.raises(ValueError, match="no model for the labels"):
        speaker_transforms(by_label, shifted, ["left"] * 60, spk)
    # si_models: pass 0 decodes with them, later passes with `models`
    swapped = models[::-1]
    s0, _ = speaker_adapted_scores(models, seqs[:4], passes=0, si_models=swapped)
    np.testing.assert_allclose(s0, np.stack([m.score_sequences(seqs[:4]) for m in swapped], axis=1))
