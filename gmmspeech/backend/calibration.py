"""Scores to log-likelihood ratios: cosine scoring, logistic-regression calibration, fusion.

:class:`LogisticCalibration` is linear logistic regression with prior-weighted classes
(Brümmer's FoCal / BOSARIS ``train_linear_fuser``): with ``S`` score columns it learns
``llr = a . s + b`` minimising the prior-weighted cross-entropy (Cllr at the target prior
``prior``), so ``llr`` is a log-likelihood ratio: thresholding it at
``-logit(prior)`` is the Bayes decision. With one column it calibrates a system; with
several it fuses them (:class:`ScoreFusion`, the calibrated weighted sum).

Train calibration and fusion on development or background trials, never on the test trials
they are applied to.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["cosine_scores", "LogisticCalibration", "ScoreFusion", "cllr", "trial_matrix"]


def cosine_scores(enroll, test):
    """Cosine similarity of every enrolment vector (rows) with every test vector: (M, N)."""
    e = np.atleast_2d(np.asarray(enroll, dtype=np.float64))
    t = np.atleast_2d(np.asarray(test, dtype=np.float64))
    if e.shape[1] != t.shape[1]:
        raise ValueError(f"enroll has {e.shape[1]} dims, test has {t.shape[1]}")
    en = np.linalg.norm(e, axis=1, keepdims=True)
    tn = np.linalg.norm(t, axis=1, keepdims=True)
    return (e / np.where(en > 0, en, 1.0)) @ (t / np.where(tn > 0, tn, 1.0)).T


def _logit(p):
    return float(np.log(p) - np.log1p(-p))


def cllr(llr, is_target) -> float:
    """Log-likelihood-ratio cost (Brümmer & du Preez 2006) in bits; 1.0 is an uninformative system."""
    llr = np.asarray(llr, dtype=np.float64)
    t = np.asarray(is_target, dtype=bool)
    if not t.any() or t.all():
        raise ValueError("cllr needs both target and non-target trials")
    c_tar = np.mean(np.logaddexp(0.0, -llr[t]))
    c_non = np.mean(np.logaddexp(0.0, llr[~t]))
    return float(0.5 * (c_tar + c_non) / np.log(2.0))


def trial_matrix(scores, model_labels, test_labels):
    """Flatten a (tests x models) score matrix into ``(scores, is_target)`` trial vectors."""
    s = np.asarray(scores, dtype=np.float64)
    tgt = np.asarray(test_labels)[:, None] == np.asarray(model_labels)[None, :]
    if s.shape != tgt.shape:
        raise ValueError(f"scores have shape {s.shape}; labels give {tgt.shape}")
    return s.ravel(), tgt.ravel()


class LogisticCalibration(BaseEstimator):
    """Linear logistic-regression calibration (one score column) or fusion (several).

    Parameters
    ----------
    prior : float, default=0.5
        Target prior at which the cross-entropy is weighted (targets and non-targets weigh
        ``prior`` and ``1 - prior`` in total, whatever their counts).
    C : float, default=1e4
        Inverse L2 penalty on the weights (large: almost unregularised; keeps the weights
        finite when the trials are separable).

    Attributes
    ----------
    coef_ : ndarray (n_features,)
    intercept_ : float
        ``llr = scores @ coef_ + intercept_``.
    """

    def __init__(self, prior=0.5, C=1e4):
        self.prior = prior
        self.C = C

    def fit(self, X, y):
        """``X``: scores (n_trials,) or (n_trials, n_systems); ``y``: True for target trials."""
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        X = validate_data(self, X, dtype=np.float64)
        y = np.asarray(y).astype(bool)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must hold one label per trial ({X.shape[0]}), got shape {y.shape}")
        if not y.any() or y.all():
            raise ValueError("calibration needs both target and non-target trials")
        p = float(self.prior)
        if not 0.0 < p < 1.0:
            raise ValueError(f"prior must be in (0, 1), got {self.prior!r}")
        sw = np.where(y, p / y.sum(), (1.0 - p) / (~y).sum()) * y.size
        # scale the scores for a well-conditioned solve, then undo it
        self._scale = np.maximum(X.std(axis=0), 1e-12)
        lr = LogisticRegression(C=float(self.C), tol=1e-10, max_iter=10_000)
        lr.fit(X / self._scale, y, sample_weight=sw)
        self.coef_ = lr.coef_[0] / self._scale
        self.intercept_ = float(lr.intercept_[0]) - _logit(p)
        return self

    def transform(self, X):
        """Calibrated log-likelihood ratios of scores (any shape ``(..., n_features)``
        or, with one feature, any shape of scores)."""
        check_is_fitted(self, "coef_")
        X = np.asarray(X, dtype=np.float64)
        if self.coef_.size == 1 and (X.ndim == 0 or X.shape[-1] != 1):
            return X * self.coef_[0] + self.intercept_
        if X.shape[-1] != self.coef_.size:
            raise ValueError(f"expected {self.coef_.size} score columns, got shape {X.shape}")
        return X @ self.coef_ + self.intercept_

    def predict(self, X):
        """The calibrated LLRs (alias of :meth:`transform`)."""
        return self.transform(X)


class ScoreFusion(LogisticCalibration):
    """Fusion of several systems' scores: ``llr = sum_i a_i s_i + b`` by logistic regression.

    ``fit`` takes ``(n_trials, n_systems)`` scores of development trials and their
    target/non-target labels; :meth:`fuse` applies it to score matrices of the same shape,
    one per system.
    """

    def fuse(self, *score_matrices):
        """Fused LLRs of score matrices of one shape, one per system (in ``fit``'s order)."""
        mats = [np.asarray(m, dtype=np.float64) for m in score_matrices]
        if len(mats) != np.size(getattr(self, "coef_", [])):
            check_is_fitted(self, "coef_")
            raise ValueError(f"fuse expects {self.coef_.size} score matrices, got {len(mats)}")
        return self.transform(np.stack(mats, axis=-1))
