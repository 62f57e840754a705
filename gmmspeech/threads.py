"""Threads inside one process: how many, and one scheduler that every parallel kernel shares.

Why not numba's ``prange`` or a multi-threaded BLAS call per chunk
------------------------------------------------------------------
A kernel that opens a parallel region (an OpenMP/TBB team, a BLAS thread pool) for every
chunk of a few hundred frames pays a fork and a join per chunk, and splits the chunk
statically: the join waits for the slowest thread. On an idle machine that costs a little;
on a machine where one core is busy with another process, the thread that shares that core
finishes its half a whole scheduler time slice late at *every* join, and the other threads
spin while they wait, taking CPU from it. Measured on 2 cores (``bench/bench_threads.py``,
K=64 scoring, 50 models): 15-20x slower with two threads than with one, idle or loaded.

So every parallel kernel of gmmspeech runs the same way:

* the work is cut into items whose boundaries do not depend on the thread count (blocks of
  frames, chunks of an utterance), so results are bit-identical for any number of threads;
* :func:`map_items` runs them on one process-wide pool of plain threads (which block, never
  spin); each thread pulls the next item when it is done (dynamic scheduling), so a thread
  slowed down by another process simply takes fewer items, and the caller's thread works
  too;
* inside an item everything is single-threaded: numba kernels compiled without
  ``parallel=True`` (and with ``nogil``), BLAS limited to one thread for the duration of the
  call (:func:`single_thread_blas`). There is one level of parallelism, never two.

How many threads
----------------
:func:`default_threads` is the number of cores this process may run on: its CPU affinity
mask (``taskset``, a batch scheduler's cgroup cpuset), capped by a cgroup CPU quota
(containers, ``docker --cpus``) and by ``GMMSPEECH_THREADS`` when set; never more.
:func:`set_threads` changes the default of the process (the CLI's ``--threads``); a function's
``n_threads`` argument overrides it for that call. ``OMP_NUM_THREADS`` caps the default too:
joblib sets it to 1 in the worker processes of :func:`gmmspeech.parallel.parallel_map`
(the workers already use the cores), and cluster jobs often set it.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager

__all__ = [
    "default_threads",
    "resolve_threads",
    "set_threads",
    "thread_limit",
    "map_items",
    "single_thread_blas",
    "describe_threads",
]

ENV_VAR = "GMMSPEECH_THREADS"
_state: dict = {"default": None}  # set_threads(); None: the cores of the process


def _affinity_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _cgroup_quota(root: str = "/sys/fs/cgroup") -> int | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None."""
    import math

    try:
        with open(os.path.join(root, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and int(period) > 0:
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
            quota = int(f.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def _env_threads() -> int | None:
    v = os.environ.get(ENV_VAR)
    if v is None or not v.strip():
        return None
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"{ENV_VAR}={v!r} is not a positive integer") from None
    if n < 1:
        raise ValueError(f"{ENV_VAR}={v!r} is not a positive integer")
    return n


def _omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a cap: joblib's worker processes get it (1 in the workers of
    :func:`gmmspeech.parallel.parallel_map`), and cluster jobs often set it."""
    v = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        n = int(v)
    except ValueError:
        return None
    return n if n >= 1 else None


def available_cores() -> int:
    """Cores this process may use: its affinity mask capped by a cgroup CPU quota."""
    n = _affinity_cores()
    q = _cgroup_quota()
    return min(n, q) if q else n


def default_threads() -> int:
    """Threads a kernel uses when not told: :func:`set_threads`'s value, else
    ``GMMSPEECH_THREADS``, else :func:`available_cores` capped by ``OMP_NUM_THREADS``
    (1 inside parallel_map's worker processes); never more than the cores available."""
    cores = available_cores()
    if _state["default"] is not None:
        return min(_state["default"], cores)
    env = _env_threads()
    if env is not None:
        return min(env, cores)
    omp = _omp_threads()
    return min(cores, omp) if omp else cores


def resolve_threads(n_threads: int | None) -> int:
    """``n_threads`` as a positive int (None: :func:`default_threads`).

    An explicit count is honoured (a thread count above the cores only costs memory with
    dynamic scheduling); it must be a positive integer.
    """
    if n_threads is None:
        return default_threads()
    try:
        n = int(n_threads)
    except (TypeError, ValueError):
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}") from None
    if n < 1 or n != n_threads:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return n


def set_threads(n_threads: int | None) -> int:
    """Set the process's default thread count (None: back to the cores available).

    Returns the thread count now in force.
    """
    _state["default"] = None if n_threads is None else resolve_threads(n_threads)
    return default_threads()


@contextmanager
def thread_limit(n_threads: int | None):
    """Within the block, kernels default to ``n_threads`` threads (restored afterwards;
    None changes nothing)."""
    prev = _state["default"]
    if n_threads is not None:
        _state["default"] = resolve_threads(n_threads)
    try:
        yield default_threads()
    finally:
        _state["default"] = prev


def describe_threads(n_threads: int | None = None, *, via: str | None = None) -> str:
    """One line for logs: ``threads: 2 (affinity 2 cores)``; ``via`` names what set the count
    (``"--threads"``)."""
    n = resolve_threads(n_threads)
    why = [via] if via else []
    aff = _affinity_cores()
    why.append(f"affinity {aff} core{'s' if aff != 1 else ''}")
    q = _cgroup_quota()
    if q:
        why.append(f"cgroup quota {q}")
    if n_threads is None and _state["default"] is None and _env_threads() is not None:
        why.append(f"{ENV_VAR}={_env_threads()}")
    elif n_threads is None and _state["default"] is None and _omp_threads() is not None:
        why.append(f"OMP_NUM_THREADS={_omp_threads()}")
    return f"threads: {n} ({', '.join(why)})"


# ----------------------------------------------------------------------------- BLAS
_blas_lock = threading.Lock()
_blas_state: dict = {"controller": None, "depth": 0, "saved": None}


def _blas_controller():
    st = _blas_state
    if st["controller"] is None:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS before threadpoolctl looks)
        from threadpoolctl import ThreadpoolController

        st["controller"] = ThreadpoolController()
    return st["controller"]


@contextmanager
def single_thread_blas():
    """Run the block's matrix products on one BLAS thread.

    Reference-counted, so nested and concurrent uses (threads of :func:`map_items`, several
    user threads) restore the previous limit exactly once, when the last one leaves.
    """
    with _blas_lock:
        st = _blas_state
        if st["depth"] == 0:
            st["saved"] = _blas_controller().limit(limits=1, user_api="blas")
        st["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            st["depth"] -= 1
            if st["depth"] == 0:
                st["saved"].restore_original_limits()
                st["saved"] = None


# ----------------------------------------------------------------------------- scheduler
_POOL: dict = {"pid": None, "pool": None, "size": 0}
_POOL_LOCK = threading.Lock()
_local = threading.local()


def _pool(size: int):
    """The process-wide pool with at least ``size`` threads (re-created after a fork)."""
    from concurrent.futures import ThreadPoolExecutor

    with _POOL_LOCK:
        pid = os.getpid()
        if _POOL["pid"] != pid or _POOL["size"] < size:
            old = _POOL["pool"] if _POOL["pid"] == pid else None
            _POOL.update(pid=pid, size=size,
                         pool=ThreadPoolExecutor(size, thread_name_prefix="gmmspeech"))
            if old is not None:
                old.shutdown(wait=False)
        return _POOL["pool"]


def in_worker_thread() -> bool:
    """True inside an item run by :func:`map_items` (nested calls run serially)."""
    return getattr(_local, "depth", 0) > 0


def map_items(fn, items, *, n_threads: int | None = None, on_done=None) -> list:
    """``[fn(item) for item in items]`` on ``n_threads`` threads, dynamically scheduled.

    Each thread (the caller's included) takes the next item when it finishes one, so the
    load spreads itself over threads that run at different speeds. Results come back in the
    order of ``items``; the items' boundaries, not the threads, fix every floating-point
    operation, so the output does not depend on ``n_threads``. BLAS runs on one thread
    meanwhile. Called from inside an item, runs serially (one level of threads).

    Parameters
    ----------
    fn : callable
        Must release the GIL for most of its time (numpy, nogil numba kernels) to gain.
    items : sequence
    n_threads : int or None
        None: :func:`default_threads`.
    on_done : callable or None
        Called (under a lock, from any thread) after every finished item: progress bars.

    Raises
    ------
    The exception of the first failing item (in item order among those that failed); the
    other threads stop taking items.
    """
    items = list(items)
    n = len(items)
    t = min(resolve_threads(n_threads), n)
    done_lock = threading.Lock()

    def finished():
        if on_done is not None:
            with done_lock:
                on_done()

    if t <= 1 or in_worker_thread():
        out = []
        with single_thread_blas():
            for it in items:
                out.append(fn(it))
                finished()
        return out

    results: list = [None] * n
    counter = itertools.count()
    errors: list = []

    def runner():
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            while not errors:
                i = next(counter)  # atomic under the GIL
                if i >= n:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    errors.append((i, e))
                    return
                finished()
        finally:
            _local.depth -= 1

    with single_thread_blas():
        pool = _pool(t - 1)
        futures = [pool.submit(runner) for _ in range(t - 1)]
        try:
            runner()
        finally:
            for f in futures:
                f.result()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results
