"""Scale-out on Dask: every parallel step gives the local backend's results on a cluster.

One ``dask.distributed.LocalCluster`` (two worker processes, one thread each, loopback
only, no dashboard) is started for the whole module and closed after it. Functions
shipped to the workers are importable ones (stdlib, numpy, gmmspeech), never test-local
closures: the workers cannot import this test module.
"""

from __future__ import annotations

import math
import operator
import os

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
