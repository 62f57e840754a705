"""EM acceleration: E-steps and seconds to reach scikit-learn's final log-likelihood.

On overlapping mixtures (where EM crawls: the textbook heights, and multi-dimensional cases)
every fit starts from the same initial parameters (``GMM.initialize``, handed to scikit-learn
as ``weights_init`` / ``means_init`` / ``precisions_init``), in float64 for both engines.
Two targets: scikit-learn's final average log-likelihood with its defaults (``tol=1e-3``,
``max_iter=100``) and with ``tol=1e-8`` (near the maximum). For each target the table gives the
E-steps (passes over the data) and seconds scikit-learn needed, and the E-steps and seconds
our plain EM (``accelerate=None``), SQUAREM (``accelerate="squarem"``) and Anderson
(``accelerate="anderson"``, the default) need to reach at least the same log-likelihood
(smallest ``max_iter``, then timed), measured in the same run. Speed-up = scikit-learn
seconds / ours. A last table fits the seed example with no options at all, gmmspeech's
``GMM`` beside scikit-learn's ``GaussianMixture``.

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
    """Smallest max_iter whose fit reaches ``target``, and its time. Plain EM: read off one long
    fit's ``history_`` (its entry ``m`` is the log-likelihood of the model after ``m`` M-steps);
    accelerated EM (whose history leaves rejected candidates out): bisection."""
    if accelerate is None:
        h = np.asarray(_ours(X, k, ct, start, None, limit).history_)
        hit = np.flatnonzero(h[1:] >= target - 1e-12)
        if hit.size == 0:
            return None, None
        m = int(hit[0]) + 1
        _, secs = _timed(lambda: _ours(X, k, ct, start, None, m), repeat)
        return m, secs

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
          "| ours Anderson (default) E-steps / s | Anderson speed-up vs scikit-learn (s) | vs plain (s) "
          "| SQUAREM vs scikit-learn (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
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
                an = _to_target(X, k, ct, start, "anderson", target, limit, repeat)
                rows.append((sk.n_iter_, sk_s, *plain, *sq, *an))
            r = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
            med = np.nanmedian(r, axis=0)
            print(f"| {name} | {tol_name} (median of {len(rows)} starts) | {med[0]:.0f} / {med[1]:.3f} "
                  f"| {med[2]:.0f} / {med[3]:.3f} | {med[4]:.0f} / {med[5]:.3f} | {med[6]:.0f} / {med[7]:.3f} "
                  f"| {med[1] / med[7]:.1f}x | {med[3] / med[7]:.1f}x | {med[1] / med[5]:.1f}x |", flush=True)
    _defaults_table(q)


def _defaults_table(quick):
    """No options at all on the seed example: GMM(2, init_params="random_from_data") against
    GaussianMixture(2, init_params="random_from_data"), same seeds, same run."""
    x = heights()
    seeds = range(10)
    print("\n| heights, defaults, 10 seeds | converged | E-steps median (max) | seconds (total) "
          "| largest distance of a mean from (65, 70) | seeds within 0.5 |")
    print("|---|---|---|---|---|---|")
    for name, make in (("gmmspeech GMM(2, init_params='random_from_data')",
                        lambda s: GMM(2, init_params="random_from_data", random_state=s)),
                       ("scikit-learn GaussianMixture(2, init_params='random_from_data')",
                        lambda s: GaussianMixture(2, init_params="random_from_data", random_state=s))):
        its, errs, conv = [], [], 0
        t = time.perf_counter()
        for s in seeds:
            g = _quiet(lambda s=s, make=make: make(s).fit(x))
            its.append(g.n_iter_)
            conv += bool(g.converged_)
            errs.append(float(np.max(np.abs(np.sort(np.ravel(g.means_)) - [65.0, 70.0]))))
        secs = time.perf_counter() - t
        print(f"| {name} | {conv}/10 | {np.median(its):.0f} ({max(its)}) | {secs:.2f} | {max(errs):.2f} "
              f"| {sum(e < 0.5 for e in errs)}/10 |", flush=True)


if __name__ == "__main__":
    main()
