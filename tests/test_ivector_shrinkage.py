"""Shrinkage of the i-vector back-end's whitening covariance (``whiten_shrinkage``,
``speaker-id --ivector-whiten-shrinkage``, ``train-backend --whiten-shrinkage``):
:func:`shrunk_covariance` against scikit-learn's Ledoit-Wolf and OAS estimators and
against a plain-loop transcription of the Ledoit-Wolf weight for a general target
(Schäfer & Strimmer 2005), the whitening :class:`LengthNorm` and :class:`SpeakerBackend`
fit with it, and the pipeline / CLI wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.covariance import OAS, LedoitWolf
from test_cli_ivector import _run
from test_cli_speaker import corpus  # noqa: F401  (the module-scoped corpus fixture)
from test_ivector_background import _front, _front_with_extra, _pipeline_and_direct, toy  # noqa: F401  (the module-scoped toy fixture)

from gmmspeech.backend.scoring import SpeakerBackend, load_backend, save_backend
from gmmspeech.backend.transforms import LengthNorm, shrunk_covariance


def _lw_weight_loops(X, T):
    """Ledoit-Wolf's weight towards a fixed target ``T`` written out term by term: the sum
    over the entries of the estimated variance of ``s_ij`` (``1/n^2 sum_k (x_ki x_kj -
    s_ij)^2``) over the sum of the squared distances ``(s_ij - t_ij)^2``, capped at 1."""
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    S = np.zeros((d, d))
    for k in range(n):
        S += np.outer(Xc[k], Xc[k])
    S /= n
    var = 0.0
    for k in range(n):
        for i in range(d):
            for j in range(d):
                var += (Xc[k, i] * Xc[k, j] - S[i, j]) ** 2
    var /= n ** 2
    dist = sum((S[i, j] - T[i, j]) ** 2 for i in range(d) for j in range(d))
    a = min(1.0, var / dist)
    return (1 - a) * S + a * T, a


def _whitens(w, cov):
    """``w`` whitens ``cov`` (``w^T cov w = I``, up to LengthNorm's 1e-8 relative floor)."""
    np.testing.assert_allclose(w.T @ cov @ w, np.eye(cov.shape[0]), atol=1e-5)


def _data(rng, n, d):
    a = rng.normal(size=(d, d)) * 0.1 + np.diag(np.linspace(0.5, 3.0, d))
    return rng.normal(size=(n, d)) @ a + rng.normal(size=d) * 5


@pytest.mark.parametrize("n", [12, 40, 400])
def test_shrunk_covariance_matches_sklearn_and_the_textbook_weight(n):
    rng = np.random.default_rng(n)
    d = 8
    X = _data(rng, n, d)
    # scaled identity: scikit-learn's estimators (fitted as estimators, centring themselves)
    for how, est in (("ledoit-wolf", LedoitWolf()), ("oas", OAS())):
        c, a = shrunk_covariance(X, shrinkage=how)
        ref = est.fit(X)
        np.testing.assert_allclose(c, ref.covariance_, rtol=1e-10, atol=1e-12)
        assert a == pytest.approx(ref.shrinkage_, rel=1e-10) and 0.0 <= a <= 1.0
    # a general target: its shape at the sample covariance's trace, the textbook weight
    b = rng.normal(size=(d, d))
    target = b @ b.T + np.eye(d)
    Xc = X - X.mean(0)
    S = Xc.T @ Xc / n
    T = target * np.trace(S) / np.trace(target)
    ref_c, ref_a = _lw_weight_loops(X, T)
    c, a = shrunk_covariance(X, shrinkage="ledoit-wolf", target=target)
    assert a == pytest.approx(ref_a, rel=1e-10)
    np.testing.assert_allclose(c, ref_c, rtol=1e-10, atol=1e-12)
    # the identity as a general target is scikit-learn's Ledoit-Wolf
    c_i, a_i = shrunk_covariance(X, shrinkage="ledoit-wolf", target=np.eye(d) * 7.0)
    assert a_i == pytest.approx(LedoitWolf().fit(X).shrinkage_, rel=1e-10)
    np.testing.assert_allclose(c_i, LedoitWolf().fit(X).covariance_, rtol=1e-10, atol=1e-12)
    # none: the maximum-likelihood covariance
    c0, a0 = shrunk_covariance(X, shrinkage="none", target=target)
    np.testing.assert_allclose(c0, S, rtol=1e-12)
    assert a0 == 0.0


def test_shrinkage_weight_follows_the_sample_size():
    """Few vectors in many dimensions: a weight near 1 (the sample covariance is noise); many
    vectors: near 0; and the shrunk estimate of few vectors is nearer the truth than ``S``."""
    rng = np.random.default_rng(3)
    d = 30
    true = np.diag(np.linspace(1.0, 2.0, d))
    few = rng.multivariate_normal(np.zeros(d), true, size=40)
    many = rng.multivariate_normal(np.zeros(d), true, size=20000)
    c_few, a_few = shrunk_covariance(few, shrinkage="ledoit-wolf", target=np.eye(d))
    _c, a_many = shrunk_covariance(many, shrinkage="ledoit-wolf", target=np.eye(d))
    assert a_few > 0.5 and a_many < 0.05
    S = np.cov(few, rowvar=False, bias=True)
    assert np.linalg.norm(c_few - true) < 0.5 * np.linalg.norm(S - true)


def test_shrunk_covariance_errors():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="shrinkage='lw' is not one of none, ledoit-wolf, oas"):
        shrunk_covariance(X, shrinkage="lw")
    with pytest.raises(ValueError, match="'oas' shrinks towards the scaled identity only"):
        shrunk_covariance(X, shrinkage="oas", target=np.eye(3))
    with pytest.raises(ValueError, match=r"target must be a \(3, 3\) covariance"):
        shrunk_covariance(X, target=np.eye(4))
    with pytest.raises(ValueError, match="positive trace"):
        shrunk_covariance(X, target=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        shrunk_covariance(X[:1])
    with pytest.raises(ValueError, match="shrinkage='x' is not one of"):
        LengthNorm(shrinkage="x").fit(X)


@pytest.mark.parametrize("how", ["none", "ledoit-wolf", "oas"])
def test_length_norm_whitens_with_the_shrunk_covariance(how):
    rng = np.random.default_rng(5)
    X = _data(rng, 25, 10)
    ln = LengthNorm(shrinkage=how).fit(X)
    ref = {"none": np.cov(X, rowvar=False), "ledoit-wolf": LedoitWolf().fit(X).covariance_,
           "oas": OAS().fit(X).covariance_}[how]
    w = ln.whitening_
    _whitens(w, ref)
    assert ln.shrinkage_ == (0.0 if how == "none" else pytest.approx(
        {"ledoit-wolf": LedoitWolf, "oas": OAS}[how]().fit(X).shrinkage_))
    # the output: centred, whitened (any whitening: lengths and inner products are the
    # symmetric one's), on the sphere of radius sqrt(d)
    Z = ln.transform(X)
    Xc = X - X.mean(0)
    q = Xc @ np.linalg.inv(ref) @ Xc.T
    r = np.sqrt(np.diag(q))
    np.testing.assert_allclose(Z @ Z.T, 10 * q / np.outer(r, r), rtol=1e-6, atol=1e-5)


def test_backend_in_domain_whitening_shrinks_towards_all_training_vectors():
    """``domain_norm="whiten"`` with ``whiten_shrinkage="ledoit-wolf"``: the first whitening
    is that of the in-domain covariance shrunk towards the covariance of all training
    i-vectors (``"oas"``: towards the scaled identity); centring on the domain as before."""
    rng = np.random.default_rng(8)
    d, n_spk, per = 12, 30, 5
    centres = rng.normal(size=(n_spk, d)) * 2
    X = np.concatenate([c + rng.normal(size=(per, d)) for c in centres])
    y = np.repeat([f"s{i}" for i in range(n_spk)], per)
    D = _data(rng, 20, d)  # few in-domain vectors in 12 dimensions
    be = SpeakerBackend(plda_iter=3, whiten_shrinkage="ledoit-wolf").fit(X, y, domain=D)
    ref_c, ref_a = _lw_weight_loops(D, np.cov(X, rowvar=False) * np.trace(np.cov(D, rowvar=False, bias=True))
                                    / np.trace(np.cov(X, rowvar=False)))
    w = be.norm1_.whitening_
    _whitens(w, ref_c)
    assert be.norm1_.shrinkage_ == pytest.approx(ref_a, rel=1e-10) and 0 < ref_a < 1
    np.testing.assert_allclose(be.norm1_.mean_, D.mean(0), rtol=1e-12)
    oas = SpeakerBackend(plda_iter=3, whiten_shrinkage="oas").fit(X, y, domain=D)
    w = oas.norm1_.whitening_
    _whitens(w, OAS().fit(D).covariance_)
    # without domain vectors: the training vectors' covariance towards the scaled identity
    plain = SpeakerBackend(plda_iter=3, whiten_shrinkage="ledoit-wolf").fit(X, y)
    w = plain.norm1_.whitening_
    _whitens(w, LedoitWolf().fit(X).covariance_)
    # "mean": the whitening stays the training vectors' (shrunk the same way)
    mean = SpeakerBackend(plda_iter=3, whiten_shrinkage="ledoit-wolf", domain_norm="mean").fit(X, y, domain=D)
    np.testing.assert_allclose(mean.norm1_.whitening_, plain.norm1_.whitening_, rtol=1e-12)
    # the rest of the back-end is the unshrunk one's with that whitening: score equality
    # with a back-end whose first length normalisation is replaced by the same numbers
    unshrunk = SpeakerBackend(plda_iter=3).fit(X, y, domain=D)
    assert not np.allclose(unshrunk.norm1_.whitening_ @ unshrunk.norm1_.whitening_.T, w @ w.T, rtol=1e-3)


def test_backend_file_keeps_the_shrinkage(tmp_path):
    rng = np.random.default_rng(9)
    X = np.concatenate([c + rng.normal(size=(4, 6)) for c in rng.normal(size=(10, 6)) * 2])
    y = np.repeat([f"s{i}" for i in range(10)], 4)
    be = SpeakerBackend(plda_iter=3, whiten_shrinkage="oas").fit(X, y)
    save_backend(be, tmp_path / "be.npz")
    back = load_backend(tmp_path / "be.npz")
    assert back.whiten_shrinkage == "oas"
    T = rng.normal(size=(5, 6))
    np.testing.assert_allclose(back.score_trials(X[:8], y[:8], T)[1], be.score_trials(X[:8], y[:8], T)[1],
                               rtol=1e-12)


def test_pipeline_whiten_shrinkage_reaches_the_backend(toy, tmp_path):  # noqa: F811
    from gmmspeech.speaker import pipeline

    base = {"rank": 3, "n_iter": 3, "uncertainty": False, "domain_norm": "whiten"}
    front, X, y, pooled, X_m = _front_with_extra(toy, tmp_path, base)
    out = {}
    for how in ("none", "ledoit-wolf", "oas"):
        res, ref = _pipeline_and_direct(front, X, y, pooled, X_m, {**base, "whiten_shrinkage": how},
                                        whiten_shrinkage=how)
        assert res["backend"].whiten_shrinkage == how
        np.testing.assert_allclose(res["scores"], ref, rtol=1e-8, atol=1e-10)
        out[how] = res["scores"]
    assert not np.allclose(out["ledoit-wolf"], out["none"], rtol=1e-3)
    assert pipeline.IVECTOR_DEFAULTS["whiten_shrinkage"] == "auto"
    with pytest.raises(ValueError, match="whiten_shrinkage='lw' must be one of 'none', 'ledoit-wolf', 'oas'"):
        pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**base, "whiten_shrinkage": "lw"}),
                                         lambda m: None)


class _Store(list):
    """Feature arrays (read by the statistics as a sequence) that the held-out trials
    (:func:`_pseudo_protocol`) can also ``load`` by id, as they load from a feature store."""

    def __init__(self, rows, frames):
        super().__init__(frames)
        self._d = {r.id: f for r, f in zip(rows, frames, strict=True)}

    def load(self, key):
        return self._d[key]


def test_auto_whitening_is_chosen_on_held_out_trials(toy, tmp_path):  # noqa: F811
    """``whiten_shrinkage="auto"``: with an extra background and in-domain whitening, the
    back-end takes "none" or "ledoit-wolf" by the EER of held-out trials among the
    enrolment recordings ("ledoit-wolf" on ties and without trials); otherwise "none"
    (the scores are then exactly the unshrunk back-end's)."""
    from types import SimpleNamespace

    from gmmspeech.speaker import pipeline

    rows, stores, _xr, _xf, _ubm = toy
    base = {"rank": 3, "n_iter": 3, "uncertainty": False, "domain_norm": "whiten"}
    front = _front_with_extra(toy, tmp_path, base)[0]
    e_rows = [SimpleNamespace(id=r.id, label=r.label, path=f"{r.id}.wav") for r in rows["enroll"]]
    par = dict(n_jobs=1, backend=None, scheduler=None)
    heldout = (_Store(e_rows, stores["enroll"]), e_rows, par)
    said = []
    res = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**base, "whiten_shrinkage": "auto"}),
                                           said.append, heldout=heldout)
    ch = res["whiten_choice"]
    # 2 enrolled speakers x 2 recordings: the first enrols, the second is a held-out test
    assert ch["reason"] == "held-out trials" and ch["n_speakers"] == 2 and ch["n_tests"] == 2
    assert set(ch["eer"]) == {"none", "ledoit-wolf"} and all(0.0 <= v <= 1.0 for v in ch["eer"].values())
    want = "none" if ch["eer"]["none"] < ch["eer"]["ledoit-wolf"] else "ledoit-wolf"
    assert ch["chosen"] == want and res["opts"]["whiten_shrinkage"] == want
    assert res["backend"].whiten_shrinkage == want and any("whitening shrinkage" in m for m in said)
    explicit = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(
        {**base, "whiten_shrinkage": want}), lambda m: None)
    np.testing.assert_array_equal(res["scores"], explicit["scores"])
    # no held-out trials (one recording per speaker, or none given): ledoit-wolf
    one = [SimpleNamespace(id=r.id, label=f"{r.id}", path=f"{r.id}.wav") for r in rows["enroll"]]
    for h in (None, (_Store(one, stores["enroll"]), one, par)):
        r = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(base), lambda m: None, heldout=h)
        assert r["whiten_choice"] == {"chosen": "ledoit-wolf", "reason": "no held-out trials"}
    # whitening of all training i-vectors (no extra background, or domain_norm other than
    # whiten): "none", the unshrunk back-end's scores
    plain = _front(toy, tmp_path, base, None)
    a = pipeline._ivector_backend_scores(plain, None, pipeline.ivector_settings(base), lambda m: None, heldout=heldout)
    b = pipeline._ivector_backend_scores(plain, None, pipeline.ivector_settings({**base, "whiten_shrinkage": "none"}),
                                         lambda m: None)
    assert a["whiten_choice"]["chosen"] == "none"
    np.testing.assert_array_equal(a["scores"], b["scores"])
    m = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**base, "domain_norm": "mean"}),
                                         lambda m: None, heldout=heldout)
    assert m["whiten_choice"]["chosen"] == "none"


def test_cli_whiten_shrinkage_flags(corpus, tmp_path, capsys):  # noqa: F811
    from gmmspeech.cli import main
    from gmmspeech.mixture import io as mio

    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(corpus, a, "ivector") == 1  # the corpus' one bad file
    assert _run(corpus, b, "ivector", "--ivector-whiten-shrinkage", "ledoit-wolf") == 1
    res_a = json.loads((a / "results.json").read_text())
    assert res_a["settings"]["ivector"]["whiten_shrinkage"] == "auto"  # the default: no extra background,
    assert res_a["ivector_whiten_shrinkage"]["chosen"] == "none"  # so the unshrunk whitening
    assert json.loads((b / "results.json").read_text())["settings"]["ivector"]["whiten_shrinkage"] == "ledoit-wolf"
    assert load_backend(b / "ivector_backend.npz").whiten_shrinkage == "ledoit-wolf"
    assert (a / "scores.tsv").read_text() != (b / "scores.tsv").read_text()
    # step by step: train-backend --whiten-shrinkage
    rng = np.random.default_rng(2)
    vecs = np.concatenate([c + rng.normal(size=(5, 6)) for c in rng.normal(size=(8, 6)) * 2])
    labels = [f"s{i}" for i in range(8) for _ in range(5)]
    ivf = tmp_path / "bg.iv.npz"
    mio.save_arrays(ivf, "ivectors", {"vectors": vecs}, {"ids": [f"u{i}" for i in range(40)], "labels": labels})
    capsys.readouterr()
    assert main(["train-backend", str(ivf), "--out", str(tmp_path / "be.npz"), "--whiten-shrinkage", "oas"]) == 0
    be = load_backend(tmp_path / "be.npz")
    assert be.whiten_shrinkage == "oas"
    w = be.norm1_.whitening_
    _whitens(w, OAS().fit(vecs).covariance_)
