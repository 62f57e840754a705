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

Cohort exclusion
----------------
A claimed model must never be part of its own cohort: its score against a target
test utterance is high, so including it inflates the cohort mean and deviation of
exactly the trials that matter. ``exclude_cohort`` (n_models, n_cohort_models) and
``exclude_impostors`` (n_impostor_utterances, n_models) are boolean masks, True where
a cohort model (an impostor utterance) belongs to the claimed model's speaker and must
be left out of that model's statistics; :func:`same_label` builds them from labels.
When the enrolled models are their own T-norm cohort, ``same_label(labels, labels)``
leaves each claimed model out of its own cohort (leave-one-out T-norm).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["znorm", "tnorm", "ztnorm", "snorm", "cohort_stats", "same_label"]

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


def same_label(a: Any, b: Any) -> np.ndarray:
    """Boolean matrix ``out[i, j] = (str(a[i]) == str(b[j]))``: an exclusion mask from labels.

    ``same_label(model_labels, cohort_labels)`` is ``exclude_cohort`` for :func:`tnorm`;
    ``same_label(impostor_labels, model_labels)`` is ``exclude_impostors`` for :func:`znorm`.
    """
    a = np.asarray([str(x) for x in a], dtype=object)
    b = np.asarray([str(x) for x in b], dtype=object)
    return a[:, None] == b[None, :]


def _mask(mask: Any, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {m.shape}")
    return m


def _excluded_stats(cohort: np.ndarray, keep_rows: np.ndarray, *, axis: int, top_n: int | None,
                    what: str) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of ``cohort`` along ``axis`` for each pattern of kept entries.

    ``keep_rows`` (n_models, n_entries): True where an entry may be used for a model.
    Returns ``(mu, sd)`` shaped like the score matrix (n_test, n_models): the statistics
    of every model column from its own allowed entries.
    """
    n_models = keep_rows.shape[0]
    other = cohort.shape[1 - axis]
    mu = np.empty((other, n_models)) if axis == 1 else np.empty((1, n_models))
    sd = np.empty_like(mu)
    patterns, inverse = np.unique(keep_rows, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for p, keep in enumerate(patterns):
        cols = np.flatnonzero(inverse == p)
        if keep.sum() < 2:
            raise ValueError(
                f"model {int(cols[0])}: after leaving out its own speaker the {what} has "
                f"{int(keep.sum())} entries; a cohort needs at least 2"
            )
        sub = cohort[:, keep] if axis == 1 else cohort[keep, :]
        m, s = cohort_stats(sub, axis=axis, top_n=top_n)
        if axis == 1:  # one statistic per test row, shared by these model columns
            mu[:, cols], sd[:, cols] = m, s
        else:  # one statistic per model column
            mu[:, cols], sd[:, cols] = m[:, cols], s[:, cols]
    return mu, sd


def znorm(scores: Any, impostor_scores: Any, *, top_n: int | None = None,
          exclude_impostors: Any = None) -> np.ndarray:
    """Zero normalisation: ``(s - mu_m) / sd_m`` with the model's impostor statistics.

    Parameters
    ----------
    scores : (n_test, n_models)
    impostor_scores : (n_impostor_utterances, n_models)
        The same models scored against impostor utterances.
    top_n : int, optional
        Adaptive: use the ``top_n`` highest impostor scores of each model.
    exclude_impostors : (n_impostor_utterances, n_models) bool, optional
        True where an impostor utterance is the model's own speaker (left out of that
        model's statistics).
    """
    s = _matrix(scores, "scores")
    imp = _matrix(impostor_scores, "impostor_scores")
    if imp.shape[1] != s.shape[1]:
        raise ValueError(
            f"impostor_scores has {imp.shape[1]} model columns but scores has {s.shape[1]}"
        )
    ex = _mask(exclude_impostors, imp.shape, "exclude_impostors")
    if ex is None or not ex.any():
        mu, sd = cohort_stats(imp, axis=0, top_n=top_n)
    else:
        mu, sd = _excluded_stats(imp, ~ex.T, axis=0, top_n=top_n, what="impostor set")
    return (s - mu) / sd


def tnorm(scores: Any, cohort_scores: Any, *, top_n: int | None = None,
          exclude_cohort: Any = None) -> np.ndarray:
    """Test normalisation: ``(s - mu_t) / sd_t`` with the test utterance's cohort statistics.

    Parameters
    ----------
    scores : (n_test, n_models)
    cohort_scores : (n_test, n_cohort_models)
        The same test utterances scored against cohort models.
    top_n : int, optional
        Adaptive: use the ``top_n`` highest cohort scores of each utterance.
    exclude_cohort : (n_models, n_cohort_models) bool, optional
        True where a cohort model is (the speaker of) the claimed model: it is left out
        of that trial's cohort. With the enrolled models as cohort pass
        ``same_label(labels, labels)`` (or ``np.eye(n_models, dtype=bool)``).
    """
    s = _matrix(scores, "scores")
    coh = _matrix(cohort_scores, "cohort_scores")
    if coh.shape[0] != s.shape[0]:
        raise ValueError(
            f"cohort_scores has {coh.shape[0]} utterance rows but scores has {s.shape[0]}"
        )
    ex = _mask(exclude_cohort, (s.shape[1], coh.shape[1]), "exclude_cohort")
    if ex is None or not ex.any():
        mu, sd = cohort_stats(coh, axis=1, top_n=top_n)
    else:
        mu, sd = _excluded_stats(coh, ~ex, axis=1, top_n=top_n, what="cohort")
    return (s - mu) / sd


def ztnorm(
    scores: Any,
    impostor_scores: Any,
    cohort_scores: Any,
    cohort_impostor_scores: Any,
    *,
    top_n: int | None = None,
    exclude_impostors: Any = None,
    exclude_cohort: Any = None,
    exclude_cohort_impostors: Any = None,
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
    exclude_impostors, exclude_cohort, exclude_cohort_impostors : bool arrays, optional
        Exclusion masks (see the module docstring) of the three normalisations.
    """
    z = znorm(scores, impostor_scores, top_n=top_n, exclude_impostors=exclude_impostors)
    zc = znorm(cohort_scores, cohort_impostor_scores, top_n=top_n,
               exclude_impostors=exclude_cohort_impostors)
    return tnorm(z, zc, top_n=top_n, exclude_cohort=exclude_cohort)


def snorm(
    scores: Any,
    impostor_scores: Any,
    cohort_scores: Any,
    *,
    top_n: int | None = None,
    exclude_impostors: Any = None,
    exclude_cohort: Any = None,
) -> np.ndarray:
    """Symmetric normalisation: the mean of the Z-norm and T-norm scores.

    ``0.5 [(s - mu_m) / sd_m + (s - mu_t) / sd_t]``, with the model side's statistics from
    ``impostor_scores`` (n_cohort_utterances, n_models) and the test side's from
    ``cohort_scores`` (n_test, n_cohort). With ``top_n`` this is adaptive S-norm
    (each side's statistics from its ``top_n`` closest cohort entries).
    ``exclude_impostors`` / ``exclude_cohort``: see :func:`znorm` / :func:`tnorm`.
    """
    return 0.5 * (znorm(scores, impostor_scores, top_n=top_n, exclude_impostors=exclude_impostors)
                  + tnorm(scores, cohort_scores, top_n=top_n, exclude_cohort=exclude_cohort))
