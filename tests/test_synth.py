"""The speech-like corpus generator, checked against scipy/librosa references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import signal

from gmmspeech.synth import (
    SpeakerProfile,
    formant_filter,
    glottal_source,
    random_speakers,
    resonator_sos,
    synth_corpus,
    synth_utterance,
)

SR = 16000


def test_resonator_peak_bandwidth_and_dc_gain():
    fc, bw = 1000.0, 100.0
    sos = resonator_sos([fc], [bw], SR)
    w, h = signal.sosfreqz(sos, worN=2**16, fs=SR)
    mag = np.abs(h)
    assert mag[0] == pytest.approx(1.0, rel=1e-9)  # unit DC gain (Klatt)
    peak = w[np.argmax(mag)]
    assert abs(peak - fc) < 5.0
    above = w[mag >= mag.max() / np.sqrt(2)]
    assert above.max() - above.min() == pytest.approx(bw, rel=0.05)


def test_resonator_rejects_bad_frequencies():
    with pytest.raises(ValueError, match="below|in \\(0"):
        resonator_sos([9000.0], [100.0], SR)
    with pytest.raises(ValueError, match="shape"):
        resonator_sos([500.0, 1500.0], [100.0], SR)


def test_formant_filter_with_constant_formants_equals_plain_cascade(rng):
    x = rng.standard_normal(1000)
    freqs = np.array([500.0, 1500.0, 2500.0])
    bws = np.array([80.0, 100.0, 150.0])
    hop = 80
    n_blocks = -(-x.size // hop)
    y = formant_filter(x, np.tile(freqs, (n_blocks, 1)), bws, sr=SR, hop=hop)
    ref = signal.sosfilt(resonator_sos(freqs, bws, SR), x)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="blocks"):
        formant_filter(x, np.tile(freqs, (3, 1)), bws, sr=SR, hop=hop)


def test_glottal_source_period_and_open_quotient():
    n = SR  # one second
    flow, dflow = glottal_source(np.full(n, 125.0), sr=SR, jitter=0.0, shimmer=0.0,
                                 open_quotient=0.6, rng=np.random.default_rng(1))
    assert flow.min() >= 0.0 and flow.max() == pytest.approx(1.0, abs=1e-3)
    # exactly periodic: period 128 samples
    np.testing.assert_allclose(flow[128:256], flow[256:384], atol=1e-12)
    # open for 60 % of the period
    assert np.mean(flow > 0) == pytest.approx(0.6, abs=0.02)
    # derivative is the scaled first difference
    np.testing.assert_allclose(dflow[1:], np.diff(flow) * SR / 1000.0)
    # pitch seen by an independent estimator (librosa's YIN)
    import librosa

    f0 = librosa.yin(dflow.astype(np.float32), fmin=60, fmax=400, sr=SR, frame_length=1024)
    assert np.median(f0) == pytest.approx(125.0, rel=0.01)


def test_glottal_source_jitter_matches_request():
    rng = np.random.default_rng(3)
    flow, _ = glottal_source(np.full(4 * SR, 100.0), sr=SR, jitter=0.02, shimmer=0.0,
                             open_quotient=0.5, rng=rng)
    onsets = np.flatnonzero((flow[1:] > 0) & (flow[:-1] == 0)) + 1
    periods = np.diff(onsets)
    assert np.mean(periods) == pytest.approx(160.0, rel=0.01)
    # onsets are quantised to samples: std(period) ~ 0.02 * 160 = 3.2 samples
    assert np.std(periods) == pytest.approx(3.2, rel=0.25)


def test_glottal_source_rejects_bad_input():
    with pytest.raises(ValueError, match="f0"):
        glottal_source(np.array([100.0, -1.0]), sr=SR)
    with pytest.raises(ValueError, match="open_quotient"):
        glottal_source(np.full(10, 100.0), sr=SR, open_quotient=1.5)


def test_random_speakers_deterministic_and_varied():
    a = random_speakers(6, seed=4)
    b = random_speakers(6, seed=4)
    c = random_speakers(6, seed=5)
    assert a == b and a != c
    assert [s.sex for s in a] == ["f", "m"] * 3
    assert len({s.name for s in a}) == 6
    females = [s.f0 for s in a if s.sex == "f"]
    males = [s.f0 for s in a if s.sex == "m"]
    assert min(females) > max(males)
    assert all(isinstance(v, float) for v in a[0].to_dict()["formant_dev"])
    with pytest.raises(ValueError, match="n_speakers"):
        random_speakers(0)


def test_utterance_deterministic_finite_and_normalised():
    spk = random_speakers(1, seed=0)[0]
    y1, snr1 = synth_utterance(spk, seed=7, duration=1.0)
    y2, snr2 = synth_utterance(spk, seed=7, duration=1.0)
    y3, _ = synth_utterance(spk, seed=8, duration=1.0)
    assert y1.dtype == np.float32 and np.all(np.isfinite(y1))
    np.testing.assert_array_equal(y1, y2)
    assert snr1 == snr2 and 15.0 <= snr1 <= 30.0
    assert y1.shape != y3.shape or not np.array_equal(y1, y3)
    assert 0.3 <= np.max(np.abs(y1)) <= 0.9
    assert y1.size >= 1.0 * SR
    with pytest.raises(ValueError, match="duration"):
        synth_utterance(spk, duration=-1.0)
    with pytest.raises(ValueError, match="sr"):
        synth_utterance(spk, sr=4000)


def _voice(**changes) -> SpeakerProfile:
    base = SpeakerProfile(name="x", sex="m", f0=110.0, f0_range=2.0, vtl_scale=1.0,
                          formant_dev=(1.0,) * 5, bandwidth_scale=1.0, jitter=0.005,
                          shimmer=0.02, open_quotient=0.6, breathiness=0.02, rate=1.0)
    return dataclasses.replace(base, **changes)


def test_pitch_follows_the_speaker():
    import librosa

    for f0 in (100.0, 220.0):
        y, _ = synth_utterance(_voice(f0=f0), seed=1, duration=2.0, snr_db=50.0)
        est, voiced, _ = librosa.pyin(y, fmin=60, fmax=500, sr=SR, frame_length=1024)
        median = np.nanmedian(est[voiced])
        # intonation moves around the mean pitch by a few semitones
        assert abs(12 * np.log2(median / f0)) < 2.0


def test_vocal_tract_scaling_moves_formants_up():
    import librosa

    def centroid(scale: float) -> float:
        y, _ = synth_utterance(_voice(vtl_scale=scale), seed=2, duration=2.0, snr_db=60.0)
        s = np.abs(librosa.stft(y, n_fft=512)) ** 2
        freqs = librosa.fft_frequencies(sr=SR, n_fft=512)
        band = freqs < 4000
        spec = s[band].mean(axis=1)
        return float(np.sum(freqs[band] * spec) / np.sum(spec))

    low, high = centroid(0.9), centroid(1.2)
    assert high > 1.1 * low


def test_snr_is_respected():
    # speech-free stretches at start/end hold only the background noise
    y, snr = synth_utterance(_voice(), seed=3, duration=1.5, snr_db=10.0)
    assert snr == 10.0
    y_clean, _ = synth_utterance(_voice(), seed=3, duration=1.5, snr_db=80.0)
    lead = int(0.1 * SR)
    assert np.std(y[:lead]) > 20 * np.std(y_clean[:lead])


def test_corpus_layout_and_parallel_determinism():
    spk, utts = synth_corpus(3, 2, seed=11, duration=(0.5, 1.0))
    assert [u.speaker for u in utts] == [s.name for s in spk for _ in range(2)]
    assert len({u.id for u in utts}) == 6
    assert all(u.sr == SR for u in utts)
    _, again = synth_corpus(3, 2, seed=11, duration=(0.5, 1.0), n_jobs=2)
    for a, b in zip(utts, again):
        assert a.id == b.id
        np.testing.assert_array_equal(a.y, b.y)
    with pytest.raises(ValueError, match="n_utterances"):
        synth_corpus(2, 0)
