"""GMMHMM: forward-backward and Viterbi against plain numpy transcriptions written here,
Baum-Welch monotonicity, recovery of a known model, degenerate inputs, hmmlearn parity."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gmmspeech.mixture.hmm import GMMHMM, check_sequences, mixture_schedule

# ----------------------------------------------------------------------------- references


def random_model(rng, s=4, m=2, d=3, covariance_type="diag", max_jump=2, require_final=True):
    """A random left-to-right model with well-conditioned emissions."""
    a = np.zeros((s, s))
    for i in range(s):
        hi = min(s, i + max_jump + 1)
        a[i, i:hi] = rng.uniform(0.2, 1.0, hi - i)
        a[i] /= a[i].sum()
    w = rng.uniform(0.2, 1.0, (s, m))
    w /= w.sum(axis=1, keepdims=True)
    means = rng.normal(0, 2, (s, m, d))
    if covariance_type == "diag":
        cov = rng.uniform(0.3, 2.0, (s, m, d))
    else:
        b = rng.normal(0, 0.5, (s, m, d, d))
        cov = b @ np.swapaxes(b, -1, -2) + 0.5 * np.eye(d)
    return GMMHMM.from_params(np.eye(1, s)[0], a, w, means, cov, covariance_type=covariance_type,
                              max_jump=max_jump, require_final=require_final, dtype=np.float64)


def log_emissions(model, x):
    """log b_j(x_t) with scipy's multivariate normal (independent of the GEMM path)."""
    s, m, d = model.means_.shape
    out = np.empty((x.shape[0], s))
    for j in range(s):
        comps = []
        for k in range(m):
            cov = model.covariances_[j, k]
            cov = np.diag(cov) if model.covariance_type == "diag" else cov
            comps.append(np.log(model.weights_[j, k]) + multivariate_normal(model.means_[j, k], cov).logpdf(x))
        out[:, j] = logsumexp(np.stack(comps, axis=-1).reshape(x.shape[0], m), axis=1)
    return out


def np_ends(model, last_row):
    s = model.n_states
    if model.require_final and np.isfinite(last_row[s - 1]):
        return np.arange(s) == s - 1
    return np.ones(s, dtype=bool)


def np_forward_backward(model, x):
    """Textbook log-domain forward-backward for one sequence: (log p(x), gamma (T, S))."""
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(model.startprob_), np.log(model.transmat_)
    lb = log_emissions(model, x)
    t_len, s = lb.shape
    alpha = np.full((t_len, s), -np.inf)
    alpha[0] = log_pi + lb[0]
    for t in range(1, t_len):
        alpha[t] = logsumexp(alpha[t - 1][:, None] + log_a, axis=0) + lb[t]
    ends = np_ends(model, alpha[-1])
    ll = logsumexp(alpha[-1][ends])
    beta = np.full((t_len, s), -np.inf)
    beta[-1] = np.where(ends, 0.0, -np.inf)
    for t in range(t_len - 2, -1, -1):
        beta[t] = logsumexp(log_a + (lb[t + 1] + beta[t + 1])[None, :], axis=1)
    gamma = np.exp(alpha + beta - ll)
    return ll, gamma


def np_viterbi(model, x):
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(model.startprob_), np.log(model.transmat_)
    lb = log_emissions(model, x)
    t_len, s = lb.shape
    delta = log_pi + lb[0]
    back = np.zeros((t_len, s), dtype=int)
    for t in range(1, t_len):
        cand = delta[:, None] + log_a
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(s)] + lb[t]
    ends = np_ends(model, delta)
    last = int(np.argmax(np.where(ends, delta, -np.inf)))
    path = [last]
    for t in range(t_len - 1, 0, -1):
        path.append(back[t, path[-1]])
    return float(delta[last]), np.array(path[::-1])


def sample_left_right(rng, means, stay, n_seq, sd=0.5):
    """Sequences from a known left-to-right model: state j lasts Geometric(1 - stay[j]) frames."""
    seqs = []
    for _ in range(n_seq):
        parts = []
        for j in range(means.shape[0]):
            dur = rng.geometric(1.0 - stay[j])
            parts.append(rng.normal(means[j], sd, (dur, means.shape[1])))
        seqs.append(np.concatenate(parts))
    return seqs


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
@pytest.mark.parametrize("require_final", [True, False])
def test_forward_backward_matches_numpy(covariance_type, require_final):
    rng = np.random.default_rng(1)
    model = random_model(rng, covariance_type=covariance_type, require_final=require_final)
    seqs = [rng.normal(0, 2, (t, 3)) for t in (1, 2, 3, 7, 25)]
    ll = model.score_sequences(seqs)
    _, gamma = model.score_samples(seqs)
    offs = np.cumsum([0] + [len(x) for x in seqs])
    for b, x in enumerate(seqs):
        ref_ll, ref_gamma = np_forward_backward(model, x)
        assert ll[b] == pytest.approx(ref_ll, rel=1e-9, abs=1e-8)
        np.testing.assert_allclose(gamma[offs[b] : offs[b + 1]], ref_gamma, atol=1e-9)
    assert model.score(seqs) == pytest.approx(sum(np_forward_backward(model, x)[0] for x in seqs), rel=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_viterbi_matches_numpy(covariance_type):
    rng = np.random.default_rng(2)
    model = random_model(rng, s=5, covariance_type=covariance_type, max_jump=1)
    seqs = [rng.normal(0, 2, (t, 3)) for t in (1, 3, 5, 12, 40)]
    X, lengths = np.concatenate(seqs), [len(x) for x in seqs]
    total, path = model.decode(X, lengths)
    scores = model.viterbi_scores(X, lengths)
    aligned = model.align(seqs)
    offs = np.cumsum([0] + lengths)
    for b, x in enumerate(seqs):
        ref_score, ref_path = np_viterbi(model, x)
        assert scores[b] == pytest.approx(ref_score, rel=1e-9)
        np.testing.assert_array_equal(path[offs[b] : offs[b + 1]], ref_path)
        np.testing.assert_array_equal(aligned[b], ref_path)
        if len(x) >= 5:  # long enough to reach the last state: starts in 0, ends in S - 1
            assert ref_path[0] == 0 and ref_path[-1] == 4
    assert total == pytest.approx(scores.sum())
    np.testing.assert_array_equal(model.predict(X, lengths), path)


def test_float32_emissions_close_to_float64():
    rng = np.random.default_rng(3)
    model = random_model(rng)
    seqs = [rng.normal(0, 2, (t, 3)) for t in (4, 30)]
    ll64 = model.score_sequences(seqs)
    model.set_params(dtype=np.float32)
    ll32 = model.score_sequences(seqs)
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5)


def test_matches_hmmlearn_scores():
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(4)
    model = random_model(rng, require_final=False)
    ref = hmm.GMMHMM(n_components=4, n_mix=2, covariance_type="diag", init_params="", params="")
    ref.startprob_ = model.startprob_
    ref.transmat_ = model.transmat_
    ref.weights_ = model.weights_
    ref.means_ = model.means_
    ref.covars_ = model.covariances_
    seqs = [rng.normal(0, 2, (t, 3)) for t in (5, 17, 30)]
    X, lengths = np.concatenate(seqs), [len(x) for x in seqs]
    assert model.score(X, lengths=lengths) == pytest.approx(ref.score(X, lengths), rel=1e-8)
    _, post = model.score_samples(X, lengths)
    np.testing.assert_allclose(post, ref.predict_proba(X, lengths), atol=1e-7)
    np.testing.assert_array_equal(model.predict(X, lengths), ref.predict(X, lengths))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_baum_welch_never_decreases(covariance_type):
    rng = np.random.default_rng(5)
    means = rng.normal(0, 3, (4, 3))
    seqs = sample_left_right(rng, means, np.array([0.8, 0.7, 0.85, 0.9]), 80, sd=1.0)
    model = GMMHMM(4, 4, covariance_type=covariance_type, max_jump=2, max_iter=15, tol=0,
                   var_floor_rel=0, split_iter=5, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(seqs)
    h = np.array(model.history_)
    levels = np.array(model.history_n_mix_)
    assert sorted(set(levels)) == [1, 2, 4]
    for m in (1, 2, 4):
        seg = h[levels == m]
        assert np.all(np.diff(seg) >= -1e-9 * np.abs(seg[1:])), (m, seg)
    assert np.all(np.isfinite(h))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_recovers_known_model(covariance_type):
    rng = np.random.default_rng(6)
    means = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    stay = np.array([0.8, 0.6, 0.9, 0.7])
    seqs = sample_left_right(rng, means, stay, 400)
    model = GMMHMM(4, 1, covariance_type=covariance_type).fit(seqs)
    np.testing.assert_allclose(model.means_[:, 0], means, atol=0.06)
    want = np.diag(stay) + np.diag(1 - stay[:-1], 1)
    np.testing.assert_allclose(model.transmat_[:-1], want[:-1], atol=0.03)
    assert model.transmat_[-1, -1] == 1.0
    assert np.all(model.transmat_[np.tril_indices(4, -1)] == 0)
    assert np.all(np.triu(model.transmat_, 2) == 0)  # max_jump=1: no skips, exactly
    var = model.covariances_[:, 0] if covariance_type == "diag" else np.diagonal(model.covariances_[:, 0], axis1=1, axis2=2)
    np.testing.assert_allclose(var, 0.25, rtol=0.15)
    assert model.converged_


def test_mixture_splitting_and_list_or_lengths():
    rng = np.random.default_rng(7)
    means = rng.normal(0, 3, (3, 2))
    seqs = sample_left_right(rng, means, np.array([0.8, 0.8, 0.8]), 60)
    assert mixture_schedule(1) == [1]
    assert mixture_schedule(3) == [1, 2, 3]
    assert mixture_schedule(4) == [1, 2, 4]
    a = GMMHMM(3, 3).fit(seqs)
    b = GMMHMM(3, 3).fit(np.concatenate(seqs), lengths=[len(x) for x in seqs])
    assert a.weights_.shape == (3, 3) and a.means_.shape == (3, 3, 2)
    np.testing.assert_allclose(a.means_, b.means_)
    np.testing.assert_allclose(a.transmat_, b.transmat_)
    np.testing.assert_allclose(a.weights_.sum(axis=1), 1.0)


def test_continue_from_given_parameters():
    rng = np.random.default_rng(8)
    true = random_model(rng, s=3, m=2, d=2, max_jump=1)
    seqs = [true.sample(30, random_state=i)[0] for i in range(40)]
    start = random_model(np.random.default_rng(9), s=3, m=2, d=2, max_jump=1)
    start.set_params(init_params="", max_iter=5, tol=0)
    before = start.score(seqs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(seqs)
    assert start.score(seqs) > before
    assert len(start.history_) == 5 and start.history_n_mix_ == [2] * 5


# ----------------------------------------------------------------------------- degenerate inputs


@pytest.mark.parametrize("seed", range(12))
def test_degenerate_inputs_never_nan(seed):
    rng = np.random.default_rng(100 + seed)
    d = int(rng.integers(1, 5))
    s = int(rng.integers(1, 7))
    m = int(rng.integers(1, 5))
    kind = rng.choice(["short", "constant", "fewer_than_states", "mixed", "duplicate"])
    if kind == "short":
        seqs = [rng.normal(size=(int(rng.integers(1, 3)), d)) for _ in range(int(rng.integers(1, 6)))]
    elif kind == "constant":
        seqs = [np.full((int(rng.integers(1, 20)), d), 3.5) for _ in range(int(rng.integers(1, 5)))]
    elif kind == "fewer_than_states":
        seqs = [rng.normal(size=(max(1, s - 1), d)) for _ in range(3)]
    elif kind == "duplicate":
        row = rng.normal(size=d)
        seqs = [np.repeat(row[None], int(rng.integers(1, 9)), 0) + (i == 0) * 1e-9 for i in range(4)]
    else:
        seqs = [rng.normal(size=(int(rng.integers(1, 12)), d)) * rng.choice([0.0, 1.0, 1e4])
                for _ in range(int(rng.integers(1, 6)))]
    cov = str(rng.choice(["diag", "full"]))
    model = GMMHMM(s, m, covariance_type=cov, max_jump=int(rng.integers(1, 3)), max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(seqs)
    for name in ("startprob_", "transmat_", "weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), (kind, name)
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.weights_.sum(axis=1), 1.0)
    assert np.all(np.isfinite(model.history_))
    assert np.all(np.isfinite(model.score_sequences(seqs)))
    assert np.all(np.isfinite(model.predict_proba(seqs)))
    assert all(p.shape[0] == x.shape[0] for p, x in zip(model.align(seqs), seqs))


def test_unused_state_is_reported_and_kept():
    rng = np.random.default_rng(11)
    seqs = [rng.normal(size=(2, 2)) for _ in range(4)]  # 2 frames cannot visit 5 states
    with pytest.warns(UserWarning, match="no occupancy"):
        model = GMMHMM(5, 1, max_iter=3).fit(seqs)
    assert model.unused_states_
    assert np.all(np.isfinite(model.means_))


# ----------------------------------------------------------------------------- API


def test_input_validation_messages():
    with pytest.raises(ValueError, match="lengths sum to 5"):
        check_sequences(np.zeros((4, 2)), [2, 3])
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN"):
        check_sequences([np.zeros((3, 2)), np.array([[np.nan, 0.0]])])
    with pytest.raises(ValueError, match="different numbers of features"):
        check_sequences([np.zeros((3, 2)), np.zeros((3, 3))])
    with pytest.raises(ValueError, match="lengths must all be >= 1"):
        check_sequences(np.zeros((4, 2)), [4, 0])
    with pytest.raises(ValueError, match="'covariance_type'"):
        GMMHMM(covariance_type="tied").fit([np.zeros((5, 2))])
    with pytest.raises(ValueError, match="'n_states'"):
        GMMHMM(n_states=0).fit([np.zeros((5, 2))])
    model = random_model(np.random.default_rng(0), d=3)
    with pytest.raises(ValueError, match="expecting 3 features"):
        model.score(np.zeros((4, 2)))
    with pytest.raises(AttributeError, match="not fitted"):
        GMMHMM().score(np.zeros((4, 2)))


def test_sklearn_protocol_and_sample():
    from sklearn.base import clone

    model = GMMHMM(3, 2, covariance_type="full", max_jump=2)
    c = clone(model)
    assert c.get_params() == model.get_params()
    fitted = random_model(np.random.default_rng(12), s=3, m=2, d=2, covariance_type="full")
    x, states = fitted.sample(50, random_state=0)
    assert x.shape == (50, 2) and states.shape == (50,)
    assert states[0] == 0 and np.all(np.diff(states) >= 0) and np.all(np.diff(states) <= 2)
    assert np.isfinite(fitted.bic(x))


# ----------------------------------------------------------------------------- model files


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_save_load_roundtrip(tmp_path, covariance_type):
    from gmmspeech.mixture import io

    rng = np.random.default_rng(13)
    means = rng.normal(0, 3, (3, 2))
    seqs = sample_left_right(rng, means, np.array([0.8, 0.8, 0.8]), 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GMMHMM(3, 2, covariance_type=covariance_type, max_jump=2, max_iter=5).fit(seqs)
    path = io.save(model, tmp_path / "word.npz", metadata={"label": "seven"})
    back = io.load(path)
    assert isinstance(back, GMMHMM)
    for name in ("startprob_", "transmat_", "weights_", "means_", "covariances_", "var_floor_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert back.get_params() == model.get_params()
    assert back.history_ == model.history_ and back.history_n_mix_ == model.history_n_mix_
    assert back.metadata_ == {"label": "seven"}
    np.testing.assert_array_equal(back.score_sequences(seqs), model.score_sequences(seqs))
    assert io.model_info(path)["format"] == "gmmspeech-hmm"


def test_hmm_file_tampering_is_refused(tmp_path):
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io

    model = random_model(np.random.default_rng(14), s=3, m=2, d=2, max_jump=1)
    path = io.save(model, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["transmat"] = arrays["transmat"].copy()
    arrays["transmat"][0, 0] += 0.1  # rows no longer sum to 1 (and the checksum breaks)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="checksum"):
        io.load(bad)
    # a consistent file (checksum recomputed) whose transitions go backwards is refused too
    import json

    meta = json.loads(arrays.pop("__meta__").tobytes())
    arrays["transmat"] = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    meta["checksum"] = io._checksum(arrays, meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="left-to-right"):
        io.load(bad)


# ----------------------------------------------------------------------------- fused diagonal E-step


def np_expected_stats(model, x):
    """Per-sequence Baum-Welch statistics from the textbook log-domain recursions: component
    occupancies gamma_t(j) r_t(j, m), their first/second moments, expected transitions."""
    with np.errstate(divide="ignore"):
        log_a = np.log(model.transmat_)
    s, m, d = model.means_.shape
    lb = log_emissions(model, x)
    ll, gamma = np_forward_backward(model, x)
    comp = np.stack([[np.log(model.weights_[j, k]) + multivariate_normal(
        model.means_[j, k], np.diag(model.covariances_[j, k])).logpdf(x).reshape(-1) for k in range(m)]
        for j in range(s)])                                     # (S, M, T)
    # (diagonal component densities: for a full-covariance model only xi below is used, and
    # these occupancies may overflow, harmlessly)
    with np.errstate(over="ignore", invalid="ignore"):
        occ = (gamma.T[:, None, :] * np.exp(comp - lb.T[:, None, :])).reshape(s * m, -1)
    # xi from alpha/beta recomputed here
    t_len = x.shape[0]
    alpha = np.full((t_len, s), -np.inf)
    alpha[0] = np.log(model.startprob_ + 0.0, where=model.startprob_ > 0, out=np.full(s, -np.inf)) + lb[0]
    for t in range(1, t_len):
        alpha[t] = logsumexp(alpha[t - 1][:, None] + log_a, axis=0) + lb[t]
    ends = np_ends(model, alpha[-1])
    beta = np.full((t_len, s), -np.inf)
    beta[-1] = np.where(ends, 0.0, -np.inf)
    for t in range(t_len - 2, -1, -1):
        beta[t] = logsumexp(log_a + (lb[t + 1] + beta[t + 1])[None, :], axis=1)
    xi = np.zeros((s, s))
    for t in range(t_len - 1):
        xi += np.exp(alpha[t][:, None] + log_a + (lb[t + 1] + beta[t + 1])[None, :] - ll)
    return ll, occ.sum(1), occ @ x, occ @ (x * x), xi


@pytest.mark.parametrize("max_jump,require_final", [(1, True), (2, True), (1, False)])
def test_fused_diag_e_step_matches_numpy(max_jump, require_final):
    """The one-call diagonal E-step (scaled forward-backward, log-domain fallback) gives the
    statistics of the textbook log-domain recursions, also for 1-frame sequences, sequences
    shorter than the model and frames so far out that the scaled recursion underflows."""
    rng = np.random.default_rng(21)
    model = random_model(rng, s=5, m=3, d=4, max_jump=max_jump, require_final=require_final)
    seqs = [rng.normal(0, 2, (t, 4)) for t in (1, 2, 3, 4, 9, 30)]
    far = rng.normal(0, 2, (12, 4))
    far[5] = 400.0  # emission log-densities ~1e5 apart: linear-domain scaling underflows
    seqs.append(far)
    X, offsets = check_sequences(seqs)
    stats, trans, _, ll = model._e_step_diag(X, offsets)
    ref = [np_expected_stats(model, x) for x in seqs]
    np.testing.assert_allclose(ll, [r[0] for r in ref], rtol=1e-10)
    np.testing.assert_allclose(stats.n, sum(r[1] for r in ref), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(stats.f, sum(r[2] for r in ref), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(stats.s, sum(r[3] for r in ref), rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(trans, sum(r[4] for r in ref), rtol=1e-8, atol=1e-10)
    assert stats.loglik == pytest.approx(sum(r[0] for r in ref), rel=1e-10)
    # scoring far from the model (state log-densities thousands of nats apart, a mismatched
    # word model): the forward pass keeps full precision
    wild = [rng.normal(0, 30, (t, 4)) for t in (5, 40, 80)]
    np.testing.assert_allclose(model.score_sequences(wild), [np_forward_backward(model, x)[0] for x in wild],
                               rtol=1e-11)
    Xw, offw = check_sequences(wild)
    stw, trw, _, _ = model._e_step_diag(Xw, offw)
    refw = [np_expected_stats(model, x) for x in wild]
    np.testing.assert_allclose(stw.n, sum(r[1] for r in refw), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(trw, sum(r[4] for r in refw), rtol=1e-7, atol=1e-9)
    # cut into several work items: the same sums, bit for bit whatever the thread count
    model._DIAG_ITEM_FRAMES = 20
    runs = []
    for n_threads in (1, 3):
        model.set_params(n_threads=n_threads)
        runs.append(model._e_step_diag(X, offsets))
    np.testing.assert_allclose(runs[0][0].s, stats.s, rtol=1e-12)
    np.testing.assert_allclose(runs[0][1], trans, rtol=1e-12)
    np.testing.assert_allclose(runs[0][3], ll, rtol=1e-12)
    for a, b in zip((runs[0][0].n, runs[0][0].f, runs[0][0].s, runs[0][1], runs[0][3]),
                    (runs[1][0].n, runs[1][0].f, runs[1][0].s, runs[1][1], runs[1][3])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
@pytest.mark.parametrize("require_final", [True, False])
def test_one_gaussian_per_state_matches_numpy(covariance_type, require_final):
    """One Gaussian per state (hmmlearn's GaussianHMM; the kernels' shortcut where the state
    density is the component density and the occupancy is gamma): the fused diagonal
    E-step, the block path (full covariances) and the forward pass equal the textbook
    recursions, also far from the model and for sequences shorter than the model."""
    rng = np.random.default_rng(33)
    model = random_model(rng, s=5, m=1, d=4, covariance_type=covariance_type, max_jump=1,
                         require_final=require_final)
    seqs = [rng.normal(0, 2, (t, 4)) for t in (1, 2, 4, 6, 11, 40)]
    far = rng.normal(0, 2, (12, 4))
    far[5] = 400.0
    seqs.append(far)
    X, offsets = check_sequences(seqs)
    stats, trans, _, ll = model._e_step(X, offsets)
    ref = [np_forward_backward(model, x) for x in seqs]  # (log p(x), gamma): the occupancies
    np.testing.assert_allclose(ll, [r[0] for r in ref], rtol=1e-10)
    np.testing.assert_allclose(stats.n, sum(r[1].sum(0) for r in ref), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(stats.f, sum(r[1].T @ x for r, x in zip(ref, seqs)), rtol=1e-8, atol=1e-8)
    sec = stats.s if covariance_type == "diag" else np.einsum("kii->ki", stats.s)  # full: sums of x x^T
    np.testing.assert_allclose(sec, sum(r[1].T @ (x * x) for r, x in zip(ref, seqs)), rtol=1e-8, atol=1e-6)
    # expected transitions from the textbook alpha/beta (the reference's xi uses only the
    # state log-densities, so it holds for full covariances too)
    np.testing.assert_allclose(trans, sum(np_expected_stats(model, x)[4] for x in seqs), rtol=1e-8, atol=1e-10)
    _, gamma = model.score_samples(seqs)
    for b, x in enumerate(seqs):
        np.testing.assert_allclose(gamma[offsets[b] : offsets[b + 1]], np_forward_backward(model, x)[1], atol=1e-9)
    wild = [rng.normal(0, 30, (t, 4)) for t in (5, 40, 80)]
    np.testing.assert_allclose(model.score_sequences(wild), [np_forward_backward(model, x)[0] for x in wild],
                               rtol=1e-11)


def test_diag_work_items_do_not_change_the_sums():
    """A fit's frames cut into several work items (the default grid, many sequences) give
    the statistics of one item to 1e-12, bit for bit whatever the thread count."""
    rng = np.random.default_rng(5)
    model = random_model(rng, s=6, m=1, d=5, max_jump=1)
    seqs = [rng.normal(0, 2, (int(t), 5)) for t in rng.integers(20, 120, 80)]
    X, offsets = check_sequences(seqs)
    assert X.shape[0] > 3 * model._DIAG_ITEM_FRAMES  # several items on the default grid
    runs = []
    for n_threads in (1, 3):
        model.set_params(n_threads=n_threads)
        runs.append(model._e_step_diag(X, offsets))
    model._DIAG_ITEM_FRAMES = X.shape[0]
    one = model._e_step_diag(X, offsets)
    for got, want in ((runs[0][0].n, one[0].n), (runs[0][0].f, one[0].f), (runs[0][0].s, one[0].s),
                      (runs[0][1], one[1]), (runs[0][3], one[3])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    for a, b in zip((runs[0][0].n, runs[0][0].f, runs[0][0].s, runs[0][1], runs[0][3]),
                    (runs[1][0].n, runs[1][0].f, runs[1][0].s, runs[1][1], runs[1][3])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.score_sequences(seqs), runs[0][3])
