"""One model per class of a labelled set of utterances: :class:`GMMClassifier`.

Every class (digit, word, language, speaker, ...) gets its own model of the frames of
its training utterances: a GMM trained by EM, or a GMM MAP-adapted from a universal
background model. An utterance ``X`` (a ``(frames, dims)`` array) is assigned the class
with the largest posterior

``log P(c | X) = s(X) * log p(X | c) + log P(c) - log Z``,

where ``log p(X | c) = sum_t log p(x_t | c)`` is the total log-likelihood of its frames
under the class model and ``P(c)`` the class prior. With ``s = 1`` this is Bayes' rule
under the assumption that frames are independent. They are not (overlapping 25 ms
windows every 10 ms, deltas over +-4 frames), so the total log-likelihood counts the
same evidence many times and its posteriors are nearly always 0 or 1, wrong ones
included. ``likelihood_scale="average"`` (the default) uses ``s = 1 / frames``, the
average log-likelihood per frame, which is independent of the utterance's length; a
number uses that fixed ``s``. The scale never changes which class has the largest
likelihood; it only weighs the evidence against the priors and sets how sharp the
probabilities are (see the README for the log-loss of each choice on a development
split).

The kind of class model is chosen from a table (:data:`MODEL_TYPES`, ``model="gmm"``):
an entry says how to fit a model on a list of utterances, how to score utterances
(total log-likelihood of each) and how to save and load it in the validated ``.npz``
format of :mod:`gmmspeech.mixture.io`. Two are built in: ``"gmm"`` (a GMM per class, frames as a bag)
and ``"hmm"`` (a left-to-right :class:`~gmmspeech.mixture.hmm.GMMHMM` per class, for
isolated words and digits, where the order of the sounds matters; settings from
:func:`hmm_model_params`). :func:`register_model_type` adds more.

:func:`save_classifier` / :func:`load_classifier` keep a fitted classifier in a folder:
``classes.json`` (format, classes, priors, settings, caller metadata such as the
feature configuration; JSON, never pickle) plus one model file per class.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from gmmspeech._sklearn import UtteranceInputMixin, validate_utterances
from gmmspeech.errors import ModelFileError

__all__ = [
    "GMMClassifier",
    "ModelType",
    "MODEL_TYPES",
    "register_model_type",
    "hmm_model_params",
    "default_feature_config",
    "as_utterances",
    "save_classifier",
    "load_classifier",
    "CLASSES_FORMAT",
]

CLASSES_FORMAT = "gmmspeech-classes"
CLASSES_FORMAT_VERSION = 1
_CLASSES_JSON = "classes.json"


# --------------------------------------------------------------------------- model types
@dataclass(frozen=True)
class ModelType:
    """How one kind of class model is trained, scored and stored.

    Attributes
    ----------
    name : str
        The value of ``GMMClassifier(model=...)``.
    fit : callable
        ``fit(utterances, *, settings, random_state, ubm) -> model``: ``utterances`` is a
        list of ``(frames, dims)`` float arrays of one class; ``settings`` the
        classifier's parameters (``n_components``, ``covariance_type``, ``max_iter``,
        ``tol``, ``reg_covar``, ``init_params``, ``n_init``, ``relevance_factor``,
        ``adapt``, ``model_params``); ``ubm`` a fitted GMM or None.
    score : callable
        ``score(model, utterances) -> (n_utterances,)`` float64 total log-likelihoods.
    save : callable
        ``save(model, path, metadata) -> str``: write one model file.
    load : callable
        ``load(path) -> model``; raises :class:`~gmmspeech.errors.ModelFileError` for a
        bad file and never executes code from it.
    supports_ubm : bool
        Whether ``ubm=`` (MAP adaptation) is meaningful for this model type.
    check : callable or None
        ``check(settings)`` raises ValueError for settings this type cannot fit with
        (called before any training).
    """

    name: str
    fit: Callable[..., Any]
    score: Callable[[Any, list], np.ndarray]
    save: Callable[[Any, str, dict], str]
    load: Callable[[str], Any]
    supports_ubm: bool = False
    check: Callable[[dict], None] | None = None


# Class models and the pooled UBM are fitted with scikit-learn's schedule (the gain rule on the
# average log-likelihood, plain EM), not GMM's converge-in-the-parameters default: these models
# (K=8-64, 60 dims) never converge in their parameters within max_iter, and on FSDD digits the
# longer fits were 2-2.5x slower for the same test accuracy (README, "EM that converges").
_CLASS_EM_SCHEDULE = {"accelerate": None, "stopping": "gain"}


def _em_schedule(model_params) -> dict:
    """GMM keyword arguments of a class model: the class schedule, then ``model_params``."""
    return {**_CLASS_EM_SCHEDULE, **(model_params or {})}


def _gmm_fit(utterances, *, settings, random_state, ubm):
    if ubm is not None:
        from gmmspeech.speaker.map import map_adapt

        return map_adapt(ubm, utterances, relevance_factor=settings["relevance_factor"],
                         adapt=settings["adapt"])
    from gmmspeech.mixture.gmm import GMM

    X = np.concatenate(utterances) if len(utterances) > 1 else utterances[0]
    gmm = GMM(settings["n_components"], covariance_type=settings["covariance_type"],
              max_iter=settings["max_iter"], tol=settings["tol"], reg_covar=settings["reg_covar"],
              init_params=settings["init_params"], n_init=settings["n_init"],
              random_state=random_state, n_jobs=1, **_em_schedule(settings["model_params"]))
    return gmm.fit(X)


def _concat(utterances):
    lengths = np.fromiter((u.shape[0] for u in utterances), dtype=np.int64, count=len(utterances))
    X = np.concatenate(utterances) if len(utterances) > 1 else utterances[0]
    starts = np.concatenate([[0], np.cumsum(lengths[:-1])])
    return X, starts


def _gmm_score(model, utterances) -> np.ndarray:
    X, starts = _concat(utterances)
    return np.add.reduceat(model.score_samples(X), starts)


def _gmm_save(model, path, metadata):
    from gmmspeech.mixture import io as mio

    return mio.save(model, path, metadata=metadata)


def _load_kind(path, cls_name: str, model_name: str):
    """Load a model file and check that it holds a ``cls_name`` (ModelFileError if not)."""
    from gmmspeech.mixture import io as mio

    model = mio.load(path)
    if type(model).__name__ != cls_name:
        raise ModelFileError(path, f"holds a {type(model).__name__}, but classes.json says "
                                   f"model {model_name!r} (a {cls_name} per class)")
    return model


def _gmm_load(path):
    return _load_kind(path, "GMM", "gmm")


def hmm_model_params(settings: Mapping[str, Any]) -> dict:
    """The :class:`~gmmspeech.mixture.hmm.GMMHMM` parameters of ``model="hmm"`` class models:
    :data:`~gmmspeech.mixture.hmm.WORD_HMM_DEFAULTS` (the dev-chosen word-model settings),
    the classifier's ``covariance_type`` and ``reg_covar``, then ``model_params`` (which
    win: ``n_states``, ``n_mix``, ``max_jump``, ``max_iter``, ...)."""
    from gmmspeech.mixture.hmm import WORD_HMM_DEFAULTS

    return {**WORD_HMM_DEFAULTS, "covariance_type": settings["covariance_type"],
            "reg_covar": settings["reg_covar"], **(settings["model_params"] or {})}


def _hmm_check(settings) -> None:
    from gmmspeech.mixture.hmm import GMMHMM

    try:
        GMMHMM(**hmm_model_params(settings))._check_parameters()
    except TypeError as exc:  # an unknown keyword in model_params
        raise ValueError(f"model_params for model='hmm': {exc}") from None


def _hmm_fit(utterances, *, settings, random_state, ubm):
    from gmmspeech.mixture.hmm import GMMHMM

    return GMMHMM(**hmm_model_params(settings), random_state=random_state).fit(utterances)


def _hmm_score(model, utterances) -> np.ndarray:
    return model.score_sequences(utterances)


def _hmm_load(path):
    return _load_kind(path, "GMMHMM", "hmm")


#: Model types by name (``GMMClassifier(model=name)``).
MODEL_TYPES: dict[str, ModelType] = {
    "gmm": ModelType("gmm", _gmm_fit, _gmm_score, _gmm_save, _gmm_load, supports_ubm=True),
    # one left-to-right GMM-HMM per class (isolated words, digits): the order of sounds counts
    "hmm": ModelType("hmm", _hmm_fit, _hmm_score, _gmm_save, _hmm_load, check=_hmm_check),
}


def register_model_type(model_type: ModelType, *, replace: bool = False) -> None:
    """Add ``model_type`` to :data:`MODEL_TYPES` (``replace=True`` to overwrite a name)."""
    if not isinstance(model_type, ModelType):
        raise TypeError(f"model_type must be a ModelType, got {type(model_type).__name__}")
    if model_type.name in MODEL_TYPES and not replace:
        raise ValueError(f"model type {model_type.name!r} is already registered")
    MODEL_TYPES[model_type.name] = model_type


def _model_type(name) -> ModelType:
    try:
        return MODEL_TYPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"model={name!r} is not a known class-model type; choose one of "
            f"{', '.join(map(repr, sorted(MODEL_TYPES)))}"
        ) from None


# --------------------------------------------------------------------------- input
def as_utterances(X, *, name: str = "X") -> list[np.ndarray]:
    """Validate a set of utterances and return it as a list of 2-D float arrays.

    Accepted: a list or tuple of ``(frames, dims)`` arrays (a 1-D array is one
    univariate utterance), a 1-D object array of such arrays (what scikit-learn's
    indexing makes of a list), or a 3-D numeric array ``(n_utterances, frames, dims)``.
    A 2-D numeric array is refused here (it could be one utterance or one-frame samples);
    :class:`GMMClassifier` takes it in scikit-learn's sense, one sample (a one-frame
    utterance) per row, through :func:`sklearn.utils.validation.validate_data`.

    Raises
    ------
    ValueError
        Naming the offending utterance (index) and the problem.
    """
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 3:
            items = list(X)
        elif X.ndim == 2:
            raise ValueError(
                f"{name} is one 2-D array of shape {X.shape}; GMMClassifier takes a list of "
                f"utterances, each a (frames, dims) array: pass [{name}] for one utterance, or "
                f"{name}[:, None, :] to treat every row as a one-frame utterance"
            )
        else:
            raise ValueError(
                f"{name} must be a list of (frames, dims) arrays or a 3-D array, got a "
                f"{X.ndim}-D array"
            )
    elif isinstance(X, np.ndarray):  # object array
        if X.ndim != 1:
            raise ValueError(f"{name}: an object array of utterances must be 1-D, got shape {X.shape}")
        items = list(X)
    elif isinstance(X, (list, tuple)):
        items = list(X)
    elif isinstance(X, (str, bytes, Mapping)) or not hasattr(X, "__iter__"):
        raise ValueError(f"{name} must be a list of (frames, dims) arrays, got {type(X).__name__}")
    else:
        items = list(X)
    if not items:
        raise ValueError(f"{name} holds no utterance (0 samples); at least 1 is required")
    out = []
    dims = None
    for i, u in enumerate(items):
        a = np.asarray(u)
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name}[{i}] must hold real numbers, got dtype {a.dtype}")
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a (frames, dims) array, got {a.ndim}-D shape {a.shape}")
        if a.shape[0] < 1:
            raise ValueError(f"{name}[{i}] has no frames (shape {a.shape})")
        if dims is None:
            dims = a.shape[1]
        elif a.shape[1] != dims:
            raise ValueError(f"{name}[{i}] has {a.shape[1]} features per frame, {name}[0] has {dims}")
        if a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}[{i}] contains NaN or infinity")
        out.append(a)
    return out


# --------------------------------------------------------------------------- workers
def _fit_class(type_name, utterances, settings, random_state, ubm):
    return _model_type(type_name).fit(utterances, settings=settings, random_state=random_state,
                                      ubm=ubm)


def _score_class(type_name, model, utterances):
    return np.asarray(_model_type(type_name).score(model, utterances), dtype=np.float64)


def _load_ubm(ubm):
    if ubm is None or (isinstance(ubm, str) and ubm == "fit"):
        return ubm
    if isinstance(ubm, (str, os.PathLike)):
        from gmmspeech.mixture import io as mio

        return mio.load(ubm)
    if not hasattr(ubm, "means_"):
        raise ValueError("ubm is not fitted: give a fitted GMM, a model file, 'fit' or None")
    return ubm


# --------------------------------------------------------------------------- estimator
class GMMClassifier(UtteranceInputMixin, ClassifierMixin, BaseEstimator):
    """One Gaussian mixture (or other generative model) per class of utterances.

    Parameters
    ----------
    n_components : int, default 8
        Components per class model (and of the UBM trained with ``ubm="fit"``). Not used
        by ``model="hmm"``, whose Gaussians per state are ``model_params["n_mix"]``.
    covariance_type : {"diag", "full", "spherical", "tied"}, default "diag"
        ``"diag"`` or ``"full"`` with a UBM or with ``model="hmm"``.
    max_iter, tol, reg_covar, init_params, n_init
        EM settings of every GMM class model (see :class:`gmmspeech.GMM`); ``model="hmm"``
        uses ``reg_covar`` only (its Baum-Welch settings go in ``model_params``).
    ubm : None, "fit", GMM or path, default None
        None: every class model is trained by EM on its own frames. A fitted GMM or a
        model file: every class model is MAP-adapted from it (``relevance_factor``,
        ``adapt``; Reynolds et al. 2000). ``"fit"``: a UBM with ``n_components``
        components is first trained on the pooled training frames of all classes (so
        cross-validation never sees held-out data).
    relevance_factor : float or dict, default 16.0
    adapt : str, default "m"
        MAP settings (see :func:`gmmspeech.map_adapt`).
    priors : None, "uniform" or array-like, default None
        Class priors in the order of ``classes_``; None: the classes' shares of the
        training utterances.
    likelihood_scale : "average", "total" or float, default "average"
        The factor ``s`` on each utterance's total log-likelihood in the posterior:
        ``1 / frames`` (average log-likelihood per frame), 1 (frames independent), or
        this number. See the module docstring.
    model : str, default "gmm"
        Class-model type, a key of :data:`MODEL_TYPES`: ``"gmm"`` or ``"hmm"`` (one
        left-to-right :class:`gmmspeech.GMMHMM` per class, scored by the forward
        log-likelihood of the whole utterance).
    model_params : dict or None
        Extra keyword arguments for the class models (e.g. ``{"var_floor_rel": 0}``
        for :class:`gmmspeech.GMM`; ``{"n_states": 8, "n_mix": 4}`` for
        ``model="hmm"``, whose defaults are the dev-chosen
        :data:`~gmmspeech.mixture.hmm.WORD_HMM_DEFAULTS`). Class GMMs (and the UBM of
        ``ubm="fit"``) are fitted with scikit-learn's schedule, ``{"accelerate": None,
        "stopping": "gain"}`` (stop when the average log-likelihood gains less than
        ``tol``); give ``{"accelerate": "anderson", "stopping": "aitken"}`` for
        :class:`gmmspeech.GMM`'s default (fits run to convergence in the parameters,
        usually ``max_iter``).
    random_state : int or None
        Seed of every class model's initialisation (the same seed for each class).
    n_jobs : int, default 1
        Classes fitted and scored in parallel (:func:`gmmspeech.parallel.parallel_map`).
    backend : str or None
        joblib backend for ``n_jobs != 1`` (local processes, threads or Dask).

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        The class labels, sorted.
    models_ : list
        The class models, in the order of ``classes_``.
    class_prior_ : ndarray (n_classes,)
    class_count_ : ndarray (n_classes,)
        Training utterances per class.
    n_iter_ : ndarray of int (n_classes,)
        EM iterations of every class model (1 for MAP adaptation, one step from the UBM).
    n_features_in_ : int
        Features per frame.
    ubm_ : GMM or None
        The UBM the class models were adapted from.

    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame.

    Notes
    -----
    A sample is an utterance. ``X`` is a list of utterances, each a ``(frames, dims)``
    array (or a 3-D array of equal-length ones); scikit-learn's model selection
    (``cross_val_score``, ``GridSearchCV`` with ``GroupKFold`` over speakers) indexes such
    a list directly. A 2-D array (or DataFrame) ``(n_samples, n_features)`` follows
    scikit-learn's convention: every row is one sample, i.e. a one-frame utterance (with
    ``likelihood_scale="average"`` that is then a Bayes classifier with one GMM per
    class). One long utterance as a 2-D array must be passed as ``[X]``. ``predict`` is
    the argmax of ``predict_proba``.
    """

    def __init__(
        self,
        n_components=8,
        *,
        covariance_type="diag",
        max_iter=100,
        tol=1e-3,
        reg_covar=1e-6,
        init_params="kmeans",
        n_init=1,
        ubm=None,
        relevance_factor=16.0,
        adapt="m",
        priors=None,
        likelihood_scale="average",
        model="gmm",
        model_params=None,
        random_state=None,
        n_jobs=1,
        backend=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.n_init = n_init
        self.ubm = ubm
        self.relevance_factor = relevance_factor
        self.adapt = adapt
        self.priors = priors
        self.likelihood_scale = likelihood_scale
        self.model = model
        self.model_params = model_params
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.backend = backend

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # input tags: UtteranceInputMixin
        tags.target_tags.required = True
        return tags

    def _utterances(self, X, *, reset: bool) -> list[np.ndarray]:
        return validate_utterances(self, X, reset=reset, as_utterances=as_utterances)

    # ------------------------------------------------------------------ validation
    def _settings(self) -> dict:
        return dict(n_components=self.n_components, covariance_type=self.covariance_type,
                    max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
                    init_params=self.init_params, n_init=self.n_init,
                    relevance_factor=self.relevance_factor, adapt=self.adapt,
                    model_params=dict(self.model_params or {}))

    def _scale_for(self, lengths: np.ndarray) -> np.ndarray:
        s = self.likelihood_scale
        if isinstance(s, str):
            if s == "average":
                return 1.0 / lengths
            if s == "total":
                return np.ones(len(lengths))
        elif isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool):
            if np.isfinite(s) and s > 0:
                return np.full(len(lengths), float(s))
        raise ValueError(
            f"likelihood_scale must be 'average', 'total' or a positive number, got {s!r}"
        )

    def _check_params(self):
        mt = _model_type(self.model)
        if not isinstance(self.n_components, (int, np.integer)) or isinstance(self.n_components, bool) \
                or self.n_components < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {self.n_components!r}")
        if self.ubm is not None and not mt.supports_ubm:
            raise ValueError(f"model={self.model!r} cannot be adapted from a UBM (ubm=...)")
        if self.model_params is not None and not isinstance(self.model_params, Mapping):
            raise ValueError(f"model_params must be a dict or None, got {type(self.model_params).__name__}")
        self._scale_for(np.ones(1))
        if mt.check is not None:
            mt.check(self._settings())
        return mt

    def _class_priors(self, counts: np.ndarray) -> np.ndarray:
        p = self.priors
        if p is None:
            return counts / counts.sum()
        if isinstance(p, str):
            if p == "uniform":
                return np.full(len(counts), 1.0 / len(counts))
            raise ValueError(f"priors must be None, 'uniform' or an array, got {p!r}")
        p = np.asarray(p, dtype=np.float64)
        if p.shape != counts.shape:
            raise ValueError(f"priors has shape {p.shape}; there are {len(counts)} classes")
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise ValueError("priors must be positive and finite")
        if abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"priors must sum to 1, they sum to {p.sum()}")
        return p

    def _check_fitted(self):
        if not hasattr(self, "models_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train one model per class.

        Parameters
        ----------
        X : list of (frames, dims) arrays
            Training utterances (see :func:`as_utterances` for the accepted forms).
        y : array-like (n_utterances,)
            Class label of every utterance.

        Returns
        -------
        self
        """
        from gmmspeech.parallel import parallel_map

        mt = self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import column_or_1d

        utts = self._utterances(X, reset=True)
        y = column_or_1d(y, warn=True)  # a column vector is accepted with a warning
        check_classification_targets(y)  # continuous targets are refused
        if len(y) != len(utts):
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{len(utts)}, {len(y)}]"
            )
        classes, yi, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ValueError(
                f"Classifier can't train when only one class is present (got {len(classes)} class)"
            )
        priors = self._class_priors(counts.astype(np.float64))
        groups = [[utts[i] for i in np.flatnonzero(yi == c)] for c in range(len(classes))]
        ubm = _load_ubm(self.ubm)
        if isinstance(ubm, str):  # "fit": a UBM on the pooled training frames
            from gmmspeech.mixture.gmm import GMM

            s = self._settings()
            ubm = GMM(self.n_components, covariance_type=self.covariance_type,
                      max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
                      init_params=self.init_params, n_init=self.n_init,
                      random_state=self.random_state,
                      **_em_schedule(s["model_params"])).fit(np.concatenate(utts))
        if ubm is not None and ubm.means_.shape[1] != utts[0].shape[1]:
            raise ValueError(f"the UBM has {ubm.means_.shape[1]} features per frame, "
                             f"X has {utts[0].shape[1]}")
        if ubm is None and mt.name == "gmm":
            for c, g in zip(classes, groups):
                n = sum(u.shape[0] for u in g)
                if n < self.n_components:
                    raise ValueError(f"class {c!r} has {n} training frames, fewer than "
                                     f"n_components={self.n_components}")
        seed = self.random_state
        if seed is not None and not isinstance(seed, (int, np.integer)):
            seed = int(np.random.default_rng(seed).integers(2**31 - 1)) if isinstance(
                seed, np.random.Generator) else int(seed.randint(2**31 - 1))
        settings = self._settings()
        self.models_ = parallel_map(
            _fit_class, [(mt.name, g, settings, seed, ubm) for g in groups],
            n_jobs=self.n_jobs, backend=self.backend, star=True,
        )
        self.classes_ = classes
        # EM iterations per class model; a MAP-adapted model counts its one adaptation step
        self.n_iter_ = np.array([1 if ubm is not None else int(getattr(m, "n_iter_", 0))
                                 for m in self.models_])
        self.class_count_ = counts
        self.class_prior_ = priors
        self.ubm_ = ubm
        return self

    # ------------------------------------------------------------------ scoring
    def _validated(self, X):
        self._check_fitted()
        return self._utterances(X, reset=False)

    def _loglik(self, utts) -> np.ndarray:
        from gmmspeech.parallel import parallel_map

        cols = parallel_map(
            _score_class, [(self.model, m, utts) for m in self.models_],
            n_jobs=self.n_jobs, backend=self.backend, star=True,
        )
        return np.stack(cols, axis=1)

    def log_likelihoods(self, X) -> np.ndarray:
        """Total log-likelihood ``log p(X_i | c)`` of every utterance under every class
        model, shape (n_utterances, n_classes), columns in the order of ``classes_``."""
        return self._loglik(self._validated(X))

    def _log_posterior(self, L: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        from scipy.special import log_softmax

        z = L * self._scale_for(lengths)[:, None] + np.log(self.class_prior_)[None, :]
        return log_softmax(z, axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log posterior of every class, shape (n_utterances, n_classes)."""
        utts = self._validated(X)
        lengths = np.array([u.shape[0] for u in utts], dtype=np.float64)
        return self._log_posterior(self._loglik(utts), lengths)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of every class, shape (n_utterances, n_classes); rows
        sum to 1. See ``likelihood_scale``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of every utterance."""
        logp = self.predict_log_proba(X)
        return self.classes_[np.argmax(logp, axis=1)]


# --------------------------------------------------------------------------- files
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_names(labels) -> list[str]:
    used: dict[str, int] = {}
    out = []
    for lab in labels:
        base = _SAFE.sub("_", str(lab)).strip("._") or "class"
        n = used.get(base, 0)
        used[base] = n + 1
        out.append((base if n == 0 else f"{base}.{n}") + ".npz")
    return out


def _json_value(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    return None  # objects (a UBM, a random generator) are not settings to keep


def save_classifier(clf: GMMClassifier, folder, *, metadata: dict | None = None) -> str:
    """Write a fitted classifier to ``folder``: ``classes.json`` and one model file per
    class (the model type's format; for GMMs the checksummed ``.npz`` of
    :mod:`gmmspeech.mixture.io`). ``metadata`` (JSON-serialisable; e.g. the feature
    configuration) comes back as ``metadata_`` from :func:`load_classifier`.

    Returns
    -------
    str
        The path of ``classes.json``.
    """
    from gmmspeech.atomic import atomic_write_text

    clf._check_fitted()
    mt = _model_type(clf.model)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    labels = [c.item() if isinstance(c, np.generic) else c for c in clf.classes_]
    files = _file_names(labels)
    for lab, name, m in zip(labels, files, clf.models_):
        mt.save(m, os.path.join(folder, name), {"label": str(lab), "role": "class-model",
                                                "model": mt.name})
    params = {k: _json_value(v) for k, v in clf.get_params(deep=False).items()
              if k not in ("ubm", "n_jobs", "backend")}
    doc = {
        "format": CLASSES_FORMAT,
        "format_version": CLASSES_FORMAT_VERSION,
        "model": mt.name,
        "classes": [str(c) for c in labels],
        "files": files,
        "class_prior": [float(p) for p in clf.class_prior_],
        "class_count": [int(c) for c in clf.class_count_],
        "n_features": int(clf.n_features_in_),
        "params": params,
        "adapted_from_ubm": clf.ubm_ is not None,
        "metadata": json.loads(json.dumps(metadata or {}, default=_json_value)),
    }
    return atomic_write_text(os.path.join(folder, _CLASSES_JSON),
                             json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load_classifier(folder, *, n_jobs: int = 1, backend: str | None = None) -> GMMClassifier:
    """Read a classifier written by :func:`save_classifier` (fitted, ready to predict).

    Raises
    ------
    ModelFileError
        ``classes.json`` missing, not JSON, of another format, naming files outside the
        folder, or inconsistent with the model files (which are validated by the model
        type's loader).
    """
    folder = os.fspath(folder)
    path = os.path.join(folder, _CLASSES_JSON)
    if not os.path.isdir(folder):
        raise ModelFileError(folder, "no such models folder")
    if not os.path.isfile(path):
        raise ModelFileError(path, "missing: not a folder written by train-classes / save_classifier")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CLASSES_FORMAT:
        raise ModelFileError(path, f"not a gmmspeech classes file (format is not {CLASSES_FORMAT!r})")
    if doc.get("format_version") != CLASSES_FORMAT_VERSION:
        raise ModelFileError(path, f"format version {doc.get('format_version')!r} is not supported")
    classes, files, prior = doc.get("classes"), doc.get("files"), doc.get("class_prior")
    if not (isinstance(classes, list) and isinstance(files, list) and isinstance(prior, list)
            and len(classes) == len(files) == len(prior) and len(classes) >= 2):
        raise ModelFileError(path, "classes, files and class_prior must be lists of one length >= 2")
    for f in files:
        if not isinstance(f, str) or os.path.basename(f) != f or f in ("", ".", ".."):
            raise ModelFileError(path, f"model file name {f!r} is not a plain file name")
    try:
        mt = _model_type(doc.get("model"))
    except ValueError as exc:
        raise ModelFileError(path, str(exc)) from None
    params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
    valid = set(GMMClassifier._get_param_names())
    try:
        clf = GMMClassifier(**{k: v for k, v in params.items() if k in valid})
        clf.set_params(n_jobs=n_jobs, backend=backend, model=mt.name)
        clf.class_prior_ = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"invalid settings ({exc})") from None
    if not (np.all(np.isfinite(clf.class_prior_)) and np.all(clf.class_prior_ > 0)):
        raise ModelFileError(path, "class_prior must be positive")
    models = [mt.load(os.path.join(folder, f)) for f in files]
    dims = {int(np.asarray(m.means_).shape[-1]) if hasattr(m, "means_") else doc.get("n_features")
            for m in models}
    if dims != {doc.get("n_features")}:
        raise ModelFileError(path, f"model files have {sorted(map(str, dims))} features per frame, "
                                   f"classes.json says {doc.get('n_features')}")
    clf.models_ = models
    clf.classes_ = np.asarray([str(c) for c in classes])
    clf.class_count_ = np.asarray(doc.get("class_count") or [0] * len(classes))
    clf.n_features_in_ = int(doc["n_features"])
    clf.ubm_ = None
    clf.metadata_ = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    clf.settings_ = doc
    return clf


# --------------------------------------------------------------------------- manifests
def _features_of(manifest, config, *, data_root, features_dir, n_jobs, backend, scheduler,
                 progress, role, reuse=()):
    """``(features, rows, bad)`` of a manifest or a feature store (see
    :func:`gmmspeech.speaker.pipeline.open_features`): rows found in the stores ``reuse``
    are read from them, the rest extracted into ``features_dir/<config hash>`` (or into
    ``features_dir`` itself when it is a store of this configuration)."""
    from gmmspeech.speaker.pipeline import open_features

    return open_features(manifest, config=config, features_dir=features_dir, reuse=reuse,
                         data_root=data_root, n_jobs=n_jobs, backend=backend,
                         scheduler=scheduler, progress=progress, role=role)


def _scratch(features_dir):
    """``features_dir``, or a temporary folder removed on exit."""
    import contextlib
    import tempfile

    if features_dir is None:
        return tempfile.TemporaryDirectory(prefix="gmmspeech-features-")
    return contextlib.nullcontext(os.fspath(features_dir))


def _warn_bad(cmd: str, bad) -> None:
    import sys

    for b in bad:
        print(f"gmmspeech {cmd}: skipped {b['path']} ({b['id']}): {b['reason']}", file=sys.stderr)


def default_feature_config(model: str = "gmm", **overrides):
    """The feature configuration class models of type ``model`` are trained on by default:
    the ``speech`` preset; for ``"hmm"`` with
    :data:`~gmmspeech.mixture.hmm.WORD_HMM_FEATURES` (the dev-chosen word-model front end).
    ``overrides`` (e.g. ``sample_rate=8000``) are applied last."""
    from gmmspeech.features.config import FeatureConfig

    changes = {}
    if model == "hmm":
        from gmmspeech.mixture.hmm import WORD_HMM_FEATURES

        changes.update(WORD_HMM_FEATURES)
    changes.update(overrides)
    return FeatureConfig.preset("speech", **changes)


def train_classes(manifest, out, *, config=None, data_root=None, features_dir=None,
                  n_components: int = 8, covariance_type: str = "diag", ubm=None,
                  relevance_factor=16.0, adapt: str = "m", model: str = "gmm",
                  model_params: dict | None = None, max_iter: int = 100, tol: float = 1e-3,
                  reg_covar: float = 1e-6, priors=None, likelihood_scale="average",
                  random_state: int | None = 0, n_jobs: int = 1, backend=None, scheduler=None,
                  progress: bool = True) -> dict:
    """Train one model per label of ``manifest`` and write them to the folder ``out``.

    Features are extracted into a feature store (``features_dir/<config hash>``, reused
    by later runs; a temporary folder when None). ``out`` receives ``classes.json`` (with
    the feature configuration, so :func:`classify` extracts matching features) and one
    model file per class. Files that cannot be read are reported and skipped.

    ``config=None``: the UBM's feature configuration with ``ubm``, else
    :func:`default_feature_config` of ``model``. ``model="hmm"``: one GMM-HMM per class,
    with :func:`hmm_model_params` (``model_params`` holds ``n_states``, ``n_mix``, ...).

    Returns
    -------
    dict
        ``classes``, ``n_files``, ``n_frames`` per class, ``bad_files``, ``models_dir``,
        ``fit_seconds`` (the training of the models, features excluded; also in
        ``classes.json``'s metadata).
    """
    import time

    from gmmspeech.features.config import FeatureConfig

    clf = GMMClassifier(n_components, covariance_type=covariance_type, ubm=ubm,
                        relevance_factor=relevance_factor, adapt=adapt, model=model,
                        model_params=model_params, max_iter=max_iter, tol=tol,
                        reg_covar=reg_covar, priors=priors, likelihood_scale=likelihood_scale,
                        random_state=random_state, n_jobs=n_jobs,
                        backend=backend if scheduler is None else "dask")
    clf._check_params()  # bad settings fail before any feature extraction
    if config is None:
        saved = getattr(ubm, "metadata_", {}).get("feature_config") if ubm is not None else None
        config = FeatureConfig.from_dict(saved) if isinstance(saved, dict) else default_feature_config(model)
    with _scratch(features_dir) as fdir:
        store, rows, bad = _features_of(manifest, config, data_root=data_root, features_dir=fdir,
                                        n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                                        progress=progress, role="train")
        _warn_bad("train-classes", bad)
        unlabelled = [r for r in rows if not r.label]
        if unlabelled:
            r = unlabelled[0]
            raise ValueError(f"{manifest}, line {r.line}: id {r.id!r} has no label "
                             f"({len(unlabelled)} unlabelled row(s)); every training row needs one")
        if not rows:
            raise ValueError(f"{manifest}: no usable file")
        X = [np.asarray(store.load(r.id, mmap=False)) for r in rows]
        kept = store.roots
    y = np.array([r.label for r in rows])
    t_fit = time.perf_counter()
    clf.fit(X, y)
    t_fit = time.perf_counter() - t_fit
    frames = {str(c): int(sum(x.shape[0] for x, t in zip(X, y) if t == c)) for c in clf.classes_}
    meta = {"feature_config": config.to_dict(), "feature_config_hash": config.config_hash(),
            "train_manifest": os.path.abspath(os.fspath(manifest)), "n_files": len(rows),
            "n_frames": frames, "bad_files": bad, "fit_seconds": round(t_fit, 3)}
    if features_dir is not None:  # classify reads these features again
        meta["feature_stores"] = kept
    save_classifier(clf, out, metadata=meta)
    return {"classes": [str(c) for c in clf.classes_], "n_files": len(rows), "n_frames": frames,
            "bad_files": bad, "models_dir": os.path.abspath(os.fspath(out)),
            "fit_seconds": t_fit}


def _write_tsv(path, header, rows) -> None:
    import csv
    import io

    from gmmspeech.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def classification_results(y_true, y_pred, classes, log_proba=None) -> dict:
    """Accuracy, per-class recall and the confusion matrix of labelled decisions.

    Tests whose true label is not among ``classes`` cannot be right; they are counted in
    ``n_tests_unknown_label`` and left out of the other figures.
    """
    from gmmspeech import metrics

    classes = [str(c) for c in classes]
    t = np.asarray([str(v) for v in y_true])
    p = np.asarray([str(v) for v in y_pred])
    known = np.isin(t, classes)
    t, p = t[known], p[known]
    cm = metrics.confusion_matrix(t, p, labels=classes)
    support = cm.sum(axis=1)
    recall = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    present = [r for r in recall.values() if r is not None]
    res = {
        "accuracy": metrics.accuracy(t, p) if t.size else None,
        "per_class_recall": recall,
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "n_tests": int(t.size),
        "n_correct": int(np.sum(t == p)),
        "n_tests_unknown_label": int((~known).sum()),
        "classes": classes,
        "support": {c: int(s) for c, s in zip(classes, support)},
        "confusion_matrix": cm.tolist(),
    }
    if log_proba is not None and t.size:
        lp = np.asarray(log_proba)[known]
        idx = np.array([classes.index(v) for v in t])
        res["log_loss"] = float(-np.mean(lp[np.arange(t.size), idx]))
    return res


def classify(models_dir, manifest, out, *, data_root=None, features_dir=None, n_jobs: int = 1,
             backend=None, scheduler=None, progress: bool = True) -> dict:
    """Classify every row of ``manifest`` with the models of ``models_dir``.

    Features are extracted with the configuration saved in ``models_dir``; ``manifest`` may
    also be a feature store of that configuration, and rows already in the stores the models
    were trained from (recorded when ``train_classes`` had a ``features_dir``) are read
    from there, not extracted again. Writes
    ``out/predictions.tsv`` (``id  predicted  score  label``: the predicted class, its
    average log-likelihood per frame, the manifest's label or empty), ``out/scores.tsv``
    (``id  n_frames`` and the average log-likelihood per frame under every class model)
    and, when the manifest has labels, ``out/results.json`` (``accuracy``,
    ``per_class_recall``, ``n_tests``, ``balanced_accuracy``, ``log_loss``,
    ``confusion_matrix``, bad files, ...) and ``out/confusion.png``.

    Returns
    -------
    dict
        The results (also when the manifest has no labels: then without the metrics).
    """
    import time

    from gmmspeech.features.config import FeatureConfig

    t0 = time.perf_counter()
    clf = load_classifier(models_dir, n_jobs=n_jobs, backend=backend if scheduler is None else "dask")
    cfg = clf.metadata_.get("feature_config")
    if not isinstance(cfg, dict):
        raise ModelFileError(os.path.join(os.fspath(models_dir), _CLASSES_JSON),
                             "no feature_config in the metadata: cannot extract matching features")
    try:
        config = FeatureConfig.from_dict(cfg)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(os.path.join(os.fspath(models_dir), _CLASSES_JSON),
                             f"invalid feature_config ({exc})") from None
    with _scratch(features_dir) as fdir:
        store, rows, bad = _features_of(manifest, config, data_root=data_root, features_dir=fdir,
                                        n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                                        progress=progress, role="test",
                                        reuse=clf.metadata_.get("feature_stores") or ())
        _warn_bad("classify", bad)
        if not rows:
            raise ValueError(f"{manifest}: no usable file")
        X = [np.asarray(store.load(r.id, mmap=False)) for r in rows]
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    utts = clf._validated(X)
    L = clf._loglik(utts)
    lengths = np.array([u.shape[0] for u in utts], dtype=np.float64)
    logp = clf._log_posterior(L, lengths)
    best = np.argmax(logp, axis=1)
    pred = clf.classes_[best]
    avg = L / lengths[:, None]
    t_score = time.perf_counter() - t0
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    _write_tsv(os.path.join(out, "predictions.tsv"), ["id", "predicted", "score", "label"],
               [[r.id, str(p), repr(float(avg[i, best[i]])), r.label]
                for i, (r, p) in enumerate(zip(rows, pred))])
    _write_tsv(os.path.join(out, "scores.tsv"), ["id", "n_frames"] + [str(c) for c in clf.classes_],
               [[r.id, int(lengths[i])] + [repr(float(v)) for v in avg[i]] for i, r in enumerate(rows)])
    from gmmspeech.parallel import parallelism_record

    res: dict = {
        "models_dir": os.path.abspath(os.fspath(models_dir)),
        "manifest": os.path.abspath(os.fspath(manifest)),
        "n_files": len(rows),
        "bad_files": bad,
        "n_bad_files": len(bad),
        "feature_config_hash": config.config_hash(),
        "model": clf.model,
        "likelihood_scale": clf.likelihood_scale,
        "predictions": os.path.join(out, "predictions.tsv"),
        "timings": {"features": round(t_feat, 3), "score": round(t_score, 3)},
        **parallelism_record(n_jobs),
    }
    labels = [r.label for r in rows]
    if any(labels):
        keep = [i for i, lab in enumerate(labels) if lab]
        res.update(classification_results([labels[i] for i in keep], pred[keep], clf.classes_,
                                          logp[keep]))
        res["n_tests_unlabelled"] = len(rows) - len(keep)
        try:
            from gmmspeech import plots

            res["confusion_png"] = plots.confusion_plot(
                np.asarray(res["confusion_matrix"]), [str(c) for c in clf.classes_],
                path=os.path.join(out, "confusion.png"),
                title=f"accuracy {100 * (res['accuracy'] or 0):.1f} % (rows: truth)")
        except ImportError:  # matplotlib not installed: no figure
            pass
        from gmmspeech.atomic import atomic_write_text

        atomic_write_text(os.path.join(out, "results.json"),
                          json.dumps(res, indent=2, sort_keys=True, default=str) + "\n")
    return res
