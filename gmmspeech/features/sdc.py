"""Shifted delta cepstra (Torres-Carrasquillo et al. 2002), the N-d-P-k stacking of language ID."""

from __future__ import annotations

import numpy as np

__all__ = ["sdc"]


def sdc(X: np.ndarray, *, n: int = 7, d: int = 1, p: int = 3, k: int = 7) -> np.ndarray:
    """Shifted delta cepstra of frames-first features.

    For frame ``t`` and block ``i = 0 .. k-1``:
    ``delta_i(t) = c(t + i p + d) - c(t + i p - d)`` over the first ``n`` dimensions;
    the ``k`` blocks are concatenated (``n * k`` values per frame). Frame indices past
    either end of the utterance are clamped to the first / last frame (edge
    replication), so every frame gets a vector.

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_dims)
        Cepstra (``n_dims >= n``).
    n, d, p, k : int
        Cepstra used, delta half-span, block shift, number of blocks (default 7-1-3-7).

    Returns
    -------
    np.ndarray, shape (n_frames, n * k), dtype of ``X``
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (frames x dims), got shape {X.shape}")
    for name, v in (("n", n), ("d", d), ("p", p), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n > X.shape[1]:
        raise ValueError(f"n={n} is more than the {X.shape[1]} feature dimensions")
    T = X.shape[0]
    if T == 0:
        raise ValueError("X has no frames")
    C = X[:, :n]
    t = np.arange(T)[:, None] + p * np.arange(k)[None, :]  # (T, k) block centres
    ahead = C[np.minimum(t + d, T - 1)]  # (T, k, n)
    behind = C[np.clip(t - d, 0, T - 1)]
    return np.ascontiguousarray((ahead - behind).reshape(T, n * k), dtype=X.dtype)
