"""From a file (or signal) to a finite (n_frames, n_dims) float32 feature matrix.

Order of operations: load (resampled to ``config.sample_rate``; speed-perturbed when
``config.speed != 1``) -> static features (the mel bank VTLN-warped by ``config.vtln_warp``)
(MFCC, LFCC, log filter-bank or PLP; pitch appended) and frame log-energy -> deltas over
all frames -> shifted delta cepstra of the first ``sdc_n`` static dimensions appended ->
VAD (energy threshold or per-utterance energy GMM) keeps the voiced frames ->
normalisation (utterance CMVN, sliding CMVN or feature warping) over the kept frames.
Computing deltas before dropping frames keeps them continuous; normalising after keeps
silence out of the statistics.
"""

from __future__ import annotations

import math
import os

import numpy as np

from gmmspeech.audio import DEFAULT_MAX_OVERSHOOT, load
from gmmspeech.errors import AudioError, FeatureError
from gmmspeech.features.config import FeatureConfig
from gmmspeech.features.frontend import static_features
from gmmspeech.features.mfcc import deltas
from gmmspeech.features.normalize import cmvn, feature_warping, sliding_cmvn
from gmmspeech.features.sdc import sdc
from gmmspeech.features.vad import energy_vad, gmm_vad

#: Largest |sample| of an array source (a file's is ``audio.MAX_ABS_SAMPLE``, 1e6: beyond it a
#: file is corrupt). Float arrays of int32-scale PCM (2.1e9) give finite features; beyond
#: about 1e14 some presets' float32 powers overflow.
MAX_ARRAY_SAMPLE = 1.0e12

__all__ = ["extract", "postprocess"]


def _slice_signal(y: np.ndarray, sr: int, start, end) -> np.ndarray:
    n = y.size
    s = 0.0 if start is None else float(start)
    if not math.isfinite(s) or s < 0:
        raise AudioError(None, f"segment start {start!r} must be a finite number >= 0")
    first = int(round(s * sr))
    if first >= n:
        raise AudioError(None, f"segment start {s:g} s is at or past the end of the signal ({n / sr:g} s)")
    if end is None:
        return y[first:]
    e = float(end)
    if not math.isfinite(e) or e <= s:
        raise AudioError(None, f"segment end {end!r} is not after its start {s:g} s")
    if e > n / sr + DEFAULT_MAX_OVERSHOOT:
        raise AudioError(
            None, f"segment end {e:g} s is past the end of the signal ({n / sr:g} s) by more "
            f"than {DEFAULT_MAX_OVERSHOOT:g} s",
        )
    last = min(int(round(e * sr)), n)
    return y[first:last]


def _signal(source, config: FeatureConfig, sr, start, end) -> tuple[np.ndarray, str | None]:
    """Samples at ``config.sample_rate`` (speed-perturbed by ``config.speed``) and the path
    (None for an array)."""
    y, path = _samples(source, config, sr, start, end)
    if config.speed != 1.0:
        from gmmspeech.audio import speed_perturb

        y = speed_perturb(y, sr=config.sample_rate, factor=config.speed)
        if y.size < config.win_samples(config.sample_rate):
            raise AudioError(path, f"too short after speed perturbation by {config.speed:g}: {y.size} samples")
    return y, path


def _samples(source, config: FeatureConfig, sr, start, end) -> tuple[np.ndarray, str | None]:

    rate = config.sample_rate
    min_samples = config.win_samples(rate)
    if isinstance(source, (str, os.PathLike)):
        if sr is not None and int(sr) != rate:
            raise ValueError(
                f"sr={sr!r} given with a file: files are read at config.sample_rate ({rate} Hz);"
                " change the configuration instead"
            )
        y = load(source, sr=rate, start=start, end=end, min_duration=None,
                       min_samples=min_samples)
        return y, os.fspath(source)
    y = np.asarray(source)
    if y.ndim != 1:
        raise ValueError(f"source must be a path or a 1-D signal, got an array of shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"source signal must be numeric, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.integer):
        info = np.iinfo(y.dtype)
        y = y.astype(np.float32) / np.float32(max(abs(info.min), info.max))
    y_sr = rate if sr is None else sr
    if isinstance(y_sr, bool) or not isinstance(y_sr, (int, np.integer)) or y_sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    y_sr = int(y_sr)
    if y.size == 0:
        raise AudioError(None, "empty signal")
    if not np.isfinite(y).all():
        raise AudioError(None, "non-finite samples (NaN or Inf)")
    amax = float(np.max(np.abs(y)))
    if amax > MAX_ARRAY_SAMPLE:  # beyond it the float32 powers of some presets overflow
        raise AudioError(None, f"implausible sample value {amax:.3g} (audio should lie within +-1; "
                               f"an array is accepted up to +-{MAX_ARRAY_SAMPLE:g})")
    if start is not None or end is not None:
        y = _slice_signal(y, y_sr, start, end)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y_sr != rate:
        from gmmspeech.audio import resample

        y = resample(y, orig_sr=y_sr, target_sr=rate, res_type="soxr_hq")
    if y.size < min_samples:
        raise AudioError(
            None, f"too short: {y.size} samples at {rate} Hz, need at least {min_samples} "
            "(one analysis frame)",
        )
    return y, None


def postprocess(
    ceps: np.ndarray, log_energy: np.ndarray, *, config: FeatureConfig, path: str | None = None
) -> np.ndarray:
    """Deltas, SDC, VAD and normalisation of frames-first static features (see the module notes).

    Raises
    ------
    FeatureError
        VAD kept no frame, or the result is not finite.
    """
    X = ceps
    if config.deltas:
        X = deltas(X, order=config.deltas, width=config.delta_width, axis=0, mode=config.delta_mode)
    if config.sdc:
        shifted = sdc(ceps, n=config.sdc_n, d=config.sdc_d, p=config.sdc_p, k=config.sdc_k)
        X = np.concatenate([X, shifted], axis=1)
    if config.vad:
        floor = math.log(config.log_floor) + 1e-3
        if config.vad_method == "gmm":
            mask = gmm_vad(log_energy, n_components=config.vad_gmm_components,
                           context=config.vad_context, proportion=config.vad_proportion,
                           min_log_energy=floor)
        else:
            mask = energy_vad(
                log_energy,
                threshold_db=config.vad_threshold_db,
                reference=config.vad_reference,
                context=config.vad_context,
                proportion=config.vad_proportion,
                min_log_energy=floor,
            )
        if not mask.any():
            raise FeatureError(path, f"no speech frames after VAD (0 of {mask.size} frames kept)")
        if not mask.all():
            X = X[mask]
    if config.cmvn == "utterance":
        X = cmvn(X, norm_vars=config.cmvn_norm_vars)
    elif config.cmvn == "sliding":
        X = sliding_cmvn(X, window=config.default_cmvn_window(), center=config.cmvn_center,
                         norm_vars=config.cmvn_norm_vars)
    elif config.cmvn == "warping":
        X = feature_warping(X, window=config.default_cmvn_window())
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise FeatureError(path, "non-finite feature values")
    return X


def extract(
    source,
    *,
    config: FeatureConfig | None = None,
    sr: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Feature matrix of a file or a signal.

    Parameters
    ----------
    source : path-like or np.ndarray
        An audio file (read with :func:`gmmspeech.audio.load` at ``config.sample_rate``)
        or a 1-D signal (float, or integer PCM scaled to [-1, 1]).
    config : FeatureConfig, optional
        Default: ``FeatureConfig.preset("speech")``.
    sr : int, optional
        Sampling rate of an array ``source`` (default ``config.sample_rate``); it is
        resampled to ``config.sample_rate`` when different. Not used with a file (giving
        a different rate there is an error).
    start, end : float, optional
        Segment in seconds (see :func:`gmmspeech.audio.load` for the rules).

    Returns
    -------
    np.ndarray, shape (n_frames, config.n_features), float32
        Finite values; frames first.

    Raises
    ------
    AudioError
        The audio is missing, unreadable, corrupt, not finite, implausibly large (a file's
        |x| > ``audio.MAX_ABS_SAMPLE``, an array's > :data:`MAX_ARRAY_SAMPLE`), or shorter
        than a frame.
    FeatureError
        No frame survived VAD.
    """
    if config is None:
        config = FeatureConfig.preset("speech")
    elif not isinstance(config, FeatureConfig):
        raise ValueError(f"config must be a FeatureConfig, got {type(config).__name__}")
    y, path = _signal(source, config, sr, start, end)
    try:
        ceps, log_energy = static_features(y, sr=config.sample_rate, config=config)
    except ValueError as exc:  # e.g. shorter than one centred FFT frame
        raise AudioError(path, str(exc)) from None
    return postprocess(ceps, log_energy, config=config, path=path)
