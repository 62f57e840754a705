"""Choosing the number of components by an information criterion (BIC or AIC)."""

from __future__ import annotations

import numpy as np

from gmmspeech.mixture.gmm import GMM

CRITERIA = ("bic", "aic")


def select_n_components(X, candidates, criterion="bic", **gmm_kwargs):
    """Fit a :class:`GMM` for every candidate ``K`` and keep the best by BIC or AIC.

    Parameters
    ----------
    X : array (N, D) or (N,)
    candidates : iterable of int
        Numbers of components to try.
    criterion : {"bic", "aic"}
        Lower is better.
    **gmm_kwargs
        Passed to :class:`GMM` (``covariance_type``, ``random_state``, ``n_init``, ...).

    Returns
    -------
    best_model : GMM
        The fitted model with the lowest criterion.
    table : list of dict
        One row per candidate, in the given order: ``{"n_components", "bic", "aic",
        "log_likelihood" (total over X), "n_parameters", "converged", "n_iter"}`` (the
        last two: ``converged_`` and ``n_iter_`` of that candidate's fit, so a caller can
        report which K stopped at ``max_iter`` instead of reading ConvergenceWarnings).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"Invalid value for 'criterion': {criterion!r}. 'criterion' should be in {list(CRITERIA)}")
    cands = [int(k) for k in candidates]
    if not cands:
        raise ValueError("candidates is empty: give at least one number of components")
    if any(k < 1 for k in cands):
        raise ValueError(f"candidates must be positive integers; got {cands}")
    if "n_components" in gmm_kwargs:
        raise TypeError("select_n_components: pass the numbers of components as 'candidates', not 'n_components'")
    table = []
    best, best_score = None, np.inf
    for k in cands:
        model = GMM(n_components=k, **gmm_kwargs).fit(X)
        Xc = model._check_X(X, reset=False)
        ll = float(np.sum(model.score_samples(Xc)))
        row = {
            "n_components": k,
            "bic": model.bic(Xc),
            "aic": model.aic(Xc),
            "log_likelihood": ll,
            "n_parameters": model._n_parameters(),
            "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_),
        }
        table.append(row)
        if row[criterion] < best_score:
            best, best_score = model, row[criterion]
    return best, table
