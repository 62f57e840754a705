"""Perceptual linear prediction (Hermansky 1990) as Kaldi's ``compute-plp-feats`` computes it.

Per frame: power spectrum through the filter bank (Kaldi's mel bank in the ``kaldi-plp``
preset; mel, Bark or linear as configured), optionally RASTA-filtered in the log
domain, equal-loudness weighting at each band's centre frequency, intensity-loudness
compression (power ``compress_factor``, 1/3), the first and last band duplicated at
the edges, the inverse DFT of that (real, even) spectrum as autocorrelation
coefficients, Levinson-Durbin LPC of order ``lpc_order``, LPC-to-cepstrum recursion;
c0 is the log prediction-error energy (Kaldi floors its log at ``FLT_MIN``), then the
cepstral lifter and, with ``use_energy``, c0 replaced by the frame log-energy. The
recursions run over all frames at once (vectorised over frames, float64).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gmmspeech.features.config import FeatureConfig
from gmmspeech.features.mfcc import band_centers, band_energies, log_energy_of
from gmmspeech.threads import single_thread_blas

__all__ = ["plp", "plp_and_energy", "equal_loudness", "idft_bases", "durbin", "lpc_to_cepstrum",
           "plp_from_bands"]

_FLT_MIN = float(np.finfo(np.float32).tiny)


def equal_loudness(freqs: np.ndarray) -> np.ndarray:
    """Kaldi's (Hermansky's) equal-loudness weights at centre frequencies in Hz:
    ``(f^2 / (f^2 + 1.6e5))^2 (f^2 + 1.44e6) / (f^2 + 9.61e6)``."""
    fsq = np.asarray(freqs, dtype=np.float64) ** 2
    fsub = fsq / (fsq + 1.6e5)
    return fsub * fsub * ((fsq + 1.44e6) / (fsq + 9.61e6))


@lru_cache(maxsize=32)
def idft_bases(n_bases: int, dimension: int) -> np.ndarray:
    """Kaldi's ``InitIdftBases``: (n_bases, dimension) cosine basis taking a real even
    spectrum of ``dimension`` points (0 .. pi) to ``n_bases`` autocorrelation lags."""
    angle = np.pi / (dimension - 1)
    scale = 1.0 / (2.0 * (dimension - 1))
    i = np.arange(n_bases)[:, None]
    j = np.arange(dimension)[None, :]
    m = 2.0 * scale * np.cos(angle * i * j)
    m[:, 0] = scale
    m[:, -1] = scale * np.cos(angle * np.arange(n_bases) * (dimension - 1))
    m.setflags(write=False)
    return m


def durbin(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levinson-Durbin recursion over rows of autocorrelations (Kaldi's ``Durbin``).

    Parameters
    ----------
    R : np.ndarray, shape (n_frames, order + 1)

    Returns
    -------
    lpc : np.ndarray, shape (n_frames, order)
        Predictor coefficients ``a`` in Kaldi's sign convention.
    error : np.ndarray, shape (n_frames,)
        Final prediction-error energy (each step's ``1 - k^2`` floored at 1e-5, as Kaldi).
    """
    R = np.asarray(R, dtype=np.float64)
    n, order = R.shape[0], R.shape[1] - 1
    a = np.zeros((n, order))
    E = R[:, 0].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(order):
            ki = R[:, i + 1] + np.einsum("ij,ij->i", a[:, :i], R[:, i:0:-1])
            ki = np.where(E > 0, ki / E, 0.0)
            E *= np.maximum(1.0 - ki * ki, 1.0e-5)
            new = a[:, :i] - ki[:, None] * a[:, i - 1 :: -1][:, :i] if i else a[:, :0]
            a[:, :i] = new
            a[:, i] = -ki
    return a, E


def lpc_to_cepstrum(a: np.ndarray) -> np.ndarray:
    """Kaldi's ``Lpc2Cepstrum`` over rows: ``c_i = -a_i - sum_{j<i} (i - j) a_j c_{i-j-1} / (i + 1)``."""
    a = np.asarray(a, dtype=np.float64)
    n, order = a.shape
    c = np.zeros((n, order))
    for i in range(order):
        w = np.arange(i, 0, -1, dtype=np.float64)  # i - j for j = 0 .. i-1
        s = np.einsum("ij,ij->i", a[:, :i] * w, c[:, i - 1 :: -1][:, :i]) if i else 0.0
        c[:, i] = -a[:, i] - s / (i + 1)
    return c


def plp_from_bands(
    bands: np.ndarray, *, config: FeatureConfig, sr: int, log_energy: np.ndarray | None = None
) -> np.ndarray:
    """PLP cepstra (n_frames, n_mfcc) float32 from filter-bank power energies (see the module notes)."""
    x = np.asarray(bands, dtype=np.float64)
    if config.rasta:
        from gmmspeech.features.rasta import rasta_filter

        x = np.exp(rasta_filter(np.log(np.maximum(x, config.log_floor)), axis=0))
    x = x * equal_loudness(band_centers(config, sr))
    x **= config.compress_factor
    dup = np.concatenate([x[:, :1], x, x[:, -1:]], axis=1)
    with single_thread_blas():
        R = dup @ idft_bases(config.lpc_order + 1, x.shape[1] + 2).T
    a, E = durbin(R)
    with np.errstate(divide="ignore"):
        c0 = np.maximum(np.log(E), _FLT_MIN)  # Kaldi floors the log itself at FLT_MIN
    ceps = lpc_to_cepstrum(a)
    n_ceps = config.n_mfcc
    out = np.empty((x.shape[0], n_ceps))
    out[:, 0] = c0
    out[:, 1:] = ceps[:, : n_ceps - 1]
    if config.lifter > 0:
        q = float(config.lifter)
        out *= 1.0 + 0.5 * q * np.sin(np.pi * np.arange(n_ceps) / q)
    if config.use_energy:
        if log_energy is None:
            raise ValueError("use_energy needs log_energy")
        out[:, 0] = log_energy
    return np.ascontiguousarray(out, dtype=np.float32)


def plp_and_energy(
    y: np.ndarray, *, sr: int, config: FeatureConfig | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """PLP cepstra and per-frame log-energy, frames first (the ``plp`` presets).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    sr : int
    config : FeatureConfig, optional
        Default: the ``kaldi-plp`` preset. ``feature_type`` is not read (this is PLP).
    workers : int, optional
        FFT threads.

    Returns
    -------
    cepstra : np.ndarray, shape (n_frames, n_mfcc), float32
    log_energy : np.ndarray, shape (n_frames,), float32
    """
    config = FeatureConfig.preset("kaldi-plp") if config is None else config
    if config.n_mfcc > config.lpc_order + 1:
        raise ValueError(f"config.n_mfcc={config.n_mfcc} needs lpc_order >= {config.n_mfcc - 1}")
    bands, energy = band_energies(y, sr=sr, config=config, workers=workers)
    log_energy = log_energy_of(energy, config)
    return plp_from_bands(bands, config=config, sr=int(sr), log_energy=log_energy), log_energy


def plp(y: np.ndarray, *, sr: int, config: FeatureConfig | None = None) -> np.ndarray:
    """PLP cepstra laid out like :func:`librosa.feature.mfcc`: (n_mfcc, n_frames) float32.

    >>> import numpy as np
    >>> from gmmspeech.features import FeatureConfig, plp
    >>> y = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> plp(y, sr=16000, config=FeatureConfig.preset("kaldi-plp")).shape
    (13, 98)
    """
    return plp_and_energy(y, sr=sr, config=config)[0].T
