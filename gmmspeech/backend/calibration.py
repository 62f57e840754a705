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

__all__ = ["cosine_scores", "LogisticCalibration", "ScoreFusion", "cllr", "trial_matrix",
           "fusion_check"]


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
    if llr.shape != t.shape:
        raise ValueError(f"cllr: llr has shape {llr.shape} but is_target has {t.shape}")
    if np.isnan(llr).any():
        raise ValueError("cllr: llr holds NaN values")
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


def _standardise(X):
    """``(Z, centre, scale)`` with ``Z = (X - centre) / scale`` column by column: the mean and
    the standard deviation (1 for a constant column), computed on copies divided by each
    column's largest magnitude, so that scores up to ~1e307 do not overflow their squares."""
    amax = np.max(np.abs(X), axis=0)
    unit = np.where(amax > 0, amax, 1.0)
    U = X / unit  # within +-1: no difference or square below overflows
    centre_u = U.mean(axis=0)
    sd_u = (U - centre_u).std(axis=0)
    # a spread at rounding level of the scores' magnitude is no spread: constant column
    scale_u = np.where(sd_u > 1e-12, sd_u, 1.0 / unit)
    return (U - centre_u) / scale_u, centre_u * unit, scale_u * unit


def _nonneg_logistic(X, t, sw, C):
    """``(w, b)`` minimising ``sum_i sw_i log(1 + exp(-y_i (x_i . w + b))) + ||w||^2 / (2 C)``
    (``y_i = +1`` for targets, ``-1`` otherwise) subject to ``w >= 0``: scikit-learn's
    ``LogisticRegression`` objective (divided by ``C``) with bounds, by L-BFGS-B."""
    from scipy.optimize import minimize
    from scipy.special import expit

    y = np.where(t, 1.0, -1.0)
    n = X.shape[0]
    a = sw / n  # the objective divided by C * n: same minimiser, O(1) values

    def fun(theta):
        w, b = theta[:-1], theta[-1]
        m = y * (X @ w + b)
        r = -a * y * expit(-m)  # d loss / d (x . w + b)
        f = float(a @ np.logaddexp(0.0, -m) + 0.5 * (w @ w) / (C * n))
        g = np.empty_like(theta)
        g[:-1] = X.T @ r + w / (C * n)
        g[-1] = r.sum()
        return f, g

    d = X.shape[1]
    bounds = [(0.0, None)] * d + [(None, None)]
    res = minimize(fun, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12})
    if not np.all(np.isfinite(res.x)):
        raise ValueError("non-negative logistic regression did not converge to finite weights")
    return res.x[:-1], float(res.x[-1])


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
    non_negative : bool, default=False
        Constrain every weight to be >= 0 (the intercept is free): a system's higher score
        can only mean "more likely the target", so in a fusion a system can only add
        evidence, never be subtracted. Solved by L-BFGS-B with bounds on the same
        objective as scikit-learn's ``LogisticRegression`` (prior-weighted cross-entropy
        plus ``||w||^2 / (2 C)``).

    Attributes
    ----------
    coef_ : ndarray (n_features,)
    intercept_ : float
        ``llr = scores @ coef_ + intercept_``.
    classes_ : ndarray (2,)
        The non-target and target labels (sorted; the target is the second).
    """

    def __init__(self, prior=0.5, C=1e4, non_negative=False):
        self.prior = prior
        self.C = C
        self.non_negative = non_negative

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        # non-negative weights cannot fit features that speak against the target (they are
        # scores of systems, higher = more target-like): no claim of a good score on
        # arbitrary tables
        tags.classifier_tags.poor_score = bool(self.non_negative)
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
        # standardise the scores for a well-conditioned solve, then undo it: the intercept is
        # not penalised, so centring leaves the minimiser unchanged, while an offset far
        # larger than the spread (scores around 1e8 +- 1) left the uncentred solve at w = 0
        Z, centre, scale = _standardise(X)
        if self.non_negative:
            w, b = _nonneg_logistic(Z, t, sw, float(self.C))
        else:
            lr = LogisticRegression(C=float(self.C), tol=1e-10, max_iter=10_000)
            lr.fit(Z, t, sample_weight=sw)
            w, b = lr.coef_[0], float(lr.intercept_[0])
        self.coef_ = w / scale
        self.intercept_ = float(b) - float((centre / scale) @ w) - _logit(p)
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
    one per system. As a classifier it is :class:`LogisticCalibration`; unlike it, the
    weights are non-negative by default (``non_negative=True``: a system can only add).
    """

    def __init__(self, prior=0.5, C=1e4, non_negative=True):
        super().__init__(prior=prior, C=C, non_negative=non_negative)

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


def _id_accuracy(scores, is_target, tests):
    """Identification accuracy of flattened trials: per test recording (``tests``: one id per
    trial), is its highest-scored trial a target? Tests without a target trial are skipped."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(is_target, dtype=bool)
    _u, inv = np.unique(np.asarray(tests), return_inverse=True)
    order = np.lexsort((-s, inv))  # by test, best score first
    first = np.ones(order.size, bool)
    first[1:] = inv[order][1:] != inv[order][:-1]
    has_target = np.zeros(_u.size, bool)
    np.logical_or.at(has_target, inv, t)
    best_is_target = t[order][first]
    keep = has_target[inv[order][first]]
    return float(best_is_target[keep].mean()) if keep.any() else float("nan")


def fusion_check(X, y, groups, *, tests=None, base=0, n_splits=5, min_gain=0.02, prior=0.5, C=1e4):
    """Does fusing the other systems with system ``base`` beat ``base`` alone on held-out trials?

    Cross-validation over ``groups`` (e.g. the speaker of each trial's test recording;
    ``GroupKFold``, at most ``n_splits`` folds): in each fold a non-negative
    :class:`ScoreFusion` of all columns and a calibration of column ``base`` alone are
    trained on the other folds and applied to the held-out trials. The held-out LLRs of
    both are compared by Cllr, EER and (with ``tests``, the test recording of each trial)
    identification accuracy. The fusion is kept only when its Cllr is lower by more than
    ``min_gain`` (relative) and its accuracy is no worse; otherwise the other systems should
    be dropped (weight 0: exactly the ``base`` system's scores). Cllr, the objective the
    fusion minimises, judges every trial's score; the EER of a few hundred held-out target
    trials moves by whole trials and is reported, not used.

    Parameters
    ----------
    X : array (n_trials, n_systems)
    y : array (n_trials,) of bool
        Target trials.
    groups : array (n_trials,)
        Cross-validation groups (no group is in a training and a held-out part).
    tests : array (n_trials,), optional
        Test recording of each trial, for the identification accuracy.
    min_gain : float
        Relative Cllr improvement the fusion must bring (0.02: 2 %).

    Returns
    -------
    dict
        ``keep`` (bool), ``cllr``, ``eer``, ``accuracy`` (each ``{"base": .., "fusion": ..}``,
        held-out), ``n_folds``.
    """
    from sklearn.model_selection import GroupKFold

    from gmmspeech.metrics import eer as eer_fn

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    groups = np.asarray(groups)
    k = min(int(n_splits), np.unique(groups).size)
    if k < 2:
        raise ValueError("fusion_check needs trials of at least 2 groups")
    llr = {"base": np.full(y.size, np.nan), "fusion": np.full(y.size, np.nan)}
    for tr, te in GroupKFold(n_splits=k).split(X, y, groups):
        if y[tr].all() or not y[tr].any():
            raise ValueError("fusion_check: a training fold has trials of one class only")
        fu = ScoreFusion(prior=prior, C=C).fit(X[tr], y[tr])
        cal = LogisticCalibration(prior=prior, C=C, non_negative=True).fit(X[tr, base], y[tr])
        llr["fusion"][te] = fu.transform(X[te])
        llr["base"][te] = cal.transform(X[te, base])
    out: dict = {"n_folds": k, "cllr": {}, "eer": {}, "accuracy": {}}
    for name, v in llr.items():
        out["cllr"][name] = cllr(v, y)
        out["eer"][name] = float(eer_fn(v[y], v[~y]))
        out["accuracy"][name] = None if tests is None else _id_accuracy(v, y, tests)
    acc_ok = tests is None or out["accuracy"]["fusion"] >= out["accuracy"]["base"]
    out["keep"] = bool(out["cllr"]["fusion"] < (1.0 - float(min_gain)) * out["cllr"]["base"] and acc_ok)
    return out
