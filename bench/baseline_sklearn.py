"""A hand-written librosa + scikit-learn GMM-UBM, on the same dev/test splits as gmmspeech.

Usage (from the repository root)::

    .venv/bin/python bench/baseline_sklearn.py --data-root ../shared/datasets --work exp/baseline

What a user writes without gmmspeech (about thirty lines of real work below): librosa
MFCC (20 cepstra, 25 ms Hamming frames every 10 ms at 16 kHz, 40 mel bands) plus deltas
and delta-deltas, an energy VAD (frames within 30 dB of the loudest), utterance CMVN,
a 64-component diagonal ``sklearn.mixture.GaussianMixture`` UBM on the background data,
MAP adaptation of the means with relevance factor 16 written in numpy, and the average
frame log-likelihood ratio (speaker model minus UBM) through ``score_samples``. Nothing
is tuned. Metrics come from :mod:`gmmspeech.metrics` so both systems are measured alike.

Writes ``WORK/results.json``: ``{corpus: {"dev": {...}, "test": {...}}}`` with
``accuracy``, ``eer``, ``min_dcf_sre08``, ``n_tests``, ``n_speakers``, which
``bench/dev_search.py --report`` picks up (from ``<its work>/../baseline``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CORPORA = ("librispeech", "fsdd", "dspspeech20", "speechocean762")
SR = 16000
K = 64
RELEVANCE = 16.0


def read_rows(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def features(path: str, start: float | None, end: float | None) -> np.ndarray:
    import librosa

    dur = None if end is None else end - (start or 0.0)
    y, _ = librosa.load(path, sr=SR, offset=start or 0.0, duration=dur)
    m = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, n_fft=512, win_length=400, hop_length=160,
                             window="hamming", n_mels=40, fmin=20, fmax=7600)
    d1 = librosa.feature.delta(m, width=5)
    d2 = librosa.feature.delta(m, width=5, order=2)
    x = np.vstack([m, d1, d2]).T
    rms = librosa.feature.rms(y=y, frame_length=400, hop_length=160)[0][: x.shape[0]]
    e = 20 * np.log10(rms + 1e-10)
    x = x[: e.shape[0]][e > e.max() - 30]
    return ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype(np.float32)


def map_means(ubm, X: np.ndarray, r: float = RELEVANCE):
    post = ubm.predict_proba(X)
    n = post.sum(0)
    ex = (post.T @ X) / np.maximum(n, 1e-10)[:, None]
    alpha = (n / (n + r))[:, None]
    spk = copy.deepcopy(ubm)
    spk.means_ = alpha * ex + (1 - alpha) * ubm.means_
    return spk


def load_split(corpus: str, split: str, data_root: Path, cache: dict):
    out = {}
    for role in ("background", "enroll", "test"):
        rows = read_rows(ROOT / "data_manifests" / corpus / split / f"{role}.csv")
        feats = []
        for r in rows:
            key = (r["path"], r.get("start") or "", r.get("end") or "")
            if key not in cache:
                s = float(r["start"]) if r.get("start") else None
                e = float(r["end"]) if r.get("end") else None
                cache[key] = features(str(data_root / r["path"]), s, e)
            feats.append((r["label"], cache[key]))
        out[role] = feats
    return out


def run_split(data) -> dict:
    from sklearn.mixture import GaussianMixture

    from gmmspeech import metrics

    bg = np.vstack([x for _, x in data["background"]])
    ubm = GaussianMixture(K, covariance_type="diag", max_iter=100, random_state=0).fit(bg)
    enrol: dict[str, list] = {}
    for label, x in data["enroll"]:
        enrol.setdefault(label, []).append(x)
    labels = sorted(enrol)
    models = [map_means(ubm, np.vstack(enrol[lab])) for lab in labels]
    scores = np.empty((len(data["test"]), len(labels)))
    for i, (_, x) in enumerate(data["test"]):
        u = ubm.score_samples(x)
        scores[i] = [np.mean(m.score_samples(x) - u) for m in models]
    m = metrics.evaluate_scores(scores, labels, [lab for lab, _ in data["test"]])
    return {"accuracy": float(m["accuracy"]), "eer": float(m["eer"]),
            "min_dcf_sre08": float(m["min_dcf_sre08"]), "n_tests": int(m["n_tests"]),
            "n_speakers": len(labels)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--work", default=str(ROOT / "exp" / "baseline"))
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=CORPORA)
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_path = work / "results.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    for corpus in args.corpora:
        cache: dict = {}
        for split in ("dev", "test"):
            t0 = time.perf_counter()
            res = run_split(load_split(corpus, split, Path(args.data_root), cache))
            res["seconds"] = round(time.perf_counter() - t0, 1)
            results.setdefault(corpus, {})[split] = res
            out_path.write_text(json.dumps(results, indent=1, sort_keys=True))
            print(f"{corpus}/{split}: accuracy {100 * res['accuracy']:.2f} %  EER {100 * res['eer']:.2f} %  "
                  f"minDCF08 {res['min_dcf_sre08']:.3f}  ({res['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
