#!/usr/bin/env python3
"""Spoken digits on FSDD with one GMM per digit, leave-one-speaker-out, beside scikit-learn.

    recipes/digits/run.py [--stage N] [--stop-stage N] [--quick] [--data-root R] [--out DIR] [-j N]

Stages (each a `gmmspeech` command unless marked; the commands of a run are in OUT/commands.sh):
  0  data       data_manifests/fsdd/digits.csv (6 speakers x 10 digits x 50 recordings); one
                fold per speaker: train on the other five, test on every recording of this
                one -> OUT/data/all.csv, OUT/data/<speaker>/{train,test}.csv
  1  features   one feature store (the `speech` preset at 8 kHz) -> OUT/feats
  for each system and each fold (OUT/exp/<system>/<speaker>/):
  2  train      train-classes: one GMM per digit on the five training speakers
  3  classify   classify: every test recording gets the digit of the most probable model
  4  reference  (the script) scikit-learn's GaussianMixture, same features and settings
  5  report     OUT/report.md and OUT/results.json, rewritten after every fold

A finished step is never redone: re-running after a kill continues where it stopped.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from gmmspeech.cli.steps import (  # noqa: E402
    Recipe,
    parse_args,
    read_relative,
    repo_root,
    require_corpus,
    write_manifest_rows,
)

args = parse_args("digits", __doc__.splitlines()[0])
# name -> train-classes options; the reference below reads -k and --covariance from them.
# The scikit-learn reference takes the same: k-means initialisation (both), at most
# --iterations EM iterations, tolerance 1e-3 (both defaults), 1e-3 added to the variances.
SYSTEMS = {"diag-16": ["-k", "16", "--covariance", "diag"]}
TRAIN = ["--iterations", "100", "--reg-covar", "1e-3", "--priors", "uniform", "--seed", "0"]
FEATURES = ["--preset", "speech", "--sample-rate", "8000"]  # FSDD is recorded at 8 kHz
PER_DIGIT, FOLDS = None, None  # recordings per speaker and digit, folds: all
if args.quick:  # a small run: 4 components, 4 recordings per speaker and digit, 2 folds
    SYSTEMS = {"diag-4": ["-k", "4", "--covariance", "diag"]}
    PER_DIGIT, FOLDS = 4, 2
DIGITS = [str(d) for d in range(10)]


def report_body(rep):
    """The results part of report.md: per-fold accuracies of both implementations."""
    for name, res in r.results["systems"].items():
        rep.heading(name, 3)
        rows = [[f["speaker"], f["n_test"], _pct(f["accuracy"]), _pct(f.get("accuracy_sklearn")),
                 _pct(f.get("agreement_with_sklearn"))] for f in res["folds"]]
        rows.append(["all folds", res["n_test"], _pct(res["accuracy"]),
                     _pct(res.get("accuracy_sklearn")), _pct(res.get("agreement_with_sklearn"))])
        rep.table(["held-out speaker", "test files", "accuracy % (gmmspeech)",
                   "accuracy % (scikit-learn)", "same decision %"], rows, floatfmt=".1f")
        rep.text("Accuracy: test recordings given their true digit (chance: 10 %). Same "
                 "decision: recordings both implementations give the same digit.")
        if res.get("fit_seconds_sklearn"):
            rep.text(f"Training the per-digit models of these folds took {res['fit_seconds']:.1f} s "
                     f"with gmmspeech and {res['fit_seconds_sklearn']:.1f} s with scikit-learn "
                     "(initialisation and EM, same frames and settings, this run; scikit-learn "
                     "on one thread, gmmspeech with its defaults).")
        if res.get("confusion_png"):
            rep.add_image(res["confusion_png"], f"{name}: confusion matrix over the held-out "
                          "speakers (rows: true digit, rows normalised).")


def _pct(v):
    return None if v is None else 100.0 * v


r = Recipe("digits", "Spoken digits: one GMM per digit on FSDD (speaker-independent)", args,
           credits=("fsdd",), body=report_body, intro=(
    "Ten Gaussian mixtures, one per digit, trained on five FSDD speakers and tested on every "
    "recording of the sixth; the six speakers are rotated (leave one speaker out). A recording "
    "gets the digit whose model gives its frames the largest likelihood (equal priors). "
    "scikit-learn's `GaussianMixture` with the same settings is trained on the same features as "
    "an independent reference. Features: the `speech` preset at 8 kHz (MFCC with log-energy, "
    "deltas, energy VAD, utterance CMVN)."))
data, R = r.data, ["--data-root", r.data_root]

if r.stage(0, "data"):
    require_corpus("fsdd", r.data_root, "digits")
    rows = read_relative(repo_root() / "data_manifests" / "fsdd" / "digits.csv", r.data_root)
    if PER_DIGIT:  # ids are <speaker>_<digit>_<index>
        rows = [x for x in rows if int(x.id.rsplit("_", 1)[1]) < PER_DIGIT]
    write_manifest_rows(data / "all.csv", rows)
    speakers = sorted({x.id.split("_")[0] for x in rows})[:FOLDS]
    for spk in speakers:
        write_manifest_rows(data / spk / "train.csv", [x for x in rows if not x.id.startswith(spk + "_")])
        write_manifest_rows(data / spk / "test.csv", [x for x in rows if x.id.startswith(spk + "_")])
    r.say(f"   {len(rows)} recordings, folds (held-out speakers): {', '.join(speakers)}")
if r.stage(1, "features"):
    r.gmmspeech("features", data / "all.csv", *FEATURES, *R, "--out", r.feats)
folds = sorted(p.parent.name for p in data.glob("*/test.csv"))  # the held-out speakers
if not folds and (args.stop_stage is None or args.stop_stage >= 2):
    sys.exit(f"recipes/digits/run.py: error: no fold in {data}: run stage 0 first")


def sklearn_reference(train_csv, test_csv, k, covariance, iterations):
    """The same protocol with scikit-learn's GaussianMixture (the script's own step)."""
    def write(tmp):
        import numpy as np
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        from gmmspeech.corpus.manifest import read_manifest
        from gmmspeech.corpus.store import FeatureStore

        store = FeatureStore(r.feats)
        train, test = read_manifest(train_csv), read_manifest(test_csv)
        seconds, models = 0.0, []
        # one OpenMP/BLAS thread: k-means' threads spin (burning CPU) on a busy machine
        with threadpool_limits(1):
            for d in DIGITS:
                X = np.concatenate([store.load(x.id, mmap=False) for x in train if x.label == d])
                t = time.perf_counter()
                models.append(GaussianMixture(k, covariance_type=covariance, max_iter=iterations,
                                              tol=1e-3, reg_covar=1e-3, random_state=0).fit(X))
                seconds += time.perf_counter() - t
            lines = ["id\tpredicted\tlabel"]
            for x in test:
                frames = store.load(x.id, mmap=False)
                best = max(range(10), key=lambda i: models[i].score(frames))  # mean log-likelihood
                lines.append(f"{x.id}\t{DIGITS[best]}\t{x.label}")
        (tmp / "predictions.tsv").write_text("\n".join(lines) + "\n")
        (tmp / "results.json").write_text(json.dumps({"fit_seconds": seconds}) + "\n")
    return write


def predictions(path):
    lines = Path(path).read_text().splitlines()[1:]
    return {c[0]: (c[1], c[-1]) for c in (line.split("\t") for line in lines)}  # id -> (pred, label)


for name, options in SYSTEMS.items():
    k, covariance = options[options.index("-k") + 1], options[options.index("--covariance") + 1]
    iterations = int(TRAIN[TRAIN.index("--iterations") + 1])
    t0 = time.perf_counter()
    summary = {"train-classes": options + TRAIN, "folds": [], "fit_seconds": 0.0}
    for spk in folds:
        fold = r.out / "exp" / name / spk
        if r.stage(2, f"{name}, held-out {spk}: train"):
            r.gmmspeech("train-classes", data / spk / "train.csv", *options, *TRAIN, *FEATURES,
                        "--features-dir", r.feats, *R, "--out", fold / "models", out=fold / "models")
        if r.stage(3, f"{name}, held-out {spk}: classify"):
            r.gmmspeech("classify", "--models", fold / "models", "--manifest", data / spk / "test.csv",
                        *R, "--out", fold / "classify", out=fold / "classify")
        if r.stage(4, f"{name}, held-out {spk}: scikit-learn reference"):
            try:
                import sklearn  # noqa: F401
            except ImportError:
                r.say("   scikit-learn is not installed (pip install scikit-learn): reference skipped")
            else:
                r.produce(fold / "sklearn", sklearn_reference(data / spk / "train.csv",
                          data / spk / "test.csv", int(k), covariance, iterations),
                          "scikit-learn GaussianMixture")
        # stage 5: this fold's figures into the report (from the files the steps wrote)
        if not (fold / "classify" / "results.json").is_file():
            continue
        res = json.loads((fold / "classify" / "results.json").read_text())
        f = {"speaker": spk, "n_test": res["n_tests"], "accuracy": res["accuracy"],
             "confusion_matrix": res["confusion_matrix"]}
        summary["fit_seconds"] += json.loads((fold / "models" / "classes.json").read_text()
                                             )["metadata"].get("fit_seconds", 0.0)
        if (fold / "sklearn" / "predictions.tsv").is_file():
            ours, ref = predictions(fold / "classify" / "predictions.tsv"), predictions(fold / "sklearn" / "predictions.tsv")
            f["accuracy_sklearn"] = sum(p == lab for p, lab in ref.values()) / len(ref)
            f["agreement_with_sklearn"] = sum(ours[i][0] == ref[i][0] for i in ref) / len(ref)
            f["fit_seconds_sklearn"] = json.loads((fold / "sklearn" / "results.json").read_text())["fit_seconds"]
        summary["folds"].append(f)
        if r.stage(5, f"{name}: report after {spk}"):
            n = sum(x["n_test"] for x in summary["folds"])
            summary["n_test"] = n
            summary["accuracy"] = sum(x["accuracy"] * x["n_test"] for x in summary["folds"]) / n
            if all("accuracy_sklearn" in x for x in summary["folds"]):
                for key in ("accuracy_sklearn", "agreement_with_sklearn"):
                    summary[key] = sum(x[key] * x["n_test"] for x in summary["folds"]) / n
                summary["fit_seconds_sklearn"] = sum(x["fit_seconds_sklearn"] for x in summary["folds"])
            import numpy as np

            from gmmspeech import plots

            cm = np.sum([x["confusion_matrix"] for x in summary["folds"]], axis=0)
            summary["confusion_matrix"] = cm.tolist()
            summary["confusion_png"] = f"exp/{name}/confusion.png"
            plots.confusion_plot(cm, DIGITS, path=r.out / summary["confusion_png"],
                                 title=f"{name}: digits, held-out speakers (rows: truth)")
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            r.results["systems"][name] = summary
            r.write_report()
    if summary.get("accuracy") is not None:
        r.say(f"== {name}: accuracy {100 * summary['accuracy']:.1f} % over {len(summary['folds'])} "
              "held-out speakers" + (f", scikit-learn {100 * summary['accuracy_sklearn']:.1f} %"
                                    if "accuracy_sklearn" in summary else ""))
r.finish()
