"""MFCC throughput: gmmspeech.features.mfcc against librosa.feature.mfcc, same work.

On one signal of 10 minutes at 16 kHz (a synthetic speech-like mix of harmonics,
formant-shaped, with noise and pauses), this times

1. the ``speech`` preset against ``librosa.feature.mfcc`` with the same analysis:
   400-sample Hamming window (symmetric), 512-point FFT, hop 160, no centring,
   40 HTK mel bands 20-7600 Hz, 20 cepstra, lifter 22 (librosa's lifter);
   the speech preset also removes DC, pre-emphasises and computes the frame energy,
   which librosa does not, so gmmspeech does slightly more work here;
2. the ``librosa`` preset against ``librosa.feature.mfcc`` with its defaults
   (``n_fft=2048``, ``hop_length=512``, 128 mels, centred), the same work exactly;
3. the speech preset on the same audio cut into 0.5 s utterances (1200 calls for 10
   minutes), as when extracting a corpus of short files such as FSDD: per-call costs
   (filter banks, windows) dominate there, and gmmspeech caches them;
4. the other front ends against their closest peer (``--no-frontends`` skips them):
   ``librosa-fbank`` against ``librosa.power_to_db(librosa.feature.melspectrogram(...))``
   (the same numbers); the ``fbank`` analysis (512/160, 40 mels, natural log) against
   librosa's melspectrogram with that analysis and a log; ``kaldi`` MFCC and
   ``kaldi-fbank`` against kaldi-native-fbank (the same numbers; its ``OnlineMfcc`` /
   ``OnlineFbank`` fed the whole signal, frames read back as one array); ``plp``
   (Kaldi's PLP, 23 mel bands, order 12) and ``lfcc`` against spafe's ``plp`` and
   ``lfcc`` with the same framing (24 filters, 13 cepstra: a different bank and
   equal-loudness curve, the same work); ``sdc`` (7 MFCC + SDC 7-1-3-7) against
   librosa's MFCC plus the same shifted deltas in numpy.

Each case is timed ``--repeat`` times alternating the two implementations (so both see
the same machine load); the best and the median time of each are printed with the
throughput ratio (librosa time / gmmspeech time; > 1 means gmmspeech is faster). The
target is a ratio >= 2. ``--threads`` sets the BLAS threads of the run (librosa's mel
product uses BLAS; gmmspeech keeps its own thin products on one thread).

Usage::

    python bench/bench_mfcc.py                 # 10 minutes, 5 repeats
    python bench/bench_mfcc.py --minutes 2 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np


def make_signal(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: voiced segments with a wandering f0, noise, short pauses."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n, dtype=np.float64) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros(n)
    for h in range(1, 30):
        f = h * 120.0
        amp = np.exp(-((f - 700) / 400) ** 2) + 0.6 * np.exp(-((f - 1700) / 500) ** 2) + 0.05
        y += amp * np.sin(h * phase)
    gate = (np.sin(2 * np.pi * 0.7 * t) > -0.6).astype(np.float64)  # ~ 30 % pauses
    y = y * gate + 0.02 * rng.standard_normal(n)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_case(name, ours, theirs, repeat, check, seconds=None, peer="librosa"):
    # warm up both (caches, imports, JIT of nothing)
    a, b = ours(), theirs()
    check(a, b)
    t_ours, t_theirs = [], []
    for _ in range(repeat):
        t_ours.append(_time(ours))
        t_theirs.append(_time(theirs))
    best_o, best_t = min(t_ours), min(t_theirs)
    med_o, med_t = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"{name:<34} gmmspeech {best_o:7.3f} s (median {med_o:6.3f})   "
          f"{peer} {best_t:7.3f} s (median {med_t:6.3f})   "
          f"ratio best {best_t / best_o:5.2f}x  median {med_t / med_o:5.2f}x")
    if seconds:
        print(f"{'':<34} {seconds / best_o:,.0f}x real time vs {seconds / best_t:,.0f}x real time")
    return best_t / best_o, med_t / med_o


def frontend_cases(y, sr, repeat, check_close) -> dict:
    """Rows for fbank, PLP, LFCC, SDC and the Kaldi presets against their closest peers."""
    import librosa

    from gmmspeech.features import FeatureConfig, fbank, mfcc, plp, sdc

    results = {}
    lib_fb = FeatureConfig.preset("librosa-fbank").replace(sample_rate=sr)
    results["librosa-fbank"] = run_case(
        "librosa-fbank preset (2048/512)",
        lambda: fbank(y, sr=sr, config=lib_fb),
        lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr)),
        repeat, check_close, y.size / sr,
    )
    speech_fb = FeatureConfig.preset("fbank")

    def lib_logmel():
        m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160, win_length=400,
                                           window="hamming", center=False, n_mels=40, fmin=20.0,
                                           fmax=7600.0, htk=True, norm=None)
        return np.log(np.maximum(m, 1.1920929e-07))

    def check_fb_shape(a, b):
        assert a.shape[0] == b.shape[0] and abs(a.shape[1] - b.shape[1]) <= 2, (a.shape, b.shape)

    results["fbank"] = run_case("fbank preset (512/160, 40 mels)", lambda: fbank(y, sr=sr, config=speech_fb),
                                lib_logmel, repeat, check_fb_shape, y.size / sr)

    def check_rel(a, b):
        assert a.shape == b.shape, (a.shape, b.shape)
        err = (np.abs(a - b) / np.maximum(np.abs(b).max(axis=0), 1e-6)).max()
        assert err < 1e-4, err

    try:
        import kaldi_native_fbank as knf
    except ImportError:
        print("kaldi-native-fbank not installed: no Kaldi rows")
    else:
        y16 = y * np.float32(32768.0)

        def knf_run(online):
            online.accept_waveform(sr, y16)
            online.input_finished()
            n = online.num_frames_ready
            return np.array([online.get_frame(i) for i in range(n)])

        mo = knf.MfccOptions()
        mo.frame_opts.dither = 0.0
        mo.use_energy = False
        fo = knf.FbankOptions()
        fo.frame_opts.dither = 0.0
        kaldi = FeatureConfig.preset("kaldi")
        kaldi_fb = FeatureConfig.preset("kaldi-fbank")
        results["kaldi-mfcc"] = run_case(
            "kaldi MFCC preset", lambda: mfcc(y, sr=sr, config=kaldi).T,
            lambda: knf_run(knf.OnlineMfcc(mo)), repeat, check_rel, y.size / sr, peer="kaldi-native-fbank")
        results["kaldi-fbank"] = run_case(
            "kaldi-fbank preset", lambda: fbank(y, sr=sr, config=kaldi_fb).T,
            lambda: knf_run(knf.OnlineFbank(fo)), repeat, check_rel, y.size / sr, peer="kaldi-native-fbank")

    def check_frames(a, b):
        assert abs(a.shape[0] - b.shape[0]) <= 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)

    try:
        from spafe.features import lfcc as sp_lfcc
        from spafe.features import rplp as sp_rplp
        from spafe.utils.preprocessing import SlidingWindow
    except ImportError:
        print("spafe not installed: no PLP/LFCC peer rows")
    else:
        win = SlidingWindow(0.025, 0.010, "hamming")
        kplp = FeatureConfig.preset("kaldi-plp")
        results["plp"] = run_case(
            "kaldi-plp preset (23 mels, order 12)", lambda: plp(y, sr=sr, config=kplp).T,
            lambda: sp_rplp.plp(y, fs=sr, order=13, pre_emph=True, window=win, nfilts=24, nfft=512),
            repeat, check_frames, y.size / sr, peer="spafe")
        lf = FeatureConfig.preset("lfcc", n_mels=24, n_mfcc=13, fmin=0.0, fmax=None)
        results["lfcc"] = run_case(
            "lfcc preset (24 filters, 13 ceps)", lambda: mfcc(y, sr=sr, config=lf).T,
            lambda: sp_lfcc.lfcc(y, fs=sr, num_ceps=13, pre_emph=True, window=win, nfilts=24, nfft=512),
            repeat, check_frames, y.size / sr, peer="spafe")

    sdc_cfg = FeatureConfig.preset("sdc")

    def ours_sdc():
        c = mfcc(y, sr=sr, config=sdc_cfg).T
        return np.concatenate([c, sdc(c)], axis=1)

    def theirs_sdc():
        c = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=7, n_fft=512, hop_length=160, win_length=400,
                                 window="hamming", center=False, n_mels=40, fmin=20.0, fmax=7600.0,
                                 htk=True, norm="ortho", lifter=22).T
        T = c.shape[0]
        t = np.arange(T)[:, None] + 3 * np.arange(7)[None, :]
        d = c[np.minimum(t + 1, T - 1)] - c[np.clip(t - 1, 0, T - 1)]
        return np.concatenate([c, d.reshape(T, 49)], axis=1)

    results["sdc"] = run_case("sdc preset (7 MFCC + SDC 7-1-3-7)", ours_sdc, theirs_sdc, repeat,
                              check_frames, y.size / sr)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="signal length (default 10)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per implementation")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library default)")
    ap.add_argument("--no-frontends", dest="frontends", action="store_false",
                    help="only the MFCC rows (skip fbank, PLP, LFCC, SDC and the Kaldi presets)")
    args = ap.parse_args(argv)

    import librosa
    from threadpoolctl import threadpool_limits

    from gmmspeech.features import FeatureConfig, mfcc

    sr = 16000
    y = make_signal(sr, 60 * args.minutes)
    print(f"gmmspeech MFCC benchmark: {args.minutes:g} min of {sr} Hz audio ({y.size} samples), "
          f"best of {args.repeat}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, librosa {librosa.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    speech = FeatureConfig.preset("speech")
    libcfg = FeatureConfig.preset("librosa").replace(sample_rate=sr)

    def check_close(a, b):
        err = np.abs(a - b).max() / np.abs(b).max()
        assert a.shape == b.shape, (a.shape, b.shape)
        assert err < 1e-3, err

    def check_shape(a, b):
        # librosa frames n_fft samples when not centred, gmmspeech the 400-sample window
        assert a.shape[0] == b.shape[0] and abs(a.shape[1] - b.shape[1]) <= 2, (a.shape, b.shape)

    ctx = threadpool_limits(args.threads, "blas") if args.threads else None
    if ctx is not None:
        ctx.__enter__()
    try:
        results = {}
        results["speech"] = run_case(
            "speech preset (512/160, 40 mels)",
            lambda: mfcc(y, sr=sr, config=speech),
            lambda: librosa.feature.mfcc(
                y=y, sr=sr, n_mfcc=20, n_fft=512, hop_length=160, win_length=400,
                window="hamming", center=False, n_mels=40, fmin=20.0, fmax=7600.0, htk=True,
                norm="ortho", lifter=22,
            ),
            args.repeat,
            check_shape,
            y.size / sr,
        )
        results["librosa"] = run_case(
            "librosa preset (2048/512, 128 mels)",
            lambda: mfcc(y, sr=sr, config=libcfg),
            lambda: librosa.feature.mfcc(y=y, sr=sr),
            args.repeat,
            check_close,
            y.size / sr,
        )
        utterances = np.array_split(y, max(1, y.size // (sr // 2)))

        def ours_short():
            return [mfcc(u, sr=sr, config=speech) for u in utterances]

        def theirs_short():
            return [
                librosa.feature.mfcc(
                    y=u, sr=sr, n_mfcc=20, n_fft=512, hop_length=160, win_length=400,
                    window="hamming", center=False, n_mels=40, fmin=20.0, fmax=7600.0, htk=True,
                    norm="ortho", lifter=22,
                )
                for u in utterances
            ]

        def check_list(a, b):
            assert len(a) == len(b)
            check_shape(a[0], b[0])

        results["short"] = run_case(
            f"speech preset, {len(utterances)} x 0.5 s calls",
            ours_short, theirs_short, max(1, min(args.repeat, 3)), check_list, y.size / sr,
        )
        if args.frontends:
            results.update(frontend_cases(y, sr, args.repeat, check_close))
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    frames = 1 + (y.size - 400) // 160
    print(f"({frames} frames for the speech preset; target: ratio >= 2 against librosa and spafe, "
          ">= 1 against kaldi-native-fbank)")
    kaldi_rows = {"kaldi-mfcc", "kaldi-fbank"}
    worst = min(r[0] for k, r in results.items() if k not in kaldi_rows)
    print(f"worst best-of ratio against librosa/spafe {worst:.2f}x -> "
          f"{'target met' if worst >= 2 else 'below target'}")
    if kaldi_rows & set(results):
        wk = min(results[k][0] for k in kaldi_rows & set(results))
        print(f"worst best-of ratio against kaldi-native-fbank {wk:.2f}x -> "
              f"{'target met' if wk >= 1 else 'below target'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
