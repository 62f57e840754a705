"""Sub-commands ``train-classes`` and ``classify``: one model per label of a manifest.

Parsing and printing only: the work is done by :mod:`gmmspeech.classes` (imported
inside the command functions so that ``gmmspeech --help`` stays fast).
"""

from __future__ import annotations

import os
import sys

from gmmspeech.cli.common import (
    add_data_root_arg,
    add_feature_options,
    add_parallel_args,
    feature_overrides_from_args,
)


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser(
        "train-classes", help="train one model (GMM) per label of a manifest",
        description="Train one class model per label of MANIFEST (digits, words, languages, "
        "...): a GMM by EM on the label's frames, or MAP-adapted from --ubm. Writes "
        "DIR/classes.json (classes, priors, settings and the feature configuration) and one "
        "model file per class. Unusable files are reported and skipped (exit 1).",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="training manifest (id,path,label[,start,end])")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output models folder")
    g = p.add_argument_group("class models")
    g.add_argument("-k", "--components", type=int, default=8, metavar="K",
                   help="Gaussian components per class (default 8)")
    g.add_argument("--covariance", default="diag", choices=["diag", "full"],
                   help="covariance type (default diag)")
    g.add_argument("--model", default="gmm", metavar="TYPE",
                   help="class-model type (default gmm)")
    g.add_argument("--ubm", default=None, metavar="FILE",
                   help="MAP-adapt every class model from this UBM instead of EM "
                        "(its feature configuration is used unless feature options are given)")
    g.add_argument("--relevance", type=float, default=16.0, metavar="R",
                   help="MAP relevance factor with --ubm (default 16)")
    g.add_argument("--adapt", default="m", metavar="PARAMS",
                   help="parameters adapted with --ubm: m, mw, mwv, ... (default m)")
    g.add_argument("--iterations", type=int, default=100, metavar="N",
                   help="at most N EM iterations per class (default 100)")
    g.add_argument("--priors", default="empirical", choices=["empirical", "uniform"],
                   help="class priors: shares of the training files, or equal (default empirical)")
    g.add_argument("--likelihood-scale", default="average", metavar="S",
                   help="posterior from the average (default), total or S-scaled "
                        "log-likelihood of each utterance")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g = p.add_argument_group("features")
    add_feature_options(g)
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature store folder, reused across runs (default: a temporary folder)")
    add_data_root_arg(g)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train_classes)

    p = sub.add_parser(
        "classify", help="classify every row of a manifest with train-classes models",
        description="Give every row of --manifest the class of the most probable model of "
        "--models (features extracted as the models were trained). Writes "
        "OUTDIR/predictions.tsv (id, predicted, score = average log-likelihood per frame of the "
        "predicted class, label) and OUTDIR/scores.tsv (every class); when the manifest has "
        "labels also OUTDIR/results.json (accuracy, per-class recall, n_tests, ...) and "
        "OUTDIR/confusion.png.",
    )
    p.add_argument("--models", required=True, metavar="DIR", help="folder written by train-classes")
    p.add_argument("--manifest", required=True, metavar="CSV", help="manifest of the files to classify")
    p.add_argument("--out", "-o", required=True, metavar="OUTDIR", help="output folder")
    g = p.add_argument_group("features")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature store folder, reused across runs (default: a temporary folder)")
    g.add_argument("--data-root", default=None, metavar="R",
                   help="folder that relative manifest paths resolve against "
                        "(default: the manifest's own folder)")
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_classify)


def _scale(text: str):
    if text in ("average", "total"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--likelihood-scale must be average, total or a number, got {text!r}") from None


def _cmd_train_classes(args) -> int:
    from gmmspeech.classes import train_classes
    from gmmspeech.features.config import FeatureConfig

    try:
        ubm = None
        if args.ubm is not None:
            from gmmspeech.mixture import io as mio

            ubm = mio.load(args.ubm)
        overrides = feature_overrides_from_args(args)
        config = None
        if args.preset is not None or overrides or ubm is None:
            config = FeatureConfig.preset(args.preset or "speech")
            if overrides:
                config = config.replace(**overrides)
        res = train_classes(
            args.manifest, args.out, config=config, data_root=args.data_root,
            features_dir=args.features_dir, n_components=args.components,
            covariance_type=args.covariance, ubm=ubm, relevance_factor=args.relevance,
            adapt=args.adapt, model=args.model, max_iter=args.iterations,
            priors=None if args.priors == "empirical" else "uniform",
            likelihood_scale=_scale(args.likelihood_scale), random_state=args.seed,
            n_jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
            progress=not args.quiet)
    except ValueError as exc:
        print(f"gmmspeech train-classes: error: {exc}", file=sys.stderr)
        return 2
    bad = res["bad_files"]
    print(f"wrote {len(res['classes'])} class models ({args.model}) to {args.out} from "
          f"{res['n_files']} files" + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0


def _cmd_classify(args) -> int:
    from gmmspeech.classes import classify

    try:
        res = classify(args.models, args.manifest, args.out, data_root=args.data_root,
                       features_dir=args.features_dir, n_jobs=args.jobs, backend=args.backend,
                       scheduler=args.scheduler, progress=not args.quiet)
    except ValueError as exc:
        print(f"gmmspeech classify: error: {exc}", file=sys.stderr)
        return 2
    line = f"wrote {os.path.join(args.out, 'predictions.tsv')} ({res['n_files']} files"
    if res.get("accuracy") is not None:
        line += (f"; accuracy {100 * res['accuracy']:.2f} % on {res['n_tests']} labelled tests, "
                 f"see {os.path.join(args.out, 'results.json')}")
    print(line + (f"; {res['n_bad_files']} file(s) skipped)" if res["n_bad_files"] else ")"))
    return 1 if res["n_bad_files"] else 0
