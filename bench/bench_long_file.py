"""Peak memory of feature extraction for one long file: block by block against the
whole-file path and against librosa, in the same run.

Writes a 16 kHz 16-bit WAV of ``--hours`` (default 2) of speech-like audio (generated
block by block: voiced stretches with a wandering pitch, noise, pauses), then runs each
extractor in a fresh Python process and reads that process's peak RSS
(``ru_maxrss``):

1. ``gmmspeech`` block by block: :func:`gmmspeech.features.streaming.extract_to_file`
   (``speech`` preset: MFCC + deltas + VAD + utterance CMVN, 60 dims), what
   ``gmmspeech features`` runs for every file;
2. ``gmmspeech`` whole file: :func:`gmmspeech.features.extract` then ``np.save`` (the
   path the store used before: the signal, the frames and every intermediate in memory);
3. ``librosa``: ``librosa.load`` then ``librosa.feature.mfcc`` with the same analysis
   (400-sample Hamming window, hop 160, 40 HTK mel bands 20-7600 Hz, 20 cepstra, lifter
   22, no centring) plus ``librosa.feature.delta`` (orders 1 and 2), then ``np.save``.

A fourth process only imports the three (the interpreter and library baseline). The
target is a peak <= 400 MB for the block-by-block path on a 2-hour file. Times are wall
clock on a shared machine and only indicative.

Usage::

    python bench/bench_long_file.py              # 2 hours
    python bench/bench_long_file.py --hours 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SR = 16000

_RUNNERS = {
    "baseline (imports only)": """
import gmmspeech.features.streaming, gmmspeech.features, librosa, numpy
""",
    "gmmspeech block by block": """
from gmmspeech.features.streaming import extract_to_file
info = extract_to_file(WAV, OUT)
FRAMES = info.frames
""",
    "gmmspeech whole file (old path)": """
import numpy as np
from gmmspeech.features import extract
X = extract(WAV)
np.save(OUT, X)
FRAMES = X.shape[0]
""",
    "librosa": """
import numpy as np, librosa
y, sr = librosa.load(WAV, sr=16000)
M = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512, hop_length=160, win_length=400,
                         window="hamming", center=False, n_mels=40, fmin=20, fmax=7600,
                         htk=True, lifter=22)
X = np.concatenate([M, librosa.feature.delta(M, order=1), librosa.feature.delta(M, order=2)]).T
np.save(OUT, X.astype(np.float32))
FRAMES = X.shape[0]
""",
}

_WRAPPER = """
import json, resource, sys, time
WAV, OUT = sys.argv[1], sys.argv[2]
FRAMES = None
t0 = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - t0, "frames": FRAMES,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_long_wav(path: str, hours: float, seed: int = 0) -> float:
    """A speech-like 16 kHz PCM_16 WAV written a minute at a time; returns its seconds.

    One minute of bench_mfcc's speech-like audio (wandering pitch, formant-shaped harmonics,
    pauses) is synthesised once; every minute written is it with its own gain and fresh
    noise."""
    import soundfile as sf
    from bench_mfcc import make_signal  # the speech-like test audio of the MFCC benchmark

    rng = np.random.default_rng(seed)
    block = 60 * SR
    base = make_signal(SR, 60.0, seed=seed).astype(np.float64)
    total = int(hours * 3600 * SR)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            y = base[:n] * rng.uniform(0.5, 1.5) + 0.001 * rng.standard_normal(n)
            f.write(y.astype(np.float32))
    return total / SR


def run(name: str, wav: str, out: str) -> dict:
    code = _WRAPPER.format(body=_RUNNERS[name])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code, wav, out], capture_output=True, text=True,
                         env=env)
    try:
        os.unlink(out)
    except FileNotFoundError:
        pass
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--dir", default=None, help="folder for the test file (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-long-") as d:
        wav = os.path.join(d, "long.wav")
        t0 = time.perf_counter()
        seconds = write_long_wav(wav, args.hours)
        print(f"{seconds / 3600:.2f} h of 16 kHz audio ({os.path.getsize(wav) / 1e6:.0f} MB WAV), "
              f"written in {time.perf_counter() - t0:.0f} s", flush=True)
        results = {}
        for name in _RUNNERS:
            results[name] = r = run(name, wav, os.path.join(d, "out.npy"))
            if "error" in r:
                print(f"{name:34s} failed: {r['error']}", flush=True)
            else:
                frames = "" if r["frames"] is None else f"{r['frames']:>9d} frames"
                print(f"{name:34s} peak RSS {r['peak_mb']:7.0f} MB  {r['seconds']:7.1f} s  {frames}",
                      flush=True)
    ours = results["gmmspeech block by block"].get("peak_mb")
    base = results["baseline (imports only)"].get("peak_mb")
    if ours is not None:
        print()
        for name in ("gmmspeech whole file (old path)", "librosa"):
            other = results[name].get("peak_mb")
            if other is not None:
                print(f"peak memory: {name} / block by block = {other / ours:.1f}x "
                      f"(above the import baseline: {(other - base) / max(ours - base, 1):.0f}x)")
        verdict = "met" if ours <= 400 else "NOT met"
        print(f"target: block by block <= 400 MB for a 2-hour file: {ours:.0f} MB ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
