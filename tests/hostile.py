"""Builders of hostile audio files, as real corpora and careless tools produce them.

Every builder writes one file (or file-system object) and returns its path. Used by
``test_audio.py`` (one case each) and ``test_bad_input.py`` (a whole hostile corpus
through ``gmmspeech features`` and ``gmmspeech speaker-id``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(sr: int, seconds: float, f: float = 300.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t))).astype(np.float32)


def _blank_length_tag(raw: bytes) -> bytes:
    """Blank the Xing/Info tag of LAME's first frame: libsndfile must then estimate the length."""
    for tag in (b"Xing", b"Info"):
        p = raw.find(tag, 0, 200)
        if p >= 0:
            return raw[:p] + b"\0\0\0\0" + raw[p + 4:]
    return raw  # LAME wrote no length tag (e.g. CBR at 8 kHz): the length is an estimate already


def mp3_like_common_voice(path: Path, y: np.ndarray, sr: int, compression_level: float = 0.9) -> Path:
    """A constant-bit-rate MP3 (LAME through libsndfile) with an ID3v2 tag in front and no
    Xing/Info length tag: libsndfile's length is then an estimate from the file size, larger
    than what the decoder gives (as for Common Voice clips). ``compression_level`` 0.9 gives
    about 56 kbit/s at 32 kHz (Common Voice: 48)."""
    tmp = Path(str(path) + ".enc.mp3")
    sf.write(tmp, y, sr, format="MP3", bitrate_mode="CONSTANT", compression_level=compression_level)
    raw = _blank_length_tag(tmp.read_bytes())
    tmp.unlink()
    size = 2000  # ID3v2.3 header with a padding-only tag body (synchsafe size)
    ss = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    Path(path).write_bytes(b"ID3\x03\x00\x00" + ss + b"\0" * size + raw)
    return Path(path)


def mp3_vbr_without_length(path: Path, y: np.ndarray, sr: int) -> Path:
    """A variable-bit-rate MP3 whose Xing tag is gone (as from a streaming encoder): the
    length libsndfile estimates from the first frame is far too short."""
    tmp = Path(str(path) + ".enc.mp3")
    sf.write(tmp, y, sr, format="MP3", bitrate_mode="VARIABLE")
    Path(path).write_bytes(_blank_length_tag(tmp.read_bytes()))
    tmp.unlink()
    return Path(path)


def wav_cut_off(path: Path, y: np.ndarray, sr: int, keep: float = 0.5) -> Path:
    """A 16-bit WAV whose data chunk is cut off after ``keep`` of it (header untouched)."""
    sf.write(path, y, sr, subtype="PCM_16")
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[: 44 + int((len(raw) - 44) * keep) // 2 * 2])
    return Path(path)


def flac_header_lie(path: Path, y: np.ndarray, sr: int, frames: int = (1 << 36) - 1) -> Path:
    """A valid FLAC whose STREAMINFO claims ``frames`` samples (2^36 - 1: the field's maximum)."""
    sf.write(path, y, sr, format="FLAC", subtype="PCM_16")
    raw = bytearray(Path(path).read_bytes())
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO first
    off = 8 + 10  # after min/max block size (2+2) and min/max frame size (3+3)
    bits = int.from_bytes(raw[off:off + 8], "big")
    bits = (bits & ~((1 << 36) - 1)) | (frames & ((1 << 36) - 1))
    raw[off:off + 8] = bits.to_bytes(8, "big")
    raw[26:42] = b"\0" * 16  # no MD5 to check against
    Path(path).write_bytes(bytes(raw))
    return Path(path)


def wav_sparse_giant(path: Path, sr: int = 16000, frames: int = 10**9, seconds: float = 1.0) -> Path:
    """A 16-bit WAV whose header promises ``frames`` samples; the file has that size but is
    sparse: a second of noise, then a hole (no disk space used)."""
    hdr = (b"RIFF" + struct.pack("<I", 36 + 2 * frames) + b"WAVE" + b"fmt "
           + struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16) + b"data" + struct.pack("<I", 2 * frames))
    noise = (np.random.default_rng(0).standard_normal(int(sr * seconds)) * 3000).astype("<i2")
    with open(path, "wb") as fh:
        fh.write(hdr)
        fh.write(noise.tobytes())
        fh.truncate(44 + 2 * frames)
    return Path(path)


def float_wav_with(path: Path, y: np.ndarray, sr: int, index: int, value: float) -> Path:
    """A float WAV holding ``value`` (NaN, Inf, 1e30, ...) at ``index``."""
    z = np.array(y, dtype=np.float32)
    z[index] = value
    sf.write(path, z, sr, subtype="FLOAT")
    return Path(path)


def symlink_loop(path: Path) -> Path:
    """``path`` -> ``path.other`` -> ``path``."""
    other = Path(str(path) + ".other")
    os.symlink(other.name, path)
    os.symlink(Path(path).name, other)
    return Path(path)


def fifo(path: Path) -> Path:
    """A named pipe with an audio name (opening it for reading would block forever)."""
    os.mkfifo(path)
    return Path(path)


def folder(path: Path) -> Path:
    """A folder where a file is expected (unreadable as audio, like a file one may not read)."""
    os.mkdir(path)
    return Path(path)
