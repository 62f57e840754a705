"""Hidden Markov models with Gaussian-mixture emissions (GMM-HMM), for word and digit models.

:class:`GMMHMM` is a left-to-right (Bakis) HMM whose states emit through Gaussian mixtures
(diagonal or full covariance), trained by Baum-Welch in the log domain. It reuses the
mixture machinery rather than duplicating it:

* the emission log-densities of every state and component are one GEMM per block of frames
  (:class:`~gmmspeech.mixture.densities.DensityPlan`, the E-step engine of
  :class:`~gmmspeech.mixture.gmm.GMM`, with its float32 guard);
* forward-backward and Viterbi run over many sequences in numba kernels
  (:mod:`gmmspeech.mixture._hmm_kernels`, compiled on first use);
* the state occupancies times the within-state component posteriors give the emission
  statistics as :class:`~gmmspeech.mixture.stats.SufficientStats` (one more GEMM), and each
  state's mixture is re-estimated by :meth:`GMM.m_step <gmmspeech.mixture.gmm.GMM.m_step>`,
  so variance floors and re-seeding of collapsed components are those of the GMMs.

Training follows HTK (HInit / HERest / HHEd MU) and Kaldi's mono-phone recipe:

1. **flat start**: every sequence is cut into ``n_states`` equal segments; one Gaussian per
   state from its segments; then Viterbi re-segmentation (align, re-estimate from the
   alignment) until the alignment stops changing or ``n_viterbi_iter`` passes;
2. **mixture splitting**: 1 -> 2 -> 4 ... -> ``n_mix`` Gaussians per state, each time by
   splitting the heaviest components (moment-preserving split along the largest-variance
   direction), with ``split_iter`` Baum-Welch iterations after each split;
3. **Baum-Welch** at ``n_mix`` until the average log-likelihood per frame gains less than
   ``tol`` (at most ``max_iter`` iterations).

Topology: a path starts in state 0 and moves right by at most ``max_jump`` states per frame
(1: strict left-to-right; 2: Bakis, one state may be skipped). With ``require_final`` a
path must end in the last state; a sequence too short to reach it ends in any state, so
every sequence has a finite likelihood. Disallowed transitions stay exactly zero.

Numerics: everything between the GEMMs is float64 log-domain; a state that receives no
occupancy in an iteration keeps its parameters (listed in ``unused_states_``), a transition
row with no counts keeps its probabilities, and no NaN or infinity ever reaches the
parameters.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin

from gmmspeech._lazy import lazy_kernel
from gmmspeech.mixture import init as _init
from gmmspeech.mixture.densities import (
    LOG_2PI,
    DensityPlan,
    precisions_cholesky_from_covariances,
    stats_kind,
)
from gmmspeech.mixture.gmm import (
    GMM,
    ConvergenceWarning,
    NotFittedError,
    _block_rows,
)
from gmmspeech.mixture.stats import SufficientStats

HMM_COVARIANCE_TYPES = ("diag", "full")
HMM_INIT_PARAMS = ("flat", "")
#: a state whose occupancy (expected frames) is below this is not re-estimated
MIN_STATE_OCCUPANCY = 1e-3

#: Settings of isolated-word (digit) models, chosen on development splits of training
#: speakers only (README, "GMM-HMM word models"): the defaults of
#: ``GMMClassifier(model="hmm")``, ``gmmspeech train-classes --model hmm`` and the
#: ``words`` recipe. Any :class:`GMMHMM` parameter may appear here.
WORD_HMM_DEFAULTS = {"n_states": 8, "n_mix": 4, "max_jump": 1}
#: Changes to the ``speech`` feature preset for word models (same provenance).
WORD_HMM_FEATURES = {"n_mfcc": 13}
#: Training data of word models (same provenance): every training recording also at these
#: speed factors (Kaldi's speed perturbation, ``FeatureConfig(speed=...)``; each perturbed
#: copy of a speaker counts as a speaker of its own for speaker CMVN).
WORD_HMM_TRAINING = {"speeds": (0.9, 1.0, 1.1)}
#: Speaker adaptation of word models (same provenance): Kaldi-style speaker-adaptive decoding,
#: ``passes`` fMLLR transforms per test speaker, each estimated from the previous pass's
#: hypotheses (``update``, ``method``: as in :func:`gmmspeech.mixture.fmllr.speaker_adapted_scores`);
#: ``sat``: the word models are trained speaker-adaptively (every training speaker's recordings
#: through its own fMLLR transform against the speaker-independent models,
#: :func:`gmmspeech.mixture.fmllr.speaker_transforms`), the speaker-independent ones decode the
#: first pass.
WORD_HMM_ADAPTATION = {"sat": True, "update": "full", "passes": 2, "method": "viterbi"}
#: Front ends of word models, name -> changes to ``WORD_HMM_FEATURES`` (the first: none). A
#: recogniser may train one set of word models per front end, each the same way (speed copies,
#: CMVN, SAT and fMLLR passes), and sum a recording's log-likelihoods under the sets' models of
#: a word (equal weights, a product of experts) before the decision, as the ``words`` recipe
#: does where its development speakers choose it. Kaldi pitch (``FeatureConfig(pitch="kaldi")``,
#: ``pip install 'gmmspeech[pitch]'``) separates Mandarin tone pairs (DSPSpeech-20's 北京 /
#: 背景) that MFCCs alone confuse; alone it makes other errors, summed with the MFCC models'
#: scores it removed more than it added on DSPSpeech-20's development speakers (README).
#: ``mfcc-vad40``: the energy VAD keeps frames down to 40 dB below the loudest (the preset: 30),
#: so less of a weak fricative (the /s/ of "six" at 8 kHz) is dropped; FSDD's inner folds
#: preferred it, DSPSpeech-20's development split did not (README).
WORD_HMM_FRONT_ENDS = {"mfcc": {}, "mfcc-pitch": {"pitch": "kaldi"}, "mfcc-vad40": {"vad_threshold_db": -40.0}}


@lazy_kernel
def hmm_kernels():
    """The numba forward-backward and Viterbi kernels (compiled on first use, cached)."""
    from gmmspeech.mixture import _hmm_kernels

    return _hmm_kernels


class _StateGMM(GMM):
    """A state's mixture: the GMM M-step, with the HMM's variance floor (from all the data)."""

    floor_: np.ndarray

    def _variance_floor(self, stats):
        return self.floor_


def _is_sequence_list(X) -> bool:
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(x, np.ndarray) for x in X)


def check_sequences(X, lengths=None, *, n_features=None, name="X"):
    """Validate sequences given as a list of arrays or as ``X, lengths`` (hmmlearn's form).

    Returns
    -------
    X : ndarray (N, D), float32 when every sequence is float32, else float64
    offsets : ndarray (B + 1,) int64, sequence ``b`` is ``X[offsets[b]:offsets[b + 1]]``
    """
    if _is_sequence_list(X):
        if lengths is not None:
            raise ValueError("lengths must be None when X is a list of sequences")
        # float frames (the usual case): one finiteness pass over the concatenation, not a
        # check per sequence (decoding scores hundreds of short utterances per call)
        plain = all(type(x) is np.ndarray and x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1
                    and x.dtype.char in "fd" for x in X)
        seqs = list(X) if plain else [_check_frames(x, f"{name}[{i}]") for i, x in enumerate(X)]
        dims = {x.shape[1] for x in seqs}
        if len(dims) != 1:
            raise ValueError(f"{name}: the sequences have different numbers of features: {sorted(dims)}")
        dtype = np.float32 if all(x.dtype.char == "f" for x in seqs) else np.float64
        lens = np.array([x.shape[0] for x in seqs], dtype=np.int64)
        Xc = np.concatenate(seqs, axis=0, dtype=dtype)
        if plain and not np.isfinite(Xc).all():
            for i, x in enumerate(seqs):  # the message names the first bad sequence
                _check_frames(x, f"{name}[{i}]")
    else:
        if isinstance(X, (list, tuple)) and len(X) == 0:
            raise ValueError(f"{name}: no sequences given")
        Xc = _check_frames(X, name)
        if lengths is None:
            lens = np.array([Xc.shape[0]], dtype=np.int64)
        else:
            lens = np.asarray(lengths)
            if lens.ndim != 1 or lens.size == 0 or lens.dtype.kind not in "iu":
                raise ValueError(f"lengths must be a non-empty 1-D sequence of integers, got {lengths!r}")
            lens = lens.astype(np.int64)
            if np.any(lens < 1):
                raise ValueError(f"lengths must all be >= 1 (a sequence has at least one frame); got {lens.min()}")
            if int(lens.sum()) != Xc.shape[0]:
                raise ValueError(f"lengths sum to {int(lens.sum())} but {name} has {Xc.shape[0]} frames")
    if n_features is not None and Xc.shape[1] != n_features:
        raise ValueError(f"{name} has {Xc.shape[1]} features, but GMMHMM is expecting {n_features} features as input.")
    offsets = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return Xc, offsets


def _check_frames(x, name):
    """One sequence as a (frames, features) float array (a 1-D array: one feature), with
    scikit-learn's validation and messages (``check_array``)."""
    if (type(x) is np.ndarray and x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1
            and x.dtype in (np.float32, np.float64) and np.isfinite(x).all()):
        return x  # what check_array returns for a finite float array (its checks cost ~1 ms)
    from scipy.sparse import issparse
    from sklearn.utils import check_array

    if not issparse(x):
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
    return check_array(x, dtype=[np.float64, np.float32], ensure_2d=True, allow_nd=False,
                       ensure_min_samples=1, ensure_min_features=1, input_name=name)


def _check_ignored_y(y, n_frames: int) -> None:
    """``y`` is ignored, but sequence lengths passed positionally in its place (hmmlearn's
    ``fit(X, lengths)``) must not be silently ignored: a ``y`` must have one entry per frame."""
    if y is not None and np.shape(y)[:1] != (n_frames,):
        raise ValueError(
            f"y has shape {np.shape(y)} but X has {n_frames} frames; GMMHMM ignores y. Sequence "
            "lengths are passed by keyword: fit(X, lengths=lengths), score(X, lengths=lengths)"
        )


def _batches(offsets: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Consecutive sequence ranges ``(lo, hi)`` of about ``rows`` frames each (whole sequences)."""
    out = []
    lo, n_seq = 0, offsets.size - 1
    while lo < n_seq:
        hi = int(np.searchsorted(offsets, offsets[lo] + rows, side="left"))
        hi = min(max(hi, lo + 1), n_seq)
        out.append((lo, hi))
        lo = hi
    return out


def mixture_schedule(n_mix: int) -> list[int]:
    """Gaussians per state after each split: 1, 2, 4, ... capped at ``n_mix``."""
    levels = [1]
    while levels[-1] < n_mix:
        levels.append(min(2 * levels[-1], n_mix))
    return levels


class GMMHMM(DensityMixin, BaseEstimator):
    """Left-to-right hidden Markov model with Gaussian-mixture emissions.

    Parameters
    ----------
    n_states : int, default 5
        Emitting states ``S``.
    n_mix : int, default 1
        Gaussians per state ``M`` (reached by splitting 1 -> 2 -> 4 ...).
    covariance_type : {"diag", "full"}, default "diag"
    max_jump : int, default 1
        Largest forward move per frame: 1 = left-to-right (self-loop or next state),
        2 = Bakis (a state may be skipped), ...
    require_final : bool, default True
        Paths must end in the last state (when the sequence is long enough to reach it).
    max_iter : int, default 20
        Baum-Welch iterations at ``n_mix`` Gaussians (at most).
    tol : float, default 1e-4
        Stop when the average log-likelihood per frame gains less than this.
    split_iter : int, default 4
        Baum-Welch iterations after each intermediate split.
    n_viterbi_iter : int, default 10
        Viterbi re-segmentation passes of the flat start (fewer when the alignment stops
        changing).
    reg_covar : float, default 1e-6
        Added to every variance (scikit-learn's semantics).
    var_floor_rel : float, default 1e-2
        Variances are floored at this fraction of the variance of all training frames (per
        dimension), as HTK's ``HCompV -f``.
    init_params : {"flat", ""}, default "flat"
        ``"flat"``: flat start and splitting. ``""``: continue Baum-Welch from the current
        parameters (set them, or use :meth:`from_params`; hmmlearn's convention).
    dtype : {np.float32, np.float64}, default np.float32
        Compute dtype of the emission GEMMs (float64 from there on).
    chunk_size : int, default 2048
        Frames per block (whole sequences are kept together).
    n_threads : int or None
        Threads over blocks (None: :func:`gmmspeech.threads.default_threads`). Diagonal
        models run the E-step and scoring in work items of about 16k frames of whole
        sequences (one numba call each); results do not depend on the thread count.
    random_state : int, Generator or None
        Seed of :meth:`sample` (training is deterministic).
    verbose : int, default 0

    Attributes
    ----------
    startprob_ : ndarray (S,)
        ``[1, 0, ..., 0]``: paths start in state 0.
    transmat_ : ndarray (S, S)
        Row-stochastic, upper-banded (zero outside ``0 <= j - i <= max_jump``).
    weights_ : ndarray (S, M)
    means_ : ndarray (S, M, D)
    covariances_ : ndarray (S, M, D) diag or (S, M, D, D) full
    precisions_cholesky_ : ndarray
        As :class:`~gmmspeech.mixture.gmm.GMM`, per state.
    var_floor_ : ndarray (D,)
        The variance floor used.
    history_ : list of float
        Average log-likelihood per frame at every Baum-Welch iteration.
    history_n_mix_ : list of int
        Gaussians per state at each of those iterations (the log-likelihood never decreases
        between iterations with the same value).
    lower_bound_ : float
        The last entry of ``history_``.
    n_iter_ : int
        Baum-Welch iterations at ``n_mix``.
    n_viterbi_iter_ : int
        Viterbi re-segmentation passes run by the flat start.
    converged_ : bool
    unused_states_ : list of int
        States that received no occupancy in the last iteration (kept unchanged).
    n_reseeded_ : int
        Components re-seeded (weight collapsed) over the fit.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_states=5,
        n_mix=1,
        *,
        covariance_type="diag",
        max_jump=1,
        require_final=True,
        max_iter=20,
        tol=1e-4,
        split_iter=4,
        n_viterbi_iter=10,
        reg_covar=1e-6,
        var_floor_rel=1e-2,
        init_params="flat",
        dtype=np.float32,
        chunk_size=2048,
        n_threads=None,
        random_state=None,
        verbose=0,
    ):
        self.n_states = n_states
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.max_jump = max_jump
        self.require_final = require_final
        self.max_iter = max_iter
        self.tol = tol
        self.split_iter = split_iter
        self.n_viterbi_iter = n_viterbi_iter
        self.reg_covar = reg_covar
        self.var_floor_rel = var_floor_rel
        self.init_params = init_params
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ================================================================== validation
    def _check_parameters(self):
        def pos_int(name, lo=1):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"Invalid value for {name!r}: {v!r}. It must be an integer >= {lo}")

        pos_int("n_states")
        pos_int("n_mix")
        pos_int("max_jump")
        pos_int("max_iter", 0)
        pos_int("split_iter", 0)
        pos_int("n_viterbi_iter", 0)
        pos_int("chunk_size")
        if self.n_threads is not None:
            pos_int("n_threads")
        if self.covariance_type not in HMM_COVARIANCE_TYPES:
            raise ValueError(
                f"Invalid value for 'covariance_type': {self.covariance_type!r}. "
                f"'covariance_type' should be in {list(HMM_COVARIANCE_TYPES)}"
            )
        if self.init_params not in HMM_INIT_PARAMS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}. 'init_params' should be in "
                f"{list(HMM_INIT_PARAMS)}"
            )
        for name in ("tol", "reg_covar", "var_floor_rel"):
            v = getattr(self, name)
            if not np.isscalar(v) or not v >= 0:
                raise ValueError(f"Invalid value for {name!r}: {v!r}. It must be non-negative")
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"Invalid value for 'dtype': {self.dtype!r}. 'dtype' should be float32 or float64")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # a 2-D array is one sequence of frames (hmmlearn's form, ``lengths`` cuts it into
        # several); a list of (frames, features) arrays is a set of sequences
        tags.input_tags.two_d_array = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = False  # training is deterministic (flat start)
        return tags

    def _sequences(self, X, lengths, *, reset: bool):
        """``(frames (N, D), offsets (B + 1,))`` of ``X`` (a list of sequences, or an array
        of frames cut by ``lengths``), validated as scikit-learn does: ``reset=True`` (fit)
        records ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame), otherwise
        the model must be fitted and the features must match."""
        from sklearn.utils.validation import validate_data

        from gmmspeech._sklearn import check_n_features

        if not reset:
            self._check_is_fitted()
        if _is_sequence_list(X):
            X, offsets = check_sequences(X, lengths)
            check_n_features(self, X.shape[1], reset=reset)
            return X, offsets
        # one array of frames: 2-D, as scikit-learn wants (a 1-D array is ambiguous here; a
        # univariate sequence is x[:, None], or an element of a list of sequences)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return check_sequences(X, lengths)

    def _check_is_fitted(self):
        if not hasattr(self, "precisions_cholesky_"):
            raise NotFittedError(
                f"This {self.__class__.__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # ================================================================== topology
    def _mask(self) -> np.ndarray:
        """Allowed transitions (S, S): ``0 <= j - i <= max_jump``."""
        s = int(self.n_states)
        i, j = np.indices((s, s))
        return (j >= i) & (j - i <= int(self.max_jump))

    def _final(self) -> int:
        return int(self.n_states) - 1 if self.require_final else -1

    def _log_params(self):
        with np.errstate(divide="ignore"):
            return np.log(self.startprob_), np.log(self.transmat_)

    # ================================================================== parameters
    @property
    def _cur_mix(self) -> int:
        return int(self.weights_.shape[1])

    def _set_emissions(self, weights, means, covariances):
        s, m, d = means.shape
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        flat = self.covariances_.reshape((s * m,) + self.covariances_.shape[2:])
        pc = precisions_cholesky_from_covariances(flat, self.covariance_type)
        self.precisions_cholesky_ = pc.reshape(self.covariances_.shape)
        self.n_features_in_ = d

    def _plan(self) -> DensityPlan:
        s, m, d = self.means_.shape
        rest = self.precisions_cholesky_.shape[2:]
        return DensityPlan(
            self.weights_.reshape(-1),
            self.means_.reshape(s * m, d),
            self.precisions_cholesky_.reshape((s * m,) + rest),
            self.covariance_type,
            np.dtype(self.dtype),
        )

    def _state_gmm(self, n_components: int) -> _StateGMM:
        g = _StateGMM(
            n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            var_floor_rel=self.var_floor_rel,
            dtype=self.dtype,
        )
        g.floor_ = self.var_floor_
        g.n_features_in_ = int(self.var_floor_.shape[0])
        g.n_reseeded_ = 0
        return g

    @classmethod
    def from_params(cls, startprob, transmat, weights, means, covariances, covariance_type="diag", **kwargs):
        """A fitted model from given parameters.

        Parameters
        ----------
        startprob : array (S,)
        transmat : array (S, S), rows summing to 1
        weights : array (S, M), rows summing to 1
        means : array (S, M, D)
        covariances : array (S, M, D) diag or (S, M, D, D) full, positive definite
        covariance_type : {"diag", "full"}
        **kwargs
            Other constructor parameters (``max_jump``, ``require_final``, ``dtype``, ...).
            ``max_jump`` defaults to the widest forward jump present in ``transmat``.
        """
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 3:
            raise ValueError(f"The parameter 'means' should be 3-D (S, M, D), but got shape {means.shape}")
        s, m, d = means.shape
        startprob = np.asarray(startprob, dtype=np.float64)
        transmat = np.asarray(transmat, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        covariances = np.asarray(covariances, dtype=np.float64)
        if startprob.shape != (s,) or transmat.shape != (s, s) or weights.shape != (s, m):
            raise ValueError(
                f"inconsistent shapes: startprob {startprob.shape}, transmat {transmat.shape}, "
                f"weights {weights.shape} for means {means.shape}"
            )
        want = (s, m, d) if covariance_type == "diag" else (s, m, d, d)
        if covariances.shape != want:
            raise ValueError(f"The parameter 'covariances' should have the shape of {want}, but got {covariances.shape}")
        for name, a in (("startprob", startprob), ("transmat", transmat), ("weights", weights),
                        ("means", means), ("covariances", covariances)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"The parameter {name!r} contains NaN or infinity.")
        for name, a in (("startprob", startprob[None]), ("transmat", transmat), ("weights", weights)):
            if np.any(a < 0) or not np.allclose(a.sum(axis=1), 1.0, rtol=1e-6, atol=1e-6):
                raise ValueError(f"The parameter {name!r} must be non-negative with rows summing to 1")
        if "max_jump" not in kwargs:
            i, j = np.nonzero(transmat > 0)
            kwargs["max_jump"] = int(max(1, np.max(j - i, initial=0)))
        model = cls(n_states=s, n_mix=m, covariance_type=covariance_type, **kwargs)
        model._check_parameters()
        if np.any(np.tril(transmat, -1) > 0) or np.any(np.triu(transmat, int(model.max_jump) + 1) > 0):
            raise ValueError(
                f"The parameter 'transmat' must be left-to-right with jumps of at most max_jump={model.max_jump}"
            )
        model.startprob_ = startprob / startprob.sum()
        model.transmat_ = transmat / transmat.sum(axis=1, keepdims=True)
        try:
            model._set_emissions(weights / weights.sum(axis=1, keepdims=True), means, covariances)
        except ValueError as exc:
            raise ValueError(f"The parameter 'covariances' must be positive definite ({exc})") from None
        model.var_floor_ = np.full(d, float(model.reg_covar))
        model._reset_trace()
        model.converged_ = True
        return model

    def _reset_trace(self):
        self.history_ = []
        self.history_n_mix_ = []
        self.lower_bound_ = -np.inf
        self.n_iter_ = 0
        self.n_viterbi_iter_ = 0
        self.converged_ = False
        self.unused_states_ = []
        self.n_reseeded_ = 0

    # ================================================================== block engine
    def _map_blocks(self, plan, X, offsets, fn) -> list:
        """``fn(lo, hi, z, lp)`` over blocks of whole sequences (:func:`gmmspeech.threads.map_items`).

        ``z`` is the block's design matrix and ``lp`` its (frames, S * M) weighted log-densities.
        """
        rows = _block_rows(plan, self.chunk_size)
        blocks = _batches(offsets, rows)

        def run(lo, hi):
            a, b = int(offsets[lo]), int(offsets[hi])
            xb = X[a:b]
            z = plan.design(xb)
            lp = plan.log_prob(z)
            if plan.risky.size:
                plan.exact_columns(xb, lp)
            return fn(lo, hi, xb, z, lp)

        from gmmspeech.threads import map_items

        # blocks dynamically scheduled over the threads, single-threaded BLAS (small GEMMs)
        return map_items(lambda blk: run(*blk), blocks, n_threads=self.n_threads)

    def _e_step(self, X, offsets):
        """Forward-backward over all sequences: emission statistics (S * M components),
        expected transition counts (S, S), per-sequence log-likelihoods."""
        if self.covariance_type == "diag":
            return self._e_step_diag(X, offsets)
        return self._e_step_blocks(X, offsets)

    #: frames per work item of the fused diagonal E-step (whole sequences; a fixed grid, so
    #: the sums do not depend on the thread count). Small enough that one word's training
    #: set (a few thousand frames) or one batch of test utterances spreads over the threads,
    #: large enough that the per-item cost (a kernel call, a few small arrays, ~10 us) stays
    #: a few per cent of the item's work.
    _DIAG_ITEM_FRAMES = 1024

    def _e_step_diag(self, X, offsets, want_stats=True):
        """Diagonal models: the whole E-step (densities, log-domain forward-backward,
        statistics) in one float64 numba call per work item of whole sequences; no per-sequence or
        per-block Python work. ``want_stats=False``: forward only (returns
        ``(None, None, None, loglik)``)."""
        kern = hmm_kernels()
        log_pi, log_A = self._log_params()
        s, m, d = self.means_.shape
        final = self._final()
        means = np.ascontiguousarray(self.means_)
        cov = self.covariances_
        prec = 1.0 / cov
        with np.errstate(divide="ignore"):
            log_const = np.log(self.weights_) - 0.5 * d * LOG_2PI - 0.5 * np.sum(np.log(cov), axis=2)
        items = _batches(offsets, self._DIAG_ITEM_FRAMES)

        def run(span):
            lo, hi = span
            n = np.zeros(s * m)
            f = np.zeros((s * m, d))
            sec = np.zeros((s * m, d))
            trans = np.zeros((s, s))
            ll = np.empty(hi - lo)
            kern.e_step_diag(X, offsets, lo, hi, log_const, means, prec, log_pi, log_A, final, n, f, sec,
                             trans, ll, want_stats)
            return n, f, sec, trans, ll

        if len(items) == 1:  # no thread hand-off (and no BLAS limit: nothing here calls BLAS)
            parts = [run(items[0])]
        else:
            from gmmspeech.threads import map_items

            parts = map_items(run, items, n_threads=self.n_threads)
        ll = np.concatenate([p[4] for p in parts])
        if not want_stats:
            return None, None, None, ll
        n = sum(p[0] for p in parts)
        fc = sum(p[1] for p in parts)
        sc = sum(p[2] for p in parts)
        mu = means.reshape(s * m, d)
        # uncentre: sums of g x and g x**2 from sums of g (x - mu) and g (x - mu)**2
        f = fc + n[:, None] * mu
        sec = sc + 2.0 * mu * fc + n[:, None] * mu * mu
        stats = SufficientStats(n, f, sec, float(ll.sum()), float(X.shape[0]), "diag")
        return stats, sum(p[3] for p in parts), None, ll

    def _e_step_blocks(self, X, offsets):
        plan = self._plan()
        kern = hmm_kernels()
        log_pi, log_A = self._log_params()
        s, m = self.weights_.shape
        final = self._final()

        def fn(lo, hi, xb, z, lp):
            trans = np.zeros((s, s))
            start = np.zeros(s)
            ll = np.empty(hi - lo)
            kern.forward_backward(lp, m, offsets[lo : hi + 1] - offsets[lo], log_pi, log_A, final, True, ll, trans, start)
            exact = None
            if plan.risky.size:
                exact = plan.exact_accumulator()
                plan.exact_stats(xb, lp[:, plan.risky].astype(np.float64), exact)
            g = np.asarray(z.T @ lp, dtype=np.float64)
            return g, exact, trans, start, ll

        parts = self._map_blocks(plan, X, offsets, fn)
        g = sum(p[0] for p in parts)
        n, f, sec = plan.uncentre(g.T)
        if plan.risky.size:
            exact = {key: sum(p[1][key] for p in parts) for key in ("n", "f", "s")}
            plan.patch_stats(n, f, sec, exact)
        ll = np.concatenate([p[4] for p in parts])
        stats = SufficientStats(n, f, sec, float(ll.sum()), float(X.shape[0]), plan.form)
        trans = sum(p[2] for p in parts)
        start = sum(p[3] for p in parts)
        return stats, trans, start, ll

    def _forward(self, X, offsets, posteriors=False):
        if self.covariance_type == "diag" and not posteriors:
            return self._e_step_diag(X, offsets, want_stats=False)[3], None
        plan = self._plan()
        kern = hmm_kernels()
        log_pi, log_A = self._log_params()
        s, m = self.weights_.shape
        final = self._final()
        gamma = np.empty((X.shape[0], s)) if posteriors else None
        dummy_t, dummy_s = np.zeros((s, s)), np.zeros(s)

        def fn(lo, hi, xb, z, lp):
            ll = np.empty(hi - lo)
            kern.forward_backward(lp, m, offsets[lo : hi + 1] - offsets[lo], log_pi, log_A, final, posteriors,
                                  ll, np.zeros((s, s)) if posteriors else dummy_t,
                                  np.zeros(s) if posteriors else dummy_s)
            if posteriors:
                gamma[offsets[lo] : offsets[hi]] = lp.reshape(lp.shape[0], s, m).sum(axis=2)
            return ll

        ll = np.concatenate(self._map_blocks(plan, X, offsets, fn))
        return ll, gamma

    def _viterbi(self, X, offsets):
        plan = self._plan()
        kern = hmm_kernels()
        log_pi, log_A = self._log_params()
        m = self.weights_.shape[1]
        final = self._final()
        path = np.empty(X.shape[0], dtype=np.int64)

        def fn(lo, hi, xb, z, lp):
            sc = np.empty(hi - lo)
            kern.viterbi(lp, m, offsets[lo : hi + 1] - offsets[lo], log_pi, log_A, final,
                         path[offsets[lo] : offsets[hi]], sc)
            return sc

        scores = np.concatenate(self._map_blocks(plan, X, offsets, fn))
        return path, scores

    # ================================================================== M-step
    def _update_emissions(self, stats: SufficientStats) -> list[int]:
        """Re-estimate every state's mixture from its slice of ``stats``; returns the unused states."""
        s, m = self.weights_.shape
        occ = stats.n.reshape(s, m).sum(axis=1)
        weights, means, cov = self.weights_.copy(), self.means_.copy(), self.covariances_.copy()
        unused = []
        g = self._state_gmm(m)
        for j in range(s):
            if not occ[j] >= MIN_STATE_OCCUPANCY:
                unused.append(j)
                continue
            sl = slice(j * m, (j + 1) * m)
            sj = SufficientStats(stats.n[sl], stats.f[sl], stats.s[sl], 0.0, float(occ[j]), stats.kind)
            g._m_step(sj)
            weights[j], means[j], cov[j] = g.weights_, g.means_, g.covariances_
            self.n_reseeded_ += g.n_reseeded_
            g.n_reseeded_ = 0
        self._set_emissions(weights, means, cov)
        return unused

    def _update_transitions(self, counts: np.ndarray, prior: float = 0.0):
        """Rows of ``transmat_`` from expected counts (rows with no counts are kept)."""
        mask = self._mask()
        c = np.where(mask, counts, 0.0) + prior * mask
        tot = c.sum(axis=1)
        ok = tot > 0
        a = self.transmat_.copy()
        a[ok] = c[ok] / tot[ok, None]
        self.transmat_ = a

    def _m_step(self, stats, trans):
        from gmmspeech.threads import single_thread_blas

        if self.covariance_type == "diag":  # element-wise: no BLAS call to limit
            unused = self._update_emissions(stats)
        else:
            with single_thread_blas():
                unused = self._update_emissions(stats)
        self._update_transitions(trans)
        return unused

    def _split(self, n_target: int):
        s, m = self.weights_.shape
        g = self._state_gmm(m)
        out = []
        for j in range(s):
            w, mu, c = g._grow_by_splitting(self.weights_[j], self.means_[j], self.covariances_[j],
                                            n_target - m, self.var_floor_)
            out.append((w / w.sum(), mu, c))
        self._set_emissions(*(np.stack(a) for a in zip(*out)))

    # ================================================================== training
    def _flat_start(self, X, offsets):
        s = int(self.n_states)
        kind = stats_kind(self.covariance_type)
        lengths = np.diff(offsets)
        labels = np.concatenate([(np.arange(t) * s) // t for t in lengths]).astype(np.int64)
        # every state starts as the global Gaussian (what a state never visited keeps)
        glob = _init.stats_from_labels(X, np.zeros(X.shape[0], dtype=np.int64), 1, kind)
        g = self._state_gmm(1)
        g._m_step(glob)
        self._set_emissions(np.ones((s, 1)), np.repeat(g.means_[None], s, 0), np.repeat(g.covariances_[None], s, 0))
        self.startprob_ = np.eye(1, s)[0]
        mask = self._mask()
        self.transmat_ = mask / mask.sum(axis=1, keepdims=True)
        inner = np.ones(X.shape[0], dtype=bool)
        inner[offsets[1:] - 1] = False  # last frame of every sequence has no successor
        src = np.flatnonzero(inner)
        n_pass = 0
        for n_pass in range(int(self.n_viterbi_iter) + 1):
            stats = _init.stats_from_labels(X, labels, s, kind)
            self.unused_states_ = self._update_emissions(stats)
            counts = np.zeros((s, s))
            np.add.at(counts, (labels[src], labels[src + 1]), 1.0)
            self._update_transitions(counts, prior=1.0)
            if n_pass == self.n_viterbi_iter:
                break
            new = self._viterbi(X, offsets)[0]
            if np.array_equal(new, labels):
                break
            labels = new
        self.n_viterbi_iter_ = n_pass

    def _baum_welch(self, X, offsets, n_iter, last_level, t0):
        prev = -np.inf
        converged = False
        it = 0
        for it in range(1, n_iter + 1):
            stats, trans, _start, _ll = self._e_step(X, offsets)
            avg = stats.average_loglik
            self.history_.append(avg)
            self.history_n_mix_.append(self._cur_mix)
            self.unused_states_ = self._m_step(stats, trans)
            self.lower_bound_ = avg
            if self.verbose >= 2:
                print(f"  M={self._cur_mix} iteration {it}\t time lapse {time.perf_counter() - t0:.3f}s\t"
                      f" avg log-lik {avg:.5f}")
            if last_level and abs(avg - prev) < self.tol:
                converged = True
                break
            prev = avg
        return it, converged

    def fit(self, X, y=None, lengths=None):
        """Estimate the model by flat start, mixture splitting and Baum-Welch.

        Parameters
        ----------
        X : list of arrays (T_i, D), or array (N, D)
            Training sequences (a 1-D array in the list: one feature), or their frames
            concatenated (2-D).
        y : None
            Ignored (scikit-learn's place for a target); if given it must have one entry
            per frame.
        lengths : array of int or None
            Sequence lengths when ``X`` is one array (None: one sequence). Keyword, as in
            ``fit(X, lengths=lengths)``: the second positional argument is ``y``.

        Returns
        -------
        self
        """
        self._check_parameters()
        X, offsets = self._sequences(X, lengths, reset=True)
        _check_ignored_y(y, X.shape[0])
        t0 = time.perf_counter()
        kind = stats_kind(self.covariance_type)
        glob = _init.stats_from_labels(X, np.zeros(X.shape[0], dtype=np.int64), 1, kind)
        floor_model = GMM(1, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                          var_floor_rel=self.var_floor_rel, dtype=self.dtype)
        self.var_floor_ = floor_model._variance_floor(glob)
        if self.init_params == "":
            self._check_is_fitted()
            if self.means_.shape[2] != X.shape[1]:
                raise ValueError(f"X has {X.shape[1]} features, but the initial model has {self.means_.shape[2]}")
            self.n_reseeded_ = 0
            self.history_, self.history_n_mix_ = [], []
            levels = [self._cur_mix]
        else:
            self._reset_trace()
            self._flat_start(X, offsets)
            levels = mixture_schedule(int(self.n_mix))
        if self.verbose:
            print(f"GMMHMM: {offsets.size - 1} sequences, {X.shape[0]} frames, flat start "
                  f"({self.n_viterbi_iter_} Viterbi passes) {time.perf_counter() - t0:.3f}s")
        n_iter, converged = 0, self.max_iter == 0
        for i, level in enumerate(levels):
            if level > self._cur_mix:
                self._split(level)
            last = i == len(levels) - 1
            n, conv = self._baum_welch(X, offsets, self.max_iter if last else self.split_iter, last, t0)
            if last:
                n_iter, converged = n, conv or self.max_iter == 0
        self.n_iter_ = n_iter
        self.converged_ = converged
        if self.unused_states_:
            warnings.warn(
                f"GMMHMM: states {self.unused_states_} received no occupancy in the last iteration "
                "and kept their parameters (too few or too short training sequences?)",
                UserWarning,
                stacklevel=2,
            )
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"GMMHMM did not converge in max_iter={self.max_iter} Baum-Welch iterations "
                f"(last gain above tol={self.tol}).",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    # ================================================================== inference
    def _check_input(self, X, lengths):
        return self._sequences(X, lengths, reset=False)

    def score_sequences(self, X, lengths=None) -> np.ndarray:
        """Log-likelihood ``log p(X_b)`` of every sequence (forward algorithm), shape (B,)."""
        X, offsets = self._check_input(X, lengths)
        return self._forward(X, offsets)[0]

    def score(self, X, y=None, lengths=None) -> float:
        """Total log-likelihood of the sequences (hmmlearn's ``score``); ``y`` is ignored
        (scikit-learn's signature), ``lengths`` is a keyword as in :meth:`fit`."""
        X, offsets = self._check_input(X, lengths)
        _check_ignored_y(y, X.shape[0])
        return float(np.sum(self._forward(X, offsets)[0]))

    def score_samples(self, X, lengths=None):
        """Total log-likelihood and per-frame state posteriors (hmmlearn's ``score_samples``).

        Returns
        -------
        log_prob : float
        posteriors : ndarray (N, S)
        """
        X, offsets = self._check_input(X, lengths)
        ll, gamma = self._forward(X, offsets, posteriors=True)
        return float(ll.sum()), gamma

    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """State posteriors of every frame, shape (N, S)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None):
        """Viterbi decoding: ``(log_prob, state_path)`` (hmmlearn's ``decode``).

        ``log_prob`` is the total log-probability of the best paths; ``state_path`` (N,).
        """
        X, offsets = self._check_input(X, lengths)
        path, scores = self._viterbi(X, offsets)
        return float(scores.sum()), path

    def predict(self, X, lengths=None) -> np.ndarray:
        """The Viterbi state of every frame, shape (N,)."""
        return self.decode(X, lengths)[1]

    def viterbi_scores(self, X, lengths=None) -> np.ndarray:
        """Log-probability of the best path of every sequence, shape (B,)."""
        X, offsets = self._check_input(X, lengths)
        return self._viterbi(X, offsets)[1]

    def align(self, X, lengths=None) -> list[np.ndarray]:
        """Forced alignment: the state of every frame of every sequence, starting in state 0
        and (``require_final``) ending in the last state; a list of (T_b,) arrays."""
        X, offsets = self._check_input(X, lengths)
        path = self._viterbi(X, offsets)[0]
        return [path[a:b] for a, b in zip(offsets[:-1], offsets[1:])]

    def gaussian_posteriors(self, X, lengths=None, *, method="viterbi") -> np.ndarray:
        """Per-frame occupancy of every Gaussian of every state, shape (N, S * M) (state-major:
        column ``j * M + m`` is Gaussian ``m`` of state ``j``); every row sums to 1.

        Parameters
        ----------
        X, lengths
            Sequences, as in :meth:`fit`.
        method : {"viterbi", "forward-backward"}
            ``"viterbi"``: the frame's state on the best path (:meth:`align`) times the
            within-state posteriors of its Gaussians (Kaldi's ``ali-to-post`` then
            ``gmm-post-to-gpost``); ``"forward-backward"``: the state posteriors
            ``gamma_t(j)`` times the within-state posteriors (the E-step's occupancies).
        """
        if method not in ("viterbi", "forward-backward"):
            raise ValueError(f"Invalid value for 'method': {method!r}. It should be 'viterbi' or 'forward-backward'")
        X, offsets = self._check_input(X, lengths)
        plan = self._plan()
        kern = hmm_kernels()
        log_pi, log_A = self._log_params()
        s, m = self.weights_.shape
        final = self._final()
        out = np.zeros((X.shape[0], s * m))

        def fn(lo, hi, xb, z, lp):
            rel = offsets[lo : hi + 1] - offsets[lo]
            block = out[offsets[lo] : offsets[hi]]
            if method == "forward-backward":
                kern.forward_backward(lp, m, rel, log_pi, log_A, final, True, np.empty(hi - lo),
                                      np.zeros((s, s)), np.zeros(s))
                block[:] = lp
                return None
            path = np.empty(lp.shape[0], dtype=np.int64)
            kern.viterbi(lp, m, rel, log_pi, log_A, final, path, np.empty(hi - lo))
            rows = np.arange(lp.shape[0])
            cols = path[:, None] * m + np.arange(m)
            part = lp[rows[:, None], cols].astype(np.float64)
            part = np.exp(part - part.max(axis=1, keepdims=True))
            block[rows[:, None], cols] = part / part.sum(axis=1, keepdims=True)
            return None

        self._map_blocks(plan, X, offsets, fn)
        return out

    def sample(self, n_samples=1, random_state=None):
        """Draw one sequence of ``n_samples`` frames from the model.

        Returns
        -------
        X : ndarray (n_samples, D)
        states : ndarray (n_samples,)
        """
        self._check_is_fitted()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples}. It must be a positive integer")
        rng = _init.as_generator(self.random_state if random_state is None else random_state)
        s, m, d = self.means_.shape
        states = np.empty(n_samples, dtype=np.int64)
        states[0] = rng.choice(s, p=self.startprob_)
        for t in range(1, n_samples):
            states[t] = rng.choice(s, p=self.transmat_[states[t - 1]])
        comps = np.array([rng.choice(m, p=self.weights_[j]) for j in states])
        z = rng.standard_normal((n_samples, d))
        if self.covariance_type == "diag":
            x = z * np.sqrt(self.covariances_[states, comps])
        else:
            chol = np.linalg.cholesky(self.covariances_[states, comps])
            x = np.einsum("nij,nj->ni", chol, z)
        return x + self.means_[states, comps], states

    def n_parameters(self) -> int:
        """Free parameters: mixture weights, means, covariances and transition probabilities."""
        self._check_is_fitted()
        s, m, d = self.means_.shape
        cov = d if self.covariance_type == "diag" else d * (d + 1) // 2
        trans = int(np.sum(self._mask().sum(axis=1) - 1))
        return int(s * (m - 1) + s * m * (d + cov) + trans)

    def bic(self, X, lengths=None) -> float:
        """Bayesian information criterion on the sequences (lower is better)."""
        X, offsets = self._check_input(X, lengths)
        ll = self._forward(X, offsets)[0].sum()
        return float(-2.0 * ll + self.n_parameters() * np.log(X.shape[0]))
