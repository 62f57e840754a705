"""Numba kernels of the hidden Markov model: forward-backward and Viterbi over many sequences.

Imported only on first use (through :func:`gmmspeech.mixture.hmm.hmm_kernels`), so that
importing gmmspeech never loads numba. Everything is in the log domain, in float64; the
per-component log-densities come in as the ``(N, S * M)`` output of one GEMM
(:class:`~gmmspeech.mixture.densities.DensityPlan`), state-major (component ``m`` of state
``j`` is column ``j * M + m``).

End of a sequence: with ``final >= 0`` a path must end in state ``final``; a sequence too
short to reach it (or any sequence whose final state is unreachable) ends in any state
instead, so every sequence keeps a finite likelihood. ``-inf`` transition log-probabilities
(disallowed transitions) are skipped, never subtracted, so no NaN can arise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEG_INF = -np.inf


@njit(cache=True, nogil=True)
def _emissions(lp, a0, T, S, M, logB):  # pragma: no cover - compiled
    """``logB[t, j] = log sum_m exp(lp[a0 + t, j M + m])`` (the state log-densities)."""
    for t in range(T):
        row = a0 + t
        for j in range(S):
            mx = NEG_INF
            for m in range(M):
                v = np.float64(lp[row, j * M + m])
                if v > mx:
                    mx = v
            if mx == NEG_INF or not mx < np.inf:
                logB[t, j] = NEG_INF
            else:
                s = 0.0
                for m in range(M):
                    s += np.exp(np.float64(lp[row, j * M + m]) - mx)
                logB[t, j] = mx + np.log(s)


@njit(cache=True, nogil=True)
def _end_states(last, S, final, ends):  # pragma: no cover - compiled
    """Mark the admissible end states of a sequence whose last forward row is ``last``."""
    if final >= 0 and last[final] > NEG_INF:
        for j in range(S):
            ends[j] = j == final
    else:
        for j in range(S):
            ends[j] = True


@njit(cache=True, nogil=True)
def forward_backward(lp, n_mix, offsets, log_pi, log_A, final, want_post, loglik, trans, start):  # pragma: no cover - compiled
    """Forward(-backward) over the sequences ``offsets[b] : offsets[b + 1]`` of ``lp``.

    Writes ``loglik[b]``. With ``want_post`` also replaces ``lp`` in place by the component
    occupancies ``gamma_t(j) * r_t(j, m)`` and adds the expected transition counts into
    ``trans`` (S, S) and the initial-state occupancies into ``start`` (S,).
    """
    S = log_pi.shape[0]
    M = n_mix
    B = offsets.shape[0] - 1
    tmax = 1
    for b in range(B):
        tmax = max(tmax, offsets[b + 1] - offsets[b])
    logB = np.empty((tmax, S))
    alpha = np.empty((tmax, S))
    beta = np.empty((tmax, S))
    tmp = np.empty(S)
    ends = np.empty(S, dtype=np.bool_)
    for b in range(B):
        a0 = offsets[b]
        T = offsets[b + 1] - a0
        if T <= 0:
            loglik[b] = 0.0
            continue
        _emissions(lp, a0, T, S, M, logB)
        for j in range(S):
            alpha[0, j] = log_pi[j] + logB[0, j]
        for t in range(1, T):
            for j in range(S):
                mx = NEG_INF
                for i in range(S):
                    v = alpha[t - 1, i] + log_A[i, j]
                    tmp[i] = v
                    if v > mx:
                        mx = v
                if mx == NEG_INF or logB[t, j] == NEG_INF:
                    alpha[t, j] = NEG_INF
                else:
                    s = 0.0
                    for i in range(S):
                        if tmp[i] > NEG_INF:
                            s += np.exp(tmp[i] - mx)
                    alpha[t, j] = mx + np.log(s) + logB[t, j]
        _end_states(alpha[T - 1], S, final, ends)
        mx = NEG_INF
        for j in range(S):
            if ends[j] and alpha[T - 1, j] > mx:
                mx = alpha[T - 1, j]
        if mx == NEG_INF:
            ll = NEG_INF
        else:
            s = 0.0
            for j in range(S):
                if ends[j] and alpha[T - 1, j] > NEG_INF:
                    s += np.exp(alpha[T - 1, j] - mx)
            ll = mx + np.log(s)
        loglik[b] = ll
        if not want_post:
            continue
        if ll == NEG_INF:  # no admissible path (only with a user-given model): no occupancy
            for t in range(T):
                for c in range(S * M):
                    lp[a0 + t, c] = 0.0
            continue
        for j in range(S):
            beta[T - 1, j] = 0.0 if ends[j] else NEG_INF
        for t in range(T - 2, -1, -1):
            for i in range(S):
                mx = NEG_INF
                for j in range(S):
                    v = log_A[i, j] + logB[t + 1, j] + beta[t + 1, j]
                    tmp[j] = v
                    if v > mx:
                        mx = v
                if mx == NEG_INF:
                    beta[t, i] = NEG_INF
                else:
                    s = 0.0
                    for j in range(S):
                        if tmp[j] > NEG_INF:
                            s += np.exp(tmp[j] - mx)
                    beta[t, i] = mx + np.log(s)
        for j in range(S):
            g = alpha[0, j] + beta[0, j] - ll
            if g > NEG_INF:
                start[j] += np.exp(g)
        for t in range(T - 1):
            for i in range(S):
                ai = alpha[t, i]
                if ai == NEG_INF:
                    continue
                for j in range(S):
                    v = ai + log_A[i, j] + logB[t + 1, j] + beta[t + 1, j]
                    if v > NEG_INF:
                        trans[i, j] += np.exp(v - ll)
        for t in range(T):
            row = a0 + t
            for j in range(S):
                g = alpha[t, j] + beta[t, j] - ll
                lb = logB[t, j]
                if g == NEG_INF or lb == NEG_INF:
                    for m in range(M):
                        lp[row, j * M + m] = 0.0
                else:
                    for m in range(M):
                        lp[row, j * M + m] = np.exp(g + np.float64(lp[row, j * M + m]) - lb)


@njit(cache=True, nogil=True)
def viterbi(lp, n_mix, offsets, log_pi, log_A, final, path, score):  # pragma: no cover - compiled
    """Most likely state path of every sequence: ``path`` (N,) and its log-probability ``score[b]``."""
    S = log_pi.shape[0]
    M = n_mix
    B = offsets.shape[0] - 1
    tmax = 1
    for b in range(B):
        tmax = max(tmax, offsets[b + 1] - offsets[b])
    logB = np.empty((tmax, S))
    delta = np.empty((tmax, S))
    psi = np.zeros((tmax, S), dtype=np.int64)
    ends = np.empty(S, dtype=np.bool_)
    for b in range(B):
        a0 = offsets[b]
        T = offsets[b + 1] - a0
        if T <= 0:
            score[b] = 0.0
            continue
        _emissions(lp, a0, T, S, M, logB)
        for j in range(S):
            delta[0, j] = log_pi[j] + logB[0, j]
        for t in range(1, T):
            for j in range(S):
                best = NEG_INF
                arg = j
                for i in range(S):
                    v = delta[t - 1, i] + log_A[i, j]
                    if v > best:
                        best = v
                        arg = i
                psi[t, j] = arg
                delta[t, j] = best + logB[t, j] if best > NEG_INF else NEG_INF
        _end_states(delta[T - 1], S, final, ends)
        best = NEG_INF
        arg = 0
        for j in range(S):
            if ends[j] and delta[T - 1, j] > best:
                best = delta[T - 1, j]
                arg = j
        score[b] = best
        path[a0 + T - 1] = arg
        for t in range(T - 1, 0, -1):
            arg = psi[t, arg]
            path[a0 + t - 1] = arg


#: scaled backward variables above this fall back to the log domain (no overflow to inf)
_BETA_LIMIT = 1e250


@njit(cache=True, nogil=True)
def _scaled_pass(T, S, e, log_pi_lin, A, lo_in, hi_out, final, alpha, beta, c, ends, backward):  # pragma: no cover
    """Scaled forward-backward (Rabiner) on linear emissions ``e[t, j] <= 1``.

    Returns ``log z`` (z = mass of the admissible end states in the last scaled forward
    row), or NaN when the scaled recursion under- or overflowed (then the caller redoes
    the sequence in the log domain). Transitions are banded: into ``j`` only from
    ``lo_in[j] <= i <= j``, out of ``i`` only into ``i <= j <= hi_out[i]`` (left-to-right).
    """
    s = 0.0
    for j in range(S):
        v = log_pi_lin[j] * e[0, j]
        alpha[0, j] = v
        s += v
    if not s > 0.0:
        return np.nan
    c[0] = s
    for j in range(S):
        alpha[0, j] /= s
    for t in range(1, T):
        s = 0.0
        for j in range(S):
            acc = 0.0
            for i in range(lo_in[j], j + 1):
                acc += alpha[t - 1, i] * A[i, j]
            v = acc * e[t, j]
            alpha[t, j] = v
            s += v
        if not s > 0.0:
            return np.nan
        c[t] = s
        inv = 1.0 / s
        for j in range(S):
            alpha[t, j] *= inv
    if final >= 0 and alpha[T - 1, final] > 0.0:
        for j in range(S):
            ends[j] = j == final
    elif final >= 0:
        return np.nan  # final state unreached or underflowed: the log domain decides
    else:
        for j in range(S):
            ends[j] = True
    z = 0.0
    for j in range(S):
        if ends[j]:
            z += alpha[T - 1, j]
    if not backward:
        return np.log(z)
    for j in range(S):
        beta[T - 1, j] = 1.0 if ends[j] else 0.0
    for t in range(T - 2, -1, -1):
        inv = 1.0 / c[t + 1]
        for i in range(S):
            acc = 0.0
            for j in range(i, hi_out[i] + 1):
                acc += A[i, j] * e[t + 1, j] * beta[t + 1, j]
            v = acc * inv
            if v > _BETA_LIMIT:
                return np.nan
            beta[t, i] = v
    return np.log(z)


@njit(cache=True, nogil=True)
def e_step_diag(X, offsets, lo, hi, log_const, means, prec, log_pi, log_A, final,
                n, f, s, trans, loglik, want_stats):  # pragma: no cover - compiled
    """The whole diagonal-covariance E-step of sequences ``lo:hi`` in one call.

    ``X`` (N, D) frames (sequence ``b`` is ``X[offsets[b]:offsets[b + 1]]``); the model:
    ``log_const[j, m] = log w_jm - D/2 log 2 pi + 1/2 sum_d log prec_jmd``, ``means`` and
    ``prec`` (S, M, D) in float64. Adds the occupancy-weighted statistics, centred on each
    component's mean (``n`` (S M,), ``f``/``s`` (S M, D): sums of ``g (x - mu)`` and
    ``g (x - mu)**2``), the expected transition counts ``trans`` (S, S), and writes
    ``loglik[b - lo]``. Forward-backward runs scaled in the linear domain (transitions
    banded); a sequence whose scaled recursion under- or overflows is redone in the log
    domain by :func:`forward_backward` (same results, no NaN). Without ``want_stats``
    only the forward pass runs (log-likelihoods; ``n``, ``f``, ``s``, ``trans`` untouched).
    """
    S, M, D = means.shape
    K = S * M
    tmax = 1
    for b in range(lo, hi):
        tmax = max(tmax, offsets[b + 1] - offsets[b])
    lp = np.empty((tmax, K))
    e = np.empty((tmax, S))
    logb = np.empty((tmax, S))
    bmax = np.empty(tmax)
    alpha = np.empty((tmax, S))
    beta = np.empty((tmax, S))
    c = np.empty(tmax)
    ends = np.empty(S, dtype=np.bool_)
    xb = np.empty(D)
    pi_lin = np.exp(log_pi)
    A = np.exp(log_A)
    lo_in = np.empty(S, dtype=np.int64)
    hi_out = np.empty(S, dtype=np.int64)
    for j in range(S):
        lo_in[j] = j
        for i in range(j + 1):
            if log_A[i, j] > NEG_INF:
                lo_in[j] = i
                break
        hi_out[j] = j
        for k in range(S - 1, j - 1, -1):
            if log_A[j, k] > NEG_INF:
                hi_out[j] = k
                break
    one = np.zeros(2, dtype=np.int64)
    for b in range(lo, hi):
        a0 = offsets[b]
        T = offsets[b + 1] - a0
        if T <= 0:
            loglik[b - lo] = 0.0
            continue
        # component log-densities, state log-densities and the scaled emissions
        for t in range(T):
            for d in range(D):
                xb[d] = X[a0 + t, d]
            top = NEG_INF
            for j in range(S):
                mx = NEG_INF
                for m in range(M):
                    q = 0.0
                    for d in range(D):
                        df = xb[d] - means[j, m, d]
                        q += df * df * prec[j, m, d]
                    v = log_const[j, m] - 0.5 * q
                    lp[t, j * M + m] = v
                    if v > mx:
                        mx = v
                if mx == NEG_INF:
                    lb = NEG_INF
                else:
                    acc = 0.0
                    for m in range(M):
                        acc += np.exp(lp[t, j * M + m] - mx)
                    lb = mx + np.log(acc)
                logb[t, j] = lb
                if lb > top:
                    top = lb
            bmax[t] = top
            for j in range(S):
                e[t, j] = np.exp(logb[t, j] - top) if top > NEG_INF else 0.0
        logz = _scaled_pass(T, S, e, pi_lin, A, lo_in, hi_out, final, alpha, beta, c, ends, want_stats)
        if logz == logz and not want_stats:
            ll = logz
            for t in range(T):
                ll += np.log(c[t]) + bmax[t]
            loglik[b - lo] = ll
            continue
        if not want_stats:
            one[1] = T
            ll1 = np.empty(1)
            forward_backward(lp, M, one, log_pi, log_A, final, False, ll1, trans, np.zeros(S))
            loglik[b - lo] = ll1[0]
            continue
        if logz == logz:  # not NaN: the scaled pass held
            ll = logz
            for t in range(T):
                ll += np.log(c[t]) + bmax[t]
            loglik[b - lo] = ll
            iz = np.exp(-logz)
            for t in range(T - 1):
                inv = iz / c[t + 1]
                for i in range(S):
                    ai = alpha[t, i]
                    if ai == 0.0:
                        continue
                    for j in range(i, hi_out[i] + 1):
                        trans[i, j] += ai * A[i, j] * e[t + 1, j] * beta[t + 1, j] * inv
            for t in range(T):
                for j in range(S):
                    g = alpha[t, j] * beta[t, j] * iz
                    if g == 0.0:
                        for m in range(M):
                            lp[t, j * M + m] = 0.0
                        continue
                    lb = logb[t, j]
                    for m in range(M):
                        lp[t, j * M + m] = g * np.exp(lp[t, j * M + m] - lb)
        else:
            one[1] = T
            ll1 = np.empty(1)
            forward_backward(lp, M, one, log_pi, log_A, final, True, ll1, trans, np.zeros(S))
            loglik[b - lo] = ll1[0]
        # occupancy-weighted statistics, centred on each component's mean
        for t in range(T):
            for k in range(K):
                g = lp[t, k]
                if g == 0.0:
                    continue
                j = k // M
                m = k - j * M
                n[k] += g
                for d in range(D):
                    df = X[a0 + t, d] - means[j, m, d]
                    gd = g * df
                    f[k, d] += gd
                    s[k, d] += gd * df
