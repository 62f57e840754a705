"""Score every audio file of a folder or a manifest against saved models.

Writes ``scores.tsv``: one line per file that could be scored, with the best model, its
score, the margin to the runner-up and the score of every model; files that could not
be read (or gave no speech frames) are listed in ``bad_files.tsv`` with the reason, and
the run finishes with the good ones. With a background model (``--ubm``, or a
``ubm.npz`` next to the models) scores are average frame log-likelihood ratios, else
average frame log-likelihoods. When the input is a manifest whose labels name models,
identification accuracy and EER are reported too.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".au", ".sph")


def load_model_folder(models, ubm=None):
    """``(label -> GMM, ubm or None, feature config dict or None)`` from a folder of model
    files. A file named ``ubm.npz`` or with metadata role ``"ubm"`` is the background model
    (unless ``ubm`` names one explicitly); ``../ubm.npz`` is also looked for."""
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio

    folder = Path(models)
    if not folder.is_dir():
        raise FileNotFoundError(f"--models {folder}: no such folder")
    out, cfg, bg, bg_path = {}, None, None, None
    for path in sorted(folder.glob("*.npz")):
        m = mio.load(path)
        meta = getattr(m, "metadata_", {}) or {}
        if path.name == "ubm.npz" or meta.get("role") == "ubm":
            if bg is None:
                bg, bg_path = m, path
            cfg = cfg or meta.get("feature_config")
            continue
        label = str(meta.get("label", path.stem))
        if label in out:
            raise ModelFileError(path, f"duplicate model label {label!r}")
        out[label] = m
        cfg = cfg or meta.get("feature_config")
    if not out:
        raise ModelFileError(folder, "no speaker/class model files (*.npz) in this folder")
    if ubm is not None:
        bg, bg_path = mio.load(ubm), Path(ubm)
        cfg = cfg or (getattr(bg, "metadata_", {}) or {}).get("feature_config")
    elif bg is None and (folder.parent / "ubm.npz").is_file():
        bg_path = folder.parent / "ubm.npz"
        bg = mio.load(bg_path)
        cfg = cfg or (getattr(bg, "metadata_", {}) or {}).get("feature_config")
    dims = {m.n_features_in_ for m in out.values()} | ({bg.n_features_in_} if bg is not None else set())
    if len(dims) != 1:
        raise ModelFileError(folder, f"models of different dimensions {sorted(dims)}")
    if bg is not None:
        bg.source_path_ = str(bg_path)
    return out, bg, cfg


def input_rows(source, *, data_root=None, max_files=None):
    """Rows of a manifest (``.csv``) or of every audio file under a folder (recursive,
    sorted; id = path relative to the folder, label empty)."""
    from gmmspeech.corpus.manifest import Row, read_manifest

    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file()
                       and f.suffix.lower() in AUDIO_EXTENSIONS)
        rows = [Row(f.relative_to(p).as_posix(), str(f.resolve()), "", None, None, None)
                for f in files]
        if not rows:
            raise FileNotFoundError(f"--input {p}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    elif p.is_file():
        rows = read_manifest(p, data_root=data_root)
    else:
        raise FileNotFoundError(f"--input {p}: no such file or folder")
    return rows[:max_files] if max_files else rows


def run(*, out, models, input, ubm=None, data_root=None, tsv=None, preset: str | None = None,
        max_files: int | None = None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        backend: str | None = None, scheduler: str | None = None, verbose: bool = True) -> dict:
    """Score files against saved models; writes ``scores.tsv``, ``bad_files.tsv``,
    ``report.md`` and ``results.json`` under ``out``.

    Parameters
    ----------
    out : path-like
        Output folder (features are cached in ``out/features``).
    models : path-like
        Folder of model files (``gmmspeech`` ``.npz``).
    input : path-like
        A folder of audio files or a manifest CSV.
    ubm : path-like or None
        Background model file (scores become log-likelihood ratios).
    data_root : path-like or None
        Root of relative manifest paths.
    tsv : path-like or None
        Output table (default ``out/scores.tsv``).
    preset : str or None
        Feature preset; default the configuration stored with the models, else ``speech``.
    max_files : int or None
        Score at most this many files (``quick``: 50).
    seed : int
        Unused (scoring is deterministic); accepted for a uniform interface.
    n_jobs, backend, scheduler
        Parallel feature extraction.
    verbose : bool
    """
    from gmmspeech import metrics, plots
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.recipes import _speaker as chain
    from gmmspeech.recipes._common import credit_datasets
    from gmmspeech.speaker.scoring import score

    t0 = time.perf_counter()
    model_map, bg, cfg = load_model_folder(models, ubm)
    if preset is not None:
        config = FeatureConfig.preset(preset)
        if cfg is not None:
            config = config.replace(sample_rate=int(cfg.get("sample_rate", config.sample_rate)))
    elif cfg is not None:
        config = FeatureConfig.from_dict(cfg)
    else:
        config = FeatureConfig.preset("speech")
    dims = next(iter(model_map.values())).n_features_in_
    if config.n_features != dims:
        raise ValueError(f"--preset {config.name!r} gives {config.n_features}-dimensional features "
                         f"but the models in {models} have {dims} dimensions")
    rows = input_rows(input, data_root=data_root, max_files=max_files or (50 if quick else None))
    if not rows:
        raise ValueError(f"--input {input}: no rows to score")
    store, good, failed = chain.build_features(rows, Path(out) / "features", config=config,
                                               n_jobs=n_jobs, backend=backend,
                                               scheduler=scheduler, progress=verbose)
    labels = list(model_map)
    S = (np.asarray(score(list(model_map.values()), bg, chain.load_arrays(store, good)))
         if good else np.zeros((0, len(labels))))
    out_dir = Path(out)
    tsv = Path(tsv) if tsv else out_dir / "scores.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    best = np.argmax(S, axis=1) if len(good) else np.zeros(0, dtype=int)
    srt = np.sort(S, axis=1)
    margin = srt[:, -1] - srt[:, -2] if S.shape[1] > 1 else np.zeros(S.shape[0])
    tmp = tsv.with_name(tsv.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "path", "label", "best_model", "best_score", "margin"]
                   + [f"score:{lab}" for lab in labels])
        for i, r in enumerate(good):
            w.writerow([r.id, r.path, r.label, labels[best[i]], f"{S[i, best[i]]:.6f}",
                        f"{margin[i]:.6f}"] + [f"{v:.6f}" for v in S[i]])
    os.replace(tmp, tsv)
    bad_path = out_dir / "bad_files.tsv"
    with open(bad_path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "path", "reason"])
        w.writerows(failed)

    results: dict = {
        "recipe": "score_files", "n_files": len(rows), "n_scored": len(good),
        "n_failed": len(failed), "n_models": len(labels), "llr": bg is not None,
        "ubm": None if bg is None else bg.source_path_,
        "scores_tsv": str(tsv), "mean_margin": float(np.mean(margin)) if len(good) else 0.0,
        "failed": [{"id": i, "path": p, "reason": why} for i, p, why in failed],
    }
    rep = Report(out, "Scoring files against saved models")
    rep.text(
        f"{len(rows)} files from `{input}` scored against the {len(labels)} models of "
        f"`{models}` ({f'log-likelihood ratios to the UBM `{bg.source_path_}`' if bg is not None else 'average frame log-likelihoods (no UBM was found or given)'}; "
        f"features: `{config.name}` preset at {config.sample_rate} Hz). Full table: "
        f"`{tsv.name}`; unusable files: `bad_files.tsv`."
    )
    rep.table(["files", "scored", "failed", "models"], [[len(rows), len(good), len(failed), len(labels)]])
    if failed:
        rep.heading("Files that could not be scored", 3)
        rep.table(["id", "reason"], [[i, why] for i, _, why in failed[:50]])
    if good:
        rep.heading("Decisions", 3)
        shown = [[r.id, labels[best[i]], float(S[i, best[i]]), float(margin[i])]
                 for i, r in enumerate(good[:20])]
        rep.table(["file", "best model", "score", "margin to 2nd"], shown, floatfmt=".4f",
                  caption="First files (all in the TSV):")
        counts = {lab: int(np.sum(best == j)) for j, lab in enumerate(labels)}
        results["decisions"] = counts
        fig, ax = rep.figure("best_scores.png", "Distribution of the best score and of the "
                             "margin to the runner-up per file: a small margin means an "
                             "uncertain decision", ncols=2, figsize=(9, 3.6))
        ax[0].hist(S[np.arange(len(good)), best], bins=30, color="tab:blue")
        ax[0].set_xlabel("best score")
        ax[1].hist(margin, bins=30, color="tab:orange")
        ax[1].set_xlabel("margin to the runner-up")
        known = [i for i, r in enumerate(good) if r.label in model_map]
        if known:
            tl = [good[i].label for i in known]
            ev = metrics.evaluate_scores(S[known], labels, tl)
            results["evaluation"] = {k: v for k, v in ev.items() if v is not None}
            rep.heading("Against the labels of the manifest", 3)
            rep.table(["labelled files", "accuracy (%)", "EER (%)"],
                      [[len(known), 100 * ev["accuracy"],
                        float("nan") if ev["eer"] is None else 100 * ev["eer"]]], floatfmt=".4g")
            cm = metrics.confusion_matrix(tl, [labels[best[i]] for i in known], labels=labels)
            plots.confusion_plot(cm, labels if len(labels) <= 40 else None,
                                 path=out_dir / "confusion.png", title="scored files")
            rep.add_image("confusion.png", "Confusion matrix of the labelled files (rows: label, "
                          "columns: best model, rows normalised)")
    credit_datasets(rep, [r.path for r in rows])
    results["seconds"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        print("background model: " + (bg.source_path_ if bg is not None
                                       else "none (scores are average log-likelihoods)"))
        print(format_text_table(["files", "scored", "failed", "models", "table"],
                                [[len(rows), len(good), len(failed), len(labels), str(tsv)]]))
        for _id, p, why in failed:
            print(f"bad file: {p}: {why}")
        if "evaluation" in results:
            print(f"accuracy {100 * results['evaluation']['accuracy']:.1f} %")
        print(f"report: {report}")
    return results
