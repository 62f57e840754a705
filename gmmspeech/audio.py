"""Reading audio files into mono float32 signals, whole or block by block.

Everything libsndfile decodes (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...) is read through
:mod:`soundfile` in blocks of bounded size; any sampling rate is resampled with soxr
(the samples of :func:`librosa.resample` with ``res_type="soxr_hq"``, streamed);
channels are averaged to mono. :func:`load` returns the whole signal, :class:`AudioStream`
yields it block by block (memory bounded by the block size whatever the file's length).

Lengths
-------
The header never sizes an allocation: the decoder is read until it stops, in blocks.

* PCM, FLAC and Ogg containers state their length exactly. A file that holds less than
  its header promises is reported as truncated: a WAV/AIFF/AU whose data chunk is cut
  off, a FLAC or Ogg stream that ends early.
* libsndfile's length of an MP3 is an estimate (from the file size and the first frame's
  bit rate unless a Xing/LAME header gives it; encoder delay and padding change it by a
  frame or two). MP3s are decoded as a stream, to the decoder's real end, and only a
  decoder error counts as corruption.
* ``max_duration`` (seconds, default :data:`DEFAULT_MAX_DURATION`) bounds one file:
  a header that promises more fails at once, and an MP3 (whose header is an estimate)
  fails as soon as its decoded length passes the limit.

Every problem is reported as :class:`gmmspeech.errors.AudioError` naming the file and
the reason: missing, not a regular file (folder, FIFO, device), symlink loop, unreadable,
empty, not audio, corrupt or truncated, no samples, non-finite or implausibly large
samples, longer than the maximum duration, shorter than the minimum length, or a segment
out of range.

Segment rules
-------------
* ``start`` must be >= 0 and lie before the end of the file.
* ``end`` must be > ``start``. An ``end`` up to ``max_overshoot`` seconds (default 0.5 s,
  as Kaldi's ``extract-segments --max-overshoot``) past the end of the file is clipped to
  the end of the file; further past it is an error.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import threading
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from gmmspeech.errors import AudioError

#: Lowest sampling rate :func:`load` accepts: a header claiming less is corrupt or not
#: speech, and resampling it would inflate a tiny file into a huge array.
MIN_SAMPLE_RATE = 1000
#: Highest sampling rate accepted (the highest rate of common audio hardware).
MAX_SAMPLE_RATE = 384_000
#: Default longest file (or segment), in seconds: 4 hours.
DEFAULT_MAX_DURATION = 4 * 3600.0
#: Largest accepted absolute sample value. Integer formats decode to [-1, 1]; float files
#: may hold unnormalised values (e.g. on the int16 scale), but beyond this the file is
#: corrupt and its powers overflow float32.
MAX_ABS_SAMPLE = 1.0e6
#: Samples (frames x channels) decoded per block.
BLOCK_SAMPLES = 1 << 18

__all__ = [
    "AudioInfo",
    "AudioStream",
    "info",
    "load",
    "resample",
    "speed_perturb",
    "DEFAULT_MIN_DURATION",
    "DEFAULT_MAX_OVERSHOOT",
    "DEFAULT_MAX_DURATION",
]

#: Default minimum signal length: one 25 ms analysis frame.
DEFAULT_MIN_DURATION = 0.025
#: Default tolerance (seconds) for a segment ``end`` past the end of the file.
DEFAULT_MAX_OVERSHOOT = 0.5
#: Formats whose libsndfile length is the decoder's estimate, not a container field.
_ESTIMATED_LENGTH_FORMATS = frozenset({"MP3", "MPEG"})
#: Header sizes that streaming writers leave when they cannot seek back: not truncation.
_PLACEHOLDER_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 7})


class AudioInfo(NamedTuple):
    """What an audio file holds, from its header.

    Attributes
    ----------
    samplerate : int
        Sampling rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel (for MP3 libsndfile's estimate).
    duration : float
        ``frames / samplerate`` in seconds.
    """

    samplerate: int
    channels: int
    frames: int
    duration: float


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(path, "symlink loop (too many levels of symbolic links)") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                raise AudioError(path, "missing (dangling symbolic link)") from None
            raise AudioError(path, "missing (no such file)") from None
        raise AudioError(path, f"unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise AudioError(path, f"not a regular file ({kind})")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "unreadable (permission denied)")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _libsndfile_error(path: str, exc: Exception, what: str) -> AudioError:
    msg = str(getattr(exc, "error_string", "") or exc)
    low = msg.lower()
    if "not recognised" in low or "unknown format" in low or "format not recognised" in low:
        return AudioError(path, f"not audio (format not recognised by libsndfile: {msg})")
    return AudioError(path, f"{what} ({msg})")


def _open(path: str):
    import soundfile as sf

    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        raise _libsndfile_error(path, exc, "unreadable or corrupt") from None
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(path, f"unreadable or corrupt ({exc})") from None


def info(path: str | os.PathLike) -> AudioInfo:
    """Sampling rate, channels, length and duration of an audio file (header only).

    For MP3 the length is libsndfile's estimate (see the module notes).

    Raises
    ------
    AudioError
        The file is missing, empty, not audio or unreadable.
    """
    path = os.fspath(path)
    _check_file(path)
    with _open(path) as f:
        sr, ch, n = int(f.samplerate), int(f.channels), int(f.frames)
    if sr <= 0:
        raise AudioError(path, f"invalid sampling rate {sr} in header")
    return AudioInfo(sr, ch, n, n / sr)


def _fmt_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.4g} s"


def _cut_container(path: str, log: str, block_align: int) -> str | None:
    """The reason a PCM container holds less data than its header declares, or None.

    libsndfile sizes PCM reads by the file's real length and notes the header's
    claim in its log (``data : 48000 (should be 23978)`` for WAV/AU, the ``COMM`` frame
    count for AIFF, the ``ds64`` count for RF64); the shortfall is otherwise silent.
    """
    m = re.search(r"\bdata(?: size)?\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.I)
    if m:
        declared, actual = int(m.group(1)), int(m.group(2))
        if declared not in _PLACEHOLDER_SIZES and declared - actual >= max(1, block_align):
            return (f"truncated: the header declares {declared} bytes of audio data, the file "
                    f"holds {actual} ({100.0 * actual / declared:.0f} %)")
    m = re.search(r"frame count read from '(\w+)' chunk \((\d+)\) not equal to frame count\s*"
                  r"\*{0,3}\s*calculated from length of '\w+' chunk \((\d+)\)", log, re.I)
    if m and int(m.group(2)) > int(m.group(3)):
        return (f"truncated: the header declares {m.group(2)} frames, the file holds "
                f"{m.group(3)}")
    m = re.search(r"calculated frame count (\d+) does not match value from '\w+' chunk of (\d+)",
                  log, re.I)
    if m and int(m.group(2)) > int(m.group(1)):
        return (f"truncated: the header declares {m.group(2)} frames, the file holds "
                f"{m.group(1)}")
    return None


class _Pipe:
    """Feed a file to libsndfile through a pipe, so its MP3 decoder runs as a stream.

    On a pipe libsndfile's mpg123 decoder does not estimate a length from the file size
    (it knows one only from a Xing/LAME header) and decodes to the real end.
    """

    def __init__(self, path: str):
        self.path = path
        self.read_fd, self._write_fd = os.pipe()
        self._thread = threading.Thread(target=self._pump, name="gmmspeech-audio-pipe",
                                        daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            with open(self.path, "rb") as src, os.fdopen(self._write_fd, "wb") as dst:
                while True:
                    chunk = src.read(1 << 16)
                    if not chunk:
                        break
                    dst.write(chunk)
        except OSError:  # the reader closed its end (error, enough decoded) or a read failed
            pass

    def join(self) -> None:
        self._thread.join(timeout=10)


class AudioStream:
    """A file's mono float32 samples at rate ``sr``, as an iterator of blocks.

    Memory is bounded by the block size (about :data:`BLOCK_SAMPLES` decoded samples)
    whatever the file's length or what its header claims. Use as a context manager;
    iterate once. After the iteration ``n_samples`` is the number of output samples.

    Parameters
    ----------
    path : path-like
    sr : int or None, default 16000
        Output rate (``None``: the file's own). Resampling streams through soxr and gives
        the samples of :func:`resample` on the whole signal.
    start, end : float or None
        Segment in seconds (module notes).
    max_duration : float or None
        Longest accepted file or segment in seconds (``None``: no limit).
    max_overshoot : float
        How far ``end`` may lie past the end of the file and be clipped.
    res_type : str
        A soxr quality (``"soxr_hq"`` ...); other librosa resamplers need the whole
        signal and are applied by :func:`load` only.

    Attributes
    ----------
    native_rate, channels, out_rate : int
    format : str
        libsndfile's format name (``"WAV"``, ``"FLAC"``, ``"MP3"``, ...).
    header_frames : int or None
        The length the header states (None when it is only an estimate).
    """

    def __init__(self, path, *, sr: int | None = 16000, start: float | None = None,
                 end: float | None = None, max_duration: float | None = DEFAULT_MAX_DURATION,
                 max_overshoot: float = DEFAULT_MAX_OVERSHOOT, res_type: str = "soxr_hq"):
        self.path = os.fspath(path)
        if sr is not None:
            if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
                raise ValueError(f"sr must be a positive integer or None, got {sr!r}")
            sr = int(sr)
        if not (max_overshoot >= 0):
            raise ValueError(f"max_overshoot must be >= 0, got {max_overshoot!r}")
        if max_duration is not None and not (max_duration > 0):
            raise ValueError(f"max_duration must be > 0 or None, got {max_duration!r}")
        self.max_duration = None if max_duration is None else float(max_duration)
        self.max_overshoot = float(max_overshoot)
        self.res_type = res_type
        self.n_samples = 0
        self._f = None
        self._pipe = None
        self._used = False
        _check_file(self.path)
        f = _open(self.path)
        try:
            self.native_rate, self.channels = int(f.samplerate), int(f.channels)
            self.format, self.subtype = str(f.format), str(f.subtype)
            header = int(f.frames)
            self._log = f.extra_info if self.format not in _ESTIMATED_LENGTH_FORMATS else ""
        except BaseException:
            f.close()
            raise
        self._f = f
        self.out_rate = self.native_rate if sr is None else sr
        if not MIN_SAMPLE_RATE <= self.native_rate <= MAX_SAMPLE_RATE:
            self.close()
            raise AudioError(self.path, f"implausible sampling rate {self.native_rate} Hz in header "
                                        f"(accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
        if self.channels < 1:
            self.close()
            raise AudioError(self.path, f"implausible channel count {self.channels} in header")
        self.estimated = self.format in _ESTIMATED_LENGTH_FORMATS
        self.header_frames = None if self.estimated else header
        self._start, self._end = start, end
        try:
            self._first, self._last = self._segment()
            if self.estimated:  # decode as a stream to the real end (module notes)
                self._f.close()
                self._f = None
                self._pipe = _Pipe(self.path)
                import soundfile as sf

                try:
                    self._f = sf.SoundFile(self._pipe.read_fd, closefd=True)
                except sf.LibsndfileError as exc:
                    os.close(self._pipe.read_fd)
                    raise _libsndfile_error(self.path, exc, "unreadable or corrupt") from None
            elif header <= 0:
                raise AudioError(self.path, "no samples (empty audio stream)")
            else:
                cut = _cut_container(self.path, self._log, self._block_align())
                if cut is not None:
                    raise AudioError(self.path, cut)
                self._check_length(self._last - self._first, promised=True)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ set-up
    def _block_align(self) -> int:
        bits = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
                "DOUBLE": 8, "ULAW": 1, "ALAW": 1}.get(self.subtype, 1)
        return bits * self.channels

    def _segment(self) -> tuple[int, int | None]:
        """[first, last) input frames of the segment (last None: to the end)."""
        path, sr_file = self.path, self.native_rate
        start, end = self._start, self._end
        s = 0.0 if start is None else float(start)
        if not math.isfinite(s):
            raise AudioError(path, f"segment start {start!r} is not a finite number")
        if s < 0:
            raise AudioError(path, f"segment start {s:g} s is negative")
        e = None
        if end is not None:
            e = float(end)
            if not math.isfinite(e):
                raise AudioError(path, f"segment end {end!r} is not a finite number")
            if e <= s:
                raise AudioError(path, f"segment end {e:g} s is not after its start {s:g} s")
        first = int(round(s * sr_file))
        last = None if e is None else int(round(e * sr_file))
        if self.header_frames is not None:  # exact length: check the range now
            n_file = self.header_frames
            self._check_range(s, e, first, last, n_file)
            last = n_file if last is None else min(last, n_file)
        elif last is not None and last <= first:
            raise AudioError(path, f"segment {s:g}-{e:g} s holds no samples")
        return first, last

    def _check_range(self, s, e, first, last, n_file) -> None:
        duration = n_file / self.native_rate
        if first >= n_file:
            raise AudioError(self.path, f"segment start {s:g} s is at or past the end of the file "
                                        f"({duration:g} s)")
        if e is not None:
            if e > duration + self.max_overshoot:
                raise AudioError(
                    self.path, f"segment end {e:g} s is past the end of the file ({duration:g} s) "
                               f"by more than {self.max_overshoot:g} s")
            if min(last, n_file) <= first:
                raise AudioError(self.path, f"segment {s:g}-{e:g} s holds no samples")

    def _check_length(self, n_frames: int, *, promised: bool) -> None:
        if self.max_duration is None:
            return
        limit = self.max_duration * self.native_rate
        if n_frames > limit:
            what = ("the header promises " if promised else "decoded more than ")
            raise AudioError(
                self.path,
                f"longer than the maximum duration {_fmt_duration(self.max_duration)}: "
                f"{what}{n_frames} frames ({_fmt_duration(n_frames / self.native_rate)}) at "
                f"{self.native_rate} Hz in a file of {os.path.getsize(self.path)} bytes "
                "(corrupt header, or raise max_duration / --max-duration)",
            )

    # ------------------------------------------------------------------ reading
    def _read_into(self, buf: np.ndarray) -> int:
        import soundfile as sf

        try:
            if self._pipe is not None:
                # soundfile's read() seeks after reading, which a pipe cannot do
                n = sf._snd.sf_readf_float(self._f._file, sf._ffi.cast("float *", buf.ctypes.data),
                                           buf.shape[0])
                err = sf._snd.sf_error(self._f._file)
                if err:
                    msg = sf._ffi.string(sf._snd.sf_error_number(err)).decode("utf-8", "replace")
                    raise AudioError(self.path, f"corrupt: the MP3 decoder stopped with an error ({msg})")
                return int(n)
            return int(self._f.read(buf.shape[0], dtype="float32", always_2d=True, out=buf).shape[0])
        except sf.LibsndfileError as exc:
            raise _libsndfile_error(self.path, exc, "corrupt or truncated") from None
        except (RuntimeError, OSError, ValueError) as exc:
            raise AudioError(self.path, f"corrupt or truncated ({exc})") from None

    def _raw_blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks of the segment at the file's rate, with all checks."""
        first, last = self._first, self._last
        block = max(256, BLOCK_SAMPLES // self.channels)
        buf = np.empty((block, self.channels), dtype=np.float32)
        pos = 0  # input frames decoded so far (from frame 0 for a stream)
        if first > 0 and self._pipe is None:
            try:
                self._f.seek(first)
            except Exception as exc:  # noqa: BLE001 - any seek failure is a corrupt file
                raise AudioError(self.path, f"corrupt or truncated (cannot seek to frame {first}: "
                                            f"{exc})") from None
            pos = first
        n_out = 0
        while last is None or pos < last:
            want = block if last is None else min(block, last - pos)
            got = self._read_into(buf[:want])
            if got <= 0:
                break
            data = buf[:got]
            lo = max(0, first - pos)  # drop the head of a stream before the segment start
            pos += got
            if lo >= got:
                continue
            data = data[lo:]
            y = data[:, 0] if self.channels == 1 else data.mean(axis=1, dtype=np.float32)
            y = np.array(y, dtype=np.float32, copy=True)
            amax = float(np.max(np.abs(y))) if y.size else 0.0
            if not math.isfinite(amax):
                bad = int(np.flatnonzero(~np.isfinite(y))[0]) + pos - y.size
                raise AudioError(self.path, f"non-finite samples (NaN or Inf), first at sample {bad}")
            if amax > MAX_ABS_SAMPLE:
                bad = int(np.flatnonzero(np.abs(y) > MAX_ABS_SAMPLE)[0]) + pos - y.size
                raise AudioError(self.path, f"implausible sample value {y[bad - pos + y.size]:.3g} at "
                                            f"sample {bad} (audio should lie within +-1; "
                                            f"accepted up to +-{MAX_ABS_SAMPLE:g})")
            n_out += y.size
            if self.estimated:
                self._check_length(n_out, promised=False)
            yield y
        # the end: a stream's segment range, a container's promise
        if self.header_frames is None:
            if first >= pos:
                raise AudioError(self.path, f"segment start {first / self.native_rate:g} s is at or past "
                                            f"the end of the file ({pos / self.native_rate:g} s)"
                                 if first > 0 else "no samples (empty audio stream)")
            if self._end is not None:
                e = float(self._end)
                if e > pos / self.native_rate + self.max_overshoot:
                    raise AudioError(
                        self.path, f"segment end {e:g} s is past the end of the file "
                                   f"({pos / self.native_rate:g} s) by more than "
                                   f"{self.max_overshoot:g} s")
        elif pos < last:
            raise AudioError(
                self.path, f"truncated or corrupt: header promises {last - first} frames from frame "
                           f"{first}, decoded {pos - first}")

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._used:
            raise RuntimeError("an AudioStream can be iterated once")
        self._used = True
        if self._f is None:
            raise RuntimeError("the AudioStream is closed")
        if self.out_rate == self.native_rate:
            for y in self._raw_blocks():
                self.n_samples += y.size
                yield y
            return
        if not self.res_type.startswith("soxr_"):
            raise ValueError(f"res_type={self.res_type!r} cannot stream; use a soxr quality or load()")
        import soxr

        rs = soxr.ResampleStream(self.native_rate, self.out_rate, 1, dtype="float32",
                                 quality=self.res_type[len("soxr_"):].upper())
        n_in = 0
        for y in self._raw_blocks():
            n_in += y.size
            out = rs.resample_chunk(y, last=False)
            if out.size:
                self.n_samples += out.size
                yield np.ascontiguousarray(out, dtype=np.float32)
        tail = rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        # the length of librosa.resample / resample(): ceil(n * out / in)
        want = int(math.ceil(n_in * float(self.out_rate) / self.native_rate)) - self.n_samples
        tail = tail[:max(0, want)]
        if tail.size < want:
            tail = np.concatenate([tail, np.zeros(want - tail.size, dtype=np.float32)])
        if tail.size:
            self.n_samples += tail.size
            yield np.ascontiguousarray(tail, dtype=np.float32)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - closing a broken decoder must not mask the error
                pass
            self._f = None
        if self._pipe is not None:
            self._pipe.join()
            self._pipe = None

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def min_output_samples(out_sr: int, min_duration: float | None, min_samples: int | None) -> int:
    """The shortest accepted signal in samples at ``out_sr`` (at least one)."""
    need = 1
    if min_duration is not None:
        need = max(need, int(math.ceil(min_duration * out_sr - 1e-9)))
    if min_samples is not None:
        need = max(need, int(min_samples))
    return need


def too_short(path, n: int, out_sr: int, need: int) -> AudioError:
    return AudioError(
        path,
        f"too short: {n} samples at {out_sr} Hz ({n / out_sr:.4f} s), need at least {need} "
        "(one analysis frame)",
    )


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = 16000,
    start: float | None = None,
    end: float | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    min_samples: int | None = None,
    max_overshoot: float = DEFAULT_MAX_OVERSHOOT,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    res_type: str = "soxr_hq",
) -> np.ndarray:
    """Read an audio file (or a segment of it) as a mono float32 signal.

    Parameters
    ----------
    path : path-like
        Audio file in any format libsndfile reads (WAV, FLAC, OGG, MP3, ...).
    sr : int or None, default 16000
        Output sampling rate; the signal is resampled (soxr) when the file differs.
        ``None`` keeps the file's own rate.
    start, end : float or None
        Segment bounds in seconds (``None``: start / end of the file). Only the segment
        is decoded (an MP3 is decoded from its start). See the module notes.
    min_duration : float or None, default 0.025
        Shortest acceptable output, in seconds (one 25 ms analysis frame by default).
    min_samples : int or None
        Shortest acceptable output in samples at the output rate; with ``min_duration``
        the stricter of the two applies. A signal needs at least one sample in any case.
    max_overshoot : float, default 0.5
        How far (seconds) ``end`` may lie past the end of the file and be clipped.
    max_duration : float or None, default 4 hours
        Longest accepted file or segment (``None``: no limit); see the module notes.
    res_type : str, default "soxr_hq"
        Resampler passed to :func:`librosa.resample`.

    Returns
    -------
    y : np.ndarray, shape (n,), float32
        Mono samples in [-1, 1] for integer formats (float files are passed through).

    Raises
    ------
    AudioError
        Missing, empty, not audio, unreadable, corrupt or truncated file; no samples;
        non-finite or implausible samples; too long; too short; segment out of range.
    """
    path = os.fspath(path)
    if min_duration is not None and not (min_duration >= 0):
        raise ValueError(f"min_duration must be >= 0 or None, got {min_duration!r}")
    if min_samples is not None and not (min_samples >= 0):
        raise ValueError(f"min_samples must be >= 0 or None, got {min_samples!r}")
    streaming = res_type.startswith("soxr_")
    with AudioStream(path, sr=sr if streaming else None, start=start, end=end,
                     max_duration=max_duration, max_overshoot=max_overshoot,
                     res_type=res_type) as stream:
        blocks = list(stream)
        out_sr = sr if sr is not None else stream.native_rate
        native = stream.native_rate
    y = (blocks[0] if len(blocks) == 1 else np.concatenate(blocks) if blocks
         else np.zeros(0, dtype=np.float32))
    del blocks
    if not streaming and out_sr != native:
        y = resample(y, orig_sr=native, target_sr=out_sr, res_type=res_type)
    need = min_output_samples(out_sr, min_duration, min_samples)
    if y.size < need:
        raise too_short(path, y.size, out_sr, need)
    return y


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int, res_type: str = "soxr_hq") -> np.ndarray:
    """Resample a 1-D signal to ``target_sr``, as ``librosa.resample`` does.

    The soxr qualities (``"soxr_vhq"``, ``"soxr_hq"``, ``"soxr_mq"``, ``"soxr_lq"``,
    ``"soxr_qq"``) call soxr directly: the same samples as librosa (length
    ``ceil(n * target_sr / orig_sr)``) without importing librosa, which costs seconds
    in every fresh worker process. Other ``res_type`` values go through librosa.
    """
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    n_out = int(math.ceil(y.shape[-1] * float(target_sr) / orig_sr))
    if res_type.startswith("soxr_"):
        import soxr

        out = soxr.resample(y, orig_sr, target_sr, quality=res_type[len("soxr_"):].upper())
    else:
        import librosa

        out = librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type)
    if out.shape[-1] > n_out:
        out = out[..., :n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return np.ascontiguousarray(out, dtype=np.float32)


def speed_perturb(y: np.ndarray, *, sr: int, factor: float, res_type: str = "soxr_hq") -> np.ndarray:
    """Kaldi's speed perturbation (``sox speed``): ``y`` resampled so that, played at ``sr``,
    it runs ``factor`` times faster.

    The samples are taken as if recorded at ``round(sr * factor)`` Hz and resampled to
    ``sr``: the length becomes ``ceil(n / factor)`` and every frequency (pitch, formants)
    is multiplied by ``factor``. Kaldi's recipes train on factors 0.9, 1.0 and 1.1.

    Raises
    ------
    ValueError
        ``factor`` not positive.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ValueError(f"speed_perturb: factor must be a positive number, got {factor!r}")
    src = int(round(sr * float(factor)))
    return resample(y, orig_sr=src, target_sr=int(sr), res_type=res_type)
