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
    """``logB[t, j] = log sum_m exp(lp[a0 + t, j M + m])`` (the state log-densities; a NaN or
    ``+inf`` density gives ``-inf``). One Gaussian per state: the density itself."""
    if M == 1:
        for t in range(T):
            row = a0 + t
            for j in range(S):
                v = np.float64(lp[row, j])
                logB[t, j] = v if NEG_INF < v < np.inf else NEG_INF
        return
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
def _column_spans(M, S):  # pragma: no cover - compiled
    """For every column ``j`` of ``M`` the first and last row with a finite entry
    (``hi < lo`` when there is none)."""
    lo = np.zeros(S, dtype=np.int64)
    hi = np.full(S, -1, dtype=np.int64)
    for j in range(S):
        first = True
        for i in range(S):
            if M[i, j] > NEG_INF:
                if first:
                    lo[j] = i
                    first = False
                hi[j] = i
    return lo, hi


@njit(cache=True, nogil=True)
def _log_add(tmp, lo, hi, am, mx):  # pragma: no cover - compiled
    """``log sum_i exp(tmp[i])`` over ``lo..hi`` given its maximum ``mx = tmp[am]`` (finite):
    ``mx + log1p(sum_{i != am} exp(tmp[i] - mx))``, one exponential per term other than the
    maximum, none for ``-inf`` terms. Leaves ``exp(tmp[i] - mx)`` in ``tmp`` (1 at ``am``, 0
    for ``-inf``) and returns ``(log-sum, 1 + sum)``."""
    s = 0.0
    for i in range(lo, hi + 1):
        if i == am:
            continue
        v = tmp[i]
        if v > NEG_INF:
            e = np.exp(v - mx)
            tmp[i] = e
            s += e
        else:
            tmp[i] = 0.0
    tmp[am] = 1.0
    if s == 0.0:  # a single finite term (a first state, a time step with one way in)
        return mx, 1.0
    return mx + np.log1p(s), 1.0 + s


@njit(cache=True, nogil=True)
def forward_backward(lp, n_mix, offsets, log_pi, log_A, final, want_post, loglik, trans, start):  # pragma: no cover - compiled
    """Forward(-backward) over the sequences ``offsets[b] : offsets[b + 1]`` of ``lp``.

    Writes ``loglik[b]``. With ``want_post`` also replaces ``lp`` in place by the component
    occupancies ``gamma_t(j) * r_t(j, m)`` and adds the expected transition counts into
    ``trans`` (S, S) and the initial-state occupancies into ``start`` (S,).

    The forward pass is in the log domain; each log-add-exp costs one exponential per term
    other than the largest and one ``log1p``, and leaves the terms' shares
    ``w_t(i -> j) = exp(alpha_t-1(i) + a_ij - (alpha_t(j) - b_t(j)))``, i.e.
    ``P(s_t-1 = i | s_t = j, x_1..t)``. The backward pass is the smoother over those
    conditional probabilities (no exponentials, nothing to scale: every quantity is a
    probability in [0, 1])::

        gamma_T-1(j) = exp(alpha_T-1(j) - log p(x))          (admissible end states)
        xi_t-1(i, j) = gamma_t(j) w_t(i -> j),   gamma_t-1(i) = sum_j xi_t-1(i, j)

    which is ``exp(alpha + beta - log p(x))`` of the log-domain recursions, term for term; a
    share that underflows is a transition probability below 1e-308 either way.
    """
    S = log_pi.shape[0]
    M = n_mix
    B = offsets.shape[0] - 1
    tmax = 1
    for b in range(B):
        tmax = max(tmax, offsets[b + 1] - offsets[b])
    # for every state j its first and last predecessor i with a finite log_A[i, j]: both
    # recursions visit only those (a left-to-right band)
    lo_in, hi_in = _column_spans(log_A, S)
    width = 1
    for j in range(S):
        width = max(width, hi_in[j] - lo_in[j] + 1)
    logB = np.empty((tmax, S))
    alpha = np.empty((tmax, S))
    gam = np.empty((tmax, S))
    share = np.zeros((tmax, S, width)) if want_post else np.zeros((1, S, width))
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
                lb = logB[t, j]
                mx = NEG_INF
                am = -1
                if lb > NEG_INF:
                    for i in range(lo_in[j], hi_in[j] + 1):
                        v = alpha[t - 1, i] + log_A[i, j]
                        tmp[i] = v
                        if v > mx:
                            mx = v
                            am = i
                if mx == NEG_INF:
                    alpha[t, j] = NEG_INF
                    if want_post:
                        for i in range(width):
                            share[t, j, i] = 0.0
                    continue
                la, tot = _log_add(tmp, lo_in[j], hi_in[j], am, mx)
                alpha[t, j] = la + lb
                if want_post:
                    r = 1.0 / tot
                    for i in range(lo_in[j], hi_in[j] + 1):
                        share[t, j, i - lo_in[j]] = tmp[i] * r
        _end_states(alpha[T - 1], S, final, ends)
        mx = NEG_INF
        am = -1
        for j in range(S):
            tmp[j] = alpha[T - 1, j] if ends[j] else NEG_INF
            if tmp[j] > mx:
                mx = tmp[j]
                am = j
        ll = NEG_INF if mx == NEG_INF else _log_add(tmp, 0, S - 1, am, mx)[0]
        loglik[b] = ll
        if not want_post:
            continue
        if ll == NEG_INF:  # no admissible path (only with a user-given model): no occupancy
            for t in range(T):
                for c in range(S * M):
                    lp[a0 + t, c] = 0.0
            continue
        for j in range(S):
            g = alpha[T - 1, j] - ll
            gam[T - 1, j] = np.exp(g) if ends[j] and g > NEG_INF else 0.0
        for t in range(T - 1, 0, -1):
            for i in range(S):
                gam[t - 1, i] = 0.0
            for j in range(S):
                g = gam[t, j]
                if g == 0.0:
                    continue
                lo = lo_in[j]
                for i in range(lo, hi_in[j] + 1):
                    x = g * share[t, j, i - lo]
                    gam[t - 1, i] += x
                    trans[i, j] += x
        for j in range(S):
            start[j] += gam[0, j]
        for t in range(T):
            row = a0 + t
            for j in range(S):
                g = gam[t, j]
                lb = logB[t, j]
                if g == 0.0 or lb == NEG_INF:
                    for m in range(M):
                        lp[row, j * M + m] = 0.0
                elif M == 1:
                    lp[row, j] = g  # the component is the state
                else:
                    for m in range(M):
                        lp[row, j * M + m] = g * np.exp(np.float64(lp[row, j * M + m]) - lb)


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


@njit(cache=True, nogil=True)
def e_step_diag(X, offsets, lo, hi, log_const, means, prec, log_pi, log_A, final,
                n, f, s, trans, loglik, want_stats):  # pragma: no cover - compiled
    """The whole diagonal-covariance E-step of sequences ``lo:hi`` in one call.

    ``X`` (N, D) frames (sequence ``b`` is ``X[offsets[b]:offsets[b + 1]]``); the model:
    ``log_const[j, m] = log w_jm - D/2 log 2 pi + 1/2 sum_d log prec_jmd``, ``means`` and
    ``prec`` (S, M, D) in float64. Adds the occupancy-weighted statistics, centred on each
    component's mean (``n`` (S M,), ``f``/``s`` (S M, D): sums of ``g (x - mu)`` and
    ``g (x - mu)**2``), the expected transition counts ``trans`` (S, S), and writes
    ``loglik[b - lo]``. Forward-backward is :func:`forward_backward` (log domain, visiting
    only the finite transitions) on one sequence's densities at a time, in a reused buffer.
    Without ``want_stats`` only the forward pass runs (log-likelihoods; ``n``, ``f``, ``s``,
    ``trans`` untouched).
    """
    S, M, D = means.shape
    K = S * M
    tmax = 1
    for b in range(lo, hi):
        tmax = max(tmax, offsets[b + 1] - offsets[b])
    lp = np.empty((tmax, K))
    xT = np.empty((D, tmax))
    q = np.empty(tmax)
    mu = means.reshape(K, D)
    pr = prec.reshape(K, D)
    lc = log_const.reshape(K)
    one = np.zeros(2, dtype=np.int64)
    ll1 = np.empty(1)
    start = np.zeros(S)
    for b in range(lo, hi):
        a0 = offsets[b]
        T = offsets[b + 1] - a0
        if T <= 0:
            loglik[b - lo] = 0.0
            continue
        # weighted component log-densities of the sequence, frames innermost over a
        # transposed copy (independent sums, each over d in order: the numbers of a plain
        # loop over d, vectorised)
        for t in range(T):
            for d in range(D):
                xT[d, t] = X[a0 + t, d]
        for k in range(K):
            for t in range(T):
                q[t] = 0.0
            for d in range(D):
                mkd = mu[k, d]
                pkd = pr[k, d]
                for t in range(T):
                    df = xT[d, t] - mkd
                    q[t] += df * df * pkd
            c = lc[k]
            for t in range(T):
                lp[t, k] = c - 0.5 * q[t]
        # banded log-domain forward(-backward); with want_stats lp becomes the occupancies
        one[1] = T
        forward_backward(lp, M, one, log_pi, log_A, final, want_stats, ll1, trans, start)
        loglik[b - lo] = ll1[0]
        if not want_stats:
            continue
        # occupancy-weighted statistics, centred on each component's mean
        for t in range(T):
            for k in range(K):
                g = lp[t, k]
                if g == 0.0:
                    continue
                n[k] += g
                for d in range(D):
                    df = np.float64(X[a0 + t, d]) - mu[k, d]
                    gd = g * df
                    f[k, d] += gd
                    s[k, d] += gd * df
