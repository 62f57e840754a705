"""Sub-commands ``train-ubm``, ``enroll``, ``score``, ``evaluate`` and ``speaker-id``.

Parsing and printing only: the work is done by :mod:`gmmspeech.speaker` (imported
inside the command functions so that ``gmmspeech --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys

from gmmspeech.cli.common import (
    PRESET_NAMES,
    add_data_root_arg,
    add_feature_options,
    add_frontend_options,
    add_ivector_system_args,
    add_max_duration_arg,
    add_parallel_args,
    add_preset_arg,
    check_adapt,
    check_common,
    check_input,
    check_number,
    check_output,
    feature_overrides,
    ivector_options_from_args,
    parse_auto_int,
    parse_tv_seeds,
    resume_command,
)
from gmmspeech.speaker.defaults import (
    NORM_COHORTS,
    PROTOCOL_PRESETS,
    SPEAKER_DEFAULTS,
    resolve_score_mode,
)

_D = SPEAKER_DEFAULTS
_NORMS = ["none", "znorm", "tnorm", "snorm", "asnorm"]


def _default_features() -> str:
    fo = _D["feature_overrides"]
    return _D["preset"] + (" with " + ", ".join(f"{k}={v}" for k, v in fo.items()) if fo else "")


_REUSE_TEXT = ("Features are extracted once: those already in the feature stores the UBM and "
               "models were trained from (recorded in their files) are read from there, the rest "
               "go to --features-dir (or a temporary folder).")


def _add_features_args(p: argparse.ArgumentParser, *, from_ubm: bool) -> None:
    g = p.add_argument_group("features")
    if from_ubm:
        g.add_argument("--preset", default=None, choices=PRESET_NAMES,
                       help="feature preset (" + ", ".join(PRESET_NAMES) + "; default: the "
                            "configuration saved in the UBM file, else the speaker defaults: "
                            f"{_default_features()})")
        add_frontend_options(g)
    else:  # train-ubm: the options of `features` (not with a feature store as SOURCE)
        add_feature_options(g, speaker=_D)
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature stores folder: features are reused from and added to "
                        "DIR/<config hash> (or DIR itself when it is a store of the same "
                        "configuration); default: a temporary folder"
                        + ("" if from_ubm else "; the UBM file records it, so enroll, score and "
                           "classify read these features instead of extracting them again"))
    add_max_duration_arg(g)
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


def _add_resume_args(g, what: str) -> None:
    m = g.add_mutually_exclusive_group()
    m.add_argument("--resume", action="store_true",
                   help=f"continue from {what} of an interrupted run (starts fresh if there is none)")
    m.add_argument("--restart", action="store_true",
                   help=f"discard {what} of an interrupted run and start over")


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
                   help="checkpoint file (default: OUT.ckpt.npz, removed after success; a file "
                        "named here is kept, so --resume with more --iterations trains on)")
    _add_resume_args(g, "the checkpoint")
    _add_features_args(p, from_ubm=False)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train_ubm)

    # ------------------------------------------------------------------ enroll
    p = sub.add_parser(
        "enroll", help="MAP-adapt one speaker model per label of a manifest",
        description="Adapt the UBM to every label of MANIFEST (rows with the same label are "
        "pooled) and write DIR/<label>.npz. Unusable files are reported and skipped (exit 1). "
        + _REUSE_TEXT,
    )
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--manifest", required=True, metavar="CSV_OR_STORE",
                   help="enrolment manifest, or a feature store (every utterance, by its label)")
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
        "model of --models (and the UBM). Writes a TSV: test_id, model, score, test_label. "
        "Score normalisation (--norm): Z-norm standardises each model's scores by its scores "
        "on impostor segments cut from the --background files; T-norm standardises each test's "
        "score by the scores of the same test against a cohort of models: with --norm-cohort "
        "background, one model MAP-adapted (like the speaker models) per label of --background; "
        "with enrolled, the other models of --models (never the claimed one; needs no "
        "--background); with both, the two together; S-norm averages Z- and T-norm, adaptive "
        "S-norm (asnorm) uses the top-scoring cohort models only. " + _REUSE_TEXT,
    )
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--models", required=True, metavar="DIR", help="folder of speaker models")
    p.add_argument("--manifest", required=True, metavar="CSV_OR_STORE",
                   help="test manifest, or a feature store")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output scores.tsv")
    p.add_argument("--mode", default=None, choices=["exact", "topc", "linear"],
                   help="scoring mode (default: topc with --top-c C > 0, else "
                        f"{_D['score_mode'] or 'exact'})")
    p.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="components per frame in top-C mode (default 5 with --mode topc; 0 for exact)")
    p.add_argument("--force", action="store_true",
                   help="score models adapted from another UBM (a warning instead of an error)")
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
    add_preset_arg(g, default=None,
                   help="feature preset (" + ", ".join(PRESET_NAMES) + "), used as it is "
                        f"(default: {_default_features()})")
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
    g.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="analysis rate in Hz; audio at another rate is resampled to it (default: "
                        "the preset's, 16000 for speech; 8000 suits 8 kHz corpora such as FSDD)")
    add_max_duration_arg(g)
    g.add_argument("--features-dir", default=None, metavar="FDIR",
                   help="shared folder for the feature stores: features are reused from and added to "
                        "FDIR/<config hash>, or FDIR itself when it is a store of the same "
                        "configuration (a store of another one is an error); default DIR/features")
    add_data_root_arg(g)
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOL_PRESETS),
                   help="start from a named setting instead of the defaults (classic: the "
                        "textbook system, utterance CMVN + VAD, -k 256, --relevance 16, top-5, "
                        "no normalisation; librispeech: first tuned on LibriSpeech, T-norm over "
                        "the enrolled models); options given on the command line win")
    _add_resume_args(p.add_argument_group("interrupted runs"), "the UBM checkpoint (DIR/ubm.ckpt.npz)")
    add_ivector_system_args(p)
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
        g.add_argument("--background", default=None, metavar="CSV_OR_STORE",
                       help="background manifest (or feature store): cohort models (one per label, adapted like the "
                            "speaker models) and Z-norm impostor segments")
        g.add_argument("--relevance", type=float, default=None, metavar="R",
                       help="MAP relevance factor of the cohort models (default: the speaker models' own, "
                            f"recorded in their files, else {_D['relevance_factor']:g})")
        g.add_argument("--adapt", default=None, metavar="PARAMS",
                       help="adapted parameters of the cohort models (default: the speaker models' own, "
                            f"recorded in their files, else {_D['adapt']})")


# --------------------------------------------------------------------------- helpers
def check_ids_across_sources(src, rows, seen: dict) -> None:
    """An id must name one file (and segment) across pooled sources: ``seen`` (id -> (path,
    start, end)) collects them, source after source; a ValueError names ``src`` and the id."""
    for r in rows:
        key = (os.fspath(r.path), r.start, r.end)
        if seen.setdefault(r.id, key) != key:
            raise ValueError(f"{src}: id {r.id!r} names another file or segment than in an earlier "
                             "source; ids must be unique across the sources")


def _config_for(args, ubm=None):
    """The feature configuration: --preset, else the UBM's saved one, else the speaker defaults.

    The front-end options (``--sdc``, ``--pitch``, ``--rasta``, ``--vad-method``) apply on
    top. With a UBM, the features must have its dimensions (checked before any audio is
    read)."""
    from gmmspeech.cli.common import given_feature_flags
    from gmmspeech.speaker.defaults import speaker_feature_config
    from gmmspeech.speaker.pipeline import (
        check_config_against_ubm,
        describe_model,
        feature_config_hash,
        saved_feature_config,
    )

    changes = feature_overrides(args)
    saved = saved_feature_config(ubm) if ubm is not None else None
    if getattr(args, "preset", None):
        config = speaker_feature_config(args.preset, changes)
    elif saved is not None:
        if not changes:
            return saved
        config = saved.replace(**changes)
    else:
        config = speaker_feature_config(None, changes)
    if ubm is not None:
        flags = given_feature_flags(args)
        if getattr(args, "preset", None):
            option = f"--preset {args.preset}"
        elif saved is not None:
            option = "the configuration saved in the model file with " + ", ".join(flags or ["these options"])
        else:
            option = "the default preset"
        check_config_against_ubm(config, ubm, option=option)
        want = feature_config_hash(ubm)
        if want is not None and config.config_hash() != want:  # same dimensions, other features
            print(f"gmmspeech {getattr(args, 'command', '')}: warning: {option} gives features of "
                  f"configuration {config.config_hash()}, but {describe_model(ubm, 'the model')} was "
                  "trained on features of another configuration (same dimensions): the results are "
                  "likely worse; drop the feature options to use the saved configuration", file=sys.stderr)
    return config


class _FeatureDir:
    """``--features-dir`` or a temporary folder removed on exit (and, if this run is
    killed, by the next run: see :func:`gmmspeech.corpus.store.temporary_store_dir`)."""

    def __init__(self, path):
        self.path = path
        self._tmp = None

    def __enter__(self) -> str:
        if self.path is None:
            from gmmspeech.corpus.store import temporary_store_dir

            self._tmp = temporary_store_dir()
            return self._tmp.__enter__()
        return os.fspath(self.path)

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.__exit__(*exc)


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


# --------------------------------------------------------------------------- validation
def _usage(message: str):
    from gmmspeech.errors import UsageError

    return UsageError(message)


def _check_ubm_args(args) -> None:
    check_number(args.components, "-k/--components", lo=1)
    check_number(args.iterations, "--iterations", lo=0)
    check_number(args.seed, "--seed", lo=0)


def _check_map_args(args) -> None:
    check_number(args.relevance, "--relevance", lo=0, strict=True)
    check_adapt(args.adapt)


def _check_scoring_args(args) -> None:
    check_number(args.top_c, "--top-c", lo=0)
    if args.mode == "topc" and args.top_c == 0:
        raise _usage("--mode topc needs --top-c >= 1, got 0")


def _validate_train_ubm(args) -> None:
    for src in args.source:
        check_input(src, "MANIFEST_OR_STORE", kind="any")
    check_output(args.out, "-o/--out")
    check_output(args.checkpoint, "--checkpoint")
    _check_ubm_args(args)
    check_number(args.reservoir, "--reservoir", lo=1)
    if args.reservoir < args.components:
        raise _usage(f"--reservoir must be >= -k/--components ({args.components}): the "
                     f"initialisation needs at least one frame per component, got {args.reservoir}")
    check_number(args.subsample, "--subsample", lo=1)
    check_number(args.top_c, "--top-c", lo=1, hi=args.components)
    check_common(args)


def _validate_enroll(args) -> None:
    check_input(args.ubm, "--ubm")
    check_input(args.manifest, "--manifest", kind="any")
    check_output(args.out, "-o/--out", kind="dir")
    _check_map_args(args)
    check_common(args)


def _validate_score(args) -> None:
    check_input(args.ubm, "--ubm")
    check_input(args.models, "--models", kind="dir")
    check_input(args.manifest, "--manifest", kind="any")
    check_input(args.background, "--background", kind="any")
    check_output(args.out, "-o/--out")
    _check_scoring_args(args)
    if args.relevance is not None:
        check_number(args.relevance, "--relevance", lo=0, strict=True)
    if args.adapt is not None:
        check_adapt(args.adapt)
    check_common(args)


def _validate_speaker_id(args) -> None:
    for flag, path in (("--background", args.background), ("--enroll", args.enroll),
                       ("--test", args.test)):
        check_input(path, flag)
    check_output(args.out, "-o/--out", kind="dir")
    _check_ubm_args(args)
    _check_map_args(args)
    _check_scoring_args(args)
    check_number(args.n_mfcc, "--n-mfcc", lo=1)
    if getattr(args, "ivector_tv_seeds", None) is not None:
        parse_tv_seeds(args.ivector_tv_seeds)
    if getattr(args, "ivector_rank", None) is not None:
        parse_auto_int(args.ivector_rank, "--ivector-rank")
    check_common(args)


def _checkpoint_policy(args, ckpt: str, cmd: str) -> bool:
    """An existing checkpoint needs --resume or --restart; returns whether to resume."""
    from gmmspeech.speaker.ubm import checkpoint_iteration

    exists = os.path.exists(ckpt)
    if exists and not (args.resume or args.restart):
        it = checkpoint_iteration(ckpt)
        state = "unreadable" if it is None else f"after EM iteration {it}"
        raise _usage(f"{ckpt}: a checkpoint of an earlier run exists ({state}; interrupted, or "
                     "finished with a named --checkpoint, which is kept); re-run "
                     "with --resume to continue from it, or with --restart to discard it and "
                     "start over")
    if args.resume and not exists:
        print(f"gmmspeech {cmd}: --resume: no checkpoint at {ckpt}; starting fresh",
              file=sys.stderr)
    return bool(args.resume and exists)


def _report_interrupt(args, ckpt: str, cmd: str, iterations: int, extra: str = "") -> None:
    from gmmspeech.speaker.ubm import checkpoint_iteration

    it = checkpoint_iteration(ckpt) if os.path.exists(ckpt) else None
    if it is None:
        print(f"gmmspeech {cmd}: interrupted before the first UBM checkpoint was written; "
              f"nothing to resume{extra}", file=sys.stderr)
        return
    print(f"gmmspeech {cmd}: interrupted; UBM checkpoint after EM iteration {it} of "
          f"{iterations}: {ckpt}\nresume with: {resume_command()}", file=sys.stderr)


def _checkpoint_trouble(exc, ckpt: str) -> bool:
    """A checkpoint that cannot be resumed: say how to discard it."""
    if getattr(exc, "path", None) == ckpt:
        print(f"gmmspeech: error: {exc} (re-run with --restart to discard the checkpoint)",
              file=sys.stderr)
        return True
    return False


# --------------------------------------------------------------------------- commands
@_clean_errors
def _cmd_train_ubm(args) -> int:
    from gmmspeech.cli.common import check_max_duration, given_feature_flags
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.ubm import UBMCheckpointError

    _validate_train_ubm(args)
    progress = not args.quiet
    sources = list(args.source)
    check_max_duration(args)
    flags = given_feature_flags(args)
    for src in sources:
        if os.path.isdir(src) and flags:
            store = FeatureStore(src)
            what = (f"its features were extracted with configuration {store.config_hash}"
                    if store.exists() else "it is a folder, not a manifest")
            raise ValueError(f"{', '.join(flags)} cannot apply: {src} is a feature store ({what}); "
                             "give a manifest to extract features with other settings, or drop "
                             f"{'the option' if len(flags) == 1 else 'these options'}")
    ckpt = args.checkpoint or (args.out + ".ckpt.npz")
    resume = _checkpoint_policy(args, ckpt, "train-ubm")
    try:
        ubm, config, bad, kept = _train_ubm_stage(args, sources, ckpt, resume, progress)
    except KeyboardInterrupt:
        _report_interrupt(args, ckpt, "train-ubm", args.iterations,
                          "" if all(os.path.isdir(s) for s in sources) or args.features_dir else
                          " (the features go to a temporary folder: keep them for the next "
                          "run with --features-dir DIR)")
        raise
    except (UBMCheckpointError, ModelFileError) as exc:
        if _checkpoint_trouble(exc, ckpt):
            return 2
        raise
    if ubm is None:
        return 2
    meta = {"role": "ubm", "source": os.pathsep.join(os.path.abspath(s) for s in sources)}
    if config is not None:
        meta["feature_config"] = config.to_dict()
        meta["feature_config_hash"] = config.config_hash()
    if kept:  # enroll, score and classify read the features of these stores again
        meta["feature_stores"] = kept
    mio.save(ubm, args.out, metadata=meta)
    if args.checkpoint is None and os.path.exists(ckpt):
        os.unlink(ckpt)
    hist = getattr(ubm, "history_", [])
    last = f", log-likelihood/frame {hist[-1]:.4f}" if hist else ""
    print(f"wrote {args.out}: {ubm.n_components} {ubm.covariance_type} components, "
          f"{len(hist)} EM iterations{last}")
    return 1 if bad else 0


def _speaker_config_from_args(args):
    """train-ubm's features: the speaker defaults, or --preset as it is, with the feature
    options on top (ValueError naming the flags when a value is out of range)."""
    from gmmspeech.cli.common import FEATURE_FLAGS, feature_overrides_from_args
    from gmmspeech.speaker.defaults import speaker_feature_config

    changes = feature_overrides_from_args(args)
    try:
        return speaker_feature_config(getattr(args, "preset", None), changes)
    except ValueError as exc:
        flags = ", ".join(f for d, f in FEATURE_FLAGS.items() if getattr(args, d, None) is not None)
        raise ValueError(f"{flags or 'feature options'}: {exc}") from None


def _train_ubm_stage(args, sources, ckpt, resume, progress):
    """Features (for manifests) and EM; ``(None, None, None)`` when a manifest has no usable
    file."""
    from gmmspeech.cli.common import check_max_duration
    from gmmspeech.corpus.store import FeatureStore, upsampling_note
    from gmmspeech.speaker.ubm import train_ubm

    max_duration = check_max_duration(args)
    bad: list = []
    config = None
    kept: list[str] = []  # stores that outlive this run (recorded in the UBM file)
    with _FeatureDir(args.features_dir) as fdir:
        stores = []
        seen: dict[str, tuple] = {}

        def new_rows(src, rows):
            """``rows`` less those already in an earlier source (same id and file: each file
            trains the UBM once, as speaker-id's background + enrolment data); an id naming
            another file than before is an error."""
            earlier = set(seen)
            check_ids_across_sources(src, rows, seen)  # several sources share one store
            out = [r for r in rows if r.id not in earlier]
            if len(out) < len(rows):
                print(f"gmmspeech train-ubm: {src}: {len(rows) - len(out)} of {len(rows)} rows are "
                      "in an earlier source; each file trains the UBM once", file=sys.stderr)
            return out

        for src in sources:
            if os.path.isdir(src):
                from gmmspeech.speaker.pipeline import store_rows

                store = FeatureStore(src)
                if not len(store):
                    raise FileNotFoundError(f"{src}: not a feature store (or an empty one)")
                if config is not None and store.config.config_hash() != config.config_hash():
                    raise ValueError(f"{src}: its features were made with another configuration "
                                     f"than {sources[0]}'s")
                config = store.config
                all_rows = store_rows(store)
                fresh = new_rows(src, all_rows)
                if not fresh:
                    continue
                stores.append(store if len(fresh) == len(all_rows) else store.subset([r.id for r in fresh]))
                kept.append(store.root)
                continue
            from gmmspeech.corpus.manifest import read_manifest
            from gmmspeech.speaker.pipeline import features_line, open_features

            config = config or _speaker_config_from_args(args)
            rows = new_rows(src, read_manifest(src, data_root=args.data_root))
            if not rows:
                continue
            feats, rows, b = open_features(rows, config=config, features_dir=fdir,
                                           progress=progress, role="source",
                                           max_duration=max_duration, **_par(args))
            rep = feats.last_report
            if rep is not None:
                note = upsampling_note(rep.upsampled, rep.n_done, config.sample_rate)
                if note:
                    print(f"gmmspeech train-ubm: {note}", file=sys.stderr)
            if progress:
                print(f"gmmspeech train-ubm: {src}: {features_line(feats, len(rows) + len(b))}",
                      file=sys.stderr)
            _report_bad("train-ubm", b)
            bad += b
            if not rows:
                _no_usable_file("train-ubm", src, args.data_root)
                return None, None, None, []
            stores += feats.stores([r.id for r in rows])
            if args.features_dir is not None:
                kept += feats.roots
        ubm = train_ubm(stores[0] if len(stores) == 1 else stores, args.components, args.covariance,
                        max_iter=args.iterations, init=args.init, reservoir_size=args.reservoir,
                        subsample=args.subsample, top_c=args.top_c, random_state=args.seed,
                        checkpoint=ckpt, resume=resume, restart=args.restart, progress=progress,
                        **_par(args))
    return ubm, config, bad, list(dict.fromkeys(kept))


def _open_features(args, source, config, fdir, *, reuse, role, progress):
    """``open_features`` for a CLI command: features of ``source`` (manifest or store) read
    from the stores in ``reuse`` where they exist, the rest extracted into ``--features-dir``
    (or a temporary store ``fdir``); a line saying what was reused and extracted."""
    from gmmspeech.speaker.pipeline import features_line, open_features

    feats, rows, bad = open_features(source, config=config, features_dir=fdir, reuse=reuse,
                                     data_root=args.data_root, progress=progress, role=role,
                                     max_duration=args.max_duration, **_par(args))
    if progress:
        print(f"gmmspeech {args.command}: {source}: {features_line(feats, len(rows) + len(bad))}",
              file=sys.stderr)
    _report_bad(args.command, bad)
    return feats, rows, bad


def _kept_stores(args, feats, fdir) -> list[str]:
    """The stores of ``feats`` that outlive this run (not the temporary folder ``fdir``)."""
    if args.features_dir is not None:
        return feats.roots
    tmp = os.path.abspath(fdir) + os.sep
    return [r for r in feats.roots if not (os.path.abspath(r) + os.sep).startswith(tmp)]


def _no_usable_file(cmd: str, src, data_root) -> None:
    """The error of a manifest (or store) none of whose files could be used, with where its
    paths were looked for when not one of them exists."""
    from gmmspeech.corpus.manifest import missing_files_hint, read_manifest

    print(f"gmmspeech {cmd}: error: {src}: no usable file", file=sys.stderr)
    if os.path.isfile(src):  # a manifest (a feature store is a folder)
        hint = missing_files_hint(src, read_manifest(src, data_root=data_root), data_root=data_root)
        if hint:
            print(f"gmmspeech {cmd}: {hint}", file=sys.stderr)


@_clean_errors
def _cmd_enroll(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.map import enroll
    from gmmspeech.speaker.pipeline import map_settings, recorded_stores, save_models

    _validate_enroll(args)
    progress = not args.quiet
    ubm = mio.load(args.ubm)
    config = _config_for(args, ubm)
    with _FeatureDir(args.features_dir) as fdir:
        feats, rows, bad = _open_features(args, args.manifest, config, fdir,
                                          reuse=recorded_stores(ubm), role="enroll",
                                          progress=progress)
        spk: dict[str, list] = {}
        for r in rows:
            spk.setdefault(str(r.label), []).append(np.asarray(feats.load(r.id)))
        if not spk:
            _no_usable_file("enroll", args.manifest, args.data_root)
            return 2
        models = enroll(ubm, spk, relevance_factor=args.relevance, adapt=args.adapt,
                        progress=progress, **_par(args))
        kept = _kept_stores(args, feats, fdir)
    meta = {"feature_config": config.to_dict(), "feature_config_hash": config.config_hash(),
            **map_settings(args.relevance, args.adapt)}  # score's cohort models adapt the same way
    if kept:
        meta["feature_stores"] = kept
    save_models(models, args.out, metadata=meta)
    print(f"wrote {len(models)} speaker models to {args.out}"
          + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_score(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import (
        arrays_by_label,
        check_models_against_ubm,
        impostor_segments,
        load_models,
        norm_needs,
        normalise_scores,
        recorded_map_settings,
        recorded_stores,
        write_scores,
    )
    from gmmspeech.speaker.scoring import score

    _validate_score(args)
    progress = not args.quiet
    ubm = mio.load(args.ubm)
    models = load_models(args.models)
    # the cohort models adapt as the speaker models did (recorded in their files by enroll and
    # speaker-id), unless told otherwise
    recorded, differ = recorded_map_settings(models.values())
    for key, flag in (("relevance_factor", "--relevance"), ("adapt", "--adapt")):
        if key in differ and getattr(args, flag[2:]) is None:
            print(f"gmmspeech score: warning: the speaker models record different {key} values; the "
                  f"cohort models use {flag} {_D[key]} (give {flag} to choose)", file=sys.stderr)
    if args.relevance is None:  # a number, or per-parameter factors recorded by the Python API
        rel = recorded.get("relevance_factor", _D["relevance_factor"])
        args.relevance = dict(rel) if isinstance(rel, dict) else float(rel)
    if args.adapt is None:
        args.adapt = str(recorded.get("adapt", _D["adapt"]))
    config = _config_for(args, ubm)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_models_against_ubm(models, ubm, force=args.force)
    for w in caught:
        print(f"gmmspeech score: warning: {w.message}", file=sys.stderr)
    if args.mode:
        mode = args.mode
    elif args.top_c is not None:
        mode = "topc" if args.top_c else "exact"
    else:
        mode, _ = resolve_score_mode(_D["score_mode"], _D["top_c"], ubm.covariance_type)
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
    reuse = recorded_stores(ubm, *models.values())
    with _FeatureDir(args.features_dir) as fdir:
        feats, rows, bad = _open_features(args, args.manifest, config, fdir, reuse=reuse,
                                          role="test", progress=progress)
        if not rows:
            _no_usable_file("score", args.manifest, args.data_root)
            return 2
        utts = [np.asarray(feats.load(r.id)) for r in rows]
        labels = list(models)
        # models checked against the UBM above, before any work
        s = score([models[m] for m in labels], ubm, utts, progress=progress, check_models=False,
                  **kw)
        coh = coh_labels = imp = imp_labels = None
        if need_cohort or need_imp:
            bfeats, brows, bbad = _open_features(args, args.background, config, fdir, reuse=reuse,
                                                 role="background", progress=progress)
            bad = bad + bbad
            if not brows:
                _no_usable_file("score", args.background, args.data_root)
                return 2
            if need_cohort:
                from gmmspeech.speaker.map import enroll

                cohort = enroll(ubm, arrays_by_label(bfeats, brows), relevance_factor=args.relevance,
                                adapt=args.adapt, **_par(args))
                coh_labels = list(cohort)
                coh = score([cohort[c] for c in coh_labels], ubm, utts, **kw)
            if need_imp:
                segs, imp_labels = impostor_segments(bfeats, brows)
                imp = score([models[m] for m in labels], ubm, segs, check_models=False, **kw)
        s = normalise_scores(s, norm, model_labels=labels, impostor_scores=imp,
                             impostor_labels=imp_labels, cohort_scores=coh, cohort_labels=coh_labels,
                             norm_cohort=norm_cohort)
    try:
        write_scores(args.out, [r.id for r in rows], [str(r.label) for r in rows], labels, s)
    except OSError as exc:
        print(f"gmmspeech score: error: cannot write {args.out}: {exc.strerror or exc}; nothing "
              "was written (no partial or temporary file is left)", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(rows)} tests x {len(labels)} models ({mode}"
          + ("" if norm == "none" else f", {norm}") + ")"
          + (f", {len(bad)} file(s) skipped" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_evaluate(args) -> int:
    from gmmspeech.speaker.pipeline import evaluate_score_file, summary_line

    check_input(args.scores, "SCORES")
    check_input(args.manifest, "--manifest")
    check_input(args.data_root, "--data-root", kind="dir")
    check_output(args.out, "-o/--out", kind="dir")
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
    for dest in ("cmvn", "vad", "n_mfcc", "sample_rate"):
        if getattr(args, dest, None) is not None:
            fo[dest] = getattr(args, dest)
    fo.update(feature_overrides(args))
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
    from gmmspeech.errors import ModelFileError
    from gmmspeech.speaker.defaults import speaker_feature_config
    from gmmspeech.speaker.pipeline import run_speaker_id
    from gmmspeech.speaker.ubm import UBMCheckpointError

    _validate_speaker_id(args)
    settings = speaker_id_settings(args)
    from gmmspeech.cli.common import check_max_duration

    max_duration = check_max_duration(args)
    try:
        speaker_feature_config(settings.get("preset"), settings.get("feature_overrides"))
    except ValueError as exc:
        raise _usage(f"feature options (--preset/--sample-rate/--cmvn/--no-vad/--n-mfcc): "
                     f"{exc}") from None
    ckpt = os.path.join(args.out, "ubm.ckpt.npz")
    resume = _checkpoint_policy(args, ckpt, "speaker-id")
    try:
        res = run_speaker_id(
            args.background, args.enroll, args.test, args.out,
            data_root=args.data_root, features_dir=args.features_dir, max_duration=max_duration,
            covariance_type=args.covariance, max_iter=args.iterations, ubm_init=args.init,
            random_state=args.seed, progress=not args.quiet, ubm_checkpoint=ckpt,
            resume=resume, restart=args.restart, system=args.system,
            ivector_options=ivector_options_from_args(args),
            ivector_background=getattr(args, "ivector_background", None), **settings, **_par(args),
        )
    except KeyboardInterrupt:
        _report_interrupt(args, ckpt, "speaker-id", args.iterations,
                          "; features finished so far are kept and skipped when the command "
                          "is run again")
        raise
    except (UBMCheckpointError, ModelFileError) as exc:
        if _checkpoint_trouble(exc, ckpt):
            return 2
        raise
    print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 1 if res.get("bad_files") else 0
