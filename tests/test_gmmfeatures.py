"""GMM-derived features: posteriorgrams (against scikit-learn's predict_proba), their
feature store (CLI, reload), and supervectors (against the closed form)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import speechlike

from gmmspeech.mixture.gmm import GMM
from gmmspeech.speaker.gmmfeatures import (
    load_supervectors,
    posteriorgram,
    save_supervectors,
    sparse_posteriorgram,
    supervector,
    supervectors,
)


def _model(kind="diag", K=6, D=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(0, 2, (K, D))
    if kind == "diag":
        cov = rng.uniform(0.3, 2.0, (K, D))
    else:
        A = rng.normal(0, 0.5, (K, D, D))
        cov = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    return GMM.from_params(w, mu, cov, covariance_type=kind), (w, mu, cov)


def _sklearn(kind, w, mu, cov):
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gm = GaussianMixture(len(w), covariance_type=kind)
    gm.weights_, gm.means_, gm.covariances_ = w, mu, cov
    gm.precisions_cholesky_ = _compute_precision_cholesky(cov, kind)
    return gm


@pytest.mark.parametrize("kind", ["diag", "full"])
def test_dense_posteriorgram_equals_sklearn(kind):
    g, params = _model(kind)
    X = np.random.default_rng(1).normal(0, 2, (500, 4))
    ref = _sklearn(kind, *params).predict_proba(X)
    got = posteriorgram(g, X)
    assert got.shape == (500, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(posteriorgram(g, X, log=True), np.log(np.maximum(ref, 1e-10)), atol=1e-4)


def test_top_c_posteriorgram_keeps_the_largest_renormalised():
    g, params = _model("diag", K=8)
    X = np.random.default_rng(2).normal(0, 2, (300, 4))
    ref = _sklearn("diag", *params).predict_proba(X)
    got = posteriorgram(g, X, top_c=3)
    assert ((got > 0).sum(axis=1) <= 3).all()
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    for t in range(300):
        keep = np.argsort(-ref[t])[:3]
        want = np.zeros(8)
        want[keep] = ref[t, keep] / ref[t, keep].sum()
        np.testing.assert_allclose(got[t], want, atol=1e-5)
    sp = sparse_posteriorgram(g, X, top_c=3)
    assert sp.shape == (300, 8) and sp.nnz == 900
    np.testing.assert_allclose(sp.toarray(), got, atol=1e-6)


def test_supervector_closed_form_diag_and_full():
    g, (w, mu, cov) = _model("diag")
    np.testing.assert_allclose(supervector(g), (np.sqrt(w)[:, None] * mu / np.sqrt(cov)).ravel())
    np.testing.assert_allclose(supervector(g, center=True), 0.0)
    gf, (wf, muf, covf) = _model("full", seed=3)
    sv = supervector(gf).reshape(6, 4)
    for k in range(6):  # the norm of each block is the Mahalanobis norm, weighted
        want = wf[k] * muf[k] @ np.linalg.solve(covf[k], muf[k])
        np.testing.assert_allclose(sv[k] @ sv[k], want, rtol=1e-8)


def test_supervectors_are_map_adapted_means(tmp_path):
    from gmmspeech.speaker.map import map_adapt

    g, (w, mu, cov) = _model("diag")
    rng = np.random.default_rng(4)
    utts = [rng.normal(0, 2, (n, 4)) for n in (50, 80)]
    S = supervectors(g, utts, relevance_factor=8.0)
    assert S.shape == (2, 24) and S.dtype == np.float32
    m = map_adapt(g, utts[1], relevance_factor=8.0, adapt="m").means_
    np.testing.assert_allclose(S[1], (np.sqrt(w)[:, None] * m / np.sqrt(cov)).ravel(), rtol=1e-5)
    path = save_supervectors(tmp_path / "sv.npz", ["a", "b"], ["s1", "s2"], S, metadata={"r": 8})
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"ids", "labels", "supervectors", "metadata"}
    ids, labels, M, meta = load_supervectors(path)
    assert ids == ["a", "b"] and labels == ["s1", "s2"] and meta == {"r": 8}
    np.testing.assert_array_equal(M, S)


def test_posteriors_cli_store_reloads_and_equals_the_function(tmp_path, write_wav):
    from gmmspeech.cli import main
    from gmmspeech.corpus.derived import PosteriorgramConfig
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features import FeatureConfig, extract
    from gmmspeech.mixture import io as mio

    for i, f0 in enumerate((110, 150, 210)):
        write_wav(f"u{i}.wav", speechlike(16000, 1.0, f0, i), 16000)
    (tmp_path / "m.csv").write_text("id,path,label\n" + "".join(f"u{i},u{i}.wav,s{i}\n" for i in range(3)))
    cfg = FeatureConfig.preset("speech")
    X = np.concatenate([extract(tmp_path / f"u{i}.wav", config=cfg) for i in range(3)])
    ubm = GMM(8, random_state=0, max_iter=20).fit(X)
    mio.save(ubm, tmp_path / "ubm.npz", metadata={"feature_config": cfg.to_dict()})
    out = tmp_path / "post"
    rc = main(["posteriors", "--ubm", str(tmp_path / "ubm.npz"), str(tmp_path / "m.csv"),
               "--out", str(out), "--top-c", "2", "--quiet"])
    assert rc == 0
    store = FeatureStore(out)
    assert sorted(store.ids()) == ["u0", "u1", "u2"]
    assert isinstance(store.config, PosteriorgramConfig) and store.config.top_c == 2
    P = np.asarray(store.load("u1"))
    want = posteriorgram(ubm, extract(tmp_path / "u1.wav", config=cfg), top_c=2)
    np.testing.assert_allclose(P, want, atol=1e-6)
    # a second run skips the done rows; a different option is another configuration
    assert main(["posteriors", "--ubm", str(tmp_path / "ubm.npz"), str(tmp_path / "m.csv"),
                 "--out", str(out), "--top-c", "2", "--quiet"]) == 0
    assert main(["posteriors", "--ubm", str(tmp_path / "ubm.npz"), str(tmp_path / "m.csv"),
                 "--out", str(out), "--quiet"]) == 2
    rc = main(["supervectors", "--ubm", str(tmp_path / "ubm.npz"), str(tmp_path / "m.csv"),
               "--out", str(tmp_path / "sv.npz"), "--quiet"])
    assert rc == 0
    ids, labels, S, meta = load_supervectors(tmp_path / "sv.npz")
    assert ids == ["u0", "u1", "u2"] and S.shape == (3, 8 * cfg.n_features)
