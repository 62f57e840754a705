"""EM speed and memory: gmmspeech.GMM against scikit-learn's GaussianMixture, same run.

Same generated data (200,000 x 39 by default), same initial parameters, a fixed number of EM
iterations (10) for every implementation. scikit-learn runs twice: as usually run (float64)
and at its fastest (data and initial parameters float32, so it computes in float32).

Every case runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its
own. Seconds per iteration are the minimum over the timed iterations (the machine may be
shared). The final average log-likelihood of every result is evaluated by one neutral
float64 evaluator (scikit-learn's ``score``) on the final parameters.

Usage::

    python bench/bench_gmm.py            # full run (diag K=64, diag K=256, full K=64)
    python bench/bench_gmm.py --quick    # 20,000 frames, a couple of minutes less
    python bench/bench_gmm.py --cases diag:64 full:32 --frames 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

D = 39
TRUE_K = 64


def make_data(n_frames: int, seed: int = 0) -> np.ndarray:
    """MFCC-like frames from a random 64-component mixture with unequal dimension scales."""
    rng = np.random.default_rng(seed)
    scale = 10.0 / (1.0 + np.arange(D)) ** 0.7
    means = rng.normal(size=(TRUE_K, D)) * scale * 2.0
    means[:, 0] += 50.0  # an energy-like coefficient with an offset
    stds = np.exp(rng.normal(scale=0.3, size=(TRUE_K, D))) * scale * 0.6
    z = rng.integers(0, TRUE_K, size=n_frames)
    return means[z] + rng.standard_normal((n_frames, D)) * stds[z]


def initial_params(X: np.ndarray, k: int, covariance_type: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(X.shape[0], size=k, replace=False)].astype(np.float64)
    weights = np.full(k, 1.0 / k)
    if covariance_type == "full":
        cov = np.cov(X, rowvar=False)
        prec = np.repeat(np.linalg.inv(cov)[None], k, axis=0)
    else:
        prec = np.repeat((1.0 / X.var(axis=0))[None], k, axis=0)
    return weights, means, prec


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def neutral_score(X64, weights, means, covariances, covariance_type) -> float:
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gm = GaussianMixture(len(weights), covariance_type=covariance_type)
    gm.weights_ = np.asarray(weights, dtype=np.float64)
    gm.means_ = np.asarray(means, dtype=np.float64)
    gm.covariances_ = np.asarray(covariances, dtype=np.float64)
    gm.precisions_cholesky_ = _compute_precision_cholesky(gm.covariances_, covariance_type)
    return float(gm.score(X64))


def worker(impl: str, covariance_type: str, k: int, n_frames: int, n_iter: int, chunk_size: int) -> dict:
    X64 = make_data(n_frames)
    w0, m0, p0 = initial_params(X64, k, covariance_type)
    dtype = np.float64 if impl == "sklearn64" else np.float32
    X = X64 if dtype == np.float64 else X64.astype(np.float32)
    import warnings

    from sklearn.mixture import GaussianMixture

    from gmmspeech import GMM

    if impl == "gmmspeech":
        # warm-up (numba compilation / cache load, BLAS first call) on a slice, not timed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GMM(k, covariance_type=covariance_type, max_iter=1, weights_init=w0, means_init=m0,
                precisions_init=p0).fit(X[: 64 * k])
    rss_before = current_rss_mb()
    times = []
    if impl.startswith("sklearn"):
        gm = GaussianMixture(
            k, covariance_type=covariance_type, tol=0.0, max_iter=n_iter, reg_covar=1e-6,
            weights_init=w0.astype(dtype), means_init=m0.astype(dtype), precisions_init=p0.astype(dtype),
        )
        # exactly the loop of GaussianMixture.fit, timed per iteration
        from sklearn.utils._array_api import get_namespace

        xp, _ = get_namespace(X)
        gm._check_parameters(X, xp=xp)
        gm._initialize_parameters(X, np.random.RandomState(0), xp=xp)
        for _ in range(n_iter):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, log_resp = gm._e_step(X, xp=xp)
                gm._m_step(X, log_resp, xp=xp)
            times.append(time.perf_counter() - t)
        weights, means, cov = gm.weights_, gm.means_, gm.covariances_
        fit_seconds = float(sum(times))
    else:
        gm = GMM(
            k, covariance_type=covariance_type, tol=0.0, max_iter=n_iter, reg_covar=1e-6,
            var_floor_rel=0.0, weights_init=w0, means_init=m0, precisions_init=p0,
            dtype=np.float32, chunk_size=chunk_size,
        )
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(X)
        fit_seconds = time.perf_counter() - t
        # per-iteration minimum: the same step fit runs (accumulate + m_step), timed alone
        probe = GMM.from_params(gm.weights_, gm.means_, gm.covariances_, covariance_type,
                                dtype=np.float32, chunk_size=chunk_size, var_floor_rel=0.0)
        for _ in range(3):
            t = time.perf_counter()
            probe.m_step(probe.accumulate(X))
            times.append(time.perf_counter() - t)
        times.append(fit_seconds / n_iter)
        weights, means, cov = gm.weights_, gm.means_, gm.covariances_
    peak = peak_rss_mb()
    score = neutral_score(X64, weights, means, cov, covariance_type)
    return {
        "impl": impl,
        "covariance_type": covariance_type,
        "k": k,
        "sec_per_iter": float(min(times)),
        "fit_seconds": fit_seconds,
        "avg_loglik": score,
        "peak_rss_mb": peak,
        "rss_before_fit_mb": rss_before,
    }


def gemm_gflops(n: int = 8192, m: int = 79, k: int = 256, repeat: int = 5) -> float:
    """Measured float32 GEMM throughput on the E-step's tall, thin shape (n x m) @ (m x k)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, m)).astype(np.float32)
    b = rng.standard_normal((m, k)).astype(np.float32)
    out = np.empty((n, k), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(10):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - t) / 10)
    return 2.0 * n * m * k / best / 1e9


def exp_rate(n: int = 2_000_000, repeat: int = 5) -> float:
    x = -np.abs(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    out = np.empty_like(x)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        np.exp(x, out=out)
        best = min(best, time.perf_counter() - t)
    return n / best


def estep_flops(covariance_type: str, k: int, n_frames: int) -> float:
    """Floating-point operations of our E-step + statistics GEMMs per iteration."""
    cols = (D if covariance_type != "full" else D * (D + 1) // 2) + D + 1
    return 2.0 * 2.0 * n_frames * cols * k


def run_case(impl, ct, k, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, ct, str(k),
           "--frames", str(args.frames), "--iters", str(args.iters), "--chunk-size", str(args.chunk_size)]
    best = None
    for _ in range(args.repeat if impl == "gmmspeech" else 1):
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"worker {impl} {ct} {k} failed")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or res["sec_per_iter"] < best["sec_per_iter"]:
            best = res
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20,000 frames")
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--chunk-size", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=2, help="gmmspeech subprocess repeats (min kept)")
    p.add_argument("--cases", nargs="*", default=["diag:64", "diag:256", "full:64"])
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--worker", nargs=3, metavar=("IMPL", "TYPE", "K"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        impl, ct, k = args.worker
        res = worker(impl, ct, int(k), args.frames, args.iters, args.chunk_size)
        print(json.dumps(res))
        return
    if args.quick:
        args.frames = 20_000
    gf = gemm_gflops()
    er = exp_rate()
    print(f"# data: {args.frames} x {D}, {args.iters} EM iterations, same initial parameters")
    print(f"# machine: {os.cpu_count()} cores; float32 GEMM on the E-step shape: {gf:.1f} GFLOP/s; "
          f"np.exp: {er / 1e9:.2f}e9 values/s")
    impls = ["gmmspeech"] + ([] if args.skip_sklearn else ["sklearn64", "sklearn32"])
    header = (f"{'case':<10} {'impl':<10} {'s/iter':>8} {'ratio64':>8} {'ratio32':>8} "
              f"{'avg loglik':>12} {'dLL':>9} {'peakMB':>8} {'dataMB':>7} {'GEMM%':>6}")
    print(header)
    print("-" * len(header))
    for case in args.cases:
        ct, k = case.split(":")
        k = int(k)
        res = {impl: run_case(impl, ct, k, args) for impl in impls}
        ours = res["gmmspeech"]
        for impl in impls:
            r = res[impl]
            r64 = res.get("sklearn64", {}).get("sec_per_iter", np.nan) / r["sec_per_iter"]
            r32 = res.get("sklearn32", {}).get("sec_per_iter", np.nan) / r["sec_per_iter"]
            dll = r["avg_loglik"] - res["sklearn64"]["avg_loglik"] if "sklearn64" in res else np.nan
            frac = ""
            if impl == "gmmspeech":
                frac = f"{100 * estep_flops(ct, k, args.frames) / r['sec_per_iter'] / 1e9 / gf:5.0f}%"
            print(f"{case:<10} {impl:<10} {r['sec_per_iter']:8.3f} {r64:8.1f} {r32:8.1f} "
                  f"{r['avg_loglik']:12.5f} {dll:9.1e} {r['peak_rss_mb']:8.0f} "
                  f"{r['peak_rss_mb'] - r['rss_before_fit_mb']:7.0f} {frac:>6}")
        sys.stdout.flush()
        del ours
    print("# ratio64/ratio32: scikit-learn float64/float32 seconds per iteration divided by this row's;"
          " dLL: final average log-likelihood minus scikit-learn float64's;")
    print("# peakMB: peak RSS of the case's process; dataMB: peak minus RSS before the fit (data loaded);"
          " GEMM%: our E-step+statistics GEMM FLOPs per second over the measured GEMM throughput")


if __name__ == "__main__":
    main()
