"""GMM estimator behaviour: hand-computed EM step, sampling moments, streaming, floors,
degenerate data, validation messages, the scikit-learn protocol (clone)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from gmmspeech import GMM
from gmmspeech.mixture.gmm import NotFittedError


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Best performing initialization did not converge")
        yield


def _blobs(rng, n=300, centers=((0, 0), (6, 0), (0, 6)), scale=1.0):
    centers = np.asarray(centers, dtype=float)
    return np.vstack([rng.normal(c, scale, size=(n, centers.shape[1])) for c in centers])


# ----------------------------------------------------------------------------- hand-computed EM


def test_univariate_em_step_by_hand():
    # data x = [0, 2]; K = 2; start: weights (3/4, 1/4), means (0, 2), variances (1, 1).
    # E-step: with e = exp(-2),
    #   r(x=0, k=0) = 0.75 / (0.75 + 0.25 e)  = 0.9568354670200037
    #   r(x=2, k=0) = 0.75 e / (0.75 e + 0.25) = 0.28876540577240617
    # M-step: n0 = 0.9568354670200037 + 0.28876540577240617 = 1.2456008727924099
    #   weights = (n0 / 2, 1 - n0 / 2)        = (0.622800436396205, 0.377199563603795)
    #   mu0 = 2 * 0.28876540577240617 / n0   = 0.4636563960091756
    #   mu1 = 2 * (1 - 0.28876540577240617) / (2 - n0) = 1.8855657928985952
    #   var0 = (r00 mu0^2 + r10 (2 - mu0)^2) / n0 = 0.7123355384581337
    #   var1 = ((1-r00) mu1^2 + (1-r10) (2 - mu1)^2) / (2 - n0) = 0.21577322644788305
    # average log-likelihood before the step:
    #   (log(0.75 + 0.25 e) + log(0.75 e + 0.25)) / 2 - log(2 pi) / 2 = -1.5634883589844253
    x = np.array([0.0, 2.0])
    gmm = GMM(
        2, weights_init=[0.75, 0.25], means_init=[[0.0], [2.0]], precisions_init=[[1.0], [1.0]],
        max_iter=1, tol=0.0, reg_covar=0.0, var_floor_rel=0.0, dtype=np.float64,
    ).fit(x)
    np.testing.assert_allclose(gmm.weights_, [0.622800436396205, 0.377199563603795], rtol=1e-12)
    np.testing.assert_allclose(gmm.means_, [[0.4636563960091756], [1.8855657928985952]], rtol=1e-12)
    np.testing.assert_allclose(gmm.covariances_, [[0.7123355384581337], [0.21577322644788305]], rtol=1e-12)
    assert gmm.history_ == pytest.approx([-1.5634883589844253], rel=1e-12)
    assert gmm.means_.shape == (2, 1) and gmm.covariances_.shape == (2, 1)
    np.testing.assert_allclose(gmm.precisions_cholesky_, 1.0 / np.sqrt(gmm.covariances_), rtol=1e-12)


def test_random_from_data_is_the_textbook_initialisation():
    rng = np.random.default_rng(0)
    X = _blobs(rng, 50)
    gmm = GMM(4, init_params="random_from_data", random_state=3, var_floor_rel=0, reg_covar=0,
              dtype=np.float64).initialize(X)
    rows = {tuple(r) for r in X}
    assert all(tuple(m) in rows for m in gmm.means_)
    assert len({tuple(m) for m in gmm.means_}) == 4
    np.testing.assert_allclose(gmm.weights_, 0.25)
    np.testing.assert_allclose(gmm.covariances_, np.repeat(X.var(axis=0)[None], 4, axis=0), rtol=1e-10)
    full = GMM(4, covariance_type="full", init_params="random_from_data", random_state=3,
               var_floor_rel=0, reg_covar=0, dtype=np.float64).initialize(X)
    np.testing.assert_allclose(full.covariances_[2], np.cov(X, rowvar=False, bias=True), rtol=1e-10)


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_sample_reproduces_mixture_moments(covariance_type):
    weights = np.array([0.2, 0.5, 0.3])
    means = np.array([[0.0, 1.0], [4.0, -2.0], [-3.0, 5.0]])
    covs = {
        "diag": np.array([[1.0, 0.5], [0.3, 2.0], [1.5, 1.5]]),
        "full": np.array([[[1.0, 0.4], [0.4, 0.5]], [[0.3, -0.1], [-0.1, 2.0]], [[1.5, 0.0], [0.0, 1.5]]]),
        "spherical": np.array([1.0, 0.3, 2.0]),
        "tied": np.array([[1.0, 0.6], [0.6, 2.0]]),
    }[covariance_type]
    gmm = GMM.from_params(weights, means, covs, covariance_type, random_state=0)
    X, y = gmm.sample(200_000)
    assert X.shape == (200_000, 2) and y.shape == (200_000,)
    np.testing.assert_allclose(np.bincount(y) / len(y), weights, atol=0.005)
    full = {
        "diag": lambda: np.stack([np.diag(c) for c in covs]),
        "full": lambda: covs,
        "spherical": lambda: np.stack([np.eye(2) * c for c in covs]),
        "tied": lambda: np.repeat(covs[None], 3, axis=0),
    }[covariance_type]()
    mean = weights @ means
    cov = np.einsum("k,kij->ij", weights, full) + np.einsum("k,ki,kj->ij", weights, means - mean, means - mean)
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(X, rowvar=False), cov, atol=0.08)
    for k in range(3):
        np.testing.assert_allclose(np.cov(X[y == k], rowvar=False), full[k], atol=0.05)


# ----------------------------------------------------------------------------- streaming


def test_partial_fit_over_chunks_equals_fit_on_the_whole():
    rng = np.random.default_rng(1)
    X = _blobs(rng, 200)
    init = dict(weights_init=np.full(3, 1 / 3), means_init=[[1.0, 1.0], [5.0, 1.0], [1.0, 5.0]],
                precisions_init=np.ones((3, 2)), dtype=np.float64, tol=0.0)
    stream = GMM(3, **init)
    chunks = np.array_split(X, 7)
    for n_steps in (1, 2, 3):
        stream.partial_fit(iter(chunks))  # a generator: one pass per call
        batch = GMM(3, max_iter=n_steps, **init).fit(X)
        np.testing.assert_allclose(stream.means_, batch.means_, rtol=1e-10)
        np.testing.assert_allclose(stream.covariances_, batch.covariances_, rtol=1e-10)
        np.testing.assert_allclose(stream.weights_, batch.weights_, rtol=1e-10)
        np.testing.assert_allclose(stream.history_, batch.history_, rtol=1e-12)
    assert stream.n_iter_ == 3
    # a single array is one chunk
    single = GMM(3, **init).partial_fit(X)
    np.testing.assert_allclose(single.means_, GMM(3, max_iter=1, **init).fit(X).means_, rtol=1e-10)


def test_partial_fit_initialises_an_unfitted_model_from_the_first_chunk():
    rng = np.random.default_rng(2)
    X = _blobs(rng, 200)
    model = GMM(3, random_state=0).partial_fit(X[:400])
    assert model.n_iter_ == 1 and model.means_.shape == (3, 2)
    model.partial_fit([X[:300], X[300:]])
    assert model.n_iter_ == 2 and len(model.history_) == 2


# ----------------------------------------------------------------------------- EM properties


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
@pytest.mark.parametrize("init_params", ["kmeans", "random", "split"])
def test_log_likelihood_never_decreases(covariance_type, init_params):
    rng = np.random.default_rng(5)
    X = _blobs(rng, 150, centers=((0, 0, 0), (3, 0, 1), (0, 3, -1), (2, 2, 2)), scale=0.8)
    gmm = GMM(4, covariance_type=covariance_type, init_params=init_params, tol=1e-8, max_iter=60,
              random_state=0, dtype=np.float64).fit(X)
    h = np.asarray(gmm.history_)
    assert len(h) >= 2
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), h
    assert gmm.lower_bound_ == h[-1]


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_float32_with_large_offset_matches_float64(covariance_type):
    rng = np.random.default_rng(6)
    X = _blobs(rng, 400, scale=0.5) + 1e4
    init = dict(weights_init=np.full(3, 1 / 3), means_init=np.array([[1.0, 1.0], [5.0, 1.0], [1.0, 5.0]]) + 1e4,
                precisions_init=(np.ones((3, 2)) if covariance_type == "diag" else np.repeat(np.eye(2)[None], 3, 0)))
    g32 = GMM(3, covariance_type=covariance_type, dtype=np.float32, max_iter=20, tol=0, **init).fit(X.astype(np.float32))
    g64 = GMM(3, covariance_type=covariance_type, dtype=np.float64, max_iter=20, tol=0, **init).fit(X)
    cov = g32.covariances_ if covariance_type == "diag" else np.linalg.eigvalsh(g32.covariances_)
    assert np.all(np.isfinite(cov)) and np.all(cov > 0)
    np.testing.assert_allclose(g32.means_, g64.means_, rtol=1e-7, atol=1e-3)
    np.testing.assert_allclose(g32.covariances_, g64.covariances_, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(g32.weights_, g64.weights_, atol=1e-4)
    assert g32.lower_bound_ == pytest.approx(g64.lower_bound_, abs=1e-4)


def test_param_tol_stops_when_parameters_stop_moving():
    rng = np.random.default_rng(7)
    X = _blobs(rng, 200)
    loose = GMM(3, tol=0.0, param_tol=1e-2, max_iter=500, random_state=0, dtype=np.float64).fit(X)
    tight = GMM(3, tol=0.0, param_tol=1e-9, max_iter=500, random_state=0, dtype=np.float64).fit(X)
    assert loose.converged_ and tight.converged_
    assert loose.n_iter_ < tight.n_iter_


@pytest.mark.parametrize("k", [3, 4, 5, 6])
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_split_init_reaches_any_k(k, covariance_type):
    rng = np.random.default_rng(8)
    X = _blobs(rng, 100, centers=[(0, 0), (8, 0), (0, 8), (8, 8)])
    gmm = GMM(k, covariance_type=covariance_type, init_params="split", random_state=0).fit(X)
    assert gmm.means_.shape == (k, 2)
    assert np.all(np.isfinite(gmm.means_)) and gmm.weights_.sum() == pytest.approx(1.0)
    one = GMM(1, covariance_type=covariance_type).fit(X)
    assert gmm.lower_bound_ > one.lower_bound_ + 0.5
    if k == 4:  # binary splitting finds the four corners
        found = sorted(tuple(np.round(m / 8.0).astype(int)) for m in gmm.means_)
        assert found == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_n_init_keeps_the_best_run():
    rng = np.random.default_rng(9)
    X = _blobs(rng, 100, centers=[(0, 0), (4, 0), (0, 4), (4, 4), (8, 8)])
    single = [GMM(5, init_params="random", random_state=s, max_iter=30).fit(X).lower_bound_ for s in range(3)]
    best = GMM(5, init_params="random", n_init=3, random_state=0, max_iter=30).fit(X)
    assert best.lower_bound_ >= min(single) - 1e-9


# ----------------------------------------------------------------------------- predictions


def test_predict_proba_predict_score_consistent():
    rng = np.random.default_rng(10)
    X = _blobs(rng, 100)
    gmm = GMM(3, random_state=0, chunk_size=37).fit(X)
    p = gmm.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(gmm.predict(X), np.argmax(p, axis=1))
    wlp = gmm.weighted_log_prob(X)
    m = wlp.max(axis=1)
    np.testing.assert_allclose(gmm.score_samples(X), m + np.log(np.exp(wlp - m[:, None]).sum(1)), rtol=1e-5)
    assert gmm.score(X) == pytest.approx(gmm.score_samples(X).mean())
    labels = gmm.fit_predict(X)
    # the three blobs get three different labels
    assert len({int(np.bincount(labels[i * 100:(i + 1) * 100]).argmax()) for i in range(3)}) == 3


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_results_do_not_depend_on_the_order_of_the_frames(covariance_type, dtype, tol, n_components):
    """Shuffling the frames shuffles the log-densities, posteriors and labels and nothing else,
    to the compute dtype's precision (scikit-learn's check_methods_sample_order_invariance on
    its own 20 x 3 table with one component, and others). A float32 E-step's rounding may
    depend on a frame's place in the BLAS kernel's blocks (OpenBLAS's AVX-512 kernels, one
    component, diagonal or spherical: log-densities up to 4.8e-7 apart), so float32 is held
    to 1e-5 and float64 to 1e-12."""
    r = np.random.default_rng(0)
    for n in (17, 20, 23, 64):
        X = 3 * r.uniform(size=(n, 3))
        g = GMM(n_components, covariance_type=covariance_type, random_state=1, dtype=dtype).fit(X)
        logp, post, labels = g.score_samples(X), g.predict_proba(X), g.predict(X)
        for seed in range(3):
            order = np.random.default_rng(seed).permutation(n)
            np.testing.assert_allclose(g.score_samples(X[order]), logp[order], rtol=tol, atol=tol)
            np.testing.assert_allclose(g.predict_proba(X[order]), post[order], rtol=tol, atol=tol)
            np.testing.assert_array_equal(g.predict(X[order]), labels[order])


def test_from_params_and_pickle_round_trip():
    gmm = GMM.from_params([0.3, 0.7], [[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [0.5, 0.5]], "diag", dtype=np.float64)
    assert gmm.n_features_in_ == 2 and gmm.converged_
    clone = pickle.loads(pickle.dumps(gmm))
    X = np.random.default_rng(0).normal(size=(20, 2))
    np.testing.assert_array_equal(clone.score_samples(X), gmm.score_samples(X))
    with pytest.raises(ValueError, match="normalized"):
        GMM.from_params([0.3, 0.3], [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="positive"):
        GMM.from_params([0.5, 0.5], [[0.0], [1.0]], [[1.0], [-1.0]])
    with pytest.raises(ValueError, match="symmetric, positive-definite"):
        GMM.from_params([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "full")


def test_parallel_accumulate_equals_serial():
    rng = np.random.default_rng(11)
    X = _blobs(rng, 3000)
    serial = GMM(3, random_state=0, chunk_size=512, dtype=np.float64).fit(X)
    par = GMM.from_params(serial.weights_, serial.means_, serial.covariances_, "diag",
                          n_jobs=2, chunk_size=512, dtype=np.float64)
    a, b = serial.accumulate(X), par.accumulate(X)
    np.testing.assert_allclose(a.s, b.s, rtol=1e-12)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)


# ----------------------------------------------------------------------------- degenerate data


def test_duplicates_and_constant_dimension_stay_finite():
    X = np.zeros((60, 3))
    X[:20, 0] = 1.0
    X[20:40, 0] = 2.0
    X[:, 1] = 5.0  # constant dimension
    X[40:, 2] = np.linspace(0, 1, 20)
    for ct in ("diag", "full", "spherical", "tied"):
        gmm = GMM(3, covariance_type=ct, random_state=0).fit(X)
        for arr in (gmm.weights_, gmm.means_, gmm.covariances_, gmm.precisions_cholesky_):
            assert np.all(np.isfinite(arr)), ct
        assert np.all(np.isfinite(gmm.score_samples(X)))


def test_collapsed_component_is_reseeded_by_splitting():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 2))
    # component 1 sits far from every frame: its count underflows to zero
    gmm = GMM(2, weights_init=[0.5, 0.5], means_init=[[0.0, 0.0], [1e4, 1e4]],
              precisions_init=np.ones((2, 2)), max_iter=3, dtype=np.float64)
    gmm.fit(X)
    assert gmm.n_reseeded_ >= 1
    assert np.all(np.linalg.norm(gmm.means_, axis=1) < 2.0)
    assert np.all(gmm.weights_ > 0.2)


def test_more_components_than_distinct_points_is_a_clear_error():
    X = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0]]), 10, axis=0)
    with pytest.raises(ValueError, match=r"n_components=3 .* distinct points in X \(2\)"):
        GMM(3).fit(X)


# ----------------------------------------------------------------------------- validation


def test_validation_messages():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=r"Invalid value for 'covariance_type': 'foo'. 'covariance_type' should be in \['spherical', 'tied', 'diag', 'full'\]"):
        GMM(covariance_type="foo").fit(X)
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got n_components = 5, n_samples = 3"):
        GMM(5).fit(X[:3])
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN."):
        GMM(2).fit(bad)
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        GMM(2).fit(bad)
    with pytest.raises(ValueError, match="Invalid value for 'n_components': 0"):
        GMM(0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'init_params': 'bogus'"):
        GMM(2, init_params="bogus").fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'reg_covar'"):
        GMM(2, reg_covar=-1).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'tol'"):
        GMM(2, tol=-1).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'dtype'"):
        GMM(2, dtype=np.int32).fit(X)
    with pytest.raises(ValueError, match=r"The parameter 'means' should have the shape of \(2, 2\), but got \(3, 2\)"):
        GMM(2, means_init=np.zeros((3, 2))).fit(X)
    with pytest.raises(ValueError, match="should be normalized"):
        GMM(2, weights_init=[0.2, 0.2]).fit(X)
    with pytest.raises(ValueError, match="'diag precision' should be positive"):
        GMM(2, precisions_init=[[1.0, -1.0], [1.0, 1.0]]).fit(X)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GMM(2).predict(X)
    gmm = GMM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GMM is expecting 2 features as input."):
        gmm.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(10,\)!"):
        GMM(2).fit(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Negative values in sample_weight"):
        GMM(2).fit(X, sample_weight=-np.ones(10))


def test_univariate_input_shapes():
    x = np.concatenate([np.random.default_rng(0).normal(0, 1, 100), np.random.default_rng(1).normal(8, 1, 100)])
    for ct, shape in (("diag", (2, 1)), ("full", (2, 1, 1)), ("spherical", (2,)), ("tied", (1, 1))):
        gmm = GMM(2, covariance_type=ct, random_state=0).fit(x)
        assert gmm.means_.shape == (2, 1)
        assert gmm.covariances_.shape == shape
        assert gmm.predict(x).shape == (200,)
        np.testing.assert_allclose(np.sort(gmm.means_.ravel()), [0, 8], atol=0.4)


def test_sample_weight_equals_repetition():
    rng = np.random.default_rng(13)
    X = _blobs(rng, 60)
    counts = rng.integers(1, 4, size=len(X))
    init = dict(weights_init=np.full(3, 1 / 3), means_init=[[1.0, 1.0], [5.0, 1.0], [1.0, 5.0]],
                precisions_init=np.ones((3, 2)), dtype=np.float64, tol=0, max_iter=5)
    a = GMM(3, **init).fit(X, sample_weight=counts)
    b = GMM(3, **init).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10)
    np.testing.assert_allclose(a.history_, b.history_, rtol=1e-10)


# ----------------------------------------------------------------------------- sklearn protocol


def test_get_set_params_and_clone():
    from sklearn.base import clone

    means = np.zeros((3, 2))
    gmm = GMM(3, covariance_type="full", means_init=means, random_state=4, dtype=np.float64)
    params = gmm.get_params()
    assert params["n_components"] == 3 and params["covariance_type"] == "full"
    assert params["means_init"] is means
    c = clone(gmm)
    assert c is not gmm and c.get_params()["random_state"] == 4
    np.testing.assert_array_equal(c.means_init, means)
    assert not hasattr(c, "means_")
    gmm.set_params(n_components=5, tol=1e-2)
    assert gmm.n_components == 5 and gmm.tol == 1e-2
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        gmm.set_params(bogus=1)
    assert "covariance_type='full'" in repr(gmm)


@pytest.mark.parametrize("cov", ["diag", "full"])
def test_estep_statistics_do_not_depend_on_thread_count(cov):
    """Threads take work items cut from the block grid and their statistics are added in item
    order, so 1, 2 or 3 threads (and a Dask worker with one thread) give bit-identical
    statistics, and they equal the sum of the items computed one by one."""
    from gmmspeech.mixture.gmm import _ITEM_BLOCKS, _block_rows

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((20000, 13)) * 3 + 5).astype(np.float32)
    g = GMM(8, covariance_type=cov, random_state=0, max_iter=2, tol=0.0).fit(X)
    out = [g.set_params(n_threads=t).accumulate(X) for t in (1, 2, 3)]
    for st in out[1:]:
        for a, b in ((out[0].n, st.n), (out[0].f, st.f), (out[0].s, st.s)):
            np.testing.assert_array_equal(b, a)
        assert st.loglik == out[0].loglik
    # the items: ranges of _ITEM_BLOCKS blocks, each an E-step of its own; their statistics
    # add up to the whole (summed centred, uncentred once: equal up to rounding)
    step = _block_rows(g._plan(), g.chunk_size) * _ITEM_BLOCKS
    assert X.shape[0] > step  # several items
    g1 = g.set_params(n_threads=1)
    parts = [g1.accumulate(X[a:a + step]) for a in range(0, X.shape[0], step)]
    ref = sum(parts[1:], parts[0])
    np.testing.assert_allclose(out[0].n, ref.n, rtol=1e-10)
    np.testing.assert_allclose(out[0].s, ref.s, rtol=1e-9, atol=1e-9 * np.abs(ref.s).max())
    assert out[0].loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_estep_statistics_do_not_depend_on_blas_threads():
    """Small inputs run on one thread; their float32 block products use single-threaded BLAS
    whatever the process's BLAS limit, so a worker limited to one BLAS thread agrees."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    X = (rng.standard_normal((1500, 39)) * rng.uniform(0.5, 2, 39) + 3).astype(np.float32)
    g = GMM(4, covariance_type="full", random_state=0, max_iter=2, tol=0.0).fit(X)
    a = g.accumulate(X)
    with threadpool_limits(limits=1, user_api="blas"):
        b = g.accumulate(X)
    np.testing.assert_allclose(b.n, a.n, rtol=1e-12)
    np.testing.assert_allclose(b.s, a.s, rtol=1e-12, atol=1e-12 * np.abs(a.s).max())
