"""numba kernels of the scoring hot loops (compiled on first use, cached on disk).

The expensive part of GMM scoring is not the matrix product but the exponentials of
the log-sum-exp and the gathering of selected components. These kernels fuse them:

* :func:`block_logsumexp` adds per-component offsets (and, for models sharing the UBM's
  variances, the UBM's per-frame quadratic term) to the product of a chunk of frames
  with all models' parameters, and reduces each model's block of components with a
  log-sum-exp whose exponential is a vectorisable polynomial (relative error < 3e-7,
  far below the float32 rounding of the inputs).
* :func:`topc_scores` picks the C best UBM components of every frame and evaluates each
  model on those C components only (``C * M * D`` multiply-adds per frame).

Every kernel is single-threaded and releases the GIL: the threads come from
:func:`gmmspeech.threads.map_items` over chunks (one parallel level, dynamically
scheduled; see :mod:`gmmspeech.threads` for why not ``prange``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)


@njit(fastmath=True, cache=True, inline="always")
def _exp_poly(t):
    # 2**t for t <= 0 in float32: t = r + f, |f| <= 0.5, 2**f by a degree-6 Taylor series
    # of exp(f ln 2); 2**r by building the float's exponent bits (done by the caller).
    f = t * _LN2
    return np.float32(1.0) + f * (np.float32(1.0) + f * (np.float32(0.5) + f * (
        np.float32(1.0 / 6.0) + f * (np.float32(1.0 / 24.0) + f * (
            np.float32(1.0 / 120.0) + f * np.float32(1.0 / 720.0))))))


@njit(fastmath=True, cache=True, inline="always")
def _select_top(row, C, idx, val):
    """The C largest values of ``row`` in descending order (ties: the lower index first),
    by insertion into a sorted list of C: one pass, no allocation."""
    for c in range(C):
        val[c] = -np.inf
        idx[c] = 0
    for k in range(row.shape[0]):
        v = row[k]
        if v > val[C - 1]:
            j = C - 1
            while j > 0 and val[j - 1] < v:
                val[j] = val[j - 1]
                idx[j] = idx[j - 1]
                j -= 1
            val[j] = v
            idx[j] = k


@njit(fastmath=True, cache=True)
def _lse_block(vals, K, ib, fb, pb):
    mx = vals[0]
    for k in range(1, K):
        if vals[k] > mx:
            mx = vals[k]
    if not np.isfinite(mx):
        return mx
    for k in range(K):
        t = (vals[k] - mx) * _LOG2E
        if t < np.float32(-126.0):
            t = np.float32(-126.0)
        r = np.floor(t + np.float32(0.5))
        pb[k] = _exp_poly(t - r)
        ib[k] = (np.int32(r) + np.int32(127)) << 23
    s = np.float32(0.0)
    for k in range(K):
        s += pb[k] * fb[k]
    return mx + np.log(s)


@njit(nogil=True, fastmath=True, cache=True)
def block_logsumexp(P, offsets, Lu, use_lu, K, out):
    """``out[n, m] = logsumexp_k(P[n, m*K + k] + offsets[m*K + k] (+ Lu[n, k]))``."""
    N = P.shape[0]
    M = P.shape[1] // K
    n_blocks = (N + 15) // 16
    for blk in range(n_blocks):
        ib = np.empty(K, np.int32)
        fb = ib.view(np.float32)
        pb = np.empty(K, np.float32)
        vals = np.empty(K, np.float32)
        for n in range(blk * 16, min(N, blk * 16 + 16)):
            for m in range(M):
                b = m * K
                if use_lu:
                    for k in range(K):
                        vals[k] = P[n, b + k] + offsets[b + k] + Lu[n, k]
                else:
                    for k in range(K):
                        vals[k] = P[n, b + k] + offsets[b + k]
                out[n, m] = _lse_block(vals, K, ib, fb, pb)


@njit(nogil=True, fastmath=True, cache=True)
def topc_scores(X, X2, Lu, C, dB, dA, dG, shared, out_models, out_ubm):
    """Top-C scoring of M models on N frames.

    ``Lu`` (N, K) are the UBM's weighted log-densities; for each frame its C best
    components are selected and every model m is evaluated on them as
    ``Lu[n, k] + dG[m, k] + x . dB[m, k] (+ x**2 . dA[m, k] unless shared)`` (the
    difference of the model's and the UBM's weighted log-density of component k).
    ``out_ubm[n]`` is the UBM's top-C log-likelihood, ``out_models[n, m]`` the models'.
    """
    N, D = X.shape
    M = dB.shape[0]
    for n in range(N):
        idx = np.empty(C, np.int64)
        val = np.empty(C, np.float32)
        _select_top(Lu[n], C, idx, val)
        mx = val[0]
        s = 0.0
        for c in range(C):
            s += np.exp(np.float64(val[c] - mx))
        out_ubm[n] = mx + np.log(s)
        w = np.empty(C, np.float32)
        for m in range(M):
            best = np.float32(-np.inf)
            for c in range(C):
                k = idx[c]
                acc = val[c] + dG[m, k]
                if shared:
                    for d in range(D):
                        acc += X[n, d] * dB[m, k, d]
                else:
                    for d in range(D):
                        acc += X[n, d] * dB[m, k, d] + X2[n, d] * dA[m, k, d]
                w[c] = acc
                if acc > best:
                    best = acc
            s = 0.0
            for c in range(C):
                s += np.exp(np.float64(w[c] - best))
            out_models[n, m] = best + np.log(s)


@njit(nogil=True, fastmath=True, cache=True)
def prune_mask(X, Lu, dB, dG, cU, gmax, nS, margin, mask):
    """Components that can matter for any model, frame by frame (means-only models).

    Model m's weighted log-density of component k on frame x is
    ``Lu[n, k] + dG[m, k] + x . dB[m, k]``. Writing ``x . dB = (x - mu_k) . dB +
    mu_k . dB`` and bounding the first term by Cauchy-Schwarz in the metric of the
    component's precision gives ``U[n, k] = Lu[n, k] + gmax[k] + r_k nS[k]``, with
    ``gmax[k] = max_m dG[m, k] + mu_k . dB[m, k]``, ``nS[k] = max_m |dB[m, k] sigma_k|``
    and the Mahalanobis distance ``r_k = sqrt(2 (cU[k] - Lu[n, k]))`` (``cU`` the
    component's log weight and normaliser). Every model's log-likelihood is at least
    its density of the UBM's best component, so with ``lower`` the smallest of those
    over the models, a component with ``U[n, k] < lower - margin`` adds less than
    ``exp(-margin)`` relative to every model's likelihood: ``mask[n, k]`` is False.
    Returns the number of kept (frame, component) pairs.
    """
    N, D = X.shape
    K = Lu.shape[1]
    M = dB.shape[0]
    kept = 0
    for n in range(N):
        kb = 0
        for k in range(1, K):
            if Lu[n, k] > Lu[n, kb]:
                kb = k
        lo = np.float32(np.inf)
        for m in range(M):
            acc = Lu[n, kb] + dG[m, kb]
            for d in range(D):
                acc += X[n, d] * dB[m, kb, d]
            lo = min(lo, acc)
        thr = lo - margin
        c = 0
        for k in range(K):
            r2 = max(np.float32(2.0) * (cU[k] - Lu[n, k]), np.float32(0.0))
            keep = Lu[n, k] + gmax[k] + np.sqrt(r2) * nS[k] >= thr
            mask[n, k] = keep
            c += keep
        kept += c
    return kept


@njit(nogil=True, fastmath=True, cache=True)
def pruned_scores(X, Lu, mask, dBt, dGt, out_models, out_ubm):
    """Exact scores of means-only models on the components kept by :func:`prune_mask`.

    ``dBt`` (K, D, M) and ``dGt`` (K, M) are the models' parameters laid out with the
    model axis last, so that every multiply-add runs over a contiguous row of models.
    ``out_models[n, m]`` is the log-sum-exp over kept k of
    ``Lu[n, k] + dGt[k, m] + x . dBt[k, :, m]``; ``out_ubm[n]`` the UBM's
    log-likelihood over all K components (not computed when ``out_ubm`` is empty).
    """
    N, D = X.shape
    K = Lu.shape[1]
    M = dBt.shape[2]
    n_blocks = (N + 15) // 16
    for blk in range(n_blocks):
        idx = np.empty(K, np.int64)
        acc = np.empty((K, M), np.float32)
        best = np.empty(M, np.float32)
        tot = np.empty(M, np.float32)
        for n in range(blk * 16, min(N, blk * 16 + 16)):
            if out_ubm.shape[0] > 0:
                mx = Lu[n, 0]
                for k in range(1, K):
                    mx = max(mx, Lu[n, k])
                s = 0.0
                for k in range(K):
                    s += np.exp(np.float64(Lu[n, k] - mx))
                out_ubm[n] = mx + np.log(s)
            C = 0
            for k in range(K):
                if mask[n, k]:
                    idx[C] = k
                    C += 1
            for m in range(M):
                best[m] = -np.inf
                tot[m] = 0.0
            for c in range(C):
                k = idx[c]
                lu = Lu[n, k]
                for m in range(M):
                    acc[c, m] = lu + dGt[k, m]
                for d in range(D):
                    xd = X[n, d]
                    for m in range(M):
                        acc[c, m] += xd * dBt[k, d, m]
                for m in range(M):
                    best[m] = max(best[m], acc[c, m])
            for c in range(C):
                for m in range(M):
                    tot[m] += np.exp(acc[c, m] - best[m])
            for m in range(M):
                if best[m] == -np.inf:
                    out_models[n, m] = best[m]
                else:
                    out_models[n, m] = best[m] + np.log(tot[m])


@njit(nogil=True, fastmath=True, cache=True)
def topc_mask(Lu, C, mask, out_ubm):
    """Mark the C best UBM components of every frame (ties: the lower index) and
    return the UBM's log-likelihood over them in ``out_ubm``."""
    N, K = Lu.shape
    for n in range(N):
        idx = np.empty(C, np.int64)
        val = np.empty(C, np.float32)
        _select_top(Lu[n], C, idx, val)
        for k in range(K):
            mask[n, k] = False
        for c in range(C):
            mask[n, idx[c]] = True
        mx = val[0]
        s = 0.0
        for c in range(C):
            s += np.exp(np.float64(val[c] - mx))
        out_ubm[n] = mx + np.log(s)
