"""MFCCs and their deltas, fast, from librosa's building blocks.

The pipeline (float32 throughout): frames as strided views of the signal
(:func:`librosa.util.frame`; centre padding copies only the edge frames), then per block
of :data:`BLOCK_FRAMES` frames held in one reused, cache-sized buffer: DC removal,
energy, pre-emphasis and window (one fused numba pass, or numpy passes), zero-padded
:func:`scipy.fft.rfft`, power as ``re**2 + im**2`` on the interleaved output (no complex
``abs``), and the mel filter bank (:func:`librosa.filters.mel` or Kaldi's, cached) as a
few small dense products over each filter group's band. Then log and the orthonormal
DCT-II (cached matrix, lifter folded in) as one matrix product. The thin matrix products
run on one BLAS thread (thread start-up costs more than they take). With the
``librosa`` preset the result equals :func:`librosa.feature.mfcc`.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from gmmspeech._lazy import lazy_kernel
from gmmspeech.features.config import FeatureConfig
from gmmspeech.threads import single_thread_blas

__all__ = [
    "mfcc",
    "band_energies",
    "band_centers",
    "filterbank",
    "linear_filterbank",
    "bark_filterbank",
    "log_bands",
    "mfcc_and_energy",
    "log_mel_and_energy",
    "cepstra",
    "deltas",
    "mel_filterbank",
    "kaldi_mel_filterbank",
    "vtln_warp_freq",
    "dct_matrix",
    "analysis_window",
]


# ---------------------------------------------------------------------------- cached pieces
@lru_cache(maxsize=64)
def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None,
    vtln_warp: float = 1.0,
) -> np.ndarray:
    """Mel filter bank as a read-only (n_fft // 2 + 1, n_mels) float32 matrix (cached).

    The transpose of :func:`librosa.filters.mel`, laid out for ``power @ bank``. With
    ``vtln_warp != 1`` the triangles' corners (Hz) are moved by :func:`vtln_warp_freq`
    (vocal-tract-length normalisation as Kaldi warps its bank); the triangles stay linear
    in Hz between the warped corners, as librosa's.
    """
    import warnings

    import librosa

    if vtln_warp != 1.0:
        corners = vtln_warp_freq(librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax, htk=htk),
                                 warp=vtln_warp, fmin=fmin, fmax=fmax, nyquist=0.5 * sr)
        f = np.arange(n_fft // 2 + 1) * sr / n_fft
        bank = _triangles(f[:, None], corners[:-2], corners[1:-1], corners[2:])
        if norm == "slaney":
            bank = bank * (2.0 / (corners[2:] - corners[:-2]))
        elif norm is not None:
            raise ValueError(f"mel norm must be 'slaney' or None, got {norm!r}")
        return _frozen(bank)

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
def kaldi_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                         vtln_warp: float = 1.0) -> np.ndarray:
    """Kaldi's mel bank (``MelBanks``) as a read-only (n_fft // 2 + 1, n_mels) float32 matrix.

    Triangles are linear in HTK mel (``1127 ln(1 + f / 700)``) between equally spaced
    mel points from ``fmin`` to ``fmax``; the Nyquist bin gets no weight (Kaldi uses
    ``n_fft / 2`` bins). librosa's triangles are linear in Hz instead. With
    ``vtln_warp != 1`` every corner is moved by :func:`vtln_warp_freq` (Kaldi's
    ``VtlnWarpMelFreq``).
    """

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = float(mel(fmin)), float(mel(fmax))
    delta = (hi - lo) / (n_mels + 1)
    left = lo + delta * np.arange(n_mels)
    center, right = left + delta, left + 2 * delta
    if vtln_warp != 1.0:
        def warp(m):
            hz = 700.0 * np.expm1(m / 1127.0)
            return mel(vtln_warp_freq(hz, warp=vtln_warp, fmin=fmin, fmax=fmax, nyquist=0.5 * sr))

        left, center, right = warp(left), warp(center), warp(right)
    m = mel(np.arange(n_fft // 2) * sr / n_fft)[:, None]  # Kaldi's bins: no Nyquist
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    w = np.where((m > left) & (m < right), np.where(m <= center, up, down), 0.0)
    bank = np.zeros((n_fft // 2 + 1, n_mels), dtype=np.float32)
    bank[: n_fft // 2] = w
    bank.setflags(write=False)
    return bank


#: Kaldi's VTLN cut-offs (``--vtln-low``, ``--vtln-high``; a negative high is below Nyquist)
VTLN_LOW = 100.0
VTLN_HIGH = -500.0


def vtln_warp_freq(freq, *, warp: float, fmin: float, fmax: float, nyquist: float,
                   low: float = VTLN_LOW, high: float = VTLN_HIGH) -> np.ndarray:
    """Kaldi's piecewise-linear VTLN frequency warp (``MelBanks::VtlnWarpFreq``).

    Between the cut-offs ``l = low * max(1, warp)`` and ``h = high * min(1, warp)`` a
    frequency ``f`` becomes ``f / warp``; below ``l`` and above ``h`` straight lines join
    that segment to ``fmin`` and ``fmax``, which stay fixed (so the bank keeps its band).
    Frequencies outside ``[fmin, fmax]`` are unchanged. ``high <= 0`` counts down from
    ``nyquist``. A factor above 1 moves the filters down (suits a voice whose formants lie
    lower than the models': its energy at ``f / warp`` lands in the filter of ``f``).

    Raises
    ------
    ValueError
        ``warp`` not positive, or the cut-offs not strictly inside ``(fmin, fmax)``.
    """
    if not warp > 0:
        raise ValueError(f"vtln warp factor must be positive, got {warp!r}")
    high = high + nyquist if high <= 0 else high
    f = np.asarray(freq, dtype=np.float64)
    lo_cut, hi_cut = low * max(1.0, warp), high * min(1.0, warp)
    if not fmin < lo_cut < hi_cut < fmax:
        raise ValueError(
            f"VTLN cut-offs {lo_cut:g} Hz and {hi_cut:g} Hz (warp {warp:g}) must lie strictly inside "
            f"the filter-bank band ({fmin:g}, {fmax:g}) Hz"
        )
    scale = 1.0 / warp
    f_lo, f_hi = scale * lo_cut, scale * hi_cut
    out = np.where(
        f < lo_cut, fmin + (f_lo - fmin) / (lo_cut - fmin) * (f - fmin),
        np.where(f < hi_cut, scale * f, fmax + (fmax - f_hi) / (fmax - hi_cut) * (f - fmax)),
    )
    return np.where((f < fmin) | (f > fmax), f, out)


@lru_cache(maxsize=64)
def linear_filterbank(sr: int, n_fft: int, n_filters: int, fmin: float, fmax: float) -> np.ndarray:
    """Linear-frequency triangular bank (LFCC) as a read-only (n_fft // 2 + 1, n_filters) matrix.

    ``n_filters`` triangles of unit height with centres equally spaced in Hz between
    ``fmin`` and ``fmax`` (``n_filters + 2`` equally spaced edge points; each triangle
    spans its two neighbours' centres), as in SIDEKIT's and spafe's linear banks.
    """
    edges = np.linspace(fmin, fmax, n_filters + 2)
    f = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = _triangles(f[:, None], edges[:-2], edges[1:-1], edges[2:])
    return _frozen(bank)


def _triangles(x: np.ndarray, left: np.ndarray, center: np.ndarray, right: np.ndarray) -> np.ndarray:
    up = (x - left) / (center - left)
    down = (right - x) / (right - center)
    return np.maximum(0.0, np.minimum(up, down))


def _frozen(bank: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(bank, dtype=np.float32)
    out.setflags(write=False)
    return out


def hz_to_bark(f):
    """Bark of Hz, ``6 asinh(f / 600)`` (Hermansky's PLP, rastamat's ``hz2bark``)."""
    return 6.0 * np.arcsinh(np.asarray(f, dtype=np.float64) / 600.0)


def bark_to_hz(z):
    """Inverse of :func:`hz_to_bark`."""
    return 600.0 * np.sinh(np.asarray(z, dtype=np.float64) / 6.0)


@lru_cache(maxsize=64)
def bark_filterbank(sr: int, n_fft: int, n_filters: int, fmin: float, fmax: float) -> np.ndarray:
    """Hermansky's critical-band (Bark) bank as a read-only (n_fft // 2 + 1, n_filters) matrix.

    Centres equally spaced on the Bark scale from ``fmin`` to ``fmax`` (both included);
    each band is the trapezoid-like masking curve of PLP (Hermansky 1990; rastamat's
    ``fft2barkmx`` with width 1): weight ``10 ** min(0, z - zc + 0.5, -2.5 (z - zc - 0.5))``
    at Bark distance ``z - zc``.
    """
    lo, hi = float(hz_to_bark(fmin)), float(hz_to_bark(fmax))
    centers = lo + (hi - lo) * np.arange(n_filters) / max(n_filters - 1, 1)
    z = hz_to_bark(np.arange(n_fft // 2 + 1) * sr / n_fft)[:, None]
    lof = z - centers - 0.5
    hif = z - centers + 0.5
    bank = 10.0 ** np.minimum(0.0, np.minimum(hif, -2.5 * lof))
    return _frozen(bank)


def band_centers(config: FeatureConfig, sr: int) -> np.ndarray:
    """Centre frequencies in Hz of the bands of ``config``'s filter bank at ``sr`` (float64)."""
    n, fmin, fmax = config.n_mels, float(config.fmin), float(config.mel_fmax(sr))
    if config.filter_scale == "linear":
        return np.linspace(fmin, fmax, n + 2)[1:-1]
    if config.filter_scale == "bark":
        lo, hi = float(hz_to_bark(fmin)), float(hz_to_bark(fmax))
        return bark_to_hz(lo + (hi - lo) * np.arange(n) / max(n - 1, 1))
    if config.mel_bank == "kaldi" or config.mel_scale == "htk":
        lo, hi = 1127.0 * np.log1p(fmin / 700.0), 1127.0 * np.log1p(fmax / 700.0)
        mels = lo + (hi - lo) * np.arange(1, n + 1) / (n + 1)
        return 700.0 * np.expm1(mels / 1127.0)
    import librosa

    return librosa.mel_frequencies(n_mels=n + 2, fmin=fmin, fmax=fmax, htk=False)[1:-1]


def filterbank(config: FeatureConfig, sr: int, n_fft: int | None = None) -> np.ndarray:
    """The (n_fft // 2 + 1, n_mels) filter bank ``config`` selects at ``sr`` (read-only, cached):
    mel (:func:`mel_filterbank` or :func:`kaldi_mel_filterbank`), Bark or linear."""
    n_fft = config.fft_size(sr) if n_fft is None else n_fft
    return _bank(*_bank_key(config, sr, n_fft))


def _bank_key(config: FeatureConfig, sr: int, n_fft: int) -> tuple:
    kind = config.filter_scale if config.filter_scale != "mel" else (
        "kaldi" if config.mel_bank == "kaldi" else "mel")
    return (kind, sr, n_fft, config.n_mels, float(config.fmin), float(config.mel_fmax(sr)),
            config.mel_scale == "htk", None if config.mel_norm == "none" else "slaney",
            float(config.vtln_warp))


def _bank(kind, sr, n_fft, n, fmin, fmax, htk, norm, warp=1.0) -> np.ndarray:
    if kind == "kaldi":
        return kaldi_mel_filterbank(sr, n_fft, n, fmin, fmax, warp)
    if kind == "linear":
        return linear_filterbank(sr, n_fft, n, fmin, fmax)
    if kind == "bark":
        return bark_filterbank(sr, n_fft, n, fmin, fmax)
    return mel_filterbank(sr, n_fft, n, fmin, fmax, htk, norm, warp)


@lru_cache(maxsize=64)
def _bank_groups(
    kind: str, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None,
    warp: float = 1.0,
) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The filter bank cut into groups of adjacent filters with their FFT-bin support.

    Each ``(lo, hi, c0, c1, sub)`` says bands ``c0:c1`` use only bins ``lo:hi``
    (``sub == bank[lo:hi, c0:c1]``): the product becomes a few small dense ones that skip
    the zeros of the triangular filters (5-10x fewer operations).
    """
    bank = _bank(kind, sr, n_fft, n_mels, fmin, fmax, htk, norm, warp)
    size = 8 if n_mels >= 64 else 16
    nonzero = bank != 0
    groups = []
    for c0 in range(0, n_mels, size):
        c1 = min(c0 + size, n_mels)
        rows = np.flatnonzero(nonzero[:, c0:c1].any(axis=1))
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)
        sub = np.ascontiguousarray(bank[lo:hi, c0:c1])
        sub.setflags(write=False)
        groups.append((lo, hi, c0, c1, sub))
    return tuple(groups)


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


# ---------------------------------------------------------------------------- fused kernel


@lazy_kernel
def _frame_kernel():
    """Numba kernel fusing DC removal, raw energy, pre-emphasis and window (or None).

    Three vectorised passes over each frame in cache instead of six numpy passes
    (about 10x faster on that stage). Compiled on first use and cached on disk; without numba the numpy path runs.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with librosa
        return None

    @numba.njit(cache=True, fastmath=True, nogil=True)
    def kernel(sig, first, hop, n, win, dst, row0, window, c, remove_dc, energy, e0):  # pragma: no cover
        # frame t = sig[first + t * hop : ... + win] -> dst[row0 + t, :win]; slices
        # (not base + i indexing) let LLVM vectorise the loops
        one_minus_c = np.float32(1.0) - c
        for t in range(n):
            base = first + t * hop
            x = sig[base : base + win]
            m = np.float32(0.0)
            if remove_dc:
                s1 = np.float32(0.0)
                for i in range(win):
                    s1 += x[i]
                m = s1 / np.float32(win)
            s2 = np.float32(0.0)
            for i in range(win):
                d = x[i] - m
                s2 += d * d
            energy[e0 + t] = s2
            k = one_minus_c * m
            out = dst[row0 + t]
            out[0] = (one_minus_c * x[0] - k) * window[0]
            for i in range(1, win):
                out[i] = (x[i] - c * x[i - 1] - k) * window[i]

    return kernel


# ---------------------------------------------------------------------------- framing
def _check_signal(y: np.ndarray, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D (mono) signal, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point samples, got dtype {y.dtype}")
    return np.ascontiguousarray(y, dtype=np.float32)


def _frame_pieces(
    y: np.ndarray, sr: int, config: FeatureConfig
) -> tuple[list[tuple[int, np.ndarray]], int, int, int, int]:
    """The frames as strided views, and (n_frames, win, hop, n_fft).

    Returns ``pieces``: ``(first_frame, view, signal)`` triples whose ``view`` (frames x
    win) holds consecutive frames of the contiguous 1-D ``signal`` (frame ``j`` of the
    piece is ``signal[j * hop : j * hop + win]``). Without centring (Kaldi's ``snip_edges``) there are
    ``1 + (n - win) // hop`` frames, all one view of ``y``. With centring the signal is
    padded by ``n_fft // 2`` on both sides and a window shorter than ``n_fft`` sits in the
    middle of each ``n_fft`` frame, as in :func:`librosa.stft`; only the few frames that
    reach into the padding are built from small padded copies, the rest are views of ``y``.
    """
    import librosa

    win = config.win_samples(sr)
    hop = config.hop_samples(sr)
    n_fft = config.fft_size(sr)
    if win > n_fft:
        raise ValueError(f"window of {win} samples is longer than n_fft={n_fft}")
    n = y.size
    if not config.center:
        if n < win:
            raise ValueError(f"y has {n} samples, shorter than one analysis frame ({win} samples)")
        n_frames = 1 + (n - win) // hop
        return [(0, librosa.util.frame(y, frame_length=win, hop_length=hop, axis=0), y)], n_frames, win, hop, n_fft

    pad = n_fft // 2
    off = (n_fft - win) // 2
    mode = config.pad_mode
    if mode == "reflect" and n <= pad:
        raise ValueError(f"y has {n} samples, too short to reflect-pad by {pad}")

    def padded(x, before, after):
        return np.pad(x, (before, after)) if mode == "constant" else np.pad(x, (before, after), mode=mode)

    if n + 2 * pad < n_fft:
        raise ValueError(f"y has {n} samples, too short for n_fft={n_fft}")
    n_frames = 1 + (n + 2 * pad - n_fft) // hop
    # frame t covers y[t * hop + off - pad : ... + win] (negative / past-the-end: padding)
    shift = off - pad
    t_lo = min(n_frames, max(0, -(shift // hop)))  # first frame starting at y[0] or later
    t_hi = max(t_lo, min(n_frames, (n - win - shift) // hop + 1)) if n >= win else t_lo
    if n < 4 * n_fft or t_hi - t_lo < 2 or win <= hop:
        yp = padded(y, pad, pad)[off : off + (n_frames - 1) * hop + win]
        return [(0, librosa.util.frame(yp, frame_length=win, hop_length=hop, axis=0), yp)], n_frames, win, hop, n_fft
    pieces = []
    if t_lo > 0:
        stop = (t_lo - 1) * hop + shift + win  # end of the last head frame in y
        head = padded(y[:stop], pad, 0)[off : off + (t_lo - 1) * hop + win]
        pieces.append((0, librosa.util.frame(head, frame_length=win, hop_length=hop, axis=0), head))
    first = t_lo * hop + shift
    body = y[first : first + (t_hi - t_lo - 1) * hop + win]
    pieces.append((t_lo, librosa.util.frame(body, frame_length=win, hop_length=hop, axis=0), body))
    if t_hi < n_frames:
        start = t_hi * hop + shift
        tail = padded(y[start:], 0, pad)[: (n_frames - 1 - t_hi) * hop + win]
        pieces.append((t_hi, librosa.util.frame(tail, frame_length=win, hop_length=hop, axis=0), tail))
    return pieces, n_frames, win, hop, n_fft


def _fill(core: np.ndarray, pieces, b0: int, b1: int, window: np.ndarray | None) -> None:
    """``core[:] = frames[b0:b1]`` (times ``window`` when given) from the frame pieces."""
    for p0, view, _ in pieces:
        lo, hi = max(b0, p0), min(b1, p0 + view.shape[0])
        if lo >= hi:
            continue
        src = view[lo - p0 : hi - p0]
        dst = core[lo - b0 : hi - b0]
        if window is None:
            np.copyto(dst, src)
        else:
            np.multiply(src, window, out=dst)


#: Frames processed per block: the working set (frames, spectrum, power) stays in cache.
BLOCK_FRAMES = 512
_ITEM_BLOCKS = 2  # blocks per work item of a thread


def band_energies(
    y: np.ndarray,
    *,
    sr: int,
    config: FeatureConfig | None = None,
    workers: int | None = None,
    use_numba: bool = True,
    need_energy: bool = True,
    rng: np.random.Generator | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter-bank energies (before the log) and the per-frame energy, frames first.

    The signal is first multiplied by ``config.sample_scale`` (32768 in the Kaldi
    presets, Kaldi's int16 scale). Per frame, in Kaldi's order: dither (Gaussian, seeded
    by ``config.dither_seed``), DC removal, raw energy, pre-emphasis (``x[i] - c * x[i - 1]``,
    ``x[0] - c * x[0]`` within the frame), window, zero-padded FFT, power, filter bank
    (:func:`filterbank`: mel, Bark or linear). Frames are processed in cache-sized blocks
    of :data:`BLOCK_FRAMES` through one reused buffer per thread; pairs of blocks are
    dynamically scheduled over ``n_threads`` threads (None:
    :func:`gmmspeech.threads.default_threads`; the result does not depend on it), except
    with dither, whose stream is sequential. ``rng`` continues a dither stream
    (block-by-block extraction passes one generator through every block, so the dither
    equals the whole-signal one).

    Returns
    -------
    bands : np.ndarray, shape (n_frames, n_mels), float32
        ``|X|^power`` through the bank.
    energy : np.ndarray, shape (n_frames,), float64
        Frame energy (raw: after DC removal, before pre-emphasis and window, when
        ``config.raw_energy``; otherwise of the windowed frame; zeros when neither
        ``need_energy`` nor ``config.use_energy`` asks for the windowed one).
    """
    import scipy.fft

    config = FeatureConfig.preset("speech") if config is None else config
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    sr = int(sr)
    if config.fmin >= config.mel_fmax(sr):
        raise ValueError(
            f"config.fmin={config.fmin} Hz is not below the upper band edge "
            f"{config.mel_fmax(sr):g} Hz at sr={sr}"
        )
    y = _check_signal(y)
    if config.sample_scale != 1.0:
        y = y * np.float32(config.sample_scale)
    pieces, n_frames, win, hop, n_fft = _frame_pieces(y, sr, config)
    c = np.float32(config.preemphasis)
    window = analysis_window(config.window, win, config.periodic_window)
    bands = _bank_groups(*_bank_key(config, sr, n_fft))
    if config.dither > 0:
        rng = np.random.default_rng(config.dither_seed) if rng is None else rng
    else:
        rng = None
    half_power = np.float32(config.power / 2.0)

    mel = np.empty((n_frames, config.n_mels), dtype=np.float32)
    energy = np.zeros(n_frames, dtype=np.float64)
    # the windowed-frame energy costs a pass; skip it when nobody reads it (mfcc())
    need_windowed_energy = not config.raw_energy and (need_energy or config.use_energy)
    block = min(BLOCK_FRAMES, n_frames)
    needs_pre = rng is not None or config.remove_dc or c > 0 or config.raw_energy
    one_minus_c = np.float32(1.0) - c
    # the fused kernel computes the raw energy; it needs no dither and a window > 1
    fused = _frame_kernel() if (use_numba and needs_pre and rng is None and config.raw_energy
                                and win > 1) else None
    width = max(c1 - c0 for _, _, c0, c1, _ in bands)
    local = threading.local()

    def working_set():
        # one cache-sized working set per thread, reused for every block it takes
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = (np.zeros((block, n_fft), dtype=np.float32),  # past win stays zero
                             np.empty((block, win - 1), dtype=np.float32),
                             np.empty((block, n_fft // 2 + 1), dtype=np.float32),
                             np.empty((block, width), dtype=np.float32))
        return ws

    def run(span):
        buf, tmp, pwbuf, melbuf = working_set()
        for b0 in range(span[0], span[1], block):
            b1 = min(b0 + block, n_frames)
            nb = b1 - b0
            blk = buf[:nb]
            core = blk[:, :win]
            if not needs_pre:
                _fill(core, pieces, b0, b1, window)
            elif fused is not None:
                for p0, view, sig in pieces:
                    lo, hi = max(b0, p0), min(b1, p0 + view.shape[0])
                    if lo < hi:
                        fused(sig, (lo - p0) * hop, hop, hi - lo, win, blk, lo - b0, window, c,
                              config.remove_dc, energy, lo)
            else:
                _fill(core, pieces, b0, b1, None)
                if rng is not None:  # the same stream whatever the block size
                    core += np.float32(config.dither) * rng.standard_normal((nb, win), dtype=np.float32)
                if config.remove_dc:
                    core -= core.mean(axis=1, keepdims=True)
                if config.raw_energy:
                    energy[b0:b1] = np.einsum("ij,ij->i", core, core)
                if c > 0 and win > 1:
                    t = tmp[:nb]
                    np.multiply(core[:, :-1], c, out=t)
                    np.subtract(core[:, 1:], t, out=core[:, 1:])
                    core[:, 0] *= one_minus_c
                core *= window
            if need_windowed_energy:
                energy[b0:b1] = np.einsum("ij,ij->i", core, core)
            spec = scipy.fft.rfft(blk, axis=1, workers=workers)
            ri = spec.view(np.float32)  # re, im interleaved
            np.square(ri, out=ri)
            pw = pwbuf[:nb]
            np.add(ri[:, 0::2], ri[:, 1::2], out=pw)
            if half_power != 1:
                np.power(pw, half_power, out=pw)
            out = mel[b0:b1]
            for lo, hi, c0, c1, sub in bands:
                np.matmul(pw[:, lo:hi], sub, out=melbuf[:nb, : c1 - c0])
                out[:, c0:c1] = melbuf[:nb, : c1 - c0]

    # blocks are independent (each frame is computed alone), so groups of them run on
    # threads (:func:`gmmspeech.threads.map_items`); a dither stream is sequential
    from gmmspeech.threads import map_items

    step = block * _ITEM_BLOCKS
    spans = [(b0, min(b0 + step, n_frames)) for b0 in range(0, n_frames, step)]
    map_items(run, spans, n_threads=1 if rng is not None else n_threads)
    return mel, energy


def log_bands(bands: np.ndarray, *, config: FeatureConfig, out: np.ndarray | None = None,
              top_db: bool = True) -> np.ndarray:
    """Log of filter-bank energies as ``config`` says, in place when ``out is bands``:
    natural log floored at ``log_floor``, or decibels (:func:`librosa.power_to_db` with
    ``ref=1``, ``amin=log_floor`` and, unless ``top_db=False``, ``config.top_db``)."""
    out = np.empty_like(bands) if out is None else out
    np.maximum(bands, np.float32(config.log_floor), out=out)
    if config.log_type == "log":
        np.log(out, out=out)
    else:  # librosa.power_to_db with ref=1.0
        np.log10(out, out=out)
        out *= np.float32(10.0)
        if top_db and config.top_db is not None and out.size:
            np.maximum(out, out.max() - np.float32(config.top_db), out=out)
    return out


def log_energy_of(energy: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Natural log of frame energies floored at ``config.log_floor`` (float32)."""
    return np.log(np.maximum(energy, config.log_floor)).astype(np.float32)


def log_mel_and_energy(
    y: np.ndarray,
    *,
    sr: int,
    config: FeatureConfig | None = None,
    workers: int | None = None,
    use_numba: bool = True,
    _need_energy: bool = True,
    rng: np.random.Generator | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log filter-bank energies (before ``top_db``) and per-frame log-energy, frames first.

    The first half of :func:`mfcc_and_energy` (same parameters); :func:`cepstra` is the
    second. ``rng`` continues a dither stream (see :func:`band_energies`).
    """
    config = FeatureConfig.preset("speech") if config is None else config
    bands, energy = band_energies(y, sr=sr, config=config, workers=workers,
                                  use_numba=use_numba, need_energy=_need_energy, rng=rng,
                                  n_threads=n_threads)
    with single_thread_blas():
        log_bands(bands, config=config, out=bands, top_db=False)
    return bands, log_energy_of(energy, config)


def cepstra(log_mel: np.ndarray, log_energy: np.ndarray, *, config: FeatureConfig,
            mel_max: float | None = None) -> np.ndarray:
    """Cepstra of log filter-bank frames: ``top_db`` floor, RASTA (``config.rasta``), DCT
    with lifter, c0 from the energy.

    ``mel_max`` is the utterance's largest log-band value for the ``top_db`` floor
    (default: that of ``log_mel``; block-by-block extraction passes the whole file's).
    ``log_mel`` is modified in place.
    """
    if config.log_type != "log" and config.top_db is not None and log_mel.size:
        top = log_mel.max() if mel_max is None else np.float32(mel_max)
        np.maximum(log_mel, top - np.float32(config.top_db), out=log_mel)
    if config.rasta:
        from gmmspeech.features.rasta import rasta_filter

        log_mel = np.ascontiguousarray(rasta_filter(log_mel, axis=0), dtype=np.float32)
    dct = dct_matrix(config.n_mels, config.n_mfcc, float(config.lifter))
    ceps = np.empty((log_mel.shape[0], config.n_mfcc), dtype=np.float32)
    with single_thread_blas():
        # fixed row blocks: BLAS picks its kernel by size, so equal blocks give equal
        # rounding whether a file is analysed whole or chunk by chunk
        for b0 in range(0, log_mel.shape[0], BLOCK_FRAMES):
            np.matmul(log_mel[b0 : b0 + BLOCK_FRAMES], dct, out=ceps[b0 : b0 + BLOCK_FRAMES])
    if config.use_energy:
        ceps[:, 0] = log_energy
    return ceps


def mfcc_and_energy(
    y: np.ndarray,
    *,
    sr: int,
    config: FeatureConfig | None = None,
    workers: int | None = None,
    use_numba: bool = True,
    _need_energy: bool = True,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cepstra and per-frame log-energy, frames first.

    :func:`log_mel_and_energy` (:func:`band_energies`, then the log of the bands), then
    :func:`cepstra` (optionally RASTA-filtered, ``config.rasta``, and the orthonormal DCT
    with the lifter). With ``filter_scale="linear"`` these are LFCCs, with ``"bark"``
    Bark-frequency cepstra.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal (computed in float32).
    sr : int
        Its sampling rate.
    config : FeatureConfig, optional
        Defaults to the ``speech`` preset.
    workers : int, optional
        Threads of each :func:`scipy.fft.rfft` call (default 1).
    use_numba : bool, default True
        Fuse the per-frame DC removal, energy, pre-emphasis and window in one compiled
        pass (numba); False runs the same steps as numpy passes.
    n_threads : int, optional
        Threads over blocks of frames (None: :func:`gmmspeech.threads.default_threads`);
        files shorter than about 10 s are one work item. The result does not depend on it.

    Returns
    -------
    cepstra : np.ndarray, shape (n_frames, n_mfcc), float32
        With c0 replaced by the log-energy when ``config.use_energy``.
    log_energy : np.ndarray, shape (n_frames,), float32
        Natural log of the frame energy (raw: after DC removal, before pre-emphasis and
        window, when ``config.raw_energy``; otherwise of the windowed frame), floored at
        ``config.log_floor``.
    """
    config = FeatureConfig.preset("speech") if config is None else config
    log_mel, log_energy = log_mel_and_energy(y, sr=sr, config=config, workers=workers,
                                             use_numba=use_numba, _need_energy=_need_energy,
                                             n_threads=n_threads)
    return cepstra(log_mel, log_energy, config=config), log_energy


def mfcc(
    y: np.ndarray, *, sr: int, config: FeatureConfig | None = None, workers: int | None = None,
    n_threads: int | None = None,
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
        Threads of each FFT call.
    n_threads : int, optional
        Threads over blocks of frames (see :func:`mfcc_and_energy`).

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
    ceps, _ = mfcc_and_energy(y, sr=sr, config=config, workers=workers, _need_energy=False,
                              n_threads=n_threads)
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
