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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gmmspeech.audio import DEFAULT_MAX_DURATION
from gmmspeech.errors import GMMSpeechError, ModelFileError

__all__ = [
    "run_speaker_id",
    "build_features",
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
]

NORMS = ("none", "znorm", "tnorm", "snorm", "asnorm")

#: Tuned settings of the protocols in ``data_manifests/`` (keyword arguments of
#: :func:`run_speaker_id`). ``librispeech``: enrolment and test are two parts of one
#: recording per speaker, so the long-term spectrum (CMVN off) and the low-energy frames
#: (VAD off) carry speaker/channel information; 24 cepstra (+ deltas, 72 dims), a
#: 128-component UBM trained on background + enrolment data, MAP of the means with
#: relevance 4, exact scoring and T-norm over the enrolled models. Measured on the
#: protocol (126 speakers, 228 tests): 100.00 % identification, EER 0.15 %.
PROTOCOL_PRESETS: dict[str, dict[str, Any]] = {
    "librispeech": dict(
        preset="speech",
        feature_overrides={"cmvn": "none", "vad": False, "n_mfcc": 24},
        n_components=128,
        ubm_on_enroll=True,
        relevance_factor=4.0,
        adapt="m",
        top_c=None,
        score_mode="exact",
        norm="tnorm",
    ),
}


def protocol_settings(name: str) -> dict[str, Any]:
    """A copy of :data:`PROTOCOL_PRESETS` ``[name]`` (keyword arguments of :func:`run_speaker_id`)."""
    if name not in PROTOCOL_PRESETS:
        raise ValueError(f"protocol {name!r} is not one of {', '.join(map(repr, PROTOCOL_PRESETS))}")
    out = dict(PROTOCOL_PRESETS[name])
    out["feature_overrides"] = dict(out["feature_overrides"])
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
    """Extract the features of a manifest into a feature store.

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

    rows = read_manifest(manifest, data_root=data_root)
    store = FeatureStore(store_dir)
    report = store.build(rows, config=config, n_jobs=n_jobs, backend=backend,
                         scheduler=scheduler, progress=progress, max_duration=max_duration)
    failed = {fid for fid, _, _ in report.failed}
    bad = [{"manifest": role, "id": fid, "path": path, "reason": reason}
           for fid, path, reason in report.failed]
    good = [r for r in rows if r.id not in failed and r.id in store]
    return store, good, bad


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
def _segments(arrays, seg_frames: int, max_segments: int):
    out = []
    for a in arrays:
        for s in range(0, a.shape[0] - seg_frames // 2, seg_frames):
            piece = a[s:s + seg_frames]
            if piece.shape[0] >= seg_frames // 2:
                out.append(np.asarray(piece))
    if len(out) > max_segments:
        idx = np.linspace(0, len(out) - 1, max_segments).round().astype(int)
        out = [out[i] for i in idx]
    return out


def normalise_scores(raw, norm, *, impostor_scores=None, top_n=None):
    """Apply ``norm`` (one of :data:`NORMS`) to a (tests x models) matrix; the T-norm
    cohort is the set of enrolled models (all columns)."""
    from gmmspeech.speaker import norm as N

    if norm in (None, "none"):
        return raw
    if norm == "tnorm":
        return N.tnorm(raw, raw, top_n=top_n)
    if impostor_scores is None:
        raise ValueError(f"norm={norm!r} needs impostor scores")
    if norm == "znorm":
        return N.znorm(raw, impostor_scores, top_n=top_n)
    if norm == "snorm":
        return N.snorm(raw, impostor_scores, raw, top_n=top_n)
    if norm == "asnorm":
        return N.snorm(raw, impostor_scores, raw, top_n=top_n or 50)
    raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")


# --------------------------------------------------------------------------- the recipe
def run_speaker_id(
    background,
    enroll,
    test,
    out,
    *,
    data_root=None,
    preset: str = "speech",
    config=None,
    feature_overrides: Mapping[str, Any] | None = None,
    features_dir=None,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    n_components: int = 256,
    covariance_type: str = "diag",
    max_iter: int = 10,
    ubm_init: str = "split",
    ubm_on_enroll: bool = False,
    relevance_factor: float | Mapping[str, float] = 16.0,
    adapt: str = "m",
    top_c: int | None = 5,
    score_mode: str | None = None,
    norm: str | None = None,
    norm_top_n: int | None = None,
    impostor_segment_frames: int = 300,
    max_impostors: int = 400,
    random_state: int = 0,
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
    """GMM-UBM speaker identification and verification from three manifests.

    Parameters
    ----------
    background, enroll, test : path
        Manifests (``id,path,label[,start,end]``). Enrolment rows with the same label
        are pooled into one model; every test row is scored against every model.
    out : path
        Output folder (see the module docstring for what is written).
    data_root : path, optional
        Root of relative manifest paths (default: each manifest's folder).
    preset, config
        Feature preset name, or a :class:`~gmmspeech.features.config.FeatureConfig`
        (wins over ``preset``).
    feature_overrides : dict, optional
        Changes applied with ``FeatureConfig.replace`` (e.g. ``{"cmvn": "none"}``: when
        enrolment and test come from the same recordings, as in the LibriSpeech
        protocol, the long-term spectral mean is speaker (and channel) information that
        utterance CMVN would remove).
    features_dir : path, optional
        Where the feature stores go (``<features_dir>/<config hash>/{background,enroll,test}``,
        shareable between runs); default ``out/features``.
    max_duration : float or None
        Longest accepted audio file or segment in seconds (default 4 hours); longer ones
        are bad files.
    n_components, covariance_type, max_iter, ubm_init
        UBM settings (see :func:`gmmspeech.speaker.ubm.train_ubm`).
    ubm_on_enroll : bool
        Also train the UBM on the enrolment data (never on test data).
    relevance_factor, adapt
        MAP settings (see :func:`gmmspeech.speaker.map.map_adapt`).
    top_c : int or None
        Top-C scoring with C components (None: exact scoring).
    score_mode : {"exact", "topc", "linear"}, optional
        Overrides the mode implied by ``top_c``.
    norm : {"none", "znorm", "tnorm", "snorm", "asnorm"}, optional
        Score normalisation. The T-norm cohort is the enrolled models; Z-norm impostor
        utterances are background segments of ``impostor_segment_frames`` frames (at most
        ``max_impostors``). ``"asnorm"``: adaptive S-norm on the top ``norm_top_n``
        (default 50) cohort scores.
    random_state : int
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
    from gmmspeech.speaker.map import enroll as enroll_models
    from gmmspeech.speaker.scoring import score as score_fn
    from gmmspeech.speaker.ubm import train_ubm

    def say(msg):
        if log is not None:
            log(msg)
        else:
            _log(msg, verbose)

    if norm not in (None,) + NORMS:
        raise ValueError(f"norm={norm!r} is not supported; choose one of {', '.join(NORMS)}")
    from gmmspeech.speaker.ubm import UBMCheckpointError

    out = os.path.abspath(os.fspath(out))
    cfg = config if config is not None else feature_config(preset)
    if feature_overrides:
        cfg = cfg.replace(**dict(feature_overrides))
    ckpt = (os.path.join(out, "ubm.ckpt.npz") if ubm_checkpoint is None
            else os.path.abspath(os.fspath(ubm_checkpoint)))
    if os.path.exists(ckpt) and not (resume or restart):
        raise UBMCheckpointError(ckpt, "a UBM checkpoint of an interrupted run exists; pass "
                                       "resume=True to continue it or restart=True to discard it")
    os.makedirs(out, exist_ok=True)
    if features_dir is None:
        fdir = os.path.join(out, "features")
    else:
        fdir = os.path.join(os.path.abspath(os.fspath(features_dir)), cfg.config_hash())
    timings: dict[str, float] = {}
    par = dict(n_jobs=n_jobs, backend=backend, scheduler=scheduler)

    t0 = time.perf_counter()
    bad: list[dict] = []
    stores: dict[str, Any] = {}
    rows: dict[str, list] = {}
    upsampled: dict[int, int] = {}
    n_extracted = 0
    for role, man in (("background", background), ("enroll", enroll), ("test", test)):
        say(f"features: {role} ({man})")
        st, good, b = build_features(man, os.path.join(fdir, role), config=cfg, data_root=data_root,
                                     progress=progress, role=role, max_duration=max_duration, **par)
        stores[role], rows[role] = st, good
        n_extracted += st.last_report.n_done
        for rate, k in st.last_report.upsampled.items():
            upsampled[rate] = upsampled.get(rate, 0) + k
        bad.extend(b)
        for item in b:
            print(f"gmmspeech speaker-id: skipped {item['path']} ({role} {item['id']}): {item['reason']}",
                  file=sys.stderr)
    timings["features"] = time.perf_counter() - t0
    note = upsampling_note(upsampled, n_extracted, cfg.sample_rate)
    if note:
        say(note)
    for role in ("background", "enroll", "test"):
        if not rows[role]:
            raise GMMSpeechError(f"{role} manifest: no usable file (see {stores[role].errors_path})")

    t0 = time.perf_counter()
    ubm_src = [stores["background"]] + ([stores["enroll"]] if ubm_on_enroll else [])
    ubm_ids = None
    bg_ids = [r.id for r in rows["background"]]
    # train only on the rows of this manifest (a shared store may hold more)
    if set(stores["background"].ids()) != set(bg_ids) or (
            ubm_on_enroll and set(stores["enroll"].ids()) != {r.id for r in rows["enroll"]}):
        ubm_ids = [np.asarray(stores["background"].load(i)) for i in bg_ids]
        if ubm_on_enroll:
            ubm_ids += [np.asarray(stores["enroll"].load(r.id)) for r in rows["enroll"]]
    say(f"UBM: {n_components} {covariance_type} components, {max_iter} EM iterations")
    ubm = train_ubm(ubm_src if ubm_ids is None else ubm_ids, int(n_components), covariance_type,
                    max_iter=int(max_iter), init=ubm_init, random_state=random_state,
                    progress=progress, checkpoint=ckpt, resume=resume and os.path.exists(ckpt),
                    restart=restart, **par)
    feature_meta = {"feature_config": cfg.to_dict(), "feature_config_hash": cfg.config_hash()}
    mio.save(ubm, os.path.join(out, "ubm.npz"), metadata={"role": "ubm", **feature_meta})
    if os.path.exists(ckpt):
        os.unlink(ckpt)
    timings["ubm"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spk: dict[str, list] = {}
    for r in rows["enroll"]:
        spk.setdefault(str(r.label), []).append(np.asarray(stores["enroll"].load(r.id)))
    say(f"enrol: {len(spk)} speakers (relevance {relevance_factor}, adapt {adapt!r})")
    models = enroll_models(ubm, spk, relevance_factor=relevance_factor, adapt=adapt,
                           progress=progress, **par)
    save_models(models, os.path.join(out, "models"), metadata=feature_meta)
    timings["enroll"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mode = score_mode or ("topc" if top_c else "exact")
    utts = [np.asarray(stores["test"].load(r.id)) for r in rows["test"]]
    say(f"score: {len(utts)} tests x {len(models)} models ({mode})")
    model_labels = list(models)
    raw = score_fn([models[m] for m in model_labels], ubm, utts,
                   top_c=top_c if mode == "topc" else None, mode=mode, progress=progress, **par)
    imp = None
    if norm in ("znorm", "snorm", "asnorm"):
        bg_arrays = (np.asarray(stores["background"].load(r.id)) for r in rows["background"])
        segs = _segments(bg_arrays, int(impostor_segment_frames), int(max_impostors))
        imp = score_fn([models[m] for m in model_labels], ubm, segs,
                       top_c=top_c if mode == "topc" else None, mode=mode, **par)
    scores = normalise_scores(raw, norm, impostor_scores=imp, top_n=norm_top_n)
    timings["score"] = time.perf_counter() - t0

    test_ids = [r.id for r in rows["test"]]
    test_labels = [str(r.label) for r in rows["test"]]
    write_scores(os.path.join(out, "scores.tsv"), test_ids, test_labels, model_labels, scores)
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
            top_c=top_c, score_mode=mode, norm=norm or "none", norm_top_n=norm_top_n,
            random_state=random_state,
        ),
        ubm_history=[float(v) for v in getattr(ubm, "history_", [])],
        timings={k: round(v, 3) for k, v in timings.items()},
        ubm_path=os.path.join(out, "ubm.npz"),
        models_dir=os.path.join(out, "models"),
        scores_path=os.path.join(out, "scores.tsv"),
    )
    _write_json(os.path.join(out, "results.json"), res)
    say(summary_line(res))
    return res
