"""Score normalisation: Z-norm, T-norm, ZT-norm and (adaptive) S-norm.

All score matrices are laid out **utterances x models**, as :func:`gmmspeech.score`
returns them:

``scores`` (n_test, n_models)
    The raw trial scores to normalise.
``impostor_scores`` (n_impostor_utterances, n_models)
    Each enrolled model scored against impostor (cohort) utterances: Z-norm statistics
    of the *model* side (one mean and deviation per column).
``cohort_scores`` (n_test, n_cohort_models)
    Each test utterance scored against cohort (impostor) models: T-norm statistics of
    the *test* side (one mean and deviation per row).

Adaptive variants (``top_n``) estimate the statistics from the ``top_n`` highest
cohort scores only (Sturim and Reynolds 2005; Matějka et al. 2017 for AS-norm).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["znorm", "tnorm", "ztnorm", "snorm", "cohort_stats"]

_TINY = 1e-12


def _matrix(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def cohort_stats(cohort: Any, *, axis: int, top_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of cohort scores along ``axis`` (keepdims).

    With ``top_n`` only the ``top_n`` largest scores along the axis are used.
    """
    c = np.asarray(cohort, dtype=np.float64)
    n = c.shape[axis]
    if n < 2:
        raise ValueError(f"a cohort needs at least 2 scores along axis {axis}, got {n}")
    if top_n is not None:
        top_n = int(top_n)
        if top_n < 2:
            raise ValueError(f"top_n must be at least 2, got {top_n}")
        if top_n < n:
            c = -np.partition(-c, top_n - 1, axis=axis)
            c = np.take(c, np.arange(top_n), axis=axis)
    mu = c.mean(axis=axis, keepdims=True)
    sd = c.std(axis=axis, ddof=1, keepdims=True)
    return mu, np.maximum(sd, _TINY)


def znorm(scores: Any, impostor_scores: Any, *, top_n: int | None = None) -> np.ndarray:
    """Zero normalisation: ``(s - mu_m) / sd_m`` with the model's impostor statistics.

    Parameters
    ----------
    scores : (n_test, n_models)
    impostor_scores : (n_impostor_utterances, n_models)
        The same models scored against impostor utterances.
    top_n : int, optional
        Adaptive: use the ``top_n`` highest impostor scores of each model.
    """
    s = _matrix(scores, "scores")
    imp = _matrix(impostor_scores, "impostor_scores")
    if imp.shape[1] != s.shape[1]:
        raise ValueError(
            f"impostor_scores has {imp.shape[1]} model columns but scores has {s.shape[1]}"
        )
    mu, sd = cohort_stats(imp, axis=0, top_n=top_n)
    return (s - mu) / sd


def tnorm(scores: Any, cohort_scores: Any, *, top_n: int | None = None) -> np.ndarray:
    """Test normalisation: ``(s - mu_t) / sd_t`` with the test utterance's cohort statistics.

    Parameters
    ----------
    scores : (n_test, n_models)
    cohort_scores : (n_test, n_cohort_models)
        The same test utterances scored against cohort models.
    top_n : int, optional
        Adaptive: use the ``top_n`` highest cohort scores of each utterance.
    """
    s = _matrix(scores, "scores")
    coh = _matrix(cohort_scores, "cohort_scores")
    if coh.shape[0] != s.shape[0]:
        raise ValueError(
            f"cohort_scores has {coh.shape[0]} utterance rows but scores has {s.shape[0]}"
        )
    mu, sd = cohort_stats(coh, axis=1, top_n=top_n)
    return (s - mu) / sd


def ztnorm(
    scores: Any,
    impostor_scores: Any,
    cohort_scores: Any,
    cohort_impostor_scores: Any,
    *,
    top_n: int | None = None,
) -> np.ndarray:
    """Z-norm followed by T-norm with Z-normalised cohort scores.

    Parameters
    ----------
    scores : (n_test, n_models)
    impostor_scores : (n_impostor_utterances, n_models)
        Enrolled models against the Z-norm impostor utterances.
    cohort_scores : (n_test, n_cohort_models)
        Test utterances against the T-norm cohort models.
    cohort_impostor_scores : (n_impostor_utterances, n_cohort_models)
        Cohort models against the Z-norm impostor utterances (to Z-normalise the cohort).
    """
    z = znorm(scores, impostor_scores, top_n=top_n)
    zc = znorm(cohort_scores, cohort_impostor_scores, top_n=top_n)
    return tnorm(z, zc, top_n=top_n)


def snorm(
    scores: Any,
    impostor_scores: Any,
    cohort_scores: Any,
    *,
    top_n: int | None = None,
) -> np.ndarray:
    """Symmetric normalisation: the mean of the Z-norm and T-norm scores.

    ``0.5 [(s - mu_m) / sd_m + (s - mu_t) / sd_t]``, with the model side's statistics from
    ``impostor_scores`` (n_cohort_utterances, n_models) and the test side's from
    ``cohort_scores`` (n_test, n_cohort). With ``top_n`` this is adaptive S-norm
    (each side's statistics from its ``top_n`` closest cohort entries).
    """
    return 0.5 * (znorm(scores, impostor_scores, top_n=top_n)
                  + tnorm(scores, cohort_scores, top_n=top_n))
