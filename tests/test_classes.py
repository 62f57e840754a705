"""GMMClassifier against a hand-built scikit-learn per-class GaussianMixture, model
selection with cross_val_score over lists of utterances, input validation, and the classes
folder format (scikit-learn's estimator checks: tests/test_sklearn_estimators.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.special import log_softmax

pytest.importorskip("sklearn")
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.model_selection import GroupKFold, cross_val_score  # noqa: E402

from gmmspeech.classes import (  # noqa: E402
    MODEL_TYPES,
    GMMClassifier,
    as_utterances,
    load_classifier,
    save_classifier,
)
from gmmspeech.errors import ModelFileError  # noqa: E402

D = 4


def _utterances(seed=0, n_per_class=12, classes=("a", "b", "c"), spread=3.0, overlap=False):
    """Utterances of random length; class c draws frames from its own 2-component mixture.
    Each 'speaker' (group) shifts every frame by a small offset."""
    r = np.random.default_rng(seed)
    centres = {c: spread * r.standard_normal((2, D)) for c in classes}
    X, y, groups = [], [], []
    for i in range(n_per_class):
        offset = 0.2 * r.standard_normal(D)
        for c in classes:
            T = int(r.integers(20, 60))
            comp = r.integers(0, 2, T)
            scale = 1.5 if overlap else 0.6
            X.append((centres[c][comp] + offset + scale * r.standard_normal((T, D))).astype(np.float64))
            y.append(c)
            groups.append(i % 4)
    return X, np.array(y), np.array(groups)


def _split(data):
    """Training utterances of groups 0-2 with labels, test utterances of group 3."""
    X, y, g = data
    train = g != 3
    return ([x for x, t in zip(X, train) if t], y[train],
            [x for x, t in zip(X, train) if not t])


def _sklearn_reference(X, y, Xt, *, k, cov, scale="average", seed=0):
    """Per-class GaussianMixture, total log-likelihood per utterance, posterior with the
    empirical priors, written out by hand."""
    classes = np.unique(y)
    models = [GaussianMixture(k, covariance_type=cov, reg_covar=1e-6, tol=1e-6, max_iter=500,
                              random_state=seed).fit(np.concatenate([x for x, t in zip(X, y) if t == c]))
              for c in classes]
    L = np.array([[m.score_samples(u).sum() for m in models] for u in Xt])
    T = np.array([u.shape[0] for u in Xt], dtype=float)
    s = 1.0 / T if scale == "average" else np.ones_like(T)
    prior = np.array([np.mean(y == c) for c in classes])
    logp = log_softmax(L * s[:, None] + np.log(prior), axis=1)
    return classes, L, np.exp(logp)


@pytest.mark.parametrize("cov", ["diag", "full"])
@pytest.mark.parametrize("scale", ["average", "total"])
def test_single_gaussian_per_class_equals_sklearn(cov, scale):
    # K=1 has one optimum (the sample mean and covariance): both must agree closely
    X, y, Xt = _split(_utterances(0, n_per_class=16, overlap=True))
    clf = GMMClassifier(1, covariance_type=cov, likelihood_scale=scale, tol=1e-6,
                        model_params={"var_floor_rel": 0.0, "dtype": np.float64}).fit(X, y)
    classes, L, P = _sklearn_reference(X, y, Xt, k=1, cov=cov, scale=scale)
    assert list(clf.classes_) == list(classes)
    np.testing.assert_allclose(clf.log_likelihoods(Xt), L, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(Xt), P, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(Xt), classes[np.argmax(P, axis=1)])


def test_mixture_per_class_matches_sklearn_decisions_and_probabilities():
    # well separated components: EM from either initialisation reaches the same optimum.
    # float64 as scikit-learn: tol=1e-6 is below a float32 E-step's rounding of the average
    # log-likelihood here (about 5e-6 on 494 frames), and utterances far from a class model
    # (log-likelihoods near -8,000) turn float32 parameter noise into 1e-4 relative
    X, y, Xt = _split(_utterances(2, n_per_class=16, spread=6.0))
    clf = GMMClassifier(2, covariance_type="diag", tol=1e-6, max_iter=500, random_state=0,
                        model_params={"var_floor_rel": 0.0, "dtype": np.float64}).fit(X, y)
    classes, L, P = _sklearn_reference(X, y, Xt, k=2, cov="diag")
    np.testing.assert_allclose(clf.log_likelihoods(Xt), L, rtol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(Xt), P, atol=1e-4)
    np.testing.assert_array_equal(clf.predict(Xt), classes[np.argmax(P, axis=1)])


@pytest.mark.parametrize("n_rows", [17, 20, 40])
@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_posteriors_do_not_depend_on_the_order_of_the_utterances(dtype, tol, n_components, n_rows):
    """Shuffling the utterances (here rows of a table: one frame each, as in scikit-learn's
    check_methods_sample_order_invariance) shuffles the posteriors and nothing else, to the
    compute dtype's precision. A float32 E-step's rounding may depend on a row's place in the
    BLAS kernel's blocks (OpenBLAS's AVX-512 kernels: up to 1.2e-7 in a posterior with one
    Gaussian per class and 17-23 rows), so float32 is held to 1e-5 and float64 to 1e-12."""
    r = np.random.default_rng(0)
    X = 3 * r.uniform(size=(n_rows, 3))
    y = X[:, 0].astype(np.int64)
    clf = GMMClassifier(n_components, random_state=1, model_params={"dtype": dtype}).fit(X, y)
    P = clf.predict_proba(X)
    # overlapping classes: many posteriors are far from 0 and 1, where rounding shows
    assert np.count_nonzero((P > 0.01) & (P < 0.99)) >= 8
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(X))
        np.testing.assert_allclose(clf.predict_proba(X[order]), P[order], rtol=tol, atol=tol)
        np.testing.assert_array_equal(clf.predict(X[order]), clf.predict(X)[order])


def test_probabilities_and_priors():
    X, y, _ = _utterances(4, overlap=True)
    clf = GMMClassifier(2, random_state=0).fit(X, y)
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert np.all((P >= 0) & (P <= 1))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[P.argmax(1)])
    np.testing.assert_allclose(clf.class_prior_, [1 / 3] * 3)
    # a prior that overwhelms the per-frame evidence decides every utterance
    clf2 = GMMClassifier(2, random_state=0, priors=[1 - 2e-30, 1e-30, 1e-30]).fit(X, y)
    assert set(clf2.predict(X)) == {"a"}
    # "total" is sharper than "average" (same argmax without priors)
    clf3 = GMMClassifier(2, random_state=0, likelihood_scale="total").fit(X, y)
    assert clf3.predict_proba(X).max(1).mean() >= P.max(1).mean()
    np.testing.assert_array_equal(clf3.predict(X), clf.predict(X))
    assert clf.score(X, y) == pytest.approx(np.mean(clf.predict(X) == y))


def test_cross_val_score_with_groups_on_lists_of_utterances():
    X, y, groups = _utterances(5)
    assert len({u.shape[0] for u in X}) > 1  # different lengths: no regular array possible
    scores = cross_val_score(GMMClassifier(2, random_state=0), X, y, groups=groups,
                             cv=GroupKFold(n_splits=4))
    assert scores.shape == (4,)
    assert scores.min() > 0.9
    # an object array of utterances works the same way
    Xo = np.empty(len(X), dtype=object)
    Xo[:] = X
    scores_o = cross_val_score(GMMClassifier(2, random_state=0), Xo, y, groups=groups,
                               cv=GroupKFold(n_splits=4))
    np.testing.assert_allclose(scores_o, scores)


def test_map_from_ubm_and_clone_keeps_fitted_ubm():
    from sklearn.base import clone

    from gmmspeech import GMM, map_adapt

    X, y, groups = _utterances(6)
    ubm = GMM(4, random_state=0).fit(np.concatenate(X))
    clf = GMMClassifier(ubm=ubm, relevance_factor=4.0).fit(X, y)
    # each class model is exactly map_adapt of its frames
    for c, m in zip(clf.classes_, clf.models_):
        ref = map_adapt(ubm, [x for x, t in zip(X, y) if t == c], relevance_factor=4.0)
        np.testing.assert_allclose(m.means_, ref.means_)
        np.testing.assert_allclose(m.covariances_, ubm.covariances_)
    c2 = clone(clf)
    assert c2.ubm is ubm and not hasattr(c2, "models_")
    scores = cross_val_score(GMMClassifier(ubm=ubm, relevance_factor=4.0), X, y, groups=groups,
                             cv=GroupKFold(n_splits=4))
    assert scores.min() > 0.9
    # ubm="fit" trains the UBM inside fit (on training folds only)
    c3 = GMMClassifier(4, ubm="fit", random_state=0).fit(X, y)
    assert c3.ubm_.n_components == 4
    assert c3.score(X, y) > 0.9


def test_parallel_fit_equals_serial():
    X, y, _ = _utterances(7)
    a = GMMClassifier(2, random_state=0).fit(X, y)
    b = GMMClassifier(2, random_state=0, n_jobs=2, backend="threading").fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-12)


def test_input_validation_messages():
    X, y, _ = _utterances(8)
    clf = GMMClassifier(2)
    # a 2-D array is scikit-learn's table: one one-frame utterance per row
    rows = np.concatenate([x[:4] for x in X])
    labels = np.repeat(y, 4)
    by_rows = GMMClassifier(1).fit(rows, labels)
    as_list = GMMClassifier(1).fit([r[None, :] for r in rows], labels)
    np.testing.assert_allclose(by_rows.predict_proba(rows), as_list.predict_proba(list(rows[:, None, :])))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X[0], y[:1])  # one utterance must be passed as [X[0]]
    with pytest.raises(ValueError, match=r"X\[1\] has 3 features"):
        as_utterances([np.zeros((5, 4)), np.zeros((5, 3))])
    with pytest.raises(ValueError, match=r"X\[0\] has no frames"):
        as_utterances([np.zeros((0, 4))])
    with pytest.raises(ValueError, match="NaN"):
        as_utterances([np.full((3, 2), np.nan)])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X[:3], ["a"] * 3)
    with pytest.raises(ValueError, match="fewer than n_components=500"):
        GMMClassifier(500).fit(X, y)
    with pytest.raises(ValueError, match="likelihood_scale"):
        GMMClassifier(likelihood_scale="median").fit(X, y)
    with pytest.raises(ValueError, match="model='nope'"):
        GMMClassifier(model="nope").fit(X, y)
    fitted = GMMClassifier(2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="expecting 4 features"):
        fitted.predict([np.zeros((5, 3))])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GMMClassifier().predict(X)
    # a 3-D array is a set of equal-length utterances
    X3 = np.stack([x[:20] for x in X])
    np.testing.assert_array_equal(fitted.predict(X3), fitted.predict([x[:20] for x in X]))


def test_save_load_round_trip(tmp_path):
    X, y, _ = _utterances(9)
    clf = GMMClassifier(2, random_state=0).fit(X, y)
    save_classifier(clf, tmp_path / "m", metadata={"feature_config": {"name": "speech"}})
    doc = json.loads((tmp_path / "m" / "classes.json").read_text())
    assert doc["classes"] == ["a", "b", "c"] and doc["model"] == "gmm"
    back = load_classifier(tmp_path / "m")
    assert back.metadata_ == {"feature_config": {"name": "speech"}}
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-12)
    # a file name that escapes the folder is refused
    doc["files"][0] = "../a.npz"
    (tmp_path / "m" / "classes.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="plain file name"):
        load_classifier(tmp_path / "m")
    # a tampered model file is refused by the model format's checksum
    doc["files"][0] = "a.npz"
    (tmp_path / "m" / "classes.json").write_text(json.dumps(doc))
    raw = bytearray((tmp_path / "m" / "b.npz").read_bytes())
    i = raw.find(b"means.npy")
    raw[-200] ^= 0xFF
    assert i >= 0
    (tmp_path / "m" / "b.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        load_classifier(tmp_path / "m")
    assert "gmm" in MODEL_TYPES


# --------------------------------------------------------------------------- GMM-HMM class models
def _up_down(seed, n_per_class):
    """Two classes with the same frames in opposite order: 'up' (low then high) and 'down'."""
    r = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_per_class):
        for c, sign in (("up", 1.0), ("down", -1.0)):
            a, b = int(r.integers(8, 20)), int(r.integers(8, 20))
            x = np.concatenate([np.full((a, 2), -2.0 * sign), np.full((b, 2), 2.0 * sign)])
            X.append(x + 0.5 * r.standard_normal(x.shape))
            y.append(c)
    return X, np.array(y)


def test_hmm_class_models_use_the_order_of_frames():
    from gmmspeech.mixture.hmm import GMMHMM

    X, y = _up_down(0, 10)
    Xt, yt = _up_down(1, 10)
    bag = GMMClassifier(2, random_state=0).fit(X, y)
    assert np.mean(bag.predict(Xt) == yt) < 0.8  # the same frames: a bag of frames cannot tell
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(model="hmm", model_params={"n_states": 2, "n_mix": 1}).fit(X, y)
        ref = [GMMHMM(2, 1, max_jump=1, reg_covar=1e-6).fit([x for x, t in zip(X, y) if t == c])
               for c in clf.classes_]
    np.testing.assert_array_equal(clf.predict(Xt), yt)
    assert all(isinstance(m, GMMHMM) and m.means_.shape == (2, 1, 2) for m in clf.models_)
    # the scores are the forward log-likelihoods of the class GMM-HMMs, trained as GMMHMM alone
    L = clf.log_likelihoods(Xt)
    np.testing.assert_allclose(L, np.stack([m.score_sequences(Xt) for m in ref], axis=1), rtol=1e-9)


def test_hmm_classifier_defaults_settings_and_files(tmp_path):
    from gmmspeech.mixture import io as mio
    from gmmspeech.mixture.hmm import GMMHMM, WORD_HMM_DEFAULTS

    X, y = _up_down(2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(model="hmm", model_params={"n_mix": 1}).fit(X, y)
    m = clf.models_[0]
    assert m.n_states == WORD_HMM_DEFAULTS["n_states"] and m.n_mix == 1
    assert m.max_jump == WORD_HMM_DEFAULTS["max_jump"]
    save_classifier(clf, tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "classes.json").read_text())
    assert doc["model"] == "hmm" and doc["files"] == ["down.npz", "up.npz"]
    back = load_classifier(tmp_path / "m")
    assert isinstance(back.models_[1], GMMHMM)
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-12)
    # a GMM file where classes.json says hmm is refused, naming the file
    gmm = GMMClassifier(1, random_state=0).fit(X, y).models_[0]
    mio.save(gmm, tmp_path / "m" / "up.npz")
    with pytest.raises(ModelFileError, match=r"up\.npz.*holds a GMM.*'hmm'"):
        load_classifier(tmp_path / "m")
    # settings the GMM-HMM cannot take fail before training, naming the parameter
    with pytest.raises(ValueError, match="n_states"):
        GMMClassifier(model="hmm", model_params={"n_states": 0}).fit(X, y)
    with pytest.raises(ValueError, match="model_params for model='hmm'.*bogus"):
        GMMClassifier(model="hmm", model_params={"bogus": 1}).fit(X, y)
    with pytest.raises(ValueError, match="cannot be adapted from a UBM"):
        GMMClassifier(model="hmm", ubm=gmm).fit(X, y)
    assert "hmm" in MODEL_TYPES
