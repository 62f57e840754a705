"""EM acceleration: E-steps and seconds to reach scikit-learn's final log-likelihood.

On overlapping mixtures (where EM crawls: the textbook heights, and multi-dimensional cases)
every fit starts from the same initial parameters (``GMM.initialize``, handed to scikit-learn
as ``weights_init`` / ``means_init`` / ``precisions_init``), in float64 for both engines.
Two targets: scikit-learn's final average log-likelihood with its defaults (``tol=1e-3``,
``max_iter=100``) and with ``tol=1e-8`` (near the maximum). For each target the table gives the
E-steps (passes over the data) and seconds scikit-learn needed, and the E-steps and seconds
our plain EM (``accelerate=None``) and SQUAREM (``accelerate="squarem"``) need to reach at
least the same log-likelihood (smallest ``max_iter`` found by bisection, then timed), measured
in the same run. Speed-up = scikit-learn seconds / ours.

    python bench/bench_em_accel.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture

from gmmspeech import GMM


def heights(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(70, 3, 3000), rng.normal(65, 2.5, 3000)])[:, None]


def overlapping(n, d, k, seed=0, sep=1.2):
    """``k`` Gaussian clusters in ``d`` dimensions whose means are ``sep`` standard deviations apart."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * sep
    X = []
    for j in range(k):
        a = rng.normal(size=(d, d)) * 0.3
        cov = a @ a.T + np.diag(rng.uniform(0.5, 1.5, d))
        X.append(rng.multivariate_normal(means[j], cov, size=n // k))
    return np.vstack(X)


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _init(X, k, ct, init, seed):
    g = GMM(k, covariance_type=ct, init_params=init, random_state=seed, dtype=np.float64,
            var_floor_rel=0.0).initialize(X)
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


def _ours(X, k, ct, start, accelerate, max_iter):
    return _quiet(lambda: GMM(k, covariance_type=ct, dtype=np.float64, var_floor_rel=0.0, tol=0.0,
                              stopping="gain", accelerate=accelerate, max_iter=max_iter,
                              **start).fit(X))


def _timed(fn, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _to_target(X, k, ct, start, accelerate, target, limit, repeat):
    """Smallest max_iter whose fit reaches ``target`` (bisection), and its time."""
    def reach(m):
        return _ours(X, k, ct, start, accelerate, m).score(X) >= target - 1e-12

    hi = 1
    while not reach(hi):
        hi *= 2
        if hi > limit:
            return None, None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reach(mid):
            hi = mid
        else:
            lo = mid
    _, secs = _timed(lambda: _ours(X, k, ct, start, accelerate, hi), repeat)
    return hi, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer initialisations and smaller data")
    args = ap.parse_args()
    q = args.quick
    cases = [
        ("heights 1-D, K=2 (6,000)", heights(), 2, "full", "random_from_data", range(3 if q else 5)),
        ("4-D overlapping, K=3 full (12,000)", overlapping(12_000, 4, 3, seed=1), 3, "full", "kmeans",
         range(2 if q else 3)),
        ("8-D overlapping, K=6 diag (30,000)", overlapping(30_000, 8, 6, seed=2), 6, "diag", "kmeans",
         range(1 if q else 2)),
    ]
    limit = 4096 if q else 20_000
    repeat = 1 if q else 3
    print("| case | target | scikit-learn E-steps / s | ours plain E-steps / s | ours SQUAREM E-steps / s "
          "| SQUAREM speed-up vs scikit-learn | vs plain |")
    print("|---|---|---|---|---|---|---|")
    totals = {}
    for name, X, k, ct, init, seeds in cases:
        for tol_name, tol, max_iter in (("sklearn default", 1e-3, 100), ("sklearn tol=1e-8", 1e-8, limit)):
            rows = []
            for seed in seeds:
                start = _init(X, k, ct, init, seed)
                def fit_sklearn(X=X, k=k, ct=ct, tol=tol, max_iter=max_iter, start=start):
                    return _quiet(lambda: GaussianMixture(k, covariance_type=ct, tol=tol, max_iter=max_iter,
                                                          reg_covar=1e-6, **start).fit(X))

                sk, sk_s = _timed(fit_sklearn, repeat)
                target = sk.score(X)
                plain = _to_target(X, k, ct, start, None, target, limit, repeat)
                sq = _to_target(X, k, ct, start, "squarem", target, limit, repeat)
                rows.append((sk.n_iter_, sk_s, *plain, *sq))
            r = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
            med = np.nanmedian(r, axis=0)
            sp_sk = med[1] / med[5]
            sp_pl = med[3] / med[5]
            totals.setdefault(tol_name, []).append(sp_sk)
            print(f"| {name} | {tol_name} (median of {len(rows)} starts) | {med[0]:.0f} / {med[1]:.3f} "
                  f"| {med[2]:.0f} / {med[3]:.3f} | {med[4]:.0f} / {med[5]:.3f} | {sp_sk:.1f}x | {sp_pl:.1f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
