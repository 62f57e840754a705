"""Voice-activity detection on frame log-energies.

``energy_vad``: Kaldi ``compute-vad`` style, a threshold relative to the loudest (or mean)
frame. ``gmm_vad``: a two- or three-Gaussian mixture fitted to the utterance's normalised
log-energies (bob's ``energy_2gauss``, SIDEKIT's ``vad_energy``). Both smooth the frame
decisions the same way (:func:`smooth_decisions`).

The mixture here is one-dimensional with K <= 3 and a fixed, data-independent start,
fitted by a dozen EM steps in closed form: a few lines of numpy in the log domain.
:mod:`gmmspeech.mixture` is not used because ``features`` sits on the same floor and
must not import it (docs/architecture.md).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["energy_vad", "gmm_vad", "fit_gmm_1d", "smooth_decisions"]


def energy_vad(
    log_energy: np.ndarray,
    *,
    threshold_db: float = -30.0,
    reference: str = "max",
    context: int = 2,
    proportion: float = 0.6,
    min_log_energy: float | None = None,
) -> np.ndarray:
    """Frames whose log-energy is close enough to the utterance's loudest (or mean) level.

    A frame is first marked *active* when its log-energy exceeds
    ``ref + threshold_db * ln(10) / 10`` where ``ref`` is the utterance's maximum
    (``reference="max"``) or mean (``"mean"``) log-energy. As in Kaldi's ``compute-vad``,
    a frame is then *voiced* when at least ``proportion`` of the frames within
    ``context`` frames on either side (the window is cut at the utterance edges) are
    active; ``context=0`` keeps the raw decision.

    Parameters
    ----------
    log_energy : np.ndarray, shape (n_frames,)
        Natural-log frame energies (e.g. from
        :func:`gmmspeech.features.mfcc.mfcc_and_energy`).
    threshold_db : float, default -30
        Threshold relative to the reference level, in dB (<= 0 for ``"max"``).
    reference : {"max", "mean"}
    context : int, default 2
        Smoothing half-width in frames.
    proportion : float, default 0.6
        Share of active frames needed in the smoothing window.
    min_log_energy : float, optional
        Frames at or below this log-energy are never active (e.g. the log floor, so a
        file of digital silence keeps nothing).

    Returns
    -------
    np.ndarray of bool, shape (n_frames,)
        True for voiced frames.
    """
    e = np.asarray(log_energy, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"log_energy must be 1-D (n_frames,), got shape {e.shape}")
    if e.size and not np.isfinite(e).all():
        raise ValueError("log_energy holds non-finite values")
    if not isinstance(threshold_db, (int, float, np.floating)) or not math.isfinite(threshold_db):
        raise ValueError(f"threshold_db must be a finite number, got {threshold_db!r}")
    if reference not in ("max", "mean"):
        raise ValueError(f"reference must be 'max' or 'mean', got {reference!r}")
    _check_smoothing(context, proportion)
    n = e.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    ref = e.max() if reference == "max" else e.mean()
    active = e > ref + threshold_db * math.log(10.0) / 10.0
    if min_log_energy is not None:
        active &= e > min_log_energy
    return smooth_decisions(active, context=context, proportion=proportion)


def _check_smoothing(context, proportion) -> None:
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context must be a non-negative integer, got {context!r}")
    if not (0.0 <= proportion <= 1.0):
        raise ValueError(f"proportion must be in [0, 1], got {proportion!r}")


def smooth_decisions(active: np.ndarray, *, context: int = 2, proportion: float = 0.6) -> np.ndarray:
    """Kaldi ``compute-vad`` smoothing: a frame is voiced when at least ``proportion`` of
    the frames within ``context`` frames on either side (cut at the edges) are active."""
    active = np.asarray(active, dtype=bool)
    _check_smoothing(context, proportion)
    n = active.size
    if context == 0 or n == 0:
        return active.copy()
    c = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(active, out=c[1:])
    t = np.arange(n)
    lo = np.maximum(t - context, 0)
    hi = np.minimum(t + context + 1, n)
    num = c[hi] - c[lo]
    den = hi - lo
    return num >= proportion * den


def fit_gmm_1d(
    x: np.ndarray, *, n_components: int = 3, n_iter: int = 12, var_floor: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a 1-D Gaussian mixture on standardised values, SIDEKIT's start.

    Starts from means equally spaced on [-2, 2], unit variances and equal weights (the
    data should be standardised), runs ``n_iter`` EM steps (log-domain E-step; variances
    floored at ``var_floor``; a component that loses all its frames keeps its previous
    parameters).

    Returns
    -------
    weights, means, variances : np.ndarray, shape (n_components,)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("x must hold finite values")
    K = int(n_components)
    if K < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components!r}")
    mu = np.linspace(-2.0, 2.0, K) if K > 1 else np.zeros(1)
    var = np.ones(K)
    w = np.full(K, 1.0 / K)
    for _ in range(n_iter):
        logp = (np.log(w) - 0.5 * np.log(2.0 * np.pi * var)
                - 0.5 * (x[:, None] - mu) ** 2 / var)  # (N, K)
        m = logp.max(axis=1, keepdims=True)
        resp = np.exp(logp - m)
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0)
        ok = nk > 1e-10
        mu_new = np.where(ok, resp.T @ x / np.where(ok, nk, 1.0), mu)
        var_new = np.where(ok, (resp * (x[:, None] - mu_new) ** 2).sum(axis=0) / np.where(ok, nk, 1.0), var)
        mu, var = mu_new, np.maximum(var_new, var_floor)
        w = np.maximum(nk, 1e-10)
        w /= w.sum()
    return w, mu, var


def gmm_vad(
    log_energy: np.ndarray,
    *,
    n_components: int = 3,
    alpha: float = 2.0,
    n_iter: int = 12,
    context: int = 2,
    proportion: float = 0.6,
    min_log_energy: float | None = None,
) -> np.ndarray:
    """Speech frames by a Gaussian mixture on the utterance's frame log-energies.

    The log-energies (frames above ``min_log_energy``) are standardised and a 1-D
    mixture is fitted (:func:`fit_gmm_1d`). With ``n_components=2`` (bob's two-Gaussian
    energy VAD) a frame is active when the higher-mean Gaussian has the larger
    posterior; with 3 (SIDEKIT's ``vad_energy``) when its standardised energy exceeds
    ``mean - alpha * std`` of the highest-mean Gaussian. Decisions are then smoothed
    like :func:`energy_vad`'s.

    Parameters
    ----------
    log_energy : np.ndarray, shape (n_frames,)
    n_components : {2, 3}
    alpha : float, default 2
        Width of the 3-Gaussian threshold below the speech mean, in standard deviations.
    n_iter : int
        EM steps.
    context, proportion : smoothing (see :func:`smooth_decisions`)
    min_log_energy : float, optional
        Frames at or below this are never active (digital silence).

    Returns
    -------
    np.ndarray of bool, shape (n_frames,)
    """
    e = np.asarray(log_energy, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"log_energy must be 1-D (n_frames,), got shape {e.shape}")
    if e.size and not np.isfinite(e).all():
        raise ValueError("log_energy holds non-finite values")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components!r}")
    _check_smoothing(context, proportion)
    usable = np.ones(e.size, dtype=bool) if min_log_energy is None else e > min_log_energy
    active = np.zeros(e.size, dtype=bool)
    if usable.sum() >= 2:
        x = e[usable]
        sd = x.std()
        if sd < 1e-6:  # one energy level: nothing to separate, all of it is signal
            active = usable.copy()
        else:
            z = (e - x.mean()) / sd
            w, mu, var = fit_gmm_1d(z[usable], n_components=n_components, n_iter=n_iter)
            top = int(np.argmax(mu))
            if n_components == 2:
                logp = np.log(w) - 0.5 * np.log(var) - 0.5 * (z[:, None] - mu) ** 2 / var
                active = logp[:, top] >= logp.max(axis=1)
            else:
                active = z > mu[top] - alpha * math.sqrt(var[top])
            active &= usable
    elif usable.sum() == 1:
        active = usable.copy()
    return smooth_decisions(active, context=context, proportion=proportion)
