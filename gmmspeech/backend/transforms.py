"""Vector transforms of i-vector back-ends, as scikit-learn transformers.

* :class:`LengthNorm` -- centring, optional whitening and projection onto a sphere
  (Garcia-Romero & Espy-Wilson 2011, "Analysis of i-vector length normalization"); the
  whitening covariance optionally shrunk (:func:`shrunk_covariance`) when it is estimated
  from few vectors.
* :class:`LDA` -- linear discriminant analysis: the directions maximising between-speaker
  over within-speaker variance (generalised symmetric eigenproblem), output whitened so
  the within-speaker covariance is the identity.
* :class:`WCCN` -- within-class covariance normalisation (Hatch, Kajarekar & Stolcke
  2006): ``x -> B^T x`` with ``B B^T`` the inverse within-speaker covariance.

All follow scikit-learn's conventions (``fit(X, y)`` / ``transform(X)``, fitted attributes
ending in ``_``), so they chain in a :class:`sklearn.pipeline.Pipeline`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LengthNorm", "LDA", "WCCN", "class_scatter", "shrunk_covariance", "SHRINKAGES"]

#: Covariance shrinkages of :func:`shrunk_covariance` and :class:`LengthNorm`.
SHRINKAGES = ("none", "ledoit-wolf", "oas")


def shrunk_covariance(X, *, shrinkage="ledoit-wolf", target=None):
    """``(covariance, weight)``: the covariance of the rows of ``X`` shrunk towards a target,
    ``(1 - a) S + a T``, with the weight ``a`` in [0, 1] estimated from ``X`` itself.

    ``S`` is the maximum-likelihood covariance (divided by ``n``) of the centred rows. With
    ``target=None``, ``T`` is the scaled identity ``tr(S) / d I`` and ``a`` is Ledoit and
    Wolf's (2004) estimate (``shrinkage="ledoit-wolf"``: :func:`sklearn.covariance.ledoit_wolf`)
    or the oracle approximating shrinkage of Chen et al. (2010) (``"oas"``:
    :func:`sklearn.covariance.oas`). With ``target`` a ``(d, d)`` covariance (e.g. of many
    more vectors, of other domains), ``T`` is its shape at the scale of ``S``,
    ``target tr(S) / tr(target)``, and ``a`` is Ledoit-Wolf's estimate for that target
    (Schäfer & Strimmer 2005): ``a = min(1, sum_k ||x_k x_k^T - S||_F^2 / n^2 / ||S - T||_F^2)``
    over the centred rows ``x_k`` (the estimated variance of ``S`` over its squared distance
    to ``T``; with the scaled identity as ``T`` it is scikit-learn's weight). OAS's closed
    form is for the scaled identity only. ``shrinkage="none"``: ``(S, 0.0)``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be 2-D with at least 2 rows, got shape {X.shape}")
    if shrinkage not in SHRINKAGES:
        raise ValueError(f"shrinkage={shrinkage!r} is not one of {', '.join(SHRINKAGES)}")
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    if target is None and shrinkage != "none":
        from sklearn.covariance import ledoit_wolf, oas

        cov, a = {"ledoit-wolf": ledoit_wolf, "oas": oas}[shrinkage](Xc, assume_centered=True)
        return cov, float(a)
    if target is not None:
        T = np.asarray(target, dtype=np.float64)
        if T.shape != (d, d):
            raise ValueError(f"target must be a ({d}, {d}) covariance, got shape {T.shape}")
    S = Xc.T @ Xc / n
    if shrinkage == "none":
        return S, 0.0
    if shrinkage == "oas":
        raise ValueError("shrinkage='oas' shrinks towards the scaled identity only; "
                         "a target covariance needs shrinkage='ledoit-wolf'")
    tr = float(np.trace(T))
    if not np.isfinite(tr) or tr <= 0:
        raise ValueError(f"target must be a covariance with a positive trace, got trace {tr!r}")
    T = T * (float(np.trace(S)) / tr)
    # sum_k ||x_k x_k^T - S||_F^2 = sum_k ||x_k||^4 - n ||S||_F^2
    spread = float(np.sum(np.einsum("ij,ij->i", Xc, Xc) ** 2) - n * np.sum(S * S)) / n ** 2
    dist = float(np.sum((S - T) ** 2))
    a = 1.0 if dist <= 0.0 else min(1.0, max(spread, 0.0) / dist)
    return (1.0 - a) * S + a * T, a


#: :func:`floor_covariance`: a covariance whose average variance is at most this fraction of
#: the data's has collapsed (numerically zero) and is floored relative to the data's.
COLLAPSED = 1e-10


def floor_covariance(c, rel: float, scale: float = 0.0) -> np.ndarray:
    """``c`` (symmetrised) plus ``rel`` times its own average variance on the diagonal, or,
    where that has collapsed (at most :data:`COLLAPSED` of ``scale``, the data's average
    variance), ``rel`` times ``scale``.

    A covariance that collapses (every class's vectors equal, e.g. length-normalised 1-D
    vectors, all +1 or -1) then keeps a floor on the data's scale instead of one relative to
    its own zero trace, whose inverse overflows into NaN; any other keeps its own ridge. One
    that rounding left indefinite (a difference of scatters) is lifted by its most negative
    eigenvalue as well, so the result always has a Cholesky factor.
    """
    d = c.shape[0]
    sym = 0.5 * (c + c.T)
    own = float(np.trace(sym)) / d
    base = own if own > COLLAPSED * scale else scale
    out = sym + rel * max(base, np.finfo(float).tiny) * np.eye(d)
    unit = float(np.max(np.abs(np.diag(out))))  # the checks on a unit scale: no underflow
    try:
        np.linalg.cholesky(out / unit)
    except np.linalg.LinAlgError:  # a difference of scatters can be indefinite by rounding
        lift = -float(np.linalg.eigvalsh(sym / unit)[0]) * unit
        out = out + max(lift, 0.0) * np.eye(d)
    return out


def data_scale(within, between, name: str) -> float:
    """The average variance per dimension of labelled vectors (within + between class), the
    reference of :func:`floor_covariance`; a ValueError naming ``name`` when it is zero."""
    scale = float(np.trace(within + between)) / within.shape[0]
    if not scale > 0.0:
        raise ValueError(f"{name}: every vector in X is the same (no variance to model)")
    return scale


def class_scatter(X, y, *, per_class_average: bool = False):
    """``(mean, within, between, classes)`` of labelled vectors.

    ``within`` is the pooled within-class covariance (``per_class_average=True``: the average
    of the per-class covariances, each class weighing the same, as WCCN defines it);
    ``between`` the count-weighted covariance of the class means around ``mean``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    classes, inv = np.unique(y, return_inverse=True)
    n, d = X.shape
    mean = X.mean(axis=0)
    counts = np.bincount(inv, minlength=classes.size).astype(np.float64)
    sums = np.zeros((classes.size, d))
    np.add.at(sums, inv, X)
    means = sums / counts[:, None]
    diff = X - means[inv]
    if per_class_average:
        within = np.zeros((d, d))
        for c in range(classes.size):
            dc = diff[inv == c]
            within += dc.T @ dc / counts[c]
        within /= classes.size
    else:
        within = diff.T @ diff / n
    md = means - mean
    between = (md * counts[:, None]).T @ md / n
    return mean, within, between, classes


def _supervised_tags(tags):
    """Tags of a transformer fitted on speaker labels: ``y`` is required and is a class
    label (scikit-learn then checks the classification-target handling too)."""
    tags.target_tags.required = True
    tags.input_tags.allow_nan = False
    return tags


def _check_y(est, X, y):
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None "
                         "(y: the speaker label of each vector)")
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    return y


class LengthNorm(TransformerMixin, BaseEstimator):
    """Centre, optionally whiten, and scale every vector to length ``radius``.

    Parameters
    ----------
    whiten : bool, default=True
        Whiten with the training data's covariance before normalising (as Garcia-Romero
        and Espy-Wilson recommend); otherwise only centre.
    radius : float or None, default=None
        Output length; None means ``sqrt(n_features)`` (Kaldi's convention: each dimension
        keeps unit variance on average).
    reg : float, default=1e-8
        Added to the covariance's diagonal (relative to its mean eigenvalue) before whitening.
    shrinkage : {"none", "ledoit-wolf", "oas"}, default="none"
        The whitening covariance: the sample covariance ("none"), or shrunk towards a
        target by :func:`shrunk_covariance` with a weight estimated from the data (the
        scaled identity, or ``fit``'s ``target``), for whitening from few vectors in many
        dimensions, where the smallest sample eigenvalues are noise that whitening blows up.

    Attributes
    ----------
    mean_ : ndarray (n_features,)
    whitening_ : ndarray (n_features, n_features)
        Identity when ``whiten=False``.
    shrinkage_ : float
        The shrinkage weight used (0 without shrinkage or whitening).
    n_features_in_ : int
    """

    def __init__(self, whiten=True, radius=None, reg=1e-8, shrinkage="none"):
        self.whiten = whiten
        self.radius = radius
        self.reg = reg
        self.shrinkage = shrinkage

    def fit(self, X, y=None, *, target=None):
        """Centre on ``X`` and whiten with its covariance (``shrinkage``: shrunk towards the
        scaled identity, or towards the ``(d, d)`` covariance ``target`` when given)."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if self.shrinkage not in SHRINKAGES:
            raise ValueError(f"shrinkage={self.shrinkage!r} is not one of {', '.join(SHRINKAGES)}")
        self.mean_ = X.mean(axis=0)
        d = X.shape[1]
        self.shrinkage_ = 0.0
        if self.whiten:
            with np.errstate(over="ignore", invalid="ignore"):
                centred = X - self.mean_
            spread = float(np.max(np.abs(centred)))
            if not spread > 0.0:  # a floor relative to a zero covariance whitens by ~1e154
                raise ValueError("LengthNorm: every vector in X is the same (no covariance to "
                                 "whiten with; use whiten=False)")
            if not np.isfinite(spread):
                raise ValueError("LengthNorm: X holds values too far apart to centre in float64")
            # the covariance of the centred X / spread (entries within +-1), whose eigenvalues
            # are those of X's over spread**2: the shrinkage weights are scale-free, nothing
            # overflows at any scale, and the whitening is divided by spread instead
            Xs = centred / spread
            if self.shrinkage == "none":
                c = np.cov(Xs, rowvar=False).reshape(d, d)
            else:
                c, self.shrinkage_ = shrunk_covariance(Xs, shrinkage=self.shrinkage, target=target)
            ev, evec = np.linalg.eigh(c)
            floor = float(self.reg) * max(float(np.mean(np.abs(ev))), np.finfo(float).tiny)
            self.whitening_ = evec / np.sqrt(np.maximum(ev, 0.0) + floor) / spread
        else:
            self.whitening_ = np.eye(d)
        return self

    def transform(self, X):
        check_is_fitted(self, "mean_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z, s = self._whitened_and_scales(X)
        return Z * s[:, None]

    def _whitened_and_scales(self, X):
        """``(Z, s)``: the centred, whitened rows ``Z = (X - mean_) whitening_`` and the scale
        ``s = radius / ||z||`` of each (1 for a zero row) that :meth:`transform` applies."""
        Z = (X - self.mean_) @ self.whitening_
        # ||z|| of rows divided by their largest entry: no overflow of the squares (a row of
        # 1e200s got the length inf, so scale 0)
        amax = np.max(np.abs(Z), axis=1) if Z.shape[1] else np.zeros(Z.shape[0])
        unit = np.where(amax > 0, amax, 1.0)
        norm = np.linalg.norm(Z / unit[:, None], axis=1) * unit
        r = np.sqrt(Z.shape[1]) if self.radius is None else float(self.radius)
        return Z, r / np.where(norm > 0, norm, 1.0)


class LDA(TransformerMixin, BaseEstimator):
    """Linear discriminant analysis (speaker labels), whitening the within-class scatter.

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension; None keeps ``min(n_classes - 1, n_features)``.
    reg : float, default=1e-6
        Ridge added to the within-class covariance (relative to its mean diagonal, or to
        the data's when the scatter collapses: :func:`floor_covariance`).

    Attributes
    ----------
    mean_ : ndarray (n_features,)
    scalings_ : ndarray (n_features, n_components)
        ``transform(X) = (X - mean_) @ scalings_``; ``scalings_.T @ Sw @ scalings_ = I``.
    explained_ratio_ : ndarray (n_components,)
        The generalised eigenvalues (between over within variance) kept.
    classes_ : ndarray
    """

    def __init__(self, n_components=None, reg=1e-6):
        self.n_components = n_components
        self.reg = reg

    def __sklearn_tags__(self):
        return _supervised_tags(super().__sklearn_tags__())

    def fit(self, X, y):
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        y = _check_y(self, X, y)
        mean, sw, sb, classes = class_scatter(X, y)
        if classes.size < 2:
            raise ValueError(f"LDA needs at least 2 classes in y, got {classes.size}")
        d = X.shape[1]
        k = min(classes.size - 1, d) if self.n_components is None else int(self.n_components)
        if not 1 <= k <= d:
            raise ValueError(f"n_components={self.n_components!r} must be between 1 and n_features={d}")
        sw = floor_covariance(sw, float(self.reg), data_scale(sw, sb, "LDA"))
        ev, evec = linalg.eigh(sb, sw)
        order = np.argsort(ev)[::-1][:k]
        self.mean_ = mean
        self.scalings_ = evec[:, order]
        self.explained_ratio_ = ev[order]
        self.classes_ = classes
        return self

    def transform(self, X):
        check_is_fitted(self, "scalings_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) @ self.scalings_


class WCCN(TransformerMixin, BaseEstimator):
    """Within-class covariance normalisation: ``x -> x @ B`` with ``B B^T = inv(W)``.

    ``W`` is the average over speakers of each speaker's covariance (Hatch et al. 2006).

    Parameters
    ----------
    reg : float, default=1e-6
        Ridge added to ``W`` (relative to its mean diagonal, or to the data's when the
        scatter collapses: :func:`floor_covariance`).

    Attributes
    ----------
    projection_ : ndarray (n_features, n_features)
    classes_ : ndarray
    """

    def __init__(self, reg=1e-6):
        self.reg = reg

    def __sklearn_tags__(self):
        return _supervised_tags(super().__sklearn_tags__())

    def fit(self, X, y):
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        y = _check_y(self, X, y)
        _mean, w, sb, classes = class_scatter(X, y, per_class_average=True)
        w = floor_covariance(w, float(self.reg), data_scale(w, sb, "WCCN"))
        self.projection_ = np.linalg.cholesky(np.linalg.inv(w))
        self.classes_ = classes
        return self

    def transform(self, X):
        check_is_fitted(self, "projection_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.projection_
