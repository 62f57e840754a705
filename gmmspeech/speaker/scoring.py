"""Batched scoring of utterances against many GMMs: exact, top-C and linear.

The score of utterance ``X`` (T frames) against model ``m`` is the average frame
log-likelihood ratio against the UBM,

``llr(X, m) = 1/T sum_t [log p(x_t | m) - log p(x_t | ubm)]``

(or the plain average log-likelihood when ``ubm`` is None). Three modes:

``"exact"``
    Every component of every model: the frames of a chunk are multiplied with the
    parameters of *all* models at once (one matrix product per chunk), followed by a
    fused numba log-sum-exp per model block. When the models share the UBM's
    covariances (means-only MAP, the usual GMM-UBM case) only the linear term differs
    between models and the product is half as large.
``"topc"``
    Reynolds et al. (2000): the UBM picks the ``C`` best components of each frame
    (C=5 there), and the UBM and every adapted model are evaluated on those ``C``
    components only (``C * M * D`` operations per frame, in a numba kernel).
``"linear"``
    Glembek et al. (2009), "Simplification and optimization of i-vector extraction"
    / linear scoring: a first-order Taylor approximation of the LLR of means-only MAP
    models around the UBM,
    ``llr ~ 1/T sum_k (mu_k^m - mu_k^ubm)^T Sigma_k^-1 (F_k - N_k mu_k^ubm)``,
    with the zeroth/first order statistics ``N_k, F_k`` of the utterance against the
    UBM: one statistics pass per utterance, then one dot product per model.

Diagonal (and spherical) models support every mode; full-covariance models are scored
exactly (per model) or linearly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["score", "MODES", "utterance_stats", "check_same_ubm"]

MODES = ("exact", "topc", "linear")
_LOG_2PI = float(np.log(2.0 * np.pi))
# exact mode, means-only models: components whose upper bound on every model's density
# is more than this many nats below a lower bound of every model's likelihood are
# skipped (relative contribution < K exp(-25) ~ 4e-9 for K=256, far below float32 rounding);
# chunks where more than this fraction of components survive use the dense product.
_PRUNE_MARGIN = 25.0
_PRUNE_MAX_FRACTION = 0.15


# --------------------------------------------------------------------------- inputs
def _model_list(models) -> list:
    if isinstance(models, Mapping):
        out = list(models.values())
    elif hasattr(models, "means_"):
        out = [models]
    else:
        out = list(models)
    if not out:
        raise ValueError("models is empty: need at least one model to score against")
    for i, m in enumerate(out):
        if not hasattr(m, "means_"):
            raise ValueError(f"models[{i}] is not a fitted GMM (no means_)")
    return out


def _utterances(utterances) -> list[np.ndarray]:
    if isinstance(utterances, np.ndarray):
        if utterances.ndim != 2:
            raise ValueError(
                f"utterances must be a list of 2-D (frames, dims) arrays or one 2-D array, "
                f"got an array of shape {utterances.shape}"
            )
        utterances = [utterances]
    out = []
    for i, u in enumerate(utterances):
        a = np.asarray(u)
        if a.ndim != 2:
            raise ValueError(f"utterances[{i}]: expected a 2-D (frames, dims) array, got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"utterances[{i}]: has no frames")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"utterances[{i}]: contains NaN or infinite values")
        out.append(a)
    return out


def _name(model, i: int | None = None, what: str = "models") -> str:
    """How an error names a model: its file when it was loaded from one."""
    path = getattr(model, "path_", None)
    if path:
        return str(path)
    return what if i is None else f"{what}[{i}]"


def _model_error(model, i: int | None, reason: str, what: str = "models",
                 field: str | None = None):
    from gmmspeech.errors import ModelFileError

    path = getattr(model, "path_", None)
    if path:
        return ModelFileError(path, reason, field)
    return ValueError(f"{_name(model, i, what)}: {reason}")


def check_same_ubm(models, ubm, *, force: bool = False) -> None:
    """Refuse (or with ``force`` warn about) models MAP-adapted from another UBM.

    Every model with a ``ubm_fingerprint_`` (set by
    :func:`~gmmspeech.speaker.map.map_adapt` and kept in the model file) must have been
    adapted from ``ubm`` (:func:`gmmspeech.mixture.io.fingerprint`); models without one
    (not MAP-adapted, or older files) are not checked.
    """
    if ubm is None:
        return
    from gmmspeech.mixture.io import fingerprint

    fp = fingerprint(ubm)
    bad = [(i, m) for i, m in enumerate(_model_list(models))
           if getattr(m, "ubm_fingerprint_", None) not in (None, fp)]
    if not bad:
        return
    i, m = bad[0]
    more = f" (and {len(bad) - 1} more model(s))" if len(bad) > 1 else ""
    reason = (f"was adapted from another UBM (fingerprint {m.ubm_fingerprint_}) than "
              f"{_name(ubm, None, 'the UBM')} (fingerprint {fp}){more}; its scores would be "
              "meaningless")
    if force:
        import warnings

        warnings.warn(f"{_name(m, i)}: {reason}; scoring anyway (force)", stacklevel=3)
        return
    raise _model_error(m, i, reason + "; re-enrol against this UBM", field="metadata.ubm_fingerprint")


def _check_finite(ll, ll_ubm, models, ubm, utts) -> None:
    """No non-finite score leaves: name the utterance, model or UBM that produced one."""
    bad_rows = ~np.isfinite(ll).any(axis=1)
    if ll_ubm is not None:
        bad_rows &= ~np.isfinite(ll_ubm)
    if bad_rows.any() and (len(models) > 1 or ll_ubm is not None):
        i = int(np.flatnonzero(bad_rows)[0])
        big = float(np.abs(utts[i]).max())
        raise ValueError(f"utterances[{i}]: non-finite log-likelihood against every model "
                         f"(feature values up to {big:.3g})")
    if ll_ubm is not None and not np.all(np.isfinite(ll_ubm)):
        n = int((~np.isfinite(ll_ubm)).sum())
        raise _model_error(ubm, None, f"gives a non-finite log-likelihood for {n} of "
                                      f"{ll_ubm.size} utterance(s)", what="the UBM")
    ok = np.isfinite(ll)
    if not ok.all():
        j = int(np.flatnonzero(~ok.all(axis=0))[0])
        n = int((~ok[:, j]).sum())
        raise _model_error(models[j], j, f"gives non-finite scores for {n} of {ll.shape[0]} "
                                         "utterance(s)")


def _diag_params(g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and diagonal variances (float64) of a diag/spherical GMM."""
    w = np.asarray(g.weights_, dtype=np.float64)
    mu = np.asarray(g.means_, dtype=np.float64)
    cov = np.asarray(g.covariances_, dtype=np.float64)
    kind = getattr(g, "covariance_type", "diag")
    if kind == "spherical":
        cov = np.repeat(cov[:, None], mu.shape[1], axis=1)
    elif kind != "diag":
        raise ValueError(f"expected a diagonal model, got covariance_type={kind!r}")
    return w, mu, cov


def _is_diag(g) -> bool:
    return getattr(g, "covariance_type", "diag") in ("diag", "spherical")


# --------------------------------------------------------------------------- diag plan
class _DiagPlan:
    """Parameters of M diagonal models (and the UBM) arranged for batched scoring."""

    def __init__(self, models, ubm, dtype):
        self.dtype = dtype
        self.M = len(models)
        params = [_diag_params(m) for m in models]
        Ks = {p[1].shape[0] for p in params}
        Ds = {p[1].shape[1] for p in params}
        if len(Ds) != 1:
            raise ValueError(f"models have different feature dimensions: {sorted(Ds)}")
        self.D = Ds.pop()
        self.ubm = ubm
        if ubm is not None:
            uw, umu, ucov = _diag_params(ubm)
            if umu.shape[1] != self.D:
                raise ValueError(f"the UBM has {umu.shape[1]} dims but the models have {self.D}")
            self.ref = (uw @ umu) / uw.sum()
        else:
            self.ref = np.mean([(p[0] @ p[1]) / p[0].sum() for p in params], axis=0)
        # centre everything on ref (less cancellation in float32)
        self.K = Ks.pop() if len(Ks) == 1 else None
        self.shared = False
        if ubm is not None and self.K == umu.shape[0]:
            self.shared = all(np.array_equal(p[2], ucov) for p in params)
        if ubm is not None:
            self.ubm_terms = self._terms(uw, umu, ucov)
            g, b, a = self.ubm_terms  # in the compute dtype, for frame_ubm on every chunk
            self._ubm_cast = (g.astype(dtype), np.ascontiguousarray(b.T, dtype),
                              np.ascontiguousarray(a.T, dtype))
        self.terms = [self._terms(*p) for p in params]

    def _terms(self, w, mu, var):
        """``log w_k + log N(x|k) = g_k + x.b_k + x^2.a_k`` with x centred on ref."""
        mc = mu - self.ref
        prec = 1.0 / var
        a = -0.5 * prec
        b = mc * prec
        with np.errstate(divide="ignore"):
            g = np.log(w) - 0.5 * (self.D * _LOG_2PI + np.log(var).sum(1) + (mc * mc * prec).sum(1))
        return g, b, a

    def frame_ubm(self, Xc, X2):
        """The UBM's weighted log-densities ``(n, K)`` of centred frames (``X2 = Xc**2``)."""
        g, bt, at = self._ubm_cast
        out = Xc @ bt
        out += X2 @ at
        out += g
        return out


def _exact_diag(plan: _DiagPlan, utts, chunk_frames, progress, n_threads=None):
    from gmmspeech.speaker import _kernels as kern

    dt = plan.dtype
    if plan.K is None:  # models with different numbers of components: one model at a time
        from scipy.special import logsumexp

        def chunk_scores(X):
            Xc = (X - plan.ref).astype(np.float64)
            X2 = Xc * Xc
            out = np.empty((X.shape[0], plan.M))
            for m, (g, b, a) in enumerate(plan.terms):
                out[:, m] = logsumexp(Xc @ b.T + X2 @ a.T + g, axis=1)
            ou = None
            if plan.ubm is not None:
                g, b, a = plan.ubm_terms
                ou = logsumexp(Xc @ b.T + X2 @ a.T + g, axis=1)
            return out, ou

        return _over_chunks(utts, chunk_frames, chunk_scores, plan.M, progress, n_threads)

    K = plan.K
    if plan.shared:
        ug, ub, _ = plan.ubm_terms
        W = np.concatenate([t[1] - ub for t in plan.terms], axis=0).T.astype(dt)  # (D, M*K)
        off = np.concatenate([t[0] - ug for t in plan.terms]).astype(dt)
    else:
        W = np.concatenate(
            [np.concatenate([t[1], t[2]], axis=1) for t in plan.terms], axis=0
        ).T.astype(dt)  # (2D, M*K)
        off = np.concatenate([t[0] for t in plan.terms]).astype(dt)
    off = off.astype(np.float32)
    prune = plan.shared and dt == np.float32
    if prune:
        dB = np.stack([t[1] - ub for t in plan.terms]).astype(np.float32)  # (M, K, D)
        dG = np.stack([t[0] - ug for t in plan.terms]).astype(np.float32)  # (M, K)
        uw, umu, uvar = _diag_params(plan.ubm)
        dB64 = np.stack([t[1] - ub for t in plan.terms])
        muc = umu - plan.ref
        gmax = (np.stack([t[0] - ug for t in plan.terms])
                + np.einsum("mkd,kd->mk", dB64, muc)).max(axis=0).astype(np.float32)
        dBt = np.ascontiguousarray(dB.transpose(1, 2, 0))  # (K, D, M)
        dGt = np.ascontiguousarray(dG.T)  # (K, M)
        nS = np.sqrt((dB64 ** 2 * uvar).sum(axis=2)).max(axis=0).astype(np.float32)
        with np.errstate(divide="ignore"):
            cU = (np.log(uw) - 0.5 * (plan.D * _LOG_2PI + np.log(uvar).sum(1))).astype(np.float32)

    def chunk_scores(X):
        Xc = (X - plan.ref).astype(dt)
        X2 = Xc * Xc
        Lu = plan.frame_ubm(Xc, X2) if plan.ubm is not None else np.zeros((X.shape[0], 1), dt)
        Lu = np.ascontiguousarray(Lu, np.float32)
        if prune:
            mask = np.empty(Lu.shape, np.bool_)
            kept = kern.prune_mask(Xc, Lu, dB, dG, cU, gmax, nS, np.float32(_PRUNE_MARGIN), mask)
            if kept <= _PRUNE_MAX_FRACTION * mask.size:
                out = np.empty((X.shape[0], plan.M))
                ou = np.empty(X.shape[0])
                kern.pruned_scores(Xc, Lu, mask, dBt, dGt, out, ou)
                return out, ou
        P = Xc @ W if plan.shared else np.concatenate([Xc, X2], axis=1) @ W
        out = np.empty((X.shape[0], plan.M))
        kern.block_logsumexp(P.astype(np.float32, copy=False), off, Lu, plan.shared, K, out)
        ou = None
        if plan.ubm is not None:
            ou = np.empty((X.shape[0], 1))
            kern.block_logsumexp(Lu, np.zeros(Lu.shape[1], np.float32), Lu, False, Lu.shape[1], ou)
            ou = ou[:, 0]
        return out, ou

    return _over_chunks(utts, chunk_frames, chunk_scores, plan.M, progress, n_threads)


def _topc_diag(plan: _DiagPlan, utts, top_c, chunk_frames, progress, n_threads=None):
    from gmmspeech.speaker import _kernels as kern

    if plan.ubm is None:
        raise ValueError("mode='topc' needs a UBM (ubm=None scores plain log-likelihoods exactly)")
    if plan.K is None or plan.K != plan.ubm_terms[0].shape[0]:
        raise ValueError("mode='topc' needs models with the UBM's number of components (MAP-adapted models)")
    ug, ub, ua = plan.ubm_terms
    dB = np.stack([t[1] - ub for t in plan.terms]).astype(np.float32)
    dA = (np.zeros((1, 1, 1), np.float32) if plan.shared
          else np.stack([t[2] - ua for t in plan.terms]).astype(np.float32))
    dG = np.stack([t[0] - ug for t in plan.terms]).astype(np.float32)
    C = int(min(top_c, plan.K))
    if plan.shared:  # model axis last: contiguous multiply-adds over all models
        dBt = np.ascontiguousarray(dB.transpose(1, 2, 0))
        dGt = np.ascontiguousarray(dG.T)
        no_ubm = np.empty(0)

    def chunk_scores(X):
        Xc = (X - plan.ref).astype(np.float32)
        X2 = Xc * Xc
        Lu = np.ascontiguousarray(plan.frame_ubm(Xc, X2), dtype=np.float32)
        om = np.empty((X.shape[0], plan.M))
        ou = np.empty(X.shape[0])
        if plan.shared:
            mask = np.empty(Lu.shape, np.bool_)
            kern.topc_mask(Lu, C, mask, ou)
            kern.pruned_scores(Xc, Lu, mask, dBt, dGt, om, no_ubm)
        else:
            kern.topc_scores(Xc, X2, Lu, C, dB, dA, dG, plan.shared, om, ou)
        return om, ou

    return _over_chunks(utts, chunk_frames, chunk_scores, plan.M, progress, n_threads)


def _spans(utts, chunk_frames):
    """``(utterance, start, stop)`` of blocks of at most ``chunk_frames`` frames of one
    utterance. Blocks never span utterances, so an utterance's score does not depend on which
    other utterances are scored with it (same float32 products locally, in worker groups, on
    a cluster, and for any number of threads)."""
    return [(i, a, min(a + chunk_frames, u.shape[0]))
            for i, u in enumerate(utts) for a in range(0, u.shape[0], chunk_frames)]


def _over_chunks(utts, chunk_frames, chunk_scores, n_models, progress, n_threads):
    """Sum ``chunk_scores(block) -> (model values, UBM values or None)`` (per frame, ``(n, M)``
    and ``(n,)``, or already the block's sums, ``(M,)``) over the blocks of every utterance, blocks on threads (:func:`gmmspeech.threads.map_items`);
    returns the per-utterance sums ``(ll (U, M), ll_ubm (U,))``, added in block order."""
    from gmmspeech.threads import map_items

    spans = _spans(utts, chunk_frames)

    def one(span):
        i, a, b = span
        out, ou = chunk_scores(utts[i][a:b])
        if out.ndim == 2:  # per-frame values: the block's sums
            out = out.sum(axis=0)
        return out, (0.0 if ou is None else float(np.sum(ou)))

    bar = _bar(len(spans), progress)
    try:
        parts = map_items(one, spans, n_threads=n_threads,
                          on_done=None if bar is None else (lambda: bar.update(1)))
    finally:
        if bar is not None:
            bar.close()
    ll = np.zeros((len(utts), n_models))
    ll_ubm = np.zeros(len(utts))
    for (i, _, _), (s, su) in zip(spans, parts):
        ll[i] += s
        ll_ubm[i] += su
    return ll, ll_ubm


def _bar(total, progress):
    if not progress:
        return None
    from gmmspeech.progress import progress_bar

    return progress_bar(total, desc="scoring", unit="chunks")


# --------------------------------------------------------------------------- linear
def utterance_stats(ubm, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Zeroth and first order statistics ``(N (K,), F (K, D), T)`` of frames against a UBM."""
    lp = np.asarray(ubm.weighted_log_prob(np.asarray(X)), dtype=np.float64)
    m = lp.max(axis=1, keepdims=True)
    r = np.exp(lp - m)
    r /= r.sum(axis=1, keepdims=True)
    return r.sum(axis=0), r.T @ np.asarray(X, dtype=np.float64), int(X.shape[0])


def _linear(models, ubm, utts, chunk_frames, progress, n_threads=None):
    if ubm is None:
        raise ValueError("mode='linear' needs a UBM")
    umu = np.asarray(ubm.means_, dtype=np.float64)
    K, D = umu.shape
    kind = getattr(ubm, "covariance_type", "diag")
    for i, m in enumerate(models):
        if np.asarray(m.means_).shape != (K, D):
            raise ValueError(f"mode='linear' needs models with the UBM's shape ({K}, {D}); model {i} differs")
    if kind in ("diag", "spherical"):
        _, _, var = _diag_params(ubm)
        offs = np.stack([(np.asarray(m.means_, np.float64) - umu) / var for m in models])  # (M,K,D)
    elif kind in ("full", "tied"):
        P = np.asarray(ubm.precisions_, dtype=np.float64)
        if kind == "tied":
            P = np.broadcast_to(P, (K, D, D))
        offs = np.stack([np.einsum("kij,kj->ki", P, np.asarray(m.means_, np.float64) - umu)
                         for m in models])
    else:
        raise ValueError(f"unsupported covariance_type {kind!r}")
    offs = offs.reshape(len(models), K * D)
    T = np.array([u.shape[0] for u in utts], dtype=np.float64)
    if kind in ("diag", "spherical"):
        # UBM posteriors of a block of frames in one product, the block's statistics, and
        # their dot products with every model's offsets (the score is linear in them)
        plan = _DiagPlan([ubm], ubm, np.float32)

        def chunk_sums(X):
            Xc = (X - plan.ref).astype(np.float32)
            lp = plan.frame_ubm(Xc, Xc * Xc)
            lp -= lp.max(axis=1, keepdims=True)
            np.exp(lp, out=lp)
            lp /= lp.sum(axis=1, keepdims=True)
            R = lp.astype(np.float64)
            n = R.sum(axis=0)
            f = R.T @ np.asarray(X, dtype=np.float64)
            return offs @ (f - n[:, None] * umu).ravel(), None
    else:
        def chunk_sums(X):
            n, f, _ = utterance_stats(ubm, X)
            return offs @ (f - n[:, None] * umu).ravel(), None

    ll, _ = _over_chunks(utts, chunk_frames, chunk_sums, len(models), progress, n_threads)
    return ll / T[:, None]


# --------------------------------------------------------------------------- full models
def _exact_general(models, ubm, utts, chunk_frames, progress=False, n_threads=None):
    def chunk_scores(X):
        out = np.stack([np.asarray(g.score_samples(X), dtype=np.float64) for g in models], axis=1)
        ou = None if ubm is None else np.asarray(ubm.score_samples(X), dtype=np.float64)
        return out, ou

    return _over_chunks(utts, chunk_frames, chunk_scores, len(models), progress, n_threads)


# --------------------------------------------------------------------------- public
def score(
    models,
    ubm,
    utterances,
    top_c: int | None = None,
    mode: str = "exact",
    *,
    chunk_frames: int = 512,
    dtype=np.float32,
    progress: bool = False,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    n_threads: int | None = None,
    force: bool = False,
    check_models: bool = True,
) -> np.ndarray:
    """Score every utterance against every model.

    Parameters
    ----------
    models : mapping label -> GMM, or sequence of GMMs (columns in that order)
    ubm : GMM or None
        Scores are average frame log-likelihood ratios against ``ubm``; with None, plain
        average frame log-likelihoods (exact mode only).
    utterances : sequence of (n_frames, n_features) arrays (or one 2-D array)
    top_c : int, optional
        Number of UBM components per frame for top-C scoring; giving it with the
        default ``mode`` selects ``mode="topc"``.
    mode : {"exact", "topc", "linear"}
        See the module docstring. ``"topc"`` without ``top_c`` uses C=5.
    chunk_frames : int
        Frames per batched product.
    dtype : numpy float dtype
        Precision of the batched products in exact mode (float32 by default; scores are
        accumulated in float64).
    progress : bool
        Progress bar.
    n_jobs, backend, scheduler
        Score groups of utterances in parallel (see
        :func:`gmmspeech.parallel.parallel_map`); the models travel once per group.
    n_threads : int or None
        Threads inside this process (None: :func:`gmmspeech.threads.default_threads`, the
        cores of the process's affinity mask; 1 inside ``n_jobs`` worker processes). Blocks
        of frames are dynamically scheduled over the threads, each running single-threaded
        kernels, so a core slowed down by another process takes fewer blocks instead of
        holding the others up; scores do not depend on the thread count.
    force : bool
        Score models MAP-adapted from another UBM than ``ubm`` with a warning instead of
        refusing them (see :func:`check_same_ubm`).
    check_models : bool
        Check every model's and the UBM's parameters (as model files are checked) and the
        UBM fingerprints first; callers that did so already pass False.

    Returns
    -------
    ndarray, shape (n_utterances, n_models)
        Every value finite.

    Raises
    ------
    ModelFileError
        A model adapted from another UBM (unless ``force``), or a model or the UBM that
        gives a non-finite score (named by its file when it was loaded from one;
        ``ValueError`` naming its position otherwise).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {', '.join(MODES)}")
    if top_c is not None:
        if int(top_c) < 1:
            raise ValueError(f"top_c must be >= 1, got {top_c}")
        if mode == "exact":
            mode = "topc"
    models = _model_list(models)
    if check_models:
        from gmmspeech.mixture.io import check_parameters

        for i, m in enumerate(models):
            check_parameters(m, f"models[{i}]")
        if ubm is not None:
            check_parameters(ubm, "ubm")
        check_same_ubm(models, ubm, force=force)
    utts = _utterances(utterances)
    D = np.asarray(models[0].means_).shape[1]
    for i, m in enumerate(models):
        if np.asarray(m.means_).shape[1] != D:
            raise _model_error(m, i, f"has {np.asarray(m.means_).shape[1]} dims but "
                                     f"{_name(models[0], 0)} has {D}")
    if ubm is not None and np.asarray(ubm.means_).shape[1] != D:
        raise _model_error(ubm, None, f"has {np.asarray(ubm.means_).shape[1]} dims but "
                                      f"{_name(models[0], 0)} has {D}", what="the UBM")
    for i, u in enumerate(utts):
        if u.shape[1] != D:
            raise ValueError(f"utterances[{i}] has {u.shape[1]} dims but the models have {D}")
    chunk_frames = max(1, int(chunk_frames))

    from gmmspeech.parallel import effective_n_jobs, parallel_map, resolve_backend

    be, _ = resolve_backend(backend, scheduler)
    workers = effective_n_jobs(n_jobs)
    if len(utts) > 1 and (be == "dask" or (workers > 1 and be != "sequential")):
        n_groups = min(len(utts), max(workers, 2) * (4 if be == "dask" else 1))
        groups = np.array_split(np.arange(len(utts)), n_groups)
        parts = parallel_map(
            _score_group,
            [(models, ubm, [utts[i] for i in g], top_c, mode, chunk_frames, dtype, n_threads)
             for g in groups],
            n_jobs=n_jobs, backend=backend, scheduler=scheduler, star=True,
            progress=progress, desc="scoring",
        )
        return np.vstack(parts)

    return _score_local(models, ubm, utts, top_c, mode, chunk_frames, dtype, progress, n_threads)


def _score_local(models, ubm, utts, top_c, mode, chunk_frames, dtype, progress, n_threads=None):
    if mode == "linear":
        out = _linear(models, ubm, utts, chunk_frames, progress, n_threads)
        _check_finite(out, None, models, ubm, utts)
        return out

    all_diag = all(_is_diag(m) for m in models) and (ubm is None or _is_diag(ubm))
    if mode == "topc":
        if not all_diag:
            raise ValueError("mode='topc' supports diagonal-covariance models; use mode='exact'")
        plan = _DiagPlan(models, ubm, np.float32)
        ll, ll_ubm = _topc_diag(plan, utts, int(top_c or 5), chunk_frames, progress, n_threads)
    elif all_diag:
        plan = _DiagPlan(models, ubm, np.dtype(dtype).type)
        ll, ll_ubm = _exact_diag(plan, utts, chunk_frames, progress, n_threads)
    else:
        ll, ll_ubm = _exact_general(models, ubm, utts, chunk_frames, progress, n_threads)
    _check_finite(ll, ll_ubm if ubm is not None else None, models, ubm, utts)
    T = np.array([u.shape[0] for u in utts], dtype=np.float64)
    if ubm is not None:
        ll = ll - ll_ubm[:, None]
    out = ll / T[:, None]
    _check_finite(out, None, models, ubm, utts)
    return out


def _score_group(models, ubm, utts, top_c, mode, chunk_frames, dtype, n_threads=None):
    return score(models, ubm, utts, top_c=top_c, mode=mode, chunk_frames=chunk_frames,
                 dtype=dtype, n_threads=n_threads, check_models=False)
