"""Feature-space MLLR (fMLLR, constrained MLLR) for diagonal-covariance Gaussian models.

A speaker's features are mapped by one affine transform ``x' = A x + b`` (``W = [A b]``,
shape ``(D, D + 1)``, acting on the extended vector ``xi = [x; 1]``) chosen to maximise the
likelihood of the speaker's data under speaker-independent models, including the Jacobian
``log |det A|`` of the map (Gales 1998, "Maximum likelihood linear transformations for
HMM-based speech recognition"; Kaldi's ``fmllr-diag-gmm``). With per-frame Gaussian
occupancies ``gamma_t(m)`` of Gaussians with means ``mu_m`` and variances ``sigma2_m``, the
statistics are

* ``beta = sum_t sum_m gamma_t(m)`` (frames),
* ``K[i] = sum_t sum_m gamma_t(m) mu_mi / sigma2_mi xi_t`` (``K``: ``(D, D + 1)``),
* ``G[i] = sum_t sum_m gamma_t(m) / sigma2_mi xi_t xi_t^T`` (``G``: ``(D, D + 1, D + 1)``),

and the auxiliary function (the expected log-likelihood of the transformed data, constants
dropped) is ``Q(W) = beta log |det A| + sum_i (w_i . K[i] - w_i G[i] w_i / 2)``. It is
maximised row by row: with ``p_i`` the i-th row of cofactors of ``A`` (a zero appended),
``w_i = (alpha p_i + K[i]) G[i]^-1`` where ``alpha`` solves
``alpha^2 p_i G[i]^-1 p_i + alpha p_i G[i]^-1 K[i] - beta = 0``; of the two roots the one with
the larger ``beta log |alpha a + b| - alpha^2 a / 2`` is taken. Each row update maximises
``Q`` exactly in that row, so ``Q`` never decreases.

For little data the transform can be restricted (``update``): ``"full"`` (``D (D + 1)``
parameters), ``"diag"`` (a diagonal ``A`` and the offset: ``2 D``), ``"offset"`` (``A = I``:
``D``). A speaker with fewer frames than ``min_count`` (by default the number of free
parameters) keeps the identity, and says so (:attr:`FmllrTransform.update` ``"none"``).

:func:`hmm_fmllr_stats` gathers the statistics of sequences aligned against a
:class:`~gmmspeech.mixture.hmm.GMMHMM` (its :meth:`~gmmspeech.mixture.hmm.GMMHMM.gaussian_posteriors`);
:func:`speaker_adapted_scores` is Kaldi's two-pass speaker-adaptive decoding for isolated
words: decode with the speaker-independent models, estimate the speaker's transform from the
first pass's hypotheses and alignments, decode the transformed features (optionally again).
:func:`speaker_transforms` gives every training speaker its transform from labelled data, for
speaker-adaptive training (SAT: models trained on the transformed features).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gmmspeech.threads import single_thread_blas

FMLLR_UPDATES = ("full", "diag", "offset")


@dataclass
class FmllrStats:
    """fMLLR statistics of one speaker (additive: ``a + b`` pools two sets).

    Attributes
    ----------
    beta : float
        Total occupancy (frames).
    k : ndarray, shape (D, D + 1)
    g : ndarray, shape (D, D + 1, D + 1)
    """

    beta: float
    k: np.ndarray
    g: np.ndarray

    def __post_init__(self):
        self.beta = float(self.beta)
        self.k = np.asarray(self.k, dtype=np.float64)
        self.g = np.asarray(self.g, dtype=np.float64)
        d = self.k.shape[0]
        if self.k.shape != (d, d + 1) or self.g.shape != (d, d + 1, d + 1):
            raise ValueError(f"FmllrStats: k must be (D, D + 1) and g (D, D + 1, D + 1); got {self.k.shape}, {self.g.shape}")

    @classmethod
    def zeros(cls, n_features: int) -> FmllrStats:
        """Empty statistics (the identity of ``+``)."""
        d = int(n_features)
        return cls(0.0, np.zeros((d, d + 1)), np.zeros((d, d + 1, d + 1)))

    @property
    def n_features(self) -> int:
        return int(self.k.shape[0])

    def __add__(self, other: FmllrStats) -> FmllrStats:
        if not isinstance(other, FmllrStats):
            return NotImplemented
        if other.n_features != self.n_features:
            raise ValueError(f"FmllrStats: cannot add statistics of {self.n_features} and {other.n_features} features")
        return FmllrStats(self.beta + other.beta, self.k + other.k, self.g + other.g)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum() starts from 0
            return self
        return NotImplemented


@dataclass
class FmllrTransform:
    """An estimated fMLLR transform.

    Attributes
    ----------
    matrix : ndarray, shape (D, D + 1)
        ``W = [A b]``: ``x' = A x + b``.
    update : str
        ``"full"``, ``"diag"``, ``"offset"`` or ``"none"`` (identity kept: too few frames, or
        statistics that do not determine a transform).
    n_frames : float
        The statistics' ``beta``.
    auxf : list of float
        Auxiliary function per frame, at the start (identity or ``init``) and after every
        sweep over the rows (non-decreasing).
    reason : str
        Why the identity was kept (``update == "none"``), else empty.
    """

    matrix: np.ndarray
    update: str
    n_frames: float
    auxf: list = field(default_factory=list)
    reason: str = ""

    @property
    def gain(self) -> float:
        """Auxiliary-function improvement per frame over the start."""
        return float(self.auxf[-1] - self.auxf[0]) if self.auxf else 0.0

    def apply(self, X):
        """The transformed frames (see :func:`apply_fmllr`)."""
        return apply_fmllr(X, transform=self.matrix)


def _extend(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _check_transform(transform, n_features=None) -> np.ndarray:
    W = np.asarray(transform, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != W.shape[0] + 1:
        raise ValueError(f"The parameter 'transform' should have the shape (D, D + 1), but got {W.shape}")
    if n_features is not None and W.shape[0] != n_features:
        raise ValueError(f"The parameter 'transform' is for {W.shape[0]} features, but the data have {n_features}")
    if not np.all(np.isfinite(W)):
        raise ValueError("The parameter 'transform' contains NaN or infinity.")
    return W


def fmllr_stats(X, *, posteriors, means, covariances) -> FmllrStats:
    """fMLLR statistics of frames under diagonal Gaussians.

    Parameters
    ----------
    X : array (N, D)
        Frames (the features the transform will act on).
    posteriors : array (N, G)
        Occupancy of every Gaussian at every frame (rows need not sum to 1: frame weights
        are allowed).
    means, covariances : array (G, D)
        The Gaussians' means and diagonal variances.
    """
    X = np.asarray(X, dtype=np.float64)
    post = np.asarray(posteriors, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    var = np.asarray(covariances, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array X (frames, features), got shape {X.shape}")
    n, d = X.shape
    if post.ndim != 2 or post.shape[0] != n:
        raise ValueError(f"The parameter 'posteriors' should have shape ({n}, G), but got {post.shape}")
    g = post.shape[1]
    if means.shape != (g, d) or var.shape != (g, d):
        raise ValueError(f"The parameters 'means' and 'covariances' should have shape ({g}, {d}), "
                         f"but got {means.shape} and {var.shape}")
    if not np.all(var > 0):
        raise ValueError("The parameter 'covariances' must be positive")
    for name, a in (("X", X), ("posteriors", post), ("means", means)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"The parameter {name!r} contains NaN or infinity.")
    if np.any(post < 0):
        raise ValueError("The parameter 'posteriors' must be non-negative")
    prec = 1.0 / var
    # per frame: sum_m gamma_t(m) mu_mi / sigma2_mi and sum_m gamma_t(m) / sigma2_mi, (N, D) each
    return _stats_from_weights(X, post @ (means * prec), post @ prec, float(post.sum()))


@single_thread_blas()
def _stats_from_weights(X: np.ndarray, u: np.ndarray, v: np.ndarray, beta: float) -> FmllrStats:
    """``K = u^T xi`` and ``G[i] = (v_i xi)^T xi`` (one small GEMM per dimension, one BLAS
    thread: a multi-threaded BLAS spin-waits on these products, 65 ms instead of 3 ms per
    call for 50 frames with the other core busy; no (frames, (D + 1)^2) temporary)."""
    n, d = X.shape
    xi = _extend(X)
    k = u.T @ xi
    g = np.empty((d, d + 1, d + 1))
    for i in range(d):
        np.matmul((xi * v[:, i : i + 1]).T, xi, out=g[i])
    return FmllrStats(beta, k, g)


def fmllr_auxiliary(stats: FmllrStats, transform) -> float:
    """``Q(W) = beta log |det A| + sum_i (w_i . K[i] - w_i G[i] w_i / 2)`` (the expected
    log-likelihood of the transformed frames with the Jacobian, up to a constant);
    ``-inf`` for a singular ``A``."""
    W = _check_transform(transform, stats.n_features)
    sign, logdet = np.linalg.slogdet(W[:, :-1])
    if sign == 0:
        return -np.inf
    quad = np.einsum("ij,ijk,ik->", W, stats.g, W)
    return float(stats.beta * logdet + np.sum(W * stats.k) - 0.5 * quad)


def _free(update: str, i: int, d: int) -> np.ndarray:
    if update == "full":
        return np.arange(d + 1)
    if update == "diag":
        return np.array([i, d])
    return np.array([d])


def n_fmllr_parameters(n_features: int, update: str = "full") -> int:
    """Free parameters of a transform of ``update`` type (the default ``min_count``)."""
    d = int(n_features)
    return {"full": d * (d + 1), "diag": 2 * d, "offset": d}[update]


@single_thread_blas()  # small products and solves: see _stats_from_weights
def estimate_fmllr(stats: FmllrStats, *, update: str = "full", n_iter: int = 20, tol: float = 1e-7,
                   min_count: float | None = None, init=None) -> FmllrTransform:
    """The fMLLR transform maximising the auxiliary function of ``stats`` (row-by-row).

    Parameters
    ----------
    stats : FmllrStats
    update : {"full", "diag", "offset"}
        Which parameters move: the whole ``[A b]``, a diagonal ``A`` and ``b``, or ``b`` only.
    n_iter : int
        Most sweeps over the rows.
    tol : float
        Stop when a sweep gains less than ``tol`` per frame.
    min_count : float, optional
        Fewest frames (``beta``) to estimate a transform; below it the identity is kept
        (``update == "none"``). Default: the number of free parameters
        (:func:`n_fmllr_parameters`).
    init : array (D, D + 1), optional
        Starting transform (default the identity); its ``A`` must be non-singular and, for a
        restricted ``update``, of that form.

    Returns
    -------
    FmllrTransform
    """
    if update not in FMLLR_UPDATES:
        raise ValueError(f"Invalid value for 'update': {update!r}. It should be one of {list(FMLLR_UPDATES)}")
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"Invalid value for 'n_iter': {n_iter!r}. It must be a positive integer")
    d = stats.n_features
    ident = np.hstack([np.eye(d), np.zeros((d, 1))])
    W = ident.copy() if init is None else _check_transform(init, d).copy()
    count = n_fmllr_parameters(d, update) if min_count is None else float(min_count)
    beta = stats.beta

    def keep(reason):
        return FmllrTransform(ident.copy(), "none", beta, [], reason)

    if not beta > 0 or beta < count:
        return keep(f"{beta:.0f} frames < min_count {count:g}")
    if not (np.all(np.isfinite(stats.k)) and np.all(np.isfinite(stats.g))):
        return keep("statistics contain NaN or infinity")
    q = fmllr_auxiliary(stats, W)
    if not np.isfinite(q):
        return keep("the initial transform is singular")
    trace = [q / beta]
    systems = [_row_system(stats, i, update) for i in range(d)]
    for _ in range(n_iter):
        for i in range(d):
            _update_row(stats, W, i, systems[i])
        q_new = fmllr_auxiliary(stats, W)
        if not np.isfinite(q_new) or not np.all(np.isfinite(W)):
            return keep("the row updates left a singular or non-finite transform")
        trace.append(q_new / beta)
        if trace[-1] - trace[-2] < tol:
            break
    return FmllrTransform(W, update, beta, trace)


def _row_system(stats: FmllrStats, i: int, update: str):
    """Row ``i``'s free entries ``J``, fixed entries, ``G[i][J, J]^-1`` (None when singular: no
    information on the row, e.g. a constant feature) and ``G[i][J, fixed]``."""
    d = stats.n_features
    J = _free(update, i, d)
    fixed = np.setdiff1d(np.arange(d + 1), J)
    G = stats.g[i]
    try:
        chol = np.linalg.cholesky(G[np.ix_(J, J)])
    except np.linalg.LinAlgError:
        return J, fixed, None, None
    inv_chol = np.linalg.inv(chol)
    return J, fixed, inv_chol.T @ inv_chol, G[np.ix_(J, fixed)]


def _update_row(stats: FmllrStats, W: np.ndarray, i: int, system) -> None:
    """Maximise the auxiliary function over the free entries of row ``i`` of ``W`` (in place)."""
    J, fixed, g_inv, g_jf = system
    if g_inv is None:
        return  # the row stays
    d = W.shape[0]
    kJ = stats.k[i, J] - g_jf @ W[i, fixed]
    # row i of the cofactors of A up to the factor det(A) (the update does not depend on the
    # cofactors' scale: alpha scales inversely), i.e. column i of A^-1; a zero for b
    p = np.zeros(d + 1)
    p[:d] = np.linalg.solve(W[:, :d], np.eye(d)[:, i])
    pJ = p[J]
    gk = g_inv @ kJ
    if not np.any(pJ):  # det A does not depend on the free entries: a plain quadratic
        W[i, J] = gk
        return
    gp = g_inv @ pJ
    a = float(pJ @ gp)
    b = float(pJ @ gk) + float(p[fixed] @ W[i, fixed])
    beta = stats.beta
    disc = np.sqrt(b * b + 4.0 * a * beta)
    best = None
    for alpha in ((-b + disc) / (2 * a), (-b - disc) / (2 * a)):
        val = beta * np.log(abs(alpha * a + b)) - 0.5 * alpha * alpha * a
        if best is None or val > best[0]:
            best = (val, alpha)
    W[i, J] = best[1] * gp + gk


@single_thread_blas()
def apply_fmllr(X, *, transform) -> np.ndarray:
    """``x' = A x + b`` for every frame of ``X`` (N, D), with ``transform = [A b]`` (D, D + 1)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array X (frames, features), got shape {X.shape}")
    W = _check_transform(transform, X.shape[1])
    return X @ W[:, :-1].T + W[:, -1]


def hmm_fmllr_stats(model, X, *, features=None, method: str = "viterbi") -> FmllrStats:
    """fMLLR statistics of sequences under one diagonal :class:`~gmmspeech.mixture.hmm.GMMHMM`.

    Parameters
    ----------
    model : GMMHMM
        A fitted model with ``covariance_type="diag"`` (e.g. the word the first pass decoded).
    X : list of arrays (T_b, D)
        The sequences the transform will act on (the statistics are of these frames).
    features : list of arrays (T_b, D), optional
        The frames the Gaussian occupancies are computed on (default ``X``); in a second pass
        the features transformed by the previous transform, as Kaldi aligns with the adapted
        features and accumulates on the original ones.
    method : {"viterbi", "forward-backward"}
        Occupancies from the best path or from forward-backward
        (:meth:`~gmmspeech.mixture.hmm.GMMHMM.gaussian_posteriors`).
    """
    if getattr(model, "covariance_type", None) != "diag":
        raise ValueError("fMLLR statistics need a diagonal-covariance model (covariance_type='diag')")
    X = [np.asarray(x, dtype=np.float64) for x in X]
    d = model.means_.shape[2]
    if not X:
        return FmllrStats.zeros(d)
    feats = X if features is None else [np.asarray(x, dtype=np.float64) for x in features]
    if len(feats) != len(X) or any(a.shape != b.shape for a, b in zip(feats, X)):
        raise ValueError("The parameter 'features' must hold one array of the same shape per sequence of X")
    return _pooled_stats([_hmm_weights(model, X, feats, method)], d)


def _hmm_weights(model, X, feats, method):
    """``(frames, u, v, beta)`` of sequences against one model (see :func:`fmllr_stats`), so that
    the statistics of many models' sequences are one :func:`_stats_from_weights` call."""
    post = model.gaussian_posteriors(feats, method=method)
    s, m, d = model.means_.shape
    prec = 1.0 / model.covariances_.reshape(s * m, d)
    return np.concatenate(X), post @ (model.means_.reshape(s * m, d) * prec), post @ prec, float(post.sum())


def _pooled_stats(parts, d: int) -> FmllrStats:
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return FmllrStats.zeros(d)
    return _stats_from_weights(*(np.concatenate([p[j] for p in parts]) for j in range(3)),
                               float(sum(p[3] for p in parts)))


@single_thread_blas()
def speaker_adapted_scores(models, X, *, passes: int = 1, update: str = "full", method: str = "viterbi",
                           n_iter: int = 20, min_count: float | None = None, all_passes: bool = False,
                           si_models=None):
    """Two-pass (or more) speaker-adaptive scoring of one speaker's isolated-word recordings.

    Pass 0 scores every sequence with every (speaker-independent) class model; each further
    pass estimates one fMLLR transform for the speaker from the statistics of every sequence
    against the model of the class the previous pass chose (its Viterbi or forward-backward
    occupancies on the previous pass's features, accumulated on the original features) and
    scores the transformed sequences. The transform's Jacobian is the same for every class,
    so the decisions are those of the transformed features' likelihoods.

    Parameters
    ----------
    models : list of GMMHMM
        One diagonal model per class (all over the same features).
    X : list of arrays (T_b, D)
        All the speaker's sequences (unlabelled).
    passes : int
        Adaptation passes after the speaker-independent one (0: no adaptation).
    update, n_iter, min_count
        As in :func:`estimate_fmllr`.
    method : {"viterbi", "forward-backward"}
        As in :func:`hmm_fmllr_stats`.
    all_passes : bool
        Return every pass's scores and transforms (lists of ``passes + 1``; entry 0 is the
        speaker-independent pass with the identity) instead of the last pass's only.
    si_models : list of GMMHMM, optional
        Speaker-independent models of the same classes for pass 0 when ``models`` were trained
        on speaker-normalised features (SAT, :func:`speaker_transforms`; Kaldi's
        ``final.alimdl``): pass 0 decodes with them, the transforms are estimated against and
        the later passes decoded with ``models``.

    Returns
    -------
    scores : ndarray (B, C)
        Log-likelihoods of the last pass's features under every class model.
    transform : FmllrTransform
        The last pass's transform (the identity with ``update == "none"`` when there was too
        little data, or with ``passes=0``). When a pass keeps the identity, the later passes
        are the same as the one before it.
    """
    if not isinstance(passes, (int, np.integer)) or passes < 0:
        raise ValueError(f"Invalid value for 'passes': {passes!r}. It must be a non-negative integer")
    X = [np.asarray(x, dtype=np.float64) for x in X]
    if not models:
        raise ValueError("speaker_adapted_scores needs at least one class model")
    d = models[0].means_.shape[2]
    first = models if si_models is None else si_models
    if len(first) != len(models):
        raise ValueError(f"si_models has {len(first)} models for {len(models)} classes")
    scores = np.stack([m.score_sequences(X) for m in first], axis=1) if X else np.zeros((0, len(models)))
    transform = FmllrTransform(np.hstack([np.eye(d), np.zeros((d, 1))]), "none", 0.0, [], "no adaptation pass")
    all_scores, all_transforms = [scores], [transform]
    feats = X
    for _ in range(passes):
        hyp = np.argmax(scores, axis=1)
        # one statistics computation per pass: every hypothesised word's frames pooled
        stats = _pooled_stats([_hmm_weights(models[c], [X[k] for k in idx], [feats[k] for k in idx], method)
                               for c in np.unique(hyp) for idx in (np.flatnonzero(hyp == c),)], d)
        new = estimate_fmllr(stats, update=update, n_iter=n_iter, min_count=min_count)
        if new.update == "none":  # too little data: the previous pass stands
            if transform.update == "none":
                transform = new
            all_scores += [scores] * (passes + 1 - len(all_scores))
            all_transforms += [transform] * (passes + 1 - len(all_transforms))
            break
        transform = new
        feats = [transform.apply(x) for x in X]
        scores = np.stack([m.score_sequences(feats) for m in models], axis=1)
        all_scores.append(scores)
        all_transforms.append(transform)
    if all_passes:
        return all_scores, all_transforms
    return scores, transform


@single_thread_blas()
def speaker_transforms(models, X, y, speakers, *, update: str = "full", method: str = "viterbi",
                       n_iter: int = 20, min_count: float | None = None) -> dict:
    """One fMLLR transform per training speaker from its labelled sequences (supervised
    alignments), for speaker-adaptive training (SAT): train new models on every speaker's
    transformed features, then decode with :func:`speaker_adapted_scores` (``si_models`` the
    speaker-independent ones).

    Parameters
    ----------
    models : dict
        Class label -> diagonal GMMHMM (the speaker-independent models).
    X : list of arrays (T_b, D)
    y : sequence
        The class label of every sequence (a key of ``models``).
    speakers : sequence
        The speaker of every sequence.
    update, method, n_iter, min_count
        As in :func:`speaker_adapted_scores`.

    Returns
    -------
    dict
        Speaker -> :class:`FmllrTransform` (the identity, ``update == "none"``, for a speaker
        with too few frames).
    """
    if not (len(X) == len(y) == len(speakers)):
        raise ValueError(f"X, y and speakers must have the same length; got {len(X)}, {len(y)}, {len(speakers)}")
    missing = sorted({str(c) for c in y if c not in models})
    if missing:
        raise ValueError(f"no model for the labels {missing[:5]}")
    out = {}
    spk = np.asarray(speakers, dtype=object)
    lab = np.asarray(y, dtype=object)
    d = next(iter(models.values())).means_.shape[2]
    for s in dict.fromkeys(speakers):
        parts = []
        for c in dict.fromkeys(lab[spk == s]):
            seqs = [np.asarray(X[k], dtype=np.float64) for k in np.flatnonzero((spk == s) & (lab == c))]
            parts.append(_hmm_weights(models[c], seqs, seqs, method))
        stats = _pooled_stats(parts, d)
        out[s] = estimate_fmllr(stats, update=update, n_iter=n_iter, min_count=min_count)
    return out
