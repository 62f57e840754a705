"""Front ends beyond MFCC against independent references.

* ``kaldi`` MFCC and ``kaldi-fbank`` against kaldi-native-fbank (Kaldi's own feature code;
  synthetic speech always, LibriSpeech when ../shared/datasets is present);
* ``librosa-fbank`` against ``librosa.power_to_db(librosa.feature.melspectrogram(...))``;
* ``kaldi-plp`` against a plain per-frame transcription of Kaldi's ``compute-plp-feats``;
* linear and Bark banks, LFCC, RASTA, SDC against the textbook formulas written as loops;
* the GMM VAD's EM against scikit-learn's GaussianMixture from the same start;
* Kaldi pitch (kaldi-native-fbank) and pYIN on a tone of known f0.
"""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
from conftest import speechlike

from gmmspeech.features import (
    FeatureConfig,
    bark_filterbank,
    extract,
    fbank,
    gmm_vad,
    linear_filterbank,
    mfcc,
    plp,
    rasta_filter,
    sdc,
)
from gmmspeech.features.config import PRESETS
from gmmspeech.features.vad import fit_gmm_1d

knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank (dev extra) not installed")

FLT_EPS = float(np.finfo(np.float32).eps)


def _close_per_column(got: np.ndarray, ref: np.ndarray, rel: float) -> float:
    """Largest |got - ref| relative to each column's largest |ref|."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    err = (np.abs(got - ref) / np.maximum(np.abs(ref).max(axis=0), 1e-6)).max()
    assert err < rel, err
    return float(err)


# ------------------------------------------------------------------ kaldi-native-fbank
def _knf_frames(online, y: np.ndarray, sr: int) -> np.ndarray:
    online.accept_waveform(sr, (np.asarray(y, dtype=np.float64) * 32768.0).tolist())
    online.input_finished()
    return np.array([online.get_frame(i) for i in range(online.num_frames_ready)])


def _knf_mfcc(y, sr):
    o = knf.MfccOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sr
    o.use_energy = False
    return _knf_frames(knf.OnlineMfcc(o), y, sr)


def _knf_fbank(y, sr):
    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sr
    return _knf_frames(knf.OnlineFbank(o), y, sr)


@pytest.mark.parametrize("sr", [16000, 8000])
def test_kaldi_presets_equal_kaldi_native_fbank_synthetic(sr):
    y = speechlike(sr=sr, seconds=2.0, seed=11)
    got = mfcc(y, sr=sr, config=FeatureConfig.preset("kaldi", sample_rate=sr)).T
    _close_per_column(got, _knf_mfcc(y, sr), 1e-4)
    got = fbank(y, sr=sr, config=FeatureConfig.preset("kaldi-fbank", sample_rate=sr)).T
    _close_per_column(got, _knf_fbank(y, sr), 1e-4)


def test_kaldi_fbank_use_energy_layout_equals_kaldi_native_fbank():
    y = speechlike(sr=16000, seconds=1.0, seed=2)
    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.use_energy = True
    ref = _knf_frames(knf.OnlineFbank(o), y, 16000)
    got = fbank(y, sr=16000, config=FeatureConfig.preset("kaldi-fbank", use_energy=True)).T
    assert got.shape[1] == 24
    _close_per_column(got, ref, 1e-4)


def test_kaldi_presets_equal_kaldi_native_fbank_librispeech(librispeech_root: Path):
    files = sorted((librispeech_root / "train-clean-100").glob("*.flac"))[:6]
    if not files:
        pytest.skip("no LibriSpeech flac files")
    from gmmspeech.audio import load

    errs = []
    for f in files:
        y = load(f, sr=16000)
        errs.append(_close_per_column(extract(y, config=FeatureConfig.preset("kaldi")), _knf_mfcc(y, 16000), 1e-4))
        errs.append(_close_per_column(extract(y, config=FeatureConfig.preset("kaldi-fbank")),
                                      _knf_fbank(y, 16000), 1e-4))
    assert max(errs) < 1e-4


# ------------------------------------------------------------------ librosa
@pytest.mark.parametrize("sr", [22050, 16000])
def test_librosa_fbank_preset_equals_librosa(sr):
    y = speechlike(sr=sr, seconds=1.5, seed=5)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
    got = fbank(y, sr=sr, config=FeatureConfig.preset("librosa-fbank", sample_rate=sr))
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-3  # dB


# ------------------------------------------------------------------ PLP: Kaldi transcription
def _kaldi_plp_plain(y, sr=16000, *, num_bins=23, lpc_order=12, num_ceps=13, lifter=22.0,
                     compress=0.33333, low=20.0, high=None):
    """compute-plp-feats (feature-plp.cc, mel-computations.cc) as a plain per-frame loop."""
    high = sr / 2 if high is None else high
    win, hop, n_fft = int(0.025 * sr), int(0.010 * sr), 1
    while n_fft < win:
        n_fft *= 2

    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (num_bins + 1)
    bins = np.zeros((num_bins, n_fft // 2))
    centres = np.zeros(num_bins)
    for b in range(num_bins):
        left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        centres[b] = 700.0 * (math.exp(centre / 1127.0) - 1.0)
        for i in range(n_fft // 2):
            m = mel(sr / n_fft * i)
            if left < m < right:
                bins[b, i] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    eql = np.zeros(num_bins)
    for i in range(num_bins):
        fsq = centres[i] ** 2
        fsub = fsq / (fsq + 1.6e5)
        eql[i] = fsub * fsub * ((fsq + 1.44e6) / (fsq + 9.61e6))
    dim = num_bins + 2
    idft = np.zeros((lpc_order + 1, dim))
    for i in range(lpc_order + 1):
        idft[i, 0] = 1.0 / (2.0 * (dim - 1))
        for j in range(1, dim - 1):
            idft[i, j] = 2.0 / (2.0 * (dim - 1)) * math.cos(math.pi / (dim - 1) * i * j)
        idft[i, dim - 1] = 1.0 / (2.0 * (dim - 1)) * math.cos(math.pi / (dim - 1) * i * (dim - 1))
    window = np.array([(0.5 - 0.5 * math.cos(2 * math.pi * n / (win - 1))) ** 0.85 for n in range(win)])
    y = np.asarray(y, dtype=np.float64) * 32768.0
    n_frames = 1 + (len(y) - win) // hop
    out = np.zeros((n_frames, num_ceps))
    for t in range(n_frames):
        x = y[t * hop : t * hop + win].copy()
        x -= x.mean()
        log_energy = math.log(max(float(np.dot(x, x)), FLT_EPS))
        for i in range(win - 1, 0, -1):
            x[i] -= 0.97 * x[i - 1]
        x[0] -= 0.97 * x[0]
        x *= window
        spec = np.fft.rfft(x, n=n_fft)
        power = np.abs(spec[: n_fft // 2]) ** 2
        e = np.zeros(dim)
        for b in range(num_bins):
            e[b + 1] = (float(bins[b] @ power) * eql[b]) ** compress
        e[0], e[dim - 1] = e[1], e[num_bins]
        ac = idft @ e
        # Durbin
        lp = np.zeros(lpc_order)
        tmp = np.zeros(lpc_order)
        E = ac[0]
        for i in range(lpc_order):
            ki = ac[i + 1]
            for j in range(i):
                ki += lp[j] * ac[i - j]
            ki /= E
            c = max(1 - ki * ki, 1.0e-5)
            E *= c
            tmp[i] = -ki
            for j in range(i):
                tmp[j] = lp[j] - ki * lp[i - j - 1]
            for j in range(i + 1):
                lp[j] = tmp[j]
        # Lpc2Cepstrum
        cep = np.zeros(lpc_order)
        for i in range(lpc_order):
            s = 0.0
            for j in range(i):
                s += (i - j) * lp[j] * cep[i - j - 1]
            cep[i] = -lp[i] - s / (i + 1)
        feat = np.zeros(num_ceps)
        feat[0] = max(math.log(E), float(np.finfo(np.float32).tiny))
        feat[1:] = cep[: num_ceps - 1]
        for i in range(num_ceps):
            feat[i] *= 1.0 + 0.5 * lifter * math.sin(math.pi * i / lifter)
        feat[0] = log_energy  # use_energy (default true)
        out[t] = feat
    return out


@pytest.mark.parametrize("sr", [16000, 8000])
def test_kaldi_plp_preset_equals_kaldi_algorithm(sr):
    y = speechlike(sr=sr, seconds=0.5, seed=7)
    ref = _kaldi_plp_plain(y, sr)
    got = plp(y, sr=sr, config=FeatureConfig.preset("kaldi-plp", sample_rate=sr)).T
    _close_per_column(got, ref, 1e-4)


def test_kaldi_plp_without_energy_keeps_residual_c0():
    y = speechlike(sr=16000, seconds=0.3, seed=8)
    with_e = plp(y, sr=16000, config=FeatureConfig.preset("kaldi-plp"))
    no_e = plp(y, sr=16000, config=FeatureConfig.preset("kaldi-plp", use_energy=False))
    np.testing.assert_array_equal(with_e[1:], no_e[1:])
    assert not np.allclose(with_e[0], no_e[0])
    assert (no_e[0] >= 0).all()  # Kaldi floors the log residual energy at FLT_MIN


# ------------------------------------------------------------------ banks, LFCC, RASTA, SDC
def test_linear_bank_is_the_triangle_formula():
    sr, n_fft, n = 16000, 512, 20
    bank = linear_filterbank(sr, n_fft, n, 0.0, 8000.0)
    edges = [8000.0 * i / (n + 1) for i in range(n + 2)]
    for b in range(n):
        for i in range(n_fft // 2 + 1):
            f = i * sr / n_fft
            lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
            want = (f - lo) / (c - lo) if lo <= f <= c else (hi - f) / (hi - c) if c < f <= hi else 0.0
            assert abs(bank[i, b] - max(want, 0.0)) < 1e-6


def test_bark_bank_is_rastamat_fft2barkmx():
    sr, n_fft, n = 8000, 256, 17
    bank = bark_filterbank(sr, n_fft, n, 0.0, 4000.0)
    nyqbark = 6 * math.asinh(4000 / 600)
    step = nyqbark / (n - 1)
    for b in range(n):
        mid = b * step
        for i in range(n_fft // 2 + 1):
            z = 6 * math.asinh(i * sr / n_fft / 600)
            want = 10 ** min(0.0, min(z - mid + 0.5, -2.5 * (z - mid - 0.5)))
            assert abs(bank[i, b] - want) < 1e-6 * max(1.0, want)


def test_lfcc_is_dct_of_log_linear_bank_energies():
    sr = 16000
    y = speechlike(sr=sr, seconds=0.4, seed=9)
    cfg = FeatureConfig.preset("lfcc")
    got = mfcc(y, sr=sr, config=cfg.replace(use_energy=False, lifter=0.0)).T
    frames = librosa.util.frame(y.astype(np.float64), frame_length=400, hop_length=160, axis=0)
    n = np.arange(400)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * n / 399)
    x = frames - frames.mean(axis=1, keepdims=True)
    pre = np.concatenate([x[:, :1] * 0.03, x[:, 1:] - 0.97 * x[:, :-1]], axis=1)
    power = np.abs(np.fft.rfft(pre * hamming, n=512, axis=1)) ** 2
    edges = np.linspace(0.0, 7600.0, 42)
    f = np.arange(257) * sr / 512
    bank = np.array([np.clip(np.minimum((f - edges[b]) / (edges[b + 1] - edges[b]),
                                        (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1])), 0, None)
                     for b in range(40)])
    import scipy.fft

    ref = scipy.fft.dct(np.log(np.maximum(power @ bank.T, FLT_EPS)), type=2, norm="ortho", axis=1)[:, :20]
    _close_per_column(got, ref, 1e-4)


def test_rasta_filter_is_the_difference_equation():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    got = rasta_filter(X, axis=0)
    ref = np.zeros_like(X)
    b = [0.2, 0.1, 0.0, -0.1, -0.2]
    for j in range(3):
        # rastamat: y(t) = sum_k b_k x(t-k) + 0.94 y(t-1) for t >= 4 (0-based), zero before,
        # with the FIR history of the first four frames
        prev = 0.0
        for t in range(4, 50):
            v = sum(b[k] * X[t - k, j] for k in range(5)) + 0.94 * prev
            ref[t, j] = v
            prev = v
    np.testing.assert_allclose(got, ref, atol=1e-10)
    assert np.allclose(rasta_filter(X.T, axis=1), got.T)


def test_rasta_removes_a_constant_channel():
    y = speechlike(sr=16000, seconds=1.0, seed=1)
    cfg = FeatureConfig.preset("fbank", rasta=True, deltas=0, vad=False, cmvn="none")
    a = extract(y, config=cfg)
    b = extract(y * 0.25, config=cfg)  # a gain is a constant offset in the log domain
    np.testing.assert_allclose(a[60:], b[60:], atol=2e-3)


def test_sdc_is_the_definition():
    rng = np.random.default_rng(1)
    C = rng.standard_normal((40, 10)).astype(np.float32)
    got = sdc(C, n=7, d=1, p=3, k=7)
    assert got.shape == (40, 49)
    T = 40
    for t in range(T):
        for i in range(7):
            c = t + 3 * i
            a, b = min(c + 1, T - 1), min(max(c - 1, 0), T - 1)
            np.testing.assert_allclose(got[t, 7 * i : 7 * i + 7], C[a, :7] - C[b, :7], atol=1e-6)


def test_sdc_preset_dims_and_layout():
    y = speechlike(sr=16000, seconds=1.0, seed=3)
    cfg = FeatureConfig.preset("sdc", vad=False, cmvn="none")
    X = extract(y, config=cfg)
    assert X.shape[1] == 56 == cfg.n_features
    static = mfcc(y, sr=16000, config=cfg).T
    np.testing.assert_allclose(X[:, :7], static, atol=1e-5)
    np.testing.assert_allclose(X[:, 7:], sdc(static, n=7, d=1, p=3, k=7), atol=1e-5)


# ------------------------------------------------------------------ presets and hashes
def test_existing_presets_keep_their_hash():
    # the values before the new front ends: existing feature stores stay valid
    assert FeatureConfig.preset("speech").config_hash() == "340a5d80c6feb317"
    assert FeatureConfig.preset("kaldi").config_hash() == "4965d26ebfe6a470"
    assert FeatureConfig.preset("librosa").config_hash() == "af8f27e007505696"
    base = FeatureConfig.preset("speech")
    hashes = {base.config_hash()}
    for change in (dict(feature_type="plp", lpc_order=20), dict(rasta=True), dict(sdc=True), dict(pitch="pyin"),
                   dict(vad_method="gmm"), dict(feature_type="lfcc", filter_scale="linear")):
        h = base.replace(**change).config_hash()
        assert h not in hashes, change
        hashes.add(h)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_extracts_its_dims(name):
    cfg = FeatureConfig.preset(name)
    y = speechlike(sr=cfg.sample_rate, seconds=1.0, seed=4)
    X = extract(y, config=cfg, sr=cfg.sample_rate)
    assert X.shape[1] == cfg.n_features
    assert np.isfinite(X).all()
    assert FeatureConfig.from_json(cfg.to_json()) == cfg


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="filter_scale"):
        FeatureConfig(feature_type="lfcc")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(feature_type="plp", lpc_order=12, n_mfcc=20)
    with pytest.raises(ValueError, match="sdc_n"):
        FeatureConfig(sdc=True, n_mfcc=5, sdc_n=7)
    with pytest.raises(ValueError, match="vad_gmm_components"):
        FeatureConfig(vad_gmm_components=5)
    with pytest.raises(ValueError, match="pitch"):
        FeatureConfig(pitch="crepe")


# ------------------------------------------------------------------ GMM VAD
def test_fit_gmm_1d_equals_sklearn_from_the_same_start():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-1.5, 0.3, 400), rng.normal(0.2, 0.5, 300), rng.normal(1.8, 0.4, 500)])
    x = (x - x.mean()) / x.std()
    w, mu, var = fit_gmm_1d(x, n_components=3, n_iter=30, var_floor=1e-12)
    gm = GaussianMixture(3, covariance_type="diag", max_iter=30, tol=0.0, reg_covar=1e-12,
                         weights_init=np.full(3, 1 / 3), means_init=np.array([[-2.0], [0.0], [2.0]]),
                         precisions_init=np.ones((3, 1)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x[:, None])
    # sklearn's first step is an M-step from the start's E-step, as ours
    np.testing.assert_allclose(w, gm.weights_, atol=1e-6)
    np.testing.assert_allclose(mu, gm.means_[:, 0], atol=1e-6)
    np.testing.assert_allclose(var, gm.covariances_[:, 0], atol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_gmm_vad_finds_speech_between_silences(k):
    rng = np.random.default_rng(3)
    e = np.concatenate([rng.normal(-8, 0.5, 100), rng.normal(2, 1.0, 200), rng.normal(-8, 0.5, 100)])
    mask = gmm_vad(e, n_components=k)
    assert mask[110:290].all()
    assert not mask[:90].any() and not mask[310:].any()


def test_gmm_vad_in_extract():
    sr = 16000
    y = speechlike(sr=sr, seconds=1.0, seed=6)
    y = np.concatenate([np.zeros(8000, np.float32) + 1e-4 * np.random.default_rng(0).standard_normal(8000).astype(np.float32),
                        y, np.zeros(8000, np.float32)])
    cfg = FeatureConfig.preset("speech", vad_method="gmm")
    X = extract(y, config=cfg)
    n_all = 1 + (y.size - 400) // 160
    assert 80 <= X.shape[0] <= 110 < n_all  # about the 1 s of speech


# ------------------------------------------------------------------ pitch
def _tone(f0, sr=16000, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    y = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_kaldi_pitch_equals_kaldi_native_fbank_and_aligns():
    y = _tone(150.0)
    cfg = FeatureConfig.preset("kaldi", pitch="kaldi")
    X = extract(y, config=cfg)
    assert X.shape[1] == 16
    opts = knf.PitchExtractionOptions()
    opts.samp_freq = 16000
    ref = knf.compute_and_process_kaldi_pitch(opts, knf.ProcessPitchOptions(), y * 32768)
    n = min(len(ref), X.shape[0])
    np.testing.assert_allclose(X[:n, 13:], ref[:n], atol=1e-5)
    np.testing.assert_allclose(X[:, :13], extract(y, config=FeatureConfig.preset("kaldi")), atol=1e-6)


def test_pyin_pitch_of_a_tone():
    y = _tone(150.0, sr=8000)
    cfg = FeatureConfig.preset("speech", sample_rate=8000, pitch="pyin", deltas=0, vad=False, cmvn="none")
    X = extract(y, config=cfg)
    assert X.shape[1] == 23
    pov, logf0 = X[10:-10, 20], X[10:-10, 21]
    assert np.median(pov) > 0.5
    np.testing.assert_allclose(np.exp(np.median(logf0)), 150.0, rtol=0.02)
    assert np.abs(X[10:-10, 22]).max() < 0.02  # flat pitch: delta near 0


# ------------------------------------------------------------------ CLI
def test_cli_preset_names_are_the_presets():
    from gmmspeech.cli.common import PRESET_NAMES

    assert set(PRESET_NAMES) == set(PRESETS)


def test_features_cli_plp_with_sdc_pitch_and_gmm_vad(tmp_path, write_wav):
    from gmmspeech.cli import main
    from gmmspeech.corpus.store import FeatureStore

    write_wav("a.wav", speechlike(16000, 1.0, 120, 0), 16000)
    write_wav("b.wav", speechlike(16000, 1.2, 170, 1), 16000)
    (tmp_path / "m.csv").write_text("id,path,label\na,a.wav,s1\nb,b.wav,s2\n")
    out = tmp_path / "store"
    rc = main(["features", str(tmp_path / "m.csv"), "--out", str(out), "--preset", "plp",
               "--sdc", "7-1-3-7", "--pitch", "kaldi", "--vad-method", "gmm", "--quiet"])
    assert rc == 0
    store = FeatureStore(out)
    cfg = store.config
    assert (cfg.feature_type, cfg.sdc, cfg.pitch, cfg.vad_method) == ("plp", True, "kaldi", "gmm")
    assert cfg.n_features == (20 + 3) * 3 + 49
    assert store.load("a").shape[1] == cfg.n_features
    rc = main(["features", str(tmp_path / "m.csv"), "--out", str(tmp_path / "x"), "--sdc", "7-1-3",
               "--quiet"])
    assert rc == 2
