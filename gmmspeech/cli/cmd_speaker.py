"""Sub-commands ``train-ubm``, ``enroll``, ``score``, ``evaluate`` and ``speaker-id``.

Parsing and printing only: the work is done by :mod:`gmmspeech.speaker` (imported
inside the command functions so that ``gmmspeech --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys

from gmmspeech.cli.common import (
    add_data_root_arg,
    add_feature_options,
    add_max_duration_arg,
    add_parallel_args,
    check_adapt,
    check_common,
    check_input,
    check_number,
    check_output,
    resume_command,
)


def _add_features_args(p: argparse.ArgumentParser, *, from_ubm: bool) -> None:
    g = p.add_argument_group("features")
    if from_ubm:
        g.add_argument("--preset", default=None, choices=["speech", "kaldi", "librosa"],
                       help="feature preset (default: the configuration saved in the UBM file, "
                            "else speech)")
    else:  # train-ubm: the options of `features` (not with a feature store as SOURCE)
        add_feature_options(g)
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="keep the extracted features in this feature store folder "
                        "(default: a temporary folder)")
    add_max_duration_arg(g)
    add_data_root_arg(g)


def _add_ubm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("UBM")
    g.add_argument("--components", "-k", type=int, default=256, metavar="K",
                   help="Gaussian components (default 256)")
    g.add_argument("--covariance", default="diag", choices=["diag", "full"],
                   help="covariance type (default diag)")
    g.add_argument("--iterations", type=int, default=10, metavar="N",
                   help="EM iterations over the corpus (default 10)")
    g.add_argument("--init", default="split", choices=["split", "kmeans", "k-means++", "random_from_data"],
                   help="initialisation on a reservoir sample of frames (default split)")
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
    p.add_argument("source", metavar="MANIFEST_OR_STORE", help="manifest CSV or feature store folder")
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
    _add_resume_args(g, "the checkpoint")
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
    p.add_argument("--relevance", type=float, default=16.0, metavar="R",
                   help="MAP relevance factor (default 16)")
    p.add_argument("--adapt", default="m", metavar="PARAMS",
                   help="parameters to adapt: m, mw, mwv, ... (default m)")
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
                   help="scoring mode (default: topc with --top-c, else exact)")
    p.add_argument("--top-c", type=int, default=5, metavar="C",
                   help="components per frame in top-C mode (default 5; 0 for exact)")
    p.add_argument("--force", action="store_true",
                   help="score models adapted from another UBM (a warning instead of an error)")
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
                   help="train the UBM on background + enrolment data")
    p.add_argument("--relevance", type=float, default=16.0, metavar="R",
                   help="MAP relevance factor (default 16)")
    p.add_argument("--adapt", default="m", metavar="PARAMS", help="adapted parameters (default m)")
    p.add_argument("--top-c", type=int, default=5, metavar="C",
                   help="top-C scoring with C components (default 5; 0 for exact)")
    p.add_argument("--mode", default=None, choices=["exact", "topc", "linear"],
                   help="scoring mode (overrides --top-c)")
    p.add_argument("--norm", default="none", choices=["none", "znorm", "tnorm", "snorm", "asnorm"],
                   help="score normalisation (default none)")
    g = p.add_argument_group("features")
    g.add_argument("--preset", default="speech", choices=["speech", "kaldi", "librosa"],
                   help="feature preset (default speech)")
    g.add_argument("--cmvn", default=None, choices=["none", "utterance", "sliding", "warping"],
                   help="override the preset's cepstral mean/variance normalisation "
                        "('none' is best when enrolment and test share recordings)")
    g.add_argument("--no-vad", dest="vad", action="store_false", default=None,
                   help="keep every frame (no energy VAD)")
    g.add_argument("--n-mfcc", type=int, default=None, metavar="N",
                   help="cepstra per frame before deltas (default: the preset's, 20)")
    g.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="analysis rate in Hz; audio at another rate is resampled to it (default: "
                        "the preset's, 16000 for speech; 8000 suits 8 kHz corpora such as FSDD)")
    add_max_duration_arg(g)
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="shared folder for the feature stores (default DIR/features)")
    add_data_root_arg(g)
    p.add_argument("--protocol", default=None, choices=["librispeech"],
                   help="start from the tuned settings of a protocol of data_manifests/ "
                        "(librispeech: --cmvn none --no-vad --n-mfcc 24 -k 128 --relevance 4 "
                        "--ubm-on-enroll --mode exact --norm tnorm); options given on the "
                        "command line win")
    _add_resume_args(p.add_argument_group("interrupted runs"), "the UBM checkpoint (DIR/ubm.ckpt.npz)")
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    # None = not given: the --protocol preset, else the documented default, applies
    p.set_defaults(func=_cmd_speaker_id, components=None, relevance=None, adapt=None,
                   top_c=None, norm=None, preset=None, ubm_on_enroll=None)


# --------------------------------------------------------------------------- helpers
def _config_for(args, ubm=None):
    """The feature configuration: --preset, else the UBM's saved one, else 'speech'.

    With a UBM, the features must have its dimensions (checked before any audio is read)."""
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.speaker.pipeline import check_config_against_ubm, saved_feature_config

    saved = saved_feature_config(ubm) if ubm is not None else None
    if getattr(args, "preset", None):
        config = FeatureConfig.preset(args.preset)
    elif saved is not None:
        return saved
    else:
        config = FeatureConfig.preset("speech")
    if ubm is not None:
        option = f"--preset {args.preset}" if getattr(args, "preset", None) else "the default preset"
        check_config_against_ubm(config, ubm, option=option)
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
    check_input(args.source, "MANIFEST_OR_STORE", kind="any")
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
    check_input(args.manifest, "--manifest")
    check_output(args.out, "-o/--out", kind="dir")
    _check_map_args(args)
    check_common(args)


def _validate_score(args) -> None:
    check_input(args.ubm, "--ubm")
    check_input(args.models, "--models", kind="dir")
    check_input(args.manifest, "--manifest")
    check_output(args.out, "-o/--out")
    _check_scoring_args(args)
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
    check_common(args)


def _checkpoint_policy(args, ckpt: str, cmd: str) -> bool:
    """An existing checkpoint needs --resume or --restart; returns whether to resume."""
    from gmmspeech.speaker.ubm import checkpoint_iteration

    exists = os.path.exists(ckpt)
    if exists and not (args.resume or args.restart):
        it = checkpoint_iteration(ckpt)
        state = "unreadable" if it is None else f"after EM iteration {it}"
        raise _usage(f"{ckpt}: a checkpoint of an interrupted run exists ({state}); re-run "
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
    src = args.source
    check_max_duration(args)
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such manifest or feature store")
    flags = given_feature_flags(args)
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
        ubm, config, bad = _train_ubm_stage(args, src, ckpt, resume, progress)
    except KeyboardInterrupt:
        _report_interrupt(args, ckpt, "train-ubm", args.iterations,
                          "" if os.path.isdir(src) or args.features_dir else
                          " (the features go to a temporary folder: keep them for the next "
                          "run with --features-dir DIR)")
        raise
    except (UBMCheckpointError, ModelFileError) as exc:
        if _checkpoint_trouble(exc, ckpt):
            return 2
        raise
    if ubm is None:
        return 2
    meta = {"role": "ubm", "source": os.path.abspath(src)}
    if config is not None:
        meta["feature_config"] = config.to_dict()
        meta["feature_config_hash"] = config.config_hash()
    mio.save(ubm, args.out, metadata=meta)
    if args.checkpoint is None and os.path.exists(ckpt):
        os.unlink(ckpt)
    hist = getattr(ubm, "history_", [])
    last = f", log-likelihood/frame {hist[-1]:.4f}" if hist else ""
    print(f"wrote {args.out}: {ubm.n_components} {ubm.covariance_type} components, "
          f"{len(hist)} EM iterations{last}")
    return 1 if bad else 0


def _train_ubm_stage(args, src, ckpt, resume, progress):
    """Features (for a manifest) and EM; ``(None, None, None)`` when no file is usable."""
    from gmmspeech.cli.common import check_max_duration, feature_config_from_args
    from gmmspeech.corpus.store import FeatureStore, upsampling_note
    from gmmspeech.speaker.ubm import train_ubm

    max_duration = check_max_duration(args)
    with _FeatureDir(args.features_dir) as fdir:
        if os.path.isdir(src):
            store = FeatureStore(src)
            if not len(store):
                raise FileNotFoundError(f"{src}: not a feature store (or an empty one)")
            config = store.config
            source = store
            bad = []
        else:
            from gmmspeech.speaker.pipeline import build_features

            config = feature_config_from_args(args)
            store, rows, bad = build_features(src, fdir, config=config, data_root=args.data_root,
                                              progress=progress, role="source",
                                              max_duration=max_duration, **_par(args))
            rep = store.last_report
            note = upsampling_note(rep.upsampled, rep.n_done, config.sample_rate)
            if note:
                print(f"gmmspeech train-ubm: {note}", file=sys.stderr)
            _report_bad("train-ubm", bad)
            if not rows:
                print(f"gmmspeech train-ubm: error: {src}: no usable file", file=sys.stderr)
                return None, None, None
            source = store
        ubm = train_ubm(source, args.components, args.covariance, max_iter=args.iterations,
                        init=args.init, reservoir_size=args.reservoir, subsample=args.subsample,
                        top_c=args.top_c, random_state=args.seed, checkpoint=ckpt,
                        resume=resume, restart=args.restart, progress=progress, **_par(args))
    return ubm, config, bad


@_clean_errors
def _cmd_enroll(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.map import enroll
    from gmmspeech.speaker.pipeline import build_features, save_models

    _validate_enroll(args)
    progress = not args.quiet
    ubm = mio.load(args.ubm)
    config = _config_for(args, ubm)
    with _FeatureDir(args.features_dir) as fdir:
        store, rows, bad = build_features(args.manifest, fdir, config=config,
                                          data_root=args.data_root, progress=progress,
                                          role="enroll", max_duration=args.max_duration,
                                          **_par(args))
        _report_bad("enroll", bad)
        spk: dict[str, list] = {}
        for r in rows:
            spk.setdefault(str(r.label), []).append(np.asarray(store.load(r.id)))
        if not spk:
            print(f"gmmspeech enroll: error: {args.manifest}: no usable file", file=sys.stderr)
            return 2
        models = enroll(ubm, spk, relevance_factor=args.relevance, adapt=args.adapt,
                        progress=progress, **_par(args))
    save_models(models, args.out, metadata={"feature_config": config.to_dict(),
                                            "feature_config_hash": config.config_hash()})
    print(f"wrote {len(models)} speaker models to {args.out}"
          + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_score(args) -> int:
    import numpy as np

    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import (
        build_features,
        check_models_against_ubm,
        load_models,
        write_scores,
    )
    from gmmspeech.speaker.scoring import score

    _validate_score(args)
    progress = not args.quiet
    ubm = mio.load(args.ubm)
    models = load_models(args.models)
    config = _config_for(args, ubm)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_models_against_ubm(models, ubm, force=args.force)
    for w in caught:
        print(f"gmmspeech score: warning: {w.message}", file=sys.stderr)
    mode = args.mode or ("topc" if args.top_c else "exact")
    with _FeatureDir(args.features_dir) as fdir:
        store, rows, bad = build_features(args.manifest, fdir, config=config,
                                          data_root=args.data_root, progress=progress,
                                          role="test", max_duration=args.max_duration,
                                          **_par(args))
        _report_bad("score", bad)
        if not rows:
            print(f"gmmspeech score: error: {args.manifest}: no usable file", file=sys.stderr)
            return 2
        utts = [np.asarray(store.load(r.id)) for r in rows]
        labels = list(models)
        s = score([models[m] for m in labels], ubm, utts,
                  top_c=args.top_c if mode == "topc" else None, mode=mode, progress=progress,
                  check_models=False, **_par(args))  # checked above, before any work
    try:
        write_scores(args.out, [r.id for r in rows], [str(r.label) for r in rows], labels, s)
    except OSError as exc:
        print(f"gmmspeech score: error: cannot write {args.out}: {exc.strerror or exc}; nothing "
              "was written (no partial or temporary file is left)", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(rows)} tests x {len(labels)} models ({mode})"
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
    ``speaker-id`` arguments: the ``--protocol`` preset (if any) or the plain defaults,
    overridden by every option given on the command line."""
    from gmmspeech.speaker.pipeline import protocol_settings

    out = protocol_settings(args.protocol) if args.protocol else dict(
        preset="speech", feature_overrides={}, n_components=256, ubm_on_enroll=False,
        relevance_factor=16.0, adapt="m", top_c=5, score_mode=None, norm=None)
    fo = dict(out.get("feature_overrides") or {})
    for dest in ("cmvn", "vad", "n_mfcc", "sample_rate"):
        if getattr(args, dest, None) is not None:
            fo[dest] = getattr(args, dest)
    out["feature_overrides"] = fo or None
    for dest, key in {"preset": "preset", "components": "n_components",
                      "ubm_on_enroll": "ubm_on_enroll", "relevance": "relevance_factor",
                      "adapt": "adapt"}.items():
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
    from gmmspeech.speaker.pipeline import feature_config, run_speaker_id
    from gmmspeech.speaker.ubm import UBMCheckpointError

    _validate_speaker_id(args)
    settings = speaker_id_settings(args)
    from gmmspeech.cli.common import check_max_duration

    max_duration = check_max_duration(args)
    try:
        feature_config(settings["preset"], **(settings.get("feature_overrides") or {}))
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
            resume=resume, restart=args.restart, **settings, **_par(args),
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
