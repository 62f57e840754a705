"""The one place that knows joblib backends: local processes, threads, or a Dask cluster.

Every parallel step of gmmspeech (feature extraction, UBM E-steps, enrolment, scoring)
goes through :func:`parallel_map`. The backend is chosen by argument, else by the
environment variables ``GMMSPEECH_BACKEND`` and ``GMMSPEECH_SCHEDULER``, else local
processes (loky). With ``backend="dask"`` joblib's Dask backend ships the tasks to the
workers of the ``dask.distributed`` scheduler at ``scheduler`` (an address such as
``tcp://10.0.0.5:8786``); only the task arguments and results travel, so pass paths
and small arrays, not corpora.

Worker processes are limited to one BLAS thread each: with several processes per
machine, one BLAS thread per process is faster than oversubscribing the cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from gmmspeech.errors import GMMSpeechError

BACKEND_ENV = "GMMSPEECH_BACKEND"
SCHEDULER_ENV = "GMMSPEECH_SCHEDULER"
BACKENDS = ("loky", "threading", "sequential", "dask")

_CLIENTS: dict[str, Any] = {}


class BackendError(GMMSpeechError, ValueError):
    """The parallel backend asked for cannot be used: unknown name, no Dask scheduler
    address, or a scheduler that cannot be reached."""


def resolve_backend(backend: str | None = None, scheduler: str | None = None) -> tuple[str, str | None]:
    """Return the ``(backend, scheduler)`` pair in force.

    Arguments win over the environment (``GMMSPEECH_BACKEND``, ``GMMSPEECH_SCHEDULER``);
    the default is ``("loky", None)``. A scheduler address alone implies ``"dask"``.
    """
    backend = backend or os.environ.get(BACKEND_ENV) or None
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if backend is None:
        backend = "dask" if scheduler else "loky"
    backend = backend.lower()
    if backend == "local":
        backend = "loky"
    if backend not in BACKENDS:
        raise BackendError(
            f"backend={backend!r} is not supported; choose one of {', '.join(BACKENDS)} (or 'local')"
        )
    return backend, scheduler


def effective_n_jobs(n_jobs: int | None) -> int:
    """Number of workers for ``n_jobs`` (None or 1: one; -1: all cores; -2: all but one)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:  # counted back from the cores this process may use (affinity, cgroup quota)
        from gmmspeech.threads import available_cores

        return max(1, available_cores() + 1 + n_jobs)
    return int(n_jobs)


def parallelism_record(n_jobs: int | None) -> dict:
    """What a run's ``results.json`` records of its parallelism: ``threads`` inside each process
    (:func:`gmmspeech.threads.default_threads`) and ``jobs`` (worker processes)."""
    from gmmspeech.threads import default_threads

    return {"threads": default_threads(), "jobs": effective_n_jobs(n_jobs)}


def dask_client(scheduler: str | None = None):
    """Return (and cache) a ``dask.distributed.Client`` for ``scheduler``.

    Without an address the current default client is used, if one exists.
    """
    try:
        from dask.distributed import Client, default_client
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "backend='dask' needs the dask extra: pip install 'gmmspeech[dask]'"
        ) from exc
    if scheduler is None:
        try:
            return default_client()
        except ValueError:
            raise BackendError(
                "backend='dask' needs a scheduler address (--scheduler, scheduler=... or "
                f"{SCHEDULER_ENV}) or an existing dask.distributed.Client"
            ) from None
    client = _CLIENTS.get(scheduler)
    if client is None or client.status in ("closed", "closing"):
        from distributed.comm import get_address_host_port

        try:  # check the form first: a Client half-built from a bad address hangs on exit
            get_address_host_port(scheduler)
        except ValueError as exc:
            raise BackendError(
                f"scheduler={scheduler!r} is not a Dask scheduler address like "
                f"tcp://HOST:8786 ({exc})"
            ) from None
        try:
            client = Client(scheduler, set_as_default=False)
        except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
            raise BackendError(
                f"cannot connect to the Dask scheduler at {scheduler!r} ({exc}); check that "
                "`dask scheduler` is running there and that the address is reachable"
            ) from None
        _CLIENTS[scheduler] = client
    return client


@contextmanager
def _backend_context(backend: str, scheduler: str | None, n_workers: int):
    import joblib

    if backend == "dask":
        client = dask_client(scheduler)
        with client.as_current(), joblib.parallel_config(backend="dask"):
            yield -1
    elif backend == "loky":
        with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
            yield n_workers
    else:
        with joblib.parallel_config(backend=backend):
            yield n_workers


def parallel_map(
    func: Callable[..., Any],
    items: Iterable[Any],
    *,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str | None = None,
    total: int | None = None,
    star: bool = False,
    unit: str = "tasks",
) -> list[Any]:
    """Apply ``func`` to every item, in parallel where asked, keeping the input order.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function.
    items : iterable
        Arguments, one per call (a tuple of positional arguments each when ``star``).
    n_jobs : int or None
        Local workers; 1 runs in this process with no joblib overhead (unless the
        backend is ``"dask"``, which always ships work to the cluster).
    backend, scheduler : str or None
        See :func:`resolve_backend`.
    progress : bool
        Show progress on stderr (:func:`gmmspeech.progress.progress_bar`: a bar on a
        terminal, plain periodic lines in a log).
    desc : str or None
        The progress bar's label.
    total : int or None
        Number of items, for the progress bar when ``items`` has no length.
    star : bool
        Call ``func(*item)`` instead of ``func(item)``.
    unit : str
        What the progress counts (``"files"``, ``"speakers"``...).

    Returns
    -------
    list
        ``[func(item) for item in items]`` in input order.
    """
    return list(parallel_imap(func, items, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                              progress=progress, desc=desc, total=total, star=star, unit=unit))


def parallel_imap(
    func: Callable[..., Any],
    items: Iterable[Any],
    *,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str | None = None,
    total: int | None = None,
    star: bool = False,
    unit: str = "tasks",
) -> Iterator[Any]:
    """:func:`parallel_map` as a generator: results one by one, in input order, as they
    complete. A caller that stops early (an interrupt, an error it cannot go past) closes
    the generator, which cancels the tasks not yet started."""
    backend, scheduler = resolve_backend(backend, scheduler)
    if total is None and isinstance(items, Sequence):
        total = len(items)
    call = (lambda it: func(*it)) if star else func
    n_workers = effective_n_jobs(n_jobs)

    bar = None
    if progress:
        from gmmspeech.progress import progress_bar

        bar = progress_bar(total, desc=desc, unit=unit)

    try:
        if backend != "dask" and (n_workers == 1 or backend == "sequential"):
            for it in items:
                res = call(it)
                if bar is not None:
                    bar.update(1)
                yield res
            return

        from joblib import Parallel, delayed

        with _backend_context(backend, scheduler, n_workers) as nj:
            tasks = (delayed(func)(*it) if star else delayed(func)(it) for it in items)
            runner = Parallel(n_jobs=nj, return_as="generator")
            gen = runner(tasks)
            try:
                for res in gen:
                    if bar is not None:
                        bar.update(1)
                    yield res
            finally:
                gen.close()
    finally:
        if bar is not None:
            bar.close()


def blas_single_thread():
    """Context manager limiting BLAS/OpenMP pools to one thread (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)
