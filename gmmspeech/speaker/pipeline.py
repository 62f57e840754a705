"""The GMM-UBM speaker identification/verification pipeline and its file formats.

:func:`run_speaker_id` runs the whole recipe from three manifests (background,
enrolment, test): features into feature stores, UBM on the background data, one
MAP-adapted model per enrolment label (rows with the same label pooled), every test
row scored against every model, optional score normalisation, and the metrics. The
building blocks (:func:`build_features`, :func:`save_models`, :func:`load_models`,
:func:`write_scores`, :func:`read_scores`, :func:`evaluate_score_file`) are what the
``gmmspeech train-ubm / enroll / score / evaluate`` commands use.

Files written by :func:`run_speaker_id` into ``out``:

``results.json``
    ``accuracy``, ``eer``, ``min_dcf_sre08``, ``min_dcf_sre10``, ``n_speakers``,
    ``n_tests``, the settings, timings, and ``bad_files`` (every file that could not be
    used, with the reason; the run completes with the good ones).
``scores.tsv``
    ``test_id  model  score  test_label`` (one line per trial, with a header).
``det.png``, ``scores.png``
    DET curve and score histograms (when matplotlib is installed).
``ubm.npz``, ``models/<label>.npz``
    The UBM and the speaker models as gmmspeech model files.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from gmmspeech.audio import DEFAULT_MAX_DURATION
from gmmspeech.errors import GMMSpeechError, ModelFileError
from gmmspeech.speaker.defaults import (  # noqa: F401 (re-exported)
    PROTOCOL_PRESETS,
    SPEAKER_DEFAULTS,
    protocol_settings,
    resolve_score_mode,
    speaker_feature_config,
)

__all__ = [
    "run_speaker_id",
    "SYSTEMS",
    "IVECTOR_DEFAULTS",
    "ivector_settings",
    "build_features",
    "open_features",
    "FeatureSet",
    "features_line",
    "recorded_stores",
    "store_dir_for",
    "store_rows",
    "feature_config",
    "save_models",
    "load_models",
    "write_scores",
    "read_scores",
    "evaluate_score_file",
    "NORMS",
    "PROTOCOL_PRESETS",
    "protocol_settings",
    "saved_feature_config",
    "feature_config_hash",
    "describe_model",
    "check_models_against_ubm",
    "check_config_against_ubm",
    "normalise_scores",
    "norm_needs",
    "impostor_segments",
    "arrays_by_label",
    "ubm_training_source",
    "extra_background",
]

NORMS = ("none", "znorm", "tnorm", "snorm", "asnorm")
SYSTEMS = ("gmm-ubm", "ivector", "fusion")

#: i-vector settings of :func:`run_speaker_id` (``ivector_options`` keys): TV rank ("auto":
#: :func:`gmmspeech.backend.extractor.auto_rank`), EM iterations, top-C posteriors in the
#: statistics, a full-covariance UBM for the statistics, TV also trained on the enrolment
#: data (unsupervised; never test data), the back-end scoring ("plda" or "cosine"), LDA
#: dimension (float: fraction of speakers - 1; None: no LDA), PLDA model, rank and EM
#: iterations, the back-end also trained on the enrolment recordings with their speaker
#: labels (``plda_on_enroll``; never a test recording), the normalisation of the i-vector
#: scores ("none"; "tnorm": cohort = the other enrolled models; "snorm": the background
#: speakers as cohort models and impostor tests), the held-out trials the fusion is trained
#: on ("enroll": each enrolled speaker's enrolment recordings split, the first part
#: enrolling and the rest testing; "background": the same among background speakers in two
#: folds; never a test recording; a held-out test always comes from a recording its model
#: was not enrolled from, so speakers with a single recording give no held-out trials unless
#: ``fusion_same_recording``), and the check that drops the i-vector system from the
#: fusion unless it improves those trials' cross-validated Cllr by ``fusion_min_gain``
#: (relative) without a worse identification accuracy
#: (:func:`gmmspeech.backend.calibration.fusion_check`); with no held-out trials the fusion
#: is the GMM-UBM system. ``enroll_ivectors``: a model is the i-vectors of its enrolment
#: recordings ("mean", the PLDA LLR counting them) or one i-vector of their summed
#: statistics ("pooled"). Extra background (``run_speaker_id(ivector_background=...)``:
#: labelled manifests of other speakers, e.g. of other corpora): its recordings join the
#: back-end's speaker classes (one class per manifest and label) and, with
#: ``extra_background_tv``, the TV training data. ``speed_perturb``: speeds (e.g.
#: ``(0.9, 1.1)``) of perturbed copies of every background recording (the background
#: manifest's, of speakers not enrolled, and the extra ones), each speed of a speaker a new
#: back-end speaker class (as
#: Kaldi's speed-perturbed speakers); with ``speed_perturb_tv`` they also train the TV
#: matrix. ``uncertainty``: the PLDA score propagates each i-vector's posterior covariance
#: (short tests are uncertain; Kenny et al. 2013; no effect on cosine scoring), see
#: :meth:`gmmspeech.backend.scoring.SpeakerBackend.score_trials`. ``enroll_count``: what
#: the PLDA LLR counts a pooled model as: one vector ("vectors") or its number of enrolment
#: recordings ("recordings", a within-speaker noise shrunk as for that many vectors).
#: ``domain_norm``: with an extra background (other corpora), the back-end's length
#: normalisations are centred ("mean"), and the first also whitened ("whiten"), on the run's
#: own background and enrolment i-vectors (never test ones) instead of on all its training
#: i-vectors; "none": on all of them (without extra background the same thing).
#: ``whiten_shrinkage``: that first whitening's covariance as estimated ("none") or shrunk
#: with a data-driven weight ("ledoit-wolf", "oas"; in-domain whitening with
#: "ledoit-wolf": towards the covariance of all the back-end's training i-vectors), see
#: :class:`gmmspeech.backend.scoring.SpeakerBackend`; "auto": the in-domain whitening
#: chooses between "none" and "ledoit-wolf" by held-out trials among the enrolment
#: recordings (:func:`_choose_whiten_shrinkage`), any other whitening is "none" (so
#: without ``domain_norm="whiten"`` and an extra background "auto" is "none").
#: ``tv_seeds``: how many i-vector systems the run trains, each its own total-variability
#: matrix from a random start ``random_state + j`` (j = 0 .. tv_seeds - 1) on the same
#: statistics, with its own back-end; the scores are their mean (the fusion's held-out
#: trials likewise). With a few hundred training recordings one TV matrix's figures depend
#: on its random start (see the README); the mean of several is steadier. "auto":
#: :data:`AUTO_TV_SEEDS` with fewer than :data:`AUTO_TV_SEEDS_BELOW` TV training
#: recordings, else 1 (a cost rule: with plenty of data a matrix costs more, and its start
#: should matter less, which was not measured: the spread was seen with 163-1,500).
#: Chosen on the dev splits by ``bench/ivector_dev.py`` (see the README).
IVECTOR_DEFAULTS: dict[str, Any] = dict(
    rank="auto", n_iter=10, top_c=None, ubm_components=None, ubm_covariance="diag", full_iter=3, tv_on_enroll=True,
    scoring="plda", lda_dim=None, plda_model="two-cov", plda_rank=None, plda_iter=10,
    plda_on_enroll=True, norm="none", fusion_trials="enroll", fusion_check=True,
    fusion_min_gain=0.02, fusion_same_recording=False, fusion_split="halves",
    enroll_ivectors="pooled", extra_background_tv=True, speed_perturb=(), speed_perturb_tv=False,
    uncertainty=True, enroll_count="vectors", domain_norm="none", whiten_shrinkage="auto", tv_seeds="auto",
)

#: ``tv_seeds="auto"``: this many systems when the TV matrix is trained on fewer than
#: :data:`AUTO_TV_SEEDS_BELOW` recordings (the automatic rank is then below 400: little
#: data, where one matrix's figures depend on its random start), else one.
AUTO_TV_SEEDS = 3
AUTO_TV_SEEDS_BELOW = 4000


def ivector_settings(options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`IVECTOR_DEFAULTS` updated with ``options`` (unknown keys are an error)."""
    out = dict(IVECTOR_DEFAULTS)
    for k, v in dict(options or {}).items():
        if k not in out:
            raise ValueError(f"unknown i-vector option {k!r}; known: {', '.join(sorted(out))}")
        out[k] = v
    return out


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def feature_config(preset: str = "speech", **overrides):
    """``FeatureConfig.preset(preset)`` with ``overrides`` applied (``.replace``)."""
    from gmmspeech.features.config import FeatureConfig

    cfg = FeatureConfig.preset(preset)
    return cfg.replace(**overrides) if overrides else cfg


def build_features(manifest, store_dir, *, config, data_root=None, n_jobs=1, backend=None,
                   scheduler=None, progress=True, role: str = "manifest",
                   max_duration: float | None = DEFAULT_MAX_DURATION):
    """Extract the features of a manifest (a path, or a list of rows) into a feature store.

    Returns
    -------
    (store, rows, bad)
        The :class:`~gmmspeech.corpus.store.FeatureStore`, the manifest rows whose
        features are in the store (manifest order), and the bad files as dicts
        ``{"manifest", "id", "path", "reason"}``. ``store.last_report`` is the build's
        :class:`~gmmspeech.corpus.store.BuildReport`.
    """
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore

    rows = (read_manifest(manifest, data_root=data_root)
            if isinstance(manifest, (str, os.PathLike)) else list(manifest))
    store = FeatureStore(store_dir)
    report = store.build(rows, config=config, n_jobs=n_jobs, backend=backend,
                         scheduler=scheduler, progress=progress, max_duration=max_duration)
    failed = {fid for fid, _, _ in report.failed}
    bad = [{"manifest": role, "id": fid, "path": path, "reason": reason}
           for fid, path, reason in report.failed]
    good = [r for r in rows if r.id not in failed and r.id in store]
    return store, good, bad


def store_rows(store) -> list:
    """The rows (id, source path, label, segment) of every utterance of a feature store."""
    from gmmspeech.corpus.manifest import Row

    out = []
    for i in store.ids():
        e = store.entry(i)
        out.append(Row(e.id, e.path, e.label, e.start, e.end))
    return out


def store_dir_for(features_dir, config) -> str:
    """The store of ``config`` under ``features_dir``: the folder itself when it is a store of
    that configuration, else ``features_dir/<config hash>`` (one store per configuration,
    side by side). A folder that is a store of another configuration is an error naming both
    hashes."""
    from gmmspeech.corpus.store import FeatureStore, StoreError

    features_dir = os.path.abspath(os.fspath(features_dir))
    chash = config.config_hash()
    st = FeatureStore(features_dir)
    if st.exists():
        if st.config_hash != chash:
            raise StoreError(features_dir, f"holds features of configuration {st.config_hash}, "
                                           f"these need {chash}; give another --features-dir")
        return features_dir
    return os.path.join(features_dir, chash)


def recorded_stores(*models) -> list[str]:
    """The feature stores recorded in the metadata of ``models`` (``feature_stores``: the
    stores a UBM or speaker models were trained from), existing ones only, in order."""
    out: list[str] = []
    for m in models:
        for p in (getattr(m, "metadata_", None) or {}).get("feature_stores") or []:
            if isinstance(p, str) and p not in out and os.path.isfile(os.path.join(p, "store.json")):
                out.append(p)
    return out


class FeatureSet:
    """The features of a list of rows, read from one or more feature stores (read-only).

    What :func:`open_features` returns: ``load(id)`` reads an utterance from the store that
    holds it; :meth:`stores` gives one :meth:`~gmmspeech.corpus.store.FeatureStore.subset`
    per store, for :func:`~gmmspeech.speaker.ubm.train_ubm`. ``last_report`` is the
    :class:`~gmmspeech.corpus.store.BuildReport` of what was extracted (None: nothing was).
    ``n_reused`` rows came from existing stores without extraction.
    """

    def __init__(self, where: Mapping[str, Any], last_report=None, n_reused: int = 0):
        self._where = dict(where)
        self.last_report = last_report
        self.n_reused = int(n_reused)

    def load(self, utt_id: str, mmap: bool = True) -> np.ndarray:
        try:
            store = self._where[utt_id]
        except KeyError:
            raise KeyError(f"id {utt_id!r} has no features here") from None
        return store.load(utt_id, mmap=mmap)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def ids(self) -> list[str]:
        return list(self._where)

    @property
    def roots(self) -> list[str]:
        """The folders of the stores the features come from."""
        return list(dict.fromkeys(st.root for st in self._where.values()))

    @property
    def errors_path(self) -> str | None:
        rep = self.last_report
        return None if rep is None else rep.errors_path

    def stores(self, ids=None) -> list:
        """One read-only store view per store holding ``ids`` (default: all), ids in order."""
        groups: dict[str, tuple[Any, list[str]]] = {}
        for i in self._where if ids is None else ids:
            st = self._where[i]
            groups.setdefault(st.root, (st, []))[1].append(i)
        return [st.subset(sel) for st, sel in groups.values()]


def open_features(source, *, config, features_dir=None, reuse=(), data_root=None, n_jobs=1,
                  backend=None, scheduler=None, progress=True, role: str = "manifest",
                  max_duration: float | None = DEFAULT_MAX_DURATION):
    """The features of a manifest or of a feature store, extracting only what no store has yet.

    Parameters
    ----------
    source : path or list of Row
        A manifest, or a feature store folder (used as it is: every utterance in it, with
        its label; its configuration must be ``config``).
    config : FeatureConfig
    features_dir : path, optional
        Where features found in no store are extracted: the store of ``config`` under it
        (see :func:`store_dir_for`), whose features are reused too. Needed only when some
        rows must be extracted.
    reuse : sequence of paths
        Further stores to read features from (e.g. :func:`recorded_stores` of the UBM,
        the stores it was trained on): a row is taken from the first store that holds its
        id with configuration ``config`` and the same source file and segment. These
        stores are only read, never written (a store given to ``train-ubm`` trains on all
        it holds, so test features must not creep into it).

    Returns
    -------
    (features, rows, bad)
        A :class:`FeatureSet`, the usable rows (manifest order) and the bad files, as
        :func:`build_features`.

    Raises
    ------
    ValueError
        ``source`` is a store of another configuration, or rows must be extracted and
        ``features_dir`` is None.
    """
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore

    chash = config.config_hash()
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        store = FeatureStore(source)
        if not store.exists() or not len(store):
            raise FileNotFoundError(f"{os.fspath(source)}: not a feature store (or an empty one)")
        if store.config_hash != chash:
            raise ValueError(f"{os.fspath(source)}: a feature store of configuration "
                             f"{store.config_hash}, these features need {chash}")
        rows = store_rows(store)
        return FeatureSet({r.id: store for r in rows}, None, len(rows)), rows, []
    rows = (read_manifest(source, data_root=data_root)
            if isinstance(source, (str, os.PathLike)) else list(source))
    where: dict[str, Any] = {}
    for root in dict.fromkeys(os.path.abspath(os.fspath(r)) for r in reuse):
        st = FeatureStore(root)
        if not st.exists() or st.config_hash != chash:
            continue
        for r in rows:
            if r.id not in where and r.id in st and st.entry(r.id).same_source(
                    os.fspath(r.path), r.start, r.end):
                where[r.id] = st
    rest = [r for r in rows if r.id not in where]
    bad: list[dict] = []
    report = None
    if rest:
        if features_dir is None:
            raise ValueError(f"{len(rest)} rows have no features in the stores given; a "
                             "features folder is needed to extract them")
        st, good, bad = build_features(rest, store_dir_for(features_dir, config), config=config,
                                       n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                                       progress=progress, role=role, max_duration=max_duration)
        report = st.last_report
        where.update((r.id, st) for r in good)
    n_reused = len(rows) - len(rest)
    return FeatureSet(where, report, n_reused), [r for r in rows if r.id in where], bad


def features_line(features: FeatureSet, n_rows: int) -> str:
    """One line: how many rows were reused from stores, extracted (and where), failed."""
    rep = features.last_report
    parts = [f"{n_rows} files"]
    if features.n_reused:
        parts.append(f"{features.n_reused} reused from {', '.join(features.roots)}"
                     if rep is None else f"{features.n_reused} reused")
    if rep is not None:
        parts.append(f"{rep.n_done} extracted into {os.path.dirname(rep.errors_path)} "
                     f"({rep.n_skipped} already there)")
        if rep.n_failed:
            parts.append(f"{rep.n_failed} failed")
    return "features: " + ", ".join(parts)


# --------------------------------------------------------------------------- model files
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_label(label: str) -> str:
    s = _SAFE.sub("_", str(label)).strip("._") or "model"
    return s


def save_models(models: Mapping[Any, Any], folder, *, metadata: Mapping[str, Any] | None = None) -> list[str]:
    """Write each model as ``folder/<label>.npz`` (label kept in the file's metadata).

    ``metadata`` (e.g. the feature configuration) is added to every model's metadata; a
    MAP-adapted model also records the fingerprint of its UBM (``ubm_fingerprint``).
    """
    from gmmspeech.mixture import io as mio

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    used: dict[str, int] = {}
    paths = []
    for label, model in models.items():
        base = _file_label(label)
        n = used.get(base, 0)
        used[base] = n + 1
        name = base if n == 0 else f"{base}.{n}"
        meta = dict(metadata or {}, label=str(label), role="speaker-model")
        paths.append(mio.save(model, os.path.join(folder, name + ".npz"), metadata=meta))
    return paths


def map_settings(relevance_factor, adapt) -> dict[str, Any]:
    """The MAP settings a speaker model records in its file (``relevance_factor``: a number, or
    a mapping of per-parameter factors as :func:`~gmmspeech.speaker.map.map_adapt` takes;
    ``adapt``), so that ``score`` adapts its normalisation cohort models the same way."""
    if isinstance(relevance_factor, Mapping):
        rel: Any = {str(k): float(v) for k, v in relevance_factor.items()}
    else:
        rel = float(relevance_factor)
    return {"relevance_factor": rel, "adapt": str(adapt)}


def recorded_map_settings(models) -> tuple[dict[str, Any], list[str]]:
    """``(settings, disagreeing)``: the MAP settings (:func:`map_settings`) recorded by every
    one of ``models`` with the same value, and the keys recorded with different values (a
    key that some models lack is in neither)."""
    out: dict[str, Any] = {}
    differ: list[str] = []
    metas = [getattr(m, "metadata_", None) or {} for m in models]
    for key in ("relevance_factor", "adapt"):
        vals = [md.get(key) for md in metas]
        if not metas or any(v is None for v in vals):
            continue
        if len({repr(v) for v in vals}) == 1:
            out[key] = vals[0]
        else:
            differ.append(key)
    return out, differ


def load_models(folder) -> dict[str, Any]:
    """Read every ``*.npz`` model of a folder: label (from the metadata) -> GMM, sorted by file name."""
    from gmmspeech.mixture import io as mio

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such models folder")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".npz"))
    if not names:
        raise ModelFileError(folder, "no model files (*.npz) in this folder")
    out: dict[str, Any] = {}
    for n in names:
        m = mio.load(os.path.join(folder, n))
        label = str(getattr(m, "metadata_", {}).get("label", n[:-4]))
        if label in out:
            raise ModelFileError(os.path.join(folder, n), f"duplicate model label {label!r}")
        out[label] = m
    return out


# --------------------------------------------------------------------------- compatibility
def saved_feature_config(model):
    """The :class:`~gmmspeech.features.config.FeatureConfig` saved in a model's metadata
    (None if there is none); an invalid one is a ModelFileError naming the file."""
    from gmmspeech.features.config import FeatureConfig

    saved = getattr(model, "metadata_", {}).get("feature_config")
    if saved is None:
        return None
    try:
        return FeatureConfig.from_dict(saved)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(getattr(model, "path_", "<model>"),
                             f"invalid saved feature configuration ({exc})",
                             "metadata.feature_config") from None


def feature_config_hash(model) -> str | None:
    """The feature-config hash a model was trained on (from its metadata), or None."""
    md = getattr(model, "metadata_", {})
    if isinstance(md.get("feature_config_hash"), str):
        return md["feature_config_hash"]
    cfg = saved_feature_config(model)
    return None if cfg is None else cfg.config_hash()


def describe_model(model, what: str = "model") -> str:
    """``FILE (D dims, feature config HASH)`` for error messages."""
    path = getattr(model, "path_", None) or f"<{what}>"
    d = int(np.asarray(model.means_).shape[1])
    h = feature_config_hash(model)
    return f"{path} ({d} dims, feature config {h or 'not recorded'})"


def check_models_against_ubm(models: Mapping[Any, Any], ubm, *, force: bool = False) -> None:
    """Before any work: every speaker model matches the UBM in dimensions and feature
    configuration, and was adapted from it (see
    :func:`gmmspeech.speaker.scoring.check_same_ubm`; ``force`` turns that into a warning).
    Errors name both files, their dimensions and feature-config hashes."""
    from gmmspeech.speaker.scoring import check_same_ubm

    d_ubm = int(np.asarray(ubm.means_).shape[1])
    h_ubm = feature_config_hash(ubm)
    for label, m in models.items():
        d = int(np.asarray(m.means_).shape[1])
        h = feature_config_hash(m)
        if d != d_ubm or (h is not None and h_ubm is not None and h != h_ubm):
            what = "dimensions" if d != d_ubm else "feature configurations"
            raise ModelFileError(getattr(m, "path_", f"<model {label}>"),
                                 f"{what} differ: this model is {describe_model(m)}, the UBM is "
                                 f"{describe_model(ubm, 'UBM')}",
                                 "n_features" if d != d_ubm else "metadata.feature_config_hash")
    check_same_ubm(list(models.values()), ubm, force=force)


def check_config_against_ubm(config, ubm, *, option: str = "--preset") -> None:
    """The features about to be extracted have the UBM's dimensions (before any audio is
    read); the error names the UBM file and both feature-config hashes."""
    d_ubm = int(np.asarray(ubm.means_).shape[1])
    if config.n_features != d_ubm:
        raise GMMSpeechError(
            f"dimensions differ: {option} gives {config.n_features}-dim features (feature config "
            f"{config.config_hash()}), the UBM is {describe_model(ubm, 'UBM')}")


# --------------------------------------------------------------------------- score files
def write_scores(path, test_ids, test_labels, model_labels, scores) -> None:
    """``test_id  model  score  test_label`` lines (tab-separated, header first), atomically.

    Refuses non-finite scores (nothing is written); a failed write (a full disk) leaves
    the previous file, and no temporary file, behind.
    """
    import io

    from gmmspeech.atomic import atomic_write

    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(test_ids), len(model_labels)):
        raise ValueError(f"scores have shape {s.shape}, expected ({len(test_ids)}, {len(model_labels)})")
    bad = np.argwhere(~np.isfinite(s))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"{len(bad)} non-finite score(s) (first: test {test_ids[i]!r} against "
                         f"model {model_labels[j]!r}); nothing written to {os.fspath(path)}")

    def write(fh):
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        w = csv.writer(text, delimiter="\t", lineterminator="\n")
        w.writerow(["test_id", "model", "score", "test_label"])
        for i, (tid, tlab) in enumerate(zip(test_ids, test_labels)):
            for j, mlab in enumerate(model_labels):
                w.writerow([tid, mlab, repr(float(s[i, j])), tlab])
        text.flush()
        text.detach()  # the handle stays open for atomic_write's fsync

    atomic_write(path, write)


def read_scores(path, *, labels: Mapping[str, str] | None = None):
    """Read a score file back into ``(test_ids, test_labels, model_labels, scores)``.

    ``labels`` (test id -> label) is needed when the file has no ``test_label`` column.
    Every (test, model) pair must appear exactly once.
    """
    from gmmspeech.errors import ManifestError

    path = os.fspath(path)
    tests: dict[str, int] = {}
    models: dict[str, int] = {}
    tlabels: dict[str, str] = {}
    cells: list[tuple[int, int, float]] = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None or header[:3] != ["test_id", "model", "score"]:
            raise ManifestError(path, 1, "not a score file (header must start with test_id, model, score)")
        has_label = len(header) > 3 and header[3] == "test_label"
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 3:
                raise ManifestError(path, line, f"expected at least 3 tab-separated fields, got {len(row)}")
            tid, mlab = row[0], row[1]
            try:
                val = float(row[2])
            except ValueError:
                raise ManifestError(path, line, f"score {row[2]!r} is not a number") from None
            if not np.isfinite(val):
                raise ManifestError(path, line, "score is not finite")
            if tid not in tests:
                tests[tid] = len(tests)
                if has_label and len(row) > 3:
                    tlabels[tid] = row[3]
                elif labels is not None and tid in labels:
                    tlabels[tid] = labels[tid]
                else:
                    raise ManifestError(path, line, f"no label for test {tid!r} (give a manifest)")
            if mlab not in models:
                models[mlab] = len(models)
            cells.append((tests[tid], models[mlab], val))
    if not cells:
        raise ManifestError(path, None, "no scores")
    s = np.full((len(tests), len(models)), np.nan)
    for i, j, v in cells:
        if not np.isnan(s[i, j]):
            raise ManifestError(path, None, "a (test, model) pair appears twice")
        s[i, j] = v
    if np.isnan(s).any():
        raise ManifestError(path, None, "incomplete score matrix: some (test, model) pairs are missing")
    ids = list(tests)
    return ids, [tlabels[t] for t in ids], list(models), s


# --------------------------------------------------------------------------- evaluation
def _plots(out_dir, scores, model_labels, test_labels, results, verbose):
    from gmmspeech import metrics

    mask = np.asarray(test_labels)[:, None] == np.asarray(model_labels)[None, :]
    tar, non = metrics.split_scores(scores, mask)
    if not (tar.size and non.size):
        return
    try:
        from gmmspeech import plots

        results["det_png"] = plots.det_plot((tar, non), path=os.path.join(out_dir, "det.png"))
        results["hist_png"] = plots.score_histogram(tar, non, path=os.path.join(out_dir, "scores.png"))
    except ImportError as exc:
        _log(f"note: no plots ({exc})", verbose)


def evaluate_matrix(scores, model_labels, test_labels, *, out_dir=None, verbose=True) -> dict:
    """Metrics of a (tests x models) matrix; with ``out_dir`` also ``results.json`` and plots."""
    from gmmspeech import metrics

    model_labels = [str(m) for m in model_labels]
    test_labels = [str(t) for t in test_labels]
    known = set(model_labels)
    keep = np.array([t in known for t in test_labels], dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    res = metrics.evaluate_scores(s[keep], model_labels, np.asarray(test_labels)[keep])
    res["n_speakers"] = len(model_labels)
    res["n_tests_without_model"] = int((~keep).sum())
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        _plots(out_dir, s[keep], model_labels, np.asarray(test_labels)[keep], res, verbose)
    return res


def evaluate_score_file(path, out_dir, *, labels: Mapping[str, str] | None = None, verbose=True) -> dict:
    """Evaluate a score file: writes ``out_dir/results.json``, ``det.png``, ``scores.png``."""
    ids, tlabels, mlabels, s = read_scores(path, labels=labels)
    res = evaluate_matrix(s, mlabels, tlabels, out_dir=out_dir, verbose=verbose)
    res["scores"] = os.path.abspath(os.fspath(path))
    _write_json(os.path.join(out_dir, "results.json"), res)
    return res


def _write_json(path: str, obj: dict) -> None:
    from gmmspeech.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n",
                      sync=False)


def summary_line(res: Mapping[str, Any]) -> str:
    """One line with the headline numbers of a results dict."""
    def pct(key):
        v = res.get(key)
        return "n/a" if v is None else f"{100 * v:.2f}%"

    def num(key):
        v = res.get(key)
        return "n/a" if v is None else f"{v:.4f}"

    return (f"accuracy {pct('accuracy')}  EER {pct('eer')}  minDCF(SRE08) {num('min_dcf_sre08')}  "
            f"minDCF(SRE10) {num('min_dcf_sre10')}  ({res.get('n_speakers')} speakers, "
            f"{res.get('n_tests')} tests)")


# --------------------------------------------------------------------------- normalisation
def _segments(arrays, seg_frames: int, max_segments: int, labels=None):
    """Cut arrays into pieces of ``seg_frames`` frames (a last piece of at least half a
    segment is kept; an array shorter than 1.5 segments is one piece, so short
    utterances, e.g. isolated words, are impostors too), at most ``max_segments`` of them
    evenly spread; returns ``(segments, segment_labels)`` (labels None when ``labels``
    is None)."""
    out, lab = [], []
    labels = [None] * len(arrays) if labels is None else list(labels)
    for a, label in zip(arrays, labels, strict=True):
        if 0 < a.shape[0] < seg_frames + seg_frames // 2:
            out.append(np.asarray(a))
            lab.append(label)
            continue
        for s in range(0, a.shape[0] - seg_frames // 2, seg_frames):
            piece = a[s:s + seg_frames]
            if piece.shape[0] >= seg_frames // 2:
                out.append(np.asarray(piece))
                lab.append(label)
    if len(out) > max_segments:
        idx = np.linspace(0, len(out) - 1, max_segments).round().astype(int)
        out = [out[i] for i in idx]
        lab = [lab[i] for i in idx]
    return out, (None if all(v is None for v in lab) else [str(v) for v in lab])


def impostor_segments(store, rows, *, segment_frames: int = 300, max_segments: int = 400):
    """Z-norm impostor utterances: the background rows cut into segments of
    ``segment_frames`` frames (at most ``max_segments``, evenly spread); returns
    ``(segments, labels)`` with each segment's speaker label."""
    arrays = [np.asarray(store.load(r.id)) for r in rows]
    return _segments(arrays, int(segment_frames), int(max_segments), [str(r.label) for r in rows])


def arrays_by_label(store, rows) -> dict[str, list[np.ndarray]]:
    """The feature arrays of ``rows`` grouped by label (manifest order)."""
    out: dict[str, list[np.ndarray]] = {}
    for r in rows:
        out.setdefault(str(r.label), []).append(np.asarray(store.load(r.id)))
    return out


def norm_needs(norm: str | None, norm_cohort: str) -> tuple[bool, bool]:
    """``(needs_background_cohort_models, needs_impostor_utterances)`` of a normalisation."""
    from gmmspeech.speaker.defaults import NORM_COHORTS

    if norm_cohort not in NORM_COHORTS:
        raise ValueError(f"norm_cohort={norm_cohort!r} is not one of {', '.join(map(repr, NORM_COHORTS))}")
    t_side = norm in ("tnorm", "snorm", "asnorm")
    z_side = norm in ("znorm", "snorm", "asnorm")
    return t_side and norm_cohort in ("background", "both"), z_side


def normalise_scores(raw, norm, *, model_labels=None, impostor_scores=None, impostor_labels=None,
                     cohort_scores=None, cohort_labels=None, norm_cohort: str | None = None,
                     top_n=None):
    """Apply ``norm`` (one of :data:`NORMS`) to a (tests x models) matrix ``raw``.

    The claimed model is never in its own cohort, and no cohort model or impostor
    utterance of the claimed model's speaker is used for it (exclusion by label, see
    :mod:`gmmspeech.speaker.norm`).

    Parameters
    ----------
    raw : (n_test, n_models)
    norm : {"none", "znorm", "tnorm", "snorm", "asnorm"} or None
    model_labels : sequence of str, optional
        Labels of the columns (default: each model its own speaker).
    impostor_scores, impostor_labels
        (n_impostor_utterances, n_models) scores of the enrolled models on impostor
        utterances and those utterances' labels (Z-norm side).
    cohort_scores, cohort_labels
        (n_test, n_cohort) scores of the test utterances on background cohort models and
        their labels (T-norm side).
    norm_cohort : {"background", "enrolled", "both"} or None
        The T-norm cohort: the background cohort models, the other enrolled models
        (leave-one-out), or both. Default: "background" when ``cohort_scores`` are
        given, else "enrolled".
    top_n : int, optional
        Adaptive normalisation on the top ``top_n`` cohort scores ("asnorm": 50 by default).
    """
    from gmmspeech.speaker import norm as N

    if norm in (None, "none"):
        return raw
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")
    raw = np.asarray(raw, dtype=np.float64)
    labels = ([str(m) for m in model_labels] if model_labels is not None
              else [f"<model {j}>" for j in range(raw.shape[1])])
    if norm == "asnorm" and top_n is None:
        top_n = 50
    coh = coh_ex = None
    if norm in ("tnorm", "snorm", "asnorm"):
        which = norm_cohort or ("background" if cohort_scores is not None else "enrolled")
        parts, plabels = [], []
        if which in ("enrolled", "both"):
            parts.append(raw)
            plabels += labels
        if which in ("background", "both"):
            if cohort_scores is None or cohort_labels is None:
                raise ValueError(f"norm={norm!r} with the {which!r} cohort needs cohort_scores "
                                 "and cohort_labels (background cohort models)")
            parts.append(np.asarray(cohort_scores, dtype=np.float64))
            plabels += [str(c) for c in cohort_labels]
        if not parts:
            raise ValueError(f"norm_cohort={which!r} is not one of 'background', 'enrolled', 'both'")
        coh = np.hstack(parts)
        coh_ex = N.same_label(labels, plabels)
    imp = imp_ex = None
    if norm in ("znorm", "snorm", "asnorm"):
        if impostor_scores is None:
            raise ValueError(f"norm={norm!r} needs impostor scores")
        imp = np.asarray(impostor_scores, dtype=np.float64)
        if impostor_labels is not None:
            imp_ex = N.same_label(impostor_labels, labels)
    if norm == "tnorm":
        return N.tnorm(raw, coh, top_n=top_n, exclude_cohort=coh_ex)
    if norm == "znorm":
        return N.znorm(raw, imp, top_n=top_n, exclude_impostors=imp_ex)
    return N.snorm(raw, imp, coh, top_n=top_n, exclude_impostors=imp_ex, exclude_cohort=coh_ex)


def _distinct(rows) -> list:
    """``rows`` without repeated ids (first kept)."""
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.id not in seen:
            seen.add(r.id)
            out.append(r)
    return out


def ubm_training_source(stores, rows, *, ubm_on_enroll: bool):
    """What :func:`~gmmspeech.speaker.ubm.train_ubm` trains on: exactly the background rows
    (and, with ``ubm_on_enroll``, the enrolment rows not already among them), as read-only
    views of the stores that hold them."""
    bg_ids = [r.id for r in rows["background"]]
    src = [stores["background"].subset(bg_ids)]
    if ubm_on_enroll:
        same = stores["enroll"].root == stores["background"].root
        seen = set(bg_ids) if same else set()
        extra = [r.id for r in rows["enroll"] if r.id not in seen]
        if extra:
            src.append(stores["enroll"].subset(extra))
    return src


# --------------------------------------------------------------------------- the recipe
_D = SPEAKER_DEFAULTS


def run_speaker_id(
    background,
    enroll,
    test,
    out,
    *,
    data_root=None,
    preset: str | None = None,
    config=None,
    feature_overrides: Mapping[str, Any] | None = None,
    features_dir=None,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    n_components: int = _D["n_components"],
    covariance_type: str = _D["covariance_type"],
    max_iter: int = _D["max_iter"],
    ubm_init: str = _D["ubm_init"],
    ubm_on_enroll: bool = _D["ubm_on_enroll"],
    relevance_factor: float | Mapping[str, float] = _D["relevance_factor"],
    adapt: str = _D["adapt"],
    top_c: int | None = _D["top_c"],
    score_mode: str | None = _D["score_mode"],
    norm: str | None = _D["norm"],
    norm_cohort: str = _D["norm_cohort"],
    norm_top_n: int | None = _D["norm_top_n"],
    impostor_segment_frames: int = 300,
    max_impostors: int = 400,
    random_state: int = 0,
    system: str = "gmm-ubm",
    ivector_options: Mapping[str, Any] | None = None,
    ivector_background=None,
    n_jobs: int | None = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    verbose: bool = True,
    log: Callable[[str], None] | None = None,
    ubm_checkpoint=None,
    resume: bool = False,
    restart: bool = False,
) -> dict:
    """GMM-UBM, i-vector or fused speaker identification and verification from three manifests.

    Every default comes from :data:`gmmspeech.speaker.defaults.SPEAKER_DEFAULTS` (chosen
    on the development splits of the shared corpora; the same defaults as the
    ``gmmspeech speaker-id`` command).

    Parameters
    ----------
    background, enroll, test : path
        Manifests (``id,path,label[,start,end]``). Enrolment rows with the same label
        are pooled into one model; every test row is scored against every model.
        Background rows train the UBM and, grouped by label, the cohort models of
        score normalisation.
    out : path
        Output folder (see the module docstring for what is written).
    data_root : path, optional
        Root of relative manifest paths (default: each manifest's folder).
    preset, config
        Feature preset name, or a :class:`~gmmspeech.features.config.FeatureConfig`
        (wins over ``preset``). Default (both None): the speaker defaults,
        ``SPEAKER_DEFAULTS["preset"]`` with ``SPEAKER_DEFAULTS["feature_overrides"]``; a
        named preset is used as it is.
    feature_overrides : dict, optional
        Changes applied with ``FeatureConfig.replace`` on top of that.
    features_dir : path, optional
        Where the features go: one store ``<features_dir>/<config hash>`` for the three
        manifests, so a file listed in several is extracted once (a manifest whose ids name
        other files than an earlier one's gets ``<...>/<role>``); shareable between runs
        and recorded in ``ubm.npz`` (``feature_stores``) for ``enroll``/``score``. A
        ``features_dir`` that is itself a store of the run's configuration (``out/features``
        of an earlier run, ``gmmspeech features --out``) is that store; one of another
        configuration is an error (:func:`store_dir_for`). Default ``out/features``.
    max_duration : float or None
        Longest accepted audio file or segment in seconds (default 4 hours); longer ones
        are bad files.
    n_components, covariance_type, max_iter, ubm_init
        UBM settings (see :func:`gmmspeech.speaker.ubm.train_ubm`).
    ubm_on_enroll : bool
        Also train the UBM on the enrolment data (never on test data).
    relevance_factor, adapt
        MAP settings (see :func:`gmmspeech.speaker.map.map_adapt`), for the speaker and
        the cohort models.
    top_c : int or None
        Top-C scoring with C components (None: exact scoring).
    score_mode : {"exact", "topc", "linear"}, optional
        Scoring mode; None: "topc" with ``top_c``, else "exact". Top-C scoring is a
        speed-up for diagonal models: with ``covariance_type="full"`` the scores are exact.
    norm : {"none", "znorm", "tnorm", "snorm", "asnorm"}, optional
        Score normalisation. Z-norm impostor utterances are background segments of
        ``impostor_segment_frames`` frames (at most ``max_impostors``); ``"asnorm"``:
        adaptive S-norm on the top ``norm_top_n`` (default 50) cohort scores. The claimed
        model's own speaker is never in its cohort.
    norm_cohort : {"background", "enrolled", "both"}
        T-norm cohort: models MAP-adapted from the UBM on the background data (one per
        background label; works with a single enrolled speaker), the other enrolled
        models, or both.
    random_state : int
    system : {"gmm-ubm", "ivector", "fusion"}
        ``"ivector"``: total-variability i-vectors from the same UBM, back-end (LDA, PLDA
        or cosine) trained on the background manifest with its labels as speakers;
        ``"fusion"``: GMM-UBM and i-vector scores fused by logistic regression trained on
        trials among background speakers (never on the test trials).
    ivector_options : dict, optional
        i-vector settings (keys of :data:`IVECTOR_DEFAULTS`).
    ivector_background : list of paths, optional
        Extra background of the i-vector system: labelled manifests of other speakers (e.g.
        other corpora; features with the same configuration, audio resampled to its rate).
        Their recordings are speaker classes of the back-end (one class per manifest and
        label: the same label in two manifests is two speakers) and, with the option
        ``extra_background_tv``, training data of the TV matrix. Never the test speakers: a
        test file listed there is an error. Ignored by ``system="gmm-ubm"``.
    n_jobs, backend, scheduler
        Parallelism (see :func:`gmmspeech.parallel.parallel_map`).
    progress, verbose : bool
        Progress bars; messages on stderr.
    log : callable, optional
        Receives the progress messages instead of stderr.
    ubm_checkpoint : path, optional
        UBM training checkpoint, written after every EM iteration and removed once the UBM
        is trained (default ``out/ubm.ckpt.npz``).
    resume, restart : bool
        Continue from an existing ``ubm_checkpoint`` (features already extracted into
        ``features_dir`` are skipped too), or discard it. An existing checkpoint without
        either is an error, raised before any work.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    from gmmspeech.corpus.store import upsampling_note
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.ubm import train_ubm

    def say(msg):
        if log is not None:
            log(msg)
        else:
            _log(msg, verbose)

    if norm not in (None,) + NORMS:
        raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")
    from gmmspeech.speaker.ubm import UBMCheckpointError

    if system not in SYSTEMS:
        raise ValueError(f"system={system!r} is not supported; choose one of {', '.join(SYSTEMS)}")
    iv_opts = ivector_settings(ivector_options)
    if system != "gmm-ubm":
        _tv_seeds(iv_opts)  # a bad count is an error before any work
    need_cohort, need_impostors = norm_needs(norm, norm_cohort)
    out = os.path.abspath(os.fspath(out))
    if config is not None:
        cfg = config.replace(**dict(feature_overrides)) if feature_overrides else config
    else:
        cfg = speaker_feature_config(preset, feature_overrides)  # preset None: the defaults
    ckpt = (os.path.join(out, "ubm.ckpt.npz") if ubm_checkpoint is None
            else os.path.abspath(os.fspath(ubm_checkpoint)))
    if os.path.exists(ckpt) and not (resume or restart):
        raise UBMCheckpointError(ckpt, "a UBM checkpoint of an interrupted run exists; pass "
                                       "resume=True to continue it or restart=True to discard it")
    os.makedirs(out, exist_ok=True)
    if features_dir is None:
        fdir = os.path.join(out, "features")
    else:
        fdir = store_dir_for(features_dir, cfg)  # the folder itself when it is a store of cfg
    timings: dict[str, float] = {}
    par = dict(n_jobs=n_jobs, backend=backend, scheduler=scheduler)

    t0 = time.perf_counter()
    bad: list[dict] = []
    stores: dict[str, Any] = {}
    rows: dict[str, list] = {}
    from gmmspeech.corpus.manifest import read_manifest

    manifests = {"background": background, "enroll": enroll, "test": test}
    wanted = {role: read_manifest(man, data_root=data_root) for role, man in manifests.items()}
    # one store for the three manifests, so a file listed in several (e.g. the same manifest
    # as background and enrolment) is extracted once; an id naming different files in two
    # manifests sends the later manifest to a store of its own
    groups: dict[str, list] = {}
    store_of: dict[str, str] = {}
    sources: dict[str, tuple] = {}
    for role, rs in wanted.items():
        keys = [(os.fspath(r.path), r.start, r.end) for r in rs]
        clash = any(sources.get(r.id, k) != k for r, k in zip(rs, keys))
        sub = store_of[role] = os.path.join(fdir, role) if clash else fdir
        if not clash:
            sources.update((r.id, k) for r, k in zip(rs, keys))
        groups.setdefault(sub, []).extend(rs)
    built: dict[str, tuple] = {}
    upsampled: dict[int, int] = {}
    n_extracted = 0
    for sub, rs in groups.items():
        roles = [role for role in wanted if store_of[role] == sub]
        say(f"features: {len(rs)} distinct files of {', '.join(roles)} -> {sub}")
        st, _good, b = build_features(_distinct(rs), sub, config=cfg, progress=progress,
                                      role="+".join(roles), max_duration=max_duration, **par)
        n_extracted += st.last_report.n_done
        for rate, k in st.last_report.upsampled.items():
            upsampled[rate] = upsampled.get(rate, 0) + k
        built[sub] = (st, {item["id"]: item for item in b})
    for role, rs in wanted.items():
        st, failed = built[store_of[role]]
        for r in rs:
            if r.id in failed:
                item = dict(failed[r.id], manifest=role)
                bad.append(item)
                print(f"gmmspeech speaker-id: skipped {item['path']} ({role} {item['id']}): "
                      f"{item['reason']}", file=sys.stderr)
        rows[role] = [r for r in rs if r.id not in failed and r.id in st]
        if not rows[role]:
            from gmmspeech.corpus.manifest import missing_files_hint

            hint = missing_files_hint(manifests[role], rs, data_root=data_root)
            raise GMMSpeechError(f"{role} manifest: no usable file (see {st.errors_path})"
                                 + (f"; {hint}" if hint else ""))
        stores[role] = st.subset([r.id for r in rows[role]])
    extra = None
    if system != "gmm-ubm" and (ivector_background or iv_opts["speed_perturb"]):
        sources = []
        test_files = {os.path.realpath(r.path) for r in rows["test"]}
        for i, man in enumerate(ivector_background or ()):
            rs = read_manifest(man, data_root=data_root)
            leak = sorted({os.path.realpath(r.path) for r in rs} & test_files)
            if leak:
                raise GMMSpeechError(f"ivector_background manifest {os.fspath(man)}: {len(leak)} file(s) "
                                     f"of the test manifest, e.g. {leak[0]} (no test recording may train "
                                     "the system)")
            sources.append((f"extra{i + 1}", rs, os.path.join(fdir, f"ivector-background{i + 1}"), True))
        sources.append(("", _not_enrolled(rows["background"], rows["enroll"]), os.path.join(fdir, "background"),
                        False))
        extra, b = extra_background(sources, config=cfg, opts=iv_opts, data_root=data_root,
                                    max_duration=max_duration, progress=progress, say=say, **par)
        for item in b:
            item = dict(item, manifest="ivector_background")
            bad.append(item)
            print(f"gmmspeech speaker-id: skipped {item['path']} (i-vector background {item['id']}): "
                  f"{item['reason']}", file=sys.stderr)
        extra = extra or None
    timings["features"] = time.perf_counter() - t0
    note = upsampling_note(upsampled, n_extracted, cfg.sample_rate)
    if note:
        say(note)

    t0 = time.perf_counter()
    say(f"UBM: {n_components} {covariance_type} components, {max_iter} EM iterations")
    ubm = train_ubm(ubm_training_source(stores, rows, ubm_on_enroll=ubm_on_enroll),
                    int(n_components), covariance_type, max_iter=int(max_iter), init=ubm_init,
                    random_state=random_state, progress=progress, checkpoint=ckpt,
                    resume=resume and os.path.exists(ckpt), restart=restart, **par)
    feature_meta = {"feature_config": cfg.to_dict(), "feature_config_hash": cfg.config_hash(),
                     "feature_stores": list(dict.fromkeys(st.root for st in stores.values()))}
    mio.save(ubm, os.path.join(out, "ubm.npz"), metadata={"role": "ubm", **feature_meta})
    if os.path.exists(ckpt):
        os.unlink(ckpt)
    timings["ubm"] = time.perf_counter() - t0

    asked_topc = score_mode == "topc" if score_mode else bool(top_c)
    mode, top_c = resolve_score_mode(score_mode, top_c, covariance_type)
    if asked_topc and mode == "exact":
        say(f"scoring: exact (top-C scoring is for diagonal models, the UBM is {covariance_type})")
    gmm_cfg = dict(relevance_factor=relevance_factor, adapt=adapt, mode=mode, top_c=top_c, norm=norm,
                   norm_top_n=norm_top_n, impostor_segment_frames=impostor_segment_frames,
                   max_impostors=max_impostors, norm_cohort=norm_cohort, need_cohort=need_cohort,
                   need_impostors=need_impostors, feature_meta=feature_meta)
    components: dict[str, dict] = {}
    model_labels: list[str] = []
    gmm_scores = iv_scores = None
    if system in ("gmm-ubm", "fusion"):
        t0 = time.perf_counter()
        gmm_scores, model_labels, gmm_raw = _gmm_ubm_scores(ubm, stores, rows, out, gmm_cfg, par,
                                                            progress, say)
        timings["gmm-ubm"] = time.perf_counter() - t0
        scores = gmm_scores
    fused = None
    if system in ("ivector", "fusion"):
        t0 = time.perf_counter()
        iv = _ivector_scores(ubm, stores, rows, out, iv_opts, random_state, par, progress, say, extra=extra,
                             feature_meta=feature_meta)
        timings["ivector"] = time.perf_counter() - t0
        if system == "ivector":
            model_labels, scores = iv["model_labels"], iv["scores"]
        else:
            iv_scores = _align_columns(iv["scores"], iv["model_labels"], model_labels)
            t0 = time.perf_counter()
            fused = _fusion(ubm, stores, rows, iv, gmm_cfg, iv_opts, par, say)
            timings["fusion"] = time.perf_counter() - t0
            # the fusion's GMM-UBM input is the raw LLR (as on the held-out trials it was
            # trained on); when the i-vector system is dropped the output is exactly the
            # GMM-UBM system's scores (with its own normalisation, if any)
            if fused["fusion"] is not None:
                scores = fused["fusion"].fuse(gmm_raw, iv_scores)
            test_labels_ = [str(r.label) for r in rows["test"]]
            for name, s_ in (("gmm-ubm", gmm_scores), ("ivector", iv_scores)):
                components[name] = {k: v for k, v in evaluate_matrix(
                    s_, model_labels, test_labels_, verbose=False).items()
                    if k in ("accuracy", "eer", "min_dcf_sre08", "min_dcf_sre10")}

    test_ids = [r.id for r in rows["test"]]
    test_labels = [str(r.label) for r in rows["test"]]
    write_scores(os.path.join(out, "scores.tsv"), test_ids, test_labels, model_labels, scores)
    from gmmspeech.parallel import parallelism_record

    res = evaluate_matrix(scores, model_labels, test_labels, out_dir=out, verbose=verbose)
    res.update(
        bad_files=bad,
        n_bad_files=len(bad),
        settings=dict(
            background=os.fspath(background), enroll=os.fspath(enroll), test=os.fspath(test),
            preset=getattr(cfg, "name", preset), feature_config=cfg.to_dict(),
            feature_config_hash=cfg.config_hash(), n_components=int(n_components),
            covariance_type=covariance_type, max_iter=int(max_iter), ubm_init=ubm_init,
            ubm_on_enroll=bool(ubm_on_enroll), relevance_factor=relevance_factor, adapt=adapt,
            top_c=top_c, score_mode=mode, norm=norm or "none", norm_cohort=norm_cohort,
            norm_top_n=norm_top_n, random_state=random_state, system=system,
            ivector=iv_opts if system != "gmm-ubm" else None,
            ivector_background=([os.fspath(m) for m in ivector_background or ()]
                                if system != "gmm-ubm" else None),
        ),
        system=system,
        **parallelism_record(n_jobs),
        ubm_history=[float(v) for v in getattr(ubm, "history_", [])],
        timings={k: round(v, 3) for k, v in timings.items()},
        ubm_path=os.path.join(out, "ubm.npz"),
        models_dir=os.path.join(out, "models") if system != "ivector" else None,
        scores_path=os.path.join(out, "scores.tsv"),
    )
    if system != "gmm-ubm":
        res["ivector_systems"] = len(iv.get("members") or [iv])  # tv_seeds as resolved ("auto")
    if system != "gmm-ubm" and iv.get("whiten_choice") is not None:
        res["ivector_whiten_shrinkage"] = iv["whiten_choice"]  # what whiten_shrinkage="auto" chose
        if iv.get("members"):  # each system chose on its own held-out trials: all of them
            res["ivector_whiten_shrinkage_members"] = [m.get("whiten_choice") for m in iv["members"]]
    if components:
        res["components"] = components
    if fused is not None:
        fu = fused["fusion"]
        res["fusion"] = {
            "weights": [float(v) for v in fu.coef_] if fu is not None else [1.0, 0.0],
            "offset": float(fu.intercept_) if fu is not None else 0.0,
            "systems": ["gmm-ubm", "ivector"], "kept": ["gmm-ubm", "ivector"] if fu is not None else ["gmm-ubm"],
            "n_trials": fused["n_trials"], "n_target_trials": fused["n_target"],
            "trained_on": ("trials among background speakers (2 folds)"
                           if iv_opts["fusion_trials"] == "background" else
                           "trials among the enrolment recordings (first part enrols, the rest tests)"),
        }
        if fused.get("fitted") is not None:
            res["fusion"]["fitted_weights"] = [float(v) for v in fused["fitted"].coef_]
        for key in ("check", "reason"):
            if key in fused:
                res["fusion"][key] = fused[key]
    _write_json(os.path.join(out, "results.json"), res)
    say(summary_line(res))
    return res


# --------------------------------------------------------------------------- systems
def _gmm_ubm_scores(ubm, stores, rows, out, cfg, par, progress, say):
    """MAP-enrol the enrolment speakers and score the tests, normalised as ``cfg`` says (the
    claimed model never in its own cohort); ``(scores, model_labels, raw_scores)``."""
    from gmmspeech.speaker.map import enroll as enroll_models
    from gmmspeech.speaker.scoring import score as score_fn

    spk = arrays_by_label(stores["enroll"], rows["enroll"])
    say(f"enrol: {len(spk)} speakers (relevance {cfg['relevance_factor']}, adapt {cfg['adapt']!r})")
    models = enroll_models(ubm, spk, relevance_factor=cfg["relevance_factor"], adapt=cfg["adapt"],
                           progress=progress, **par)
    save_models(models, os.path.join(out, "models"),  # score's cohort models adapt the same way
                metadata={**cfg["feature_meta"], **map_settings(cfg["relevance_factor"], cfg["adapt"])})
    kw = dict(top_c=_topc(cfg), mode=cfg["mode"], **par)
    utts = [np.asarray(stores["test"].load(r.id)) for r in rows["test"]]
    model_labels = list(models)
    say(f"score: {len(utts)} tests x {len(models)} models ({cfg['mode']})")
    raw = score_fn([models[m] for m in model_labels], ubm, utts, progress=progress, **kw)
    coh = coh_labels = imp = imp_labels = None
    if cfg["need_cohort"]:
        cohort = enroll_models(ubm, arrays_by_label(stores["background"], rows["background"]),
                               relevance_factor=cfg["relevance_factor"], adapt=cfg["adapt"], **par)
        coh_labels = list(cohort)
        say(f"norm: {cfg['norm']}, cohort of {len(cohort)} background models"
            + (" + the other enrolled models" if cfg["norm_cohort"] == "both" else ""))
        coh = score_fn([cohort[c] for c in coh_labels], ubm, utts, **kw)
    if cfg["need_impostors"]:
        segs, imp_labels = impostor_segments(stores["background"], rows["background"],
                                             segment_frames=int(cfg["impostor_segment_frames"]),
                                             max_segments=int(cfg["max_impostors"]))
        imp = score_fn([models[m] for m in model_labels], ubm, segs, **kw)
    scores = normalise_scores(raw, cfg["norm"], model_labels=model_labels, impostor_scores=imp,
                              impostor_labels=imp_labels, cohort_scores=coh, cohort_labels=coh_labels,
                              norm_cohort=cfg["norm_cohort"], top_n=cfg["norm_top_n"])
    return scores, model_labels, raw


def _topc(cfg):
    return cfg["top_c"] if cfg["mode"] == "topc" else None


def _align_columns(scores, labels, want):
    pos = {lab: j for j, lab in enumerate(labels)}
    return np.asarray(scores)[:, [pos[w] for w in want]]


def _ivector_scores(ubm, stores, rows, out, opts, random_state, par, progress, say, extra=None, feature_meta=None):
    """Statistics, TV training, i-vectors and back-end; scores of the tests against the
    enrolled speakers. Writes ``out/ivector_extractor.npz`` and ``out/ivector_backend.npz``.

    With several systems (:func:`_tv_seeds`: ``tv_seeds``), system ``j`` is a TV matrix from
    the random start ``random_state + j`` (None: unseeded, each its own) on the same
    statistics (and the same UBM) with its own back-end, written as
    ``ivector_extractor.<j>.npz`` / ``ivector_backend.<j>.npz`` for j >= 1 (such files of an
    earlier run with more systems are removed); the result is :func:`_ivector_ensemble` of
    them (``members``). ``feature_meta`` (the UBM's feature configuration) goes into the
    extractor files, so that ``extract-ivectors`` computes the same features."""
    front = _ivector_front(ubm, stores, rows, out, opts, random_state, par, progress, say, extra=extra,
                           feature_meta=feature_meta)
    k = _tv_seeds(opts, len(front["tv_stats"]))
    heldout = (stores["enroll"], rows["enroll"], par)
    members = [_ivector_backend_scores(front, out, opts, say, heldout=heldout)]
    for j in range(1, k):
        seed = None if random_state is None else int(random_state) + j
        member = _tv_member(front, opts, seed, par, progress, say, out=out, suffix=f".{j}")
        members.append(_ivector_backend_scores(member, out, opts, say, heldout=heldout, suffix=f".{j}"))
    if out is not None:
        _remove_member_files(out, k)
    return _ivector_ensemble(members)


def _remove_member_files(out, k: int) -> None:
    """Remove ``ivector_extractor.<j>.npz`` / ``ivector_backend.<j>.npz`` with j >= ``k`` (left
    in ``out`` by an earlier run with more i-vector systems, they would not be this run's)."""
    import re

    pat = re.compile(r"ivector_(extractor|backend)\.(\d+)\.npz")
    for name in os.listdir(out):
        m = pat.fullmatch(name)
        if m and int(m.group(2)) >= k:
            os.unlink(os.path.join(out, name))


def _tv_seeds(opts, n_tv: int | None = None) -> int:
    """``opts["tv_seeds"]``, checked (an integer >= 1 or "auto"), for a TV matrix trained on
    ``n_tv`` recordings ("auto": :data:`AUTO_TV_SEEDS` below :data:`AUTO_TV_SEEDS_BELOW`
    recordings, else 1; ``n_tv`` None: only checked, "auto" gives 1)."""
    k = opts["tv_seeds"]
    if isinstance(k, str) and k == "auto":
        return AUTO_TV_SEEDS if n_tv is not None and n_tv < AUTO_TV_SEEDS_BELOW else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"tv_seeds={k!r} must be an integer >= 1 or 'auto' (how many i-vector systems, "
                         "each its own TV matrix from another random start)")
    return int(k)


def _ivector_ensemble(members: list) -> dict:
    """One i-vector result from the results of :func:`_ivector_backend_scores` of systems
    that differ by their TV matrix's random start: the first member's, with the scores the
    mean of all members' (columns aligned on the first member's models) and ``members``
    (the list itself; the fusion averages its held-out scores over them the same way). A
    single member is returned as it is."""
    if len(members) == 1:
        return members[0]
    _labels, scores = _mean_scores([(m["model_labels"], m["scores"]) for m in members])
    return {**members[0], "scores": scores, "members": list(members)}


def _mean_scores(parts):
    """``(labels, mean)`` of ``(model_labels, scores (tests, models))`` pairs of the same
    models: their score matrices averaged, columns aligned on the first pair's labels."""
    labels = parts[0][0]
    return labels, np.mean([_align_columns(sc, lab, labels) for lab, sc in parts], axis=0)


def _ivector_front(ubm, stores, rows, out, opts, random_state, par, progress, say, extra=None, feature_meta=None):
    """Statistics, TV training and the i-vectors of every role (``out/ivector_extractor.npz``).

    ``extra``: extra background for the back-end (and the TV matrix), a list of dicts with
    ``store`` (features), ``ids``, ``labels`` (back-end speaker classes) and ``tv`` (also
    train the TV matrix); see :func:`_extra_background`. In the result they are the role
    ``"extra"`` (``stats``, ``ivectors``, ``labels``) with ``extra_tv`` (their TV rows)."""
    from gmmspeech.backend.stats import BaumWelchStats, utterance_stats
    from gmmspeech.speaker.ubm import full_covariance_ubm

    if opts["ubm_components"] is not None and int(opts["ubm_components"]) != ubm.n_components:
        from gmmspeech.speaker.ubm import train_ubm

        k = int(opts["ubm_components"])
        say(f"i-vector: its own UBM, {k} diagonal components ({_D['max_iter']} EM iterations)")
        ubm = train_ubm(ubm_training_source(stores, rows, ubm_on_enroll=bool(opts["tv_on_enroll"])), k, "diag",
                        max_iter=int(_D["max_iter"]), init=_D["ubm_init"], random_state=random_state,
                        progress=progress, **par)
    if opts["ubm_covariance"] == "full" and ubm.covariance_type != "full":
        say(f"i-vector: full-covariance UBM ({opts['full_iter']} EM iterations from the diagonal one)")
        ubm = full_covariance_ubm(ubm, [stores["background"]], max_iter=int(opts["full_iter"]),
                                  random_state=random_state, progress=progress, **par)
    st = {}
    for role in ("background", "enroll", "test"):
        say(f"i-vector: Baum-Welch statistics ({role})")
        st[role] = utterance_stats(ubm, stores[role], ids=[r.id for r in rows[role]],
                                   top_c=opts["top_c"], progress=progress, **par)
    tv_parts = [st["background"], st["enroll"]] if opts["tv_on_enroll"] else [st["background"]]
    labels = {role: [str(r.label) for r in rows[role]] for role in ("background", "enroll", "test")}
    extra_tv = np.zeros(0, dtype=int)
    if extra:
        say(f"i-vector: Baum-Welch statistics (extra background, {sum(len(e['ids']) for e in extra)} "
            "recordings)")
        st["extra"] = BaumWelchStats.concat([utterance_stats(ubm, e["store"], ids=list(e["ids"]),
                                                             top_c=opts["top_c"], progress=progress, **par)
                                             for e in extra])
        labels["extra"] = [str(v) for e in extra for v in e["labels"]]
        extra_tv = np.flatnonzero(np.concatenate([np.full(len(e["ids"]), bool(e["tv"])) for e in extra]))
        if extra_tv.size:
            tv_parts.append(st["extra"].subset(extra_tv))
    base = {"labels": labels, "ubm": ubm, "stats": st, "extra_tv": extra_tv,
            "tv_stats": BaumWelchStats.concat(tv_parts), "feature_meta": dict(feature_meta or {})}
    return _tv_member(base, opts, random_state, par, progress, say, out=out)


def _tv_member(front, opts, random_state, par, progress, say, *, out=None, suffix=""):
    """``front`` (of :func:`_ivector_front`: statistics, labels, ``tv_stats``) with a TV
    matrix trained from the random start ``random_state`` and the i-vectors of every role
    (``extractor``, ``ivectors``, ``random_state``); the extractor is written to
    ``out/ivector_extractor<suffix>.npz`` (``out`` None: not written)."""
    from gmmspeech.backend.extractor import IVectorExtractor, save_extractor

    tv_stats, st = front["tv_stats"], front["stats"]
    ext = IVectorExtractor(rank=opts["rank"], n_iter=int(opts["n_iter"]), ubm=front["ubm"], top_c=opts["top_c"],
                           random_state=random_state, progress=progress, **par)
    say(f"i-vector: total variability, rank {opts['rank']}, {opts['n_iter']} EM iterations on "
        f"{len(tv_stats)} utterances" + (f" (random start {random_state})" if suffix else ""))
    ext.fit(tv_stats)
    if out is not None:
        save_extractor(ext, os.path.join(out, f"ivector_extractor{suffix}.npz"),
                       metadata={"role": "ivector-extractor", **front.get("feature_meta", {}),
                                 "random_state": None if random_state is None else int(random_state)})
    iv = {role: ext.transform(st[role]) for role in st}
    return {**front, "ivectors": iv, "extractor": ext, "random_state": random_state}


def _ivector_backend_scores(front, out, opts, say, heldout=None, suffix=""):
    """Back-end of the i-vectors of :func:`_ivector_scores` (``front``: ``ivectors`` and
    ``labels`` per role, ``extractor``, ``ubm``) and the scores of the real trials;
    writes ``out/ivector_backend<suffix>.npz`` (``out`` None: nothing written). ``heldout``:
    ``(store, rows, par)`` of the enrolment recordings, for the held-out trials of
    ``whiten_shrinkage="auto"`` (:func:`_choose_whiten_shrinkage`). The result's ``opts``
    are ``opts`` with that choice made (``whiten_choice``: its report)."""
    from gmmspeech.backend.scoring import save_backend
    from gmmspeech.backend.stats import BaumWelchStats

    choice = None
    if opts["whiten_shrinkage"] == "auto":
        choice = _choose_whiten_shrinkage(front, opts, heldout, say)
        opts = {**opts, "whiten_shrinkage": choice["chosen"]}
    iv, labels = front["ivectors"], front["labels"]
    X_bg, y_bg = _background_vectors(iv, labels)
    Xb, yb = _backend_data(X_bg, y_bg, iv["enroll"], labels["enroll"], opts)
    be = _backend(opts).fit(Xb, yb, domain=_domain_vectors(iv["background"], iv["enroll"], "extra" in iv, opts))
    say(f"i-vector: back-end ({opts['scoring']}) on {len(yb)} i-vectors of {len(set(yb))} speakers"
        + (" (background" + (" + extra background" if "extra" in iv else "")
           + (" + enrolment)" if opts["plda_on_enroll"] else ")")))
    if out is not None:
        save_backend(be, os.path.join(out, f"ivector_backend{suffix}.npz"),
                     metadata={"role": "ivector-backend", "random_state": front.get("random_state")})
    ext, st = front["extractor"], front["stats"]
    X_m, y_m, C_m = _enrolment_vectors(ext, st["enroll"], iv["enroll"], labels["enroll"], opts)
    C_t, C_bg = _snorm_covariances(ext, st["test"], partial(BaumWelchStats.concat, [st["background"]] + (
        [st["extra"]] if "extra" in st else [])), opts)
    model_labels, scores = _score_tests(be, X_m, y_m, C_m, _enrolment_counts(y_m, labels["enroll"], opts),
                                        iv["test"], ext, st["test"], opts, test_covariances=C_t)
    scores = _ivector_norm(scores, opts, be, model_labels, X_m, y_m, iv["test"],
                           X_bg, y_bg, covariances=(C_m, C_t, C_bg))
    return {**front, "model_labels": model_labels, "scores": scores, "backend": be, "opts": opts,
            "whiten_choice": choice}


def extra_background(sources, *, config, opts, data_root=None, max_duration=DEFAULT_MAX_DURATION,
                     n_jobs=1, backend=None, scheduler=None, progress=False, say=lambda m: None):
    """The extra background of the i-vector system (``extra`` of :func:`_ivector_front`).

    ``sources``: a list of ``(name, rows, store_dir, extra)``: labelled rows (speakers),
    the folder of their feature store and whether they are extra background (their own
    recordings join the back-end, and with ``opts["extra_background_tv"]`` the TV data) or
    the system's own background (only their speed-perturbed copies are added). A source's
    back-end classes are ``"<name>:<label>"`` (``name`` empty: the labels as they are), so
    the same label in two sources is two speakers. Every speed ``s`` of
    ``opts["speed_perturb"]`` adds a copy of every source's recordings, features extracted
    with ``config.replace(speed=s)`` into ``<store_dir>-speed<s>``, as the classes
    ``"<class>@speed<s>"`` (in the TV data with ``opts["speed_perturb_tv"]``). Returns
    ``(extra, bad)``: the list of dicts (``store``, ``ids``, ``labels``, ``tv``) and the
    bad files (dicts as :func:`build_features`'s)."""
    speeds = [float(v) for v in (opts.get("speed_perturb") or ())]
    for v in speeds:
        if not 0.5 <= v <= 2.0 or v == 1.0:
            raise ValueError(f"speed_perturb: speed {v!r} must be in [0.5, 2] and not 1")
    par = dict(n_jobs=n_jobs, backend=backend, scheduler=scheduler)
    out: list[dict] = []
    bad: list[dict] = []
    for name, rs, sdir, is_extra in sources:
        rs = _distinct(rs)
        prefix = f"{name}:" if name else ""
        variants = [(1.0, sdir, config)] if is_extra else []
        variants += [(v, f"{sdir}-speed{v:g}", config.replace(speed=v)) for v in speeds]
        for v, vdir, vcfg in variants:
            say(f"features: {len(rs)} files of the i-vector background {name or 'manifest'}"
                + ("" if v == 1.0 else f" at speed {v:g}") + f" -> {vdir}")
            st, good, b = build_features(rs, vdir, config=vcfg, data_root=data_root, progress=progress,
                                         role=f"ivector-background {name}".strip(),
                                         max_duration=max_duration, **par)
            bad += b
            if not good:
                continue
            suffix = "" if v == 1.0 else f"@speed{v:g}"
            out.append({"store": st, "ids": [r.id for r in good],
                        "labels": [f"{prefix}{r.label}{suffix}" for r in good],
                        "tv": bool(opts["extra_background_tv"] if v == 1.0 else opts["speed_perturb_tv"])})
    return out, bad


def _not_enrolled(background_rows, enroll_rows):
    """The background rows of speakers that are not enrolled: only they get speed-perturbed
    copies, since a copy is a new speaker class and an enrolled speaker's copy would teach
    the back-end that the speaker's own voice at another speed is someone else (FSDD: the
    background speakers are the enrolled ones)."""
    enrolled = {str(r.label) for r in enroll_rows}
    return [r for r in background_rows if str(r.label) not in enrolled]


def _background_vectors(iv, labels):
    """The background speakers' i-vectors and labels: the background manifest's, then the
    extra background's (role ``"extra"``, when there is one)."""
    if "extra" not in iv:
        return np.asarray(iv["background"]), list(labels["background"])
    return (np.concatenate([np.asarray(iv["background"]), np.asarray(iv["extra"])]),
            list(labels["background"]) + list(labels["extra"]))


def _backend(opts):
    from gmmspeech.backend.scoring import SpeakerBackend
    from gmmspeech.backend.transforms import SHRINKAGES

    dn = opts["domain_norm"]
    if dn not in ("none", "mean", "whiten"):
        raise ValueError(f"domain_norm={dn!r} must be 'none', 'mean' or 'whiten'")
    ws = opts["whiten_shrinkage"]
    if ws not in SHRINKAGES:  # "auto" is resolved by _ivector_backend_scores before
        raise ValueError(f"whiten_shrinkage={ws!r} must be one of "
                         f"{', '.join(map(repr, SHRINKAGES + ('auto',)))}")
    return SpeakerBackend(scoring=opts["scoring"], lda_dim=opts["lda_dim"], plda_model=opts["plda_model"],
                          plda_rank=opts["plda_rank"], plda_iter=int(opts["plda_iter"]),
                          domain_norm="whiten" if dn == "none" else dn, whiten_shrinkage=ws)


def _domain_vectors(X_bg, X_enr, has_extra, opts):
    """The in-domain i-vectors the back-end's normalisations are centred (whitened) on with
    ``domain_norm``: the run's own background and enrolment recordings (never a test one);
    None (all training i-vectors) with ``"none"`` or without an extra background."""
    if opts["domain_norm"] == "none" or not has_extra:
        return None
    parts = [np.asarray(X_bg)] + ([np.asarray(X_enr)] if X_enr is not None and len(X_enr) else [])
    return np.concatenate(parts)


def _enrolment_vectors(extractor, stats, X_enr, y_enr, opts):
    """The i-vectors a speaker model is made of: one per enrolment recording (``"mean"``:
    the back-end averages them, the PLDA LLR counting them) or one i-vector extracted from
    the speaker's recordings' statistics summed (``"pooled"``). ``(vectors, labels,
    covariances)``: the posterior covariances when :func:`_uncertain`, else None."""
    how = opts["enroll_ivectors"]
    if how == "mean":
        return X_enr, [str(v) for v in y_enr], _posterior_covariances(extractor, stats, opts)
    if how != "pooled":
        raise ValueError(f"enroll_ivectors={how!r} must be 'mean' or 'pooled'")
    pooled = stats.pooled([str(v) for v in y_enr])
    if _uncertain(opts):
        means, covs = extractor.posterior(pooled)
        return means, list(pooled.ids), covs
    return extractor.transform(pooled), list(pooled.ids), None


def _enrolment_counts(model_labels, enrol_labels, opts):
    """Per model vector of :func:`_enrolment_vectors`, how many recordings the PLDA LLR
    counts it as: None (one each) unless ``enroll_count="recordings"`` and the models are
    pooled, then each speaker's number of enrolment recordings."""
    how = opts["enroll_count"]
    if how not in ("vectors", "recordings"):
        raise ValueError(f"enroll_count={how!r} must be 'vectors' or 'recordings'")
    if how == "vectors" or opts["enroll_ivectors"] != "pooled":
        return None
    n = Counter(str(v) for v in enrol_labels)
    return [n[str(m)] for m in model_labels]


def _posterior_covariances(extractor, stats, opts):
    """The i-vector posterior covariances of ``stats`` (U, R, R) when :func:`_uncertain`
    (the PLDA score then propagates them), else None."""
    return extractor.posterior(stats)[1] if _uncertain(opts) else None


#: Tests whose posterior covariances are held at once when the scores propagate them
#: (each is R x R floats: 256 tests at R = 400 take 330 MB).
_UNCERTAIN_BLOCK = 256


def _snorm_covariances(extractor, test_stats, background_stats, opts):
    """``(test, background)`` posterior covariances for S-norm's cohort scores, which need
    all of them at once (``background_stats``: a callable giving the background recordings'
    statistics); ``(None, None)`` unless S-norm scores propagate the uncertainty."""
    if not (_uncertain(opts) and opts["norm"] == "snorm"):
        return None, None
    return extractor.posterior(test_stats)[1], extractor.posterior(background_stats())[1]


def _score_tests(be, X_m, y_m, C_m, counts, X_test, extractor, test_stats, opts, block=None,
                 test_covariances=None):
    """``be.score_trials`` of the models against the tests; when the scores propagate the
    uncertainty (:func:`_uncertain`) the tests' posterior covariances (``test_covariances``
    when already computed, all tests at once) are computed and used ``block`` tests at a
    time (default :data:`_UNCERTAIN_BLOCK`), so a large test set never holds all of them."""
    if not _uncertain(opts) or not len(X_test):
        return be.score_trials(X_m, y_m, X_test, enroll_counts=counts)
    if test_covariances is not None:
        return be.score_trials(X_m, y_m, X_test, enroll_covariances=C_m, test_covariances=test_covariances,
                               enroll_counts=counts)
    block = int(block or _UNCERTAIN_BLOCK)
    parts, labels = [], None
    for start in range(0, len(X_test), block):
        idx = np.arange(start, min(start + block, len(X_test)))
        cov = extractor.posterior(test_stats.subset(idx))[1]
        labels, sc = be.score_trials(X_m, y_m, np.asarray(X_test)[idx], enroll_covariances=C_m,
                                     test_covariances=cov, enroll_counts=counts)
        parts.append(sc)
    return labels, np.concatenate(parts)


def _uncertain(opts) -> bool:
    """Whether the scores propagate the i-vectors' uncertainty: ``opts["uncertainty"]`` with
    PLDA scoring (cosine scoring has no model of it, so the option does not apply there)."""
    return bool(opts["uncertainty"]) and opts["scoring"] == "plda"


def _backend_data(X_bg, y_bg, X_enr, y_enr, opts):
    """The labelled i-vectors the back-end is trained on: the background speakers, plus the
    enrolled speakers' enrolment recordings with ``plda_on_enroll`` (their labels are
    training data; never a test recording)."""
    if not opts["plda_on_enroll"] or X_enr is None or not len(X_enr):
        return np.asarray(X_bg), [str(v) for v in y_bg]
    return (np.concatenate([np.asarray(X_bg), np.asarray(X_enr)]),
            [str(v) for v in y_bg] + [str(v) for v in y_enr])


def _ivector_norm(scores, opts, be, model_labels, X_enr, y_enr, X_test, X_bg, y_bg, covariances=None):
    """The i-vector score normalisation of ``opts["norm"]``: none; T-norm over the other
    enrolled models; or S-norm with the background speakers as cohort models (T side) and
    the background recordings as impostor tests (Z side). The claimed speaker is never in
    its own cohort (exclusion by label). ``covariances``: ``(enrolment, test, background)``
    posterior covariances (or Nones) for the cohort scores, scored as the trials are."""
    norm = opts["norm"]
    if norm in (None, "none"):
        return scores
    if norm == "tnorm":
        return _enrolled_tnorm(scores)
    if norm != "snorm":
        raise ValueError(f"i-vector norm={norm!r} is not supported; choose 'none', 'tnorm' or 'snorm'")
    c_enr, c_test, c_bg = covariances or (None, None, None)
    coh_labels, coh = be.score_trials(X_bg, y_bg, X_test, enroll_covariances=c_bg,
                                      test_covariances=c_test)  # (tests, background speakers)
    imp_models, imp = be.score_trials(X_enr, y_enr, X_bg, enroll_covariances=c_enr,
                                      test_covariances=c_bg)  # (background recordings, models)
    imp = _align_columns(imp, imp_models, model_labels)
    if len(set(str(v) for v in y_bg) - set(model_labels)) < 2:
        return _enrolled_tnorm(scores)  # too few other speakers for a background cohort
    return normalise_scores(scores, "snorm", model_labels=model_labels, impostor_scores=imp,
                            impostor_labels=[str(v) for v in y_bg], cohort_scores=coh,
                            cohort_labels=coh_labels, norm_cohort="background")


def _enrolled_tnorm(scores):
    """T-norm over the other enrolled models (leave-one-out); with fewer than three models a
    cohort would have under two entries, so the scores are left as they are."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 3:
        return scores
    return normalise_scores(scores, "tnorm", norm_cohort="enrolled")


def _pseudo_protocol(store, rows, *, speakers=None, max_tests: int = 20, segment_frames: int = 300,
                     same_recording: bool = False, split: str = "halves"):
    """Held-out trials built from recordings whose labels are known (never test recordings).

    A recording is an audio file (rows that are segments of one file are one recording).
    Per speaker (``speakers``: the labels to use; default all) with two or more recordings,
    ordered by their first row id: ``split="halves"``: the first half of the recordings
    enrol, the rows of the others are tests; ``"alternate"``: the 1st, 3rd, ... enrol, the
    2nd, 4th, ... test (ids that sort by content, e.g. digit or word then take, then give
    enrolment and tests of the same words, as the real protocols do); at most ``max_tests``
    tests, evenly spread. Every held-out test comes from a recording its model was not
    enrolled from. A speaker with a single recording gives no
    trials, unless ``same_recording``: then its first 60 % of frames (of its first row) enrol
    and the rest is cut into tests of ``segment_frames`` frames (as :func:`impostor_segments`).
    Such trials enrol from a fraction of the speaker's enrolment data and test on the same
    recording: on the LibriSpeech dev split they made GMM-UBM look weaker than on the real
    trials and the fusion weighted the i-vector system six times more than the real trials
    ask for (see the README), hence off by default.
    Returns ``(enrol, tests)``: lists of ``(label, frames, row index, whole)`` (``whole``:
    the frames are the whole row, not a piece of it).
    """
    if split not in ("halves", "alternate"):
        raise ValueError(f"fusion_split={split!r} must be 'halves' or 'alternate'")
    by_spk: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(rows):
        if speakers is None or str(r.label) in speakers:
            by_spk.setdefault(str(r.label), {}).setdefault(str(r.path), []).append(i)
    enr: list[tuple] = []
    tst: list[tuple] = []
    for spk, recs in by_spk.items():
        groups = sorted((sorted(idx, key=lambda i: rows[i].id) for idx in recs.values()),
                        key=lambda idx: rows[idx[0]].id)
        if len(groups) >= 2:
            if split == "alternate":
                e_groups, t_groups = groups[0::2], groups[1::2]
            else:
                h = (len(groups) + 1) // 2
                e_groups, t_groups = groups[:h], groups[h:]
            e_idx = [i for g in e_groups for i in g]
            t_idx = [i for g in t_groups for i in g]
            if len(t_idx) > max_tests:
                t_idx = [t_idx[j] for j in np.linspace(0, len(t_idx) - 1, max_tests).round().astype(int)]
            enr += [(spk, np.asarray(store.load(rows[i].id)), i, True) for i in e_idx]
            tst += [(spk, np.asarray(store.load(rows[i].id)), i, True) for i in t_idx]
            continue
        if not same_recording:
            continue
        first = groups[0][0]
        x = np.asarray(store.load(rows[first].id))
        cut = int(round(0.6 * x.shape[0]))
        if cut < 1 or x.shape[0] - cut < max(1, segment_frames // 3):
            continue  # too short to give an enrolment and a test part
        segs, _ = _segments([x[cut:]], segment_frames, max_tests)
        enr.append((spk, x[:cut], first, False))
        tst += [(spk, s, first, False) for s in segs]
    return enr, tst


def _heldout_ivectors(front, role, enr, tst, opts, par):
    """i-vectors of held-out trials from a total-variability model that has not seen their
    test recordings: trained on what the real system's TV is trained on, with the trials'
    test recordings left out (a split recording contributes its enrolling part only), as
    the real system's TV never sees a test recording. Returns ``(X_enr, X_tst, X_bg,
    extractor, enrol_stats, test_stats, background_stats)``: the i-vectors (``X_bg``: the
    background's, then the extra background's), the held-out extractor and the statistics
    the i-vectors come from (for pooled enrolment i-vectors and posterior covariances)."""
    from gmmspeech.backend.extractor import IVectorExtractor
    from gmmspeech.backend.stats import BaumWelchStats, utterance_stats

    st, ext = front["stats"], front["extractor"]
    ubm = ext.ubm_

    def stats_of(items):
        rec = [it[2] for it in items if it[3]]
        pieces = [it[1] for it in items if not it[3]]
        parts = []
        if rec:
            parts.append(st[role].subset(rec))
        if pieces:
            parts.append(utterance_stats(ubm, pieces, top_c=opts["top_c"], **par))
        # back to the items' order
        both = BaumWelchStats.concat(parts)
        order = np.empty(len(items), dtype=int)
        order[[j for j, it in enumerate(items) if it[3]]] = np.arange(len(rec))
        order[[j for j, it in enumerate(items) if not it[3]]] = len(rec) + np.arange(len(pieces))
        return both.subset(order)

    s_enr, s_tst = stats_of(enr), stats_of(tst)
    held = {it[2] for it in tst} | {it[2] for it in enr}  # recordings split or used whole
    parts = []
    for r in ("background", "enroll"):
        if r == "enroll" and not opts["tv_on_enroll"]:
            continue
        keep = [i for i in range(len(st[r])) if not (r == role and i in held)]
        if keep:
            parts.append(st[r].subset(keep))
    if role == "enroll" and opts["tv_on_enroll"] or role == "background":
        parts.append(s_enr)  # the enrolling parts, as the real TV sees the enrolment data
    bg = st["background"]
    if "extra" in st:  # the extra background, as the real system uses it
        if len(front.get("extra_tv", ())):
            parts.append(st["extra"].subset(front["extra_tv"]))
        bg = BaumWelchStats.concat([bg, st["extra"]])
    tv = BaumWelchStats.concat(parts)
    rank = ext.rank_ if opts["rank"] != "auto" else "auto"
    hx = IVectorExtractor(rank=rank, n_iter=int(opts["n_iter"]), ubm=ubm, top_c=opts["top_c"],
                          random_state=front.get("random_state", 0), **par).fit(tv)
    return hx.transform(s_enr), hx.transform(s_tst), hx.transform(bg), hx, s_enr, s_tst, bg


def _heldout_ivector_scores(front, fold, enr, held, opts):
    """``(model_labels, scores (tests, models))`` of held-out trials (``enr``: the enrolling
    items of :func:`_pseudo_protocol`; ``held``: :func:`_heldout_ivectors` of them), scored
    as the real system scores its trials, with a back-end trained on the background speakers
    outside ``fold`` (the held-out trials' speakers) plus, with ``plda_on_enroll``, the
    enrolling parts (never the test parts); None when that leaves fewer than 2 speakers."""
    labels = front["labels"]
    X_enr, X_tst, X_bg_all, h_ext, s_enr, s_tst, s_bg = held
    y_enr = [it[0] for it in enr]
    bg_labels = labels["background"] + labels.get("extra", [])
    bg_keep = [j for j, lab in enumerate(bg_labels) if lab not in fold]
    X_bg = X_bg_all[bg_keep]
    y_bg = [bg_labels[j] for j in bg_keep]
    Xb, yb = _backend_data(X_bg, y_bg, X_enr, y_enr, opts)
    if len(set(yb)) < 2:
        return None
    n_own = len(labels["background"])  # X_bg_all: the background's, then the extra background's
    own = [j for j in bg_keep if j < n_own]
    be = _backend(opts).fit(Xb, yb, domain=_domain_vectors(X_bg_all[own], X_enr, "extra" in front["ivectors"],
                                                           opts))
    X_m, y_m, C_m = _enrolment_vectors(h_ext, s_enr, X_enr, y_enr, opts)
    C_t, C_bg = _snorm_covariances(h_ext, s_tst, partial(s_bg.subset, bg_keep), opts)
    m_lab, s_iv = _score_tests(be, X_m, y_m, C_m, _enrolment_counts(y_m, y_enr, opts), X_tst, h_ext, s_tst,
                               opts, test_covariances=C_t)
    return m_lab, _ivector_norm(s_iv, opts, be, m_lab, X_m, y_m, X_tst, X_bg, y_bg, covariances=(C_m, C_t, C_bg))


def _heldout_ensemble_scores(iv, fold, role, enr, tst, opts, par):
    """The held-out trials' i-vector scores (:func:`_heldout_ivector_scores`) of every member
    of the i-vector system (:func:`_ivector_ensemble`; one system: itself), each member's TV
    matrix retrained from its own random start without the trials' tests and its back-end
    with its own resolved options (``opts`` when a member carries none); their mean, columns
    aligned on the first member's models (None when a member has no back-end there)."""
    parts = []
    for mem in iv.get("members") or [iv]:
        m_opts = mem.get("opts", opts)
        held = _heldout_ivector_scores(mem, fold, enr, _heldout_ivectors(mem, role, enr, tst, m_opts, par), m_opts)
        if held is None:
            return None
        parts.append(held)
    return _mean_scores(parts)


def _choose_whiten_shrinkage(front, opts, heldout, say):
    """``whiten_shrinkage="auto"``: which whitening covariance the back-end takes, chosen in
    the run. Only the in-domain whitening (``domain_norm="whiten"`` with an extra
    background) is chosen: between the in-domain sample covariance ("none") and its
    Ledoit-Wolf shrinkage towards all training i-vectors' covariance ("ledoit-wolf"), by the
    EER of held-out trials among the enrolment recordings (the fusion's trials: a speaker's
    first recordings enrol, the others test; the TV matrix retrained without those tests,
    :func:`_heldout_ivectors`); "ledoit-wolf" unless "none" is strictly better there, and
    "ledoit-wolf" without such trials (fewer than 2 speakers with 2 recordings). Otherwise
    the whitening is of all training i-vectors, about ten per dimension with the automatic
    rank, and stays unshrunk ("none", no held-out trials built). ``heldout``: ``(store,
    rows, par)`` of the enrolment recordings (None: no trials). Returns a report dict with
    ``chosen``, ``reason`` and the held-out ``eer`` per candidate."""
    from gmmspeech.backend.calibration import trial_matrix
    from gmmspeech.metrics import eer as eer_fn

    if opts["domain_norm"] != "whiten" or "extra" not in front["ivectors"]:
        return {"chosen": "none", "reason": "whitening estimated on all the back-end's training i-vectors"}
    enr = tst = []
    if heldout is not None:
        store, rows, par = heldout
        enr, tst = _pseudo_protocol(store, rows, speakers=set(front["labels"]["enroll"]),
                                    split=opts["fusion_split"])
    m_spk = sorted({it[0] for it in enr} & {it[0] for it in tst})
    if len(m_spk) < 2:
        say("i-vector: whitening shrinkage ledoit-wolf (no held-out trials: fewer than 2 enrolled speakers "
            "with two recordings)")
        return {"chosen": "ledoit-wolf", "reason": "no held-out trials"}
    enr = [it for it in enr if it[0] in m_spk]
    tst = [it for it in tst if it[0] in m_spk]
    held = _heldout_ivectors(front, "enroll", enr, tst, opts, par)
    t_lab = np.asarray([it[0] for it in tst])
    eers = {}
    for cand in ("none", "ledoit-wolf"):
        m_lab, sc = _heldout_ivector_scores(front, set(m_spk), enr, held, {**opts, "whiten_shrinkage": cand})
        x, tgt = trial_matrix(sc, m_lab, t_lab)
        eers[cand] = float(eer_fn(x[tgt], x[~tgt]))
    chosen = "none" if eers["none"] < eers["ledoit-wolf"] else "ledoit-wolf"
    say(f"i-vector: whitening shrinkage {chosen} (held-out EER: none {100 * eers['none']:.2f} %, "
        f"ledoit-wolf {100 * eers['ledoit-wolf']:.2f} %; {len(tst)} tests of {len(m_spk)} speakers)")
    return {"chosen": chosen, "reason": "held-out trials", "eer": eers, "n_tests": len(tst),
            "n_speakers": len(m_spk)}


def _fusion(ubm, stores, rows, iv, gmm_cfg, opts, par, say):
    """Train the GMM-UBM + i-vector fusion on held-out trials that resemble the real ones,
    and check on them that the i-vector system helps.

    ``fusion_trials="enroll"`` (default): every enrolled speaker's enrolment recordings
    are split (:func:`_pseudo_protocol`): the first part enrols a GMM-UBM model (MAP from
    the same UBM) and an i-vector model, the rest are tests scored against all of them.
    As in the real system, the trials' test recordings are seen by no i-vector stage: their
    total-variability matrix is retrained without them (:func:`_heldout_ivectors`) and
    their back-end is trained on the background speakers (and, with ``plda_on_enroll``, on
    the enrolling parts). ``"background"``: the same among background speakers in two
    folds, the back-end of each fold trained without the fold's other recordings. The
    GMM-UBM input is the raw LLR (as the real trials' raw LLRs), with non-negative weights
    (:class:`ScoreFusion`).

    With ``fusion_check`` the fusion is cross-validated on these trials
    (:func:`gmmspeech.backend.calibration.fusion_check`): if it does not beat GMM-UBM alone
    there, the i-vector system is dropped (``keep`` False: the output is exactly the
    GMM-UBM system's scores). Returns a dict with ``fusion`` (or None when dropped) and
    the report.
    """
    from gmmspeech.backend.calibration import ScoreFusion, fusion_check, trial_matrix
    from gmmspeech.speaker.map import enroll as enroll_models
    from gmmspeech.speaker.scoring import score as score_fn

    opts = iv.get("opts", opts)  # whiten_shrinkage="auto" resolved as the real system's
    where = opts["fusion_trials"]
    if where not in ("background", "enroll"):
        raise ValueError(f"fusion_trials={where!r} must be 'background' or 'enroll'")
    role = "enroll" if where == "enroll" else "background"
    labels = iv["labels"]
    spk = sorted(set(labels[role]))
    folds = [set(spk)] if role == "enroll" else [set(spk[0::2]), set(spk[1::2])]
    g_all, i_all, t_all, grp_all, tst_all = [], [], [], [], []
    n_tests = 0
    for fold in folds:
        enr, tst = _pseudo_protocol(stores[role], rows[role], speakers=fold,
                                    segment_frames=int(gmm_cfg["impostor_segment_frames"]),
                                    same_recording=bool(opts["fusion_same_recording"]),
                                    split=opts["fusion_split"])
        m_spk = sorted({it[0] for it in enr} & {it[0] for it in tst})
        if len(m_spk) < 2:
            continue
        enr = [it for it in enr if it[0] in m_spk]
        tst = [it for it in tst if it[0] in m_spk]
        held = _heldout_ensemble_scores(iv, fold, role, enr, tst, opts, par)
        if held is None:
            continue
        m_lab, s_iv = held
        spk_arrays: dict[str, list] = {}
        for it in enr:
            spk_arrays.setdefault(it[0], []).append(it[1])
        models = enroll_models(ubm, spk_arrays, relevance_factor=gmm_cfg["relevance_factor"],
                               adapt=gmm_cfg["adapt"], **par)
        raw = score_fn([models[m] for m in m_lab], ubm, [it[1] for it in tst],
                       top_c=_topc(gmm_cfg), mode=gmm_cfg["mode"], **par)
        t_lab = np.asarray([it[0] for it in tst])
        g, tgt = trial_matrix(raw, m_lab, t_lab)
        i_, _ = trial_matrix(s_iv, m_lab, t_lab)
        g_all.append(g)
        i_all.append(i_)
        t_all.append(tgt)
        grp_all.append(np.repeat(t_lab, len(m_lab)))
        tst_all.append(np.repeat(np.arange(n_tests, n_tests + len(tst)), len(m_lab)))
        n_tests += len(tst)
    report: dict[str, Any] = {"trained_on": where, "n_trials": 0, "n_target": 0}
    if not t_all:
        report["keep"] = False
        report["reason"] = (f"fewer than 2 {role} speakers have two or more recordings (a held-out "
                            "test must come from a recording its model was not enrolled from)"
                            if not opts["fusion_same_recording"] else
                            f"too few {role} speakers with recordings to split into held-out trials")
        say(f"fusion: {report['reason']}; the i-vector system is dropped (GMM-UBM scores)")
        return {"fusion": None, **report}
    G, I_, T = np.concatenate(g_all), np.concatenate(i_all), np.concatenate(t_all)
    groups, tests = np.concatenate(grp_all), np.concatenate(tst_all)
    X = np.stack([G, I_], axis=1)
    report.update(n_trials=int(T.size), n_target=int(T.sum()))
    if T.all() or not T.any():
        report["keep"] = False
        report["reason"] = "the held-out trials have only one class"
        return {"fusion": None, **report}
    from gmmspeech.metrics import eer as eer_fn

    report["eer_by_system"] = {name: float(eer_fn(X[T, j], X[~T, j]))
                               for j, name in enumerate(("gmm-ubm", "ivector"))}
    fusion = ScoreFusion().fit(X, T)
    keep = bool(fusion.coef_[1] > 0)
    if opts["fusion_check"] and keep:
        if len(set(groups)) >= 2:
            chk = fusion_check(X, T, groups, tests=tests, min_gain=float(opts["fusion_min_gain"]))
            report["check"] = {k: chk[k] for k in ("cllr", "eer", "accuracy", "n_folds")}
            keep = chk["keep"]
        else:
            keep = False
    report["keep"] = keep
    say(f"fusion: {T.size} held-out trials ({int(T.sum())} target); weights gmm-ubm "
        f"{fusion.coef_[0]:.3f}, i-vector {fusion.coef_[1]:.3f}"
        + ("" if keep else "; the i-vector system does not help there and is dropped (GMM-UBM scores)"))
    return {"fusion": fusion if keep else None, "fitted": fusion,
            "trials": {"X": X, "is_target": T, "groups": groups, "tests": tests}, **report}
