"""Initialisation of mixtures: k-means(++), random responsibilities, random data points.

Each function returns :class:`~gmmspeech.mixture.stats.SufficientStats` (or parameters) from
which the estimator's M-step builds the first parameters, so that floors and degenerate
component handling apply to the initial model exactly as to every later one. The binary
splitting initialisation needs EM between splits and lives in :mod:`gmmspeech.mixture.gmm`.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from gmmspeech.mixture.densities import design_matrix, uncentre_stats
from gmmspeech.mixture.stats import SufficientStats

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data", "split")


def as_generator(random_state) -> np.random.Generator:
    """A numpy ``Generator`` from None, an int, a ``Generator`` or a legacy ``RandomState``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def count_distinct_rows(X: np.ndarray, at_least: int) -> int:
    """Number of distinct rows of ``X`` (stops early once ``at_least`` are seen in a prefix)."""
    x = np.ascontiguousarray(X)
    n = x.shape[0]
    step = max(4 * at_least, 4096)
    start = min(n, step)
    while True:
        view = x[:start].view(np.dtype((np.void, x.dtype.itemsize * x.shape[1])))
        k = np.unique(view).size
        if k >= at_least or start >= n:
            return int(k)
        start = min(n, start * 4)


def _sq_dist(x: np.ndarray, centers: np.ndarray, c_sq: np.ndarray) -> np.ndarray:
    d = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ centers.T) + c_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def kmeans_plusplus(X, n_clusters, rng, sample_weight=None, n_local_trials=None):
    """k-means++ seeding (greedy variant with ``2 + log K`` local trials).

    Returns
    -------
    centers : ndarray (n_clusters, D)
    indices : ndarray (n_clusters,) rows of ``X`` chosen.
    """
    x = np.asarray(X, dtype=np.float64)
    n = x.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    x_sq = np.einsum("ij,ij->i", x, x)
    idx = np.empty(n_clusters, dtype=np.int64)
    idx[0] = rng.choice(n, p=w / w.sum())
    closest = np.maximum(x_sq - 2.0 * x @ x[idx[0]] + x_sq[idx[0]], 0.0)
    pot = float(w @ closest)
    for c in range(1, n_clusters):
        if pot <= 0.0:  # every point coincides with a centre: pick an unused row at random
            unused = np.setdiff1d(np.arange(n), idx[:c])
            idx[c] = rng.choice(unused)
            continue
        p = w * closest
        cand = rng.choice(n, size=n_local_trials, p=p / p.sum())
        d = np.maximum(x_sq[None, :] - 2.0 * (x[cand] @ x.T) + x_sq[cand][:, None], 0.0)
        np.minimum(d, closest[None, :], out=d)
        pots = d @ w
        best = int(np.argmin(pots))
        idx[c] = cand[best]
        closest = d[best]
        pot = float(pots[best])
    return x[idx].copy(), idx


def assign(X, centers, chunk_size=16384):
    """Index of the nearest centre of every row (squared Euclidean), and that distance."""
    x = np.asarray(X, dtype=np.float64)
    c_sq = np.einsum("ij,ij->i", centers, centers)
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0])
    for a in range(0, x.shape[0], chunk_size):
        d = _sq_dist(x[a : a + chunk_size], centers, c_sq)
        labels[a : a + chunk_size] = np.argmin(d, axis=1)
        dist[a : a + chunk_size] = d[np.arange(d.shape[0]), labels[a : a + chunk_size]]
    return labels, dist


def kmeans(X, n_clusters, rng, sample_weight=None, max_iter=10, seed_size=None):
    """k-means++ seeding then Lloyd iterations (stops early when no label changes).

    Seeding runs on a random subset of at most ``seed_size`` rows (default
    ``max(10_000, 40 K)``); Lloyd iterations use every row. Empty clusters are re-seeded at
    the rows farthest from their centre.

    Returns
    -------
    centers : ndarray (K, D), labels : ndarray (N,)
    """
    x = np.asarray(X, dtype=np.float64)
    n = x.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if seed_size is None:
        seed_size = max(10_000, 40 * n_clusters)
    if n > seed_size:
        sub = np.sort(rng.choice(n, size=seed_size, replace=False))
        sub = sub[w[sub] > 0] if np.any(w[sub] > 0) else sub
        centers, _ = kmeans_plusplus(x[sub], n_clusters, rng, w[sub] if np.any(w[sub] > 0) else None)
    else:
        centers, _ = kmeans_plusplus(x, n_clusters, rng, w if w.sum() > 0 else None)
    labels = None
    for _ in range(max_iter):
        new_labels, dist = assign(x, centers)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        onehot = sparse.csr_matrix((w, (np.arange(n), labels)), shape=(n, n_clusters))
        counts = np.asarray(onehot.sum(axis=0)).ravel()
        sums = np.asarray(onehot.T @ x)
        empty = np.flatnonzero(counts <= 0)
        nonempty = counts > 0
        centers[nonempty] = sums[nonempty] / counts[nonempty, None]
        if empty.size:
            far = np.argsort(-dist * w)[: empty.size]
            centers[empty] = x[far]
    return centers, labels


def stats_from_labels(X, labels, n_components, kind, sample_weight=None, chunk_size=8192) -> SufficientStats:
    """Statistics of a hard assignment (every row counts fully for its label)."""
    x = np.asarray(X, dtype=np.float64)
    n = x.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    onehot = sparse.csr_matrix((w, (np.arange(n), labels)), shape=(n, n_components))
    ref = (w @ x) / max(w.sum(), np.finfo(np.float64).tiny)
    g = np.zeros((n_components, (x.shape[1] if kind == "diag" else x.shape[1] * (x.shape[1] + 1) // 2) + x.shape[1] + 1))
    for a in range(0, n, chunk_size):
        z = design_matrix(x[a : a + chunk_size], ref, kind, np.float64)
        g += np.asarray(onehot[a : a + chunk_size].T @ z)
    nk, f, s = uncentre_stats(g, ref, kind)
    return SufficientStats(nk, f, s, 0.0, float(w.sum()), kind)


def stats_from_resp(X, resp, kind, sample_weight=None, chunk_size=8192) -> SufficientStats:
    """Statistics of soft responsibilities ``resp`` (N, K), computed in float64."""
    x = np.asarray(X, dtype=np.float64)
    n = x.shape[0]
    r = np.asarray(resp, dtype=np.float64)
    if sample_weight is not None:
        r = r * np.asarray(sample_weight, dtype=np.float64)[:, None]
    w_tot = float(r.sum())
    ref = (r.sum(axis=1) @ x) / max(w_tot, np.finfo(np.float64).tiny)
    g = 0.0
    for a in range(0, n, chunk_size):
        z = design_matrix(x[a : a + chunk_size], ref, kind, np.float64)
        g = g + r[a : a + chunk_size].T @ z
    nk, f, s = uncentre_stats(np.asarray(g), ref, kind)
    n_frames = float(n if sample_weight is None else np.sum(sample_weight))
    return SufficientStats(nk, f, s, 0.0, n_frames, kind)
