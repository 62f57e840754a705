"""Sufficient statistics of a Gaussian mixture: the one object EM, streaming, parallel
training and MAP adaptation share.

An E-step over a chunk of frames yields a :class:`SufficientStats`; statistics of chunks
add up with ``+`` (so ``sum(parallel_map(accumulate, chunks))`` is the E-step over the
whole corpus), and an M-step turns them into parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("diag", "full")


@dataclass(eq=False)
class SufficientStats:
    """Zeroth, first and second order statistics of a mixture, in float64.

    With posteriors ``r_nk`` and frame weights ``w_n``:

    Attributes
    ----------
    n : ndarray, shape (K,)
        ``n_k = sum_n w_n r_nk`` (soft counts).
    f : ndarray, shape (K, D)
        ``F_k = sum_n w_n r_nk x_n``.
    s : ndarray, shape (K, D) or (K, D, D)
        ``S_k = sum_n w_n r_nk x_n**2`` when ``kind == "diag"``, or the full second moments
        ``sum_n w_n r_nk x_n x_n^T`` when ``kind == "full"``.
    loglik : float
        ``sum_n w_n log p(x_n)`` under the model that produced the posteriors.
    n_frames : float
        ``sum_n w_n`` (the number of frames when unweighted).
    kind : {"diag", "full"}
    """

    n: np.ndarray
    f: np.ndarray
    s: np.ndarray
    loglik: float = 0.0
    n_frames: float = 0.0
    kind: str = "diag"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Invalid value for 'kind': {self.kind!r}. 'kind' should be in {list(KINDS)}")
        self.n = np.asarray(self.n, dtype=np.float64)
        self.f = np.asarray(self.f, dtype=np.float64)
        self.s = np.asarray(self.s, dtype=np.float64)
        self.loglik = float(self.loglik)
        self.n_frames = float(self.n_frames)
        if self.n.ndim != 1 or self.f.ndim != 2 or self.f.shape[0] != self.n.shape[0]:
            raise ValueError(
                f"SufficientStats: n must have shape (K,) and f shape (K, D); got n {self.n.shape}, f {self.f.shape}"
            )
        k, d = self.f.shape
        want = (k, d) if self.kind == "diag" else (k, d, d)
        if self.s.shape != want:
            raise ValueError(
                f"SufficientStats: s must have shape {want} for kind={self.kind!r}; got {self.s.shape}"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def zeros(cls, n_components: int, n_features: int, kind: str = "diag") -> SufficientStats:
        """Empty statistics (the identity of ``+``)."""
        k, d = int(n_components), int(n_features)
        s_shape = (k, d) if kind == "diag" else (k, d, d)
        return cls(np.zeros(k), np.zeros((k, d)), np.zeros(s_shape), 0.0, 0.0, kind)

    def copy(self) -> SufficientStats:
        return SufficientStats(self.n.copy(), self.f.copy(), self.s.copy(), self.loglik, self.n_frames, self.kind)

    # ------------------------------------------------------------------ shape
    @property
    def n_components(self) -> int:
        return int(self.n.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.f.shape[1])

    # ------------------------------------------------------------------ algebra
    def _check_compatible(self, other: SufficientStats) -> None:
        if not isinstance(other, SufficientStats):
            raise TypeError(f"cannot add SufficientStats and {type(other).__name__}")
        if other.kind != self.kind or other.f.shape != self.f.shape:
            raise ValueError(
                "cannot add SufficientStats of different shapes or kinds: "
                f"{self.kind} {self.f.shape} vs {other.kind} {other.f.shape}"
            )

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self.copy()
        self._check_compatible(other)
        return SufficientStats(
            self.n + other.n,
            self.f + other.f,
            self.s + other.s,
            self.loglik + other.loglik,
            self.n_frames + other.n_frames,
            self.kind,
        )

    def __radd__(self, other):
        # makes sum([...]) work (it starts from 0)
        return self.__add__(other)

    def __iadd__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        self._check_compatible(other)
        self.n += other.n
        self.f += other.f
        self.s += other.s
        self.loglik += other.loglik
        self.n_frames += other.n_frames
        return self

    def scaled(self, factor: float) -> SufficientStats:
        """Every statistic multiplied by ``factor`` (e.g. to down-weight a data source)."""
        c = float(factor)
        return SufficientStats(self.n * c, self.f * c, self.s * c, self.loglik * c, self.n_frames * c, self.kind)

    def to_diag(self) -> SufficientStats:
        """Diagonal second moments (the diagonals of full ones)."""
        if self.kind == "diag":
            return self.copy()
        s = np.diagonal(self.s, axis1=1, axis2=2).copy()
        return SufficientStats(self.n.copy(), self.f.copy(), s, self.loglik, self.n_frames, "diag")

    # ------------------------------------------------------------------ summaries
    @property
    def average_loglik(self) -> float:
        """``loglik / n_frames`` (the EM objective per frame)."""
        return self.loglik / self.n_frames if self.n_frames > 0 else float("-inf")

    def global_mean(self) -> np.ndarray:
        """Mean of all frames, ``sum_k F_k / sum_k n_k``."""
        return self.f.sum(axis=0) / max(self.n.sum(), np.finfo(np.float64).tiny)

    def global_variance(self) -> np.ndarray:
        """Per-dimension variance of all frames (>= 0)."""
        tot = max(self.n.sum(), np.finfo(np.float64).tiny)
        mean = self.f.sum(axis=0) / tot
        s = self.s.sum(axis=0)
        if self.kind == "full":
            s = np.diag(s)
        return np.maximum(s / tot - mean**2, 0.0)

    def __repr__(self) -> str:
        return (
            f"SufficientStats(kind={self.kind!r}, n_components={self.n_components}, "
            f"n_features={self.n_features}, n_frames={self.n_frames:g}, loglik={self.loglik:g})"
        )
