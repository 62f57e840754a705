"""Benchmark: one GMM per class on real speech, gmmspeech against scikit-learn.

Two speaker-independent tasks of ``data_manifests/``: FSDD spoken digits (10 classes,
train on 4 speakers, test on 2) and DSPSpeech-20 isolated words (20 classes, train on 18
speakers, test on 5). For each:

1. **dev** -- the per-class settings (components, covariance, EM or MAP from a UBM) are
   chosen by ``cross_val_score`` of :class:`gmmspeech.GMMClassifier` over the *training*
   speakers only (leave-one-speaker-out on FSDD, 3 speaker folds on DSPSpeech; the same
   folds ``cross_val_score(..., groups=speakers)`` would use); the test speakers are never
   looked at. The dev log-loss of the posteriors for each ``likelihood_scale`` is printed
   too (calibration; the scale never changes the arg-max with equal priors).
2. **test** -- ``gmmspeech train-classes`` / ``gmmspeech classify`` run with the chosen
   settings on the train / test manifests (the numbers of ``results.json``), and a
   hand-built per-class scikit-learn ``GaussianMixture`` (same K, covariance, k-means
   initialisation, tolerance, reg_covar) is fitted on the same features and scored on
   the same test files. Printed side by side: accuracy and fit time of all the class
   models, and the speed-up ratio. Run with one BLAS/numba thread (as below): on a
   shared machine multi-threaded BLAS on these small per-class problems only spins.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        python bench/bench_classes.py --data-root ../shared/datasets --work bench-out/classes
    python bench/bench_classes.py --corpus fsdd --quick      # small grid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CORPORA = {
    # name: (train manifest, test manifest, sample rate, speaker of an id, dev folds)
    "fsdd": ("fsdd/digits_train.csv", "fsdd/digits_test.csv", 8000, lambda i: i.split("_")[0], None),
    "dspspeech20": ("dspspeech20/words_train.csv", "dspspeech20/words_test.csv", 16000,
                    lambda i: i.split("-")[0], 3),
}

# candidate per-class settings (chosen on dev): (name, GMMClassifier kwargs)
GRID = [
    ("diag K=8", dict(n_components=8, covariance_type="diag")),
    ("diag K=32", dict(n_components=32, covariance_type="diag")),
    ("full K=4", dict(n_components=4, covariance_type="full")),
    ("MAP from UBM K=64 r=4", dict(n_components=64, covariance_type="diag", ubm="fit",
                                   relevance_factor=4.0)),
]
QUICK_GRID = [GRID[0], GRID[2]]
SCALES = ["average", "total", 0.1]
COMMON = dict(tol=1e-3, max_iter=100, random_state=0)  # reg_covar: the default 1e-6 for both


def _features(manifest, config, store_dir, data_root, jobs):
    from gmmspeech.speaker.pipeline import build_features

    store, rows, bad = build_features(manifest, os.path.join(store_dir, config.config_hash()),
                                      config=config, data_root=data_root, n_jobs=jobs,
                                      progress=False)
    X = [np.asarray(store.load(r.id, mmap=False)) for r in rows]
    return X, np.array([r.label for r in rows]), [r.id for r in rows], bad


def _dev(X, y, groups, folds, grid):
    """Speaker-grouped cross-validation over the training speakers: accuracy of every
    candidate, and the log-loss of its posteriors for every likelihood scale (computed
    from the same fitted models: the scale only changes the posterior)."""
    from scipy.special import log_softmax
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    from gmmspeech import GMMClassifier

    cv = LeaveOneGroupOut() if folds is None else GroupKFold(n_splits=folds)
    splits = list(cv.split(X, y, groups))
    table = []
    for name, kw in grid:
        t = time.perf_counter()
        accs, losses = [], {str(s): [] for s in SCALES}
        for tr, te in splits:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = GMMClassifier(**kw, **COMMON).fit([X[i] for i in tr], y[tr])
            Xd = [X[i] for i in te]
            L = clf.log_likelihoods(Xd)
            T = np.array([u.shape[0] for u in Xd], dtype=float)
            truth = np.searchsorted(clf.classes_, y[te])
            accs.append(float(np.mean(np.argmax(L, axis=1) == truth)))
            for s in SCALES:
                f = 1.0 / T if s == "average" else np.ones_like(T) * (1.0 if s == "total" else s)
                lp = log_softmax(L * f[:, None] + np.log(clf.class_prior_), axis=1)
                losses[str(s)].append(float(-np.mean(lp[np.arange(len(te)), truth])))
        acc = np.array(accs)
        ll = {s: float(np.mean(v)) for s, v in losses.items()}
        table.append((name, kw, float(acc.mean()), float(acc.std()), time.perf_counter() - t, ll))
        print(f"  dev  {name:24s} accuracy {100 * acc.mean():6.2f} % (+- {100 * acc.std():.2f} "
              f"over {len(acc)} speaker folds)  log-loss " +
              " ".join(f"{s}:{v:.3f}" for s, v in ll.items()) +
              f"  {time.perf_counter() - t:6.1f} s", flush=True)
    best = max(table, key=lambda r: (round(r[2], 6), -GRID.index((r[0], r[1]))))
    return table, best, best[5]


def _sklearn_fit_predict(X, y, Xt, kw):
    from sklearn.mixture import GaussianMixture

    classes = np.unique(y)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [GaussianMixture(kw["n_components"], covariance_type=kw["covariance_type"],
                                  reg_covar=1e-6, tol=COMMON["tol"],
                                  max_iter=COMMON["max_iter"], random_state=0)
                  .fit(np.concatenate([x for x, c in zip(X, y) if c == k])) for k in classes]
    fit_s = time.perf_counter() - t
    Xc = np.concatenate(Xt)
    starts = np.concatenate([[0], np.cumsum([u.shape[0] for u in Xt[:-1]])])
    L = np.stack([np.add.reduceat(m.score_samples(Xc), starts) for m in models], axis=1)
    return classes[np.argmax(L, axis=1)], fit_s


def _gmmspeech_fit_score(X, y, Xt, yt, kw):
    from gmmspeech import GMMClassifier

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = GMMClassifier(**kw, **COMMON).fit(X, y)
    fit_s = time.perf_counter() - t
    return float(clf.score(Xt, yt)), fit_s


def run_corpus(name, args) -> dict:
    from gmmspeech.cli import main as cli
    from gmmspeech.features.config import FeatureConfig

    train_m, test_m, sr, speaker_of, folds = CORPORA[name]
    train_m, test_m = ROOT / "data_manifests" / train_m, ROOT / "data_manifests" / test_m
    config = FeatureConfig.preset("speech").replace(sample_rate=sr)
    work = Path(args.work) / name
    store = work / "features"
    print(f"== {name}: features ({config.n_features} dims at {sr} Hz)", flush=True)
    X, y, ids, _ = _features(train_m, config, store, args.data_root, args.jobs)
    Xt, yt, _, _ = _features(test_m, config, store, args.data_root, args.jobs)
    groups = np.array([speaker_of(i) for i in ids])
    print(f"   train {len(X)} files ({len(set(groups))} speakers, {sum(map(len, X))} frames), "
          f"test {len(Xt)} files", flush=True)
    table, best, scales = _dev(X, y, groups, folds, QUICK_GRID if args.quick else GRID)
    bname, bkw = best[0], best[1]
    print(f"   chosen on dev: {bname}", flush=True)

    # test: the CLI with the chosen settings
    models, out = work / "models", work / "classify"
    argv = ["train-classes", str(train_m), "--out", str(models), "--data-root", str(args.data_root),
            "--sample-rate", str(sr), "--features-dir", str(store), "-k", str(bkw["n_components"]),
            "--covariance", bkw["covariance_type"], "--seed", "0", "--quiet"]
    ubm_path = None
    if bkw.get("ubm") == "fit":
        ubm_path = work / "ubm.npz"
        from gmmspeech import GMM, save

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ubm = GMM(bkw["n_components"], random_state=0).fit(
                np.concatenate(X))
        save(ubm, ubm_path, metadata={"feature_config": config.to_dict()})
        argv += ["--ubm", str(ubm_path), "--relevance", str(bkw["relevance_factor"])]
    t = time.perf_counter()
    if cli(argv) not in (0, 1):
        sys.exit(f"train-classes failed on {name}")
    t_train = time.perf_counter() - t
    if cli(["classify", "--models", str(models), "--manifest", str(test_m), "--out", str(out),
            "--data-root", str(args.data_root), "--features-dir", str(store), "--quiet"]) not in (0, 1):
        sys.exit(f"classify failed on {name}")
    res = json.loads((out / "results.json").read_text())

    # scikit-learn has no MAP from a UBM: the comparison uses the best EM setting on dev
    em = max((r for r in table if r[1].get("ubm") is None),
             key=lambda r: (round(r[2], 6), -GRID.index((r[0], r[1]))))
    sk_kw = em[1]
    em_acc, fit_ours = _gmmspeech_fit_score(X, y, Xt, yt, sk_kw)
    sk_pred, fit_sk = _sklearn_fit_predict(X, y, Xt, sk_kw)
    sk_acc = float(np.mean(sk_pred == yt))
    out_row = {
        "corpus": name, "chosen": bname, "dev": [(r[0], r[2], r[3]) for r in table],
        "dev_log_loss": scales, "test_accuracy_cli": res["accuracy"],
        "test_balanced_accuracy": res["balanced_accuracy"], "test_log_loss": res.get("log_loss"),
        "n_tests": res["n_tests"], "compared_setting": em[0],
        "test_accuracy_gmmspeech_same_setting": float(em_acc), "test_accuracy_sklearn": sk_acc,
        "fit_seconds_gmmspeech": fit_ours, "fit_seconds_sklearn": fit_sk,
        "train_classes_seconds": t_train,
    }
    print(f"   test ({res['n_tests']} files of unseen speakers): train-classes/classify "
          f"{100 * res['accuracy']:.2f} %  ({bname})", flush=True)
    print(f"   same setting ({out_row['compared_setting']}): gmmspeech {100 * em_acc:.2f} %  "
          f"scikit-learn {100 * sk_acc:.2f} %;  fit gmmspeech {fit_ours:.2f} s  "
          f"scikit-learn {fit_sk:.2f} s  ratio {fit_sk / fit_ours:.1f}x", flush=True)
    return out_row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--work", default=str(ROOT / "bench-out" / "classes"))
    ap.add_argument("--corpus", choices=sorted(CORPORA), action="append")
    ap.add_argument("--jobs", type=int, default=2, help="feature extraction workers")
    ap.add_argument("--quick", action="store_true", help="three dev candidates only")
    args = ap.parse_args(argv)
    if not Path(args.data_root).is_dir():
        sys.exit(f"datasets not found at {args.data_root} (--data-root)")
    rows = [run_corpus(c, args) for c in (args.corpus or sorted(CORPORA))]
    print("\n| corpus | chosen on dev | test accuracy (train-classes/classify) | "
          "same setting: gmmspeech | scikit-learn | fit s gmmspeech | fit s scikit-learn | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} | {r['chosen']} | {100 * r['test_accuracy_cli']:.2f} % | "
              f"{100 * r['test_accuracy_gmmspeech_same_setting']:.2f} % ({r['compared_setting']}) | "
              f"{100 * r['test_accuracy_sklearn']:.2f} % | {r['fit_seconds_gmmspeech']:.2f} | "
              f"{r['fit_seconds_sklearn']:.2f} | {r['fit_seconds_sklearn'] / r['fit_seconds_gmmspeech']:.1f}x |")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    (Path(args.work) / "results.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
