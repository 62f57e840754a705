"""PLDA scores that propagate the i-vectors' posterior covariances (``uncertainty``,
``speaker-id --ivector-uncertainty``) and pooled models counted as their recordings
(``enroll_count="recordings"``, ``--enroll-count``): the LLR against the joint-Gaussian
closed form written here in the PLDA's input space, the covariances carried through the
back-end's transforms against a plain-numpy transcription, and the pipeline's scores
against a back-end fitted and scored directly with the extractor's posterior
covariances."""

from __future__ import annotations

import numpy as np
import pytest
from test_ivector_background import _front, _front_with_extra, _pipeline_and_direct, toy  # noqa: F401  (the module-scoped toy fixture)

from gmmspeech.backend.plda import PLDA
from gmmspeech.backend.scoring import SpeakerBackend


def _logpdf(x, cov):
    d = x.size
    _sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (d * np.log(2 * np.pi) + logdet + x @ np.linalg.solve(cov, x))


def _labelled(rng, n_spk=20, per=6, d=5):
    centres = rng.normal(size=(n_spk, d)) * 2.0
    a = rng.normal(size=(d, d)) * 0.5
    X = np.concatenate([centres[s] + rng.normal(size=(per, d)) @ a for s in range(n_spk)])
    return X, np.repeat([f"spk{s}" for s in range(n_spk)], per)


def direct_backend_and_models(front, enroll_ivectors):
    """The reference of the pipeline tests: a back-end fitted directly on the front's
    background + enrolment i-vectors, and the models' vectors and posterior covariances
    from the extractor (of the pooled statistics, or one per enrolment recording)."""
    ext, st, lab, iv = front["extractor"], front["stats"], front["labels"], front["ivectors"]
    be = SpeakerBackend().fit(np.concatenate([iv["background"], iv["enroll"]]), lab["background"] + lab["enroll"])
    if enroll_ivectors == "pooled":
        pooled = st["enroll"].pooled(lab["enroll"])
        X_m, C_m = ext.posterior(pooled)
        return be, X_m, list(pooled.ids), C_m
    X_m, C_m = ext.posterior(st["enroll"])
    return be, X_m, lab["enroll"], C_m


def _spd(rng, n, d, scale):
    a = rng.normal(size=(n, d, d)) * scale
    return a @ np.swapaxes(a, 1, 2) + 0.01 * scale * np.eye(d)


@pytest.mark.parametrize("model", ["two-cov", "simplified"])
def test_plda_llr_with_uncertainty_matches_the_joint_gaussian(model):
    rng = np.random.default_rng(21)
    X, y = _labelled(rng)
    p = PLDA(model=model, n_components=3, n_iter=5).fit(X, y)
    mu, B, W = p.mean_, p.between_covariance_, p.within_covariance_
    d = X.shape[1]
    e = rng.normal(size=(2, d)) + mu  # two models (their enrolment means)
    t = rng.normal(size=(3, d)) + mu
    ce, ct = _spd(rng, 2, d, 0.4), _spd(rng, 3, d, 0.6)
    n = np.array([1.0, 4.0])
    got = p.llr(e, t, n_enroll=n, enroll_cov=ce, test_cov=ct)
    assert got.shape == (2, 3)
    for m in range(2):
        for j in range(3):
            # model: y + (mean of n within-speaker draws) + its uncertainty; test: y + e + its own
            se = B + W / n[m] + ce[m]
            st = B + W + ct[j]
            same = np.block([[se, B], [B, st]])
            xs = np.concatenate([e[m], t[j]]) - np.tile(mu, 2)
            ref = _logpdf(xs, same) - _logpdf(e[m] - mu, se) - _logpdf(t[j] - mu, st)
            assert got[m, j] == pytest.approx(ref, rel=1e-8, abs=1e-8)
    # no uncertainty: exactly the plain LLR; only one side given: the other is certain
    zero_e, zero_t = np.zeros((2, d, d)), np.zeros((3, d, d))
    np.testing.assert_allclose(p.llr(e, t, n_enroll=n, enroll_cov=zero_e, test_cov=zero_t),
                               p.llr(e, t, n_enroll=n), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p.llr(e, t, n_enroll=n, test_cov=ct),
                               p.llr(e, t, n_enroll=n, enroll_cov=zero_e, test_cov=ct), rtol=1e-12)
    with pytest.raises(ValueError, match=r"test_cov must have shape \(3, 5, 5\)"):
        p.llr(e, t, test_cov=ct[:2])


def test_equal_uncertainty_of_every_vector_is_a_larger_within_covariance():
    """n enrolment vectors and a test, each ``y + e + u`` with the same ``u ~ N(0, C)``: the
    model's mean is then a sufficient statistic, so the LLR equals the joint Gaussian of
    all n + 1 vectors with the within covariance ``W + C``."""
    rng = np.random.default_rng(22)
    X, y = _labelled(rng)
    p = PLDA(n_iter=4).fit(X, y)
    mu, B, W = p.mean_, p.between_covariance_, p.within_covariance_
    d = X.shape[1]
    c = _spd(rng, 1, d, 0.5)[0]
    e = rng.normal(size=(3, d)) + mu
    t = rng.normal(size=(2, d)) + mu
    got = p.llr(e.mean(0, keepdims=True), t, n_enroll=[3], enroll_cov=c[None] / 3, test_cov=np.stack([c, c]))
    w2 = W + c
    for j in range(2):
        xs = np.concatenate([*e, t[j]]) - np.tile(mu, 4)
        same4 = np.kron(np.ones((4, 4)), B) + np.kron(np.eye(4), w2)
        same3 = np.kron(np.ones((3, 3)), B) + np.kron(np.eye(3), w2)
        ref = _logpdf(xs, same4) - _logpdf(xs[:3 * d], same3) - _logpdf(t[j] - mu, B + w2)
        assert got[0, j] == pytest.approx(ref, rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("lda_dim", [None, 3])
def test_backend_carries_the_covariances_through_its_transforms(lda_dim):
    rng = np.random.default_rng(23)
    X, y = _labelled(rng, d=6)
    be = SpeakerBackend(lda_dim=lda_dim, plda_iter=4).fit(X, y)
    V = rng.normal(size=(5, 6)) + X.mean(0)
    C = _spd(rng, 5, 6, 0.3)
    Z, CZ = be.transform_with_covariance(V, C)
    # transcription: whiten, scale onto the sphere (covariance scaled by the square), LDA,
    # centre and scale again
    w1 = be.norm1_.whitening_
    z = (V - be.norm1_.mean_) @ w1
    s1 = np.sqrt(6) / np.linalg.norm(z, axis=1)
    z, c = z * s1[:, None], np.stack([s1[i] ** 2 * w1.T @ C[i] @ w1 for i in range(5)])
    if lda_dim:
        sc = be.lda_.scalings_
        z, c = (z - be.lda_.mean_) @ sc, np.stack([sc.T @ ci @ sc for ci in c])
    z = z - be.norm2_.mean_
    s2 = np.sqrt(z.shape[1]) / np.linalg.norm(z, axis=1)
    z, c = z * s2[:, None], np.stack([s2[i] ** 2 * c[i] for i in range(5)])
    np.testing.assert_allclose(Z, z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Z, be.transform(V), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(CZ, c, rtol=1e-10, atol=1e-12)

    # trials: two enrolment vectors of model "a" (mean, covariance sum / 4), one of "b"
    labels = ["a", "b", "a"]
    m_lab, s = be.score_trials(V[:3], labels, V[3:], enroll_covariances=C[:3], test_covariances=C[3:])
    assert m_lab == ["a", "b"] and s.shape == (2, 2)
    p = be.plda_
    mu, B, W = p.mean_, p.between_covariance_, p.within_covariance_
    for k, (rows, n) in enumerate((([0, 2], 2), ([1], 1))):
        em = z[rows].mean(0)
        se = B + W / n + sum(c[r] for r in rows) / n ** 2
        for j in range(2):
            st = B + W + c[3 + j]
            xs = np.concatenate([em, z[3 + j]]) - np.tile(mu, 2)
            ref = (_logpdf(xs, np.block([[se, B], [B, st]])) - _logpdf(em - mu, se)
                   - _logpdf(z[3 + j] - mu, st))
            assert s[j, k] == pytest.approx(ref, rel=1e-7, abs=1e-8)
    # a pooled model standing for 5 recordings: its within-speaker noise is W / 5
    _l, s5 = be.score_trials(V[1:2], ["b"], V[3:], enroll_covariances=C[1:2], test_covariances=C[3:],
                             enroll_counts=[5])
    se = B + W / 5 + c[1]
    for j in range(2):
        st = B + W + c[3 + j]
        xs = np.concatenate([z[1], z[3 + j]]) - np.tile(mu, 2)
        ref = _logpdf(xs, np.block([[se, B], [B, st]])) - _logpdf(z[1] - mu, se) - _logpdf(z[3 + j] - mu, st)
        assert s5[j, 0] == pytest.approx(ref, rel=1e-7, abs=1e-8)
    _l, p5 = be.score_trials(V[1:2], ["b"], V[3:], enroll_counts=[5])
    np.testing.assert_allclose(p5, p.llr(z[1:2], be.transform(V[3:]), n_enroll=[5]).T, rtol=1e-12)
    with pytest.raises(ValueError, match="counts must hold one number >= 1"):
        be.score_trials(V[:3], labels, V[3:], enroll_counts=[1, 0, 2])
    # zero covariances: the plain scores
    _l, plain = be.score_trials(V[:3], labels, V[3:])
    _l, zero = be.score_trials(V[:3], labels, V[3:], enroll_covariances=0 * C[:3], test_covariances=0 * C[3:])
    np.testing.assert_allclose(zero, plain, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="covariances must have shape"):
        be.transform_with_covariance(V, C[:, :5, :5])
    cos = SpeakerBackend(scoring="cosine").fit(X, y)
    with pytest.raises(ValueError, match="needs scoring='plda'"):
        cos.score_trials(V[:3], labels, V[3:], test_covariances=C[3:])


@pytest.mark.parametrize("enroll_ivectors,enroll_count", [("pooled", "vectors"), ("mean", "vectors"),
                                                           ("pooled", "recordings")])
def test_pipeline_scores_propagate_the_posterior_covariances(toy, tmp_path, enroll_ivectors,  # noqa: F811
                                                             enroll_count):
    from gmmspeech.speaker import pipeline

    opts = {"rank": 3, "n_iter": 3, "uncertainty": True, "enroll_ivectors": enroll_ivectors,
            "enroll_count": enroll_count}
    front = _front(toy, tmp_path, opts, None)
    res = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(opts), lambda m: None)
    plain = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**opts, "uncertainty": False}),
                                             lambda m: None)
    ext, st, lab = front["extractor"], front["stats"], front["labels"]
    be, X_m, y_m, C_m = direct_backend_and_models(front, enroll_ivectors)
    X_t, C_t = ext.posterior(st["test"])
    # "recordings": a pooled model counts its speaker's enrolment recordings (2 each here)
    counts = [lab["enroll"].count(m) for m in y_m] if enroll_count == "recordings" else None
    assert counts is None or counts == [2, 2]
    m_lab, ref = be.score_trials(X_m, y_m, X_t, enroll_covariances=C_m, test_covariances=C_t, enroll_counts=counts)
    assert res["model_labels"] == m_lab
    np.testing.assert_allclose(res["scores"], ref, rtol=1e-8, atol=1e-10)
    assert not np.allclose(res["scores"], plain["scores"], rtol=1e-3)  # the covariances count
    # the tests' covariances taken a block at a time (here one test per block): the same scores
    b_lab, blocked = pipeline._score_tests(be, X_m, y_m, C_m, counts, X_t, ext, st["test"],
                                           pipeline.ivector_settings(opts), block=1)
    assert b_lab == m_lab
    np.testing.assert_allclose(blocked, ref, rtol=1e-12, atol=1e-12)
    if enroll_count == "recordings":
        one = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(
            {**opts, "enroll_count": "vectors"}), lambda m: None)
        assert not np.allclose(res["scores"], one["scores"], rtol=1e-3)
    # cosine scoring has no uncertainty model: the option does not apply there
    cos = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**opts, "scoring": "cosine"}),
                                           lambda m: None)
    cos_plain = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(
        {**opts, "scoring": "cosine", "uncertainty": False}), lambda m: None)
    np.testing.assert_array_equal(cos["scores"], cos_plain["scores"])


# --------------------------------------------------------------------------- in-domain normalisation
@pytest.mark.parametrize("mode", ["whiten", "mean"])
def test_backend_normalisations_centred_on_the_domain_vectors(mode):
    """``fit(X, y, domain=D)``: the length normalisations are centred on ``D`` (the first
    also whitened on it with ``"whiten"``), the PLDA learns from ``X`` in that space."""
    from gmmspeech.backend.transforms import LengthNorm

    rng = np.random.default_rng(24)
    X, y = _labelled(rng, d=5)
    D = rng.normal(size=(40, 5)) * 1.5 + 3.0  # another domain: shifted and scaled
    be = SpeakerBackend(plda_iter=3, domain_norm=mode).fit(X, y, domain=D)
    np.testing.assert_allclose(be.norm1_.mean_, D.mean(0), rtol=1e-12)
    src = D if mode == "whiten" else X
    cov = np.cov(src, rowvar=False)
    w = be.norm1_.whitening_
    np.testing.assert_allclose(w.T @ cov @ w, np.eye(5), atol=1e-6)  # whitening of D (or X)
    # transcription: centre on D, whiten, onto the sphere; centre on D's image, onto the sphere
    def ln(A, m):
        z = (A - m) @ w
        return z * (np.sqrt(5) / np.linalg.norm(z, axis=1))[:, None]
    zx, zd = ln(X, D.mean(0)), ln(D, D.mean(0))
    m2 = zd.mean(0)
    zx = (zx - m2) * (np.sqrt(5) / np.linalg.norm(zx - m2, axis=1))[:, None]
    np.testing.assert_allclose(be.transform(X), zx, rtol=1e-10, atol=1e-12)
    ref = PLDA(n_iter=3).fit(zx, y)
    np.testing.assert_allclose(be.plda_.between_covariance_, ref.between_covariance_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(be.plda_.within_covariance_, ref.within_covariance_, rtol=1e-8, atol=1e-10)
    # no domain: everything on X, as before
    plain = SpeakerBackend(plda_iter=3, domain_norm=mode).fit(X, y)
    np.testing.assert_allclose(plain.norm1_.mean_, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(plain.norm1_.whitening_, LengthNorm().fit(X).whitening_, rtol=1e-10)
    with pytest.raises(ValueError, match="domain_norm='both' must be"):
        SpeakerBackend(domain_norm="both").fit(X, y, domain=D)


def test_pipeline_domain_norm_uses_the_runs_own_ivectors(toy, tmp_path):  # noqa: F811
    from gmmspeech.speaker import pipeline

    # the whitening as estimated (whiten_shrinkage="auto" is tested in test_ivector_shrinkage)
    base = {"rank": 3, "n_iter": 3, "uncertainty": False, "whiten_shrinkage": "none"}
    front, X, y, pooled, X_m = _front_with_extra(toy, tmp_path, base)
    scores = {"none": pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(
        {**base, "domain_norm": "none"}), lambda m: None)["scores"]}
    for mode in ("mean", "whiten"):
        res, ref = _pipeline_and_direct(front, X, y, pooled, X_m, {**base, "domain_norm": mode}, domain_norm=mode)
        scores[mode] = res["scores"]
        np.testing.assert_allclose(scores[mode], ref, rtol=1e-8, atol=1e-10)
    assert not np.allclose(scores["whiten"], scores["none"], rtol=1e-3)
    # without an extra background the run's own i-vectors are all the back-end's: no change
    plain = _front(toy, tmp_path, base, None)
    a = pipeline._ivector_backend_scores(plain, None, pipeline.ivector_settings({**base, "domain_norm": "whiten"}),
                                         lambda m: None)
    b = pipeline._ivector_backend_scores(plain, None, pipeline.ivector_settings(base), lambda m: None)
    np.testing.assert_array_equal(a["scores"], b["scores"])
