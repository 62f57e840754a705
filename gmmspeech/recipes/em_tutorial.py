"""The textbook EM for Gaussian mixtures, worked through with gmmspeech's engine.

Part 1, **heights** (univariate): a sample of adult heights drawn (with a seed) from two
groups, means about 5'10" (70 in) and 5'5" (65 in). A two-component mixture is fitted
with the textbook initialisation (means at randomly chosen data points,
``init_params="random_from_data"``) and the EM loop is run one step at a time through
the engine (``initialize`` / ``accumulate`` = E-step / ``m_step``) so that every
iteration's parameters and log-likelihood are on record; it stops when no parameter
moves by more than epsilon (``param_tol``), and the one-call ``GMM(...).fit`` with the
same settings is checked to give the same answer. Then: BIC and AIC across K
(``select_n_components``), sampling from the fitted mixture against its density, and
clustering by the posterior p(C_k | x) (Bayes' rule) at a few heights.

Part 2, **Old Faithful** (bivariate): the classic two-cluster geyser data
(``old-faithful/faithful.csv`` under the data root), a full-covariance two-component
mixture fitted by the same loop, with the fit drawn at iterations 1, 2, 5 and at
convergence.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

TRUE_HEIGHTS = {  # inches
    "weights": [0.5, 0.5],
    "means": [70.0, 65.0],
    "sds": [3.0, 2.5],
}
PROBE_HEIGHTS = [60.0, 63.0, 65.0, 66.5, 67.5, 68.5, 70.0, 74.0]


def _inches(x: float) -> str:
    feet, inch = divmod(float(x), 12.0)
    return f"{int(feet)}'{inch:.1f}\""


def generate_heights(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` heights in inches from the two-group population and their group (0 = 5'10")."""
    rng = np.random.default_rng(seed)
    z = (rng.random(n) >= TRUE_HEIGHTS["weights"][0]).astype(int)
    means = np.asarray(TRUE_HEIGHTS["means"])[z]
    sds = np.asarray(TRUE_HEIGHTS["sds"])[z]
    return means + sds * rng.standard_normal(n), z


def read_faithful(path: str | Path) -> np.ndarray:
    """The ``eruptions`` and ``waiting`` columns of ``faithful.csv`` as an (n, 2) array."""
    from gmmspeech.errors import ManifestError

    path = Path(path)
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"eruptions", "waiting"} <= set(reader.fieldnames):
            raise ManifestError(path, 1, "expected the columns 'eruptions' and 'waiting'")
        for line, rec in enumerate(reader, start=2):
            try:
                rows.append((float(rec["eruptions"]), float(rec["waiting"])))
            except (TypeError, ValueError):
                raise ManifestError(path, line, f"not a number: {rec}") from None
    if len(rows) < 10:
        raise ManifestError(path, None, f"only {len(rows)} rows; need at least 10")
    return np.asarray(rows)


def _params(g) -> dict[str, np.ndarray]:
    return {
        "weights": np.asarray(g.weights_, dtype=float).copy(),
        "means": np.asarray(g.means_, dtype=float).copy(),
        "covariances": np.asarray(g.covariances_, dtype=float).copy(),
    }


def _max_change(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def em_trace(X: np.ndarray, *, n_components: int = 2, covariance_type: str = "full",
             epsilon: float = 1e-4, max_iter: int = 500, seed: int = 0) -> dict:
    """Run EM one iteration at a time through the engine and record every step.

    Returns a dict with ``params`` (list: the initial parameters, then those after each
    iteration), ``loglik`` (average log-likelihood of the data under the parameters
    *entering* each iteration, i.e. the E-step's value, plus the final one), ``change``
    (largest parameter move of each iteration), ``n_iter``, ``converged`` and the fitted
    ``model``.
    """
    from gmmspeech.mixture.gmm import GMM

    g = GMM(n_components, covariance_type=covariance_type, init_params="random_from_data",
            random_state=seed, dtype=np.float64, max_iter=max_iter, tol=0.0,
            param_tol=epsilon)
    g.initialize(X)
    params = [_params(g)]
    loglik, change = [], []
    converged = False
    for _ in range(max_iter):
        stats = g.accumulate(X)  # E-step: responsibilities -> sufficient statistics
        loglik.append(stats.loglik / stats.n_frames)
        g.m_step(stats)  # M-step: weights, means, covariances from the statistics
        params.append(_params(g))
        change.append(_max_change(params[-1], params[-2]))
        if change[-1] <= epsilon:
            converged = True
            break
    loglik.append(float(g.score(X)))
    return {"params": params, "loglik": loglik, "change": change, "n_iter": len(change),
            "converged": converged, "model": g}


def _order(model) -> np.ndarray:
    """Component order by decreasing first mean (so 'component 1' is the taller group)."""
    return np.argsort(-np.asarray(model.means_)[:, 0])


def _heights(rep: Report, *, n: int, seed: int, epsilon: float, k_max: int,
             n_samples: int, max_iter: int, n_init_select: int = 3) -> dict:
    from scipy.stats import kstest, norm

    from gmmspeech import plots
    from gmmspeech.mixture.gmm import GMM
    from gmmspeech.mixture.select import select_n_components

    x, z = generate_heights(n, seed=seed)
    X = x[:, None]
    tr = em_trace(X, n_components=2, covariance_type="full", epsilon=epsilon, seed=seed,
                  max_iter=max_iter)
    g = tr["model"]
    order = _order(g)

    # the same fit in one call must land on the same parameters
    one = GMM(2, covariance_type="full", init_params="random_from_data", random_state=seed,
              dtype=np.float64, max_iter=max_iter, tol=0.0, param_tol=epsilon,
              accelerate=None, stopping="gain").fit(X)
    one_gap = _max_change(_params(one), tr["params"][-1])

    rep.heading("Part 1: heights, a univariate two-component mixture")
    rep.text(
        f"{n} heights (inches) drawn with seed {seed} from two groups: "
        f"N(70, 3.0^2) (5'10\") and N(65, 2.5^2) (5'5\"), equal weights. "
        "The textbook model is p(x) = phi_1 N(x | mu_1, sigma_1^2) + phi_2 N(x | mu_2, sigma_2^2). "
        "EM starts from means at two randomly chosen data points (`init_params=\"random_from_data\"`) "
        "and alternates the E-step (responsibilities r_nk = p(C_k | x_n), accumulated as sufficient "
        "statistics by `GMM.accumulate`) and the M-step (`GMM.m_step`: phi_k = N_k / N, "
        "mu_k = F_k / N_k, sigma_k^2 = S_k / N_k - mu_k^2). "
        f"It stops when no parameter moves by more than epsilon = {epsilon:g} "
        "(`param_tol`)."
    )
    rows = []
    for i, p in enumerate(tr["params"]):
        w, mu, sd = p["weights"][order], p["means"][order, 0], np.sqrt(p["covariances"][order, 0, 0])
        ll = tr["loglik"][i] if i < len(tr["loglik"]) else float("nan")
        ch = tr["change"][i - 1] if i > 0 else float("nan")
        rows.append([i, w[0], w[1], mu[0], mu[1], sd[0], sd[1], ll, ch])
    headers = ["iteration", "phi_1", "phi_2", "mu_1", "mu_2", "sigma_1", "sigma_2",
               "avg log-lik", "max |change|"]
    shown = rows if len(rows) <= 25 else rows[:15] + rows[-5:]
    rep.table(headers, shown, floatfmt=".5g",
              caption="EM trace (iteration 0 = initialisation; log-likelihood of the data under "
                      "that row's parameters):" + (" first 15 and last 5 rows." if len(rows) > 25 else ""))
    rep.text(
        f"EM stopped after **{tr['n_iter']} iterations** (converged: {tr['converged']}); "
        f"the log-likelihood never decreased (largest decrease "
        f"{max(0.0, -float(np.min(np.diff(tr['loglik'])))):.2e}). "
        f"`GMM(param_tol={epsilon:g}).fit` in one call ran {one.n_iter_} iterations at "
        f"parameters within {one_gap:.2e} of this loop's. "
        "Most of the gain comes in the first few iterations; afterwards the parameters creep: "
        "with overlapping components EM converges linearly, with a rate close to 1 (the "
        "fraction of missing information is large), a well-known property of the algorithm. "
        "The fitted parameters are the maximum-likelihood estimates for this sample; with "
        "groups this close they can differ noticeably from the population's."
    )

    fig, axes = rep.figure("heights_em_trace.png", "EM trace on the heights: log-likelihood, "
                           "means and standard deviations per iteration (dotted: the population "
                           "values)", figsize=(10, 3.4), ncols=3)
    plots.em_trace_plot(tr["loglik"][:-1], ax=axes[0], title="average log-likelihood")
    its = np.arange(len(tr["params"]))
    for k, name in zip(order, ("component 1", "component 2")):
        axes[1].plot(its, [p["means"][k, 0] for p in tr["params"]], "-", label=name)
        axes[2].plot(its, [np.sqrt(p["covariances"][k, 0, 0]) for p in tr["params"]], "-", label=name)
    for ax, lab, truth in ((axes[1], "mean (in)", TRUE_HEIGHTS["means"]),
                           (axes[2], "standard deviation (in)", TRUE_HEIGHTS["sds"])):
        for t in truth:
            ax.axhline(t, color="0.6", lw=0.8, ls=":")
        ax.set_ylabel(lab)
        ax.legend(fontsize=7)
    from matplotlib.ticker import NullLocator

    n_last = max(1, len(tr["params"]) - 1)
    ticks = [0] + [10**e for e in range(int(np.floor(np.log10(n_last))) + 1)]
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xticks(ticks, [str(t) for t in ticks])  # plain iteration numbers: 0, 1, 10, 100
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("iteration (log scale)")
        ax.grid(True, color="0.9")

    # model selection
    cands = list(range(1, k_max + 1))
    import warnings

    from gmmspeech.mixture.gmm import ConvergenceWarning

    with warnings.catch_warnings():  # which K stopped at max_iter is a column of the table
        warnings.simplefilter("ignore", ConvergenceWarning)
        best, table = select_n_components(X, cands, criterion="bic", covariance_type="full",
                                          random_state=seed, n_init=n_init_select,
                                          dtype=np.float64, tol=1e-6,
                                          max_iter=min(max_iter, 1000))
    best_bic = min(table, key=lambda r: r["bic"])["n_components"]
    best_aic = min(table, key=lambda r: r["aic"])["n_components"]
    rep.heading("How many components? BIC and AIC", 3)
    rep.text(
        "BIC = -2 log L + p log N and AIC = -2 log L + 2 p, with p free parameters "
        f"(`select_n_components`, {n_init_select} initialisations per K, EM to a gain below "
        "1e-6 per point). Lower is better; BIC's heavier "
        "penalty favours fewer components. Past the true K, extra components split one group "
        "and EM creeps: a fit still moving at the iteration cap says so in the last column "
        "(its likelihood is then a lower bound, which only favours the smaller K)."
    )
    rep.table(["K", "log-likelihood", "parameters", "BIC", "AIC", "EM iterations"],
              [[r["n_components"], r["log_likelihood"], r["n_parameters"], r["bic"], r["aic"],
                f"{r['n_iter']}" + ("" if r["converged"] else " (cap; not converged)")]
               for r in table], floatfmt=".6g")
    rep.text(f"BIC chooses **K = {best_bic}**, AIC chooses **K = {best_aic}**.")
    fig, ax = rep.figure("heights_bic.png", "BIC and AIC against the number of components")
    ax.plot(cands, [r["bic"] for r in table], "o-", label="BIC")
    ax.plot(cands, [r["aic"] for r in table], "s--", label="AIC")
    ax.set_xlabel("K")
    ax.set_ylabel("criterion")
    ax.legend()
    ax.grid(True, color="0.9")

    # sampling versus the fitted density
    samples = np.asarray(g.sample(n_samples)[0])[:, 0]
    w = np.asarray(g.weights_)
    mu = np.asarray(g.means_)[:, 0]
    sd = np.sqrt(np.asarray(g.covariances_)[:, 0, 0])
    ks = kstest(samples, lambda t: np.sum(w * norm.cdf((np.asarray(t)[:, None] - mu) / sd), axis=1))
    grid = np.linspace(min(x.min(), samples.min()) - 1, max(x.max(), samples.max()) + 1, 400)
    pdf = np.exp(g.score_samples(grid[:, None]))
    fig, axes = rep.figure("heights_density.png", "Left: the data with the fitted mixture and its "
                           "components. Right: samples drawn from the fitted mixture against its "
                           "density.", figsize=(10, 3.8), ncols=2)
    plots.density_plot(x, g, ax=axes[0], bins=40, title="data and fitted mixture")
    axes[0].set_xlabel("height (in)")
    axes[1].hist(samples, bins=50, density=True, color="0.75", label=f"{n_samples} samples")
    axes[1].plot(grid, pdf, "k-", lw=1.5, label="fitted p(x)")
    axes[1].set_xlabel("height (in)")
    axes[1].set_title("sampling vs fitted density")
    axes[1].legend(fontsize=8)
    rep.heading("Sampling from the fitted mixture", 3)
    rep.text(
        f"{n_samples} draws from `GMM.sample` (choose a component with probability phi_k, then "
        f"draw from its Gaussian): sample mean {samples.mean():.3f} in and standard deviation "
        f"{samples.std():.3f} in against the model's {float(np.sum(w * mu)):.3f} and "
        f"{float(np.sqrt(np.sum(w * (sd**2 + mu**2)) - np.sum(w * mu) ** 2)):.3f}; "
        f"Kolmogorov-Smirnov distance to the fitted CDF {ks.statistic:.4f} (p = {ks.pvalue:.3f})."
    )

    # posterior clustering
    probes = np.asarray(PROBE_HEIGHTS)
    post = g.predict_proba(probes[:, None])[:, order]
    rep.heading("Clustering by the posterior p(C_k | x)", 3)
    rep.text(
        "Bayes' rule: p(C_k | x) = phi_k N(x | mu_k, sigma_k^2) / sum_j phi_j N(x | mu_j, sigma_j^2) "
        "(`GMM.predict_proba`). Component 1 is the one with the larger mean."
    )
    rep.table(["height", "inches", "p(C_1 | x)", "p(C_2 | x)", "cluster"],
              [[_inches(h), f"{h:.1f}", p[0], p[1], 1 + int(p[1] > p[0])]
               for h, p in zip(probes, post)],
              floatfmt=".4f")
    fine = np.linspace(x.min(), x.max(), 2001)
    pf = g.predict_proba(fine[:, None])[:, order[0]]
    middle = (fine > min(mu)) & (fine < max(mu))
    boundary = float(fine[middle][np.argmin(np.abs(pf[middle] - 0.5))]) if middle.any() else float("nan")
    pred = g.predict(X)
    assigned_tall = pred == order[0]
    agreement = float(np.mean(assigned_tall == (z == 0)))
    rep.text(
        f"The posteriors cross 0.5 at {boundary:.2f} in ({_inches(boundary)}). Assigning each "
        f"height to its most probable component recovers the group it was drawn from for "
        f"{100 * agreement:.1f} % of the sample (the groups overlap, so this cannot reach 100 %)."
    )
    fig, ax = rep.figure("heights_posterior.png", "Posterior probability of each component "
                         "against height, with the data as a rug")
    ax.plot(fine, pf, "-", label="p(C_1 | x) (taller)")
    ax.plot(fine, 1 - pf, "--", label="p(C_2 | x)")
    ax.plot(x, np.full_like(x, -0.03), "|", color="0.4", ms=6, alpha=0.3)
    ax.set_xlabel("height (in)")
    ax.set_ylabel("posterior")
    ax.set_ylim(-0.06, 1.04)
    ax.legend(fontsize=8)
    ax.grid(True, color="0.9")

    fitted = {
        "weights": w[order].tolist(),
        "means": mu[order].tolist(),
        "sds": sd[order].tolist(),
    }
    return {
        "n": n,
        "true": TRUE_HEIGHTS,
        "fitted": fitted,
        "n_iter": tr["n_iter"],
        "converged": bool(tr["converged"]),
        "epsilon": epsilon,
        "final_avg_loglik": float(tr["loglik"][-1]),
        "loglik_trace": [float(v) for v in tr["loglik"]],
        "max_loglik_decrease": max(0.0, -float(np.min(np.diff(tr["loglik"])))),
        "one_call_fit_gap": one_gap,
        "one_call_n_iter": int(one.n_iter_),
        "selection": [{k: (v if isinstance(v, bool) else float(v) if isinstance(v, float)
                           else int(v)) for k, v in r.items()}
                      for r in table],
        "best_k_bic": int(best_bic),
        "best_k_aic": int(best_aic),
        "sample_mean": float(samples.mean()),
        "sample_sd": float(samples.std()),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "posterior": [{"height": float(h), "p_c1": float(p[0]), "p_c2": float(p[1])}
                      for h, p in zip(probes, post)],
        "decision_boundary": boundary,
        "cluster_agreement": agreement,
    }, best


def _faithful(rep: Report, path: Path, *, seed: int, epsilon: float, max_iter: int) -> dict:
    from matplotlib.patches import Ellipse

    X = read_faithful(path)
    tr = em_trace(X, n_components=2, covariance_type="full", epsilon=epsilon, seed=seed,
                  max_iter=max_iter)
    g = tr["model"]
    order = np.argsort(np.asarray(g.means_)[:, 0])  # short eruptions first
    rep.heading("Part 2: Old Faithful, a bivariate two-component mixture")
    rep.text(
        f"{X.shape[0]} eruptions: duration (min) and waiting time to the next eruption (min). "
        "A full-covariance two-component mixture, the same initialisation and EM loop. "
        f"EM stopped after **{tr['n_iter']} iterations** (converged: {tr['converged']}, "
        f"epsilon = {epsilon:g}), at an average log-likelihood of {tr['loglik'][-1]:.4f} per eruption."
    )
    w = np.asarray(g.weights_)[order]
    mu = np.asarray(g.means_)[order]
    cov = np.asarray(g.covariances_)[order]
    rows = []
    for k in range(2):
        sd = np.sqrt(np.diag(cov[k]))
        rows.append([k + 1, w[k], mu[k, 0], mu[k, 1], sd[0], sd[1], cov[k, 0, 1] / (sd[0] * sd[1])])
    rep.table(["component", "weight", "mean eruption (min)", "mean waiting (min)",
               "sd eruption", "sd waiting", "correlation"], rows, floatfmt=".4g")

    sk = None
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        rep.text("scikit-learn is not installed: the comparison with its GaussianMixture is skipped.")
    else:
        ref = GaussianMixture(2, covariance_type="full", tol=1e-8, max_iter=1000, n_init=5,
                              random_state=seed).fit(X)
        ro = np.argsort(ref.means_[:, 0])
        sk = {
            "avg_loglik": float(ref.score(X)),
            "max_mean_gap": float(np.max(np.abs(ref.means_[ro] - mu))),
            "max_weight_gap": float(np.max(np.abs(ref.weights_[ro] - w))),
        }
        rep.text(
            f"scikit-learn's GaussianMixture (5 k-means initialisations, tol 1e-8) reaches an "
            f"average log-likelihood of {sk['avg_loglik']:.4f}; its means differ from ours by at "
            f"most {sk['max_mean_gap']:.2e} min and its weights by {sk['max_weight_gap']:.2e}."
        )

    shown = [i for i in (1, 2, 5) if i < tr["n_iter"]] + [tr["n_iter"]]
    fig, axes = rep.figure("faithful_em.png", "EM on Old Faithful: the mixture after iterations "
                           + ", ".join(map(str, shown[:-1])) + f" and at convergence ({shown[-1]}); "
                           "points coloured by responsibility, ellipses at 1 and 2 standard deviations",
                           figsize=(3.3 * len(shown), 3.4), ncols=len(shown))
    axes = np.atleast_1d(axes)
    from gmmspeech.mixture.gmm import GMM

    for ax, it in zip(axes, shown):
        p = tr["params"][it]
        snap = GMM.from_params(p["weights"], p["means"], p["covariances"], covariance_type="full")
        r = snap.predict_proba(X)[:, order[0]]
        # coolwarm reversed: responsibility 1 for component order[0] is blue, like its ellipses
        pts = ax.scatter(X[:, 0], X[:, 1], c=r, cmap="coolwarm_r", vmin=0, vmax=1, s=7)
        for k, color in zip(order, ("tab:blue", "tab:red")):
            vals, vecs = np.linalg.eigh(p["covariances"][k])
            angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
            for ns in (1.0, 2.0):
                ax.add_patch(Ellipse(tuple(p["means"][k]), 2 * ns * np.sqrt(vals[1]),
                                     2 * ns * np.sqrt(vals[0]), angle=angle, fill=False,
                                     color=color, lw=1.2))
        ax.set_title(f"iteration {it}" + (" (final)" if it == tr["n_iter"] else ""))
        ax.set_xlabel("eruption (min)")
    axes[0].set_ylabel("waiting (min)")
    cbar = fig.colorbar(pts, ax=list(axes), fraction=0.02, pad=0.01)
    cbar.set_label("p(blue component | x)")
    fig2, ax2 = rep.figure("faithful_loglik.png", "EM on Old Faithful: average log-likelihood "
                           "per iteration", figsize=(5.5, 3.6))
    from gmmspeech import plots

    plots.em_trace_plot(tr["loglik"][:-1], ax=ax2, title=None)
    rep.credit("old-faithful")
    out = {
        "n": int(X.shape[0]),
        "n_iter": tr["n_iter"],
        "converged": bool(tr["converged"]),
        "final_avg_loglik": float(tr["loglik"][-1]),
        "max_loglik_decrease": max(0.0, -float(np.min(np.diff(tr["loglik"])))),
        "weights": w.tolist(),
        "means": mu.tolist(),
        "covariances": cov.tolist(),
        "snapshots": shown,
    }
    if sk is not None:
        out["sklearn"] = sk
    return out


def run(*, out, data_root=None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        n_heights: int | None = None, epsilon: float = 1e-4, k_max: int | None = None,
        faithful: str | None = None, max_iter: int = 5000, verbose: bool = True) -> dict:
    """Run the EM tutorial and write ``out/report.md`` and ``out/results.json``.

    Parameters
    ----------
    out : path-like
        Output folder.
    data_root : path-like or None
        The shared datasets folder; Part 2 reads ``old-faithful/faithful.csv`` under it
        (skipped with a note when absent).
    quick : bool
        Smaller sample and K range (for tests).
    seed : int
        Seed of the heights sample, the initialisations and the sampling.
    n_jobs : int
        Unused (the tutorial is small); accepted for a uniform recipe interface.
    n_heights : int or None
        Size of the heights sample (default 1000, 300 with ``quick``).
    epsilon : float
        Convergence threshold on the largest parameter change (``param_tol``).
    k_max : int or None
        Largest K for BIC/AIC (default 6, 4 with ``quick``).
    max_iter : int
        Largest number of EM iterations of every fit.
    faithful : path-like or None
        Explicit path of ``faithful.csv`` (overrides ``data_root``).
    verbose : bool
        Print a summary.
    """
    t0 = time.perf_counter()
    n = int(n_heights or (300 if quick else 1000))
    k_max = int(k_max or (4 if quick else 6))
    if n < 20:
        raise ValueError(f"n_heights must be at least 20, got {n}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    rep = Report(out, "The EM algorithm for Gaussian mixtures, worked through")
    rep.text(
        "This tutorial drives gmmspeech's EM engine one step at a time to show the textbook "
        "algorithm on real numbers. Command: `gmmspeech recipe em_tutorial"
        + (f" --data-root {data_root}" if data_root else "") + f" --out {out}`."
    )
    heights, _ = _heights(rep, n=n, seed=seed, epsilon=epsilon, k_max=k_max,
                          n_samples=2000 if quick else 10000, max_iter=max_iter,
                          n_init_select=1 if quick else 3)
    results: dict = {"recipe": "em_tutorial", "seed": seed, "quick": bool(quick), "heights": heights}

    path = Path(faithful) if faithful else (Path(data_root) / "old-faithful" / "faithful.csv"
                                            if data_root else None)
    if path is not None and path.is_file():
        results["faithful"] = _faithful(rep, path, seed=seed, epsilon=epsilon, max_iter=max_iter)
    else:
        where = path if path is not None else "old-faithful/faithful.csv (give --data-root)"
        rep.heading("Part 2: Old Faithful")
        rep.text(f"Skipped: {where} not found.")
        results["faithful_skipped"] = f"{where} not found"
    results["seconds"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        h = heights
        rows = [["heights", h["n_iter"], h["final_avg_loglik"],
                 "means " + ", ".join(f"{m:.2f}" for m in h["fitted"]["means"]),
                 f"BIC K={h['best_k_bic']}, AIC K={h['best_k_aic']}"]]
        if "faithful" in results:
            f = results["faithful"]
            rows.append(["old faithful", f["n_iter"], f["final_avg_loglik"],
                         "weights " + ", ".join(f"{v:.3f}" for v in f["weights"]), ""])
        print(format_text_table(["data", "EM iterations", "avg log-lik", "fit", "selection"], rows))
        print(f"report: {report}")
    return results
