"""Log filter-bank energies (Kaldi's ``compute-fbank-feats``; librosa's log-mel spectrogram)."""

from __future__ import annotations

import numpy as np

from gmmspeech.features.config import FeatureConfig
from gmmspeech.features.mfcc import band_energies, log_bands, log_energy_of
from gmmspeech.threads import single_thread_blas

__all__ = ["fbank", "fbank_and_energy"]


def fbank_and_energy(
    y: np.ndarray, *, sr: int, config: FeatureConfig | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Log filter-bank energies and per-frame log-energy, frames first.

    :func:`~gmmspeech.features.mfcc.band_energies` then the log (natural, floored at
    ``log_floor`` as Kaldi; or dB as :func:`librosa.power_to_db`), optionally
    RASTA-filtered. With ``use_energy`` the frame log-energy is the first column (Kaldi's
    ``--use-energy`` layout).

    Returns
    -------
    fbank : np.ndarray, shape (n_frames, n_mels + use_energy), float32
    log_energy : np.ndarray, shape (n_frames,), float32
    """
    config = FeatureConfig.preset("kaldi-fbank") if config is None else config
    bands, energy = band_energies(y, sr=sr, config=config, workers=workers)
    with single_thread_blas():
        log_bands(bands, config=config, out=bands)
    if config.rasta:
        from gmmspeech.features.rasta import rasta_filter

        bands = rasta_filter(bands, axis=0)
    log_energy = log_energy_of(energy, config)
    if config.use_energy:
        bands = np.concatenate([log_energy[:, None], bands], axis=1)
    return bands, log_energy


def fbank(y: np.ndarray, *, sr: int, config: FeatureConfig | None = None) -> np.ndarray:
    """Log filter-bank energies laid out like :func:`librosa.feature.melspectrogram`:
    (n_mels, n_frames) float32. Default: the ``kaldi-fbank`` preset.

    With the ``librosa-fbank`` preset this equals
    ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))``.
    """
    return fbank_and_energy(y, sr=sr, config=config)[0].T
