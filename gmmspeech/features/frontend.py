"""One entry point for every front end: the static features a configuration selects.

``config.feature_type`` chooses MFCC / LFCC (:func:`~gmmspeech.features.mfcc.mfcc_and_energy`),
log filter-bank energies (:func:`~gmmspeech.features.fbank.fbank_and_energy`) or PLP
(:func:`~gmmspeech.features.plp.plp_and_energy`); ``config.pitch`` appends three pitch
values per frame (:func:`~gmmspeech.features.pitch.pitch_features`). Deltas, SDC, VAD and
normalisation follow in :func:`gmmspeech.features.extract.postprocess`.
"""

from __future__ import annotations

import numpy as np

from gmmspeech.features.config import FeatureConfig

__all__ = ["static_features"]


def static_features(
    y: np.ndarray, *, sr: int, config: FeatureConfig, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Static features (n_frames, n_static + n_pitch) float32 and frame log-energy (n_frames,)."""
    kind = config.feature_type
    if kind in ("mfcc", "lfcc"):
        from gmmspeech.features.mfcc import mfcc_and_energy

        X, log_energy = mfcc_and_energy(y, sr=sr, config=config, workers=workers)
    elif kind == "fbank":
        from gmmspeech.features.fbank import fbank_and_energy

        X, log_energy = fbank_and_energy(y, sr=sr, config=config, workers=workers)
    elif kind == "plp":
        from gmmspeech.features.plp import plp_and_energy

        X, log_energy = plp_and_energy(y, sr=sr, config=config, workers=workers)
    else:  # pragma: no cover - FeatureConfig validates feature_type
        raise ValueError(f"unknown feature_type {kind!r}")
    if config.pitch != "none":
        from gmmspeech.features.pitch import pitch_features

        P = pitch_features(y, sr=sr, config=config, n_frames=X.shape[0])
        X = np.concatenate([X, P], axis=1)
    return np.ascontiguousarray(X, dtype=np.float32), log_energy
