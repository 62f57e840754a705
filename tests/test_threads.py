"""Threads inside a process (gmmspeech.threads): how many, the shared dynamic scheduler, and
that every threaded kernel gives the same result for any thread count."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from gmmspeech import threads as th


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("GMMSPEECH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    th.set_threads(None)
    yield
    th.set_threads(None)


# ----------------------------------------------------------------------------- how many
def test_default_is_the_affinity_mask_and_never_more(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(th, "_cgroup_quota", lambda root="/sys/fs/cgroup": None)
    assert th.default_threads() == cores
    monkeypatch.setenv("GMMSPEECH_THREADS", "64")
    assert th.default_threads() == cores  # never more than the cores given
    monkeypatch.setenv("GMMSPEECH_THREADS", "1")
    assert th.default_threads() == 1
    monkeypatch.setenv("GMMSPEECH_THREADS", "two")
    with pytest.raises(ValueError, match="GMMSPEECH_THREADS='two'"):
        th.default_threads()
    monkeypatch.delenv("GMMSPEECH_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # joblib's worker processes get this
    assert th.default_threads() == 1
    assert "OMP_NUM_THREADS=1" in th.describe_threads()


def test_affinity_of_a_child_process_limits_it():
    """A process confined to one core (taskset, a batch scheduler's cpuset) uses one thread."""
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from gmmspeech.threads import default_threads, describe_threads; "
            "print(default_threads(), describe_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("GMMSPEECH_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out[0] == "1" and "affinity 1 core" in " ".join(out)


def test_cgroup_quota_caps_the_default(tmp_path, monkeypatch):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs -> 2 threads
    assert th._cgroup_quota(str(v2)) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert th._cgroup_quota(str(v2)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert th._cgroup_quota(str(v1)) == 1
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert th._cgroup_quota(str(v1)) is None
    assert th._cgroup_quota(str(tmp_path / "absent")) is None
    monkeypatch.setattr(th, "_cgroup_quota", lambda root="/sys/fs/cgroup": 1)
    assert th.available_cores() == 1 and th.default_threads() == 1


def test_set_threads_and_thread_limit(monkeypatch):
    monkeypatch.setattr(th, "_affinity_cores", lambda: 8)
    monkeypatch.setattr(th, "_cgroup_quota", lambda root="/sys/fs/cgroup": None)
    assert th.set_threads(3) == 3 and th.default_threads() == 3
    with th.thread_limit(1) as n:
        assert n == 1 and th.default_threads() == 1
    assert th.default_threads() == 3
    with th.thread_limit(None) as n:  # changes nothing
        assert n == 3
    assert th.set_threads(None) == 8
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="n_threads must be a positive integer"):
            th.resolve_threads(bad)


# ----------------------------------------------------------------------------- scheduler
def test_map_items_keeps_order_and_reports_progress():
    done = []
    out = th.map_items(lambda x: x * x, range(50), n_threads=3, on_done=lambda: done.append(1))
    assert out == [x * x for x in range(50)] and len(done) == 50
    assert th.map_items(lambda x: x, [], n_threads=2) == []


def test_map_items_is_dynamic_a_stalled_thread_does_not_hold_the_others():
    """Item 0 blocks until every other item is done: only dynamic scheduling (the other
    thread keeps taking items) can finish; a static half-and-half split would time out."""
    n = 40
    rest_done = threading.Event()
    count = [0]
    lock = threading.Lock()
    ran_on = {}

    def item(i):
        ran_on[i] = threading.get_ident()
        if i == 0:
            assert rest_done.wait(timeout=20), "the other items were not taken by the free thread"
            return i
        with lock:
            count[0] += 1
            if count[0] == n - 1:
                rest_done.set()
        return i

    assert th.map_items(item, range(n), n_threads=2) == list(range(n))
    assert all(ran_on[i] != ran_on[0] for i in range(1, n))


def test_map_items_raises_the_first_failing_item_and_nests_serially():
    def bad(i):
        if i in (7, 3):
            raise KeyError(f"item {i}")
        return i

    with pytest.raises(KeyError, match="item 3"):
        th.map_items(bad, range(20), n_threads=2)

    def outer(i):
        assert th.in_worker_thread()
        me = threading.get_ident()
        inner = th.map_items(lambda j: threading.get_ident(), range(5), n_threads=4)
        return all(t == me for t in inner)  # one level of threads

    assert all(th.map_items(outer, range(6), n_threads=2))
    assert not th.in_worker_thread()


def test_map_items_runs_blas_single_threaded_and_restores_it():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        inside = th.map_items(lambda i: blas_threads(), range(4), n_threads=2)
        assert all(set(v) == {1} for v in inside)
        assert blas_threads() == before


# ----------------------------------------------------------------------------- kernels
def _scoring_problem(cov="diag", K=16, D=6, M=5, n_utt=30, seed=0):
    from gmmspeech import GMM

    r = np.random.default_rng(seed)
    w = r.dirichlet(np.full(K, 2.0))
    mu = r.normal(0, 1, (K, D))
    var = r.uniform(0.3, 1.0, (K, D))
    ubm = GMM.from_params(w, mu, var)
    models = [GMM.from_params(w, mu + r.normal(0, 0.2, (K, D)), var) for _ in range(M)]
    utts = [r.normal(0, 1.2, (int(r.integers(20, 1500)), D)).astype(np.float32) for _ in range(n_utt)]
    return ubm, models, utts


@pytest.mark.parametrize("mode", ["exact", "topc", "linear"])
def test_scores_do_not_depend_on_thread_count_and_match_scikit_learn(mode):
    from sklearn.mixture import GaussianMixture

    from gmmspeech import score

    ubm, models, utts = _scoring_problem()
    outs = [score(models, ubm, utts, mode=mode, top_c=3 if mode == "topc" else None,
                  chunk_frames=256, n_threads=t) for t in (1, 2, 3)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    if mode == "exact":  # the independent reference: scikit-learn's average log-likelihoods

        def sk(g):
            m = GaussianMixture(len(g.weights_), covariance_type="diag")
            m.weights_, m.means_, m.covariances_ = g.weights_, g.means_, g.covariances_
            m.precisions_cholesky_ = 1 / np.sqrt(g.covariances_)
            return m

        ref = np.array([[sk(m).score(u.astype(np.float64)) - sk(ubm).score(u.astype(np.float64))
                         for m in models] for u in utts])
        np.testing.assert_allclose(outs[0], ref, atol=2e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_full_covariance_scores_do_not_depend_on_thread_count():
    from gmmspeech import GMM, score

    r = np.random.default_rng(3)
    X = r.normal(0, 1, (3000, 4)) @ r.normal(0, 1, (4, 4))
    ubm = GMM(4, covariance_type="full", random_state=0, max_iter=5).fit(X)
    models = [GMM(4, covariance_type="full", random_state=s, max_iter=3).fit(X[s::3]) for s in range(3)]
    utts = [X[a:a + 700] for a in range(0, 3000, 700)]
    a, b = (score(models, ubm, utts, n_threads=t, chunk_frames=128) for t in (1, 2))
    np.testing.assert_array_equal(a, b)


def test_mfcc_and_feature_warping_do_not_depend_on_thread_count():
    import librosa

    from gmmspeech.features import FeatureConfig
    from gmmspeech.features.mfcc import mfcc
    from gmmspeech.features.normalize import feature_warping

    r = np.random.default_rng(0)
    y = (0.1 * r.standard_normal(16000 * 40)).astype(np.float32)  # 4,000 frames: several items
    cfg = FeatureConfig.preset("librosa")
    a, b = (mfcc(y, sr=16000, config=cfg, n_threads=t) for t in (1, 3))
    np.testing.assert_array_equal(a, b)
    ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=cfg.n_mfcc)
    np.testing.assert_allclose(a, ref, rtol=1e-3, atol=2e-3 * np.abs(ref).max())

    X = r.standard_normal((6000, 5)).astype(np.float32)
    w1, w2 = (feature_warping(X, window=301, n_threads=t) for t in (1, 2))
    np.testing.assert_array_equal(w1, w2)
    # independent reference for a frame in the middle: the normal quantile of its rank
    from scipy.stats import norm, rankdata

    t = 3000
    win = X[t - 150:t + 151]
    ref = norm.ppf((rankdata(win, axis=0)[150] - 0.5) / 301)
    np.testing.assert_allclose(w1[t], ref, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gmm_n_threads_is_validated():
    from gmmspeech import GMM

    X = np.random.default_rng(0).normal(size=(200, 2))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="'n_threads'"):
            GMM(2, n_threads=bad).fit(X)
    assert GMM(2, n_threads=2, max_iter=3).fit(X).n_threads == 2


def test_ivector_blocks_run_blas_single_threaded_and_agree_across_thread_counts(monkeypatch):
    """TV EM and extraction: the blocks of utterances run with one BLAS thread (a multi-threaded
    BLAS spin-waits on their small products: 7.8x slower with the other core busy), on this
    process's threads; any thread count gives the textbook result (closed-form posterior)."""
    from threadpoolctl import threadpool_info

    from gmmspeech.backend import ivector as iv

    r = np.random.default_rng(5)
    k, d, rank, u = 6, 4, 3, 40
    model = iv.TVModel(r.standard_normal((k, d, rank)) * 0.3, np.zeros((k, d)), r.uniform(0.5, 2.0, (k, d)))
    n = r.gamma(2.0, 3.0, (u, k))
    f = r.standard_normal((u, k, d)) * np.sqrt(n)[:, :, None]
    seen = []
    for name in ("_estep_task", "_extract_task"):
        real = getattr(iv, name)

        def spy(*a, _real=real):
            seen.append(max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1))
            return _real(*a)
        monkeypatch.setattr(iv, name, spy)
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(limits=2, user_api="blas"):  # a 2-thread BLAS outside, as on 2 cores
        for t in (1, 2):
            step, ll = iv.tv_em_step(model, n, f, n_threads=t)
            out[t] = (step.T, ll, iv.extract(model, n, f, n_threads=t, batch=7))
    assert seen and set(seen) == {1}
    np.testing.assert_allclose(out[2][0], out[1][0], rtol=1e-10, atol=1e-13)
    assert out[2][1] == pytest.approx(out[1][1], rel=1e-12)
    # per-utterance: blocks do not matter, up to rounding (an utterance's place in a block can
    # change which BLAS kernel multiplies it: 8e-17 apart with OpenBLAS's AVX-512 kernels)
    np.testing.assert_allclose(out[2][2], out[1][2], rtol=1e-12, atol=1e-14)
    # the textbook posterior mean of utterance 0: (I + sum_c N_c T_c^T P_c T_c)^-1 sum_c T_c^T P_c F_c
    prec = np.eye(rank) + sum(n[0, c] * model.T[c].T @ np.diag(model.prec[c]) @ model.T[c] for c in range(k))
    lin = sum(model.T[c].T @ (model.prec[c] * f[0, c]) for c in range(k))
    np.testing.assert_allclose(out[2][2][0], np.linalg.solve(prec, lin), rtol=1e-10)
