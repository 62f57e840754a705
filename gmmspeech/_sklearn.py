"""scikit-learn plumbing shared by the estimators whose samples are utterances.

:class:`~gmmspeech.classes.GMMClassifier` and
:class:`~gmmspeech.backend.extractor.IVectorExtractor` take a set of utterances (a list of
``(frames, dims)`` arrays): one sample is one utterance. scikit-learn's tabular input (a
2-D array or DataFrame, or its nested-list form ``X.tolist()``) is also accepted, in
scikit-learn's sense: every row is one sample, i.e. a one-frame utterance, validated by
:func:`sklearn.utils.validation.validate_data` (so ``n_features_in_``,
``feature_names_in_`` and scikit-learn's error messages are the usual ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["UtteranceInputMixin", "is_table", "validate_utterances", "check_n_features", "clone_sharing"]


def is_table(X) -> bool:
    """Whether ``X`` is tabular input (one sample per row) rather than a set of utterances.

    Utterances: a list/tuple of arrays, a 1-D object array of arrays, a 3-D array, any
    other iterable of arrays. A table: a 2-D array or DataFrame, a nested list of numbers
    (its rows are plain lists of scalars, not arrays), anything else array-like.
    """
    if isinstance(X, (list, tuple)):
        first = X[0] if len(X) else None
        if isinstance(first, (list, tuple)):  # rows of numbers, as in X.tolist()
            return len(first) == 0 or not hasattr(first[0], "__len__")
        return first is not None and np.ndim(first) == 0
    if isinstance(X, np.ndarray):
        return X.ndim == 2 or (X.dtype != object and X.ndim != 3)
    return hasattr(X, "shape") or hasattr(X, "__array__") or not hasattr(X, "__iter__")


def validate_utterances(estimator, X, *, reset: bool,
                        as_utterances: Callable[[object], list[np.ndarray]]) -> list[np.ndarray]:
    """The utterances of ``X`` (tabular input: one one-frame utterance per row).

    Sets (``reset=True``) or checks ``estimator.n_features_in_`` and ``feature_names_in_``
    as scikit-learn's ``validate_data`` does; ``as_utterances`` validates a set of
    utterances (a list of 2-D float arrays with the same number of columns).
    """
    from sklearn.utils.validation import validate_data

    if is_table(X):
        X = validate_data(estimator, X, reset=reset, dtype=(np.float64, np.float32))
        return list(X[:, None, :])
    utts = as_utterances(X)
    check_n_features(estimator, int(utts[0].shape[1]), reset=reset)
    return utts


def check_n_features(estimator, n_features: int, *, reset: bool) -> None:
    """Set or check ``n_features_in_`` for input without column names."""
    if reset:
        estimator.n_features_in_ = int(n_features)
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def clone_sharing(estimator, shared: Iterable[str]):
    """``sklearn.base.clone`` that keeps the parameters named in ``shared`` as they are.

    For a fitted model given as a parameter (a UBM): cloning it would give an unfitted
    copy, and the clone could not be fitted the way the original was.
    """
    from sklearn.base import clone

    params = estimator.get_params(deep=False)
    keep = {name: params.pop(name) for name in shared}
    new = type(estimator)(**{k: clone(v, safe=False) for k, v in params.items()})
    for name, value in keep.items():
        setattr(new, name, value)
    return new


class UtteranceInputMixin:
    """Mixin (left of scikit-learn's mixins) of an estimator whose sample is an utterance
    and that may be given a fitted UBM as its ``ubm`` parameter: input tags (a list of
    utterances, a 3-D array of equal-length ones, or a 2-D table of one-frame utterances; no
    NaN, not sparse) and a ``clone`` that shares the given UBM."""

    def __sklearn_clone__(self):
        # a fitted UBM is shared, not re-created unfitted from its constructor parameters
        return clone_sharing(self, ["ubm"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
