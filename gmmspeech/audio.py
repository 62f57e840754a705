"""Reading audio files into mono float32 signals.

Everything libsndfile decodes (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...) is read through
:mod:`soundfile`; any sampling rate is resampled with :func:`librosa.resample`
(soxr); channels are averaged to mono. A segment (``start``/``end`` in seconds) is read
by seeking, so only that part of the file is decoded (MP3 excepted: libsndfile's MP3
seeking is not sample-exact, so an MP3 segment is decoded from the start of the file
up to ``end`` in one read and the head is discarded).

Every problem is reported as :class:`gmmspeech.errors.AudioError` naming the file and
the reason: missing, not a regular file, empty, not audio, unreadable or corrupt
(including truncated files), no samples, non-finite samples, shorter than the minimum
length, or a segment out of range.

Segment rules
-------------
* ``start`` must be >= 0 and lie before the end of the file.
* ``end`` must be > ``start``. An ``end`` up to ``max_overshoot`` seconds (default 0.5 s,
  as Kaldi's ``extract-segments --max-overshoot``) past the end of the file is clipped to
  the end of the file; further past it is an error.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from gmmspeech.errors import AudioError

#: Lowest sampling rate :func:`load` accepts: a header claiming less is corrupt or not
#: speech, and resampling it would inflate a tiny file into a huge array.
MIN_SAMPLE_RATE = 1000

__all__ = ["AudioInfo", "info", "load", "DEFAULT_MIN_DURATION", "DEFAULT_MAX_OVERSHOOT"]

#: Default minimum signal length: one 25 ms analysis frame.
DEFAULT_MIN_DURATION = 0.025
#: Default tolerance (seconds) for a segment ``end`` past the end of the file.
DEFAULT_MAX_OVERSHOOT = 0.5
_UNEXACT_SEEK_FORMATS = frozenset({"MP3", "MPEG"})


class AudioInfo(NamedTuple):
    """What an audio file holds, from its header.

    Attributes
    ----------
    samplerate : int
        Sampling rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel.
    duration : float
        ``frames / samplerate`` in seconds.
    """

    samplerate: int
    channels: int
    frames: int
    duration: float


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "missing (no such file)")
    if not os.path.isfile(path):
        raise AudioError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "unreadable (permission denied)")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _open(path: str):
    import soundfile as sf

    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        msg = str(exc.error_string) if getattr(exc, "error_string", None) else str(exc)
        if "not recognised" in msg.lower() or "unknown format" in msg.lower():
            raise AudioError(path, f"not audio (format not recognised by libsndfile: {msg})") from None
        raise AudioError(path, f"unreadable or corrupt ({msg})") from None
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(path, f"unreadable or corrupt ({exc})") from None


def info(path: str | os.PathLike) -> AudioInfo:
    """Sampling rate, channels, length and duration of an audio file (header only).

    Parameters
    ----------
    path : path-like
        The audio file.

    Returns
    -------
    AudioInfo

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


def _segment_frames(path: str, n_file: int, sr_file: int, start, end, max_overshoot: float):
    """Turn start/end seconds into a [first, last) frame range of the file."""
    duration = n_file / sr_file
    s = 0.0 if start is None else float(start)
    if not math.isfinite(s):
        raise AudioError(path, f"segment start {start!r} is not a finite number")
    if s < 0:
        raise AudioError(path, f"segment start {s:g} s is negative")
    first = int(round(s * sr_file))
    if first >= n_file:
        raise AudioError(
            path, f"segment start {s:g} s is at or past the end of the file ({duration:g} s)"
        )
    if end is None:
        return first, n_file
    e = float(end)
    if not math.isfinite(e):
        raise AudioError(path, f"segment end {end!r} is not a finite number")
    if e <= s:
        raise AudioError(path, f"segment end {e:g} s is not after its start {s:g} s")
    if e > duration + max_overshoot:
        raise AudioError(
            path,
            f"segment end {e:g} s is past the end of the file ({duration:g} s) by more than "
            f"{max_overshoot:g} s",
        )
    last = min(int(round(e * sr_file)), n_file)
    if last <= first:
        raise AudioError(path, f"segment {s:g}-{e:g} s holds no samples")
    return first, last


def _read(path: str, f, first: int, count: int) -> np.ndarray:
    """Read ``count`` frames from ``first`` as (count, channels) float32."""
    import soundfile as sf

    try:
        if f.format in _UNEXACT_SEEK_FORMATS:
            # libsndfile's MP3 seeking is not sample-exact and consecutive reads can lose
            # sync, so decode from the start in one read and drop the head.
            data = f.read(first + count, dtype="float32", always_2d=True)[first:]
        else:
            if first > 0:
                f.seek(first)
            data = f.read(count, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(path, f"corrupt or truncated ({exc.error_string})") from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioError(path, f"corrupt or truncated ({exc})") from None
    if data.shape[0] < count:
        raise AudioError(
            path,
            f"truncated or corrupt: header promises {count} frames from frame {first}, "
            f"decoded {data.shape[0]}",
        )
    return data


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = 16000,
    start: float | None = None,
    end: float | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    min_samples: int | None = None,
    max_overshoot: float = DEFAULT_MAX_OVERSHOOT,
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
        is decoded. See the module notes for the range rules.
    min_duration : float or None, default 0.025
        Shortest acceptable output, in seconds (one 25 ms analysis frame by default).
        :func:`gmmspeech.features.extract` passes its configuration's frame length.
    min_samples : int or None
        Shortest acceptable output in samples at the output rate; with ``min_duration``
        the stricter of the two applies. A signal needs at least one sample in any case.
    max_overshoot : float, default 0.5
        How far (seconds) ``end`` may lie past the end of the file and be clipped.
    res_type : str, default "soxr_hq"
        Resampler passed to :func:`librosa.resample`.

    Returns
    -------
    y : np.ndarray, shape (n,), float32
        Mono samples in [-1, 1] for integer formats (float files are passed through).

    Raises
    ------
    AudioError
        Missing, empty, not audio, unreadable or corrupt file; no samples; non-finite
        samples; too short; segment out of range.
    """
    path = os.fspath(path)
    if sr is not None:
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ValueError(f"sr must be a positive integer or None, got {sr!r}")
        sr = int(sr)
    if min_duration is not None and not (min_duration >= 0):
        raise ValueError(f"min_duration must be >= 0 or None, got {min_duration!r}")
    if min_samples is not None and not (min_samples >= 0):
        raise ValueError(f"min_samples must be >= 0 or None, got {min_samples!r}")
    if not (max_overshoot >= 0):
        raise ValueError(f"max_overshoot must be >= 0, got {max_overshoot!r}")

    _check_file(path)
    with _open(path) as f:
        sr_file, n_file = int(f.samplerate), int(f.frames)
        if sr_file < MIN_SAMPLE_RATE:
            raise AudioError(
                path,
                f"implausible sampling rate {sr_file} Hz in header "
                f"(speech audio needs at least {MIN_SAMPLE_RATE} Hz)",
            )
        if n_file <= 0:
            raise AudioError(path, "no samples (empty audio stream)")
        first, last = _segment_frames(path, n_file, sr_file, start, end, max_overshoot)
        data = _read(path, f, first, last - first)

    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0]) + first
        raise AudioError(path, f"non-finite samples (NaN or Inf), first at sample {bad}")

    out_sr = sr_file if sr is None else sr
    if out_sr != sr_file:
        y = resample(y, orig_sr=sr_file, target_sr=out_sr, res_type=res_type)

    need = 1
    if min_duration is not None:
        need = max(need, int(math.ceil(min_duration * out_sr - 1e-9)))
    if min_samples is not None:
        need = max(need, int(min_samples))
    if y.size < need:
        raise AudioError(
            path,
            f"too short: {y.size} samples at {out_sr} Hz ({y.size / out_sr:.4f} s), "
            f"need at least {need} (one analysis frame)",
        )
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
