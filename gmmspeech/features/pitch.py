"""Pitch features appended to the spectral ones: Kaldi pitch (kaldi-native-fbank) or pYIN.

Both give three values per frame, aligned with the spectral frames of the same
configuration:

``kaldi``
    Kaldi's ``compute-and-process-kaldi-pitch-feats`` (Ghahremani et al. 2014) through
    :func:`kaldi_native_fbank.compute_and_process_kaldi_pitch` (an optional dependency:
    ``pip install gmmspeech[pitch]``): probability-of-voicing feature, mean-normalised
    log-pitch (151-frame window), delta log-pitch. Same arithmetic as Kaldi's binary.
``pyin``
    :func:`librosa.pyin` (Mauch & Dixon 2014): voiced probability, log f0 (unvoiced
    frames interpolated linearly between voiced neighbours, held at the ends), and
    its delta (:func:`librosa.feature.delta`, width 5). pYIN runs at its own frame
    centres; values are interpolated to the centres of the spectral frames.
"""

from __future__ import annotations

import math

import numpy as np

from gmmspeech.features.config import FeatureConfig

__all__ = ["pitch_features", "kaldi_pitch", "pyin_pitch"]


def _align(P: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim or edge-pad pitch frames to ``n_frames`` (the two framings may differ by one)."""
    if P.shape[0] >= n_frames:
        return P[:n_frames]
    if P.shape[0] == 0:
        return np.zeros((n_frames, P.shape[1]), dtype=P.dtype)
    return np.concatenate([P, np.repeat(P[-1:], n_frames - P.shape[0], axis=0)])


def kaldi_pitch(y: np.ndarray, *, sr: int, config: FeatureConfig) -> np.ndarray:
    """Kaldi pitch features (n_frames, 3) float32: POV, normalised log-pitch, delta-pitch.

    Frame length and shift are the configuration's; ``snip_edges`` is ``not
    config.center``; the f0 search range is ``pitch_fmin`` .. ``pitch_fmax``. Samples are
    given on the int16 scale (Kaldi's).

    Raises
    ------
    ImportError
        kaldi-native-fbank (>= 1.23, with pitch) is not installed.
    """
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        raise ImportError("pitch='kaldi' needs kaldi-native-fbank >= 1.23: "
                          "pip install 'gmmspeech[pitch]' (or use pitch='pyin')") from None
    if not hasattr(knf, "compute_and_process_kaldi_pitch"):
        raise ImportError("this kaldi-native-fbank has no Kaldi pitch; upgrade it to >= 1.23 "
                          "(or use pitch='pyin')")
    opts = knf.PitchExtractionOptions()
    opts.samp_freq = float(sr)
    opts.frame_length_ms = 1000.0 * config.win_samples(sr) / sr
    opts.frame_shift_ms = 1000.0 * config.hop_samples(sr) / sr
    opts.snip_edges = not config.center
    opts.min_f0 = float(config.pitch_fmin)
    opts.max_f0 = float(config.pitch_fmax)
    y = np.ascontiguousarray(y, dtype=np.float32) * np.float32(32768.0)
    out = knf.compute_and_process_kaldi_pitch(opts, knf.ProcessPitchOptions(), y)
    return np.asarray(out, dtype=np.float32).reshape(-1, 3)


def _frame_centres(n_frames: int, sr: int, config: FeatureConfig) -> np.ndarray:
    hop = config.hop_samples(sr)
    t = np.arange(n_frames) * hop
    return t if config.center else t + 0.5 * config.win_samples(sr)


def pyin_pitch(y: np.ndarray, *, sr: int, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """pYIN pitch features (n_frames, 3) float32: voiced probability, log f0, delta log f0."""
    import librosa

    hop = config.hop_samples(sr)
    fmin, fmax = float(config.pitch_fmin), min(float(config.pitch_fmax), 0.45 * sr)
    # two periods of the lowest f0 in each half of the frame, as pYIN needs
    frame_length = 1 << math.ceil(math.log2(2.0 * sr / fmin + 2))
    y = np.asarray(y, dtype=np.float32)
    if y.size < frame_length:
        y = np.pad(y, (0, frame_length - y.size))
    f0, _flag, prob = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame_length,
                                   hop_length=hop, center=True, fill_na=np.nan)
    t_pyin = np.arange(f0.size) * hop
    voiced = np.isfinite(f0)
    if voiced.any():
        logf0 = np.interp(t_pyin, t_pyin[voiced], np.log(f0[voiced]))
    else:
        logf0 = np.full(f0.size, 0.5 * (math.log(fmin) + math.log(fmax)))
    t = _frame_centres(n_frames, sr, config)
    pov = np.interp(t, t_pyin, prob)
    lf = np.interp(t, t_pyin, logf0)
    mode = "interp" if n_frames >= 5 else "nearest"
    d = librosa.feature.delta(lf, width=5, mode=mode) if n_frames >= 2 else np.zeros_like(lf)
    return np.stack([pov, lf, d], axis=1).astype(np.float32)


def pitch_features(y: np.ndarray, *, sr: int, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """The ``config.pitch`` features (n_frames, 3) of ``y`` aligned to ``n_frames`` frames."""
    if config.pitch == "kaldi":
        return _align(kaldi_pitch(y, sr=sr, config=config), n_frames)
    if config.pitch == "pyin":
        return pyin_pitch(y, sr=sr, config=config, n_frames=n_frames)
    raise ValueError(f"config.pitch is {config.pitch!r}: no pitch features to compute")
