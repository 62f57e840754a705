"""Sub-commands ``train-ubm``, ``enroll``, ``score``, ``evaluate`` and ``speaker-id``.

Parsing and printing only: the work is done by :mod:`gmmspeech.speaker` (imported
inside the command functions so that ``gmmspeech --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from gmmspeech.cli.common import add_data_root_arg, add_parallel_args
from gmmspeech.speaker.defaults import NORM_COHORTS, PROTOCOL_PRESETS, SPEAKER_DEFAULTS

_D = SPEAKER_DEFAULTS
_NORMS = ["none", "znorm", "tnorm", "snorm", "asnorm"]


def _default_features() -> str:
    fo = _D["feature_overrides"]
    return _D["preset"] + (" with " + ", ".join(f"{k}={v}" for k, v in fo.items()) if fo else "")


def _add_features_args(p: argparse.ArgumentParser, *, from_ubm: bool) -> None:
    g = p.add_argument_group("features")
    g.add_argument("--preset", default=None, choices=["speech", "kaldi", "librosa"],
                   help="feature preset (default: "
                        + ("the configuration saved in the UBM file, else " if from_ubm else "")
                        + f"the speaker defaults: {_default_features()})")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="keep the extracted features in this feature store folder "
                        "(default: a temporary folder)")
    add_data_root_arg(g)


def _add_ubm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("UBM")
    g.add_argument("--components", "-k", type=int, default=_D["n_components"], metavar="K",
                   help=f"Gaussian components (default {_D['n_components']})")
    g.add_argument("--covariance", default=_D["covariance_type"], choices=["diag", "full"],
                   help=f"covariance type (default {_D['covariance_type']})")
    g.add_argument("--iterations", type=int, default=_D["max_iter"], metavar="N",
                   help=f"EM iterations over the corpus (default {_D['max_iter']})")
    g.add_argument("--init", default=_D["ubm_init"], choices=["split", "kmeans", "k-means++", "random_from_data"],
                   help=f"initialisation on a reservoir sample of frames (default {_D['ubm_init']})")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    # ------------------------------------------------------------------ train-ubm
    p = sub.add_parser(
        "train-ubm", help="train a universal background model (GMM) on a corpus",
        description="Train a UBM by streaming EM over SOURCE, a manifest (features are "
        "extracted first) or a feature store folder. A checkpoint is written after every EM "
        "iteration; --resume continues an interrupted run and reaches the same model.",
    )
    p.add_argument("source", nargs="+", metavar="MANIFEST_OR_STORE",
                   help="manifest CSV or feature store folder; several are pooled (e.g. background "
                        "and enrolment manifests, as speaker-id trains its UBM by default)")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output model file (.npz)")
    _add_ubm_args(p)
    g = p.add_argument_group("training")
    g.add_argument("--reservoir", type=int, default=500_000, metavar="N",
                   help="frames sampled for the initialisation (default 500000)")
    g.add_argument("--subsample", type=int, default=1, metavar="S",
                   help="use every S-th frame in each E-step (default 1)")
    g.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="Gaussian selection: only the C best components per frame get a posterior")
    g.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="checkpoint file (default: OUT.ckpt.npz, removed after success)")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    _add_features_args(p, from_ubm=False)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train_ubm)

    # ------------------------------------------------------------------ enroll
    p = sub.add_parser(
        "enroll", help="MAP-adapt one speaker model per label of a manifest",
        description="Adapt the UBM to every label of MANIFEST (rows with the same label are "
        "pooled) and write DIR/<label>.npz. Unusable files are reported and skipped (exit 1).",
    )
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--manifest", required=True, metavar="CSV", help="enrolment manifest")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder of models")
    p.add_argument("--relevance", type=float, default=_D["relevance_factor"], metavar="R",
                   help=f"MAP relevance factor (default {_D['relevance_factor']:g})")
    p.add_argument("--adapt", default=_D["adapt"], metavar="PARAMS",
                   help=f"parameters to adapt: m, mw, mwv, ... (default {_D['adapt']})")
    _add_features_args(p, from_ubm=True)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_enroll)

    # ------------------------------------------------------------------ score
    p = sub.add_parser(
        "score", help="score every test row against every speaker model",
        description="Average frame log-likelihood ratio of every row of MANIFEST against every "
        "model of --models (and the UBM). Writes a TSV: test_id, model, score, test_label.",
    )
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--models", required=True, metavar="DIR", help="folder of speaker models")
    p.add_argument("--manifest", required=True, metavar="CSV", help="test manifest")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output scores.tsv")
    p.add_argument("--mode", default=None, choices=["exact", "topc", "linear"],
                   help="scoring mode (default: topc with --top-c C > 0, else "
                        f"{_D['score_mode'] or 'exact'})")
    p.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="components per frame in top-C mode (default 5 with --mode topc; 0 for exact)")
    _add_norm_args(p, in_score=True)
    _add_features_args(p, from_ubm=True)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_score)

    # ------------------------------------------------------------------ evaluate
    p = sub.add_parser(
        "evaluate", help="identification accuracy, EER, minDCF and a DET plot from a score file",
        description="Evaluate SCORES (from 'gmmspeech score'): writes DIR/results.json "
        "(accuracy, eer, min_dcf_sre08, min_dcf_sre10, ...), DIR/det.png and DIR/scores.png.",
    )
    p.add_argument("scores", metavar="SCORES", help="scores.tsv")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--manifest", default=None, metavar="CSV",
                   help="test manifest giving the labels (when SCORES has no test_label column)")
    add_data_root_arg(p)
    p.set_defaults(func=_cmd_evaluate)

    # ------------------------------------------------------------------ speaker-id
    p = sub.add_parser(
        "speaker-id", help="the whole GMM-UBM recipe: features, UBM, enrolment, scoring, metrics",
        description="Train a UBM on the background manifest, enrol one model per label of the "
        "enrolment manifest and score every test row against every model. Writes "
        "DIR/results.json, DIR/scores.tsv, DIR/det.png, DIR/ubm.npz and DIR/models/. Files that "
        "cannot be used are reported and skipped.",
    )
    p.add_argument("--background", required=True, metavar="CSV", help="UBM training manifest")
    p.add_argument("--enroll", required=True, metavar="CSV", help="enrolment manifest")
    p.add_argument("--test", required=True, metavar="CSV", help="test manifest")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    _add_ubm_args(p)
    p.add_argument("--ubm-on-enroll", action="store_true", default=None,
                   help="train the UBM on background + enrolment data"
                        + (" (default)" if _D["ubm_on_enroll"] else ""))
    p.add_argument("--no-ubm-on-enroll", dest="ubm_on_enroll", action="store_false", default=None,
                   help="train the UBM on the background data only"
                        + ("" if _D["ubm_on_enroll"] else " (default)"))
    p.add_argument("--relevance", type=float, default=None, metavar="R",
                   help=f"MAP relevance factor (default {_D['relevance_factor']:g})")
    p.add_argument("--adapt", default=None, metavar="PARAMS",
                   help=f"adapted parameters (default {_D['adapt']})")
    p.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="top-C scoring with C components (0 for exact; default: "
                        + (f"{_D['top_c']})" if _D["top_c"] else f"{_D['score_mode'] or 'exact'} scoring)"))
    p.add_argument("--mode", default=None, choices=["exact", "topc", "linear"],
                   help="scoring mode (overrides --top-c)")
    _add_norm_args(p, in_score=False)
    g = p.add_argument_group("features")
    g.add_argument("--preset", default=None, choices=["speech", "kaldi", "librosa"],
                   help=f"feature preset, used as it is (default: {_default_features()})")
    g.add_argument("--cmvn", default=None, choices=["none", "utterance", "sliding", "warping"],
                   help="cepstral mean/variance normalisation (default: "
                        f"{_D['feature_overrides'].get('cmvn', 'the preset')})")
    g.add_argument("--vad", dest="vad", action="store_true", default=None,
                   help="energy VAD: drop low-energy frames"
                        + (" (default off)" if _D["feature_overrides"].get("vad") is False else ""))
    g.add_argument("--no-vad", dest="vad", action="store_false", default=None,
                   help="keep every frame (no energy VAD)")
    g.add_argument("--n-mfcc", type=int, default=None, metavar="N",
                   help="cepstra per frame before deltas (default "
                        f"{_D['feature_overrides'].get('n_mfcc', 'the preset')})")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="shared folder for the feature stores (default DIR/features)")
    add_data_root_arg(g)
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOL_PRESETS),
                   help="start from a named setting instead of the defaults (classic: the "
                        "textbook system, utterance CMVN + VAD, -k 256, --relevance 16, top-5, "
                        "no normalisation; librispeech: first tuned on LibriSpeech, T-norm over "
                        "the enrolled models); options given on the command line win")
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    # None = not given: the --protocol preset, else the documented default, applies
    p.set_defaults(func=_cmd_speaker_id, components=None, relevance=None, adapt=None,
                   top_c=None, norm=None, preset=None, ubm_on_enroll=None, norm_cohort=None)


def _add_norm_args(p: argparse.ArgumentParser, *, in_score: bool) -> None:
    g = p.add_argument_group("score normalisation")
    default_norm = _D["norm"] or "none"
    g.add_argument("--norm", default=None, choices=_NORMS,
                   help=f"score normalisation (default {default_norm}"
                        + ("; needs --background unless 'none', or tnorm with --norm-cohort enrolled"
                           if in_score else "") + ")")
    g.add_argument("--norm-cohort", default=None, choices=list(NORM_COHORTS),
                   help="T-norm cohort: models adapted on the background data (one per background "
                        "label; works with a single enrolled speaker), the other enrolled models "
                        f"(never the claimed one), or both (default {_D['norm_cohort']})")
    if in_score:
        g.add_argument("--background", default=None, metavar="CSV",
                       help="background manifest: cohort models (one per label, adapted like the "
                            "speaker models) and Z-norm impostor segments")
        g.add_argument("--relevance", type=float, default=_D["relevance_factor"], metavar="R",
                       help=f"MAP relevance factor of the cohort models (default {_D['relevance_factor']:g})")
        g.add_argument("--adapt", default=_D["adapt"], metavar="PARAMS",
                       help=f"adapted parameters of the cohort models (default {_D['adapt']})")


# --------------------------------------------------------------------------- helpers
def _config_for(args, ubm=None):
    """The feature configuration: --preset, else the UBM's saved one, else the speaker defaults."""
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.speaker.defaults import speaker_feature_config

    if getattr(args, "preset", None):
        return speaker_feature_config(args.preset)
    saved = getattr(ubm, "metadata_", {}).get("feature_config") if ubm is not None else None
    if isinstance(saved, dict):
        return FeatureConfig.from_dict(saved)
    return speaker_feature_config()


class _FeatureDir:
    """``--features-dir`` or a temporary folder removed on exit."""

    def __init__(self, path):
        self.path = path
        self._tmp = None

    def __enter__(self) -> str:
        if self.path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gmmspeech-features-")
            return self._tmp.name
        return os.fspath(self.path)

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()


def _report_bad(cmd: str, bad) -> None:
    for b in bad:
        print(f"gmmspeech {cmd}: skipped {b['path']} ({b['id']}): {b['reason']}", file=sys.stderr)


def _par(args) -> dict:
    return dict(n_jobs=args.jobs, backend=args.backend, scheduler=args.scheduler)


def _clean_errors(func):
    """Argument and data errors (ValueError) become a one-line message and exit code 2."""
    import functools

    @functools.wraps(func)
    def wrapper(args) -> int:
        try:
            return func(args)
        except ValueError as exc:
            print(f"gmmspeech {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return wrapper


# --------------------------------------------------------------------------- commands
@_clean_errors
def _cmd_train_ubm(args) -> int:
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.ubm import train_ubm

    progress = not args.quiet
    sources = list(args.source)
    for src in sources:
        if not os.path.exists(src):
            raise FileNotFoundError(f"{src}: no such manifest or feature store")
    ckpt = args.checkpoint or (args.out + ".ckpt.npz")
    bad: list = []
    config = None
    with _FeatureDir(args.features_dir) as fdir:
        stores = []
        for n, src in enumerate(sources):
            if os.path.isdir(src):
                store = FeatureStore(src)
                if not len(store):
                    raise FileNotFoundError(f"{src}: not a feature store (or an empty one)")
                if config is not None and store.config.config_hash() != config.config_hash():
                    raise ValueError(f"{src}: its features were made with another configuration "
                                     f"than {sources[0]}'s")
                config = store.config
            else:
                from gmmspeech.speaker.pipeline import build_features

                config = config or _config_for(args)
                sub = fdir if len(sources) == 1 else os.path.join(fdir, f"source{n}")
                store, rows, b = build_features(src, sub, config=config, data_root=args.data_root,
                                                progress=progress, role="source", **_par(args))
                _report_bad("train-ubm", b)
                bad += b
                if not rows:
                    print(f"gmmspeech train-ubm: error: {src}: no usable file", file=sys.stderr)
                    return 2
            stores.append(store)
        ubm = train_ubm(stores[0] if len(stores) == 1 else stores, args.components, args.covariance,
                        max_iter=args.iterations, init=args.init, reservoir_size=args.reservoir,
                        subsample=args.subsample, top_c=args.top_c, random_state=args.seed,
                        checkpoint=ckpt, resume=args.resume, progress=progress, **_par(args))
    meta = {"role": "ubm", "source": os.pathsep.join(os.path.abspath(s) for s in sources)}
    if config is not None:
        meta["feature_config"] = config.to_dict()
    mio.save(ubm, args.out, metadata=meta)
    if args.checkpoint is None and os.path.exists(ckpt):
        os.unlink(ckpt)
    hist = getattr(ubm, "history_", [])
    last = f", log-likelihood/frame {hist[-1]:.4f}" if hist else ""
    print(f"wrote {args.out}: {ubm.n_components} {ubm.covariance_type} components, "
          f"{len(hist)} EM iterations{last}")
    return 1 if bad else 0


@_clean_errors
def _cmd_enroll(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.map import enroll
    from gmmspeech.speaker.pipeline import build_features, save_models

    progress = not args.quiet
    ubm = mio.load(args.ubm)
    config = _config_for(args, ubm)
    with _FeatureDir(args.features_dir) as fdir:
        store, rows, bad = build_features(args.manifest, fdir, config=config,
                                          data_root=args.data_root, progress=progress,
                                          role="enroll", **_par(args))
        _report_bad("enroll", bad)
        spk: dict[str, list] = {}
        for r in rows:
            spk.setdefault(str(r.label), []).append(np.asarray(store.load(r.id)))
        if not spk:
            print(f"gmmspeech enroll: error: {args.manifest}: no usable file", file=sys.stderr)
            return 2
        models = enroll(ubm, spk, relevance_factor=args.relevance, adapt=args.adapt,
                        progress=progress, **_par(args))
    save_models(models, args.out)
    print(f"wrote {len(models)} speaker models to {args.out}"
          + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_score(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import (
        arrays_by_label,
        build_features,
        impostor_segments,
        load_models,
        norm_needs,
        normalise_scores,
        write_scores,
    )
    from gmmspeech.speaker.scoring import score

    progress = not args.quiet
    ubm = mio.load(args.ubm)
    models = load_models(args.models)
    config = _config_for(args, ubm)
    if args.mode:
        mode = args.mode
    elif args.top_c is not None:
        mode = "topc" if args.top_c else "exact"
    else:
        mode = _D["score_mode"] or ("topc" if _D["top_c"] else "exact")
    top_c = (args.top_c or _D["top_c"] or 5) if mode == "topc" else None
    norm = args.norm if args.norm is not None else (_D["norm"] or "none")
    norm_cohort = args.norm_cohort or _D["norm_cohort"]
    need_cohort, need_imp = norm_needs(norm, norm_cohort)
    if (need_cohort or need_imp) and not args.background:
        if args.norm is not None:
            raise ValueError(f"--norm {norm} needs --background CSV (cohort models / impostor "
                             "segments), or --norm-cohort enrolled with --norm tnorm")
        print(f"gmmspeech score: note: scores are not normalised (the default --norm {norm} needs "
              "--background CSV)", file=sys.stderr)
        norm, need_cohort, need_imp = "none", False, False
    kw = dict(top_c=top_c, mode=mode, **_par(args))
    with _FeatureDir(args.features_dir) as fdir:
        store, rows, bad = build_features(args.manifest, os.path.join(fdir, "test"), config=config,
                                          data_root=args.data_root, progress=progress,
                                          role="test", **_par(args))
        _report_bad("score", bad)
        if not rows:
            print(f"gmmspeech score: error: {args.manifest}: no usable file", file=sys.stderr)
            return 2
        utts = [np.asarray(store.load(r.id)) for r in rows]
        labels = list(models)
        s = score([models[m] for m in labels], ubm, utts, progress=progress, **kw)
        coh = coh_labels = imp = imp_labels = None
        if need_cohort or need_imp:
            bstore, brows, bbad = build_features(args.background, os.path.join(fdir, "background"),
                                                 config=config, data_root=args.data_root,
                                                 progress=progress, role="background", **_par(args))
            _report_bad("score", bbad)
            bad = bad + bbad
            if not brows:
                print(f"gmmspeech score: error: {args.background}: no usable file", file=sys.stderr)
                return 2
            if need_cohort:
                from gmmspeech.speaker.map import enroll

                cohort = enroll(ubm, arrays_by_label(bstore, brows), relevance_factor=args.relevance,
                                adapt=args.adapt, **_par(args))
                coh_labels = list(cohort)
                coh = score([cohort[c] for c in coh_labels], ubm, utts, **kw)
            if need_imp:
                segs, imp_labels = impostor_segments(bstore, brows)
                imp = score([models[m] for m in labels], ubm, segs, **kw)
        s = normalise_scores(s, norm, model_labels=labels, impostor_scores=imp,
                             impostor_labels=imp_labels, cohort_scores=coh, cohort_labels=coh_labels,
                             norm_cohort=norm_cohort)
    write_scores(args.out, [r.id for r in rows], [str(r.label) for r in rows], labels, s)
    print(f"wrote {args.out}: {len(rows)} tests x {len(labels)} models ({mode}"
          + ("" if norm == "none" else f", {norm}") + ")"
          + (f", {len(bad)} file(s) skipped" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_evaluate(args) -> int:
    from gmmspeech.speaker.pipeline import evaluate_score_file, summary_line

    labels = None
    if args.manifest:
        from gmmspeech.corpus.manifest import read_manifest

        labels = {r.id: str(r.label) for r in read_manifest(args.manifest, data_root=args.data_root)}
    res = evaluate_score_file(args.scores, args.out, labels=labels)
    print(summary_line(res))
    print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 0


def speaker_id_settings(args) -> dict:
    """The :func:`~gmmspeech.speaker.pipeline.run_speaker_id` settings of parsed
    ``speaker-id`` arguments: the ``--protocol`` setting (if any) or the defaults
    (:data:`~gmmspeech.speaker.defaults.SPEAKER_DEFAULTS`), overridden by every option
    given on the command line."""
    from gmmspeech.speaker.defaults import protocol_settings, speaker_defaults

    out = protocol_settings(args.protocol) if args.protocol else speaker_defaults()
    for key in ("covariance_type", "max_iter", "ubm_init"):  # given by their own arguments
        out.pop(key, None)
    fo = dict(out.get("feature_overrides") or {})
    if args.preset is not None:
        fo = {}  # a named preset is used as it is, with the feature options given
    for dest in ("cmvn", "vad", "n_mfcc"):
        if getattr(args, dest) is not None:
            fo[dest] = getattr(args, dest)
    out["feature_overrides"] = fo
    for dest, key in {"preset": "preset", "components": "n_components",
                      "ubm_on_enroll": "ubm_on_enroll", "relevance": "relevance_factor",
                      "adapt": "adapt", "norm_cohort": "norm_cohort"}.items():
        if getattr(args, dest) is not None:
            out[key] = getattr(args, dest)
    if args.top_c is not None or args.mode is not None:
        out["top_c"] = 5 if args.top_c is None else (args.top_c or None)
        out["score_mode"] = args.mode
    if args.norm is not None:
        out["norm"] = None if args.norm == "none" else args.norm
    return out


@_clean_errors
def _cmd_speaker_id(args) -> int:
    from gmmspeech.speaker.pipeline import run_speaker_id

    settings = speaker_id_settings(args)
    res = run_speaker_id(
        args.background, args.enroll, args.test, args.out,
        data_root=args.data_root, features_dir=args.features_dir,
        covariance_type=args.covariance, max_iter=args.iterations, ubm_init=args.init,
        random_state=args.seed, progress=not args.quiet, **settings, **_par(args),
    )
    print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 1 if res.get("bad_files") else 0
