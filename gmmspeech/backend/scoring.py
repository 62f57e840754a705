"""The i-vector speaker back-end as one object: transforms, PLDA or cosine, enrolment, scores.

:class:`SpeakerBackend` is trained on speaker-labelled i-vectors (the background set):

* ``scoring="plda"`` (default): length normalisation (with whitening) -> LDA ->
  length normalisation -> PLDA (two-covariance or simplified). A model is the mean of its
  enrolment vectors with their count (the by-the-book PLDA LLR for several enrolment
  vectors).
* ``scoring="cosine"``: length normalisation -> LDA -> WCCN -> length normalisation,
  cosine of the enrolment mean with each test vector (Dehak et al. 2011).

It saves to and loads from gmmspeech's safe ``.npz`` model format (kind
``ivector-backend``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from gmmspeech.backend.calibration import cosine_scores
from gmmspeech.backend.plda import PLDA
from gmmspeech.backend.transforms import LDA, WCCN, LengthNorm

__all__ = ["SpeakerBackend", "save_backend", "load_backend", "SCORINGS"]

SCORINGS = ("plda", "cosine")


class SpeakerBackend(TransformerMixin, BaseEstimator):
    """Back-end of an i-vector system (see the module docstring).

    A scikit-learn transformer fitted on i-vectors with speaker labels (like :class:`LDA`):
    :meth:`transform` maps i-vectors to the space the scoring works in; trials are scored by
    :meth:`score_trials` (enrolment vectors and labels, test vectors), which is not
    scikit-learn's ``score(X, y)``.

    Parameters
    ----------
    scoring : {"plda", "cosine"}
    lda_dim : int, float or None
        LDA output dimension; a float in (0, 1] is a fraction of ``min(n_speakers - 1,
        dim)``; None skips LDA.
    plda_model : {"two-cov", "simplified"}
    plda_rank : int or None
        Speaker-subspace rank of the simplified PLDA.
    plda_iter : int
    domain_norm : {"whiten", "mean"}, default="whiten"
        What :meth:`fit` takes from its ``domain`` i-vectors (when given): the first
        length normalisation's centring and whitening ("whiten"), or its centring only,
        the whitening staying the one of the labelled data ("mean"); the second length
        normalisation is centred on them in both cases.
    whiten_shrinkage : {"none", "ledoit-wolf", "oas"}, default="none"
        The first length normalisation's whitening covariance: the sample covariance, or
        shrunk with a weight estimated from the data (:func:`~gmmspeech.backend.transforms.
        shrunk_covariance`): towards the scaled identity, except that with ``domain``
        vectors and ``domain_norm="whiten"`` "ledoit-wolf" shrinks the in-domain covariance
        towards the shape of the covariance of all training i-vectors ``X`` (so that a few
        in-domain vectors in many dimensions do not give a whitening made of noise).
    """

    def __init__(self, scoring="plda", lda_dim=None, plda_model="two-cov", plda_rank=None, plda_iter=10,
                 domain_norm="whiten", whiten_shrinkage="none"):
        self.scoring = scoring
        self.lda_dim = lda_dim
        self.plda_model = plda_model
        self.plda_rank = plda_rank
        self.plda_iter = plda_iter
        self.domain_norm = domain_norm
        self.whiten_shrinkage = whiten_shrinkage

    def _lda_components(self, n_classes, dim):
        if self.lda_dim is None:
            return None
        top = min(n_classes - 1, dim)
        if isinstance(self.lda_dim, float):
            if not 0.0 < self.lda_dim <= 1.0:
                raise ValueError(f"lda_dim={self.lda_dim!r}: a fraction must be in (0, 1]")
            return max(1, int(round(self.lda_dim * top)))
        return max(1, min(int(self.lda_dim), top))

    def fit(self, X, y, *, domain=None):
        """Train every stage on background i-vectors ``X`` with speaker labels ``y``.

        ``domain``: unlabelled i-vectors of the evaluation's own domain (e.g. its background
        and enrolment recordings when ``X`` also holds other corpora's speakers; never test
        recordings). The two length normalisations are then centred (and with
        ``domain_norm="whiten"`` the first whitened) on them instead of on ``X`` (Kaldi's
        in-domain ``ivector-mean`` and whitening before PLDA), while LDA / WCCN / PLDA still
        learn from ``X`` and ``y``. ``whiten_shrinkage`` shrinks the whitening covariance
        (in-domain with "ledoit-wolf": towards the covariance of ``X``).
        """
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        D = None
        if domain is not None:
            D = validate_data(self, domain, dtype=np.float64, ensure_min_samples=2, reset=False)
        y = np.asarray(y).astype(str)
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring={self.scoring!r} is not one of {', '.join(SCORINGS)}")
        n_classes = np.unique(y).size
        if n_classes < 2:
            raise ValueError(f"the back-end needs at least 2 speakers in the training labels, got {n_classes}")
        if self.domain_norm not in ("whiten", "mean"):
            raise ValueError(f"domain_norm={self.domain_norm!r} must be 'whiten' or 'mean'")
        on_domain = D is not None and self.domain_norm == "whiten"
        target = (np.cov(X, rowvar=False).reshape(X.shape[1], X.shape[1])
                  if on_domain and self.whiten_shrinkage == "ledoit-wolf" else None)
        self.norm1_ = LengthNorm(whiten=True, shrinkage=self.whiten_shrinkage).fit(D if on_domain else X,
                                                                                target=target)
        if D is not None:
            self.norm1_.mean_ = D.mean(axis=0)
        Z = self.norm1_.transform(X)
        Zd = None if D is None else self.norm1_.transform(D)
        k = self._lda_components(n_classes, Z.shape[1])
        self.lda_ = LDA(n_components=k).fit(Z, y) if k is not None else None
        if self.lda_ is not None:
            Z = self.lda_.transform(Z)
            Zd = None if Zd is None else self.lda_.transform(Zd)
        if self.scoring == "cosine":
            self.wccn_ = WCCN().fit(Z, y)
            Z = self.wccn_.transform(Z)
            Zd = None if Zd is None else self.wccn_.transform(Zd)
            self.norm2_ = LengthNorm(whiten=False).fit(Z if Zd is None else Zd)
            self.plda_ = None
        else:
            self.wccn_ = None
            self.norm2_ = LengthNorm(whiten=False).fit(Z if Zd is None else Zd)
            Z = self.norm2_.transform(Z)
            self.plda_ = PLDA(model=self.plda_model, n_components=self.plda_rank,
                              n_iter=int(self.plda_iter)).fit(Z, y)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # speaker labels
        return tags

    def transform(self, X):
        """i-vectors in the space the scoring works in (after every transform)."""
        check_is_fitted(self)
        Z = self.norm1_.transform(validate_data(self, X, dtype=np.float64, reset=False))
        if self.lda_ is not None:
            Z = self.lda_.transform(Z)
        if self.wccn_ is not None:
            Z = self.wccn_.transform(Z)
        return self.norm2_.transform(Z)

    def transform_with_covariance(self, X, covariances):
        """``(Z, C)``: :meth:`transform` of i-vectors ``X`` (n, R) and their posterior
        covariances ``covariances`` (n, R, R) carried through every stage: a linear map
        ``x -> (x - m) M`` takes ``C`` to ``M^T C M``, and a length normalisation, which
        scales the centred (whitened) vector by ``s = radius / ||z||``, scales ``C`` by
        ``s^2`` (the uncertainty follows the vector's scaling; the radial direction is
        not removed)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        C = np.asarray(covariances, dtype=np.float64)
        if C.shape != (X.shape[0], X.shape[1], X.shape[1]):
            raise ValueError(f"covariances must have shape ({X.shape[0]}, {X.shape[1]}, {X.shape[1]}) "
                             f"(one per i-vector), got {C.shape}")
        Z, C = _length_norm_with_covariance(self.norm1_, X, C)
        if self.lda_ is not None:
            s = self.lda_.scalings_
            Z, C = self.lda_.transform(Z), s.T @ C @ s
        if self.wccn_ is not None:
            p = self.wccn_.projection_
            Z, C = self.wccn_.transform(Z), p.T @ C @ p
        return _length_norm_with_covariance(self.norm2_, Z, C)

    def enroll(self, X, labels, counts=None):
        """``(model_labels, model_vectors, counts)``: the mean transformed vector per label
        and how many enrolment recordings it stands for (``counts``: per vector, default 1
        each; a model's count is the sum of its vectors')."""
        labels, means, counts, _ = self._enroll(X, labels, None, counts)
        return labels, means, counts

    def _enroll(self, X, labels, covariances, counts=None):
        """:meth:`enroll`, plus the covariance of each model's mean when ``covariances``
        are given (``sum C_i / m^2`` of its ``m`` vectors' transformed covariances; else
        None)."""
        if covariances is None:
            Z, C = self.transform(X), None
        else:
            Z, C = self.transform_with_covariance(X, covariances)
        labels = [str(v) for v in labels]
        order: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            order.setdefault(lab, []).append(i)
        means = np.stack([Z[rows].mean(axis=0) for rows in order.values()])
        per = np.ones(len(labels)) if counts is None else np.asarray(counts, dtype=np.float64)
        if per.shape != (len(labels),) or np.any(per < 1):
            raise ValueError(f"counts must hold one number >= 1 per enrolment vector, got shape {per.shape}")
        counts = np.array([per[rows].sum() for rows in order.values()])
        covs = None if C is None else np.stack([C[rows].sum(axis=0) / len(rows) ** 2 for rows in order.values()])
        return list(order), means, counts, covs

    def score_trials(self, enroll_vectors, enroll_labels, test_vectors, *, enroll_covariances=None,
                     test_covariances=None, enroll_counts=None):
        """``(model_labels, scores (n_tests, n_models))`` for i-vectors (not yet transformed).

        ``enroll_counts``: per enrolment vector, the number of recordings it stands for (an
        i-vector of several recordings' pooled statistics; default 1): the PLDA LLR counts a
        model as the sum of its vectors' counts (:meth:`enroll`).

        ``enroll_covariances``, ``test_covariances`` (n, R, R): the i-vectors' posterior
        covariances (:meth:`IVectorExtractor.posterior`); with them the PLDA score
        propagates each vector's uncertainty (:meth:`PLDA.llr` with covariances; a model's
        uncertainty is that of the mean of its vectors). PLDA scoring only."""
        uncertain = enroll_covariances is not None or test_covariances is not None
        if uncertain and self.plda_ is None:
            raise ValueError("uncertainty propagation (enroll_covariances/test_covariances) needs "
                             f"scoring='plda', not {self.scoring!r}")
        labels, means, counts, c_m = self._enroll(enroll_vectors, enroll_labels, enroll_covariances, enroll_counts)
        if test_covariances is None:
            T, c_t = self.transform(test_vectors), None
        else:
            T, c_t = self.transform_with_covariance(test_vectors, test_covariances)
        if self.plda_ is None:
            return labels, cosine_scores(means, T).T
        # c_m and c_t are None without covariances: the plain LLR
        return labels, self.plda_.llr(means, T, n_enroll=counts, enroll_cov=c_m, test_cov=c_t).T


def _length_norm_with_covariance(ln, X, C):
    """A fitted :class:`LengthNorm`'s output for ``X`` and the covariances ``C`` carried
    through it (whitening ``W``, then the scale ``s = radius / ||(x - m) W||``:
    ``C -> s^2 W^T C W``)."""
    w = ln.whitening_
    Z, s = ln._whitened_and_scales(X)
    return Z * s[:, None], (s ** 2)[:, None, None] * (w.T @ C @ w)


# --------------------------------------------------------------------------- files
_KIND = "ivector-backend"


def save_backend(be: SpeakerBackend, path, *, metadata=None) -> str:
    """Write a fitted :class:`SpeakerBackend` (every stage's parameters) as a safe ``.npz``."""
    from gmmspeech.mixture import io as mio

    if not hasattr(be, "norm1_"):
        raise ValueError("This SpeakerBackend instance is not fitted yet; nothing to save")
    arrays = {"norm1_mean": be.norm1_.mean_, "norm1_whitening": be.norm1_.whitening_,
              "norm2_mean": be.norm2_.mean_}
    if be.lda_ is not None:
        arrays.update(lda_mean=be.lda_.mean_, lda_scalings=be.lda_.scalings_)
    if be.wccn_ is not None:
        arrays["wccn_projection"] = be.wccn_.projection_
    if be.plda_ is not None:
        arrays.update(plda_mean=be.plda_.mean_, plda_between=be.plda_.between_covariance_,
                      plda_within=be.plda_.within_covariance_)
    info = {"params": {k: v for k, v in be.get_params().items()}, "metadata": dict(metadata or {})}
    return mio.save_arrays(path, _KIND, arrays, info)


def load_backend(path) -> SpeakerBackend:
    """Read a back-end written by :func:`save_backend` (verified; never unpickles)."""
    import os

    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio

    arrays, info = mio.load_arrays(path, _KIND, required=("norm1_mean", "norm1_whitening", "norm2_mean"))
    params = info.get("params") or {}
    try:
        be = SpeakerBackend(**{k: params[k] for k in SpeakerBackend._get_param_names() if k in params})
        d = arrays["norm1_mean"].shape[0]
        be.norm1_ = LengthNorm(whiten=True)
        be.norm1_.mean_, be.norm1_.whitening_ = arrays["norm1_mean"], arrays["norm1_whitening"]
        be.norm1_.n_features_in_ = d
        be.lda_ = None
        if "lda_scalings" in arrays:
            be.lda_ = LDA()
            be.lda_.mean_, be.lda_.scalings_ = arrays["lda_mean"], arrays["lda_scalings"]
            be.lda_.n_features_in_ = be.lda_.mean_.shape[0]
        be.wccn_ = None
        if "wccn_projection" in arrays:
            be.wccn_ = WCCN()
            be.wccn_.projection_ = arrays["wccn_projection"]
            be.wccn_.n_features_in_ = be.wccn_.projection_.shape[0]
        be.norm2_ = LengthNorm(whiten=False)
        be.norm2_.mean_ = arrays["norm2_mean"]
        be.norm2_.whitening_ = np.eye(be.norm2_.mean_.shape[0])
        be.norm2_.n_features_in_ = be.norm2_.mean_.shape[0]
        be.plda_ = None
        if "plda_between" in arrays:
            p = PLDA(model=be.plda_model)
            p.mean_ = arrays["plda_mean"]
            p.between_covariance_, p.within_covariance_ = arrays["plda_between"], arrays["plda_within"]
            p.n_features_in_ = p.mean_.shape[0]
            p._diagonalise()
            be.plda_ = p
        be.n_features_in_ = d
        for name, a in arrays.items():
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} holds non-finite values")
    except (ValueError, TypeError, KeyError, np.linalg.LinAlgError) as exc:
        raise ModelFileError(os.fspath(path), f"invalid i-vector back-end ({exc})") from None
    be.metadata_ = dict(info.get("metadata") or {})
    return be
