"""Benchmark: total-variability training and i-vector extraction.

K=256 diagonal UBM, 60 dims, R=200, 2,000 utterances of 300 frames generated from a
total-variability model (each utterance's mean supervector ``m + T w``). Statistics are
computed once (timed separately), then:

* **TV training**: seconds per EM iteration (E-step over every utterance, M-step,
  minimum divergence) -- gmmspeech (batched: ``T_c^T Sigma_c^-1 T_c`` precomputed, the
  precisions of a batch as one GEMM) against a direct numpy transcription of the textbook
  per-utterance loop in the structure of the MSR Identity Toolbox's ``train_tv_space``
  (per utterance ``L = I + T^T (Sigma^-1 N) T`` over the whole supervector, ``inv(L)``,
  accumulators updated per utterance), both starting from the same ``T``.
* **Extraction**: utterances per second, gmmspeech ``extract`` against the toolbox's
  ``extract_ivector`` structure (per utterance ``L``, then ``L \\ b``).

The peer is slow (about 1.2 GFLOP per utterance for ``L``), so it is timed on a subset of
the utterances (``--peer-utterances``) and its per-utterance cost extrapolated to all of
them (its loop does the same work for every utterance; printed as such). Both run with
one BLAS thread in the same process and run. Printed: times, ratios, the largest relative
difference of the i-vectors and of the updated ``T`` on the subset, and peak memory
(tracemalloc: numpy allocations) of each side.

    python bench/bench_ivector.py                      # the full benchmark
    python bench/bench_ivector.py --utterances 400     # quicker
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def _problem(K, D, R, n_utt, n_frames, seed):
    from gmmspeech import GMM

    r = np.random.default_rng(seed)
    w = r.dirichlet(np.full(K, 2.0))
    mu = r.normal(0.0, 1.0, (K, D))
    var = r.uniform(0.2, 1.0, (K, D))
    ubm = GMM.from_params(w, mu, var)
    t_true = r.normal(0.0, 0.02, (K, D, R)) * np.sqrt(var)[:, :, None]
    utts = []
    for _ in range(n_utt):
        m = mu + t_true @ r.standard_normal(R)
        z = r.choice(K, size=n_frames, p=w)
        utts.append((m[z] + np.sqrt(var[z]) * r.standard_normal((n_frames, D))).astype(np.float32))
    return ubm, utts


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
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--dims", type=int, default=60)
    ap.add_argument("--rank", type=int, default=200)
    ap.add_argument("--peer-utterances", type=int, default=60,
                    help="utterances the textbook peer is timed on (extrapolated per utterance)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from gmmspeech.backend.ivector import extract, init_tv, tv_em_step
    from gmmspeech.backend.stats import utterance_stats

    K, D, R, U = args.components, args.dims, args.rank, args.utterances
    P = min(args.peer_utterances, U)
    print(f"# bench_ivector: K={K}, D={D}, R={R}, {U} utterances x {args.frames} frames "
          f"(peer timed on {P} utterances, extrapolated per utterance)")
    t0 = time.perf_counter()
    ubm, utts = _problem(K, D, R, U, args.frames, args.seed)
    print(f"generated in {time.perf_counter() - t0:.1f} s")
    with threadpool_limits(limits=1):
        st, dt_stats, _ = _timed(utterance_stats, ubm, utts)
        print(f"Baum-Welch statistics (gmmspeech E-step, 1 thread): {dt_stats:.2f} s, "
              f"{U * args.frames / dt_stats / 1e3:.1f} k frames/s")
        del utts
        model = init_tv(ubm, R, random_state=args.seed)
        n, f = st.n, st.f
        inv_var = (1.0 / ubm.covariances_).ravel()
        # ---------------------------------------------------------------- training
        (new, _ll), dt_ours, mem_ours = _timed(tv_em_step, model, n, f)
        # a second, non-zero offset iteration: the general case
        model2 = new
        (new2, _ll2), dt_ours2, mem_ours2 = _timed(tv_em_step, model2, n, f)
        (ref_T, ref_off), dt_peer, mem_peer = _timed(
            peer_em_iteration, model2.T.reshape(K * D, R), model2.offset, inv_var, n[:P], f[:P].reshape(P, -1))
        # same iteration of ours on the peer's subset, for the equality check
        sub, _ = tv_em_step(model2, n[:P], f[:P])
        dT = np.max(np.abs(sub.T.reshape(K * D, R) - ref_T)) / np.max(np.abs(ref_T))
        peer_iter = dt_peer / P * U
        ours_iter = min(dt_ours, dt_ours2)
        print("\n| step | gmmspeech | textbook numpy loop | ratio | max rel. diff | peak memory (gmmspeech / peer) |")
        print("|---|---|---|---|---|---|")
        print(f"| TV training, s/iter ({U} utts) | {ours_iter:.2f} | {peer_iter:.1f} (extrapolated from {P}) "
              f"| {peer_iter / ours_iter:.1f}x | T: {dT:.1e} | {max(mem_ours, mem_ours2) / 2**20:.0f} MB / "
              f"{mem_peer / 2**20:.0f} MB ({P} utts) |")
        # ---------------------------------------------------------------- extraction
        iv, dt_ext, mem_ext = _timed(extract, new2, n, f)
        ref_iv, dt_pext, mem_pext = _timed(peer_extract, new2.T.reshape(K * D, R), new2.offset, inv_var,
                                           n[:P], f[:P].reshape(P, -1))
        rel = np.max(np.abs(iv[:P] - ref_iv) / np.maximum(np.abs(ref_iv).max(axis=1, keepdims=True), 1e-300))
        ours_ups = U / dt_ext
        peer_ups = P / dt_pext
        print(f"| extraction, utterances/s | {ours_ups:.0f} | {peer_ups:.1f} | {ours_ups / peer_ups:.1f}x "
              f"| i-vectors: {rel:.1e} | {mem_ext / 2**20:.0f} MB / {mem_pext / 2**20:.0f} MB |")
    ok = peer_iter / ours_iter >= 10 and ours_ups / peer_ups >= 10 and rel <= 1e-5 and dT <= 1e-5
    print(f"\ntargets (>= 10x both, i-vectors and T within 1e-5 relative): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
