"""Speed perturbation and VTLN-warped mel banks against independent references: Kaldi's
warped banks (kaldi-native-fbank), librosa's bank on a scaled frequency axis, Kaldi's warp
function transcribed here, and scipy's polyphase resampler / the spectrum of a sine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gmmspeech.audio import speed_perturb
from gmmspeech.features.config import FeatureConfig
from gmmspeech.features.extract import extract
from gmmspeech.features.mfcc import kaldi_mel_filterbank, mel_filterbank, vtln_warp_freq


def kaldi_warp(f, alpha, fmin, fmax, nyq, low=100.0, high=-500.0):
    """``MelBanks::VtlnWarpFreq`` of Kaldi's feat/mel-computations.cc, one frequency at a time."""
    high = high + nyq if high <= 0 else high
    if f < fmin or f > fmax:
        return f
    lo_c, hi_c = low * max(1.0, alpha), high * min(1.0, alpha)
    scale = 1.0 / alpha
    fl, fh = scale * lo_c, scale * hi_c
    if f < lo_c:
        return fmin + (fl - fmin) / (lo_c - fmin) * (f - fmin)
    if f < hi_c:
        return scale * f
    return fmax + (fmax - fh) / (fmax - hi_c) * (f - fmax)


@pytest.mark.parametrize("alpha", [0.82, 0.9, 1.0, 1.07, 1.2])
def test_vtln_warp_freq_is_kaldis(alpha):
    f = np.concatenate([np.linspace(0, 8000, 801), [20.0, 100.0, 7500.0, 7600.0]])
    ours = vtln_warp_freq(f, warp=alpha, fmin=20.0, fmax=7600.0, nyquist=8000.0)
    ref = [kaldi_warp(x, alpha, 20.0, 7600.0, 8000.0) for x in f]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-9)
    assert np.all(np.diff(ours[:801]) >= 0)  # monotone: filters keep their order
    with pytest.raises(ValueError, match="cut-offs"):
        vtln_warp_freq(f, warp=alpha, fmin=150.0, fmax=7600.0, nyquist=8000.0)


@pytest.mark.parametrize("sr,n_fft,fmax", [(16000, 512, 7600.0), (8000, 256, 3800.0)])
@pytest.mark.parametrize("alpha", [0.86, 0.94, 1.05, 1.14])
def test_kaldi_bank_warped_as_kaldi_native_fbank(sr, n_fft, fmax, alpha):
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.MelBanksOptions()
    opts.num_bins, opts.low_freq, opts.high_freq = 23, 20.0, fmax
    frame = knf.FrameExtractionOptions()
    frame.samp_freq = float(sr)
    ref = np.array(knf.MelBanks(opts, frame, alpha).get_matrix())  # (23, n_fft // 2 [+ 1])
    ours = kaldi_mel_filterbank(sr, n_fft, 23, 20.0, fmax, alpha)
    np.testing.assert_allclose(ours[: ref.shape[1]].T, ref, atol=2e-5)
    assert not np.allclose(ours, kaldi_mel_filterbank(sr, n_fft, 23, 20.0, fmax))


@pytest.mark.parametrize("alpha", [0.92, 1.08])
def test_librosa_bank_warped_equals_librosa_on_a_scaled_axis(alpha):
    """Between the cut-offs the warp is f -> f / alpha: a triangle with corners c / alpha at
    bin frequency f is librosa's triangle with corners c at alpha * f, i.e. librosa's bank
    for the sampling rate alpha * sr."""
    librosa = pytest.importorskip("librosa")
    sr, n_fft, n, fmin, fmax = 16000, 512, 40, 20.0, 7600.0
    ours = mel_filterbank(sr, n_fft, n, fmin, fmax, True, None, alpha)
    with warnings.catch_warnings():  # alpha < 1: the top filters lie above the scaled Nyquist
        warnings.simplefilter("ignore")
        ref = librosa.filters.mel(sr=alpha * sr, n_fft=n_fft, n_mels=n, fmin=fmin, fmax=fmax, htk=True,
                                  norm=None).T
    corners = librosa.mel_frequencies(n_mels=n + 2, fmin=fmin, fmax=fmax, htk=True)
    lo, hi = 100.0 * max(1.0, alpha), (8000.0 - 500.0) * min(1.0, alpha)
    inner = [k for k in range(n) if corners[k] >= lo and corners[k + 2] <= hi]
    assert len(inner) > 30
    np.testing.assert_allclose(ours[:, inner], ref[:, inner], atol=1e-5)
    # no warp: exactly librosa's bank
    np.testing.assert_allclose(mel_filterbank(sr, n_fft, n, fmin, fmax, True, None, 1.0),
                               librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n, fmin=fmin, fmax=fmax,
                                                   htk=True, norm=None).T, atol=1e-7)


def test_vtln_config_field():
    base = FeatureConfig.preset("speech")
    assert base.replace(vtln_warp=1.0).config_hash() == base.config_hash()
    assert base.replace(vtln_warp=1.1).config_hash() != base.config_hash()
    with pytest.raises(ValueError, match="vtln_warp"):
        FeatureConfig.preset("lfcc").replace(vtln_warp=1.1)  # a linear bank
    with pytest.raises(ValueError, match="vtln_warp"):
        base.replace(vtln_warp=3.0)
    rng = np.random.default_rng(0)
    y = rng.normal(size=16000).astype(np.float32)
    a, b = extract(y, config=base), extract(y, config=base.replace(vtln_warp=1.1))
    assert a.shape == b.shape and np.all(np.isfinite(b)) and not np.allclose(a, b)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_scales_frequency_and_length(factor):
    signal = pytest.importorskip("scipy.signal")
    sr, f0 = 16000, 440.0
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * f0 * t).astype(np.float32)
    out = speed_perturb(y, sr=sr, factor=factor)
    assert out.size == int(np.ceil(y.size / factor))
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak = np.argmax(spec) * sr / out.size
    assert peak == pytest.approx(f0 * factor, abs=sr / out.size)
    # scipy's polyphase resampler: recorded at sr * factor, brought to sr
    up, down = (10, 9) if factor == 0.9 else (10, 11)
    ref = signal.resample_poly(y.astype(np.float64), up, down)
    m = min(ref.size, out.size)
    np.testing.assert_allclose(out[200 : m - 200], ref[200 : m - 200], atol=2e-3)
    with pytest.raises(ValueError, match="factor"):
        speed_perturb(y, sr=sr, factor=0.0)


def test_speed_config_field():
    base = FeatureConfig.preset("speech")
    assert base.replace(speed=1.0).config_hash() == base.config_hash()
    rng = np.random.default_rng(1)
    y = rng.normal(size=16000).astype(np.float32)
    fast = extract(y, config=base.replace(speed=1.1, vad=False))
    slow = extract(y, config=base.replace(speed=0.9, vad=False))
    plain = extract(y, config=base.replace(vad=False))
    # 1 s at 10 ms frames: 98 frames; 1/1.1 s: 89; 1/0.9 s: 109
    assert (fast.shape[0], plain.shape[0], slow.shape[0]) == (89, 98, 109)


def test_store_extraction_applies_speed_and_warp(tmp_path):
    """What the feature store runs (block by block, or whole for a perturbed speed) equals
    ``extract`` of the file with the same configuration."""
    sf = pytest.importorskip("soundfile")
    from gmmspeech.features.streaming import extract_to_file

    rng = np.random.default_rng(2)
    sr = 8000
    t = np.arange(int(0.8 * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=t.size))
    path = tmp_path / "a.wav"
    sf.write(path, y.astype(np.float32), sr)
    base = FeatureConfig.preset("speech", sample_rate=sr, cmvn="none")
    for cfg in (base.replace(speed=0.9), base.replace(speed=1.1), base.replace(vtln_warp=0.94)):
        out = tmp_path / "f.npy"
        extract_to_file(path, out, config=cfg)
        np.testing.assert_allclose(np.load(out), extract(path, config=cfg), rtol=1e-5, atol=1e-4)
    plain = extract(path, config=base)
    assert extract(path, config=base.replace(speed=1.1)).shape[0] < plain.shape[0]
