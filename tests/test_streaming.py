"""Block-by-block extraction (features.streaming.extract_to_file) equals whole-file extraction
(features.extract) for every preset and every post-processing mode, with chunks, spill files
and audio blocks forced small so that every boundary case is met many times."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike

from gmmspeech import audio
from gmmspeech.errors import AudioError, FeatureError
from gmmspeech.features import FeatureConfig, extract, streaming

SR = 16000


def _utterance(sr: int = SR, seconds_each: float = 1.5, n: int = 14) -> np.ndarray:
    """Voiced stretches of varying pitch and level with near-silent gaps (VAD drops them)."""
    parts = []
    for i in range(n):
        y = speechlike(sr=sr, seconds=seconds_each, f0=100.0 + 13.0 * i, seed=i) * (0.15 + 0.1 * (i % 3))
        parts.append(y.astype(np.float32))
        parts.append((1e-4 * np.random.default_rng(50 + i).standard_normal(int(0.4 * sr))).astype(np.float32))
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    y = _utterance()
    out = {"wav16": root / "u16.wav", "flac44": root / "u44.flac"}
    sf.write(out["wav16"], y, SR, subtype="FLOAT")
    sf.write(out["flac44"], audio.resample(y, orig_sr=SR, target_sr=44100), 44100, subtype="PCM_24")
    return out


@pytest.fixture
def small_blocks(monkeypatch):
    """Chunks of 512 frames, spill files beyond 64 KB, audio blocks of 3001 samples."""
    monkeypatch.setattr(streaming, "CHUNK_FRAMES", 512)
    monkeypatch.setattr(streaming, "SPILL_BYTES", 1 << 16)
    monkeypatch.setattr(audio, "BLOCK_SAMPLES", 3001)


CONFIGS = {
    "speech": FeatureConfig.preset("speech"),
    "kaldi": FeatureConfig.preset("kaldi"),
    "librosa": FeatureConfig.preset("librosa"),
    "kaldi_dither": FeatureConfig.preset("kaldi").replace(dither=1.0, dither_seed=3),
    "speech_8k": FeatureConfig.preset("speech", sample_rate=8000),
    "sliding_norm_vars": FeatureConfig.preset("speech").replace(cmvn="sliding", cmvn_norm_vars=True),
    "sliding_causal": FeatureConfig.preset("speech").replace(cmvn="sliding", cmvn_center=False),
    "warping": FeatureConfig.preset("speech").replace(cmvn="warping"),
    "utterance_no_vad": FeatureConfig.preset("speech").replace(vad=False),
    "vad_mean_deltas1": FeatureConfig.preset("speech").replace(vad_reference="mean", deltas=1,
                                                               delta_width=9),
    "center_reflect": FeatureConfig.preset("speech").replace(center=True, pad_mode="reflect"),
    "center_edge_db": FeatureConfig.preset("speech").replace(center=True, pad_mode="edge",
                                                             log_type="db", top_db=60.0),
}


def _stream(path, tmp_path, config, **kw):
    out = tmp_path / "f.npy"
    info = streaming.extract_to_file(path, out, config=config, **kw)
    X = np.load(out, allow_pickle=False)
    assert X.shape == (info.frames, info.dims) and X.dtype == np.float32
    return X, info


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("which", ["wav16", "flac44"])
def test_block_by_block_equals_whole_file(files, tmp_path, small_blocks, name, which):
    config = CONFIGS[name]
    ref = extract(files[which], config=config)
    X, info = _stream(files[which], tmp_path, config)
    assert info.native_rate == (SR if which == "wav16" else 44100)
    assert X.shape == ref.shape
    assert X.shape[0] > 4 * streaming.CHUNK_FRAMES or config.hop_samples() > 200  # many chunks
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(X, ref, rtol=0, atol=2e-5 * scale)
    assert list(tmp_path.iterdir()) == [tmp_path / "f.npy"]  # scratch files removed


@pytest.mark.parametrize("name", ["speech", "kaldi", "librosa", "warping"])
def test_default_chunks_are_bit_identical(files, tmp_path, name):
    """With the default chunk (a multiple of the MFCC block) every frame is computed by
    the same calls as on the whole file: no difference at all (sliding CMVN aside, whose
    running sums start elsewhere)."""
    config = CONFIGS[name]
    ref = extract(files["wav16"], config=config)
    X, _ = _stream(files["wav16"], tmp_path, config)
    np.testing.assert_array_equal(X, ref)


def test_segment(files, tmp_path, small_blocks):
    config = CONFIGS["speech"]
    ref = extract(files["flac44"], config=config, start=3.3, end=17.9)
    X, _ = _stream(files["flac44"], tmp_path, config, start=3.3, end=17.9)
    np.testing.assert_allclose(X, ref, atol=2e-5 * max(1.0, float(np.abs(ref).max())))


def test_mp3_stream(tmp_path):
    y = _utterance(n=4)
    path = tmp_path / "u.mp3"
    sf.write(path, y, SR, format="MP3")
    ref = extract(path, config=CONFIGS["speech"])
    X, info = _stream(path, tmp_path, CONFIGS["speech"])
    np.testing.assert_array_equal(X, ref)
    assert info.native_rate == SR


@pytest.mark.parametrize("seconds", [0.012, 0.3])
def test_short_files(tmp_path, seconds):
    path = tmp_path / "s.wav"
    sf.write(path, speechlike(sr=SR, seconds=seconds, f0=150.0), SR, subtype="FLOAT")
    for name in ("speech", "librosa", "center_reflect"):
        config = CONFIGS[name]
        try:
            ref = extract(path, config=config)
        except AudioError as exc:
            with pytest.raises(AudioError) as got:
                _stream(path, tmp_path, config)
            assert got.value.reason == exc.reason
            continue
        X, _ = _stream(path, tmp_path, config)
        np.testing.assert_array_equal(X, ref)


def test_failures_leave_no_file(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR), SR, subtype="PCM_16")
    out = tmp_path / "f.npy"
    with pytest.raises(FeatureError, match="VAD"):
        streaming.extract_to_file(path, out, config=CONFIGS["speech"])
    path2 = tmp_path / "nan.wav"
    y = _utterance(n=3)
    y[-100] = np.nan
    sf.write(path2, y, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        streaming.extract_to_file(path2, out, config=CONFIGS["speech"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "silence.wav"]


def test_long_file_memory_is_bounded(tmp_path):
    """20 minutes of audio: block-by-block extraction needs about what a 10-second file
    needs (fresh processes; the 2-hour figure is in bench/bench_long_file.py)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    base = _utterance(n=6)
    peaks = {}
    for minutes in (0.17, 20):
        path = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
            for _ in range(int(minutes * 60 * SR) // base.size + 1):
                f.write(base * (0.8 + 0.4 * rng.random()))
        code = (
            "import resource, sys; from gmmspeech.features import streaming; "
            "info = streaming.extract_to_file(sys.argv[1], sys.argv[2]); "
            "print(info.frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "f.npy")],
                             capture_output=True, text=True, check=True)
        frames, peak_kb = map(int, out.stdout.split())
        peaks[minutes] = peak_kb / 1024
    assert frames > 60_000
    # whole-file extraction of 20 minutes needs about 400 MB more than of 10 s (signal,
    # frames, features); block by block the intermediate tables (cepstra, frames) stay in
    # memory only up to 32 MB each, then go to scratch files
    assert peaks[20] - peaks[0.17] < 100, peaks
