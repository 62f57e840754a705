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
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

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


@njit(parallel=True, fastmath=True, cache=True)
def block_logsumexp(P, offsets, Lu, use_lu, K, out):
    """``out[n, m] = logsumexp_k(P[n, m*K + k] + offsets[m*K + k] (+ Lu[n, k]))``."""
    N = P.shape[0]
    M = P.shape[1] // K
    n_blocks = (N + 15) // 16
    for blk in prange(n_blocks):
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


@njit(parallel=True, fastmath=True, cache=True)
def topc_scores(X, X2, Lu, C, dB, dA, dG, shared, out_models, out_ubm):
    """Top-C scoring of M models on N frames.

    ``Lu`` (N, K) are the UBM's weighted log-densities; for each frame its C best
    components are selected and every model m is evaluated on them as
    ``Lu[n, k] + dG[m, k] + x . dB[m, k] (+ x**2 . dA[m, k] unless shared)`` (the
    difference of the model's and the UBM's weighted log-density of component k).
    ``out_ubm[n]`` is the UBM's top-C log-likelihood, ``out_models[n, m]`` the models'.
    """
    N, D = X.shape
    K = Lu.shape[1]
    M = dB.shape[0]
    for n in prange(N):
        idx = np.empty(C, np.int64)
        val = np.empty(C, np.float32)
        for c in range(C):
            val[c] = -np.inf
            idx[c] = 0
        for k in range(K):
            v = Lu[n, k]
            if v > val[C - 1]:
                j = C - 1
                while j > 0 and val[j - 1] < v:
                    val[j] = val[j - 1]
                    idx[j] = idx[j - 1]
                    j -= 1
                val[j] = v
                idx[j] = k
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
