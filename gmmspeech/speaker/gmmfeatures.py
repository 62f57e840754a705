"""Features a GMM extracts: Gaussian posteriorgrams and GMM mean supervectors.

* :func:`posteriorgram`: per-frame posteriors of the UBM components (Zhang & Glass 2009;
  Kaldi's ``gmm-global-post-to-feats``), dense, or top-C (the C largest per frame,
  renormalised; :func:`sparse_posteriorgram` returns them as a SciPy CSR matrix),
  optionally as floored log posteriors.
* :func:`posteriorgram_store`: posteriorgrams of every row of a manifest written into a
  :class:`~gmmspeech.corpus.store.FeatureStore` (front end -> UBM posteriors, one task per
  file through the store's parallel build; the store reloads like any other).
* :func:`supervector` / :func:`supervectors`: per utterance, the UBM's means MAP-adapted
  to its frames, each mean scaled by ``sqrt(w_k) Sigma_k^-1/2`` of the UBM and stacked
  (Campbell et al. 2006's GMM-supervector kernel: the inner product of two supervectors
  is the linear KL-divergence kernel); :func:`save_supervectors` writes them as ``.npz``
  (no pickle).

These sit on the speaker floor: they need the mixture models and the front end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "posteriorgram",
    "sparse_posteriorgram",
    "posteriorgram_store",
    "supervector",
    "supervectors",
    "save_supervectors",
    "load_supervectors",
]

_CHUNK = 4096


def _log_posteriors(ubm, X: np.ndarray):
    """Chunks of (first row, log posteriors (rows, K) float64)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (frames, dims), got shape {X.shape}")
    if X.shape[1] != ubm.means_.shape[1]:
        raise ValueError(f"X has {X.shape[1]} dims, the UBM {ubm.means_.shape[1]}")
    for a in range(0, X.shape[0], _CHUNK):
        lp = np.asarray(ubm.weighted_log_prob(X[a : a + _CHUNK]), dtype=np.float64)
        m = lp.max(axis=1, keepdims=True)
        lp -= m + np.log(np.exp(lp - m).sum(axis=1, keepdims=True))
        yield a, lp


def _check_top_c(top_c, K: int) -> int | None:
    if top_c is None or top_c == 0:
        return None
    if isinstance(top_c, bool) or not isinstance(top_c, (int, np.integer)) or top_c < 1:
        raise ValueError(f"top_c must be a positive integer or None, got {top_c!r}")
    return min(int(top_c), K)


def _top(lp: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rows, C) of the C largest log posteriors and their renormalised posteriors."""
    idx = np.argpartition(-lp, C - 1, axis=1)[:, :C] if C < lp.shape[1] else np.tile(np.arange(lp.shape[1]), (lp.shape[0], 1))
    v = np.take_along_axis(lp, idx, axis=1)
    v = np.exp(v - v.max(axis=1, keepdims=True))
    v /= v.sum(axis=1, keepdims=True)
    return idx, v


def posteriorgram(ubm, X: np.ndarray, *, top_c: int | None = None, log: bool = False,
                  floor: float = 1e-10) -> np.ndarray:
    """Per-frame component posteriors ``P(k | x_t)`` of a GMM, (n_frames, K) float32.

    Parameters
    ----------
    ubm : GMM
        A fitted model (any covariance type).
    X : np.ndarray, shape (n_frames, n_features)
    top_c : int, optional
        Keep only the ``top_c`` largest posteriors of each frame, renormalised to sum to
        one; the others are 0 (Gaussian selection). None or 0: dense.
    log : bool
        Return ``log(max(P, floor))`` instead (finite everywhere).
    floor : float
        Floor of the log posteriors, in (0, 1).

    Returns
    -------
    np.ndarray, shape (n_frames, K), float32
        Rows sum to one (before the log).
    """
    K = ubm.means_.shape[0]
    C = _check_top_c(top_c, K)
    if not (0.0 < float(floor) < 1.0):
        raise ValueError(f"floor must be in (0, 1), got {floor!r}")
    X = np.asarray(X)
    out = np.zeros((X.shape[0], K), dtype=np.float32) if X.ndim == 2 else None
    for a, lp in _log_posteriors(ubm, X):
        rows = out[a : a + lp.shape[0]]
        if C is None:
            rows[:] = np.exp(lp)
        else:
            idx, v = _top(lp, C)
            np.put_along_axis(rows, idx, v.astype(np.float32), axis=1)
    if log:
        np.maximum(out, np.float32(floor), out=out)
        np.log(out, out=out)
    return out


def sparse_posteriorgram(ubm, X: np.ndarray, *, top_c: int):
    """Top-C posteriors as a :class:`scipy.sparse.csr_matrix` (n_frames, K) float32,
    ``top_c`` stored values per row (renormalised), as Kaldi's sparse posteriors."""
    import scipy.sparse

    K = ubm.means_.shape[0]
    C = _check_top_c(top_c, K)
    if C is None:
        raise ValueError("top_c must be a positive integer for a sparse posteriorgram")
    X = np.asarray(X)
    cols, vals = [], []
    for _a, lp in _log_posteriors(ubm, X):
        idx, v = _top(lp, C)
        order = np.argsort(idx, axis=1)
        cols.append(np.take_along_axis(idx, order, axis=1))
        vals.append(np.take_along_axis(v, order, axis=1))
    n = X.shape[0]
    indices = np.concatenate(cols).ravel() if cols else np.zeros(0, np.int64)
    data = np.concatenate(vals).ravel().astype(np.float32) if vals else np.zeros(0, np.float32)
    return scipy.sparse.csr_matrix((data, indices, np.arange(n + 1) * C), shape=(n, K))


# --------------------------------------------------------------------------- posteriorgram store
@lru_cache(maxsize=4)
def _ubm(path: str, checksum: str):
    from gmmspeech.mixture import io as mio

    ubm = mio.load(path)
    if mio.model_info(path).get("checksum") != checksum:
        from gmmspeech.errors import ModelFileError

        raise ModelFileError(path, "the UBM file changed since the posteriorgram store was set up")
    return ubm


def _posteriorgram_extractor(path: str, *, config, start, end) -> np.ndarray:
    """Feature-store extractor: front end, then the UBM's posteriorgram (module level: picklable)."""
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.features.extract import extract

    X = extract(path, config=FeatureConfig.from_dict(config.features), start=start, end=end)
    ubm = _ubm(config.ubm_path, config.ubm_checksum)
    return posteriorgram(ubm, X, top_c=config.top_c, log=config.log, floor=config.floor)


def posteriorgram_store(
    ubm_path: str | os.PathLike,
    rows: Iterable[Any],
    out: str | os.PathLike,
    *,
    feature_config=None,
    top_c: int | None = None,
    log: bool = False,
    floor: float = 1e-10,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = True,
):
    """Posteriorgrams of manifest rows under a UBM file, into the feature store ``out``.

    Parameters
    ----------
    ubm_path : path
        A gmmspeech model file (e.g. from ``gmmspeech train-ubm``).
    rows : iterable of Row
        Manifest rows.
    out : path
        Feature store folder (created; a store holds one configuration).
    feature_config : FeatureConfig, optional
        The front end; default the configuration saved in the UBM file (``train-ubm``
        saves it), else the ``speech`` preset. Its dimension must match the UBM's.
    top_c, log, floor : see :func:`posteriorgram`
    n_jobs, backend, scheduler, progress : see :meth:`FeatureStore.build`

    Returns
    -------
    (FeatureStore, BuildReport)
    """
    from gmmspeech.corpus.derived import PosteriorgramConfig
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.mixture import io as mio

    path = os.path.abspath(os.fspath(ubm_path))
    info = mio.model_info(path)
    ubm = _ubm(path, info["checksum"])
    if feature_config is None:
        saved = getattr(ubm, "metadata_", {}).get("feature_config")
        feature_config = FeatureConfig.from_dict(saved) if isinstance(saved, dict) else FeatureConfig.preset("speech")
    K, D = ubm.means_.shape
    if feature_config.n_features != D:
        raise ValueError(f"the front end gives {feature_config.n_features} dims, the UBM {path} "
                         f"has {D}: give the configuration the UBM was trained on")
    C = _check_top_c(top_c, K)
    cfg = PosteriorgramConfig(features=feature_config.to_dict(), ubm_path=path,
                              ubm_checksum=info["checksum"], n_components=int(K), top_c=C,
                              log=bool(log), floor=float(floor))
    store = FeatureStore(out)
    report = store.build(rows, config=cfg, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                         progress=progress, extractor=_posteriorgram_extractor)
    return store, report


# --------------------------------------------------------------------------- supervectors
def _scales(ubm) -> tuple[np.ndarray, np.ndarray | None]:
    """``sqrt(w_k)`` and, for full covariances, the whitening factors (K, D, D)."""
    w = np.sqrt(np.asarray(ubm.weights_, dtype=np.float64))
    if ubm.covariance_type == "full":
        return w, np.asarray(ubm.precisions_cholesky_, dtype=np.float64)
    return w, None


def supervector(model, ubm=None, *, center: bool = False) -> np.ndarray:
    """Stacked means of ``model`` normalised by the UBM: ``sqrt(w_k) Sigma_k^-1/2 mu_k``.

    Parameters
    ----------
    model : GMM
        Usually the UBM MAP-adapted to one utterance (means).
    ubm : GMM, optional
        Gives the weights and covariances of the normalisation (default ``model``'s own).
    center : bool
        Subtract the UBM's means first (then the UBM itself maps to zeros).

    Returns
    -------
    np.ndarray, shape (K * D,), float64
        Component-major (all D values of component 0 first). For diagonal
        covariances ``Sigma^-1/2`` is ``1 / sigma``; for full ones the transpose of the
        Cholesky factor of the precision (the same inner products as the symmetric root).
    """
    ref = model if ubm is None else ubm
    mu = np.asarray(model.means_, dtype=np.float64)
    if center:
        mu = mu - np.asarray(ref.means_, dtype=np.float64)
    w, chol = _scales(ref)
    ct = ref.covariance_type
    if ct == "full":
        z = np.einsum("kdj,kd->kj", chol, mu)
    elif ct == "tied":
        z = mu @ np.asarray(ref.precisions_cholesky_, dtype=np.float64)
    else:
        cov = np.asarray(ref.covariances_, dtype=np.float64)
        if ct == "spherical":
            cov = np.repeat(cov[:, None], mu.shape[1], axis=1)
        z = mu / np.sqrt(cov)
    return (w[:, None] * z).ravel()


def supervectors(ubm, utterances: Sequence[np.ndarray], *, relevance_factor: float = 16.0,
                 center: bool = False) -> np.ndarray:
    """One supervector per utterance: the UBM's means MAP-adapted to its frames
    (:func:`~gmmspeech.speaker.map.map_adapt`, ``adapt="m"``), then :func:`supervector`.

    Returns
    -------
    np.ndarray, shape (n_utterances, K * D), float32
    """
    from gmmspeech.speaker.map import map_adapt

    utterances = list(utterances)
    K, D = ubm.means_.shape
    out = np.empty((len(utterances), K * D), dtype=np.float32)
    for i, X in enumerate(utterances):
        out[i] = supervector(map_adapt(ubm, np.asarray(X), relevance_factor=relevance_factor, adapt="m"),
                             ubm, center=center)
    return out


def save_supervectors(path: str | os.PathLike, ids: Sequence[str], labels: Sequence[str],
                      matrix: np.ndarray, *, metadata: dict | None = None) -> str:
    """Write ``ids``, ``labels`` (unicode arrays), ``supervectors`` (float32) and a JSON
    ``metadata`` string to an ``.npz`` readable with ``allow_pickle=False``."""
    from gmmspeech.atomic import atomic_write

    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(ids) or len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids, {len(labels)} labels and a {matrix.shape} matrix do not match")
    path = os.fspath(path)
    arrays = {"ids": np.array([str(i) for i in ids], dtype=str),
              "labels": np.array([str(v) for v in labels], dtype=str),
              "supervectors": matrix,
              "metadata": np.array(json.dumps(metadata or {}, sort_keys=True))}
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_supervectors(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray, dict]:
    """Inverse of :func:`save_supervectors`: ``(ids, labels, supervectors, metadata)``."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        return (z["ids"].tolist(), z["labels"].tolist(), np.array(z["supervectors"]),
                json.loads(str(z["metadata"])))
