"""Scale-out on Dask: every parallel step gives the local backend's results on a cluster.

One ``dask.distributed.LocalCluster`` (two worker processes, one thread each, loopback
only, no dashboard) is started for the whole module and closed after it. Functions
shipped to the workers are importable ones (stdlib, numpy, gmmspeech), never test-local
closures: the workers cannot import this test module.
"""

from __future__ import annotations

import csv
import math
import operator
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")

from gmmspeech import parallel  # noqa: E402

RTOL = 1e-6


@pytest.fixture(scope="module")
def cluster():
    """A two-process loopback LocalCluster for this module; yields its scheduler address."""
    lc = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    try:
        yield lc.scheduler_address
    finally:
        client = parallel._CLIENTS.pop(lc.scheduler_address, None)
        if client is not None:
            client.close()
        lc.close()


@pytest.fixture
def no_backend_env(monkeypatch):
    monkeypatch.delenv(parallel.BACKEND_ENV, raising=False)
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)


# --------------------------------------------------------------------------- parallel_map


def test_parallel_map_dask_keeps_order(cluster, no_backend_env):
    items = list(range(-25, 25))
    got = parallel.parallel_map(abs, items, backend="dask", scheduler=cluster)
    assert got == [abs(i) for i in items]


def test_parallel_map_dask_star(cluster, no_backend_env):
    pairs = [(i, 7 - i) for i in range(30)]
    got = parallel.parallel_map(operator.mul, pairs, backend="dask", scheduler=cluster, star=True)
    assert got == [a * b for a, b in pairs]


def test_parallel_map_dask_generator_input_and_progress(cluster, no_backend_env, capsys):
    got = parallel.parallel_map(
        math.sqrt, (float(i * i) for i in range(12)), backend="dask", scheduler=cluster,
        progress=True, total=12, desc="sqrt",
    )
    assert got == [float(i) for i in range(12)]


def test_parallel_map_dask_runs_on_worker_processes(cluster, no_backend_env):
    pids = parallel.parallel_map(os.getpid, [()] * 16, backend="dask", scheduler=cluster, star=True)
    assert os.getpid() not in pids
    # the tasks really went to the cluster's worker processes
    client = parallel.dask_client(cluster)
    worker_pids = set(client.run(os.getpid).values())
    assert set(pids) <= worker_pids
    assert len(worker_pids) == 2


def test_parallel_map_dask_numpy_arrays_roundtrip(cluster, no_backend_env):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((50, 4)) for _ in range(6)]
    local = parallel.parallel_map(np.linalg.norm, arrays, backend="sequential")
    remote = parallel.parallel_map(np.linalg.norm, arrays, backend="dask", scheduler=cluster)
    np.testing.assert_allclose(remote, local, rtol=1e-12)


def test_parallel_map_dask_from_environment(cluster, monkeypatch):
    monkeypatch.setenv(parallel.BACKEND_ENV, "dask")
    monkeypatch.setenv(parallel.SCHEDULER_ENV, cluster)
    assert parallel.resolve_backend() == ("dask", cluster)
    pids = parallel.parallel_map(os.getpid, [()] * 4, star=True)
    assert os.getpid() not in pids


def test_scheduler_alone_implies_dask(cluster, no_backend_env):
    assert parallel.resolve_backend(None, cluster) == ("dask", cluster)
    pids = parallel.parallel_map(os.getpid, [()] * 4, scheduler=cluster, star=True)
    assert os.getpid() not in pids


def test_parallel_map_dask_propagates_worker_exception(cluster, no_backend_env):
    with pytest.raises(ValueError, match="math domain error"):
        parallel.parallel_map(math.sqrt, [4.0, -1.0, 9.0], backend="dask", scheduler=cluster)


# ------------------------------------------------------------- errors crossing processes


def test_gmmspeech_errors_survive_pickling():
    """Errors raised in a worker are pickled back to the caller: they must keep their class,
    path and reason (a class whose constructor needs more than the message would break the
    worker pool instead: loky reports 'A result has failed to un-serialize')."""
    import pickle

    from gmmspeech.errors import AudioError, FeatureError, ManifestError, ModelFileError

    for exc in (AudioError("a.wav", "empty file"), FeatureError("b.wav", "VAD kept nothing"),
                ManifestError("m.csv", 3, "duplicate id"), ModelFileError("u.npz", "bad checksum"),
                AudioError(path="c.wav", reason="missing")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc)
        assert str(back) == str(exc)
        assert back.path == exc.path and back.reason == exc.reason
        assert getattr(back, "line", None) == getattr(exc, "line", None)


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_worker_audio_error_reaches_caller(cluster, no_backend_env, tmp_path, backend):
    from gmmspeech import audio
    from gmmspeech.errors import AudioError

    missing = str(tmp_path / "nope.wav")
    kw = {"scheduler": cluster} if backend == "dask" else {"n_jobs": 2}
    with pytest.raises(AudioError) as info:
        parallel.parallel_map(audio.load, [missing, missing], backend=backend, **kw)
    assert info.value.path == missing and "missing" in info.value.reason


# ------------------------------------------------- the pipeline: features, UBM, enrol, score

N_SPK = 3
N_UTT = 4


def _cli_env() -> dict:
    env = dict(os.environ)
    env.pop(parallel.BACKEND_ENV, None)
    env.pop(parallel.SCHEDULER_ENV, None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    return env


def _features_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gmmspeech", "features", *map(str, args), "--quiet"],
                          env=_cli_env(), capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """12 short speech-like files of 3 'speakers' (pitch), and their manifest."""
    import soundfile as sf
    from conftest import speechlike

    root = tmp_path_factory.mktemp("dask-corpus")
    lines = ["id,path,label"]
    for s in range(N_SPK):
        for u in range(N_UTT):
            y = speechlike(sr=16000, seconds=1.0, f0=(110.0, 170.0, 240.0)[s] * (1 + 0.02 * u),
                           seed=10 * s + u)
            t = np.arange(y.size) / 16000
            y = (y * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)
            path = root / f"s{s}u{u}.wav"
            sf.write(path, y, 16000, subtype="PCM_16")
            lines.append(f"s{s}u{u},{path.name},spk{s}")
    (root / "all.csv").write_text("\n".join(lines) + "\n")
    return root / "all.csv"


@pytest.fixture(scope="module")
def stores(manifest, cluster, tmp_path_factory):
    """The same manifest through ``gmmspeech features``, locally and on the cluster."""
    root = tmp_path_factory.mktemp("dask-stores")
    local = _features_cli(manifest, "--out", root / "local")
    assert local.returncode == 0, local.stderr
    remote = _features_cli(manifest, "--out", root / "dask", "--backend", "dask", "--scheduler", cluster)
    assert remote.returncode == 0, remote.stderr
    assert "Traceback" not in remote.stderr
    from gmmspeech.corpus.store import FeatureStore

    return FeatureStore(root / "local"), FeatureStore(root / "dask")


def test_features_cli_dask_equals_local(stores):
    local, remote = stores
    assert len(local) == N_SPK * N_UTT
    assert remote.ids() == local.ids()
    assert remote.labels() == local.labels()
    assert remote.config_hash == local.config_hash
    for uid in local.ids():
        a, b = local.load(uid, mmap=False), remote.load(uid, mmap=False)
        assert a.shape == b.shape and a.shape[0] > 50
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-6 * np.abs(a).max())


def test_features_cli_dask_from_environment(manifest, cluster, tmp_path, stores):
    """``GMMSPEECH_SCHEDULER`` alone sends the extraction to the cluster."""
    env = _cli_env()
    env[parallel.SCHEDULER_ENV] = cluster
    subset = tmp_path / "two.csv"  # two rows are enough to show where the work goes
    header, *rows = manifest.read_text().splitlines()
    rows = [r.split(",") for r in rows[:2]]
    subset.write_text("\n".join([header] + [f"{i},{manifest.parent / p},{lab}" for i, p, lab in rows]) + "\n")
    res = subprocess.run([sys.executable, "-m", "gmmspeech", "features", str(subset), "--out",
                          str(tmp_path / "env"), "--quiet"], env=env, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stderr
    from gmmspeech.corpus.store import FeatureStore

    local = stores[0]
    got = FeatureStore(tmp_path / "env")
    assert len(got) == 2
    for uid in got.ids():
        np.testing.assert_allclose(got.load(uid), local.load(uid), rtol=RTOL, atol=1e-6)


def test_features_cli_dask_reports_bad_files(cluster, tmp_path_factory):
    """Bad files met by a Dask worker are reported like local ones: once each, with the
    reason, and the good files are all extracted."""
    import re

    from test_bad_input import BAD_REASONS, write_bad_corpus

    from gmmspeech.corpus.store import FeatureStore

    corpus = write_bad_corpus(tmp_path_factory.mktemp("dask-bad"), n_speakers=2, n_train=1, n_test=1)
    out = corpus.root / "store"
    res = _features_cli(corpus.all_manifest, "--out", out, "--backend", "dask", "--scheduler", cluster)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    with open(out / "errors.tsv", newline="") as fh:
        errors = list(csv.DictReader(fh, dialect="excel-tab"))
    assert sorted(r["id"] for r in errors) == sorted(corpus.bad_ids)
    for r in errors:
        assert re.search(BAD_REASONS[r["id"]], r["reason"], re.I), r
    assert sorted(FeatureStore(out).ids()) == sorted(corpus.good_ids)


def _assert_same_gmm(a, b) -> None:
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(b.means_, a.means_, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=RTOL, atol=1e-12)


@pytest.fixture(scope="module")
def ubms(stores, cluster):
    from gmmspeech.speaker.ubm import train_ubm

    store = stores[0]
    # small chunks: the corpus is cut into several E-step tasks
    kw = dict(max_iter=4, init="split", random_state=7, chunk_frames=300, reservoir_size=2000)
    local = train_ubm(store, 8, "diag", n_jobs=1, **kw)
    remote = train_ubm(store, 8, "diag", backend="dask", scheduler=cluster, **kw)
    return local, remote


def test_train_ubm_dask_equals_local(ubms):
    local, remote = ubms
    _assert_same_gmm(local, remote)
    np.testing.assert_allclose(remote.history_, local.history_, rtol=RTOL)
    assert len(local.history_) == 4
    # EM never decreases the likelihood (a check that the run did real EM on the data)
    assert np.all(np.diff(local.history_) > -1e-6)


def test_train_ubm_dask_full_covariance(stores, cluster):
    from gmmspeech.speaker.ubm import train_ubm

    kw = dict(max_iter=2, init="kmeans", random_state=3, chunk_frames=400, reservoir_size=1500)
    local = train_ubm(stores[0], 4, "full", **kw)
    remote = train_ubm(stores[0], 4, "full", backend="dask", scheduler=cluster, **kw)
    _assert_same_gmm(local, remote)


def _speaker_data(store):
    data: dict[str, list] = {}
    for uid, label in store.labels().items():
        if not uid.endswith("u3"):  # u3 of every speaker is kept for testing
            data.setdefault(label, []).append(store.load(uid, mmap=False))
    return data


def test_enroll_dask_equals_local(stores, ubms, cluster):
    from gmmspeech.speaker.map import enroll

    ubm = ubms[0]
    data = _speaker_data(stores[0])
    local = enroll(ubm, data, relevance_factor=16.0, n_jobs=1)
    remote = enroll(ubm, data, relevance_factor=16.0, backend="dask", scheduler=cluster)
    assert list(remote) == list(local) == sorted(data)
    for label in local:
        _assert_same_gmm(local[label], remote[label])
        # MAP moved the means away from the UBM's
        assert np.abs(local[label].means_ - ubm.means_).max() > 1e-3


def test_score_dask_equals_local(stores, ubms, cluster):
    from gmmspeech.speaker.map import enroll
    from gmmspeech.speaker.scoring import score

    ubm = ubms[0]
    store = stores[0]
    models = enroll(ubm, _speaker_data(store))
    tests = [store.load(uid, mmap=False) for uid in store.ids() if uid.endswith("u3")]
    local = score(models, ubm, tests)
    remote = score(models, ubm, tests, backend="dask", scheduler=cluster)
    assert local.shape == (N_SPK, N_SPK)
    np.testing.assert_allclose(remote, local, rtol=RTOL, atol=1e-9)
    # real scores: finite, and models are told apart (tiny UBM: no accuracy claim here)
    assert np.all(np.isfinite(local)) and np.ptp(local, axis=1).min() > 1e-3


def test_ivector_chain_dask_equals_local(stores, ubms, cluster, tmp_path):
    """Baum-Welch statistics, TV training (with a checkpoint, and resumed on the cluster
    from a local checkpoint), i-vector extraction (means and covariances), the extractor's
    ``transform`` and the full-covariance UBM refinement on the cluster give the local
    results."""
    from gmmspeech.backend.extractor import IVectorExtractor
    from gmmspeech.backend.ivector import extract, train_tv
    from gmmspeech.backend.stats import utterance_stats
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.speaker.ubm import full_covariance_ubm

    ubm = ubms[0]
    store = stores[0]
    dask = dict(backend="dask", scheduler=cluster)
    # no cache: the statistics of one run cannot serve the other
    local_st = utterance_stats(ubm, store, cache=False, batch_size=3)
    remote_st = utterance_stats(ubm, store, cache=False, batch_size=3, **dask)
    assert remote_st.ids == local_st.ids
    np.testing.assert_allclose(remote_st.n, local_st.n, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(remote_st.f, local_st.f, rtol=RTOL, atol=1e-7)
    assert isinstance(store, FeatureStore) and len(local_st) == N_SPK * N_UTT
    # every frame of every utterance went into its counts
    n_frames = [store.load(uid, mmap=False).shape[0] for uid in local_st.ids]
    np.testing.assert_allclose(local_st.n.sum(axis=1), n_frames, rtol=1e-6)

    kw = dict(n_iter=3, random_state=0)
    local, hl = train_tv(ubm, local_st.n, local_st.f, 4, n_jobs=1, **kw)
    remote, hr = train_tv(ubm, local_st.n, local_st.f, 4, checkpoint=tmp_path / "tv-dask.npz", **dask, **kw)
    np.testing.assert_allclose(remote.T, local.T, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(remote.offset, local.offset, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hr, hl, rtol=1e-9)
    assert hl[-1] > hl[0]  # EM moved the model
    # one iteration locally with a checkpoint, the rest resumed on the cluster
    ck = tmp_path / "tv-split.npz"
    train_tv(ubm, local_st.n, local_st.f, 4, n_iter=1, checkpoint=ck, random_state=0)
    resumed, hres = train_tv(ubm, local_st.n, local_st.f, 4, checkpoint=ck, resume=True, **dask, **kw)
    np.testing.assert_allclose(resumed.T, local.T, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hres, hl, rtol=1e-9)

    iv_local, cov_local = extract(local, local_st.n, local_st.f, return_cov=True)
    iv_remote, cov_remote = extract(local, local_st.n, local_st.f, return_cov=True, n_tasks=3, **dask)
    np.testing.assert_allclose(iv_remote, iv_local, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov_remote, cov_local, rtol=1e-9, atol=1e-12)
    # an independent check of the posterior: L w = b for the first utterance
    prec = 1.0 / ubm.covariances_
    L = np.eye(4) + np.einsum("k,kdr,kd,kds->rs", local_st.n[0], local.T, prec, local.T)
    b = np.einsum("kdr,kd,kd->r", local.T, prec, local_st.f[0] - local_st.n[0][:, None] * local.offset)
    np.testing.assert_allclose(iv_local[0], np.linalg.solve(L, b), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov_local[0], np.linalg.inv(L), rtol=1e-8, atol=1e-12)

    # the scikit-learn style extractor: fit and transform on the cluster
    ext_l = IVectorExtractor(rank=4, n_iter=2, ubm=ubm, random_state=1).fit(local_st)
    ext_r = IVectorExtractor(rank=4, n_iter=2, ubm=ubm, random_state=1, **dask).fit(local_st)
    np.testing.assert_allclose(ext_r.transform(store), ext_l.transform(store), rtol=1e-6, atol=1e-9)

    fl = full_covariance_ubm(ubm, store, max_iter=1)
    fr = full_covariance_ubm(ubm, store, max_iter=1, **dask)
    _assert_same_gmm(fl, fr)
    # statistics and TV training under the full-covariance UBM
    st_fl = utterance_stats(fl, store, cache=False, batch_size=5)
    st_fr = utterance_stats(fl, store, cache=False, batch_size=5, **dask)
    np.testing.assert_allclose(st_fr.f, st_fl.f, rtol=RTOL, atol=1e-7)
    tl, _ = train_tv(fl, st_fl.n, st_fl.f, 3, n_iter=2, random_state=2)
    tr, _ = train_tv(fl, st_fl.n, st_fl.f, 3, n_iter=2, random_state=2, **dask)
    np.testing.assert_allclose(tr.T, tl.T, rtol=1e-6, atol=1e-9)


def test_train_ubm_cli_dask_equals_local(stores, cluster, tmp_path):
    """``gmmspeech train-ubm --backend dask --scheduler ADDR`` trains the local model."""
    from gmmspeech.mixture.io import load

    store = stores[0].root
    common = ["train-ubm", store, "--components", 8, "--iterations", 3, "--seed", 5,
              "--reservoir", 3000, "--quiet"]
    runs = {}
    for name, extra in (("local", []), ("dask", ["--backend", "dask", "--scheduler", cluster])):
        out = tmp_path / f"{name}.npz"
        res = subprocess.run([sys.executable, "-m", "gmmspeech", *map(str, common), "--out", str(out),
                              *extra], env=_cli_env(), capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
        runs[name] = load(out)
    _assert_same_gmm(runs["local"], runs["dask"])


def _speaker_id_local_and_dask(manifest, cluster, tmp_path, *options) -> dict:
    """``speaker-id`` (u3 of every speaker tested, the rest enrolled, all as background)
    run locally and on the cluster: ``{"local"|"dask": (out dir, {(test, model): score})}``."""
    header, *rows = manifest.read_text().splitlines()
    absolute = [",".join([i, str(manifest.parent / p), lab]) for i, p, lab in (r.split(",") for r in rows)]
    enroll = tmp_path / "enroll.csv"
    test = tmp_path / "test.csv"
    enroll.write_text("\n".join([header] + [r for r in absolute if not r.split(",")[0].endswith("u3")]) + "\n")
    test.write_text("\n".join([header] + [r for r in absolute if r.split(",")[0].endswith("u3")]) + "\n")
    runs = {}
    for name, extra in (("local", []), ("dask", ["--backend", "dask", "--scheduler", cluster])):
        out = tmp_path / name
        res = subprocess.run(
            [sys.executable, "-m", "gmmspeech", "speaker-id", "--background", str(manifest),
             "--enroll", str(enroll), "--test", str(test), "--out", str(out), "--components", "8",
             "--iterations", "3", "--quiet", *options, *extra],
            env=_cli_env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
        with open(out / "scores.tsv", newline="") as fh:
            lines = list(csv.DictReader(fh, dialect="excel-tab"))
        runs[name] = (out, {(r["test_id"], r["model"]): float(r["score"]) for r in lines})
    assert len(runs["local"][1]) == N_SPK * N_SPK
    assert runs["dask"][1].keys() == runs["local"][1].keys()
    return runs


def test_speaker_id_cli_dask_equals_local(manifest, cluster, tmp_path):
    """The whole recipe (features, UBM, enrolment, scoring) on the cluster gives the local
    run's scores."""
    runs = _speaker_id_local_and_dask(manifest, cluster, tmp_path)
    for key, val in runs["local"][1].items():
        assert runs["dask"][1][key] == pytest.approx(val, rel=RTOL, abs=1e-9)


def test_speaker_id_ivector_cli_dask_equals_local(manifest, cluster, tmp_path):
    """``speaker-id --system ivector`` end to end (features, UBM, statistics, TV training,
    extraction, PLDA back-end, scoring) on the cluster gives the local run's scores and
    the same extractor."""
    import json

    from gmmspeech.backend.extractor import load_extractor

    runs = _speaker_id_local_and_dask(manifest, cluster, tmp_path, "--system", "ivector", "--ivector-rank", "4",
                                      "--ivector-iterations", "3", "--seed", "3")
    results = {k: json.loads((out / "results.json").read_text()) for k, (out, _) in runs.items()}
    ext = {k: load_extractor(out / "ivector_extractor.npz") for k, (out, _) in runs.items()}
    assert results["local"]["system"] == results["dask"]["system"] == "ivector"
    assert all(math.isfinite(v) for v in runs["local"][1].values())
    np.testing.assert_allclose(ext["dask"].T_, ext["local"].T_, rtol=1e-5, atol=1e-8)
    for key, val in runs["local"][1].items():
        assert runs["dask"][1][key] == pytest.approx(val, rel=1e-5, abs=1e-7)
    for key in ("accuracy", "eer"):
        assert results["dask"][key] == pytest.approx(results["local"][key], rel=1e-9)


def _sleep_then(seconds: float, value):
    import time

    time.sleep(seconds)
    return value


def test_parallel_map_survives_a_killed_worker(cluster, no_backend_env):
    """A worker process killed (SIGKILL) while it runs a task: Dask reruns the task on the
    other worker (or the restarted one) and the map still returns every result, in order.
    Runs after the other cluster tests: the cluster's nanny restarts the killed worker."""
    import signal
    import threading
    import time

    import cloudpickle

    client = parallel.dask_client(cluster)
    victim = sorted(client.run(os.getpid).values())[0]
    timer = threading.Timer(0.8, os.kill, args=(victim, signal.SIGKILL))
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the workers cannot import this file
    timer.start()
    try:
        items = [(0.4, i) for i in range(10)]
        got = parallel.parallel_map(_sleep_then, items, backend="dask", scheduler=cluster, star=True)
    finally:
        timer.join()
        cloudpickle.unregister_pickle_by_value(module)
    assert got == list(range(10))
    # the killed process is gone and the nanny has started a new one
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = set(client.run(os.getpid).values())
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.2)
    assert victim not in pids and len(pids) == 2


# ------------------------------------------------------------ backend errors are clean


def test_backend_errors_are_gmmspeech_errors(no_backend_env):
    from gmmspeech.errors import GMMSpeechError

    with pytest.raises(parallel.BackendError, match="not supported"):
        parallel.resolve_backend("spark")
    assert issubclass(parallel.BackendError, GMMSpeechError)
    assert issubclass(parallel.BackendError, ValueError)
    with pytest.raises(parallel.BackendError, match="not a Dask scheduler address"):
        parallel.dask_client("no-port-here")


def _closed_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("extra, message", [
    (["--backend", "dask"], "needs a scheduler address"),
    (["--scheduler", "not-an-address"], "not a Dask scheduler address"),
    (["--scheduler", "UNREACHABLE"], "cannot connect to the Dask scheduler"),
])
def test_features_cli_bad_scheduler_is_a_clean_error(manifest, tmp_path, extra, message):
    if "UNREACHABLE" in extra:
        extra = ["--scheduler", f"tcp://127.0.0.1:{_closed_loopback_port()}"]
    env = _cli_env()
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "2s"
    res = subprocess.run([sys.executable, "-m", "gmmspeech", "features", str(manifest), "--out",
                          str(tmp_path / "s"), "--quiet", *extra], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert message in res.stderr
