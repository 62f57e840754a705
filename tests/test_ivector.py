"""i-vectors and their back-ends against plain-numpy transcriptions of the formulas.

Every reference here is written out in the test, one utterance / one component / one
speaker at a time, as the textbooks state it (Kenny 2005; Dehak et al. 2011; Brümmer & de
Villiers 2010; Garcia-Romero & Espy-Wilson 2011), independent of the batched code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gmmspeech.backend import (
    LDA,
    PLDA,
    WCCN,
    IVectorExtractor,
    LengthNorm,
    LogisticCalibration,
    ScoreFusion,
    cosine_scores,
    load_extractor,
    save_extractor,
    utterance_stats,
)
from gmmspeech.backend.ivector import TVModel, extract, init_tv, train_tv, tv_em_step
from gmmspeech.backend.scoring import SpeakerBackend
from gmmspeech.errors import ModelFileError
from gmmspeech.mixture.gmm import GMM


# --------------------------------------------------------------------------- fixtures
def _ubm(rng, k=6, d=3, full=False, dtype=np.float64):
    means = rng.normal(size=(k, d)) * 3.0
    w = rng.dirichlet(np.ones(k) * 5)
    if full:
        a = rng.normal(size=(k, d, d)) * 0.4
        cov = a @ np.swapaxes(a, 1, 2) + np.eye(d) * 0.5
        return GMM.from_params(w, means, cov, "full", dtype=dtype)
    return GMM.from_params(w, means, rng.uniform(0.5, 2.0, size=(k, d)), "diag", dtype=dtype)


def _utterances(rng, ubm, t_true, n_utt, frames=80, n_spk=None):
    """Utterances whose mean supervector is m + T w (one w per speaker when n_spk)."""
    k, d = ubm.means_.shape
    r = t_true.shape[2]
    spk_w = rng.normal(size=(n_spk, r)) if n_spk else None
    out, labels = [], []
    cov = ubm.covariances_
    for u in range(n_utt):
        if n_spk:
            s = u % n_spk
            w = spk_w[s] + 0.3 * rng.normal(size=r)
            labels.append(f"s{s}")
        else:
            w = rng.normal(size=r)
        m = ubm.means_ + t_true @ w
        comp = rng.choice(k, size=frames, p=ubm.weights_)
        if cov.ndim == 3:
            ch = np.linalg.cholesky(cov)
            x = m[comp] + np.einsum("nij,nj->ni", ch[comp], rng.normal(size=(frames, d)))
        else:
            x = m[comp] + rng.normal(size=(frames, d)) * np.sqrt(cov[comp])
        out.append(x.astype(np.float32))
    return out, labels


def _stats(rng, ubm, n_utt=40, r=3):
    k, d = ubm.means_.shape
    t_true = rng.normal(size=(k, d, r)) * 0.6
    utts, _ = _utterances(rng, ubm, t_true, n_utt)
    return utterance_stats(ubm, utts)


def _precisions(ubm):
    cov = ubm.covariances_
    return np.linalg.inv(cov) if cov.ndim == 3 else np.stack([np.diag(1.0 / c) for c in cov])


# --------------------------------------------------------------------------- statistics
def test_baum_welch_stats_match_sklearn_posteriors():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(1)
    ubm = _ubm(rng)
    x = rng.normal(size=(300, 3)) * 2.0
    st = utterance_stats(ubm, [x, x[:50]], ids=["a", "b"])
    # the default float32 E-step agrees to float32 rounding
    st32 = utterance_stats(GMM.from_params(ubm.weights_, ubm.means_, ubm.covariances_, "diag"), [x])
    np.testing.assert_allclose(st32.f[0], st.f[0], rtol=1e-4, atol=1e-4 * np.abs(st.f[0]).max())
    sk = GaussianMixture(6, covariance_type="diag")
    sk.weights_, sk.means_, sk.covariances_ = ubm.weights_, ubm.means_, ubm.covariances_
    sk.precisions_cholesky_ = 1.0 / np.sqrt(ubm.covariances_)
    for i, xx in enumerate([x, x[:50]]):
        g = sk.predict_proba(xx)
        n_ref = g.sum(0)
        f_ref = g.T @ xx - n_ref[:, None] * ubm.means_
        np.testing.assert_allclose(st.n[i], n_ref, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(st.f[i], f_ref, rtol=1e-6, atol=1e-6)
    assert st.ids == ["a", "b"]


def test_baum_welch_top_c_keeps_c_components_per_frame():
    rng = np.random.default_rng(2)
    ubm = _ubm(rng)
    x = rng.normal(size=(200, 3)) * 2.0
    st = utterance_stats(ubm, [x], top_c=2)
    lp = ubm.weighted_log_prob(x)
    keep = np.argsort(lp, axis=1)[:, -2:]
    g = np.zeros_like(lp)
    for t in range(x.shape[0]):
        v = lp[t, keep[t]]
        p = np.exp(v - v.max())
        g[t, keep[t]] = p / p.sum()
    np.testing.assert_allclose(st.n[0], g.sum(0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(st.f[0], g.T @ x - g.sum(0)[:, None] * ubm.means_, rtol=1e-5, atol=1e-5)


def test_stats_stream_from_an_iterator_a_batch_at_a_time():
    """Utterances from a generator are consumed a batch at a time: when utterance ``j`` is
    made, at most two batches of earlier utterances are still alive, and the statistics
    equal those of the list (and the textbook posteriors)."""
    import gc
    import weakref

    rng = np.random.default_rng(11)
    ubm = _ubm(rng, k=5, d=4)
    xs = [rng.normal(size=(30 + 7 * i, 4)) * 2.0 for i in range(23)]
    alive_max = []
    refs = []

    def gen():
        for x in xs:
            gc.collect()
            alive_max.append(sum(r() is not None for r in refs))
            y = x.copy()
            refs.append(weakref.ref(y))
            yield y

    st = utterance_stats(ubm, gen(), batch_size=4)
    assert max(alive_max) <= 8, alive_max
    assert st.ids == [str(i) for i in range(len(xs))]
    ref = utterance_stats(ubm, xs, batch_size=4)
    np.testing.assert_array_equal(st.n, ref.n)
    np.testing.assert_array_equal(st.f, ref.f)
    g = ubm.predict_proba(xs[-1])
    np.testing.assert_allclose(st.n[-1], g.sum(0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(st.f[-1], g.T @ xs[-1] - g.sum(0)[:, None] * ubm.means_, rtol=1e-6, atol=1e-6)
    named = utterance_stats(ubm, iter(xs[:3]), ids=["a", "b", "c"])
    assert named.ids == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 ids for more than 2 arrays"):
        utterance_stats(ubm, iter(xs[:3]), ids=["a", "b"])
    with pytest.raises(ValueError, match="utterance '1'.*NaN"):
        utterance_stats(ubm, [xs[0], np.full((5, 4), np.nan)])


def test_stats_cache_beside_the_store(tmp_path):
    from gmmspeech.corpus.store import FeatureStore

    rng = np.random.default_rng(3)
    ubm = _ubm(rng, k=4, d=60)  # the "speech" preset's 60 dims
    arrays = [rng.normal(size=(n, 60)).astype(np.float32) for n in (40, 70)]
    store = FeatureStore(tmp_path / "st")
    # a store written through its public builder, with an extractor returning our arrays
    from gmmspeech.corpus.manifest import Row

    rows = [Row(f"u{i}", str(tmp_path / f"u{i}.wav"), "s", None, None, i + 2) for i in range(2)]
    lookup = {r.path: a for r, a in zip(rows, arrays)}
    report = store.build(rows, config="speech", progress=False,
                         extractor=lambda path, **kw: lookup[path])
    assert report.ok
    a = utterance_stats(ubm, store)
    cache = tmp_path / "st" / "bw"
    assert cache.is_dir() and len(list(cache.rglob("*.npy"))) == 2
    b = utterance_stats(ubm, store)  # from the cache
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_array_equal(a.f, b.f)


# --------------------------------------------------------------------------- posterior
@pytest.mark.parametrize("full", [False, True])
def test_ivector_posterior_matches_textbook(full):
    rng = np.random.default_rng(4)
    ubm = _ubm(rng, full=full)
    st = _stats(rng, ubm, n_utt=12)
    model = init_tv(ubm, 4, random_state=0, scale=0.5)
    model.offset[:] = rng.normal(size=model.offset.shape) * 0.1
    w, cov = extract(model, st.n, st.f, return_cov=True)
    prec = _precisions(ubm)
    k, d, r = model.T.shape
    for u in range(len(st)):
        L = np.eye(r)
        b = np.zeros(r)
        for c in range(k):
            Tc = model.T[c]
            L += st.n[u, c] * Tc.T @ prec[c] @ Tc
            b += Tc.T @ prec[c] @ (st.f[u, c] - st.n[u, c] * model.offset[c])
        np.testing.assert_allclose(w[u], np.linalg.solve(L, b), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov[u], np.linalg.inv(L), rtol=1e-10, atol=1e-12)
    # transform without covariances gives the same means
    np.testing.assert_allclose(extract(model, st.n, st.f), w, rtol=1e-12, atol=1e-14)


def _textbook_em_step(model, n, f, prec, min_div):
    k, d, r = model.T.shape
    A = np.zeros((k, r, r))
    C = np.zeros((k, d, r))
    h = np.zeros(r)
    H = np.zeros((r, r))
    for u in range(n.shape[0]):
        fc = f[u] - n[u][:, None] * model.offset
        L = np.eye(r) + sum(n[u, c] * model.T[c].T @ prec[c] @ model.T[c] for c in range(k))
        Linv = np.linalg.inv(L)
        w = Linv @ sum(model.T[c].T @ prec[c] @ fc[c] for c in range(k))
        E = Linv + np.outer(w, w)
        for c in range(k):
            A[c] += n[u, c] * E
            C[c] += np.outer(fc[c], w)
        h += w
        H += E
    T = np.stack([C[c] @ np.linalg.inv(A[c]) for c in range(k)])
    off = model.offset.copy()
    if min_div:
        mu = h / n.shape[0]
        S = H / n.shape[0] - np.outer(mu, mu)
        off = off + T @ mu
        T = T @ np.linalg.cholesky(S)
    return T, off


@pytest.mark.parametrize("full,min_div", [(False, False), (False, True), (True, True)])
def test_tv_em_step_matches_textbook(full, min_div):
    rng = np.random.default_rng(5)
    ubm = _ubm(rng, full=full)
    st = _stats(rng, ubm, n_utt=30)
    model = init_tv(ubm, 3, random_state=1, scale=0.4)
    model.offset[:] = rng.normal(size=model.offset.shape) * 0.05
    new, _ll = tv_em_step(model, st.n, st.f, min_divergence=min_div, n_tasks=3)
    T_ref, off_ref = _textbook_em_step(model, st.n, st.f, _precisions(ubm), min_div)
    np.testing.assert_allclose(new.T, T_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(new.offset, off_ref, rtol=1e-8, atol=1e-10)


def test_tv_loglik_is_the_marginal_likelihood_up_to_a_constant():
    """The EM objective differs from log p(X | T) (frames given alignments) by a constant."""
    rng = np.random.default_rng(6)
    ubm = _ubm(rng, k=3, d=2)
    utts, _ = _utterances(rng, ubm, rng.normal(size=(3, 2, 2)) * 0.5, 3, frames=20)
    st = utterance_stats(ubm, utts)
    gam = [ubm.predict_proba(x) for x in utts]

    def exact(model):
        # frames of an utterance: x_t | w ~ N(m_c + o_c + T_c w, Sigma_c) with weights gamma_tc;
        # integrate w ~ N(0, I) in closed form via the stacked Gaussian
        total = 0.0
        for x, g in zip(utts, gam):
            k, d, r = model.T.shape
            P = np.zeros((r, r))
            q = np.zeros(r)
            const = 0.0
            for c in range(k):
                prec = np.diag(1.0 / ubm.covariances_[c])
                diff = x - ubm.means_[c] - model.offset[c]
                P += g[:, c].sum() * model.T[c].T @ prec @ model.T[c]
                q += model.T[c].T @ prec @ (g[:, c] @ diff)
                const += -0.5 * np.sum(g[:, c] * np.einsum("ti,ij,tj->t", diff, prec, diff))
            L = np.eye(r) + P
            total += const - 0.5 * np.linalg.slogdet(L)[1] + 0.5 * q @ np.linalg.solve(L, q)
        return total

    m1 = init_tv(ubm, 2, random_state=0, scale=0.3)
    m2 = TVModel(m1.T * 1.7 + 0.1, rng.normal(size=m1.offset.shape) * 0.2, m1.prec)
    l1 = tv_em_step(m1, st.n, st.f)[1]
    l2 = tv_em_step(m2, st.n, st.f)[1]
    assert (l1 - l2) == pytest.approx(exact(m1) - exact(m2), rel=1e-6)


def test_tv_em_log_likelihood_never_decreases():
    rng = np.random.default_rng(7)
    for full in (False, True):
        ubm = _ubm(rng, full=full)
        st = _stats(rng, ubm, n_utt=60)
        for min_div in (True, False):
            _m, hist = train_tv(ubm, st.n, st.f, 4, n_iter=12, min_divergence=min_div, random_state=0)
            d = np.diff(hist)
            assert np.all(d >= -1e-9 * np.abs(np.asarray(hist[1:]))), (full, min_div, d)
            assert hist[-1] > hist[0]


def test_tv_resume_gives_the_identical_matrix(tmp_path):
    rng = np.random.default_rng(8)
    ubm = _ubm(rng)
    st = _stats(rng, ubm, n_utt=40)
    full, hist = train_tv(ubm, st.n, st.f, 3, n_iter=6, random_state=3)
    ck = tmp_path / "tv.ckpt.npz"
    train_tv(ubm, st.n, st.f, 3, n_iter=2, random_state=3, checkpoint=ck)
    resumed, hist2 = train_tv(ubm, st.n, st.f, 3, n_iter=6, random_state=3, checkpoint=ck, resume=True)
    np.testing.assert_array_equal(resumed.T, full.T)
    np.testing.assert_array_equal(resumed.offset, full.offset)
    assert hist2 == hist
    # a checkpoint of other statistics is refused, naming the file
    from gmmspeech.backend.ivector import TVCheckpointError

    with pytest.raises(TVCheckpointError, match="tv.ckpt.npz"):
        train_tv(ubm, st.n[:20], st.f[:20], 3, n_iter=6, random_state=3, checkpoint=ck, resume=True)


def test_tv_parallel_equals_serial():
    rng = np.random.default_rng(9)
    ubm = _ubm(rng)
    st = _stats(rng, ubm, n_utt=30)
    a, _ = train_tv(ubm, st.n, st.f, 3, n_iter=3, random_state=0)
    b, _ = train_tv(ubm, st.n, st.f, 3, n_iter=3, random_state=0, n_jobs=2)
    np.testing.assert_allclose(b.T, a.T, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- extractor
def test_ivector_extractor_end_to_end_save_load(tmp_path):
    rng = np.random.default_rng(10)
    ubm = _ubm(rng, k=8, d=4)
    t_true = rng.normal(size=(8, 4, 3)) * 0.8
    utts, labels = _utterances(rng, ubm, t_true, 60, frames=120, n_spk=6)
    ext = IVectorExtractor(rank=3, n_iter=8, ubm=ubm, random_state=0).fit(utts)
    iv = ext.transform(utts)
    assert iv.shape == (60, 3) and np.all(np.isfinite(iv))
    assert np.all(np.diff(ext.history_) >= -1e-9 * np.abs(ext.history_[1:]))
    # same-speaker i-vectors are nearer than different-speaker ones
    s = cosine_scores(iv, iv)
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    off = ~np.eye(60, dtype=bool)
    assert s[same & off].mean() > s[~same].mean() + 0.3
    p = save_extractor(ext, tmp_path / "ext.npz")
    back = load_extractor(p)
    np.testing.assert_allclose(back.transform(utts), iv, rtol=1e-12, atol=1e-12)
    m, c = back.posterior(utts[:3])
    assert c.shape == (3, 3, 3)
    np.testing.assert_allclose(m, iv[:3], rtol=1e-10)
    with pytest.raises(ModelFileError, match="ext.npz"):
        from gmmspeech.mixture import io as mio

        mio.load(p)  # an extractor is not a GMM file
    raw = bytearray(open(p, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        load_extractor(bad)


def test_ivector_extractor_trains_its_own_ubm_full_covariance():
    rng = np.random.default_rng(11)
    ubm = _ubm(rng, k=4, d=3)
    utts, _ = _utterances(rng, ubm, rng.normal(size=(4, 3, 2)) * 0.5, 30, frames=100)
    ext = IVectorExtractor(rank=2, n_iter=3, n_components=4, ubm_covariance="full", ubm_iter=3,
                           full_iter=2, random_state=0).fit(utts)
    assert ext.ubm_.covariance_type == "full"
    assert ext.transform(utts).shape == (30, 2)


def test_full_covariance_ubm_improves_the_likelihood():
    from gmmspeech.speaker.ubm import diag_to_full, full_covariance_ubm

    rng = np.random.default_rng(12)
    a = rng.normal(size=(3, 3))
    X = (rng.normal(size=(3000, 3)) @ a).astype(np.float32)
    diag = GMM(4, covariance_type="diag", random_state=0).fit(X)
    same = diag_to_full(diag)
    np.testing.assert_allclose(same.score(X), diag.score(X), rtol=1e-6)
    full = full_covariance_ubm(diag, [X], max_iter=3)
    assert full.covariance_type == "full"
    assert full.score(X) > diag.score(X) + 0.05
    assert np.all(np.diff(full.history_[-3:]) >= -1e-6)


# --------------------------------------------------------------------------- transforms
def _labelled(rng, n_spk=12, per=8, d=6):
    centres = rng.normal(size=(n_spk, d)) * 2.0
    a = rng.normal(size=(d, d)) * 0.5
    X = np.concatenate([centres[s] + rng.normal(size=(per, d)) @ a for s in range(n_spk)])
    y = np.repeat([f"spk{s}" for s in range(n_spk)], per)
    return X, y


def test_lda_spans_the_same_subspace_as_sklearn():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(13)
    X, y = _labelled(rng)
    ours = LDA(n_components=3, reg=0.0).fit(X, y).transform(X)
    ref = LinearDiscriminantAnalysis(solver="eigen", n_components=3).fit(X, y).transform(X)
    for j in range(3):
        assert abs(np.corrcoef(ours[:, j], ref[:, j])[0, 1]) > 1 - 1e-6
    # within-class covariance of the output is the identity
    from gmmspeech.backend.transforms import class_scatter

    _m, sw, _sb, _c = class_scatter(ours, y)
    np.testing.assert_allclose(sw, np.eye(3), atol=1e-8)


def test_wccn_whitens_the_average_speaker_covariance():
    rng = np.random.default_rng(14)
    X, y = _labelled(rng)
    Z = WCCN(reg=0.0).fit(X, y).transform(X)
    W = np.zeros((Z.shape[1],) * 2)
    spk = np.unique(y)
    for s in spk:
        z = Z[y == s]
        W += np.cov(z, rowvar=False, bias=True)
    np.testing.assert_allclose(W / spk.size, np.eye(Z.shape[1]), atol=1e-8)


def test_length_norm_whitens_then_projects_on_the_sphere():
    rng = np.random.default_rng(15)
    X, _y = _labelled(rng)
    ln = LengthNorm().fit(X)
    Z = (X - X.mean(0)) @ ln.whitening_
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(X.shape[1]), atol=1e-6)
    out = ln.transform(X)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.sqrt(X.shape[1]))
    np.testing.assert_allclose(LengthNorm(whiten=False, radius=1.0).fit(X).transform(X[:1]),
                               (X[:1] - X.mean(0)) / np.linalg.norm(X[:1] - X.mean(0)))


@pytest.mark.parametrize("shrinkage", ["none", "ledoit-wolf", "oas"])
def test_length_norm_refuses_to_whiten_identical_vectors(shrinkage):
    # every vector equal: the whitening was 1 / sqrt of a floor relative to the zero
    # covariance (~1e154 per unit), and transform of any other vector gave the zero vector
    # (its length overflowed to inf) with a RuntimeWarning
    X = np.full((10, 3), 2.0)
    with pytest.raises(ValueError, match="LengthNorm: every vector in X is the same"):
        LengthNorm(shrinkage=shrinkage).fit(X)
    # without whitening it is only centring: any other vector keeps its direction
    out = LengthNorm(whiten=False).fit(X).transform(np.array([[3.0, 2.0, 2.0]]))
    np.testing.assert_allclose(out, [[np.sqrt(3.0), 0.0, 0.0]])


@pytest.mark.parametrize("shrinkage", ["none", "ledoit-wolf", "oas"])
def test_length_norm_of_huge_vectors_equals_that_of_the_same_vectors_scaled_down(shrinkage):
    # vectors ~1e150: sklearn's shrinkage overflowed ("Input contains NaN"), and without
    # whitening every length overflowed to inf, so every output was the zero vector
    import warnings

    rng = np.random.default_rng(17)
    X = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 4))
    for whiten in (True, False):
        ref = LengthNorm(whiten=whiten, shrinkage=shrinkage).fit(X).transform(X)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            big = LengthNorm(whiten=whiten, shrinkage=shrinkage).fit(X * 1e150).transform(X * 1e150)
        np.testing.assert_allclose(big, ref, atol=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            huge = LengthNorm(whiten=whiten, shrinkage=shrinkage).fit(X * 1e300).transform(X * 1e300)
        np.testing.assert_allclose(huge, ref, atol=1e-9)
    # one direction at 1e154, the other at 1: the covariance (its square) is not formed, so
    # no NaN whitening (the review's case)
    Y = np.array([[1.2e154, 1.0], [-1.2e154, 2.0], [0.5e154, 1.5]])
    m = LengthNorm(shrinkage=shrinkage).fit(Y)
    assert np.all(np.isfinite(m.whitening_)) and np.all(np.isfinite(m.transform(Y)))
    with pytest.raises(ValueError, match="too far apart to centre"):
        LengthNorm(shrinkage=shrinkage).fit(np.array([[1.7e308, 0.0], [-1.7e308, 1.0], [1.7e308, 2.0]]))


def test_transformers_chain_in_a_sklearn_pipeline():
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(16)
    X, y = _labelled(rng)
    pipe = make_pipeline(LengthNorm(), LDA(n_components=4), WCCN(), LengthNorm(whiten=False))
    Z = pipe.fit(X, y).transform(X)
    assert Z.shape == (X.shape[0], 4)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 2.0)


# --------------------------------------------------------------------------- PLDA
def _gauss_logpdf(x, cov):
    d = x.size
    sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (d * np.log(2 * np.pi) + logdet + x @ np.linalg.solve(cov, x))


@pytest.mark.parametrize("model", ["two-cov", "simplified"])
def test_plda_llr_matches_the_closed_form(model):
    rng = np.random.default_rng(17)
    X, y = _labelled(rng, n_spk=20, per=6, d=5)
    p = PLDA(model=model, n_components=3, n_iter=5).fit(X, y)
    mu, B, W = p.mean_, p.between_covariance_, p.within_covariance_
    T = B + W
    d = X.shape[1]
    e = rng.normal(size=(3, d)) + mu  # three enrolment vectors of one model
    t = rng.normal(size=(4, d)) + mu
    got1 = p.llr(e[:1], t)
    got3 = p.llr(e.mean(0, keepdims=True), t, n_enroll=[3])
    for j in range(t.shape[0]):
        # n = 1: joint Gaussian of (enrol, test), same speaker vs independent
        xs = np.concatenate([e[0], t[j]]) - np.tile(mu, 2)
        same = np.block([[T, B], [B, T]])
        ref = _gauss_logpdf(xs, same) - _gauss_logpdf(e[0] - mu, T) - _gauss_logpdf(t[j] - mu, T)
        assert got1[0, j] == pytest.approx(ref, rel=1e-8, abs=1e-8)
        # n = 3: all four vectors share one speaker vs enrol (3 shared) and test apart
        xs = np.concatenate([*e, t[j]]) - np.tile(mu, 4)
        same4 = np.kron(np.ones((4, 4)), B) + np.kron(np.eye(4), W)
        same3 = np.kron(np.ones((3, 3)), B) + np.kron(np.eye(3), W)
        ref3 = (_gauss_logpdf(xs, same4) - _gauss_logpdf(xs[:3 * d], same3)
                - _gauss_logpdf(t[j] - mu, T))
        assert got3[0, j] == pytest.approx(ref3, rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("model", ["two-cov", "simplified"])
def test_plda_em_never_decreases_and_separates_speakers(model):
    rng = np.random.default_rng(18)
    X, y = _labelled(rng, n_spk=30, per=5, d=6)
    p = PLDA(model=model, n_components=4, n_iter=15).fit(X, y)
    ll = np.asarray(p.log_likelihood_)
    assert np.all(np.diff(ll) >= -1e-8 * np.abs(ll[1:]))
    Xt, yt = _labelled(np.random.default_rng(19), n_spk=30, per=5, d=6)
    s = p.llr(X, X)
    same = y[:, None] == y[None, :]
    assert s[same].mean() > s[~same].mean()


def test_plda_two_cov_em_step_matches_textbook():
    rng = np.random.default_rng(20)
    X, y = _labelled(rng, n_spk=10, per=4, d=3)
    p1 = PLDA(n_iter=1).fit(X, y)
    # one EM iteration from the moment estimates, one speaker at a time
    from gmmspeech.backend.transforms import class_scatter

    mu, sw, sb, classes = class_scatter(X, y)
    # covariance floor: 1e-8 times its own average variance (none collapses here)
    reg = lambda c: 0.5 * (c + c.T) + 1e-8 * np.trace(c) / c.shape[0] * np.eye(c.shape[0])  # noqa: E731
    Bi, Wi = reg(sb), reg(sw)
    B, W = np.linalg.inv(Bi), np.linalg.inv(Wi)
    ys, Eyy, acc_w = [], [], np.zeros_like(W)
    for s in classes:
        xs = X[y == s]
        L = B + len(xs) * W
        ym = np.linalg.solve(L, B @ mu + W @ xs.sum(0))
        E = np.linalg.inv(L) + np.outer(ym, ym)
        ys.append(ym)
        Eyy.append(E)
        for x in xs:
            acc_w += np.outer(x, x) - np.outer(ym, x) - np.outer(x, ym) + E
    mu_new = np.mean(ys, axis=0)
    np.testing.assert_allclose(p1.mean_, mu_new, rtol=1e-9)
    np.testing.assert_allclose(p1.between_covariance_, reg(np.mean(Eyy, axis=0) - np.outer(mu_new, mu_new)),
                               rtol=1e-8)
    np.testing.assert_allclose(p1.within_covariance_, reg(acc_w / X.shape[0]), rtol=1e-8)


@pytest.mark.parametrize("model", ["two-cov", "simplified"])
def test_plda_stays_finite_when_a_covariance_collapses(model):
    """Length-normalised 1-D vectors are all +1 or -1: with every speaker on one side the
    within-speaker scatter is exactly 0. The floor (on the data's scale, not the collapsed
    matrix's) keeps every parameter and LLR finite; it used to underflow to 2e-316, whose
    inverse overflowed into NaN parameters (a GridSearchCV fold of SpeakerBackend(lda_dim=1))."""
    y = np.repeat(np.arange(4), 10)
    X = np.where(np.isin(y, [2]), 1.0, -1.0)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid value on the way either
        p = PLDA(model=model, n_iter=5).fit(X, y)
        s = p.llr(X[:3], X[10:])
    for name in ("mean_", "between_covariance_", "within_covariance_", "psi_", "transform_"):
        assert np.all(np.isfinite(getattr(p, name))), name
    assert np.all(np.isfinite(s))
    # floored on the data's scale (within + between speaker scatter), not on its own 0
    from gmmspeech.backend.transforms import class_scatter

    _, sw, sb, _ = class_scatter(X, y)
    assert sw[0, 0] == 0.0 and sb[0, 0] > 0.5
    assert 1e-11 * sb[0, 0] <= p.within_covariance_[0, 0] < 1e-6 * sb[0, 0]


def _collapsed_sets():
    """Labelled vectors whose within-class scatter is exactly zero: every class's vectors are
    equal (1-D signs, as length normalisation leaves 1-D vectors; and 5-D class copies)."""
    y = np.repeat(np.arange(4), 6)
    yield np.where(y == 2, 1.0, -1.0)[:, None], y
    yield np.repeat(np.random.default_rng(3).normal(size=(4, 5)), 6, axis=0), y


@pytest.mark.parametrize("make", [
    lambda: LDA(), lambda: WCCN(), lambda: PLDA(n_iter=3), lambda: PLDA(model="simplified", n_iter=3),
    lambda: SpeakerBackend(scoring="plda", plda_iter=3), lambda: SpeakerBackend(scoring="cosine"),
    lambda: SpeakerBackend(scoring="plda", lda_dim=1, plda_iter=3),
], ids=["LDA", "WCCN", "PLDA", "PLDA-simplified", "backend-plda", "backend-cosine", "backend-lda1-plda"])
def test_backends_stay_finite_when_the_within_class_scatter_is_zero(make):
    """The covariance floors are on the data's scale: fitted attributes, transforms and scores
    stay finite, with no overflow on the way (LDA's eigenvalue ratios, WCCN's projection and
    the back-ends built on them were NaN/Inf with a floor relative to the zero scatter)."""
    for X, y in _collapsed_sets():
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            est = make().fit(X, y)
            outputs = [v for v in vars(est).values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
            if hasattr(est, "transform"):
                outputs.append(est.transform(X))
            if hasattr(est, "score_trials"):
                labels, S = est.score_trials(X, y, X)
                outputs.append(S)
                if len(np.unique(X, axis=0)) == len(np.unique(y)) and est.lda_dim != 1:
                    # distinct classes (not the signs; LDA to one dimension leaves signs too):
                    # every vector scores highest against its own class
                    assert np.all(np.asarray(labels)[np.argmax(S, axis=1)] == y.astype(str))
        assert outputs and all(np.all(np.isfinite(o)) for o in outputs)


@pytest.mark.parametrize("make", [lambda: LDA(), lambda: WCCN(), lambda: PLDA()], ids=["LDA", "WCCN", "PLDA"])
def test_backends_refuse_vectors_without_variance(make):
    name = type(make()).__name__
    with pytest.raises(ValueError, match=f"{name}: every vector in X is the same"):
        make().fit(np.ones((8, 2)), np.repeat([0, 1], 4))


def test_plda_names_a_scale_float64_cannot_hold():
    # vectors ~1e-150: the covariances' products underflowed and LAPACK's eigensolver gave up
    # ("Eigenvalues did not converge"); PLDA's LLR does not depend on the scale: rescale X
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)
    X = rng.normal(size=(24, 5))
    for factor in (1e-150, 1e150):
        with pytest.raises(ValueError, match="PLDA: the vectors' average variance .* rescale X"):
            PLDA(n_iter=3).fit(X * factor, y)
    PLDA(n_iter=3).fit(X * 1e-100, y)  # still within range

# --------------------------------------------------------------------------- calibration
def test_logistic_calibration_recovers_the_gaussian_llr():
    rng = np.random.default_rng(21)
    mt, mn, sd = 2.0, -1.0, 1.5
    tar = rng.normal(mt, sd, 40000)
    non = rng.normal(mn, sd, 40000)
    s = np.concatenate([tar, non])
    lab = np.concatenate([np.ones(tar.size, bool), np.zeros(non.size, bool)])
    cal = LogisticCalibration().fit(s, lab)
    # true LLR of equal-variance Gaussians: a s + b
    a = (mt - mn) / sd**2
    b = -(mt**2 - mn**2) / (2 * sd**2)
    assert cal.coef_[0] == pytest.approx(a, rel=0.03)
    assert cal.intercept_ == pytest.approx(b, abs=0.05)
    # prior shifts only the intercept by -logit(prior) relative to the weighting
    assert cal.transform(np.array([0.0, 1.0])).shape == (2,)


def test_fusion_weights_the_informative_system():
    rng = np.random.default_rng(22)
    n = 5000
    lab = rng.random(n) < 0.3
    good = np.where(lab, 2.0, -2.0) + rng.normal(size=n)
    noise = rng.normal(size=n)
    fu = ScoreFusion().fit(np.stack([good, noise], 1), lab)
    assert abs(fu.coef_[1]) < 0.1 * abs(fu.coef_[0])
    out = fu.fuse(good.reshape(50, 100), noise.reshape(50, 100))
    assert out.shape == (50, 100)
    with pytest.raises(ValueError, match="2 score matrices"):
        fu.fuse(good.reshape(50, 100))


def test_pooled_enrolment_ivector_is_the_posterior_of_the_summed_statistics():
    """``enroll_ivectors="pooled"``: a speaker model is ONE i-vector, the posterior mean given
    the statistics of all its enrolment recordings summed (textbook formula on the sums);
    ``"mean"`` passes the per-recording i-vectors through."""
    from types import SimpleNamespace

    from gmmspeech.speaker.pipeline import _enrolment_vectors

    rng = np.random.default_rng(7)
    ubm = _ubm(rng)
    st = _stats(rng, ubm, n_utt=7)
    model = init_tv(ubm, 3, random_state=0, scale=0.5)
    ext = SimpleNamespace(transform=lambda s: extract(model, s.n, s.f),
                          posterior=lambda s: extract(model, s.n, s.f, return_cov=True))
    labels = ["b", "a", "b", "c", "a", "b", "c"]
    X, y, C = _enrolment_vectors(ext, st, None, labels, {"enroll_ivectors": "pooled", "uncertainty": False, "scoring": "plda"})
    assert y == ["b", "a", "c"] and C is None
    Xu, yu, Cu = _enrolment_vectors(ext, st, None, labels, {"enroll_ivectors": "pooled", "uncertainty": True, "scoring": "plda"})
    assert yu == y and Cu.shape == (3, 3, 3)
    prec = _precisions(ubm)
    k, _d, r = model.T.shape
    for j, spk in enumerate(y):
        rows = [i for i, lab in enumerate(labels) if lab == spk]
        n, f = st.n[rows].sum(axis=0), st.f[rows].sum(axis=0)
        L = np.eye(r) + sum(n[c] * model.T[c].T @ prec[c] @ model.T[c] for c in range(k))
        b = sum(model.T[c].T @ prec[c] @ (f[c] - n[c] * model.offset[c]) for c in range(k))
        np.testing.assert_allclose(X[j], np.linalg.solve(L, b), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(Xu[j], X[j], rtol=1e-10, atol=1e-12)
        # the posterior covariance of the pooled statistics: inv(L)
        np.testing.assert_allclose(Cu[j], np.linalg.inv(L), rtol=1e-9, atol=1e-12)
    per = extract(model, st.n, st.f)
    X, y, C = _enrolment_vectors(ext, st, per, labels, {"enroll_ivectors": "mean", "uncertainty": False, "scoring": "plda"})
    assert X is per and y == labels and C is None
    with pytest.raises(ValueError, match="enroll_ivectors='sum'"):
        _enrolment_vectors(ext, st, per, labels, {"enroll_ivectors": "sum", "uncertainty": False, "scoring": "plda"})


# --------------------------------------------------------------------------- non-finite statistics
def test_non_finite_or_negative_statistics_are_refused_by_name():
    # a NaN in one utterance's first-order statistics used to spread silently into the
    # whole T matrix and every i-vector (fit and transform returned NaN, no error)
    from gmmspeech.backend import BaumWelchStats

    rng = np.random.default_rng(0)
    ubm = _ubm(rng)
    utts = [rng.normal(size=(40, 3)) * 2 for _ in range(8)]
    st = utterance_stats(ubm, utts)
    model = init_tv(ubm, 2, random_state=0)
    f_nan = st.f.copy()
    f_nan[3, 1, 0] = np.nan
    n_neg = st.n.copy()
    n_neg[2, 0] = -1.0
    n_inf = st.n.copy()
    n_inf[0, 0] = np.inf
    for n, f, what in ((st.n, f_nan, "first-order"), (n_neg, st.f, "negative"),
                       (n_inf, st.f, "zeroth-order")):
        with pytest.raises(ValueError, match=f"BaumWelchStats: .*{what}"):
            BaumWelchStats(ids=st.ids, n=n, f=f)
        with pytest.raises(ValueError, match=what):
            train_tv(ubm, n, f, 2, n_iter=1, random_state=0)
        with pytest.raises(ValueError, match=what):
            extract(model, n, f)
    # the valid statistics still give finite i-vectors
    ext = IVectorExtractor(rank=2, ubm=ubm, n_iter=2, random_state=0).fit(st)
    assert np.all(np.isfinite(ext.T_)) and np.all(np.isfinite(ext.transform(st)))
