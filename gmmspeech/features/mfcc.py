"""MFCCs and their deltas, fast, from librosa's building blocks.

The pipeline (all float32): frame the signal as a strided view
(:func:`librosa.util.frame`), per-frame DC removal / dither / pre-emphasis / window into
one buffer, :func:`scipy.fft.rfft`, power as ``re**2 + im**2`` (no complex ``abs``), the
mel filter bank (:func:`librosa.filters.mel`, cached) as one matrix product, log, and
the DCT-II (orthonormal, with the lifter folded in, cached) as a second matrix product.
With the ``librosa`` preset the result equals :func:`librosa.feature.mfcc`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gmmspeech.features.config import FeatureConfig

__all__ = ["mfcc", "mfcc_and_energy", "deltas", "mel_filterbank", "dct_matrix", "analysis_window"]


# ---------------------------------------------------------------------------- cached pieces
@lru_cache(maxsize=64)
def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None
) -> np.ndarray:
    """Mel filter bank as a read-only (n_fft // 2 + 1, n_mels) float32 matrix (cached).

    The transpose of :func:`librosa.filters.mel`, laid out for ``power @ bank``.
    """
    import warnings

    import librosa

    with warnings.catch_warnings():
        # narrow bands at low rates can leave a filter without an FFT bin; that band
        # then carries the log floor, which is harmless and constant
        warnings.filterwarnings("ignore", message="Empty filters detected")
        m = librosa.filters.mel(
            sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
            dtype=np.float32,
        )
    bank = np.ascontiguousarray(m.T, dtype=np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=64)
def dct_matrix(n_mels: int, n_mfcc: int, lifter: float) -> np.ndarray:
    """Orthonormal DCT-II as a read-only (n_mels, n_mfcc) float32 matrix, lifter folded in.

    ``logmel @ dct_matrix(...)`` equals ``scipy.fft.dct(logmel, type=2, norm="ortho",
    axis=-1)[:, :n_mfcc]`` times the HTK/Kaldi lifter ``1 + lifter / 2 * sin(pi * i / lifter)``
    for cepstrum ``i = 0 .. n_mfcc - 1`` (no lifter when ``lifter == 0``).
    """
    import scipy.fft

    d = scipy.fft.dct(np.eye(n_mels, dtype=np.float64), type=2, norm="ortho", axis=0)
    d = d[:n_mfcc].T.copy()  # (n_mels, n_mfcc)
    if lifter > 0:
        d *= 1.0 + 0.5 * lifter * np.sin(np.pi * np.arange(n_mfcc) / lifter)
    out = np.ascontiguousarray(d, dtype=np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def analysis_window(kind: str, length: int, periodic: bool) -> np.ndarray:
    """The analysis window (read-only float32, cached).

    ``"hamming"``, ``"hann"``, ``"blackman"`` and ``"rectangular"`` come from
    :func:`librosa.filters.get_window` (``periodic`` selects the DFT-even form);
    ``"povey"`` is Kaldi's symmetric Hann window raised to 0.85.
    """
    import librosa

    if kind == "povey":
        w = librosa.filters.get_window("hann", length, fftbins=periodic) ** 0.85
    elif kind == "rectangular":
        w = np.ones(length)
    else:
        w = librosa.filters.get_window(kind, length, fftbins=periodic)
    out = np.ascontiguousarray(w, dtype=np.float32)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------- framing
def _check_signal(y: np.ndarray, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D (mono) signal, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point samples, got dtype {y.dtype}")
    return np.ascontiguousarray(y, dtype=np.float32)


def _frame_view(y: np.ndarray, sr: int, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """(n_frames, win) strided view of the frames, and the FFT size."""
    import librosa

    win = config.win_samples(sr)
    hop = config.hop_samples(sr)
    n_fft = config.fft_size(sr)
    if win > n_fft:
        raise ValueError(f"window of {win} samples is longer than n_fft={n_fft}")
    if config.center:
        pad = n_fft // 2
        if config.pad_mode == "constant":
            yp = np.pad(y, pad)
        else:
            yp = np.pad(y, pad, mode=config.pad_mode)
        if yp.size < n_fft:
            raise ValueError(f"y has {y.size} samples, too short for n_fft={n_fft}")
        n_frames = 1 + (yp.size - n_fft) // hop
        # librosa centres a shorter window inside each n_fft frame
        off = (n_fft - win) // 2
        yp = yp[off : off + (n_frames - 1) * hop + win]
    else:
        if y.size < win:
            raise ValueError(
                f"y has {y.size} samples, shorter than one analysis frame ({win} samples)"
            )
        yp = y
    frames = librosa.util.frame(yp, frame_length=win, hop_length=hop, axis=0)
    return frames, n_fft


def mfcc_and_energy(
    y: np.ndarray, *, sr: int, config: FeatureConfig | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cepstra and per-frame log-energy, frames first.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal (computed in float32).
    sr : int
        Its sampling rate.
    config : FeatureConfig, optional
        Defaults to the ``speech`` preset.
    workers : int, optional
        Threads for :func:`scipy.fft.rfft` (default 1).

    Returns
    -------
    cepstra : np.ndarray, shape (n_frames, n_mfcc), float32
        With c0 replaced by the log-energy when ``config.use_energy``.
    log_energy : np.ndarray, shape (n_frames,), float32
        Natural log of the frame energy (raw: before pre-emphasis and window, when
        ``config.raw_energy``; otherwise of the windowed frame), floored at
        ``config.log_floor``.
    """
    import scipy.fft

    config = FeatureConfig.preset("speech") if config is None else config
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    sr = int(sr)
    if config.fmin >= 0.5 * sr:
        raise ValueError(f"config.fmin={config.fmin} is not below Nyquist at sr={sr}")
    y = _check_signal(y)
    frames, n_fft = _frame_view(y, sr, config)
    n_frames, win = frames.shape

    # per-frame processing into one buffer (the only full copy of the frames)
    buf = np.empty((n_frames, win), dtype=np.float32)
    needs_pre = config.dither > 0 or config.remove_dc or config.preemphasis > 0
    window = analysis_window(config.window, win, config.periodic_window)
    if not needs_pre and not config.raw_energy:
        np.multiply(frames, window, out=buf)
    else:
        buf[...] = frames
        if config.dither > 0:
            rng = np.random.default_rng(config.dither_seed)
            buf += np.float32(config.dither) * rng.standard_normal(buf.shape, dtype=np.float32)
        if config.remove_dc:
            buf -= buf.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
        if config.raw_energy:
            energy = np.einsum("ij,ij->i", buf, buf, dtype=np.float64)
        if config.preemphasis > 0:
            c = np.float32(config.preemphasis)
            buf[:, 1:] -= c * buf[:, :-1]  # numpy buffers the overlap: uses the old values
            buf[:, 0] *= np.float32(1.0) - c
        buf *= window
    if not config.raw_energy:
        energy = np.einsum("ij,ij->i", buf, buf, dtype=np.float64)
    log_energy = np.log(np.maximum(energy, config.log_floor)).astype(np.float32)

    spec = scipy.fft.rfft(buf, n=n_fft, axis=1, workers=workers)
    del buf
    n_bins = spec.shape[1]
    ri = spec.view(np.float32)  # (n_frames, 2 * n_bins): re, im interleaved
    if config.power == 2.0:
        np.square(ri, out=ri)
        pw = ri[:, 0::2]
        pw += ri[:, 1::2]
    else:
        np.square(ri, out=ri)
        pw = ri[:, 0::2]
        pw += ri[:, 1::2]
        np.power(pw, np.float32(config.power / 2.0), out=pw)
    bank = mel_filterbank(
        sr, n_fft, config.n_mels, float(config.fmin), float(config.mel_fmax(sr)),
        config.mel_scale == "htk", None if config.mel_norm == "none" else "slaney",
    )
    assert bank.shape[0] == n_bins
    mel = pw @ bank  # (n_frames, n_mels)
    del spec, ri, pw

    if config.log_type == "log":
        np.maximum(mel, np.float32(config.log_floor), out=mel)
        np.log(mel, out=mel)
    else:  # librosa.power_to_db with ref=1.0
        np.maximum(mel, np.float32(config.log_floor), out=mel)
        np.log10(mel, out=mel)
        mel *= np.float32(10.0)
        if config.top_db is not None and mel.size:
            np.maximum(mel, mel.max() - np.float32(config.top_db), out=mel)

    ceps = mel @ dct_matrix(config.n_mels, config.n_mfcc, float(config.lifter))
    if config.use_energy:
        ceps[:, 0] = log_energy
    return ceps, log_energy


def mfcc(
    y: np.ndarray, *, sr: int, config: FeatureConfig | None = None, workers: int | None = None
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, laid out like :func:`librosa.feature.mfcc`.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal.
    sr : int
        Sampling rate of ``y`` (frame sizes in seconds are converted at this rate).
    config : FeatureConfig, optional
        Analysis settings (default: the ``speech`` preset). Deltas, VAD and
        normalisation settings are not used here (see :func:`gmmspeech.features.extract`).
    workers : int, optional
        Threads for the FFT.

    Returns
    -------
    M : np.ndarray, shape (n_mfcc, n_frames), float32

    Examples
    --------
    >>> import numpy as np
    >>> from gmmspeech.features import FeatureConfig, mfcc
    >>> y = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> mfcc(y, sr=16000, config=FeatureConfig.preset("speech")).shape
    (20, 98)
    """
    ceps, _ = mfcc_and_energy(y, sr=sr, config=config, workers=workers)
    return ceps.T


# ---------------------------------------------------------------------------- deltas
def deltas(
    X: np.ndarray, *, order: int = 2, width: int = 9, axis: int = 0, mode: str = "interp"
) -> np.ndarray:
    """Stack features with their time derivatives: ``[X, delta, delta-delta]``.

    Each derivative is :func:`librosa.feature.delta` of ``X`` (``order=1`` and
    ``order=2``, Savitzky-Golay over ``width`` frames) along the time ``axis``.
    Sequences shorter than ``width`` frames use ``mode="nearest"`` (edge replication)
    instead of ``"interp"``, which needs at least ``width`` frames.

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_dims) for ``axis=0``
        Features; ``axis`` is the time axis (0 for gmmspeech's frames-first layout,
        -1 for librosa's).
    order : {0, 1, 2}
        Highest derivative appended.
    width : int
        Odd window length in frames (>= 3).
    mode : str
        Edge handling passed to :func:`librosa.feature.delta`.

    Returns
    -------
    np.ndarray
        ``X`` and its derivatives concatenated along the feature axis (the other axis of a
        2-D ``X``), same dtype as ``X``.
    """
    import librosa

    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (frames x dims), got shape {X.shape}")
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 3 or width % 2 == 0:
        raise ValueError(f"width must be an odd integer >= 3, got {width!r}")
    if axis not in (0, 1, -1, -2):
        raise ValueError(f"axis must be 0 or 1 (or -1/-2), got {axis!r}")
    time_axis = axis % 2
    feat_axis = 1 - time_axis
    if order == 0:
        return X.copy()
    n = X.shape[time_axis]
    if n == 0:
        raise ValueError("X has no frames")
    use_mode = mode if (mode != "interp" or n >= width) else "nearest"
    parts = [X]
    for k in range(1, order + 1):
        d = librosa.feature.delta(X, width=width, order=k, axis=time_axis, mode=use_mode)
        parts.append(d.astype(X.dtype, copy=False))
    return np.concatenate(parts, axis=feat_axis)
