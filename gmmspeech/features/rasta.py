"""RASTA filtering of log filter-bank trajectories (Hermansky & Morgan 1994)."""

from __future__ import annotations

import numpy as np

__all__ = ["rasta_filter", "RASTA_NUMERATOR", "RASTA_POLE"]

#: FIR part of the RASTA band-pass: ``-(-2..2) / sum(k^2)`` (rastamat's ``rastafilt``).
RASTA_NUMERATOR = np.array([0.2, 0.1, 0.0, -0.1, -0.2])
#: Pole of the integrator (rastamat uses 0.94; Hermansky & Morgan's paper 0.98).
RASTA_POLE = 0.94


def rasta_filter(X: np.ndarray, *, axis: int = 0, pole: float = RASTA_POLE) -> np.ndarray:
    """Band-pass every band trajectory of log filter-bank energies with the RASTA filter.

    ``H(z) = 0.1 (2 + z^-1 - z^-3 - 2 z^-4) / (1 - pole z^-1)`` along time, started as
    rastamat's ``rastafilt`` does: the FIR part runs over the first four frames to set
    the state, those four outputs are zero, and the full filter continues from that
    state (:func:`scipy.signal.lfilter`, transposed direct form II as in MATLAB).

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_bands) for ``axis=0``
        Log energies (natural log or dB; the filter is linear).
    axis : int
        Time axis.
    pole : float, default 0.94
        Integrator pole, in (0, 1).

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``X``. With four frames or fewer, all zeros.
    """
    import scipy.signal

    X = np.asarray(X)
    if X.ndim not in (1, 2):
        raise ValueError(f"X must be 1-D or 2-D, got shape {X.shape}")
    if not (0.0 < float(pole) < 1.0):
        raise ValueError(f"pole must be in (0, 1), got {pole!r}")
    x = np.moveaxis(X, axis, 0).astype(np.float64)
    y = np.zeros_like(x)
    if x.shape[0] > 4:
        zi = np.zeros((4,) + x.shape[1:])
        _, z = scipy.signal.lfilter(RASTA_NUMERATOR, [1.0], x[:4], axis=0, zi=zi)
        y[4:], _ = scipy.signal.lfilter(RASTA_NUMERATOR, [1.0, -float(pole)], x[4:], axis=0, zi=z)
    return np.ascontiguousarray(np.moveaxis(y, 0, axis), dtype=X.dtype)
