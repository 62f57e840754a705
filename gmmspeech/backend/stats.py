"""Per-utterance Baum-Welch statistics for the i-vector extractor.

For an utterance ``X`` and a UBM with means ``m_c`` the extractor needs, per component,

* the zeroth-order statistics ``N_c = sum_t gamma_tc`` and
* the centred first-order statistics ``F_c = sum_t gamma_tc (x_t - m_c)``,

with ``gamma_tc`` the UBM posteriors (optionally only the top-C components of each frame).
They come from the same E-step as UBM training (:meth:`gmmspeech.mixture.gmm.GMM.accumulate`,
GEMM form, float64 sums), one utterance at a time, in parallel over utterances through
:func:`gmmspeech.parallel.parallel_map`.

:func:`utterance_stats` reads the features of a :class:`~gmmspeech.corpus.store.FeatureStore`
(or takes arrays) and caches the statistics beside the features, in
``<store>/bw/<key>/`` where ``key`` identifies the UBM and ``top_c``: a second run (or the
next EM iteration of a pipeline) reads them back instead of re-running the E-step.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BaumWelchStats", "utterance_stats", "baum_welch", "ubm_key", "check_stats"]


@dataclass(eq=False)
class BaumWelchStats:
    """Zeroth and centred first-order statistics of a set of utterances.

    Attributes
    ----------
    ids : list of str
        Utterance ids (row order).
    n : ndarray (U, K) float64
        Soft counts ``N_c`` per utterance and component.
    f : ndarray (U, K, D) float64
        First-order statistics centred on the UBM means, ``F_c - N_c m_c``.
    """

    ids: list
    n: np.ndarray
    f: np.ndarray

    def __post_init__(self):
        self.n = np.asarray(self.n, dtype=np.float64)
        self.f = np.asarray(self.f, dtype=np.float64)
        self.ids = [str(i) for i in self.ids]
        if self.n.ndim != 2 or self.f.ndim != 3 or self.f.shape[:2] != self.n.shape:
            raise ValueError(
                f"BaumWelchStats: n must be (U, K) and f (U, K, D); got n {self.n.shape}, f {self.f.shape}"
            )
        if len(self.ids) != self.n.shape[0]:
            raise ValueError(f"BaumWelchStats: {len(self.ids)} ids for {self.n.shape[0]} rows of statistics")
        check_stats(self.n, self.f, "BaumWelchStats")

    def __len__(self) -> int:
        return self.n.shape[0]

    @property
    def n_components(self) -> int:
        return self.n.shape[1]

    @property
    def n_features(self) -> int:
        return self.f.shape[2]

    def subset(self, rows) -> BaumWelchStats:
        """The statistics of some rows (indices or a boolean mask)."""
        idx = np.arange(len(self))[rows]
        return BaumWelchStats([self.ids[i] for i in idx], self.n[idx], self.f[idx])

    def pooled(self, groups: Sequence) -> BaumWelchStats:
        """Statistics summed per group label (rows with the same label pooled), in first-seen order."""
        order: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            order.setdefault(str(g), []).append(i)
        n = np.stack([self.n[r].sum(axis=0) for r in order.values()])
        f = np.stack([self.f[r].sum(axis=0) for r in order.values()])
        return BaumWelchStats(list(order), n, f)

    @classmethod
    def concat(cls, parts: Sequence[BaumWelchStats]) -> BaumWelchStats:
        parts = list(parts)
        if not parts:
            raise ValueError("BaumWelchStats.concat needs at least one part")
        return cls([i for p in parts for i in p.ids], np.concatenate([p.n for p in parts]),
                   np.concatenate([p.f for p in parts]))


def check_stats(n: np.ndarray, f: np.ndarray, name: str = "statistics") -> None:
    """ValueError naming ``name`` unless the counts ``n`` are finite and >= 0 and the
    first-order statistics ``f`` finite (a NaN would otherwise spread into every i-vector
    and the whole total-variability matrix)."""
    if not np.all(np.isfinite(n)):
        raise ValueError(f"{name}: the zeroth-order statistics n hold NaN or infinite values")
    if np.any(n < 0):
        raise ValueError(f"{name}: the zeroth-order statistics n hold negative counts")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name}: the first-order statistics f hold NaN or infinite values")


def baum_welch(ubm, X, *, top_c: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(N (K,), F (K, D))`` of one utterance: soft counts and first-order statistics
    centred on the UBM means, from the UBM's E-step (:meth:`GMM.accumulate`)."""
    st = ubm.accumulate(np.asarray(X), top_c=top_c)
    return st.n, st.f - st.n[:, None] * np.asarray(ubm.means_, dtype=np.float64)


def ubm_key(ubm, top_c: int | None = None) -> str:
    """16 hex characters identifying a UBM's parameters and ``top_c`` (the cache key)."""
    h = hashlib.sha256()
    for a in (ubm.weights_, ubm.means_, ubm.covariances_):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    h.update(f"{ubm.covariance_type}:{top_c}".encode())
    return h.hexdigest()[:16]


def _stats_task(ubm, items, top_c, cache_dir):
    """Statistics of some utterances; ``items`` are ``(id, features .npy path or array)``.

    The UBM's density plan is built once per task and every utterance runs through the
    E-step of :meth:`GMM.accumulate` (``_accumulate_plan``: GEMM form, float64 sums,
    single-threaded BLAS, the UBM's ``n_threads``), so the statistics are those
    ``accumulate`` gives, without its per-call validation and set-up. With ``cache_dir`` each utterance's ``[N | F]`` (K, 1 + D) float64
    array is read from, or written (atomically) to, ``cache_dir/<file name of the id>.npy``.
    """
    from gmmspeech.atomic import atomic_write
    from gmmspeech.mixture.gmm import _accumulate_plan
    from gmmspeech.threads import single_thread_blas

    k, d = ubm.means_.shape
    out_n = np.empty((len(items), k))
    out_f = np.empty((len(items), k, d))
    means = np.asarray(ubm.means_, dtype=np.float64)
    plan = None
    with single_thread_blas():  # once per task (the kernel's own uses nest for free)
        for row, (utt, src) in enumerate(items):
            cached = None
            path = None
            if cache_dir is not None:
                from gmmspeech.corpus.store import file_name

                path = os.path.join(cache_dir, file_name(utt).replace("data/", "", 1) + ".npy")
                if os.path.isfile(path):
                    try:
                        a = np.load(path, allow_pickle=False)
                        if a.shape == (k, 1 + d) and a.dtype == np.float64 and np.all(np.isfinite(a)):
                            cached = a
                    except (ValueError, OSError):
                        cached = None
            if cached is not None:
                out_n[row] = cached[:, 0]
                out_f[row] = cached[:, 1:]
                continue
            x = np.load(src, mmap_mode="r", allow_pickle=False) if isinstance(src, str) else src
            x = np.asarray(x)
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"utterance {utt!r}: expected (frames, {d}) features, got shape {x.shape}")
            if x.shape[0] == 0:
                raise ValueError(f"utterance {utt!r}: no frames")
            if x.dtype not in (np.float32, np.float64):
                x = x.astype(np.float64)
            if not np.all(np.isfinite(x)):
                raise ValueError(f"utterance {utt!r}: the features contain NaN or infinity")
            if plan is None:
                plan = ubm._plan()
            st = _accumulate_plan(plan, x, None, top_c, ubm.chunk_size, getattr(ubm, "n_threads", None))
            out_n[row] = st.n
            np.subtract(st.f, st.n[:, None] * means, out=out_f[row])
            if path is not None:
                a = np.concatenate([out_n[row][:, None], out_f[row]], axis=1)
                atomic_write(path, lambda fh, a=a: np.save(fh, a), sync=False)
    return out_n, out_f


def _batches(items, size):
    """Lists of ``size`` consecutive items of an iterable (the last may be shorter)."""
    batch = []
    for it in items:
        batch.append(it)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def utterance_stats(
    ubm,
    source,
    *,
    ids: Sequence[str] | None = None,
    top_c: int | None = None,
    cache: bool = True,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    batch_size: int = 32,
) -> BaumWelchStats:
    """Per-utterance Baum-Welch statistics of a feature store or of arrays.

    Parameters
    ----------
    ubm : GMM
        The universal background model (diagonal or full covariance).
    source : FeatureStore, sequence of (frames, D) arrays, or an iterator of them
        With a store, ``ids`` selects utterances (default: all, in store order); workers
        read the features where they are stored, one utterance at a time. With arrays,
        ``ids`` names them (default ``"0", "1", ...``). An iterator (a generator reading
        or making utterances) is consumed ``batch_size`` utterances at a time, so only
        the statistics, never all the frames, are held in memory (with ``ids`` given, the
        statistics are filled in place as they come; without, the parts are joined at
        the end).
    top_c : int, optional
        Only the ``top_c`` best components of each frame receive a posterior.
    cache : bool
        For a store: keep the statistics in ``<store>/bw/<ubm_key>/`` and reuse them.
    n_jobs, backend, scheduler
        Parallel over utterances (see :func:`gmmspeech.parallel.parallel_map`).
    batch_size : int
        Utterances per task.

    Returns
    -------
    BaumWelchStats
    """
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.parallel import parallel_imap

    if top_c is not None and (not isinstance(top_c, (int, np.integer)) or top_c < 1):
        raise ValueError(f"top_c must be None or a positive integer, got {top_c!r}")
    if not hasattr(ubm, "means_"):
        raise ValueError("utterance_stats needs a fitted UBM (a GMM with means_)")
    cache_dir = None
    named = None
    bs = max(1, int(batch_size))
    if isinstance(source, FeatureStore):
        ids = list(source.ids()) if ids is None else [str(i) for i in ids]
        items = [(i, source.file(i)) for i in ids]
        if cache:
            cache_dir = os.path.join(source.root, "bw", ubm_key(ubm, top_c))
    elif isinstance(source, Sequence) or hasattr(source, "__len__"):
        arrays = source if isinstance(source, Sequence) else list(source)
        ids = [str(i) for i in range(len(arrays))] if ids is None else [str(i) for i in ids]
        if len(ids) != len(arrays):
            raise ValueError(f"{len(ids)} ids for {len(arrays)} arrays")
        items = list(zip(ids, arrays))
    else:  # an iterator: streamed, a batch of utterances at a time
        items = None
        named = None if ids is None else [str(i) for i in ids]
        ids = []

        def stream():
            for j, x in enumerate(source):
                uid = str(j) if named is None else named[j] if j < len(named) else None
                if uid is None:
                    raise ValueError(f"{len(named)} ids for more than {len(named)} arrays")
                ids.append(uid)
                yield uid, x
            if named is not None and len(ids) != len(named):
                raise ValueError(f"{len(named)} ids for {len(ids)} arrays")

        tasks = ((ubm, batch, top_c, None) for batch in _batches(stream(), bs))
    if items is not None:
        if not items:
            raise ValueError("utterance_stats: no utterances")
        tasks = [(ubm, items[a:a + bs], top_c, cache_dir) for a in range(0, len(items), bs)]
    k, d = np.asarray(ubm.means_).shape
    parts = parallel_imap(_stats_task, tasks, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                          star=True, progress=progress, desc="Baum-Welch stats")
    size = len(items) if items is not None else None if named is None else len(named)
    if size:  # known size: filled in place, no second copy of the statistics
        n_all = np.empty((size, k))
        f_all = np.empty((size, k, d))
        row = 0
        for pn, pf in parts:
            n_all[row:row + pn.shape[0]] = pn
            f_all[row:row + pn.shape[0]] = pf
            row += pn.shape[0]
        return BaumWelchStats(ids, n_all, f_all)
    parts = list(parts)
    if not parts:
        raise ValueError("utterance_stats: no utterances")
    return BaumWelchStats(ids, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
