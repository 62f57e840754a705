"""Benchmark: total-variability training and i-vector extraction.

K=256 diagonal UBM, 60 dims, R=200, 2,000 utterances of 300 frames generated from a
total-variability model (each utterance's mean supervector ``m + T w``), a block of
utterances at a time (vectorised: one GEMM for the blocks' supervectors, frames drawn by
inverse-CDF sampling) and streamed straight into the Baum-Welch statistics, so the frames
are never all in memory. Statistics are computed once (gmmspeech's E-step kernel, timed
separately), then:

* **TV training**: seconds per EM iteration (E-step over every utterance, M-step,
  minimum divergence) -- gmmspeech (batched: ``T_c^T Sigma_c^-1 T_c`` precomputed as packed
  upper triangles by SYRK, the precisions of a batch as one GEMM, each factored and
  inverted in place by LAPACK ``potrf``/``potri``, accumulators updated in place by
  ``dgemm``) against a direct numpy transcription of the textbook per-utterance loop in the
  structure of the MSR Identity Toolbox's ``train_tv_space`` (per utterance
  ``L = I + T^T (Sigma^-1 N) T`` over the whole supervector, ``inv(L)``, accumulators updated
  per utterance), both from the same ``T`` (after one iteration, so the offset is non-zero).
* **Extraction**: utterances per second, gmmspeech ``extract`` against the toolbox's
  ``extract_ivector`` structure (per utterance ``L``, then ``L \\ b``).

The peer costs about 1.2 GFLOP per utterance for ``L`` alone, so it runs on the first
``--peer-utterances`` utterances only and its time per utterance is scaled to all of them
(its loop does the same work for every utterance; the output says so). The equality checks
cover exactly those utterances: our EM step on the same subset against the peer's ``T``,
and our i-vectors of those utterances against the peer's. Both sides run in the same
process with the same BLAS thread limit (``--threads``, default 1; printed). Times are
wall-clock and process CPU seconds (on a shared machine the CPU-time ratio is the fairer
one; both are printed). Memory: peak of numpy/Python allocations during each step
(tracemalloc) and the process's peak resident set.

    python bench/bench_ivector.py                        # the full benchmark
    python bench/bench_ivector.py --utterances 400       # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np


def _ubm_and_tv(K, D, R, seed):
    """A random diagonal UBM and the total-variability matrix the data is drawn from."""
    from gmmspeech import GMM

    r = np.random.default_rng(seed)
    w = r.dirichlet(np.full(K, 2.0))
    mu = r.normal(0.0, 1.0, (K, D))
    var = r.uniform(0.2, 1.0, (K, D))
    ubm = GMM.from_params(w, mu, var)
    t_true = r.normal(0.0, 0.02, (K, D, R)) * np.sqrt(var)[:, :, None]
    return ubm, t_true


def _utterances(ubm, t_true, n_utt, n_frames, seed, *, block=100, clock=None):
    """Generate ``n_utt`` float32 utterances, ``block`` at a time (a generator).

    Utterance ``u`` has mean supervector ``m + T w_u``, ``w_u ~ N(0, I)``; each frame picks
    a component by the UBM weights and adds Gaussian noise with its variances. ``clock``
    (a one-element list) accumulates the seconds spent generating."""
    K, D, R = t_true.shape
    rng = np.random.default_rng(seed + 1)
    t_flat = t_true.reshape(K * D, R)
    mu = np.asarray(ubm.means_, dtype=np.float64)
    sd = np.sqrt(np.asarray(ubm.covariances_, dtype=np.float64)).astype(np.float32)
    cdf = np.cumsum(ubm.weights_)
    for a in range(0, n_utt, block):
        t0 = time.perf_counter()
        b = min(block, n_utt - a)
        means = ((rng.standard_normal((b, R)) @ t_flat.T).reshape(b, K, D) + mu).astype(np.float32)
        z = np.minimum(np.searchsorted(cdf, rng.random((b, n_frames)) * cdf[-1]), K - 1)
        x = means[np.arange(b)[:, None], z]
        x += sd[z] * rng.standard_normal((b, n_frames, D), dtype=np.float32)
        if clock is not None:
            clock[0] += time.perf_counter() - t0
        yield from x


# --------------------------------------------------------------------------- the peer
def peer_em_iteration(T, offset, inv_var, n, f):
    """One textbook EM iteration, utterance by utterance (MSR ``train_tv_space`` structure).

    ``T`` is the (K D, R) supervector matrix, ``inv_var`` (K D,), ``n`` (U, K), ``f`` (U, K D)
    centred on the UBM means. Returns the new ``T`` and offset (minimum divergence applied).
    """
    KD, R = T.shape
    K = n.shape[1]
    D = KD // K
    T_invS = T.T * inv_var  # (R, KD)
    RR = np.zeros((K, R, R))
    Cxx = np.zeros((KD, R))
    h = np.zeros(R)
    H = np.zeros((R, R))
    off = offset.ravel()
    for u in range(n.shape[0]):
        nexp = np.repeat(n[u], D)
        fu = f[u] - nexp * off
        L = np.eye(R) + (T_invS * nexp) @ T
        Linv = np.linalg.inv(L)
        w = Linv @ (T_invS @ fu)
        E = Linv + np.outer(w, w)
        RR += n[u][:, None, None] * E
        Cxx += np.outer(fu, w)
        h += w
        H += E
    Tn = np.empty_like(T)
    for c in range(K):
        Tn[c * D:(c + 1) * D] = np.linalg.solve(RR[c], Cxx[c * D:(c + 1) * D].T).T
    mu = h / n.shape[0]
    S = H / n.shape[0] - np.outer(mu, mu)
    off_new = off + Tn @ mu
    return Tn @ np.linalg.cholesky(S), off_new


def peer_extract(T, offset, inv_var, n, f):
    """Textbook extraction, one utterance at a time (MSR ``extract_ivector`` structure)."""
    KD, R = T.shape
    K = n.shape[1]
    D = KD // K
    T_invS = T.T * inv_var
    off = offset.ravel()
    out = np.empty((n.shape[0], R))
    for u in range(n.shape[0]):
        nexp = np.repeat(n[u], D)
        L = np.eye(R) + (T_invS * nexp) @ T
        out[u] = np.linalg.solve(L, T_invS @ (f[u] - nexp * off))
    return out


def _timed(fn, *a, **kw):
    """``(result, wall seconds, CPU seconds, peak traced bytes)`` of one call."""
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, dc, peak


def _mb(nbytes):
    return f"{nbytes / 2**20:.0f} MB"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--dims", type=int, default=60)
    ap.add_argument("--rank", type=int, default=200)
    ap.add_argument("--peer-utterances", type=int, default=100,
                    help="utterances the textbook peer runs on (its time per utterance is scaled to all)")
    ap.add_argument("--iterations", type=int, default=2, help="timed EM iterations of gmmspeech (mean reported)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both sides")
    ap.add_argument("--batch", type=int, default=128, help="utterances per GEMM batch (gmmspeech)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    from gmmspeech.backend.ivector import extract, init_tv, tv_em_step
    from gmmspeech.backend.stats import utterance_stats

    K, D, R, U, F = args.components, args.dims, args.rank, args.utterances, args.frames
    P = min(args.peer_utterances, U)
    load = os.getloadavg()
    print(f"# bench_ivector: K={K}, D={D}, R={R}, {U} utterances x {F} frames; peer on the first {P} "
          f"utterances, its time per utterance scaled to {U}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                for i in threadpool_info() if i["user_api"] == "blas"]
        print(f"# BLAS threads {args.threads} for both sides: {', '.join(blas)}; {os.cpu_count()} CPUs; "
              f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
        ubm, t_true = _ubm_and_tv(K, D, R, args.seed)
        clock = [0.0]
        st, dt_all, dc_all, mem_st = _timed(
            utterance_stats, ubm, _utterances(ubm, t_true, U, F, args.seed, clock=clock),
        ids=[str(i) for i in range(U)], n_jobs=1)
        dt_stats = dt_all - clock[0]
        frames_mb = U * F * D * 4
        stats_mb = st.n.nbytes + st.f.nbytes
        print(f"generated {U} utterances in {clock[0]:.1f} s (vectorised, {U // 100 + (U % 100 > 0)} blocks); "
              f"Baum-Welch statistics (gmmspeech E-step, exact posteriors): {dt_stats:.1f} s, "
              f"{U * F / dt_stats / 1e3:.0f} k frames/s; generation + statistics {dc_all:.1f} CPU s; "
              f"peak traced memory {_mb(mem_st)} (the statistics are {_mb(stats_mb)}; all frames would be "
              f"{_mb(frames_mb)}: streamed, never all in memory)")
        del t_true
        n, f = st.n, st.f
        inv_var = (1.0 / ubm.covariances_).ravel()
        # ---------------------------------------------------------------- training
        model = init_tv(ubm, R, random_state=args.seed)
        (model2, _ll), dt0, dc0, mem0 = _timed(tv_em_step, model, n, f, batch=args.batch)
        runs = [(dt0, dc0, mem0)]
        cur = model2
        for _ in range(max(0, args.iterations - 1)):
            (cur, _ll), dt_i, dc_i, mem_i = _timed(tv_em_step, cur, n, f, batch=args.batch)
            runs.append((dt_i, dc_i, mem_i))
        ours_wall = float(np.mean([r[0] for r in runs]))
        ours_cpu = float(np.mean([r[1] for r in runs]))
        mem_ours = max(r[2] for r in runs)
        # the peer and our step on its subset, from the same model (non-zero offset)
        (ref_T, ref_off), dtp, dcp, mem_peer = _timed(
            peer_em_iteration, model2.T.reshape(K * D, R), model2.offset, inv_var, n[:P], f[:P].reshape(P, -1))
        sub, _ = tv_em_step(model2, n[:P], f[:P], batch=args.batch)
        dT = np.max(np.abs(sub.T.reshape(K * D, R) - ref_T)) / np.max(np.abs(ref_T))
        doff = np.max(np.abs(sub.offset.ravel() - ref_off)) / np.max(np.abs(ref_off))
        peer_wall, peer_cpu = dtp / P * U, dcp / P * U
        # ---------------------------------------------------------------- extraction
        iv, dte, dce, mem_ext = _timed(extract, model2, n, f, batch=args.batch)
        ref_iv, dtpe, dcpe, mem_pext = _timed(peer_extract, model2.T.reshape(K * D, R), model2.offset, inv_var,
                                              n[:P], f[:P].reshape(P, -1))
        rel = np.max(np.abs(iv[:P] - ref_iv) / np.abs(ref_iv).max(axis=1, keepdims=True))
    r_tv_wall, r_tv_cpu = peer_wall / ours_wall, peer_cpu / ours_cpu
    r_ex_wall, r_ex_cpu = (U / dte) / (P / dtpe), (U / dce) / (P / dcpe)
    print(f"\n| step | gmmspeech | textbook numpy loop (on {P} of {U} utterances, scaled) | ratio wall / CPU "
          "| max rel. diff | peak traced memory (gmmspeech / peer) |")
    print("|---|---|---|---|---|---|")
    print(f"| TV training, s/iter ({U} utterances; wall / CPU) | {ours_wall:.2f} / {ours_cpu:.2f} "
          f"| {peer_wall:.1f} / {peer_cpu:.1f} | {r_tv_wall:.1f}x / {r_tv_cpu:.1f}x "
          f"| T: {dT:.1e}, offset: {doff:.1e} | {_mb(mem_ours)} / {_mb(mem_peer)} ({P} utts) |")
    print(f"| extraction, utterances/s (wall / CPU) | {U / dte:.0f} / {U / dce:.0f} "
          f"| {P / dtpe:.1f} / {P / dcpe:.1f} | {r_ex_wall:.1f}x / {r_ex_cpu:.1f}x "
          f"| i-vectors: {rel:.1e} | {_mb(mem_ext)} / {_mb(mem_pext)} ({P} utts) |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    load = os.getloadavg()
    print(f"\npeak resident set of the process {_mb(rss)}; load average at the end {load[0]:.1f} / "
          f"{load[1]:.1f} / {load[2]:.1f}; gmmspeech iterations timed: {len(runs)} "
          f"(wall {', '.join(f'{r[0]:.2f}' for r in runs)} s)")
    ok = min(r_tv_wall, r_tv_cpu, r_ex_wall, r_ex_cpu) >= 10 and rel <= 1e-5 and dT <= 1e-5
    print(f"targets (>= 10x both, wall and CPU; i-vectors and T within 1e-5 relative): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
