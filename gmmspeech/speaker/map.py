"""Maximum a posteriori (MAP) adaptation of a universal background model.

Reynolds, Quatieri and Dunn (2000), "Speaker verification using adapted Gaussian
mixture models", Digital Signal Processing 10. From the zeroth, first and second order
statistics of the speaker's frames against the UBM,

``n_k = sum_t g_k(t)``, ``E_k[x] = f_k / n_k``, ``E_k[x^2] = s_k / n_k``,

each component ``k`` moves towards the speaker's data in proportion to the data-dependent
adaptation coefficient ``alpha_k^p = n_k / (n_k + r^p)`` (``p`` = m, w or v, with its own
relevance factor ``r^p``):

* means: ``mu_k = alpha_k^m E_k[x] + (1 - alpha_k^m) mu_k^ubm``;
* weights: ``w_k = gamma [alpha_k^w n_k / T + (1 - alpha_k^w) w_k^ubm]`` with ``gamma``
  renormalising to sum 1;
* variances, around the *adapted* mean ``mu_k``:
  ``sigma_k^2 = alpha_k^v E_k[(x - mu_k)^2] + (1 - alpha_k^v)(sigma_k^2,ubm + (mu_k^ubm - mu_k)^2)``
  (full covariances: the same with outer products).

The variance update is the MAP-style interpolation of the two second moments about the
new mean: the speaker data's and the UBM component's. When ``alpha^v = alpha^m`` it equals
Reynolds' eq. 13, ``alpha E_k[x^2] + (1 - alpha)(sigma^2,ubm + mu^2,ubm) - mu^2``; eq. 13
is only valid then: with ``alpha^v != alpha^m`` (different relevance factors, or ``adapt="v"``
alone) it depends on where the origin of the feature space lies and can go negative.
This form is non-negative and invariant to shifting the features (and the UBM) by a
constant. With ``d = E_k[x] - mu_k^ubm`` it is evaluated as

``sigma_k^2 = alpha^v var_k + (1 - alpha^v) sigma_k^2,ubm
+ [alpha^v (1 - alpha^m)^2 + (1 - alpha^v) (alpha^m)^2] d^2``

(``var_k`` the data's variance about ``E_k[x]``), which involves only differences, so no
catastrophic cancellation occurs and a component without data keeps the UBM's variance bit
for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["map_adapt", "enroll", "adaptation_coefficients"]

_PARAMS = ("m", "w", "v")


def _relevance(relevance_factor: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(relevance_factor, Mapping):
        unknown = set(relevance_factor) - set(_PARAMS)
        if unknown:
            raise ValueError(
                f"relevance_factor has unknown keys {sorted(unknown)}; use 'm', 'w' and 'v'"
            )
        out = {p: float(relevance_factor.get(p, 16.0)) for p in _PARAMS}
    else:
        out = dict.fromkeys(_PARAMS, float(relevance_factor))
    for p, r in out.items():
        if not np.isfinite(r) or r < 0:
            raise ValueError(f"relevance_factor for {p!r} must be a finite number >= 0, got {r}")
    return out


def _adapt_flags(adapt: str) -> set[str]:
    if not isinstance(adapt, str) or not adapt or set(adapt) - set(_PARAMS):
        raise ValueError(f"adapt={adapt!r} is not supported; use a combination of 'm', 'w', 'v' (e.g. 'm', 'mw', 'mwv')")
    return set(adapt)


def adaptation_coefficients(n: np.ndarray, relevance: float) -> np.ndarray:
    """``alpha_k = n_k / (n_k + r)`` (1 where ``r == 0`` and ``n_k > 0``, 0 where ``n_k == 0``)."""
    n = np.asarray(n, dtype=np.float64)
    denom = n + relevance
    return np.divide(n, denom, out=np.zeros_like(n), where=denom > 0)


def _stats_of(ubm, X_or_stats):
    from gmmspeech.mixture.stats import SufficientStats

    if isinstance(X_or_stats, SufficientStats):
        return X_or_stats
    if isinstance(X_or_stats, np.ndarray) or (
        isinstance(X_or_stats, (list, tuple)) and len(X_or_stats) and np.ndim(X_or_stats[0]) == 1
    ):
        arrays = [np.asarray(X_or_stats)]
    elif isinstance(X_or_stats, Iterable):
        arrays = list(X_or_stats)
    else:
        raise TypeError(
            f"X_or_stats must be an array, a list of arrays or SufficientStats, "
            f"got {type(X_or_stats).__name__}"
        )
    total = None
    for x in arrays:
        if isinstance(x, SufficientStats):
            st = x
        else:
            x = np.asarray(x)
            if x.ndim != 2:
                raise ValueError(f"Expected 2D array, got {x.ndim}D array instead")
            if x.shape[0] == 0:
                continue
            st = ubm.accumulate(x)
        total = st if total is None else total + st
    if total is None:
        raise ValueError("no frames to adapt to: every array given is empty")
    return total


def map_adapt(
    ubm,
    X_or_stats,
    relevance_factor: float | Mapping[str, float] = 16.0,
    adapt: str = "m",
):
    """MAP-adapt a UBM to one speaker's frames (Reynolds et al. 2000).

    Parameters
    ----------
    ubm : GMM
        A fitted diagonal- or full-covariance GMM.
    X_or_stats : (n_frames, n_features) array, list of arrays, or SufficientStats
        The speaker's frames (several arrays are pooled), or statistics already
        accumulated against ``ubm`` (``ubm.accumulate``).
    relevance_factor : float or dict
        ``r`` for all parameters, or per parameter ``{"m": 16, "w": 16, "v": 16}``
        (missing keys default to 16).
    adapt : str
        Which parameters to adapt: any combination of ``"m"`` (means), ``"w"``
        (weights) and ``"v"`` (variances), e.g. ``"m"``, ``"mw"``, ``"mwv"``.

    Returns
    -------
    GMM
        A new fitted model; parameters not adapted are copies of the UBM's.
        ``ubm_fingerprint_`` is :func:`gmmspeech.mixture.io.fingerprint` of ``ubm`` (saved
        with the model; scoring against another UBM is refused).
    """
    from gmmspeech.mixture.gmm import GMM

    flags = _adapt_flags(adapt)
    rel = _relevance(relevance_factor)
    kind = getattr(ubm, "covariance_type", None)
    if kind not in ("diag", "full"):
        raise ValueError(
            f"map_adapt supports 'diag' and 'full' UBMs, got covariance_type={kind!r}"
        )
    if not hasattr(ubm, "means_"):
        raise ValueError("ubm is not fitted: train it (train_ubm / GMM.fit) first")
    st = _stats_of(ubm, X_or_stats)
    w0 = np.asarray(ubm.weights_, dtype=np.float64)
    mu0 = np.asarray(ubm.means_, dtype=np.float64)
    cov0 = np.asarray(ubm.covariances_, dtype=np.float64)
    K, D = mu0.shape
    n = np.asarray(st.n, dtype=np.float64)
    f = np.asarray(st.f, dtype=np.float64)
    if n.shape != (K,) or f.shape != (K, D):
        raise ValueError(
            f"statistics have shape n{n.shape}, f{f.shape}; the UBM has {K} components of {D} dims"
        )
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(f))):
        # e.g. frames so far from the UBM that its float32 E-step overflows: no posterior, so
        # the model would silently stay the UBM (a NaN count compares as "no data")
        raise ValueError("MAP adaptation: the statistics hold NaN or infinite values (frames too far "
                         "from the UBM for its compute dtype? use a float64 UBM or rescale the features)")
    has = n > 0
    safe_n = np.where(has, n, 1.0)
    ex = np.where(has[:, None], f / safe_n[:, None], mu0)  # E_k[x]; UBM mean where no data

    a_m = adaptation_coefficients(n, rel["m"]) if "m" in flags else np.zeros(K)
    a_w = adaptation_coefficients(n, rel["w"]) if "w" in flags else np.zeros(K)
    a_v = adaptation_coefficients(n, rel["v"]) if "v" in flags else np.zeros(K)

    d = ex - mu0
    means = mu0 + a_m[:, None] * d

    if "w" in flags:
        total = n.sum()
        w = a_w * n / max(total, np.finfo(float).tiny) + (1.0 - a_w) * w0
        weights = w / w.sum()
    else:
        weights = w0.copy()

    if "v" in flags:
        s = np.asarray(st.s, dtype=np.float64)
        # weight of d d^T: a_v (E[x] - mu_hat)^2 + (1 - a_v)(mu0 - mu_hat)^2, with
        # E[x] - mu_hat = (1 - a_m) d and mu0 - mu_hat = -a_m d
        c_dd = a_v * (1.0 - a_m) ** 2 + (1.0 - a_v) * a_m**2
        if kind == "diag":
            ex2 = s if s.ndim == 2 else np.einsum("kii->ki", s)
            var_ml = np.where(has[:, None], ex2 / safe_n[:, None] - ex**2, cov0)
            var_ml = np.maximum(var_ml, 0.0)
            cov = (a_v[:, None] * var_ml + (1.0 - a_v)[:, None] * cov0
                   + c_dd[:, None] * d**2)
            floor = float(getattr(ubm, "reg_covar", 1e-6))
            cov = np.where(has[:, None], np.maximum(cov, floor), cov)
        else:
            if s.ndim != 3:
                raise ValueError("a full-covariance UBM needs full second-order statistics (kind='full')")
            outer = np.einsum("ki,kj->kij", ex, ex)
            var_ml = np.where(has[:, None, None], s / safe_n[:, None, None] - outer, cov0)
            cov = (a_v[:, None, None] * var_ml + (1.0 - a_v)[:, None, None] * cov0
                   + c_dd[:, None, None] * np.einsum("ki,kj->kij", d, d))
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
            cov = _psd_floor(cov, cov0, float(getattr(ubm, "reg_covar", 1e-6)))
    else:
        cov = cov0.copy()

    for name, arr in (("weights", weights), ("means", means), ("covariances", cov)):
        if not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"MAP adaptation produced non-finite {name}")
    # the speaker model computes as its UBM does (a float64 UBM gives float64 models)
    model = GMM.from_params(weights, means, cov, covariance_type=kind,
                            reg_covar=getattr(ubm, "reg_covar", 1e-6), dtype=getattr(ubm, "dtype", np.float32))
    if "w" not in flags:  # the UBM's weights bit for bit (from_params renormalises)
        model.weights_ = weights
    from gmmspeech.mixture.io import fingerprint

    model.map_alpha_ = {"m": a_m, "w": a_w, "v": a_v}
    model.ubm_fingerprint_ = fingerprint(ubm)
    model.map_n_ = n
    return model


def _psd_floor(cov: np.ndarray, cov0: np.ndarray, floor: float) -> np.ndarray:
    """Replace components whose covariance is not positive definite by a floored version."""
    out = cov.copy()
    for k in range(cov.shape[0]):
        try:
            np.linalg.cholesky(cov[k])
        except np.linalg.LinAlgError:
            vals, vecs = np.linalg.eigh(cov[k])
            out[k] = (vecs * np.maximum(vals, floor)) @ vecs.T
    return out


# --------------------------------------------------------------------------- enrolment
def _enroll_one(ubm, data, relevance_factor, adapt):
    return map_adapt(ubm, data, relevance_factor=relevance_factor, adapt=adapt)


def enroll(
    ubm,
    speakers,
    *,
    relevance_factor: float | Mapping[str, float] = 16.0,
    adapt: str = "m",
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict[Any, Any]:
    """MAP-adapt one model per speaker, in parallel.

    Parameters
    ----------
    ubm : GMM
    speakers : mapping label -> data, or a sequence of data (labels 0, 1, ...)
        Each speaker's data is an (n_frames, n_features) array, a list of such arrays
        (pooled), or :class:`~gmmspeech.mixture.stats.SufficientStats` against ``ubm``.
    relevance_factor, adapt
        See :func:`map_adapt`.
    n_jobs, backend, scheduler, progress
        See :func:`gmmspeech.parallel.parallel_map`.

    Returns
    -------
    dict
        label -> adapted GMM, in the input order.
    """
    from gmmspeech.parallel import parallel_map

    _adapt_flags(adapt)
    _relevance(relevance_factor)
    if isinstance(speakers, Mapping):
        labels = list(speakers.keys())
        data = [speakers[k] for k in labels]
    elif isinstance(speakers, np.ndarray):
        raise TypeError("speakers must be a mapping label -> data or a list of per-speaker data")
    else:
        data = list(speakers)
        labels = list(range(len(data)))
    models = parallel_map(
        _enroll_one,
        [(ubm, d, relevance_factor, adapt) for d in data],
        n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=progress,
        desc="enrol", star=True,
    )
    return dict(zip(labels, models))
