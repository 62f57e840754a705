"""The Gaussian mixture estimator: scikit-learn's API on a chunked, GEMM-based EM engine.

:class:`GMM` keeps scikit-learn's ``GaussianMixture`` names (``fit``, ``predict``,
``predict_proba``, ``score_samples``, ``score``, ``sample``, ``bic``, ``aic``; fitted
``weights_``, ``means_``, ``covariances_``, ``precisions_cholesky_``, ...) and exposes the
engine underneath, which speaker modelling builds on:

* :meth:`GMM.initialize` runs the initialisation (``init_params``);
* :meth:`GMM.accumulate` is the E-step over one chunk of frames and returns
  :class:`~gmmspeech.mixture.stats.SufficientStats` (picklable model, so it runs in worker
  processes; statistics of chunks add up with ``+``);
* :meth:`GMM.m_step` turns statistics into parameters, with variance floors and
  re-seeding of components whose weight collapses;
* :meth:`GMM.weighted_log_prob` gives ``log phi_k + log N(x | k)`` for scoring.

Numerics
--------
The E-step runs in ``dtype`` (float32 by default, about twice as fast as float64) on chunks
of ``chunk_size`` frames: frames are centred on the mixture mean, the log-densities of a
chunk are one matrix product (see :mod:`gmmspeech.mixture.densities`), posteriors come from
a row-wise log-sum-exp, and the chunk's statistics are one more matrix product, added into
float64 totals. The M-step is float64.

Variances follow scikit-learn's ``reg_covar`` semantics (``reg_covar`` is added to every
variance / covariance diagonal) and are then floored at ``var_floor_rel`` times the global
variance of the data of each dimension (full covariances: eigenvalues floored in the space
scaled by those floors). ``var_floor_rel=0`` gives scikit-learn's updates exactly.

Degenerate components
---------------------
A component whose soft count falls to (numerically) zero has no data to estimate it from.
Rather than producing NaN, :meth:`GMM.m_step` re-seeds it by splitting the heaviest
component in two along its largest-variance direction, as Kaldi and the MSR Identity Toolbox
do: means ``mu -/+ sqrt(2/pi) sigma`` (the means of the two halves of the Gaussian), the
variance along that direction reduced by ``(2/pi) sigma^2`` and the weight halved, so the pair
keeps the parent's weight, mean and covariance (a moment-preserving split). The number of
re-seeded components is counted in ``n_reseeded_``.
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
from scipy.sparse import issparse as sp_issparse
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_array, validate_data

from gmmspeech.mixture import init as _init
from gmmspeech.mixture.densities import (
    COVARIANCE_TYPES,
    DensityPlan,
    covariances_from_precisions,
    logsumexp_normalize,
    n_parameters,
    posteriors_and_scale,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_cholesky,
    stats_kind,
)
from gmmspeech.mixture.stats import SufficientStats

INIT_PARAMS = _init.INIT_PARAMS
SPLIT_PERTURBATION = float(np.sqrt(2.0 / np.pi))  # half-normal mean, in sigmas


# NotFittedError (ValueError, AttributeError) and ConvergenceWarning are scikit-learn's own, so
# `except sklearn.exceptions.NotFittedError` and warning filters on scikit-learn's category work.
__all__ = ["GMM", "NotFittedError", "ConvergenceWarning"]


# ----------------------------------------------------------------------------- chunk engine


def _block_rows(plan: DensityPlan, chunk_size: int) -> int:
    """Rows per block: at most ``chunk_size``, and small enough for the (rows x K) and
    (rows x columns) blocks to stay in a core's cache (about 1 MB each)."""
    width = max(plan.n_components, plan.n_columns)
    return int(max(64, min(int(chunk_size), (1 << 18) // width)))


def _finish(plan: DensityPlan, parts) -> SufficientStats:
    """Statistics from the raw sums of work items, added in item order: the centred
    ``(R^T Z)^T`` (uncentred once, at the end), log-likelihoods, frame counts and the exact
    statistics of risky components."""
    gt, loglik, n_frames, exact = parts[0]
    if len(parts) > 1:
        gt = gt.copy()
        exact = None if exact is None else {k: v.copy() for k, v in exact.items()}
        for g2, l2, f2, e2 in parts[1:]:
            gt += g2
            loglik += l2
            n_frames += f2
            if exact is not None:
                for key in exact:
                    exact[key] += e2[key]
    nk, f, s = plan.uncentre(gt.T)
    if exact is not None:
        plan.patch_stats(nk, f, s, exact)
    return SufficientStats(nk, f, s, loglik, n_frames, plan.form)


_BUFFERS = threading.local()


def _work_buffers(chunk: int, cols: int, k: int, dtype):
    """This thread's E-step work buffers (reused from item to item: no allocation, page
    faults or zeroing per item)."""
    key = (chunk, cols, k, np.dtype(dtype).str)
    cache = getattr(_BUFFERS, "bufs", None)
    if cache is None or cache[0] != key:
        cache = _BUFFERS.bufs = (key, (np.empty((chunk, cols), dtype=dtype),
                                       np.empty((chunk, k), dtype=dtype), np.empty(chunk),
                                       np.empty(chunk, dtype=dtype), np.empty(chunk)))
    return cache[1]


def _accumulate_raw(plan: DensityPlan, X, sample_weight, top_c, chunk_size):
    """E-step sums of one work item: ``(gt, loglik, n_frames, exact)`` (see :func:`_finish`)."""
    n, d = X.shape
    k = plan.n_components
    chunk = max(1, min(_block_rows(plan, chunk_size), n))
    gt = np.zeros((plan.n_columns, k))  # (R^T Z)^T, accumulated in float64
    zbuf, lbuf, logp, m, factor = _work_buffers(chunk, plan.n_columns, k, plan.dtype)
    loglik = 0.0
    exact = plan.exact_accumulator() if plan.risky.size else None
    for a in range(0, n, chunk):
        xc = X[a : a + chunk]
        nc = xc.shape[0]
        z = plan.design(xc, out=zbuf)
        lp = plan.log_prob(z, out=lbuf)
        if exact is not None:
            plan.exact_columns(xc, lp)
        wc = None if sample_weight is None else sample_weight[a : a + chunk]
        scaled_z = posteriors_and_scale(lp, z, wc, top_c, logp, m, factor)
        if exact is not None:
            cols = lp[:, plan.risky].astype(np.float64)
            if scaled_z:
                cols *= factor[:nc, None]
            plan.exact_stats(xc, cols, exact)
        if wc is None:
            loglik += float(logp[:nc].sum())
        else:
            pos = wc > 0
            loglik += float(wc[pos] @ logp[:nc][pos])
        gt += z.T @ lp
    n_frames = float(n) if sample_weight is None else float(np.sum(sample_weight))
    return gt, loglik, n_frames, exact


# blocks per work item of the threaded E-step and density passes: items are cut from the
# block grid only, so the statistics are the same for any number of threads
_ITEM_BLOCKS = 4


def _items(n: int, rows: int) -> list[tuple[int, int]]:
    """Row ranges of ``_ITEM_BLOCKS`` blocks of ``rows`` frames (the last one shorter)."""
    step = rows * _ITEM_BLOCKS
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _accumulate_plan(plan: DensityPlan, X, sample_weight, top_c, chunk_size, n_threads=None) -> SufficientStats:
    """E-step of one block of frames against ``plan`` (module-level: runs in workers).

    The rows are cut into items of a few cache-sized blocks, run on
    :func:`gmmspeech.threads.map_items` (dynamically scheduled threads, single-threaded BLAS;
    numpy and the numba kernels release the GIL) and their statistics added in item order:
    on small core counts this beats one multi-threaded BLAS call per chunk, since the
    element-wise work runs in parallel too and no thread pool spins between chunks, and a
    core slowed down by another process takes fewer items instead of holding up the others.
    Item boundaries do not depend on ``n_threads``, so neither do the statistics (a Dask
    worker with one thread agrees with a local run with all of them). Items return raw
    centred sums; the statistics are uncentred once, after the sum.
    """
    from gmmspeech.threads import map_items

    rows = _block_rows(plan, chunk_size)

    def run(ab):
        a, b = ab
        w = None if sample_weight is None else sample_weight[a:b]
        return _accumulate_raw(plan, X[a:b], w, top_c, chunk_size)

    items = _items(X.shape[0], rows) or [(0, 0)]  # no frames: one empty item (zero statistics)
    return _finish(plan, map_items(run, items, n_threads=n_threads))


def _floor_full(cov: np.ndarray, floor_d: np.ndarray) -> np.ndarray:
    """Floor the eigenvalues of covariances ``(K, D, D)`` in the space scaled by ``floor_d``.

    A matrix is left untouched unless it has a direction whose variance (in units of the
    per-dimension floors) is below 1; such eigenvalues are raised to 1.
    """
    scale = np.sqrt(floor_d)
    outer = np.outer(scale, scale)
    cs = cov / outer
    cs = 0.5 * (cs + np.swapaxes(cs, -1, -2))
    w, v = np.linalg.eigh(cs)
    bad = w.min(axis=-1) < 1.0 - 1e-7
    if not np.any(bad):
        return cov
    out = cov.copy()
    wb = np.maximum(w[bad], 1.0)
    vb = v[bad]
    out[bad] = np.einsum("kij,kj,klj->kil", vb, wb, vb) * outer
    return out


# ----------------------------------------------------------------------------- EM acceleration
ACCELERATIONS = ("anderson", "squarem", None)
STOPPING_RULES = ("aitken", "gain")
_RATE_WINDOW = 5  # EM convergence rate: the largest step ratio among the last few estimates


def _chol_vec(mats, scale):
    """log-Cholesky coordinates of covariances ``(m, D, D)`` in the data's standard units."""
    chol = np.linalg.cholesky(mats / np.outer(scale, scale))
    il = np.tril_indices(scale.size, -1)
    return np.concatenate([np.log(np.diagonal(chol, axis1=-2, axis2=-1)).ravel(), chol[:, il[0], il[1]].ravel()])


def _chol_unvec(vec, m, scale):
    d = scale.size
    chol = np.zeros((m, d, d))
    di = np.arange(d)
    chol[:, di, di] = np.exp(vec[: m * d].reshape(m, d))
    il = np.tril_indices(d, -1)
    chol[:, il[0], il[1]] = vec[m * d :].reshape(m, -1)
    return (chol @ np.swapaxes(chol, -1, -2)) * np.outer(scale, scale)


# covariances <-> unconstrained coordinates (log variances, log-Cholesky factors); the way back
# applies the variance floors, so every extrapolated point is a valid, floored model
_COV_TO_VEC = {
    "diag": lambda cov, scale: np.log(cov).ravel(),
    "spherical": lambda cov, scale: np.log(cov).ravel(),
    "full": _chol_vec,
    "tied": lambda cov, scale: _chol_vec(cov[None], scale),
}
_COV_FROM_VEC = {
    "diag": lambda v, k, scale, floor: np.maximum(np.exp(v).reshape(k, -1), floor),
    "spherical": lambda v, k, scale, floor: np.maximum(np.exp(v), float(np.mean(floor))),
    "full": lambda v, k, scale, floor: _floor_full(_chol_unvec(v, k, scale), floor),
    "tied": lambda v, k, scale, floor: _floor_full(_chol_unvec(v, 1, scale), floor)[0],
}


class _ParamMap:
    """Mixture parameters as one unconstrained vector in the data's standard units.

    ``[log weights, (means - centre) / scale, covariance coordinates]``: SQUAREM extrapolates
    in these coordinates (so the extrapolated weights stay on the simplex and covariances stay
    positive definite), and the stopping rule measures parameter movement in them (weights
    by their absolute change, means in standard deviations of the data, variances relatively).
    """

    def __init__(self, model, stats):
        self.k = model.n_components
        self.ct = model.covariance_type
        self.centre = stats.global_mean()
        self.scale = np.sqrt(np.maximum(stats.global_variance(), np.finfo(np.float64).tiny))
        self.floor = model._variance_floor(stats)

    def vec(self, model):
        return np.concatenate([
            np.log(model.weights_),
            ((model.means_ - self.centre) / self.scale).ravel(),
            _COV_TO_VEC[self.ct](model.covariances_, self.scale),
        ])

    def params(self, vec):
        """(weights, means, covariances) from a vector, or None when it is not a valid model."""
        k, d = self.k, self.scale.size
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if not np.all(np.isfinite(vec)):
                return None
            lw = vec[:k]
            weights = np.exp(lw - lw.max())
            weights /= weights.sum()
            means = vec[k : k + k * d].reshape(k, d) * self.scale + self.centre
            rest = vec[k + k * d :]
            raw = np.exp(rest) if self.ct in ("diag", "spherical") else None
            if raw is not None and not np.all(np.isfinite(raw)):
                return None
            if self.ct in ("full", "tied"):
                m = 1 if self.ct == "tied" else k
                if not np.all(np.isfinite(_chol_unvec(rest, m, self.scale))):
                    return None
            cov = _COV_FROM_VEC[self.ct](rest, k, self.scale, self.floor)
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means)) and np.all(np.isfinite(cov))):
            return None
        return weights, means, cov

    def distance(self, a, b) -> float:
        k = self.k
        dw = float(np.max(np.abs(np.exp(a[:k]) - np.exp(b[:k]))))
        return max(dw, float(np.max(np.abs(a[k:] - b[k:]))))


class _AitkenRule:
    """Convergence seen through Aitken's geometric extrapolation of two consecutive EM steps.

    EM converges linearly: successive steps shrink by the rate ``lam`` (the largest fraction of
    missing information), so the distance from the point before a step of size ``d`` to the
    limit is about ``d / (1 - lam)`` and the log-likelihood still to gain from there about
    ``g / (1 - lam^2)`` for that step's gain ``g``. With overlapping components ``lam`` is close to 1 and the last step
    says little: a gain of 1e-4 per frame can leave the means an inch from the optimum.
    ``lam`` is the largest step ratio among the last few estimates (one bad estimate right
    after an extrapolation does not stop the fit); ``lam >= 1`` means "not converged".
    """

    def __init__(self, tol, param_rtol):
        self.tol = float(tol)
        self.param_rtol = float(param_rtol)
        self.rates = []

    def converged(self, d_prev, d_last, gain) -> bool:
        if not d_prev > 0:  # an exact fixed point
            return True
        self.rates = (self.rates + [d_last / d_prev])[-_RATE_WINDOW:]
        lam = max(self.rates)
        if len(self.rates) < 2 or not lam < 1.0:  # the first ratio (from the start) says little
            return False
        remaining_params = d_last / (1.0 - lam)
        remaining_gain = max(gain, 0.0) / (1.0 - lam * lam)
        return bool(remaining_params <= self.param_rtol and remaining_gain < self.tol)


class _RoundingFloor:
    """The gain rule's resolution: EM never lowers the likelihood, so a small decrease between
    two iterations with no re-seeded component in between is the E-step's rounding (a float32
    E-step: a few 1e-6 of the average log-likelihood per frame). Gains within twice the largest
    such decrease are taken as zero, so a ``tol`` below what the compute dtype resolves stops
    where EM has stopped moving instead of running to ``max_iter`` on noise. Only decreases up
    to ``32 eps max(1, |ll|)`` of the compute dtype count: ``reg_covar`` makes EM slightly
    non-monotone, and such a decrease (float64: far above its rounding) is not noise."""

    def __init__(self, dtype):
        self.noise = 0.0
        self.eps = 32.0 * float(np.finfo(dtype).eps)

    def see(self, change: float, reseeded: bool, ll: float) -> None:
        if change < 0.0 and not reseeded and -change <= self.eps * max(1.0, abs(ll)):
            self.noise = max(self.noise, -change)

    def tol(self, tol: float) -> float:
        return max(float(tol), 2.0 * self.noise)


_ANDERSON_MEMORY = 5  # secant pairs kept by accelerate="anderson"
_OVERRELAX_MAX = 16.0  # longest overrelaxed step of accelerate="anderson", in EM steps


def _anderson_step(xs, fs):
    """Anderson's (type II) next point and the EM rate seen by the secants.

    ``xs``: the last points, ``fs``: their EM images (unconstrained coordinates). Returns
    ``(candidate, rate)``: the candidate is ``F(x) - (dX + dF) gamma`` (``gamma`` fits the
    last residual by the residual differences in least squares), the rate is the largest
    modulus of the Ritz values of the EM map's Jacobian on the span of the point differences
    (``J dX = dX + dF``); both None with fewer than two differences.
    """
    if len(xs) < 3:
        return None, None
    xm = np.stack(xs, axis=1)
    res = np.stack(fs, axis=1) - xm
    dx = np.diff(xm, axis=1)
    df = np.diff(res, axis=1)
    if not (np.all(np.isfinite(df)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(res))):
        return None, None  # no extrapolation from non-finite secants: a plain EM step
    with np.errstate(all="ignore"):
        try:
            gamma = np.linalg.lstsq(df, res[:, -1], rcond=None)[0]
            cand = fs[-1] - (dx + df) @ gamma
            ritz = np.linalg.lstsq(dx, dx + df, rcond=None)[0]
            lam = (float(np.max(np.abs(np.linalg.eigvals(ritz)))) if np.all(np.isfinite(ritz))
                   else np.inf)
        except np.linalg.LinAlgError:  # LAPACK gave up on nearly degenerate secants
            return None, None
    if not np.all(np.isfinite(cand)):
        cand = None
    return cand, lam


def _check_shape(param, shape, name):
    param = np.asarray(param)
    if param.shape != tuple(shape):
        raise ValueError(f"The parameter '{name}' should have the shape of {tuple(shape)}, but got {param.shape}")


def _is_single_array(X) -> bool:
    """True when ``X`` is one array-like of frames (not an iterable of chunks)."""
    if isinstance(X, np.ndarray) or hasattr(X, "columns") or sp_issparse(X):
        return True
    if isinstance(X, (list, tuple)):
        try:
            return np.asarray(X, dtype=np.float64).ndim <= 2
        except (ValueError, TypeError):
            return False
    return False


class GMM(DensityMixin, BaseEstimator):
    """Gaussian mixture model trained by expectation-maximisation.

    Parameters
    ----------
    n_components : int, default 1
        Number of mixture components ``K``.
    covariance_type : {"diag", "full", "spherical", "tied"}, default "diag"
    tol : float, default 1e-3
        Log-likelihood tolerance. With ``stopping="gain"`` EM stops when the average
        log-likelihood gains less than ``tol`` in one iteration (scikit-learn's rule); with
        ``stopping="aitken"`` the last gain must also be below ``tol``.
    param_tol : float or None
        The textbook rule: when set, EM also stops when no parameter (weight, mean or
        covariance entry, in the data's units) moved by more than ``param_tol`` in one
        plain EM step, whatever ``stopping`` is.
    accelerate : {"anderson", "squarem", None}, default "anderson"
        EM acceleration, monotone in both cases: an extrapolated point is kept only when its
        log-likelihood is at least the current one, otherwise the plain EM step is taken, so
        ``history_`` never decreases. ``"anderson"``: Anderson mixing of the last 5 EM steps
        (a multi-secant quasi-Newton step on the EM map, the DAAREM family of Henderson and
        Varadhan 2019), one E-step per accepted iteration; where the secants see the EM map
        expand (leaving a saddle), an overrelaxed EM step instead. ``"squarem"``: SQUAREM scheme S3
        (Varadhan and Roland 2008), one squared extrapolation after every two EM steps.
        Both extrapolate in unconstrained coordinates (log weights, means in data standard
        deviations, log variances or log-Cholesky factors), so every point is a valid model.
        None: plain EM (scikit-learn's iteration). :meth:`partial_fit`, :meth:`accumulate`
        and :meth:`m_step` are plain EM steps whatever the setting.
    stopping : {"aitken", "gain"}, default "aitken"
        ``"aitken"``: stop when EM has converged in the parameters. The distance still to go
        is estimated as ``d / (1 - rate)`` (Aitken's geometric extrapolation; ``d`` is the
        last plain EM step, ``rate`` EM's convergence rate: the step ratios of plain EM, the
        largest Ritz value of the EM map's Jacobian on Anderson's secants, and for Anderson
        also the length of its next step), and the fit stops when that is at most
        ``param_rtol`` and the last gain is below ``tol``. On an overlapping mixture EM
        crawls along a flat ridge (rate close to 1) and the gain rule stops far from the
        optimum; this rule does not. Models with many components (K=8-64 on speech
        features) rarely converge in their parameters within ``max_iter`` (a
        ``ConvergenceWarning``): use ``"gain"`` for a fixed budget. ``"gain"``:
        scikit-learn's rule (see ``tol``); with plain EM a gain within twice the largest
        decrease seen so far (EM never lowers the likelihood: a decrease is the E-step's
        rounding, a few 1e-6 per frame in float32) counts as zero, so a ``tol`` below what the
        compute dtype resolves still stops.
    param_rtol : float, default 1e-3
        Parameter tolerance of ``stopping="aitken"``, in the data's standard deviations
        for means, relative for variances (log scale) and absolute for weights.
    reg_covar : float, default 1e-6
        Added to every variance (scikit-learn's semantics); also an absolute variance floor.
    var_floor_rel : float, default 1e-3
        Variances are floored at ``var_floor_rel`` times the global variance of each
        dimension. 0 disables the relative floor (scikit-learn's behaviour).
    max_iter : int, default 100
    n_init : int, default 1
        Number of initialisations; the one with the best final log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "split"}
        ``"kmeans"``: k-means++ seeding and Lloyd iterations, then one M-step from the hard
        assignment. ``"k-means++"``: seeding only, every point assigned to its nearest seed.
        ``"random"``: random responsibilities. ``"random_from_data"``: the textbook
        initialisation (means are K distinct data points drawn without replacement, every
        variance is the data's, equal weights). ``"split"``: binary splitting from one
        Gaussian with ``split_iter`` EM iterations after every split (Kaldi/MSR style).
    weights_init, means_init, precisions_init : array-like or None
        User-given initial parameters (scikit-learn's names and shapes). When all three are
        given no data-driven initialisation runs.
    random_state : int, Generator, RandomState or None
    n_jobs : int, default 1
        Worker processes for the E-step (:func:`gmmspeech.parallel.parallel_map`, one thread
        each); 1 computes in this process, on ``n_threads`` threads.
    n_threads : int or None, default None
        Threads of the E-step and of the density passes (``predict``, ``score_samples``...)
        in this process. None: :func:`gmmspeech.threads.default_threads` (the cores of the
        process's affinity mask, 1 inside worker processes). Blocks of frames are dynamically
        scheduled over the threads; results do not depend on the thread count.
    chunk_size : int, default 2048
        Largest number of frames per E-step block; blocks are made smaller still so that
        their ``rows x K`` and ``rows x columns`` arrays stay in a core's cache (about 1 MB).
    dtype : {np.float32, np.float64}, default np.float32
        Compute dtype of the E-step. Statistics and M-step are float64.
    verbose : int, default 0
    verbose_interval : int, default 10
    split_iter : int, default 5
        EM iterations between splits for ``init_params="split"``.
    kmeans_iter : int, default 10
        Lloyd iterations for ``init_params="kmeans"``.
    backend : str or None
        joblib backend for ``n_jobs > 1`` (see :func:`gmmspeech.parallel.resolve_backend`).

    Attributes
    ----------
    weights_ : ndarray (K,)
    means_ : ndarray (K, D)
    covariances_ : ndarray
        (K,) spherical, (D, D) tied, (K, D) diag, (K, D, D) full.
    precisions_ : ndarray
        Inverses of the covariances (same shapes).
    precisions_cholesky_ : ndarray
        Cholesky factors ``P`` of the precisions (``precision = P P^T``; ``1/sqrt(var)`` for
        diag and spherical).
    converged_ : bool
    n_iter_ : int
        E-steps (passes over the data) of the best initialisation, rejected extrapolations
        included.
    lower_bound_ : float
        Average log-likelihood (per frame) of the training data at the last E-step.
    history_ : list of float
        Average log-likelihood of every model EM went through (one per E-step, rejected
        extrapolations left out); never decreases, up to ``reg_covar`` and rounding.
    n_features_in_ : int
    n_reseeded_ : int
        Components re-seeded because their weight collapsed.
    n_extrapolated_ : int
        Accelerated points kept (0 with ``accelerate=None``).
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="diag",
        tol=1e-3,
        param_tol=None,
        reg_covar=1e-6,
        var_floor_rel=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        n_jobs=1,
        chunk_size=2048,
        dtype=np.float32,
        verbose=0,
        verbose_interval=10,
        split_iter=5,
        kmeans_iter=10,
        backend=None,
        accelerate="anderson",
        stopping="aitken",
        param_rtol=1e-3,
        n_threads=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.param_tol = param_tol
        self.reg_covar = reg_covar
        self.var_floor_rel = var_floor_rel
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size
        self.dtype = dtype
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.split_iter = split_iter
        self.kmeans_iter = kmeans_iter
        self.backend = backend
        self.accelerate = accelerate
        self.stopping = stopping
        self.param_rtol = param_rtol
        self.n_threads = n_threads

    # ================================================================== scikit-learn protocol
    # get_params / set_params / clone / repr come from BaseEstimator; score is overridden below.
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        # a fixed random_state gives the same model on a given machine (E-step partial sums are
        # reduced in a fixed order), so the estimator is deterministic in scikit-learn's sense
        tags.non_deterministic = False
        tags.input_tags.two_d_array = True
        tags.input_tags.one_d_array = False  # accepted as univariate, but 2-D is the contract
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        tags.input_tags.categorical = False
        tags.target_tags.required = False  # unsupervised: y is ignored
        return tags

    # ================================================================== validation
    def _check_parameters(self):
        if not isinstance(self.n_components, (int, np.integer)) or isinstance(self.n_components, bool) or self.n_components < 1:
            raise ValueError(
                f"Invalid value for 'n_components': {self.n_components}. "
                "Estimation requires at least one component"
            )
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"Invalid value for 'covariance_type': {self.covariance_type!r}. "
                f"'covariance_type' should be in {list(COVARIANCE_TYPES)}"
            )
        if not np.isscalar(self.tol) or not self.tol >= 0:
            raise ValueError(f"Invalid value for 'tol': {self.tol}. Tolerance used by the EM must be non-negative")
        if self.param_tol is not None and (not np.isscalar(self.param_tol) or not self.param_tol >= 0):
            raise ValueError(f"Invalid value for 'param_tol': {self.param_tol}. It must be None or non-negative")
        if self.param_rtol is None or not np.isscalar(self.param_rtol) or not self.param_rtol >= 0:
            raise ValueError(f"Invalid value for 'param_rtol': {self.param_rtol}. It must be non-negative")
        if self.accelerate not in ACCELERATIONS:
            raise ValueError(
                f"Invalid value for 'accelerate': {self.accelerate!r}. 'accelerate' should be in {list(ACCELERATIONS)}"
            )
        if self.stopping not in STOPPING_RULES:
            raise ValueError(
                f"Invalid value for 'stopping': {self.stopping!r}. 'stopping' should be in {list(STOPPING_RULES)}"
            )
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(
                f"Invalid value for 'max_iter': {self.max_iter}. Estimation requires at least one iteration"
            )
        if not isinstance(self.n_init, (int, np.integer)) or self.n_init < 1:
            raise ValueError(f"Invalid value for 'n_init': {self.n_init}. Estimation requires at least one run")
        if not np.isscalar(self.reg_covar) or not self.reg_covar >= 0:
            raise ValueError(
                f"Invalid value for 'reg_covar': {self.reg_covar}. regularization on covariance must be non-negative"
            )
        if not np.isscalar(self.var_floor_rel) or not self.var_floor_rel >= 0:
            raise ValueError(f"Invalid value for 'var_floor_rel': {self.var_floor_rel}. It must be non-negative")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}. 'init_params' should be in {list(INIT_PARAMS)}"
            )
        if not isinstance(self.chunk_size, (int, np.integer)) or self.chunk_size < 1:
            raise ValueError(f"Invalid value for 'chunk_size': {self.chunk_size}. It must be a positive integer")
        if self.n_threads is not None and (not isinstance(self.n_threads, (int, np.integer))
                                           or isinstance(self.n_threads, bool) or self.n_threads < 1):
            raise ValueError(f"Invalid value for 'n_threads': {self.n_threads!r}. It must be None or a "
                             "positive integer")
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"Invalid value for 'dtype': {self.dtype!r}. 'dtype' should be float32 or float64")
        if not isinstance(self.split_iter, (int, np.integer)) or self.split_iter < 0:
            raise ValueError(f"Invalid value for 'split_iter': {self.split_iter}. It must be a non-negative integer")

    @property
    def _compute_dtype(self):
        return np.dtype(self.dtype)

    def _check_X(self, X, *, reset=False, name="X"):
        """Validate frames as scikit-learn does (``check_array`` + ``validate_data``).

        A 1-D array is the univariate case: N frames of one feature, shape (N, 1). Float32 and
        float64 are kept, anything else real is converted to float64. ``reset=True`` (fit)
        records ``n_features_in_`` and, for a DataFrame, ``feature_names_in_``; otherwise the
        model must be fitted and the features must match.
        """
        if not reset:
            self._check_is_fitted()
        named = hasattr(X, "columns")
        if named:  # a DataFrame: its column names are recorded (fit) or checked
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif not sp_issparse(X):
            X = np.asarray(X)
        if not named and not sp_issparse(X) and X.ndim == 1:
            X = X.reshape(-1, 1)
            if not reset and self.n_features_in_ != 1:
                raise ValueError(
                    f"Expected 2D array, got 1D array instead: {name} has {X.shape[0]} values and "
                    f"{self.__class__.__name__} is expecting {self.n_features_in_} features. A 1-D "
                    "array is read as N frames of one feature. Reshape your data using "
                    "array.reshape(1, -1) if it contains a single sample."
                )
        X = check_array(
            X,
            dtype=[np.float64, np.float32],
            ensure_2d=True,
            allow_nd=False,
            ensure_min_samples=1,
            ensure_min_features=1,
            input_name=name,
            estimator=self,
        )
        if not named:  # n_features_in_ (fit) or the feature check, and no stale feature names
            validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    @staticmethod
    def _check_sample_weight(sample_weight, n):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.shape != (n,):
            raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
        if not np.all(np.isfinite(w)):
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if np.any(w < 0):
            raise ValueError("Negative values in sample_weight")
        if not w.sum() > 0:
            raise ValueError("sample_weight sums to zero: no frame carries any weight")
        return w

    def _check_is_fitted(self):
        if not hasattr(self, "precisions_cholesky_"):
            raise NotFittedError(
                f"This {self.__class__.__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _check_n_samples(self, X):
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )

    def _check_distinct(self, X):
        k = self.n_components
        if k == 1:
            return
        n_distinct = _init.count_distinct_rows(X, k)
        if n_distinct < k:
            raise ValueError(
                f"n_components={k} is larger than the number of distinct points in X "
                f"({n_distinct}); a mixture needs at least as many distinct points as components"
            )

    def _check_init_params(self, n_features):
        k, d = self.n_components, n_features
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            _check_shape(w, (k,), "weights")
            if np.any(~np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got "
                    f"max value {np.max(w):.5f}, min value {np.min(w):.5f}"
                )
            if not np.allclose(np.abs(1.0 - np.sum(w)), 0.0):
                raise ValueError(
                    f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(w):.5f}"
                )
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.ndim == 1 and d == 1:
                m = m[:, None]
            _check_shape(m, (k, d), "means")
            if not np.all(np.isfinite(m)):
                raise ValueError("Input means_init contains NaN or infinity.")
        if self.precisions_init is not None:
            self._validate_precisions(self.precisions_init, k, d)

    def _validate_precisions(self, precisions, k, d):
        ct = self.covariance_type
        p = np.asarray(precisions, dtype=np.float64)
        shapes = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        _check_shape(p, shapes[ct], f"{ct} precision")
        if not np.all(np.isfinite(p)):
            raise ValueError(f"'{ct} precision' should be finite")
        if ct in ("diag", "spherical"):
            if np.any(p <= 0.0):
                raise ValueError(f"'{ct} precision' should be positive")
        else:
            mats = p[None] if ct == "tied" else p
            for m in mats:
                if not np.allclose(m, m.T) or np.any(np.linalg.eigvalsh(m) <= 0.0):
                    raise ValueError(f"'{ct} precision' should be symmetric, positive-definite")
        return p

    def _validate_covariances(self, cov, k, d):
        ct = self.covariance_type
        c = np.asarray(cov, dtype=np.float64)
        shapes = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        if ct == "diag" and c.ndim == 1 and d == 1:
            c = c[:, None]
        _check_shape(c, shapes[ct], f"{ct} covariance")
        if not np.all(np.isfinite(c)):
            raise ValueError(f"'{ct} covariance' should be finite")
        if ct in ("diag", "spherical"):
            if np.any(c <= 0.0):
                raise ValueError(f"'{ct} covariance' should be positive")
        else:
            mats = c[None] if ct == "tied" else c
            for m in mats:
                if not np.allclose(m, m.T) or np.any(np.linalg.eigvalsh(m) <= 0.0):
                    raise ValueError(f"'{ct} covariance' should be symmetric, positive-definite")
        return c

    # ================================================================== parameters
    def _set_parameters(self, weights, means, covariances, prec_chol=None):
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        if prec_chol is None:
            prec_chol = precisions_cholesky_from_covariances(self.covariances_, self.covariance_type)
        self.precisions_cholesky_ = np.asarray(prec_chol, dtype=np.float64)
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _plan(self) -> DensityPlan:
        self._check_is_fitted()
        return DensityPlan(
            self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type, self._compute_dtype
        )

    @classmethod
    def from_params(cls, weights, means, covariances, covariance_type="diag", **kwargs) -> GMM:
        """A fitted model from given parameters.

        Parameters
        ----------
        weights : array (K,)
            Non-negative, summing to 1.
        means : array (K, D)
        covariances : array
            (K,) spherical, (D, D) tied, (K, D) diag, (K, D, D) full; positive definite.
        covariance_type : str
        **kwargs
            Other constructor parameters (``dtype``, ``chunk_size``, ``reg_covar``, ...).
        """
        means = np.asarray(means, dtype=np.float64)
        if means.ndim == 1:
            means = means[:, None]
        if means.ndim != 2:
            raise ValueError(f"The parameter 'means' should be 2-D (K, D), but got shape {means.shape}")
        k, d = means.shape
        model = cls(n_components=k, covariance_type=covariance_type, **kwargs)
        model._check_parameters()
        if not np.all(np.isfinite(means)):
            raise ValueError("The parameter 'means' contains NaN or infinity.")
        w = np.asarray(weights, dtype=np.float64)
        _check_shape(w, (k,), "weights")
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise ValueError("The parameter 'weights' should be non-negative and finite")
        if not np.isclose(w.sum(), 1.0, rtol=1e-6, atol=1e-6):
            raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")
        cov = model._validate_covariances(covariances, k, d)
        # weights that sum to 1 up to rounding are kept as given, so that the parameters of
        # a fitted model (e.g. a UBM's weights in a mean-only MAP model) round-trip exactly
        if abs(w.sum() - 1.0) > 4 * k * np.finfo(np.float64).eps:
            w = w / w.sum()
        model._set_parameters(w, means, cov)
        model.n_features_in_ = d
        model.converged_ = True
        model.n_iter_ = 0
        model.lower_bound_ = -np.inf
        model.history_ = []
        model.n_reseeded_ = 0
        return model

    # ================================================================== M-step
    def _variance_floor(self, stats: SufficientStats) -> np.ndarray:
        gvar = stats.global_variance()
        gmean = stats.global_mean()
        eps_c = np.finfo(self._compute_dtype).eps
        eps64 = np.finfo(np.float64).eps
        tiny = np.sqrt(np.finfo(self._compute_dtype).tiny)
        safety = 4.0 * eps_c * gvar + 4.0 * eps64 * (gmean**2 + gvar) + tiny
        return np.maximum(np.maximum(float(self.reg_covar), float(self.var_floor_rel) * gvar), safety)

    def m_step(self, stats: SufficientStats) -> GMM:
        """Maximisation step: parameters from sufficient statistics.

        Applies ``reg_covar`` (added, as scikit-learn), the variance floors, and re-seeds
        components whose soft count is numerically zero (see the module notes).

        Parameters
        ----------
        stats : SufficientStats
            From :meth:`accumulate` (summed over chunks). Full statistics are accepted by
            diagonal and spherical models (their diagonals are used).

        Returns
        -------
        self
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"m_step expects SufficientStats, got {type(stats).__name__}")
        # K small (D x D) factorisations: a multi-threaded BLAS only spins on these
        from gmmspeech.threads import single_thread_blas

        with single_thread_blas():
            return self._m_step(stats)

    def _m_step(self, stats: SufficientStats) -> GMM:
        self._check_parameters()
        kind = stats_kind(self.covariance_type)
        if stats.kind != kind:
            if kind == "diag":
                stats = stats.to_diag()
            else:
                raise ValueError(
                    f"covariance_type={self.covariance_type!r} needs full statistics (kind='full'), "
                    "got kind='diag'"
                )
        k, d = stats.n_components, stats.n_features
        if k != self.n_components:
            raise ValueError(f"stats hold {k} components but n_components = {self.n_components}")
        if hasattr(self, "n_features_in_") and hasattr(self, "means_") and d != self.n_features_in_:
            raise ValueError(f"stats hold {d} features but the model has {self.n_features_in_}")
        if not (np.all(np.isfinite(stats.n)) and np.all(np.isfinite(stats.f)) and np.all(np.isfinite(stats.s))):
            raise ValueError("m_step: the statistics contain NaN or infinity")
        total = float(stats.n.sum())
        if not total > 0:
            raise ValueError("m_step: the statistics hold no frames (every count is zero)")
        eps10 = 10 * np.finfo(np.float64).eps
        alive = stats.n > max(1e-10 * total, 1e3 * np.finfo(np.float64).tiny)
        nk = np.where(alive, stats.n, 1.0) + eps10
        means = stats.f / nk[:, None]
        floor_d = self._variance_floor(stats)
        reg = float(self.reg_covar)
        ct = self.covariance_type
        if ct == "diag":
            cov = stats.s / nk[:, None] - means**2 + reg
            cov = np.maximum(cov, floor_d)
        elif ct == "spherical":
            cov = np.mean(stats.s / nk[:, None] - means**2, axis=1) + reg
            cov = np.maximum(cov, float(np.mean(floor_d)))
        elif ct == "full":
            cov = stats.s / nk[:, None, None] - means[:, :, None] * means[:, None, :]
            cov.reshape(k, -1)[:, :: d + 1] += reg
            cov[~alive] = np.diag(floor_d)
            cov = _floor_full(cov, floor_d)
        else:  # tied
            na = np.where(alive, stats.n, 0.0) + eps10
            cov = (stats.s.sum(axis=0) - np.einsum("k,ki,kj->ij", na, means, means)) / na.sum()
            cov.flat[:: d + 1] += reg
            cov = _floor_full(cov[None], floor_d)[0]
        weights = np.where(alive, stats.n, 0.0) + eps10
        weights = weights / weights.sum()
        if not np.all(alive):
            weights, means, cov = self._reseed(~alive, weights, means, cov, floor_d)
        prec_chol = self._safe_precisions_cholesky(cov, floor_d)
        if prec_chol is None:
            cov = self._repair_covariances(cov, floor_d)
            prec_chol = precisions_cholesky_from_covariances(cov, ct)
        self._set_parameters(weights, means, cov, prec_chol)
        self.n_features_in_ = d
        return self

    def _safe_precisions_cholesky(self, cov, floor_d):
        try:
            pc = precisions_cholesky_from_covariances(cov, self.covariance_type)
        except ValueError:
            return None
        return pc if np.all(np.isfinite(pc)) else None

    def _repair_covariances(self, cov, floor_d):
        ct = self.covariance_type
        if ct == "diag":
            return np.maximum(np.nan_to_num(cov, nan=1.0), floor_d)
        if ct == "spherical":
            return np.maximum(np.nan_to_num(cov, nan=1.0), float(np.mean(floor_d)))
        mats = cov[None] if ct == "tied" else cov
        mats = np.nan_to_num(mats, nan=0.0, posinf=0.0, neginf=0.0)
        mats = 0.5 * (mats + np.swapaxes(mats, -1, -2))
        w, v = np.linalg.eigh(mats)
        lo = max(float(np.max(floor_d)), 1e-12 * float(np.max(np.abs(w))))
        w = np.maximum(w, lo)
        mats = np.einsum("kij,kj,klj->kil", v, w, v)
        return mats[0] if ct == "tied" else mats

    def _reseed(self, dead, weights, means, cov, floor_d):
        """Re-seed dead components by splitting the heaviest live component in two."""
        weights, means, cov = weights.copy(), means.copy(), cov.copy()
        weights[dead] = 0.0
        for j in np.flatnonzero(dead):
            h = int(np.argmax(weights))
            self._split_into(h, j, weights, means, cov, floor_d)
        self.n_reseeded_ = getattr(self, "n_reseeded_", 0) + int(np.sum(dead))
        return weights / weights.sum(), means, cov

    def _grow_by_splitting(self, weights, means, cov, n_new, floor_d):
        """New parameter arrays with ``n_new`` more components: the ``n_new`` heaviest
        components are split in two (see :meth:`_split_into`); weights are not renormalised
        (a split keeps the total)."""
        k = weights.shape[0]
        heavy = np.argsort(-weights, kind="stable")[:n_new]
        weights = np.concatenate([weights, np.zeros(n_new)])
        means = np.vstack([means, np.zeros((n_new, means.shape[1]))])
        if self.covariance_type != "tied":
            cov = np.concatenate([cov, np.zeros((n_new,) + cov.shape[1:])], axis=0)
        else:
            cov = cov.copy()
        for i, h in enumerate(heavy):
            self._split_into(int(h), k + i, weights, means, cov, floor_d)
        return weights, means, cov

    def _split_into(self, h, j, weights, means, cov, floor_d):
        """Split component ``h`` in two, writing the second half into slot ``j`` (in place).

        Moment-preserving split along ``h``'s largest-variance direction ``v`` (variance
        ``s2``): means ``mu -/+ sqrt(2/pi) sqrt(s2) v`` (the means of the two halves of the
        Gaussian cut through its centre), variance along ``v`` reduced by ``(2/pi) s2``, weights
        halved, so the pair has the parent's weight, mean and covariance. Tied models keep
        their shared covariance.
        """
        ct = self.covariance_type
        d = means.shape[1]
        shrink = SPLIT_PERTURBATION**2
        if ct in ("full", "tied"):
            c = cov if ct == "tied" else cov[h]
            w, v = np.linalg.eigh(c)
            s2 = max(float(w[-1]), 0.0)
            delta = SPLIT_PERTURBATION * np.sqrt(s2) * v[:, -1]
            if ct == "full":
                new_c = c - shrink * s2 * np.outer(v[:, -1], v[:, -1])
                cov[h] = new_c
                cov[j] = new_c
        else:
            delta = np.zeros(d)
            if ct == "diag":
                i = int(np.argmax(cov[h]))
                s2 = float(cov[h][i])
                delta[i] = SPLIT_PERTURBATION * np.sqrt(s2)
                new_c = cov[h].copy()
                new_c[i] = max(s2 * (1.0 - shrink), floor_d[i])
            else:
                i = int(np.argmax(floor_d))
                s2 = float(cov[h])
                delta[i] = SPLIT_PERTURBATION * np.sqrt(s2)
                new_c = max(s2 * (1.0 - shrink / d), float(np.mean(floor_d)))
            cov[h] = new_c
            cov[j] = new_c
        mu = means[h].copy()
        means[h] = mu - delta
        means[j] = mu + delta
        weights[h] *= 0.5
        weights[j] = weights[h]

    # ================================================================== E-step
    def accumulate(self, X, sample_weight=None, *, top_c=None) -> SufficientStats:
        """E-step over a chunk of frames: sufficient statistics under the current model.

        Parameters
        ----------
        X : array (N, D) or (N,)
        sample_weight : array (N,) or None
            Frame weights (posteriors and log-likelihood are multiplied by them).
        top_c : int or None
            Use only the ``top_c`` best-scoring components of every frame (posteriors
            renormalised over them, and the log-likelihood is the top-C approximation), as
            Kaldi's UBM training does.

        Returns
        -------
        SufficientStats
            ``kind="full"`` for full and tied models, ``"diag"`` otherwise.
        """
        X = self._check_X(X, reset=False)
        w = self._check_sample_weight(sample_weight, X.shape[0]) if sample_weight is not None else None
        if top_c is not None and (not isinstance(top_c, (int, np.integer)) or top_c < 1):
            raise ValueError(f"Invalid value for 'top_c': {top_c}. It must be None or a positive integer")
        return self._accumulate_all(X, w, top_c=top_c)

    def _accumulate_all(self, X, w, top_c=None) -> SufficientStats:
        plan = self._plan()
        from gmmspeech.parallel import effective_n_jobs

        n_jobs = effective_n_jobs(self.n_jobs)
        n = X.shape[0]
        if n_jobs > 1 and n >= 2 * self.chunk_size:
            from gmmspeech.parallel import parallel_map

            bounds = np.linspace(0, n, n_jobs + 1).astype(int)
            items = [
                (plan, X[a:b], None if w is None else w[a:b], top_c, self.chunk_size, 1)
                for a, b in zip(bounds[:-1], bounds[1:])
                if b > a
            ]
            parts = parallel_map(_accumulate_plan, items, n_jobs=n_jobs, backend=self.backend, star=True)
            return sum(parts)
        return _accumulate_plan(plan, X, w, top_c, self.chunk_size, self.n_threads)

    def _chunks(self, X):
        step = int(self.chunk_size)
        for a in range(0, X.shape[0], step):
            yield a, X[a : a + step]

    def _for_blocks(self, X, fn):
        """Call ``fn(a, log_prob_block)`` for cache-sized row blocks of ``X`` (``a``: first row).

        Large inputs are split over threads with single-threaded BLAS, as in the E-step;
        ``fn`` must only write rows ``a : a + len(block)`` of its outputs.
        """
        from gmmspeech.threads import map_items

        plan = self._plan()
        rows = _block_rows(plan, self.chunk_size)

        def run(ab):
            lo, hi = ab
            for a in range(lo, hi, rows):
                xc = X[a : min(a + rows, hi)]
                lp = plan.log_prob(plan.design(xc))
                if plan.risky.size:
                    plan.exact_columns(xc, lp)
                fn(a, lp)

        map_items(run, _items(X.shape[0], rows), n_threads=self.n_threads)

    def weighted_log_prob(self, X) -> np.ndarray:
        """``log phi_k + log N(x_n | mu_k, Sigma_k)`` for every frame and component.

        Returns
        -------
        ndarray (N, K) float64
        """
        X = self._check_X(X, reset=False)
        out = np.empty((X.shape[0], self.n_components), dtype=np.float64)

        def put(a, lp):
            out[a : a + lp.shape[0]] = lp

        self._for_blocks(X, put)
        return out

    def _estimate(self, X, want_resp):
        logp = np.empty(X.shape[0])
        resp = np.empty((X.shape[0], self.n_components)) if want_resp else None

        def put(a, lp):
            logp[a : a + lp.shape[0]] = logsumexp_normalize(lp)
            if want_resp:
                resp[a : a + lp.shape[0]] = lp

        self._for_blocks(X, put)
        return logp, resp

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood ``log p(x_n)`` of every frame, shape (N,)."""
        X = self._check_X(X, reset=False)
        return self._estimate(X, False)[0]

    def score(self, X, y=None) -> float:
        """Average log-likelihood per frame."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of every component for every frame, shape (N, K)."""
        X = self._check_X(X, reset=False)
        return self._estimate(X, True)[1]

    def predict(self, X) -> np.ndarray:
        """Most probable component of every frame, shape (N,)."""
        X = self._check_X(X, reset=False)
        labels = np.empty(X.shape[0], dtype=np.int64)

        def put(a, lp):
            labels[a : a + lp.shape[0]] = np.argmax(lp, axis=1)

        self._for_blocks(X, put)
        return labels

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then return the most probable component of every frame (``y`` is ignored)."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ================================================================== information criteria
    def _n_parameters(self) -> int:
        return n_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        X = self._check_X(X, reset=False)
        return float(-2.0 * self.score(X) * X.shape[0] + self._n_parameters() * np.log(X.shape[0]))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        X = self._check_X(X, reset=False)
        return float(-2.0 * self.score(X) * X.shape[0] + 2.0 * self._n_parameters())

    # ================================================================== sampling
    def sample(self, n_samples=1):
        """Draw frames from the mixture.

        Returns
        -------
        X : ndarray (n_samples, D)
        y : ndarray (n_samples,) component of every frame.
        """
        self._check_is_fitted()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least one sample."
            )
        rng = _init.as_generator(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        d = self.means_.shape[1]
        ct = self.covariance_type
        xs, ys = [], []
        for k, c in enumerate(counts):
            if c == 0:
                continue
            z = rng.standard_normal((c, d))
            if ct == "full":
                chol = np.linalg.cholesky(self.covariances_[k])
                x = z @ chol.T
            elif ct == "tied":
                x = z @ np.linalg.cholesky(self.covariances_).T
            elif ct == "diag":
                x = z * np.sqrt(self.covariances_[k])
            else:
                x = z * np.sqrt(self.covariances_[k])
            xs.append(x + self.means_[k])
            ys.append(np.full(c, k, dtype=np.int64))
        return np.vstack(xs), np.concatenate(ys)

    # ================================================================== initialisation
    def initialize(self, X, sample_weight=None, *, progress: bool = False,
                   desc: str = "initialisation") -> GMM:
        """Initialise the parameters from ``X`` (runs ``init_params`` or the user's ``*_init``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,) or None
        progress : bool
            Report the binary splitting of ``init_params="split"`` (its EM passes can take
            minutes with full covariances) through :func:`gmmspeech.progress.progress_bar`:
            a bar on a terminal, a plain line every few seconds in a log. Progress is counted
            in component-iterations (an EM pass over ``k`` components counts ``k``), so the
            remaining-time estimate allows for the passes growing with ``k``.
        desc : str
            Label of the progress lines.

        Returns
        -------
        self (fitted: the model can score and accumulate).
        """
        self._check_parameters()
        X = self._check_X(X, reset=True)
        w = self._check_sample_weight(sample_weight, X.shape[0])
        self._initialize(X, w, _init.as_generator(self.random_state), progress=progress, desc=desc)
        return self

    def _initialize(self, X, w, rng, *, progress: bool = False, desc: str = "initialisation"):
        self._check_n_samples(X)
        self._check_init_params(X.shape[1])
        k, d = self.n_components, X.shape[1]
        self.n_features_in_ = d
        self.n_reseeded_ = 0
        user_all = self.weights_init is not None and self.means_init is not None and self.precisions_init is not None
        if not user_all:
            self._check_distinct(X)
            method = self.init_params
            kind = stats_kind(self.covariance_type)
            if method == "split":
                self._init_split(X, w, rng, progress=progress, desc=desc)
            elif method == "random_from_data":
                self._init_random_from_data(X, w, rng)
            elif method == "random":
                stats = None
                for a, xc in self._chunks(X):
                    r = rng.uniform(size=(xc.shape[0], k))
                    r /= r.sum(axis=1, keepdims=True)
                    wc = None if w is None else w[a : a + xc.shape[0]]
                    part = _init.stats_from_resp(xc, r, kind, wc)
                    stats = part if stats is None else stats + part
                self.m_step(stats)
            else:
                if method == "kmeans":
                    _, labels = _init.kmeans(X, k, rng, w, max_iter=self.kmeans_iter)
                else:  # "k-means++"
                    n = X.shape[0]
                    seed_size = max(10_000, 40 * k)
                    if n > seed_size:
                        sub = rng.choice(n, size=seed_size, replace=False)
                        centers, _ = _init.kmeans_plusplus(X[sub], k, rng, None if w is None else w[sub])
                    else:
                        centers, _ = _init.kmeans_plusplus(X, k, rng, w)
                    labels, _ = _init.assign(X, centers)
                self.m_step(_init.stats_from_labels(X, labels, k, kind, w))
        # user-given parameters override (scikit-learn's semantics)
        if self.weights_init is not None or self.means_init is not None or self.precisions_init is not None:
            weights = (
                np.asarray(self.weights_init, dtype=np.float64) if self.weights_init is not None else self.weights_
            )
            means = np.asarray(self.means_init, dtype=np.float64) if self.means_init is not None else self.means_
            if means.ndim == 1:
                means = means[:, None]
            if self.precisions_init is not None:
                prec = np.asarray(self.precisions_init, dtype=np.float64)
                pc = precisions_cholesky_from_precisions(prec, self.covariance_type)
                cov = covariances_from_precisions(prec, self.covariance_type)
            else:
                cov, pc = self.covariances_, self.precisions_cholesky_
            self._set_parameters(weights, means, cov, pc)
        self.converged_ = False
        self.n_iter_ = 0
        self.lower_bound_ = -np.inf
        self.history_ = []

    def _global_stats(self, X, w):
        r = np.ones((X.shape[0], 1))
        return _init.stats_from_resp(X, r, stats_kind(self.covariance_type), w)

    def _init_random_from_data(self, X, w, rng):
        k, n = self.n_components, X.shape[0]
        idx = rng.choice(n, size=k, replace=False)
        means = np.asarray(X[idx], dtype=np.float64)
        if np.unique(means, axis=0).shape[0] < k:  # duplicates drawn: draw among distinct rows
            uniq = np.unique(np.asarray(X), axis=0)
            means = np.asarray(uniq[rng.choice(uniq.shape[0], size=k, replace=False)], dtype=np.float64)
        g = self._global_stats(X, w)
        tot = g.n[0]
        mean = g.f[0] / tot
        floor_d = self._variance_floor(g)
        ct = self.covariance_type
        if ct in ("full", "tied"):
            c = g.s[0] / tot - np.outer(mean, mean)
            c.flat[:: c.shape[0] + 1] += self.reg_covar
            c = _floor_full(c[None], floor_d)[0]
            cov = c if ct == "tied" else np.repeat(c[None], k, axis=0)
        else:
            v = np.maximum(g.s[0] / tot - mean**2 + self.reg_covar, floor_d)
            cov = np.repeat(v[None], k, axis=0) if ct == "diag" else np.full(k, float(np.mean(v)))
        pc = self._safe_precisions_cholesky(cov, floor_d)
        if pc is None:
            cov = self._repair_covariances(cov, floor_d)
            pc = None
        self._set_parameters(np.full(k, 1.0 / k), means, cov, pc)

    def _init_split(self, X, w, rng, *, progress: bool = False, desc: str = "initialisation"):
        """Binary splitting: one Gaussian, then split the heaviest components (all of them
        while that at most doubles K) with ``split_iter`` EM iterations after every split.
        ``progress``: count the EM passes (weighted by their number of components) on a
        :func:`~gmmspeech.progress.progress_bar`."""
        k_target = self.n_components
        sizes, k = [], 1
        while k < k_target:  # the model sizes after each split
            k += min(k, k_target - k)
            sizes.append(k)
        bar = None
        if progress and sizes and self.split_iter:
            from gmmspeech.progress import progress_bar

            bar = progress_bar(self.split_iter * sum(sizes), desc=f"{desc} (split)",
                               unit="component-iterations")
        params = self.get_params()
        params.update(weights_init=None, means_init=None, precisions_init=None, n_jobs=self.n_jobs)
        one = type(self)(**{**params, "n_components": 1})
        one.n_features_in_ = X.shape[1]
        one.m_step(self._global_stats(X, w))
        weights, means, cov = one.weights_, one.means_, one.covariances_
        floor_d = one._variance_floor(self._global_stats(X, w))
        k = 1
        try:
            while k < k_target:
                n_new = min(k, k_target - k)
                weights, means, cov = self._grow_by_splitting(weights, means, cov, n_new, floor_d)
                k += n_new
                step = type(self)(**{**params, "n_components": k})
                step.n_features_in_ = X.shape[1]
                step.n_reseeded_ = 0
                step._set_parameters(weights / weights.sum(), means, cov)
                for i in range(self.split_iter):
                    step.m_step(step._accumulate_all(X, w))
                    if bar is not None:
                        bar.set_postfix(components=f"{k}/{k_target}",
                                        iteration=f"{i + 1}/{self.split_iter}")
                        bar.update(k)
                weights, means, cov = step.weights_, step.means_, step.covariances_
        finally:
            if bar is not None:
                bar.close()
        self._set_parameters(weights, means, cov)

    # ================================================================== EM
    def _snapshot(self):
        return tuple(np.array(a, copy=True) for a in (self.weights_, self.means_, self.covariances_))

    def _param_change(self, before) -> float:
        after = (self.weights_, self.means_, self.covariances_)
        return max(float(np.max(np.abs(a - b))) for a, b in zip(after, before))

    def _em_step(self, X, w) -> float:
        stats = self._accumulate_all(X, w)
        avg = stats.average_loglik
        self.m_step(stats)
        return avg

    def _log_iteration(self, n_iter, t0, change):
        if self.verbose >= 2 and n_iter % self.verbose_interval == 0:
            print(f"  Iteration {n_iter}\t time lapse {time.perf_counter() - t0:.5f}s\t ll change {change:.5f}")

    def _em_plain(self, X, w, t0):
        """Plain EM: one E-step and one M-step per iteration (scikit-learn's loop with
        ``stopping="gain"``). Returns (lower_bound, n_iter, converged, history)."""
        self.n_extrapolated_ = 0
        lower_bound = -np.inf
        history = []
        aitken = _AitkenRule(self.tol, self.param_rtol) if self.stopping == "aitken" else None
        pmap = vecs = None
        n_iter = 0
        floor = _RoundingFloor(self._compute_dtype)
        reseeded = self.n_reseeded_
        for n_iter in range(1, self.max_iter + 1):
            prev = lower_bound
            before = self._snapshot() if self.param_tol is not None else None
            stats = self._accumulate_all(X, w)
            lower_bound = stats.average_loglik
            if aitken is not None and pmap is None:
                pmap = _ParamMap(self, stats)
                vecs = [pmap.vec(self)]
            change = lower_bound - prev
            floor.see(change, self.n_reseeded_ != reseeded, lower_bound)
            reseeded = self.n_reseeded_
            self.m_step(stats)
            history.append(lower_bound)
            self._log_iteration(n_iter, t0, change)
            if before is not None and self._param_change(before) <= self.param_tol:
                return lower_bound, n_iter, True, history
            if aitken is None:
                if abs(change) < floor.tol(self.tol):
                    return lower_bound, n_iter, True, history
                continue
            vecs = (vecs + [pmap.vec(self)])[-3:]
            if len(vecs) == 3 and aitken.converged(
                pmap.distance(vecs[1], vecs[0]), pmap.distance(vecs[2], vecs[1]), change
            ):
                return lower_bound, n_iter, True, history
        return lower_bound, n_iter, False, history

    def _em_squarem(self, X, w, t0):
        """EM accelerated by SQUAREM (Varadhan and Roland 2008, scheme S3), monotone.

        One cycle: two EM steps theta0 -> theta1 -> theta2, then the squared extrapolation
        ``theta' = theta0 + 2 a r + a^2 v`` (``r = theta1 - theta0``, ``v = theta2 - 2 theta1 +
        theta0``, ``a = |r| / |v|`` clipped to [1, step_max]) in unconstrained coordinates (see
        :class:`_ParamMap`), and one stabilising EM step from theta'. theta' is kept only when
        its log-likelihood is at least theta1's; otherwise (or when it is not a valid model)
        the cycle falls back to the plain EM point theta2. So every log-likelihood recorded in
        ``history_`` is at least the previous one, exactly as for plain EM. ``step_max`` grows
        by 4 when the step length reaches it and shrinks by 4 when such a step is rejected
        (the R package SQUAREM's rule). ``n_iter`` counts E-steps (passes over the data),
        rejected extrapolations included. Returns (lower_bound, n_iter, converged, history).
        """
        self.n_extrapolated_ = 0
        history = []
        aitken = _AitkenRule(self.tol, self.param_rtol) if self.stopping == "aitken" else None
        pmap = None
        step_max = 1.0
        n_iter = 0
        lower_bound = -np.inf
        while n_iter < self.max_iter:
            stats = self._accumulate_all(X, w)
            n_iter += 1
            l0 = stats.average_loglik
            self._log_iteration(n_iter, t0, l0 - lower_bound)
            lower_bound = l0
            history.append(l0)
            if pmap is None:
                pmap = _ParamMap(self, stats)
            reseeded = self.n_reseeded_
            p0 = pmap.vec(self)
            self.m_step(stats)
            if n_iter >= self.max_iter:
                break
            p1 = pmap.vec(self)
            before = self._snapshot() if self.param_tol is not None else None
            stats = self._accumulate_all(X, w)
            n_iter += 1
            l1 = stats.average_loglik
            self._log_iteration(n_iter, t0, l1 - l0)
            lower_bound = l1
            history.append(l1)
            self.m_step(stats)
            p2 = pmap.vec(self)
            if before is not None and self._param_change(before) <= self.param_tol:
                return lower_bound, n_iter, True, history
            if aitken is None:
                if abs(l1 - l0) < self.tol:
                    return lower_bound, n_iter, True, history
            elif aitken.converged(pmap.distance(p1, p0), pmap.distance(p2, p1), l1 - l0):
                return lower_bound, n_iter, True, history
            if n_iter >= self.max_iter or self.n_reseeded_ != reseeded:
                continue  # a re-seeded component jumps: nothing to extrapolate
            r = p1 - p0
            v = p2 - 2.0 * p1 + p0
            nv = float(np.sqrt(v @ v))
            if not nv > 0:
                continue
            alpha = float(np.clip(np.sqrt(r @ r) / nv, 1.0, step_max))
            at_max = alpha >= step_max
            if alpha <= 1.01:  # theta' would be theta2
                step_max = step_max * 4.0 if at_max else step_max
                continue
            theta2 = self._get_parameters()
            new = pmap.params(p0 + 2.0 * alpha * r + alpha * alpha * v)
            accepted = False
            if new is not None:
                pc = self._safe_precisions_cholesky(new[2], pmap.floor)
                if pc is not None:
                    self._set_parameters(*new, pc)
                    stats = self._accumulate_all(X, w)
                    n_iter += 1
                    lp = stats.average_loglik
                    accepted = bool(np.isfinite(lp) and lp >= l1)
            if accepted:
                self._log_iteration(n_iter, t0, lp - l1)
                lower_bound = lp
                history.append(lp)
                self.m_step(stats)
                self.n_extrapolated_ += 1
                if at_max:
                    step_max *= 4.0
            else:
                self._set_parameters(*theta2)
                if at_max:
                    step_max = max(1.0, step_max / 4.0)
        return lower_bound, n_iter, False, history

    def _em_anderson(self, X, w, t0):
        """EM accelerated by Anderson mixing, monotone (the DAAREM family: Henderson and
        Varadhan 2019, with a monotonicity test instead of their epsilon-decrease).

        The memory holds the last ``_ANDERSON_MEMORY + 1`` points ``x_i`` (in the unconstrained
        coordinates of :class:`_ParamMap`) with their EM images ``F(x_i)``. The next point is
        ``F(x) - (dX + dF) gamma`` with ``gamma`` the least-squares fit of the residual
        ``f = F(x) - x`` by the residual differences ``dF`` (type-II Anderson: a secant
        quasi-Newton step on ``F(x) = x`` that uses several directions at once, so the slow
        direction of a flat ridge is removed without amplifying the fast ones, the weakness of
        SQUAREM's single step length). The candidate's E-step gives its log-likelihood: it is
        kept when that is at least the current one (within 4 units in the last place: near the
        optimum the two differ by rounding only), otherwise the model goes back to the plain
        EM point ``F(x)`` (one more E-step). So every value in ``history_`` is at least the
        previous one, as for plain EM, and one accepted iteration costs one E-step, as plain EM.
        After a rejection the next candidate goes half as far beyond ``F(x)`` (down to 1/64),
        after an acceptance twice as far (up to the full step). Where the secants' largest Ritz
        value is at least 1 (the EM map expands: EM is leaving a saddle, its steps growing),
        Anderson's fixed-point step would aim back at the saddle; the candidate is then the
        overrelaxed EM step ``x + eta (F(x) - x)`` (adaptive overrelaxation, Salakhutdinov and
        Roweis 2003), ``eta`` from 2, doubled after an acceptance (up to
        ``_OVERRELAX_MAX``), halved after a rejection (down to 2), under the same monotone
        test. The memory is emptied when a component is re-seeded. Returns (lower_bound, n_iter,
        converged, history); ``n_iter`` counts E-steps, rejected candidates included.
        """
        self.n_extrapolated_ = 0
        stats = self._accumulate_all(X, w)
        n_iter = 1
        lcur = stats.average_loglik
        history = [lcur]
        self._log_iteration(n_iter, t0, np.inf)
        pmap = _ParamMap(self, stats)
        x = pmap.vec(self)
        before = self._snapshot() if self.param_tol is not None else None
        reseeded = self.n_reseeded_
        self.m_step(stats)
        fx = pmap.vec(self)
        xs, fs = [x], [fx]
        gain = np.inf
        # near the optimum the average log-likelihoods of two points differ by rounding only:
        # a candidate within a few units in the last place (float64) counts as equal
        ulp = 4.0 * float(np.finfo(np.float64).eps)
        damping = 1.0
        eta = 2.0  # overrelaxation factor while the EM map expands
        rates = []
        noise = 32.0 * float(np.finfo(self._compute_dtype).eps)
        while True:
            if self.n_reseeded_ != reseeded:  # a re-seeded component jumps: forget the secants
                reseeded = self.n_reseeded_
                xs, fs = [x], [fx]
            cand, lam = _anderson_step(xs, fs)
            # secants that see the EM map expand (a Ritz value >= 1: EM is leaving a saddle or
            # a ridge's flat end, its steps growing) make Anderson aim back at that repelling
            # fixed point, and the monotone test refuses it every other E-step; EM's own
            # direction is the way up there, so the candidate is an overrelaxed EM step
            # x + eta (F(x) - x) (adaptive overrelaxation, Salakhutdinov and Roweis 2003)
            expanding = lam is not None and lam >= 1.0
            if expanding:
                cand = x + eta * (fx - x)
            elif cand is not None:
                cand = fx + damping * (cand - fx)
            if before is not None and self._param_change(before) <= self.param_tol:
                return lcur, n_iter, True, history
            if self.stopping == "gain":
                if abs(gain) < self.tol:
                    return lcur, n_iter, True, history
            elif lam is not None and (rates := (rates + [lam] if lam < 1.0 else rates)[-_RATE_WINDOW:]):
                # EM's Jacobian has its eigenvalues in [0, 1) at an optimum: a Ritz value >= 1
                # comes from rounding or curvature in the secants and is left out
                # steps within the E-step's rounding (float32: a few 1e-6) are noise, not motion
                slow = 1.0 / (1.0 - max(rates))
                remaining = max(pmap.distance(fx, x) - noise, 0.0) * slow
                if cand is not None:
                    remaining = max(remaining, pmap.distance(cand, x) - noise * slow)
                if len(rates) >= 3 and remaining <= self.param_rtol and gain < self.tol:
                    return lcur, n_iter, True, history
            if n_iter >= self.max_iter:
                return lcur, n_iter, False, history
            theta_f = self._get_parameters()
            new = pmap.params(cand) if cand is not None else None
            pc = self._safe_precisions_cholesky(new[2], pmap.floor) if new is not None else None
            if pc is not None:
                self._set_parameters(*new, pc)
                stats = self._accumulate_all(X, w)
                n_iter += 1
                lc = stats.average_loglik
                if np.isfinite(lc) and lc >= lcur - ulp * abs(lcur):
                    self.n_extrapolated_ += 1
                    x = pmap.vec(self)  # the candidate as floored
                    if expanding:
                        eta = min(2.0 * eta, _OVERRELAX_MAX)
                    else:
                        damping = min(1.0, 2.0 * damping)
                else:  # overshoot: the next candidate goes half as far beyond F(x) (or x)
                    if expanding:
                        eta = max(eta / 2.0, 2.0)
                    else:
                        damping = max(damping / 2.0, 1.0 / 64.0)
                    self._set_parameters(*theta_f)
                    stats = None
                    if n_iter >= self.max_iter:
                        return lcur, n_iter, False, history
            if stats is None or pc is None:
                stats = self._accumulate_all(X, w)
                n_iter += 1
                x = fx
            lnew = stats.average_loglik
            gain = lnew - lcur
            lcur = lnew
            history.append(lcur)
            self._log_iteration(n_iter, t0, gain)
            before = self._snapshot() if self.param_tol is not None else None
            self.m_step(stats)
            fx = pmap.vec(self)
            xs = (xs + [x])[-(_ANDERSON_MEMORY + 1):]
            fs = (fs + [fx])[-(_ANDERSON_MEMORY + 1):]

    def fit(self, X, y=None, sample_weight=None) -> GMM:
        """Estimate the parameters with EM (``n_init`` initialisations, the best kept).

        Parameters
        ----------
        X : array-like (N, D) or (N,)
            Frames (a DataFrame records ``feature_names_in_``); a 1-D array is the
            univariate case (N, 1).
        y : ignored
            Present for scikit-learn's API (pipelines, model selection).
        sample_weight : array (N,) or None
            Non-negative frame weights.

        Returns
        -------
        self
        """
        self._check_parameters()
        X = self._check_X(X, reset=True)
        w = self._check_sample_weight(sample_weight, X.shape[0])
        self._check_n_samples(X)
        rng = _init.as_generator(self.random_state)
        best = None
        best_lb = -np.inf
        for run in range(self.n_init):
            t0 = time.perf_counter()
            self._initialize(X, w, rng)
            if self.verbose:
                print(f"Initialization {run}")
            run_em = {"squarem": self._em_squarem, "anderson": self._em_anderson}.get(
                self.accelerate, self._em_plain)
            lower_bound, n_iter, converged, history = run_em(X, w, t0)
            if self.verbose:
                print(f"Initialization {'converged' if converged else 'did not converge'}. "
                      f"time lapse {time.perf_counter() - t0:.5f}s\t lower bound {lower_bound:.5f}")
            if best is None or lower_bound > best_lb:
                best_lb = lower_bound
                best = (self._get_parameters(), n_iter, converged, history, self.n_reseeded_,
                        self.n_extrapolated_)
        (weights, means, cov, pc), n_iter, converged, history, n_reseeded, n_extrapolated = best
        self._set_parameters(weights, means, cov, pc)
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.history_ = history
        self.lower_bound_ = best_lb
        self.n_reseeded_ = n_reseeded
        self.n_extrapolated_ = n_extrapolated
        if not converged:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def partial_fit(self, X, y=None, sample_weight=None) -> GMM:
        """One EM step over a pass of data that may arrive in chunks (streaming).

        ``X`` is an array (one chunk) or an iterable of arrays (the chunks of one pass over
        the data). The statistics of every chunk are accumulated and one M-step follows,
        so ``partial_fit(chunks)`` equals one EM iteration of :meth:`fit` on the
        concatenated data. On an unfitted model the first chunk initialises the parameters
        (``init_params`` or the user-given ``*_init``) before the step. ``sample_weight``
        follows ``X``'s structure (an array, or an iterable of arrays, or None).

        Returns
        -------
        self
        """
        self._check_parameters()
        if _is_single_array(X):
            chunks = iter([X])
            weights = iter([sample_weight])
        else:
            chunks = iter(X)
            weights = iter(sample_weight) if sample_weight is not None else None
        stats = None
        for i, chunk in enumerate(chunks):
            wc = next(weights) if weights is not None else None
            if i == 0 and not hasattr(self, "precisions_cholesky_"):
                xc = self._check_X(chunk, reset=True)
                wv = self._check_sample_weight(wc, xc.shape[0])
                self._initialize(xc, wv, _init.as_generator(self.random_state))
            xc = self._check_X(chunk, reset=False)
            wv = self._check_sample_weight(wc, xc.shape[0])
            part = self._accumulate_all(xc, wv)
            stats = part if stats is None else stats + part
        if stats is None:
            raise ValueError("partial_fit received no data")
        prev = self.lower_bound_ if np.isfinite(getattr(self, "lower_bound_", -np.inf)) else -np.inf
        avg = stats.average_loglik
        self.m_step(stats)
        self.history_.append(avg)
        self.n_iter_ += 1
        self.lower_bound_ = avg
        self.converged_ = abs(avg - prev) < self.tol
        return self
