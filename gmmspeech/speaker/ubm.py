"""Universal background model (UBM) training over a corpus that need not fit in memory.

:func:`train_ubm` streams the frames of a feature store, a manifest or a list of
arrays in chunks, and never holds the corpus in memory:

1. **Reservoir.** One pass draws a uniform random sample of at most
   ``reservoir_size`` frames (every frame gets a random key derived from the seed and
   its chunk; the frames with the smallest keys are kept), independent of ``n_jobs``.
2. **Initialisation** on the reservoir: binary splitting (``init="split"``: one
   Gaussian, then every component split in two along its standard deviation, with a
   few EM iterations after each split, as HTK's HHEd/Kaldi's ``gmm-global-init``) or
   k-means (``init="kmeans"``).
3. **EM over the corpus.** Each iteration's E-step runs over the chunks in parallel
   (:func:`gmmspeech.parallel.parallel_map`: workers receive a store path and
   utterance ids, or small arrays, read the features where they are stored and return
   :class:`~gmmspeech.mixture.stats.SufficientStats`); the statistics are summed in
   chunk order, so the result does not depend on the number of workers. Optional frame
   subsampling (``subsample=s`` keeps every s-th frame from a random offset per
   utterance and iteration) and top-C Gaussian selection (only the C best components
   of each frame receive a posterior), as in Kaldi's ``gmm-global-acc-stats``.
4. **Checkpoints.** After every iteration the model is written atomically with
   :func:`gmmspeech.mixture.io.save` to ``checkpoint``, with the training state in the
   file's metadata (iteration, seed, log-likelihood history, a fingerprint of the data
   and the settings); ``resume=True`` continues from it and reaches the same model as an
   uninterrupted run: every random choice is derived from ``(seed, iteration, chunk)``,
   never from global state.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmmspeech.errors import GMMSpeechError
from gmmspeech.progress import format_duration, stage

__all__ = ["train_ubm", "full_covariance_ubm", "diag_to_full", "UBMCheckpointError",
           "checkpoint_iteration"]

_STATE_VERSION = 1


class UBMCheckpointError(GMMSpeechError, ValueError):
    """A checkpoint cannot be resumed (missing, inconsistent, or from other data/settings)."""

    def __init__(self, path: str, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------- data sources
@dataclass(frozen=True)
class _Chunk:
    """One unit of E-step work: store root + ids, or a tuple of small arrays."""

    index: int
    store_root: str | None = None
    ids: tuple[str, ...] = ()
    arrays: tuple[np.ndarray, ...] = ()
    n_frames: int = 0
    # absolute .npy paths of ``ids``, resolved once when planning: a worker reads them
    # directly instead of re-reading the store's index for every task
    files: tuple[str, ...] = ()


def _chunk_arrays(chunk: _Chunk) -> Iterable[tuple[str, np.ndarray]]:
    if chunk.store_root is not None and chunk.files:
        for utt, path in zip(chunk.ids, chunk.files, strict=True):
            try:
                x = np.load(path, allow_pickle=False)
            except (FileNotFoundError, ValueError, OSError) as exc:
                raise ValueError(
                    f"feature store {chunk.store_root}: cannot read {path} (id {utt!r}): {exc}"
                ) from exc
            yield utt, x
    elif chunk.store_root is not None:
        from gmmspeech.corpus.store import FeatureStore

        store = FeatureStore(chunk.store_root)
        for utt in chunk.ids:
            yield utt, store.load(utt, mmap=True)
    else:
        for i, x in enumerate(chunk.arrays):
            yield f"array {chunk.index}:{i}", x


def _check_frames(x: Any, where: str, dims: int | None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D (frames, dims) array, got shape {a.shape}")
    if dims is not None and a.shape[1] != dims:
        raise ValueError(f"{where}: has {a.shape[1]} dims but the first array has {dims}")
    if a.shape[0] and not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: contains NaN or infinite values")
    return a


def _plan_store(store, chunk_frames: int) -> tuple[list[_Chunk], int, int]:
    ids = list(store.ids())
    if not ids:
        raise ValueError(f"feature store {store.root} holds no utterances")
    chunks: list[_Chunk] = []
    cur: list[str] = []
    cur_n = 0
    total = 0
    for utt in ids:
        n = int(store.n_frames(utt))
        if n == 0:
            continue
        cur.append(utt)
        cur_n += n
        total += n
        if cur_n >= chunk_frames:
            chunks.append(_Chunk(len(chunks), store.root, tuple(cur), (), cur_n,
                                 tuple(store.file(u) for u in cur)))
            cur, cur_n = [], 0
    if cur:
        chunks.append(_Chunk(len(chunks), store.root, tuple(cur), (), cur_n,
                             tuple(store.file(u) for u in cur)))
    dims = store.dims
    if dims is None:
        dims = int(store.load(ids[0]).shape[1])
    return chunks, total, int(dims)


def _plan_arrays(arrays: Sequence[Any], chunk_frames: int) -> tuple[list[_Chunk], int, int]:
    chunks: list[_Chunk] = []
    cur: list[np.ndarray] = []
    cur_n = 0
    total = 0
    dims = None
    for i, x in enumerate(arrays):
        a = _check_frames(x, f"source[{i}]", dims)
        dims = a.shape[1] if dims is None else dims
        if a.shape[0] == 0:
            continue
        cur.append(a)
        cur_n += a.shape[0]
        total += a.shape[0]
        if cur_n >= chunk_frames:
            chunks.append(_Chunk(len(chunks), None, (), tuple(cur), cur_n))
            cur, cur_n = [], 0
    if cur:
        chunks.append(_Chunk(len(chunks), None, (), tuple(cur), cur_n))
    if total == 0:
        raise ValueError("source holds no frames")
    return chunks, total, int(dims)


def _open_source(source, *, config, data_root, features_dir, n_jobs, backend, scheduler,
                 progress, chunk_frames):
    """Return ``(chunks, n_frames, dims, cleanup_dir)`` for any supported source."""
    from gmmspeech.corpus.store import FeatureStore

    if isinstance(source, FeatureStore):
        return (*_plan_store(source, chunk_frames), None)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            store = FeatureStore(path)
            return (*_plan_store(store, chunk_frames), None)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such manifest or feature store")
        from gmmspeech.corpus.manifest import read_manifest
        from gmmspeech.features.config import FeatureConfig

        if config is None:
            config = FeatureConfig.preset("speech")
        elif isinstance(config, str):
            config = FeatureConfig.preset(config)
        rows = read_manifest(path, data_root=data_root)
        cleanup = None
        if features_dir is None:
            cleanup = tempfile.mkdtemp(prefix="gmmspeech-ubm-")
            features_dir = cleanup
        store = FeatureStore(features_dir)
        report = store.build(rows, config=config, n_jobs=n_jobs, backend=backend,
                             scheduler=scheduler, progress=progress)
        if report.failed and progress:
            import sys

            print(f"train_ubm: {len(report.failed)} file(s) of {path} skipped (see "
                  f"{store.errors_path})", file=sys.stderr)
        if not len(store):
            raise ValueError(f"{path}: no file of the manifest gave features")
        return (*_plan_store(store, chunk_frames), cleanup)
    if isinstance(source, np.ndarray):
        return (*_plan_arrays([source], chunk_frames), None)
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, FeatureStore) for s in source):
        chunks, total, dims = [], 0, None
        for st in source:
            c, n, d = _plan_store(st, chunk_frames)
            if dims is not None and d != dims:
                raise ValueError(f"feature store {st.root} has {d} dims, the first store has {dims}")
            dims = d
            total += n
            chunks.extend(_Chunk(len(chunks) + i, ch.store_root, ch.ids, (), ch.n_frames, ch.files)
                          for i, ch in enumerate(c))
        return chunks, total, dims, None
    if isinstance(source, Iterable):
        seq = source if isinstance(source, Sequence) else list(source)
        return (*_plan_arrays(seq, chunk_frames), None)
    raise TypeError(
        "source must be a FeatureStore, a feature-store folder, a manifest path or a list "
        f"of (frames, dims) arrays, got {type(source).__name__}"
    )


# --------------------------------------------------------------------------- workers
def _utt_rng(seed: int, stage: int, chunk: int, utt: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage, chunk, utt])


def _reservoir_task(chunk: _Chunk, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` frames of the chunk with the smallest random keys, and their keys."""
    keys, frames = [], []
    for j, (where, x) in enumerate(_chunk_arrays(chunk)):
        a = _check_frames(x, where, None)
        if a.shape[0] == 0:
            continue
        keys.append(_utt_rng(seed, 0, chunk.index, j).random(a.shape[0]))
        frames.append(np.asarray(a, dtype=np.float32))
    if not keys:
        return np.zeros(0), np.zeros((0, 0), np.float32)
    k = np.concatenate(keys)
    f = np.concatenate(frames)
    if k.size > size:
        keep = np.argpartition(k, size - 1)[:size]
        k, f = k[keep], f[keep]
    return k, f


def _estep_task(model, chunk: _Chunk, seed: int, iteration: int, subsample: int,
                top_c: int | None):
    total = None
    for j, (where, x) in enumerate(_chunk_arrays(chunk)):
        a = _check_frames(x, where, None)
        if a.shape[0] == 0:
            continue
        if subsample > 1:
            off = int(_utt_rng(seed, iteration, chunk.index, j).integers(subsample))
            a = a[off::subsample]
            if a.shape[0] == 0:
                continue
        st = model.accumulate(a, top_c=top_c)
        total = st if total is None else total + st
    return total


# --------------------------------------------------------------------------- initialisation
_INITS = ("split", "kmeans", "k-means++", "random_from_data")


def _initialise(reservoir, n_components, covariance_type, init, seed, gmm_kwargs, *,
                progress=False):
    from gmmspeech.mixture.gmm import GMM

    if reservoir.shape[0] < n_components:
        raise ValueError(
            f"the source has {reservoir.shape[0]} frames; need at least n_components={n_components}"
        )
    g = GMM(n_components, covariance_type=covariance_type, init_params=init,
            random_state=seed, **gmm_kwargs)
    return g.initialize(reservoir, progress=progress, desc="UBM initialisation")


# --------------------------------------------------------------------------- checkpoints
def _fingerprint(chunks: list[_Chunk], n_frames: int, dims: int) -> str:
    h = hashlib.sha256()
    h.update(f"{n_frames}:{dims}:{len(chunks)}".encode())
    for c in chunks:
        h.update(f"|{c.index}:{c.n_frames}:".encode())
        h.update(",".join(c.ids).encode())
    return h.hexdigest()[:16]


def _write_checkpoint(checkpoint: str, model, state: dict) -> None:
    """One atomic model file holding the parameters and the training state."""
    from gmmspeech.mixture import io as mio

    mio.save(model, checkpoint, metadata={"ubm_training": state})


def checkpoint_iteration(checkpoint: str | os.PathLike) -> int | None:
    """The last finished EM iteration recorded in a UBM checkpoint (None if unreadable)."""
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio

    try:
        state = mio.load_metadata(checkpoint).get("ubm_training")
    except (ModelFileError, OSError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("iteration"), int):
        return None
    return int(state["iteration"])


def _read_checkpoint(checkpoint: str, expect: dict):
    from gmmspeech.mixture import io as mio

    if not os.path.isfile(checkpoint):
        return None
    model = mio.load(checkpoint)
    state = getattr(model, "metadata_", {}).get("ubm_training")
    if not isinstance(state, dict) or "iteration" not in state:
        raise UBMCheckpointError(checkpoint, "not a UBM training checkpoint (no training state)")
    for key, val in expect.items():
        if state.get(key) != val:
            raise UBMCheckpointError(
                checkpoint,
                f"was written with {key}={state.get(key)!r}, this run has {key}={val!r}; "
                "use the same data and settings, or restart (discarding the checkpoint)",
            )
    return model, state


# --------------------------------------------------------------------------- main entry
def train_ubm(
    source,
    n_components: int,
    covariance_type: str = "diag",
    *,
    max_iter: int = 10,
    init: str = "split",
    reservoir_size: int = 500_000,
    subsample: int = 1,
    top_c: int | None = None,
    random_state: int | None = None,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    restart: bool = False,
    progress: bool = False,
    config=None,
    data_root: str | os.PathLike | None = None,
    features_dir: str | os.PathLike | None = None,
    chunk_frames: int = 200_000,
    tol: float | None = None,
    reg_covar: float = 1e-6,
    **gmm_kwargs,
):
    """Train a universal background model by streaming EM.

    Parameters
    ----------
    source : FeatureStore, list of FeatureStores, str or list of arrays
        A :class:`~gmmspeech.corpus.store.FeatureStore` (or its folder, or several
        stores pooled), a manifest path
        (features are extracted with ``config`` into ``features_dir``, or into a
        temporary store removed afterwards), or a sequence of (frames, dims) arrays.
    n_components : int
    covariance_type : {"diag", "full"}
    max_iter : int
        EM iterations over the whole corpus (after initialisation).
    init : {"split", "kmeans", "k-means++", "random_from_data"}
        Initialisation on the reservoir sample (binary splitting by default); see
        :class:`~gmmspeech.mixture.gmm.GMM` ``init_params``.
    reservoir_size : int
        At most this many frames, drawn uniformly, for the initialisation.
    subsample : int
        Use every ``subsample``-th frame in each E-step (offset random per utterance
        and iteration).
    top_c : int, optional
        Gaussian selection: only the ``top_c`` best components of each frame get a
        posterior in the E-step.
    random_state : int, optional
        Seed of every random choice; ``None`` draws one (saved in the checkpoint).
    n_jobs, backend, scheduler
        Parallel E-steps (see :func:`gmmspeech.parallel.parallel_map`).
    checkpoint : path, optional
        Model file written atomically after every iteration (training state in its metadata).
    resume : bool
        Continue from ``checkpoint`` if it exists (same data and settings required); when
        it does not exist, training starts fresh.
    restart : bool
        Discard an existing ``checkpoint`` and start over. An existing checkpoint is never
        discarded silently: without ``resume`` or ``restart`` it is an error
        (:class:`UBMCheckpointError`).
    progress : bool
        Progress bar with the log-likelihood per frame of each iteration.
    config : FeatureConfig or preset name, optional
        Feature configuration for a manifest source (default preset "speech").
    data_root : path, optional
        Root for relative paths of a manifest source.
    features_dir : path, optional
        Keep the features of a manifest source in this store.
    chunk_frames : int
        Frames per E-step task (about; utterances are not split).
    tol : float, optional
        Stop early when the average log-likelihood gains less than ``tol`` per frame.
    reg_covar : float
    **gmm_kwargs
        Further :class:`~gmmspeech.mixture.gmm.GMM` options (e.g. ``var_floor_rel``).

    Returns
    -------
    GMM
        The fitted UBM, with ``history_`` (average log-likelihood per EM iteration,
        measured in the E-step of that iteration), ``n_iter_`` and ``converged_``.
    """
    if covariance_type not in ("diag", "full"):
        raise ValueError(
            f"Invalid value for 'covariance_type': {covariance_type!r}. "
            "'covariance_type' should be in ['diag', 'full']"
        )
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(
            f"Invalid value for 'n_components': {n_components!r}. Estimation requires at least one component"
        )
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"Invalid value for 'max_iter': {max_iter!r}. It must be >= 0")
    if int(subsample) < 1:
        raise ValueError(f"subsample must be >= 1, got {subsample}")
    if top_c is not None and int(top_c) < 1:
        raise ValueError(f"top_c must be >= 1, got {top_c}")
    if int(reservoir_size) < 1:
        raise ValueError(f"reservoir_size must be >= 1, got {reservoir_size}")
    if init not in _INITS:
        raise ValueError(f"init={init!r} is not supported; choose one of {', '.join(_INITS)}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path>")
    if resume and restart:
        raise ValueError("resume=True and restart=True exclude each other")
    if checkpoint is not None and not (resume or restart):
        ck = os.fspath(checkpoint)
        if os.path.exists(ck):
            done = checkpoint_iteration(ck)
            what = ("" if done is None else f" (an interrupted run, after EM iteration {done})")
            raise UBMCheckpointError(ck, f"a checkpoint exists{what}; pass resume=True to "
                                         "continue it or restart=True to discard it")
    gmm_kwargs = dict(gmm_kwargs, reg_covar=reg_covar)

    from gmmspeech.parallel import parallel_map

    chunks, n_frames, dims, cleanup = _open_source(
        source, config=config, data_root=data_root,
        features_dir=None if features_dir is None else os.fspath(features_dir),
        n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=progress,
        chunk_frames=int(chunk_frames),
    )
    if progress:
        stage(f"UBM: {n_frames:,} frames of {dims} dims in {len(chunks)} chunks "
              f"({n_frames / 360000:.2f} h at 10 ms frames); {int(n_components)} "
              f"{covariance_type} components, at most {int(max_iter)} EM iterations")
    try:
        ckpt = None if checkpoint is None else os.fspath(checkpoint)
        expect = {
            "version": _STATE_VERSION,
            "data": _fingerprint(chunks, n_frames, dims),
            "n_components": int(n_components),
            "covariance_type": covariance_type,
            "init": init,
            "reservoir_size": int(reservoir_size),
            "subsample": int(subsample),
            "top_c": None if top_c is None else int(top_c),
        }
        if random_state is not None:
            expect["seed"] = int(random_state)
        if restart and ckpt and os.path.exists(ckpt):
            os.unlink(ckpt)
        loaded = _read_checkpoint(ckpt, expect) if (resume and ckpt) else None

        if loaded is not None:
            model, state = loaded
            seed = int(state["seed"])
            start = int(state["iteration"])
            history = [float(v) for v in state["history"]]
            if progress:
                stage(f"UBM: resumed from {ckpt} after iteration {start}")
        else:
            seed = (int(random_state) if random_state is not None
                    else int(np.random.SeedSequence().entropy % (2**63)))
            # pass 0: reservoir sample for the initialisation
            # merged batch by batch: at most reservoir_size + one batch of chunks in memory
            from gmmspeech.parallel import effective_n_jobs

            batch = max(1, 2 * effective_n_jobs(n_jobs))
            keys = np.zeros(0)
            frames = None
            R = int(reservoir_size)
            for b0 in range(0, len(chunks), batch):
                parts = parallel_map(
                    _reservoir_task, [(c, seed, R) for c in chunks[b0:b0 + batch]],
                    n_jobs=n_jobs, backend=backend, scheduler=scheduler, star=True,
                )
                ks = [keys] + [p[0] for p in parts if p[0].size]
                fs = ([frames] if frames is not None else []) + [p[1] for p in parts if p[0].size]
                del parts
                keys = np.concatenate(ks)
                frames = np.concatenate(fs)
                del ks, fs
                if keys.size > R:
                    keep = np.sort(np.argpartition(keys, R - 1)[:R])
                    keys, frames = keys[keep], frames[keep]
            if progress:
                t_init = time.monotonic()
                stage(f"UBM: initialising {int(n_components)} components ({init}) from a "
                      f"sample of {frames.shape[0]:,} frames")
            model = _initialise(frames, int(n_components), covariance_type, init, seed, gmm_kwargs,
                                progress=progress)
            if progress:
                stage(f"UBM: initialised in {format_duration(time.monotonic() - t_init)}")
            del frames, keys
            start, history = 0, []
            if ckpt:
                _write_checkpoint(ckpt, model, dict(expect, seed=seed, iteration=0, history=[]))

        bar = None
        if progress:
            from gmmspeech.progress import progress_bar

            bar = progress_bar(int(max_iter), initial=min(start, int(max_iter)), desc="UBM EM",
                               unit="iter", leave=True)
        converged = False
        try:
            for it in range(start + 1, int(max_iter) + 1):
                parts = parallel_map(
                    _estep_task,
                    [(model, c, seed, it, int(subsample), top_c) for c in chunks],
                    n_jobs=n_jobs, backend=backend, scheduler=scheduler, star=True,
                )
                stats = None
                for p in parts:  # fixed order: identical for any n_jobs
                    if p is not None:
                        stats = p if stats is None else stats + p
                if stats is None or stats.n_frames <= 0:
                    raise ValueError("the E-step saw no frames")
                history.append(stats.loglik / stats.n_frames)
                model.m_step(stats)
                if ckpt:
                    _write_checkpoint(ckpt, model, dict(expect, seed=seed, iteration=it,
                                                        history=history))
                if bar is not None:
                    bar.set_postfix(loglik=f"{history[-1]:.4f}")
                    bar.update(1)
                if tol is not None and len(history) > 1 and abs(history[-1] - history[-2]) < tol:
                    converged = True
                    break
        finally:
            if bar is not None:
                bar.close()
        model.history_ = list(history)
        model.n_iter_ = len(history)
        model.converged_ = converged
        model.lower_bound_ = history[-1] if history else -np.inf
        model.ubm_seed_ = seed
        model.n_frames_ = n_frames
        return model
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


# --------------------------------------------------------------------------- diag -> full
def diag_to_full(ubm):
    """A full-covariance copy of a diagonal UBM (Kaldi's ``gmm-global-to-fgmm``): same
    weights and means, the variances on the diagonals."""
    from gmmspeech.mixture.gmm import GMM

    if ubm.covariance_type == "full":
        return ubm
    if ubm.covariance_type not in ("diag", "spherical"):
        raise ValueError(f"diag_to_full expects a diagonal UBM, got covariance_type={ubm.covariance_type!r}")
    k, d = np.asarray(ubm.means_).shape
    var = np.asarray(ubm.covariances_, dtype=np.float64)
    if var.ndim == 1:
        var = np.repeat(var[:, None], d, axis=1)
    cov = np.zeros((k, d, d))
    idx = np.arange(d)
    cov[:, idx, idx] = var
    return GMM.from_params(ubm.weights_, ubm.means_, cov, covariance_type="full",
                           reg_covar=getattr(ubm, "reg_covar", 1e-6))


def full_covariance_ubm(ubm, source, *, max_iter: int = 3, random_state: int | None = 0,
                        n_jobs: int | None = 1, backend: str | None = None,
                        scheduler: str | None = None, progress: bool = False,
                        chunk_frames: int = 200_000):
    """A full-covariance UBM from a diagonal one: :func:`diag_to_full`, then ``max_iter``
    full-covariance EM iterations over ``source`` (as Kaldi's ``train_full_ubm.sh``).

    ``source`` is any source :func:`train_ubm` takes except a manifest (a FeatureStore,
    several stores, or arrays); E-steps run in parallel over chunks, summed in chunk order.
    """
    from gmmspeech.parallel import parallel_map

    model = diag_to_full(ubm)
    chunks, _n_frames, dims, cleanup = _open_source(
        source, config=None, data_root=None, features_dir=None, n_jobs=n_jobs, backend=backend,
        scheduler=scheduler, progress=progress, chunk_frames=int(chunk_frames))
    if dims != model.means_.shape[1]:
        raise ValueError(f"the source has {dims} dims, the UBM {model.means_.shape[1]}")
    seed = 0 if random_state is None else int(random_state)
    history = []
    try:
        for it in range(1, int(max_iter) + 1):
            parts = parallel_map(_estep_task, [(model, c, seed, it, 1, None) for c in chunks],
                                 n_jobs=n_jobs, backend=backend, scheduler=scheduler, star=True,
                                 progress=progress, desc=f"full-covariance UBM EM {it}")
            stats = None
            for p in parts:
                if p is not None:
                    stats = p if stats is None else stats + p
            if stats is None or stats.n_frames <= 0:
                raise ValueError("the E-step saw no frames")
            history.append(stats.loglik / stats.n_frames)
            model.m_step(stats)
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    model.history_ = list(getattr(ubm, "history_", [])) + history
    model.n_iter_ = len(model.history_)
    model.lower_bound_ = history[-1] if history else getattr(ubm, "lower_bound_", -np.inf)
    return model
