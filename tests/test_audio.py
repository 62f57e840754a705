"""gmmspeech.audio: formats, resampling, mixdown, segments and every bad-input case."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from gmmspeech import audio
from gmmspeech.errors import AudioError


def _chirp(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * (200 * t + 300 * t**2))).astype(np.float32)


def _dominant_freq(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize(
    "ext, fmt, tol",
    [("wav", "WAV", 1e-4), ("flac", "FLAC", 1e-4), ("ogg", "OGG", 0.1), ("mp3", "MP3", 0.15)],
)
def test_formats_roundtrip(write_wav, ext, fmt, tol):
    y = _chirp(16000, 1.0)
    path = write_wav(f"a.{ext}", y, 16000, format=fmt)
    z = audio.load(path, sr=16000)
    assert z.dtype == np.float32 and z.ndim == 1
    assert z.size == y.size
    assert np.abs(z - y).max() < tol
    inf = audio.info(path)
    assert (inf.samplerate, inf.channels, inf.frames) == (16000, 1, y.size)
    assert inf.duration == pytest.approx(1.0)


def test_sr_none_keeps_rate(write_wav):
    y = _chirp(22050, 0.5)
    path = write_wav("a.wav", y, 22050, subtype="FLOAT")
    z = audio.load(path, sr=None)
    np.testing.assert_array_equal(z, y)


def test_resampling_keeps_frequency(write_wav):
    sr = 44100
    t = np.arange(sr) / sr
    y = (0.4 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    path = write_wav("tone44.wav", y, sr)
    z = audio.load(path, sr=16000)
    assert z.size == pytest.approx(16000, abs=1)
    assert _dominant_freq(z, 16000) == pytest.approx(1000.0, abs=2.0)
    # amplitude kept (away from the edges)
    assert np.abs(z[1000:-1000]).max() == pytest.approx(0.4, rel=0.02)


def test_upsampling_8k(write_wav):
    sr = 8000
    t = np.arange(sr // 2) / sr
    y = (0.3 * np.sin(2 * np.pi * 500.0 * t)).astype(np.float32)
    z = audio.load(write_wav("tone8.wav", y, sr), sr=16000)
    assert z.size == 8000
    assert _dominant_freq(z, 16000) == pytest.approx(500.0, abs=2.0)


@pytest.mark.parametrize("channels", [2, 6])
def test_mixdown(write_wav, channels):
    rng = np.random.default_rng(1)
    y = (0.2 * rng.standard_normal((4000, channels))).astype(np.float32)
    path = write_wav(f"multi{channels}.wav", y, 16000, subtype="FLOAT")
    z = audio.load(path, sr=16000)
    assert z.shape == (4000,)
    np.testing.assert_allclose(z, y.mean(axis=1), atol=1e-6)
    assert audio.info(path).channels == channels


@pytest.mark.parametrize("ext, fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_segment_exact_samples(write_wav, ext, fmt):
    y = _chirp(16000, 2.0)
    path = write_wav(f"seg.{ext}", y, 16000, format=fmt)
    full = audio.load(path, sr=None)
    seg = audio.load(path, sr=None, start=0.5, end=0.75)
    assert seg.size == 4000
    np.testing.assert_allclose(seg, full[8000:12000], atol=1e-6)
    tail = audio.load(path, sr=None, start=1.5)
    np.testing.assert_allclose(tail, full[24000:], atol=1e-6)
    head = audio.load(path, sr=None, end=0.25)
    np.testing.assert_allclose(head, full[:4000], atol=1e-6)


def test_segment_then_resample(write_wav):
    y = _chirp(32000, 1.0)
    path = write_wav("seg32.wav", y, 32000, subtype="FLOAT")
    seg = audio.load(path, sr=16000, start=0.25, end=0.5)
    assert seg.size == 4000


def test_segment_end_overshoot_clipped(write_wav):
    y = _chirp(16000, 1.0)
    path = write_wav("o.wav", y, 16000, subtype="FLOAT")
    z = audio.load(path, sr=None, start=0.5, end=1.2)  # 0.2 s past the end: clipped
    np.testing.assert_array_equal(z, y[8000:])
    with pytest.raises(AudioError, match="past the end"):
        audio.load(path, sr=None, start=0.5, end=2.0)
    with pytest.raises(AudioError, match="past the end"):
        audio.load(path, sr=None, start=0.5, end=1.2, max_overshoot=0.0)


@pytest.mark.parametrize(
    "start, end, pattern",
    [
        (-0.1, None, "negative"),
        (0.5, 0.5, "not after"),
        (0.6, 0.2, "not after"),
        (1.0, None, "past the end"),
        (3.0, 4.0, "past the end"),
        (float("nan"), None, "finite"),
    ],
)
def test_segment_out_of_range(write_wav, start, end, pattern):
    path = write_wav("r.wav", _chirp(16000, 1.0), 16000)
    with pytest.raises(AudioError, match=pattern) as exc:
        audio.load(path, start=start, end=end)
    assert exc.value.path == str(path)


def test_missing(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="missing") as exc:
        audio.load(path)
    assert exc.value.path == str(path)
    assert str(path) in str(exc.value)
    with pytest.raises(AudioError, match="missing"):
        audio.info(path)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        audio.load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.load(path)


def test_text_renamed_wav(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("this is not audio at all, just some words\n" * 20)
    with pytest.raises(AudioError, match="not audio") as exc:
        audio.load(path)
    assert exc.value.path == str(path)


def test_truncated_flac(write_wav):
    path = write_wav("t.flac", _chirp(16000, 2.0), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="corrupt|truncated"):
        audio.load(path)


def test_truncated_wav(write_wav):
    path = write_wav("t.wav", _chirp(16000, 1.0), 16000)
    data = path.read_bytes()
    path.write_bytes(data[:44])  # header only: no sample data
    with pytest.raises(AudioError, match="no samples|corrupt|truncated"):
        audio.load(path)


def test_nan_in_float_wav(write_wav):
    y = _chirp(16000, 0.5)
    y[1234] = np.nan
    path = write_wav("nan.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite.*1234"):
        audio.load(path)


def test_inf_in_float_wav(write_wav):
    y = _chirp(16000, 0.5)
    y[10] = np.inf
    path = write_wav("inf.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        audio.load(path)


def test_one_sample_file(write_wav):
    path = write_wav("one.wav", np.array([0.1], dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="too short"):
        audio.load(path)
    # the minimum is a parameter: one sample is enough when asked for that
    assert audio.load(path, min_duration=None, min_samples=1).size == 1


def test_min_length_parameters(write_wav):
    path = write_wav("short.wav", _chirp(16000, 0.02), 16000)  # 320 samples, 20 ms
    with pytest.raises(AudioError, match="too short"):
        audio.load(path)  # default: one 25 ms frame
    assert audio.load(path, min_duration=0.01).size == 320
    with pytest.raises(AudioError, match="need at least 400"):
        audio.load(path, min_duration=None, min_samples=400)


def test_bad_arguments(write_wav):
    path = write_wav("a.wav", _chirp(16000, 0.1), 16000)
    with pytest.raises(ValueError, match="sr"):
        audio.load(path, sr=0)
    with pytest.raises(ValueError, match="max_overshoot"):
        audio.load(path, max_overshoot=-1)


def test_fsdd_file(fsdd_root):
    path = sorted((fsdd_root / "recordings").glob("*.wav"))[0]
    inf = audio.info(path)
    assert inf.samplerate == 8000 and inf.channels == 1
    y = audio.load(path, sr=16000)
    assert y.dtype == np.float32
    assert abs(y.size - 2 * inf.frames) <= 1
    assert np.isfinite(y).all()
    sf_y, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(audio.load(path, sr=None), sf_y)


def test_resample_matches_librosa_without_importing_it():
    import subprocess
    import sys

    import librosa

    from gmmspeech.audio import resample

    r = np.random.default_rng(3)
    for n, (a, b) in [(16001, (44100, 16000)), (8000, (8000, 16000)), (12345, (22050, 16000))]:
        y = r.standard_normal(n).astype(np.float32)
        ours = resample(y, orig_sr=a, target_sr=b)
        ref = librosa.resample(y, orig_sr=a, target_sr=b, res_type="soxr_hq")
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-6)
    code = (
        "import sys, numpy as np; from gmmspeech.audio import resample; "
        "resample(np.ones(800, np.float32), orig_sr=8000, target_sr=16000); "
        "print('librosa' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_implausible_sample_rate_is_rejected(tmp_path):
    path = tmp_path / "one_hz.wav"
    sf.write(path, np.zeros(4000, dtype=np.float32), 1, subtype="FLOAT")
    with pytest.raises(AudioError, match="implausible sampling rate 1 Hz"):
        audio.load(path, sr=16000)


# ----------------------------------------------------------------- real-world and hostile files
import hostile  # noqa: E402

# LAME's encoder delay plus end padding: at most about two MPEG frames of 1152 samples
_MP3_SLACK = 3 * 1152


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000])
@pytest.mark.parametrize("kind", ["lame", "cbr_no_length_tag", "vbr_no_length_tag"])
def test_encoder_mp3_loads_its_full_duration(tmp_path, sr, kind):
    """MP3s written by an encoder (LAME through libsndfile) load whole, whether libsndfile
    knows their length (Xing/LAME tag) or estimates it too long (CBR, ID3 tag, no length tag:
    the Common Voice case) or far too short (VBR without its Xing tag)."""
    seconds = 3.7
    y = hostile.tone(sr, seconds)
    path = tmp_path / f"{kind}_{sr}.mp3"
    if kind == "lame":
        sf.write(path, y, sr, format="MP3")
    elif kind == "cbr_no_length_tag":
        hostile.mp3_like_common_voice(path, y, sr)
    else:
        hostile.mp3_vbr_without_length(path, y, sr)
    z = audio.load(path, sr=None)
    assert y.size <= z.size <= y.size + _MP3_SLACK, (z.size, y.size)
    # the signal is there to the end (not zeros): the last 0.2 s carries the tone
    assert np.sqrt(np.mean(z[y.size - sr // 5 : y.size] ** 2)) > 0.05
    # resampled to 16 kHz: the same duration
    z16 = audio.load(path, sr=16000)
    assert abs(z16.size - z.size * 16000 / sr) <= 1


def test_mp3_32k_mono_like_common_voice_header_estimate_is_too_long(tmp_path):
    sr = 32000
    y = hostile.tone(sr, 5.0)
    path = hostile.mp3_like_common_voice(tmp_path / "cv.mp3", y, sr)
    with sf.SoundFile(path) as f:
        assert f.frames > y.size + _MP3_SLACK  # libsndfile's estimate: too long
    z = audio.load(path, sr=None)
    assert y.size <= z.size <= y.size + _MP3_SLACK
    # a segment near the end is read through the stream
    seg = audio.load(path, sr=None, start=4.5, end=4.9)
    assert seg.size == round(0.4 * sr)
    with pytest.raises(AudioError, match="past the end"):
        audio.load(path, sr=None, start=1.0, end=9.0)
    with pytest.raises(AudioError, match="past the end"):
        audio.load(path, sr=None, start=7.0)


def test_mp3_longer_than_max_duration_stops_while_decoding(tmp_path):
    y = hostile.tone(16000, 3.0)
    path = hostile.mp3_vbr_without_length(tmp_path / "long.mp3", y, 16000)
    with pytest.raises(AudioError, match="maximum duration"):
        audio.load(path, max_duration=1.0)
    assert audio.load(path, max_duration=10.0).size >= y.size


def test_wav_with_data_cut_off_halfway_is_reported(tmp_path):
    y = hostile.tone(16000, 1.5)
    path = hostile.wav_cut_off(tmp_path / "cut.wav", y, 16000, keep=0.5)
    with pytest.raises(AudioError, match="truncated") as exc:
        audio.load(path)
    assert "48000" in exc.value.reason  # the declared data size in bytes


@pytest.mark.parametrize("fmt, ext", [("AIFF", "aiff"), ("AU", "au"), ("RF64", "wav")])
def test_other_pcm_containers_cut_off_are_reported(tmp_path, fmt, ext):
    path = tmp_path / f"cut.{ext}"
    sf.write(path, hostile.tone(16000, 1.0), 16000, format=fmt, subtype="PCM_16")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match="truncated"):
        audio.load(path)


def test_wav_with_placeholder_data_size_is_read(tmp_path):
    """Streaming writers leave 0xFFFFFFFF as the data size: not truncation."""
    y = hostile.tone(16000, 1.0)
    path = tmp_path / "stream.wav"
    sf.write(path, y, 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    assert raw[36:40] == b"data"
    raw[40:44] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    np.testing.assert_allclose(audio.load(path), y, atol=1e-4)


def test_flac_header_claiming_2_36_frames_fails_fast(tmp_path):
    import resource

    path = hostile.flac_header_lie(tmp_path / "lie.flac", hostile.tone(16000, 0.5), 16000)
    assert path.stat().st_size < 40_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(AudioError, match="maximum duration") as exc:
        audio.load(path)
    assert str(path) in str(exc.value)
    # with no limit the decoder's real end decides: reported, not allocated
    with pytest.raises(AudioError, match="truncated|corrupt"):
        audio.load(path, max_duration=None)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_sparse_wav_claiming_1e9_frames_fails_fast(tmp_path):
    path = hostile.wav_sparse_giant(tmp_path / "giant.wav")
    assert path.stat().st_size > 2e9 and path.stat().st_blocks * 512 < 1e7  # sparse
    with pytest.raises(AudioError, match="maximum duration"):
        audio.load(path)
    with pytest.raises(AudioError, match="maximum duration"):
        audio.AudioStream(path)
    # a limit above the file: the stream reads it block by block (first blocks only here)
    with audio.AudioStream(path, max_duration=20 * 3600) as st:
        first = next(iter(st))
    assert first.size > 0 and np.abs(first).max() > 0.01


@pytest.mark.parametrize("value, pattern", [(np.nan, "non-finite"), (np.inf, "non-finite"),
                                            (1e30, "implausible sample value"),
                                            (-3e7, "implausible sample value")])
def test_absurd_float_samples(tmp_path, value, pattern):
    path = hostile.float_wav_with(tmp_path / "x.wav", hostile.tone(16000, 0.5), 16000, 777, value)
    with pytest.raises(AudioError, match=pattern) as exc:
        audio.load(path)
    assert "777" in exc.value.reason


def test_int16_scale_float_wav_is_accepted(tmp_path):
    y = hostile.tone(16000, 0.5) * 32767
    path = tmp_path / "int_scale.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load(path), y)


def test_symlink_loop_fifo_and_folder(tmp_path):
    with pytest.raises(AudioError, match="symlink loop"):
        audio.load(hostile.symlink_loop(tmp_path / "loop.wav"))
    with pytest.raises(AudioError, match="FIFO"):
        audio.load(hostile.fifo(tmp_path / "pipe.wav"))  # never opened: would block
    with pytest.raises(AudioError, match="folder"):
        audio.load(hostile.folder(tmp_path / "dir.wav"))
    os.symlink("nowhere.wav", tmp_path / "dangling.wav")
    with pytest.raises(AudioError, match="dangling"):
        audio.load(tmp_path / "dangling.wav")


def test_stream_blocks_equal_load(tmp_path):
    """AudioStream's blocks, resampled as a stream, equal the whole-signal path."""
    y = np.random.default_rng(5).standard_normal(3 * audio.BLOCK_SAMPLES + 123).astype(np.float32) * 0.1
    path = tmp_path / "long44.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    with audio.AudioStream(path, sr=16000) as st:
        blocks = list(st)
        assert st.native_rate == 44100 and st.n_samples == sum(b.size for b in blocks)
    assert len(blocks) > 2
    whole = audio.resample(y, orig_sr=44100, target_sr=16000)
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    np.testing.assert_allclose(audio.load(path, sr=16000), whole, atol=1e-6)
