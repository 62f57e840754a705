"""Energy voice-activity detection (Kaldi ``compute-vad`` style, scale-free threshold)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["energy_vad"]


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
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context must be a non-negative integer, got {context!r}")
    if not (0.0 <= proportion <= 1.0):
        raise ValueError(f"proportion must be in [0, 1], got {proportion!r}")
    n = e.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    ref = e.max() if reference == "max" else e.mean()
    active = e > ref + threshold_db * math.log(10.0) / 10.0
    if min_log_energy is not None:
        active &= e > min_log_energy
    if context == 0:
        return active
    c = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(active, out=c[1:])
    t = np.arange(n)
    lo = np.maximum(t - context, 0)
    hi = np.minimum(t + context + 1, n)
    num = c[hi] - c[lo]
    den = hi - lo
    return num >= proportion * den
