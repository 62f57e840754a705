"""Spoken-digit recognition with one GMM per digit on FSDD, speaker-independent.

Protocol: the six FSDD speakers are rotated: each fold trains one mixture per digit on
the recordings of five speakers and tests on every recording of the sixth. An
utterance is assigned the digit whose model gives its frames the highest total
log-likelihood (equal priors). The same features feed scikit-learn's
``GaussianMixture`` (same number of components, covariance type and k-means
initialisation) as an independent reference; accuracies are printed side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

DIGITS = [str(d) for d in range(10)]


def _speaker_of(row) -> str:
    # FSDD ids are "{speaker}_{digit}_{index}"
    return row.id.split("_")[0]


def _index_of(row) -> int:
    return int(row.id.rsplit("_", 1)[1])


def _utterance_scores(models, frames: list[np.ndarray], score_samples) -> np.ndarray:
    """(n_utterances, n_models) total log-likelihood of each utterance under each model."""
    X = np.concatenate(frames)
    starts = np.cumsum([0] + [f.shape[0] for f in frames[:-1]])
    return np.stack([np.add.reduceat(score_samples(m, X), starts) for m in models], axis=1)


def run(*, out, data_root=None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        backend: str | None = None, scheduler: str | None = None,
        n_components: int | None = None, covariance_type: str = "diag",
        max_per_class: int | None = None, max_folds: int | None = None,
        sklearn: bool = True, manifest: str | None = None, verbose: bool = True) -> dict:
    """Run the FSDD digit recipe; writes ``out/report.md`` and ``out/results.json``.

    Parameters
    ----------
    out : path-like
        Output folder (the feature store goes to ``out/features``).
    data_root : path-like
        The shared datasets folder (holding ``fsdd/recordings``).
    quick : bool
        Small run: 10 recordings per digit and speaker, 2 folds, 4 components.
    seed : int
        Seed of the mixture initialisations.
    n_jobs, backend, scheduler
        Parallel feature extraction (see :mod:`gmmspeech.parallel`).
    n_components : int or None
        Components per digit model (default 16; 4 with ``quick``).
    covariance_type : {"diag", "full"}
    max_per_class : int or None
        At most this many recordings per digit and speaker.
    max_folds : int or None
        Run only the first folds (speakers in alphabetical order).
    sklearn : bool
        Compare with scikit-learn's GaussianMixture (skipped with a note when not installed).
    manifest : path-like or None
        Digit manifest (default ``data_manifests/fsdd/digits.csv`` of the repository).
    verbose : bool
        Print the results table.
    """
    from gmmspeech import metrics, plots
    from gmmspeech.classes import GMMClassifier
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.recipes._common import default_manifest, require_data_root

    t0 = time.perf_counter()
    data_root = require_data_root(data_root, "fsdd", "digits")
    manifest = Path(manifest) if manifest else default_manifest("fsdd", "digits.csv")
    K = int(n_components or (4 if quick else 16))
    if covariance_type not in ("diag", "full"):
        raise ValueError(f"covariance_type must be 'diag' or 'full', got {covariance_type!r}")
    per_class = max_per_class or (10 if quick else None)
    folds_max = max_folds or (2 if quick else None)

    rows = read_manifest(manifest, data_root=data_root)
    if per_class:
        rows = [r for r in rows if _index_of(r) < per_class]
    speakers = sorted({_speaker_of(r) for r in rows})
    if len(speakers) < 2:
        raise ValueError(f"{manifest}: need at least two speakers, found {speakers}")
    config = FeatureConfig.preset("speech").replace(sample_rate=8000)
    store = FeatureStore(Path(out) / "features")
    build = store.build(rows, config=config, n_jobs=n_jobs, backend=backend,
                        scheduler=scheduler, progress=verbose)
    bad = {fid for fid, _, _ in build.failed}
    rows = [r for r in rows if r.id not in bad]
    feats = {r.id: np.asarray(store.load(r.id, mmap=False), dtype=np.float32) for r in rows}
    t_feat = time.perf_counter() - t0

    try:
        if not sklearn:
            raise ImportError
        from sklearn.mixture import GaussianMixture
    except ImportError:
        GaussianMixture = None

    folds = []
    all_true, all_pred, all_pred_sk = [], [], []
    fit_ours = fit_sk = 0.0
    for test_speaker in speakers[: folds_max or len(speakers)]:
        train = [r for r in rows if _speaker_of(r) != test_speaker]
        test = [r for r in rows if _speaker_of(r) == test_speaker]
        train_X = [feats[r.id] for r in train]
        train_y = [r.label for r in train]
        t = time.perf_counter()
        clf = GMMClassifier(K, covariance_type=covariance_type, max_iter=100, tol=1e-3,
                            reg_covar=1e-3, random_state=seed).fit(train_X, train_y)
        fit_ours += time.perf_counter() - t
        sk_models = []
        if GaussianMixture is not None:
            for d in DIGITS:
                X = np.concatenate([x for x, lab in zip(train_X, train_y) if lab == d])
                t = time.perf_counter()
                sk_models.append(GaussianMixture(K, covariance_type=covariance_type, max_iter=100,
                                                 tol=1e-3, reg_covar=1e-3,
                                                 random_state=seed).fit(X))
                fit_sk += time.perf_counter() - t
        frames = [feats[r.id] for r in test]
        truth = [r.label for r in test]
        pred = [str(p) for p in clf.predict(frames)]
        fold = {"test_speaker": test_speaker, "n_train": len(train), "n_test": len(test),
                "accuracy": metrics.accuracy(truth, pred)}
        all_true += truth
        all_pred += pred
        if sk_models:
            sk_scores = _utterance_scores(sk_models, frames, lambda m, X: m.score_samples(X))
            sk_pred = [DIGITS[i] for i in np.argmax(sk_scores, axis=1)]
            fold["accuracy_sklearn"] = metrics.accuracy(truth, sk_pred)
            fold["agreement_with_sklearn"] = float(np.mean(np.asarray(pred) == np.asarray(sk_pred)))
            all_pred_sk += sk_pred
        folds.append(fold)
        if verbose:
            extra = (f", scikit-learn {100 * fold['accuracy_sklearn']:.1f} %"
                     if "accuracy_sklearn" in fold else "")
            print(f"fold {test_speaker}: accuracy {100 * fold['accuracy']:.1f} %{extra}", flush=True)

    acc = metrics.accuracy(all_true, all_pred)
    results: dict = {
        "recipe": "digits",
        "quick": bool(quick),
        "n_components": K,
        "covariance_type": covariance_type,
        "n_files": len(rows),
        "n_failed": len(build.failed),
        "speakers": speakers,
        "folds": folds,
        "accuracy": acc,
        "mean_fold_accuracy": float(np.mean([f["accuracy"] for f in folds])),
        "fit_seconds": fit_ours,
        "feature_seconds": t_feat,
    }
    if all_pred_sk:
        results["accuracy_sklearn"] = metrics.accuracy(all_true, all_pred_sk)
        results["fit_seconds_sklearn"] = fit_sk
        results["agreement_with_sklearn"] = float(np.mean(np.asarray(all_pred) == np.asarray(all_pred_sk)))

    cm = metrics.confusion_matrix(all_true, all_pred, labels=DIGITS)
    results["confusion_matrix"] = np.asarray(cm).tolist()

    rep = Report(out, "Spoken digits: one GMM per digit on FSDD (speaker-independent)")
    rep.text(
        f"Each of the {len(folds)} folds trains ten {K}-component {covariance_type}-covariance "
        "mixtures (one per digit, k-means initialisation, reg_covar 1e-3) on five speakers and "
        "tests on every recording of the held-out speaker; a recording gets the digit whose "
        "model gives its frames the largest total log-likelihood. Features: the `speech` "
        "preset at 8 kHz (20 MFCC with log-energy, deltas, delta-deltas, energy VAD, "
        f"utterance CMVN; {config.n_features} dimensions). "
        f"{len(rows)} recordings" + (f" ({len(build.failed)} unreadable, listed in "
                                     f"features/errors.tsv)" if build.failed else "") + "."
    )
    if per_class:
        rep.text(f"Reduced run: at most {per_class} recordings per digit and speaker.")
    cols = ["held-out speaker", "test files", "accuracy % (gmmspeech)"]
    if all_pred_sk:
        cols += ["accuracy % (scikit-learn)", "same decision %"]
    table = []
    for f in folds:
        row = [f["test_speaker"], f["n_test"], 100 * f["accuracy"]]
        if all_pred_sk:
            row += [100 * f["accuracy_sklearn"], 100 * f["agreement_with_sklearn"]]
        table.append(row)
    total = ["all folds", sum(f["n_test"] for f in folds), 100 * acc]
    if all_pred_sk:
        total += [100 * results["accuracy_sklearn"], 100 * results["agreement_with_sklearn"]]
    table.append(total)
    rep.table(cols, table, floatfmt=".1f")
    if all_pred_sk:
        rep.text(f"Training time of the per-digit models: gmmspeech {fit_ours:.1f} s, "
                 f"scikit-learn {fit_sk:.1f} s (same data, same settings).")
    elif sklearn:
        rep.text("scikit-learn is not installed: the comparison is skipped.")
    plots.confusion_plot(cm, DIGITS, path=Path(out) / "confusion.png",
                         title="Digits, all folds (rows: truth)")
    rep.add_image("confusion.png", "Confusion matrix over all held-out speakers, rows normalised")
    fig, ax = rep.figure("accuracy_per_speaker.png", "Accuracy per held-out speaker")
    xs = np.arange(len(folds))
    width = 0.38 if all_pred_sk else 0.6
    ax.bar(xs - (width / 2 if all_pred_sk else 0), [100 * f["accuracy"] for f in folds], width,
           label="gmmspeech")
    if all_pred_sk:
        ax.bar(xs + width / 2, [100 * f["accuracy_sklearn"] for f in folds], width,
               label="scikit-learn")
    ax.set_xticks(xs)
    ax.set_xticklabels([f["test_speaker"] for f in folds], rotation=30)
    ax.set_ylim(0, 100)
    ax.axhline(10, color="0.5", ls=":", lw=0.8)  # chance: one digit in ten
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    rep.credit("fsdd")
    results["seconds"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        print(format_text_table(cols, table, floatfmt=".1f"))
        if GaussianMixture is None and sklearn:
            print("scikit-learn not installed: comparison skipped")
        print(f"report: {report}")
    return results
