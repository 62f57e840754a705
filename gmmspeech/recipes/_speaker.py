"""The GMM-UBM chain as the recipes compose it: features in a store, UBM, MAP enrolment,
scoring, metrics, and the report section with DET curve, score histograms and confusion
matrix. Pure composition of :mod:`gmmspeech.speaker`, :mod:`gmmspeech.metrics` and
:mod:`gmmspeech.plots`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def build_features(rows, store_dir, *, config, n_jobs=1, backend=None, scheduler=None,
                   progress=False):
    """Extract ``rows`` into the store at ``store_dir``; returns ``(store, good_rows, failed)``
    where ``failed`` lists ``(id, path, reason)`` of the rows that could not be used."""
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(store_dir)
    rep = store.build(rows, config=config, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                      progress=progress)
    bad = {fid for fid, _, _ in rep.failed}
    return store, [r for r in rows if r.id not in bad], list(rep.failed)


def load_arrays(store, rows) -> list[np.ndarray]:
    return [np.asarray(store.load(r.id, mmap=False)) for r in rows]


def run_system(
    *,
    background: Sequence[np.ndarray],
    enroll: dict[str, list[np.ndarray]],
    tests: Sequence[np.ndarray],
    test_labels: Sequence[str],
    n_components: int,
    covariance_type: str = "diag",
    max_iter: int = 10,
    relevance_factor: float = 16.0,
    top_c: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict:
    """Train a UBM on ``background``, MAP-adapt the means to each speaker of ``enroll``,
    score every test segment against every model (average frame log-likelihood ratio)
    and evaluate closed-set identification and verification.

    Returns a dict: ``ubm``, ``models``, ``model_labels``, ``scores`` (n_tests, n_models),
    ``metrics`` (see :func:`gmmspeech.metrics.evaluate_scores`), ``targets``,
    ``nontargets``, ``predicted`` and timings.
    """
    from gmmspeech import metrics
    from gmmspeech.speaker.map import enroll as enroll_fn
    from gmmspeech.speaker.scoring import score
    from gmmspeech.speaker.ubm import train_ubm

    t0 = time.perf_counter()
    ubm = train_ubm(list(background), n_components, covariance_type, max_iter=max_iter,
                    init="split", random_state=seed, n_jobs=n_jobs, backend=backend,
                    scheduler=scheduler, progress=progress)
    t_ubm = time.perf_counter() - t0
    t1 = time.perf_counter()
    models = enroll_fn(ubm, enroll, relevance_factor=relevance_factor, adapt="m",
                       n_jobs=n_jobs, backend=backend, scheduler=scheduler)
    t_enroll = time.perf_counter() - t1
    labels = [str(k) for k in models]
    t2 = time.perf_counter()
    scores = np.asarray(score(list(models.values()), ubm, list(tests), top_c=top_c))
    t_score = time.perf_counter() - t2
    test_labels = [str(t) for t in test_labels]
    m = metrics.evaluate_scores(scores, labels, test_labels)
    mask = np.asarray(test_labels)[:, None] == np.asarray(labels)[None, :]
    tar, non = metrics.split_scores(scores, mask)
    pred = [labels[i] for i in np.argmax(scores, axis=1)]
    return {
        "ubm": ubm, "models": models, "model_labels": labels, "scores": scores,
        "metrics": m, "targets": tar, "nontargets": non, "predicted": pred,
        "test_labels": test_labels,
        "seconds": {"ubm": t_ubm, "enroll": t_enroll, "score": t_score},
        "ubm_history": [float(v) for v in getattr(ubm, "history_", [])],
    }


def metrics_row(name: str, sysres: dict) -> list:
    m = sysres["metrics"]
    return [name, m["n_models"], m["n_tests"], _pct(m["accuracy"]), _pct(m.get("eer")),
            _num(m.get("min_dcf_sre08")), _num(m.get("min_dcf_sre10"))]


METRIC_HEADERS = ["system", "models", "test segments", "ID accuracy (%)", "EER (%)",
                  "minDCF SRE08", "minDCF SRE10"]

#: One line under every metrics table: what the columns mean.
METRICS_EXPLAINED = (
    "ID accuracy: test segments whose best-scoring model is the true speaker. EER: the "
    "rate at which misses equal false alarms over all (segment, model) trials. minDCF: the "
    "lowest normalised detection cost over all thresholds, at NIST SRE08's operating point "
    "(C_miss 10, C_fa 1, P_target 0.01) and SRE10's (C_miss 1, C_fa 1, P_target 0.001); 0 is "
    "perfect, 1 is no better than always rejecting."
)


def convergence_note(history) -> str:
    """Whether an EM run converged, from its per-iteration average log-likelihoods."""
    h = [float(v) for v in history]
    if len(h) < 2:
        return f"{len(h)} EM iteration(s): convergence not assessed"
    gain = h[-1] - h[-2]
    if abs(gain) < 1e-3:
        return (f"converged: the last of {len(h)} iterations changed the average "
                f"log-likelihood by {gain:+.2g} per frame")
    return (f"still rising at the last of {len(h)} iterations ({gain:+.2g} per frame): more "
            "iterations would fit the background data a little better")


def _pct(v):
    return float("nan") if v is None else 100.0 * float(v)


def _num(v):
    return float("nan") if v is None else float(v)


def json_metrics(sysres: dict) -> dict:
    """The finite numbers of one system for results.json (None where undefined)."""
    m = dict(sysres["metrics"])
    out = {k: (None if v is None else (float(v) if isinstance(v, float) else v)) for k, v in m.items()}
    out["seconds"] = {k: float(v) for k, v in sysres["seconds"].items()}
    out["ubm_history"] = sysres["ubm_history"]
    out["ubm_components"] = int(sysres["ubm"].n_components)
    out["covariance_type"] = str(sysres["ubm"].covariance_type)
    return out


def report_systems(rep, systems: dict[str, dict], *, prefix: str, title: str,
                   confusion_for: str | None = None) -> None:
    """Results table, DET curves, score histograms and (for ``confusion_for``) the
    identification confusion matrix of several systems, into ``rep``."""
    from gmmspeech import metrics, plots

    rep.table(METRIC_HEADERS, [metrics_row(n, s) for n, s in systems.items()], floatfmt=".4g")
    rep.text(METRICS_EXPLAINED)
    with_trials = {n: (s["targets"], s["nontargets"]) for n, s in systems.items()
                   if len(s["targets"]) and len(s["nontargets"])}
    out = Path(rep.out)
    if with_trials:
        plots.det_plot(with_trials, path=out / f"{prefix}_det.png", title=f"DET: {title}")
        rep.add_image(f"{prefix}_det.png",
                      f"{title}: DET curves (miss against false-alarm rate on normal-deviate "
                      "axes; the dot marks the EER). Lower-left is better.")
        name, s = next(iter(with_trials.items())) if confusion_for is None else (
            confusion_for, with_trials[confusion_for])
        plots.score_histogram(s[0], s[1], path=out / f"{prefix}_scores.png",
                              title=f"Scores: {title}, {name}")
        rep.add_image(f"{prefix}_scores.png",
                      f"{title}, {name}: distributions of target (same speaker) and non-target "
                      "log-likelihood-ratio scores; the less they overlap, the lower the EER.")
    name = confusion_for or next(iter(systems))
    s = systems[name]
    labels = s["model_labels"]
    cm = metrics.confusion_matrix(s["test_labels"], s["predicted"], labels=labels)
    plots.confusion_plot(cm, labels if len(labels) <= 40 else None,
                         path=out / f"{prefix}_confusion.png", title=f"{title}, {name}")
    rep.add_image(f"{prefix}_confusion.png",
                  f"{title}, {name}: identification confusion matrix (rows: true speaker, "
                  "columns: best-scoring model, rows normalised); a clean diagonal means "
                  "correct identification.")
    hist = {n: s["ubm_history"] for n, s in systems.items() if s["ubm_history"]}
    if hist:
        fig, ax = rep.figure(f"{prefix}_ubm.png", f"{title}: UBM training, average "
                             "log-likelihood per frame at each EM iteration", figsize=(5.5, 3.6))
        for n, h in hist.items():
            ax.plot(np.arange(1, len(h) + 1), h, "o-", ms=3, label=n)
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("log-likelihood / frame")
        ax.grid(True, color="0.9")
        ax.legend(fontsize=8)
        rep.bullets([f"UBM of {n}: {convergence_note(h)}." for n, h in hist.items()])


def save_system(sysres: dict, folder, *, config) -> Path:
    """Write ``folder/ubm.npz`` and ``folder/models/<label>.npz`` (gmmspeech model files,
    the layout of ``gmmspeech enroll``), each with the feature configuration in its
    metadata so that :mod:`gmmspeech.recipes.score_files` can extract matching features."""
    import re

    from gmmspeech.mixture import io as mio

    folder = Path(folder)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    cfg = config.to_dict()
    mio.save(sysres["ubm"], folder / "ubm.npz", metadata={"role": "ubm", "feature_config": cfg})
    used: set[str] = set()
    for label, model in sysres["models"].items():
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("._") or "model"
        name, n = base, 1
        while name in used:
            name, n = f"{base}.{n}", n + 1
        used.add(name)
        mio.save(model, folder / "models" / f"{name}.npz",
                 metadata={"label": str(label), "role": "speaker-model", "feature_config": cfg})
    return folder
