"""Block-by-block feature extraction: memory bounded whatever the file's length.

:func:`extract_to_file` writes the features of an audio file to a ``.npy`` file and
holds only blocks in memory. It computes what :func:`gmmspeech.features.extract` computes
on the whole signal (equal to float rounding; tests check every preset):

1. The file is decoded and resampled as a stream (:class:`gmmspeech.audio.AudioStream`).
   Frames are cut from a running buffer that keeps the ``win - hop`` samples two
   consecutive chunks share; centred analysis (the ``librosa`` preset) pads the stream's
   two ends as :func:`librosa.stft` pads the whole signal. Cepstra are computed
   :data:`CHUNK_FRAMES` frames at a time (a multiple of the MFCC block, so the blocks are
   the whole-signal ones); a dither stream continues across chunks. With ``top_db``
   (a floor relative to the utterance's loudest band) the log-mel frames are kept and
   turned into cepstra once the whole-file maximum is known.
2. Per-frame log-energies (4 bytes a frame) stay in memory; the energy VAD needs the
   utterance's maximum (or mean) level, so it runs once all frames are known.
3. Deltas are computed chunk by chunk with ``width // 2`` frames of context on each side
   (at the two ends of the utterance the chunk holds at least ``width`` frames, so
   ``mode="interp"`` fits the same edge polynomial).
4. Utterance CMVN needs whole-utterance statistics: a first pass sums (float64) over the
   kept frames, a second the squared deviations from the mean, a third writes the
   normalised frames. Sliding CMVN and feature warping read each chunk with the frames
   its windows reach (window bounds from the whole utterance's length).

Intermediate tables (cepstra, un-normalised frames) stay in memory up to
:data:`SPILL_BYTES` and beyond that go to a temporary file beside the output, read back
with plain reads (no memory map, so they never count toward the process's memory).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import IO

import numpy as np

from gmmspeech.audio import DEFAULT_MAX_DURATION, AudioStream, too_short
from gmmspeech.errors import AudioError, FeatureError
from gmmspeech.features.config import FeatureConfig
from gmmspeech.features.mfcc import BLOCK_FRAMES, cepstra, deltas, log_mel_and_energy
from gmmspeech.features.normalize import (
    _VAR_FLOOR,
    feature_warping_rows,
    sliding_cmvn_rows,
    sliding_window_bounds,
)
from gmmspeech.features.vad import energy_vad

__all__ = ["extract_to_file", "ExtractInfo", "CHUNK_FRAMES", "SPILL_BYTES"]

#: Frames per chunk (cepstra, deltas, normalisation): 8 MFCC blocks, about 41 s at 10 ms.
CHUNK_FRAMES = 8 * BLOCK_FRAMES
#: An intermediate table larger than this goes to a temporary file.
SPILL_BYTES = 32 << 20


@dataclass(frozen=True)
class ExtractInfo:
    """What :func:`extract_to_file` wrote: the array's shape and the audio's native rate."""

    frames: int
    dims: int
    native_rate: int


class _Rows:
    """An append-only float32 table of ``width`` columns: in memory up to ``limit``
    bytes, then in a temporary file (``scratch`` + a suffix) removed by :meth:`close`."""

    def __init__(self, width: int, scratch: str, limit: int = SPILL_BYTES):
        self.width = int(width)
        self.n = 0
        self._parts: list[np.ndarray] = []
        self._bytes = 0
        self._limit = limit
        self._scratch = scratch
        self._path: str | None = None
        self._fh: IO[bytes] | None = None
        self._whole: np.ndarray | None = None

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1, self.width)
        if self._fh is None and self._bytes + a.nbytes > self._limit:
            self._path = self._scratch
            self._fh = open(self._path, "w+b")  # noqa: SIM115 - closed in close()
            for p in self._parts:
                self._fh.write(memoryview(p).cast("B"))
            self._parts = []
        if self._fh is not None:
            self._fh.write(memoryview(a).cast("B"))
        else:
            self._parts.append(a)
            self._bytes += a.nbytes
        self.n += a.shape[0]

    def read(self, a: int, b: int) -> np.ndarray:
        """Rows ``a .. b`` (a new array, or a view of the in-memory table)."""
        a, b = max(0, a), min(self.n, b)
        if self._fh is None:
            if self._whole is None:
                self._whole = (np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]) \
                    if self._parts else np.zeros((0, self.width), np.float32)
                self._parts = [self._whole]
            return self._whole[a:b]
        out = np.empty((b - a, self.width), dtype=np.float32)
        self._fh.flush()
        self._fh.seek(a * self.width * 4)
        view = memoryview(out).cast("B")
        got = self._fh.readinto(view)
        if got != view.nbytes:
            raise OSError(f"scratch file {self._path}: short read ({got} of {view.nbytes} bytes)")
        return out

    def close(self) -> None:
        self._parts = []
        self._whole = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
            self._path = None


class _NpyWriter:
    """Writes a float32 ``(frames, dims)`` ``.npy`` block by block (shape known ahead)."""

    def __init__(self, path: str, frames: int, dims: int):
        self.path, self.frames, self.dims = path, int(frames), int(dims)
        self.n = 0
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        np.lib.format.write_array_header_1_0(
            self._fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                       "fortran_order": False, "shape": (self.frames, self.dims)})

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.n + rows.shape[0] > self.frames:
            raise RuntimeError("more rows than the announced shape")
        self._fh.write(memoryview(rows).cast("B"))
        self.n += rows.shape[0]

    def close(self, *, check: bool = True) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if check and self.n != self.frames:
            raise RuntimeError(f"{self.path}: wrote {self.n} of {self.frames} rows")


def _finite(path: str, rows: np.ndarray) -> np.ndarray:
    if not np.isfinite(rows).all():
        raise FeatureError(path, "non-finite feature values")
    return rows


class _Framer:
    """Cuts analysis frames from a stream of sample blocks, as ``_frame_pieces`` cuts them
    from the whole signal, and turns them into log-mel frames and log-energies chunk by
    chunk."""

    def __init__(self, config: FeatureConfig, sr: int, path: str):
        self.config, self.sr, self.path = config, sr, path
        self.win = config.win_samples(sr)
        self.hop = config.hop_samples(sr)
        self.n_fft = config.fft_size(sr)
        self.center = config.center
        self.pad = self.n_fft // 2 if self.center else 0
        self.off = (self.n_fft - self.win) // 2 if self.center else 0
        self.span = self.n_fft if self.center else self.win
        # chunks are analysed as snip-edges frames of explicit sizes
        self.snip = config.replace(center=False, win_length=self.win, hop_length=self.hop,
                                   n_fft=self.n_fft)
        self.rng = np.random.default_rng(config.dither_seed) if config.dither > 0 else None
        self.buf = np.zeros(0, dtype=np.float32)  # padded-stream samples from buf0 on
        self.buf0 = 0
        self.t = 0  # next frame
        self.n_in = 0  # signal samples seen
        self.head: list[np.ndarray] = []  # first samples, until the left padding is built
        self.started = not self.center
        self.tail = np.zeros(0, dtype=np.float32)  # last pad + 1 signal samples

    # the padded stream --------------------------------------------------------------
    def _push(self, x: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x

    def feed(self, y: np.ndarray):
        """Add signal samples; yield (log_mel, log_energy) chunks that are complete."""
        self.n_in += y.size
        if self.center:
            keep = self.pad + 1
            self.tail = np.concatenate([self.tail, y])[-keep:] if y.size < keep else y[-keep:].copy()
            if not self.started:
                self.head.append(y)
                got = sum(h.size for h in self.head)
                if got <= self.pad:
                    return
                first = np.concatenate(self.head)
                self.head = []
                self._push(self._left_pad(first))
                self.started = True
                y = first
        self._push(np.ascontiguousarray(y, dtype=np.float32))
        yield from self._chunks(final=False)

    def _left_pad(self, y: np.ndarray) -> np.ndarray:
        p, mode = self.pad, self.config.pad_mode
        if mode == "constant":
            return np.zeros(p, dtype=np.float32)
        if mode == "edge":
            return np.full(p, y[0], dtype=np.float32)
        return np.ascontiguousarray(y[1 : p + 1][::-1])  # reflect

    def _right_pad(self) -> np.ndarray:
        p, mode, y = self.pad, self.config.pad_mode, self.tail
        if mode == "constant":
            return np.zeros(p, dtype=np.float32)
        if mode == "edge":
            return np.full(p, y[-1], dtype=np.float32)
        return np.ascontiguousarray(y[-p - 1 : -1][::-1])  # reflect

    def finish(self):
        """Close the stream (right padding); yield the last chunk."""
        n = self.n_in
        min_samples = self.config.win_samples(self.sr)
        if n < min_samples:
            raise too_short(self.path, n, self.sr, min_samples)
        if self.center:
            if self.config.pad_mode == "reflect" and n <= self.pad:
                raise AudioError(self.path, f"y has {n} samples, too short to reflect-pad by {self.pad}")
            if not self.started:  # the whole signal is shorter than the padding
                first = np.concatenate(self.head)
                self.head = []
                self._push(self._left_pad(first))
                self._push(first)
                self.started = True
            self._push(self._right_pad())
        yield from self._chunks(final=True)

    def _chunks(self, *, final: bool):
        L = self.buf0 + self.buf.size  # padded-stream samples available
        while True:
            avail = (L - self.span) // self.hop + 1 - self.t if L >= self.span else 0
            if avail <= 0 or (not final and avail < CHUNK_FRAMES):
                return
            nf = min(avail, CHUNK_FRAMES)
            a = self.t * self.hop + self.off - self.buf0
            seg = self.buf[a : a + (nf - 1) * self.hop + self.win]
            try:
                mel, loge = log_mel_and_energy(seg, sr=self.sr, config=self.snip, rng=self.rng)
            except ValueError as exc:
                raise AudioError(self.path, str(exc)) from None
            self.t += nf
            drop = self.t * self.hop - self.buf0
            self.buf = self.buf[drop:].copy()
            self.buf0 += drop
            yield mel, loge


def streamable(config: FeatureConfig) -> bool:
    """True when the block-by-block path computes ``config``'s features: cepstra of a
    filter bank (MFCC, LFCC) without pitch, RASTA (a recursive filter over the whole
    trajectory), SDC or the per-utterance GMM VAD, and no speed perturbation (a resampling
    of the whole signal). Other front ends are computed on the whole signal (memory bounded
    by ``max_duration``)."""
    return (config.feature_type in ("mfcc", "lfcc") and config.pitch == "none"
            and not config.rasta and not config.sdc and config.vad_method == "energy"
            and config.speed == 1.0)


def _extract_whole(path, out_path, config, start, end, max_duration) -> ExtractInfo:
    from gmmspeech.audio import info as audio_info
    from gmmspeech.audio import load
    from gmmspeech.features.extract import extract

    native = int(audio_info(path).samplerate)
    y = load(path, sr=config.sample_rate, start=start, end=end, max_duration=max_duration)
    feats = np.ascontiguousarray(extract(y, config=config, sr=config.sample_rate),
                                 dtype=np.float32)
    writer = _NpyWriter(out_path, feats.shape[0], feats.shape[1])
    try:
        writer.write(_finite(path, feats))
    finally:
        writer.close()
    return ExtractInfo(int(feats.shape[0]), int(feats.shape[1]), native)


def extract_to_file(
    source: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    config: FeatureConfig | None = None,
    start: float | None = None,
    end: float | None = None,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    scratch: str | None = None,
) -> ExtractInfo:
    """Extract the features of an audio file into a float32 ``.npy``, block by block.

    Equal (to float rounding) to ``np.save(out_path, extract(source, config=config,
    start=start, end=end))``, with memory bounded by the chunk size whatever the
    file's length (see the module notes).

    Parameters
    ----------
    source : path-like
        An audio file (any format :mod:`gmmspeech.audio` reads).
    out_path : path-like
        The ``.npy`` to write (overwritten; a failed extraction removes it).
    config : FeatureConfig, optional
        Default ``FeatureConfig.preset("speech")``.
    start, end : float, optional
        Segment in seconds.
    max_duration : float or None
        Longest accepted file or segment in seconds (see :mod:`gmmspeech.audio`).
    scratch : str, optional
        Path prefix for temporary files (default: ``out_path``); they are removed
        before returning.

    Returns
    -------
    ExtractInfo
        ``frames``, ``dims`` and the file's ``native_rate``.

    Raises
    ------
    AudioError, FeatureError
        As :func:`gmmspeech.features.extract`.
    """
    config = FeatureConfig.preset("speech") if config is None else config
    if not isinstance(config, FeatureConfig):
        raise ValueError(f"config must be a FeatureConfig, got {type(config).__name__}")
    path = os.fspath(source)
    out_path = os.fspath(out_path)
    scratch = out_path if scratch is None else os.fspath(scratch)
    tables: list[_Rows] = []

    def table(width: int, name: str) -> _Rows:
        t = _Rows(width, f"{scratch}.{name}.scratch")
        tables.append(t)
        return t

    ok = False
    try:
        if streamable(config):
            info = _extract(path, out_path, config, start, end, max_duration, table)
        else:
            info = _extract_whole(path, out_path, config, start, end, max_duration)
        ok = True
        return info
    finally:
        for t in tables:
            t.close()
        if not ok:
            try:
                os.unlink(out_path)
            except FileNotFoundError:
                pass


def _extract(path, out_path, config, start, end, max_duration, table) -> ExtractInfo:
    sr = config.sample_rate
    keep_mel = config.log_type != "log" and config.top_db is not None
    # 1. cepstra (or log-mel frames) and log-energies, chunk by chunk
    with AudioStream(path, sr=sr, start=start, end=end, max_duration=max_duration) as stream:
        native = stream.native_rate
        framer = _Framer(config, sr, path)
        first = table(config.n_mels if keep_mel else config.n_mfcc, "cepstra")
        energies: list[np.ndarray] = []
        mel_max = -np.inf

        def take(chunks):
            nonlocal mel_max
            for mel, loge in chunks:
                energies.append(loge)
                if keep_mel:
                    if mel.size:
                        mel_max = max(mel_max, float(mel.max()))
                    first.append(mel)
                else:
                    first.append(cepstra(mel, loge, config=config))

        for y in stream:
            take(framer.feed(y))
        take(framer.finish())
    log_energy = np.concatenate(energies) if len(energies) != 1 else energies[0]
    energies.clear()
    n = first.n
    if keep_mel:  # the top_db floor needs the whole file's loudest band
        ceps = table(config.n_mfcc, "cepstra2")
        for b0 in range(0, n, CHUNK_FRAMES):
            b1 = min(n, b0 + CHUNK_FRAMES)
            ceps.append(cepstra(np.array(first.read(b0, b1)), log_energy[b0:b1], config=config,
                                mel_max=mel_max))
        first.close()
    else:
        ceps = first

    # 2. VAD over the whole utterance's energies
    mask = None
    if config.vad:
        mask = energy_vad(log_energy, threshold_db=config.vad_threshold_db,
                          reference=config.vad_reference, context=config.vad_context,
                          proportion=config.vad_proportion,
                          min_log_energy=math.log(config.log_floor) + 1e-3)
        if not mask.any():
            raise FeatureError(path, f"no speech frames after VAD (0 of {mask.size} frames kept)")
        if mask.all():
            mask = None
    n_kept = n if mask is None else int(mask.sum())
    dims = config.n_features

    # 3. deltas with context, VAD selection
    def kept_chunks():
        h = config.delta_width // 2
        for b0 in range(0, n, CHUNK_FRAMES):
            b1 = min(n, b0 + CHUNK_FRAMES)
            if config.deltas:
                a1 = min(n, b1 + h)
                a0 = max(0, min(b0 - h, n - config.delta_width))
                X = deltas(ceps.read(a0, a1), order=config.deltas, width=config.delta_width,
                           axis=0, mode=config.delta_mode)[b0 - a0 : b1 - a0]
            else:
                X = np.array(ceps.read(b0, b1))
            yield X if mask is None else X[mask[b0:b1]]

    writer = _NpyWriter(out_path, n_kept, dims)
    try:
        if config.cmvn == "none":
            for X in kept_chunks():
                writer.write(_finite(path, X))
        else:
            mid = table(dims, "frames")
            for X in kept_chunks():
                mid.append(X)
            ceps.close()
            _normalise(path, config, mid, writer)
    except BaseException:
        writer.close(check=False)
        raise
    writer.close()
    return ExtractInfo(n_kept, dims, native)


def _normalise(path: str, config: FeatureConfig, mid: _Rows, writer: _NpyWriter) -> None:
    """4. Normalisation of the kept frames (``mid``) into ``writer``."""
    n = mid.n
    chunks = [(b0, min(n, b0 + CHUNK_FRAMES)) for b0 in range(0, n, CHUNK_FRAMES)]
    if config.cmvn == "utterance":
        total = np.zeros(mid.width)
        for b0, b1 in chunks:
            total += mid.read(b0, b1).astype(np.float64).sum(axis=0)
        mean = total / n
        var = None
        if config.cmvn_norm_vars:
            sq = np.zeros(mid.width)
            for b0, b1 in chunks:
                sq += np.square(mid.read(b0, b1).astype(np.float64) - mean).sum(axis=0)
            var = sq / n
        for b0, b1 in chunks:
            out = mid.read(b0, b1).astype(np.float64)
            out -= mean
            if var is not None:
                out /= np.sqrt(np.maximum(var, _VAR_FLOOR))
            writer.write(_finite(path, out.astype(np.float32)))
        return
    window = config.default_cmvn_window()
    if config.cmvn == "sliding":
        start, end = sliding_window_bounds(n, window, center=config.cmvn_center)
        ref = None
        if config.cmvn_norm_vars:
            total = np.zeros(mid.width)
            for b0, b1 in chunks:
                total += mid.read(b0, b1).astype(np.float64).sum(axis=0)
            ref = total / n
        for b0, b1 in chunks:
            lo, hi = int(start[b0:b1].min()), int(end[b0:b1].max())
            lo, hi = min(lo, b0), max(hi, b1)
            rows = mid.read(lo, hi).astype(np.float64)
            out = sliding_cmvn_rows(rows, lo, b0, start[b0:b1], end[b0:b1],
                                    norm_vars=config.cmvn_norm_vars, ref=ref)
            writer.write(_finite(path, out.astype(np.float32)))
        return
    # feature warping
    N = min(window, n)
    start, _ = sliding_window_bounds(n, N, center=True)
    for b0, b1 in chunks:
        lo, hi = min(int(start[b0:b1].min()), b0), max(int(start[b0:b1].max()) + N, b1)
        out = feature_warping_rows(mid.read(lo, hi), lo, b0, start[b0:b1], N)
        writer.write(_finite(path, out.astype(np.float32)))
