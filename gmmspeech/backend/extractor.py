"""``IVectorExtractor``: UBM + total-variability model as a scikit-learn transformer.

``fit`` takes utterances (a list of (frames, D) feature arrays, a
:class:`~gmmspeech.corpus.store.FeatureStore`, or precomputed
:class:`~gmmspeech.backend.stats.BaumWelchStats`; a 2-D array is scikit-learn's table,
one one-frame utterance per row, see :mod:`gmmspeech._sklearn`), trains a UBM when none is given
(diagonal, optionally refined to full covariance: Kaldi's ``gmm-global-to-fgmm`` plus
full-covariance EM), computes the Baum-Welch statistics and trains the total-variability
matrix by EM; ``transform`` returns one i-vector per utterance. Saved with
:func:`save_extractor` in gmmspeech's safe ``.npz`` model format (kind
``ivector-extractor``: UBM and ``T`` in one file).
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from gmmspeech._sklearn import UtteranceInputMixin
from gmmspeech.backend.ivector import TVModel, _ubm_precisions, extract, train_tv
from gmmspeech.backend.stats import BaumWelchStats, utterance_stats

__all__ = ["IVectorExtractor", "save_extractor", "load_extractor", "auto_rank"]


def auto_rank(n_utterances: int) -> int:
    """Default i-vector dimension: 400 with plenty of data (>= 4,000 utterances), down to a
    tenth of the training utterances (at least 10) when data is small."""
    return int(min(400, max(10, n_utterances // 10)))


def _is_stats(X) -> bool:
    return isinstance(X, BaumWelchStats)


class IVectorExtractor(UtteranceInputMixin, TransformerMixin, BaseEstimator):
    """Total-variability i-vector extractor (Dehak et al. 2011).

    Parameters
    ----------
    rank : int or "auto", default="auto"
        i-vector dimension R (``"auto"``: :func:`auto_rank` of the training utterances).
    n_iter : int, default=10
        EM iterations of the total-variability matrix.
    ubm : GMM or None
        A fitted UBM; None trains one in ``fit`` (``n_components``, ``ubm_covariance``).
    n_components : int, default=256
        UBM size when the UBM is trained here.
    ubm_covariance : {"diag", "full"}, default="diag"
        ``"full"``: the diagonal UBM is turned into a full-covariance one and refined by
        ``full_iter`` EM iterations before the statistics are taken (also applied to a
        given diagonal ``ubm``).
    ubm_iter, full_iter : int
        EM iterations of the diagonal UBM / of the full-covariance refinement.
    top_c : int or None
        Posteriors of only the ``top_c`` best components per frame in the statistics.
    min_divergence : bool, default=True
    random_state : int or None
    n_jobs, backend, scheduler
        Parallelism over utterances (:func:`gmmspeech.parallel.parallel_map`).
    checkpoint : path or None
        TV training checkpoint after every iteration; ``resume=True`` continues from it.
    progress : bool

    Attributes
    ----------
    ubm_ : GMM
    T_ : ndarray (K, D, R)
    offset_ : ndarray (K, D)
    history_ : list of float
        Log-likelihood of the training statistics at each EM iteration (non-decreasing).
    rank_ : int
    n_features_in_ : int
    """

    def __init__(self, rank="auto", n_iter=10, ubm=None, n_components=256, ubm_covariance="diag",
                 ubm_iter=10, full_iter=3, top_c=None, min_divergence=True, random_state=None,
                 n_jobs=1, backend=None, scheduler=None, checkpoint=None, resume=False,
                 progress=False):
        self.rank = rank
        self.n_iter = n_iter
        self.ubm = ubm
        self.n_components = n_components
        self.ubm_covariance = ubm_covariance
        self.ubm_iter = ubm_iter
        self.full_iter = full_iter
        self.top_c = top_c
        self.min_divergence = min_divergence
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.backend = backend
        self.scheduler = scheduler
        self.checkpoint = checkpoint
        self.resume = resume
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    def _par(self):
        return dict(n_jobs=self.n_jobs, backend=self.backend, scheduler=self.scheduler)

    def _utterances(self, X, *, reset=None):
        """Utterances of ``X`` (a FeatureStore is passed through). ``reset``: True in
        ``fit`` (sets ``n_features_in_``/``feature_names_in_``), False to check them, None
        for no bookkeeping (statistics under a given UBM)."""
        from gmmspeech._sklearn import is_table, validate_utterances
        from gmmspeech.classes import as_utterances
        from gmmspeech.corpus.store import FeatureStore

        if isinstance(X, FeatureStore):
            if reset and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X
        if reset is None:
            if is_table(X):
                from sklearn.utils import check_array

                return list(check_array(X, dtype=(np.float64, np.float32))[:, None, :])
            return as_utterances(X)
        return validate_utterances(self, X, reset=reset, as_utterances=as_utterances)

    def _train_ubm(self, source):
        from gmmspeech.speaker.ubm import full_covariance_ubm, train_ubm

        if self.ubm is not None:
            ubm = self.ubm
        else:
            ubm = train_ubm(source, int(self.n_components), "diag", max_iter=int(self.ubm_iter),
                            random_state=self.random_state, progress=self.progress, **self._par())
        if self.ubm_covariance == "full" and ubm.covariance_type != "full":
            ubm = full_covariance_ubm(ubm, source, max_iter=int(self.full_iter),
                                      random_state=self.random_state, progress=self.progress,
                                      **self._par())
        elif self.ubm_covariance not in ("diag", "full"):
            raise ValueError(f"ubm_covariance={self.ubm_covariance!r} must be 'diag' or 'full'")
        return ubm

    def stats(self, X, *, ubm=None) -> BaumWelchStats:
        """Baum-Welch statistics of utterances under the (fitted or given) UBM."""
        if _is_stats(X):
            return X
        if ubm is None:
            self._check_fitted()
            ubm, X = self.ubm_, self._utterances(X, reset=False)
        else:
            X = self._utterances(X)
        return utterance_stats(ubm, X, top_c=self.top_c,
                               progress=self.progress, **self._par())

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None):
        """Train the UBM (unless given) and the total-variability matrix on utterances."""
        if _is_stats(X):
            if self.ubm is None:
                raise ValueError("fitting on BaumWelchStats needs the UBM they came from (ubm=...)")
            ubm, st = self.ubm, X
        else:
            src = self._utterances(X, reset=True)
            ubm = self._train_ubm(src)
            d = int(np.asarray(ubm.means_).shape[1])
            if isinstance(src, list) and src[0].shape[1] != d:
                raise ValueError(f"X has {src[0].shape[1]} features, but the UBM has {d}")
            st = self.stats(src, ubm=ubm)
        rank = auto_rank(len(st)) if self.rank == "auto" else int(self.rank)
        if rank < 1:
            raise ValueError(f"rank must be >= 1 or 'auto', got {self.rank!r}")
        model, history = train_tv(ubm, st.n, st.f, rank, n_iter=int(self.n_iter),
                                  min_divergence=bool(self.min_divergence),
                                  random_state=self.random_state, checkpoint=self.checkpoint,
                                  resume=bool(self.resume), progress=self.progress, **self._par())
        self._set_fitted(ubm, model, history)
        return self

    def _set_fitted(self, ubm, model: TVModel, history):
        self.ubm_ = ubm
        self.model_ = model
        self.T_ = model.T
        self.offset_ = model.offset
        self.history_ = list(history)
        self.rank_ = model.rank
        self.n_features_in_ = int(np.asarray(ubm.means_).shape[1])

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This IVectorExtractor instance is not fitted yet. Call 'fit' first.")

    def transform(self, X):
        """i-vectors (posterior means), shape (n_utterances, rank_)."""
        self._check_fitted()
        st = self.stats(X)
        return extract(self.model_, st.n, st.f, **self._par())

    def posterior(self, X):
        """``(means (U, R), covariances (U, R, R))`` of the i-vector posteriors."""
        self._check_fitted()
        st = self.stats(X)
        return extract(self.model_, st.n, st.f, return_cov=True, **self._par())


# --------------------------------------------------------------------------- files
_KIND = "ivector-extractor"


def save_extractor(extractor: IVectorExtractor, path, *, metadata=None) -> str:
    """Write a fitted extractor (UBM + T + offset) as a safe ``.npz`` model file."""
    from gmmspeech.mixture import io as mio

    extractor._check_fitted()
    ubm = extractor.ubm_
    arrays = {"ubm_weights": ubm.weights_, "ubm_means": ubm.means_,
              "ubm_covariances": ubm.covariances_, "T": extractor.T_, "offset": extractor.offset_,
              "history": np.asarray(extractor.history_, dtype=np.float64)}
    info = {"ubm_covariance_type": ubm.covariance_type, "top_c": extractor.top_c,
            "ubm_dtype": np.dtype(getattr(ubm, "dtype", np.float32)).name,
            "rank": int(extractor.rank_), "metadata": dict(metadata or {})}
    return mio.save_arrays(path, _KIND, arrays, info)


def load_extractor(path) -> IVectorExtractor:
    """Read an extractor written by :func:`save_extractor` (verified; never unpickles)."""
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio
    from gmmspeech.mixture.gmm import GMM

    arrays, info = mio.load_arrays(path, _KIND, required=("ubm_weights", "ubm_means",
                                                          "ubm_covariances", "T", "offset"))
    p = os.fspath(path)
    try:
        ubm = GMM.from_params(arrays["ubm_weights"], arrays["ubm_means"], arrays["ubm_covariances"],
                              covariance_type=str(info.get("ubm_covariance_type")),
                              dtype=np.dtype(str(info.get("ubm_dtype", "float32"))).type)
        t = arrays["T"]
        k, d = ubm.means_.shape
        if t.ndim != 3 or t.shape[:2] != (k, d) or arrays["offset"].shape != (k, d):
            raise ValueError(f"T {t.shape} / offset {arrays['offset'].shape} do not match the UBM ({k}, {d})")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(arrays["offset"]))):
            raise ValueError("T or offset holds non-finite values")
        model = TVModel(t, arrays["offset"], _ubm_precisions(ubm))
    except (ValueError, TypeError, KeyError, np.linalg.LinAlgError) as exc:
        raise ModelFileError(p, f"invalid i-vector extractor ({exc})") from None
    top_c = info.get("top_c")
    ext = IVectorExtractor(rank=model.rank, ubm=ubm, top_c=None if top_c is None else int(top_c))
    ext._set_fitted(ubm, model, [float(v) for v in arrays.get("history", np.zeros(0))])
    ext.metadata_ = dict(info.get("metadata") or {})
    return ext
