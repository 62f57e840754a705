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
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
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


def _is_1d(X) -> bool:
    # np.asarray, not np.ndim: array-likes that are not arrays are read through __array__
    return np.asarray(X).ndim == 1


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


class LogisticCalibration(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Linear logistic-regression calibration (one score column) or fusion (several).

    A scikit-learn binary classifier of trials, target (``classes_[1]``, e.g. ``True``) vs
    non-target (``classes_[0]``):

    * :meth:`transform` gives the calibrated log-likelihood ratio ``X @ coef_ + intercept_``
      (independent of the prior; what is written to score files);
    * :meth:`decision_function` is the log posterior odds at the fitted ``prior``,
      ``llr + logit(prior)`` (scikit-learn's meaning of a decision function: its sign is
      :meth:`predict`'s Bayes decision; equal to the LLR at the default ``prior=0.5``);
    * :meth:`predict_proba` gives ``[P(non-target), P(target)]`` at ``prior``;
    * :meth:`score` is the accuracy (ClassifierMixin); pass ``scoring=`` for other metrics.

    It has a ``transform`` but is not a scikit-learn transformer (its output is one LLR per
    trial, not a feature table, and it needs binary labels).

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
    classes_ : ndarray (2,)
        The non-target and target labels (sorted; the target is the second).
    """

    def __init__(self, prior=0.5, C=1e4):
        self.prior = prior
        self.C = C

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """``X``: scores (n_trials, n_systems), or (n_trials,) of one system; ``y``: the
        trial labels, two classes (the larger one, e.g. ``True``, is the target)."""
        from sklearn.linear_model import LogisticRegression

        p = float(self.prior)
        if not 0.0 < p < 1.0:
            raise ValueError(f"prior must be in (0, 1), got {self.prior!r}")
        if _is_1d(X):  # one system's scores
            X = np.asarray(X)[:, None]
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size > 2:
            raise ValueError("Only binary classification is supported (target and non-target trials). "
                             f"The type of the target is {type_of_target(y)}.")
        if self.classes_.size != 2:
            raise ValueError("calibration needs both target and non-target trials (two classes), "
                             "got 1 class")
        t = y == self.classes_[1]
        sw = np.where(t, p / t.sum(), (1.0 - p) / (~t).sum()) * t.size
        # scale the scores for a well-conditioned solve, then undo it
        scale = np.maximum(X.std(axis=0), 1e-12)
        lr = LogisticRegression(C=float(self.C), tol=1e-10, max_iter=10_000)
        lr.fit(X / scale, t, sample_weight=sw)
        self.coef_ = lr.coef_[0] / scale
        self.intercept_ = float(lr.intercept_[0]) - _logit(p)
        return self

    def _llr(self, S):
        """LLRs of scores ``S`` of shape (..., n_features) (no validation beyond the width)."""
        if S.shape[-1] != self.coef_.size:
            raise ValueError(f"expected {self.coef_.size} score columns, got shape {S.shape}")
        return S @ self.coef_ + self.intercept_

    def transform(self, X):
        """Calibrated log-likelihood ratios (n_trials,) of scores (n_trials, n_systems);
        a model of one system also takes scores of shape (n_trials,)."""
        check_is_fitted(self)
        if self.n_features_in_ == 1 and _is_1d(X):
            X = np.asarray(X)[:, None]
        return self._llr(validate_data(self, X, dtype=np.float64, reset=False))

    def decision_function(self, X):
        """Log posterior odds of the target at ``prior``: ``transform(X) + logit(prior)``."""
        return self.transform(X) + _logit(float(self.prior))

    def predict_proba(self, X):
        """``[P(non-target), P(target)]`` per trial at the fitted ``prior``."""
        from scipy.special import expit

        d = self.decision_function(X)
        return np.stack([expit(-d), expit(d)], axis=1)

    def predict_log_proba(self, X):
        from scipy.special import log_expit

        d = self.decision_function(X)
        return np.stack([log_expit(-d), log_expit(d)], axis=1)

    def predict(self, X):
        """The Bayes decision at ``prior``: ``classes_[1]`` (target) where the log posterior
        odds are positive. (The LLRs are :meth:`transform`.)"""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]


class ScoreFusion(LogisticCalibration):
    """Fusion of several systems' scores: ``llr = sum_i a_i s_i + b`` by logistic regression.

    ``fit`` takes ``(n_trials, n_systems)`` scores of development trials and their
    target/non-target labels; :meth:`fuse` applies it to score matrices of the same shape,
    one per system. As a classifier it is :class:`LogisticCalibration`.
    """

    def fuse(self, *score_matrices):
        """Fused LLRs of score matrices of one shape, one per system (in ``fit``'s order)."""
        check_is_fitted(self)
        mats = [np.asarray(m, dtype=np.float64) for m in score_matrices]
        if len(mats) != self.coef_.size:
            raise ValueError(f"fuse expects {self.coef_.size} score matrices, got {len(mats)}")
        S = np.stack(mats, axis=-1)
        if not np.all(np.isfinite(S)):
            raise ValueError("fuse: the score matrices hold NaN or infinite values")
        return self._llr(S)
