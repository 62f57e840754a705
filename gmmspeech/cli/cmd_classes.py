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
        "train-classes", help="train one model (GMM or GMM-HMM) per label of a manifest",
        description="Train one class model per label of MANIFEST (digits, words, languages, "
        "...): a GMM by EM on the label's frames, or MAP-adapted from --ubm; with --model hmm "
        "a left-to-right GMM-HMM word model (flat start, mixture splitting, Baum-Welch), for "
        "isolated words and digits. Writes DIR/classes.json (classes, priors, settings and the "
        "feature configuration) and one model file per class. Unusable files are reported and "
        "skipped (exit 1).",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="training manifest (id,path,label[,start,end]) "
                                                        "or a feature store")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output models folder")
    g = p.add_argument_group("class models")
    g.add_argument("-k", "--components", type=int, default=None, metavar="K",
                   help="Gaussian components per class GMM (default 8)")
    g.add_argument("--covariance", default="diag", choices=["diag", "full"],
                   help="covariance type (default diag)")
    g.add_argument("--model", default="gmm", metavar="TYPE",
                   help="class-model type: gmm (frames as a bag) or hmm (left-to-right GMM-HMM, "
                        "for isolated words and digits; default gmm)")
    g.add_argument("--states", type=int, default=None, metavar="S",
                   help="--model hmm: emitting states per word model (default: the dev-chosen "
                        "setting, see README)")
    g.add_argument("--mix", type=int, default=None, metavar="M",
                   help="--model hmm: Gaussians per state (default: the dev-chosen setting)")
    g.add_argument("--ubm", default=None, metavar="FILE",
                   help="MAP-adapt every class model from this UBM instead of EM "
                        "(its feature configuration is used unless feature options are given)")
    g.add_argument("--relevance", type=float, default=16.0, metavar="R",
                   help="MAP relevance factor with --ubm (default 16)")
    g.add_argument("--adapt", default="m", metavar="PARAMS",
                   help="parameters adapted with --ubm: m, mw, mwv, ... (default m)")
    g.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="at most N EM iterations per class GMM (default 100), or Baum-Welch "
                        "iterations at the final mixture size with --model hmm (default 20)")
    g.add_argument("--reg-covar", type=float, default=1e-6, metavar="R",
                   help="added to the diagonal of every covariance (default 1e-6; larger values "
                        "steady small classes, e.g. 1e-3)")
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
    p.add_argument("--manifest", required=True, metavar="CSV_OR_STORE",
                   help="manifest of the files to classify, or a feature store of the models' "
                        "configuration (features already in the store the models were trained "
                        "from are read from it, not extracted again)")
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


def _model_settings(args) -> tuple[int, int, dict | None]:
    """``(n_components, max_iter, model_params)`` of the class-model options; a flag that
    does not apply to ``--model`` is an error naming it."""
    if not args.reg_covar >= 0:  # also NaN
        raise ValueError(f"--reg-covar must be >= 0, got {args.reg_covar}")
    if args.model == "hmm":
        if args.components is not None:
            raise ValueError("-k/--components sets GMM components; with --model hmm give the "
                             "Gaussians per state with --mix")
        params = {name: v for name, v in (("n_states", args.states), ("n_mix", args.mix),
                                          ("max_iter", args.iterations)) if v is not None}
        return 8, 100, params or None
    for flag, v in (("--states", args.states), ("--mix", args.mix)):
        if v is not None:
            raise ValueError(f"{flag} applies to --model hmm only (this is --model {args.model})")
    return (8 if args.components is None else args.components,
            100 if args.iterations is None else args.iterations, None)


def _cmd_train_classes(args) -> int:
    from gmmspeech.classes import default_feature_config, train_classes
    from gmmspeech.features.config import FeatureConfig

    try:
        n_components, max_iter, model_params = _model_settings(args)
        ubm = None
        if args.ubm is not None:
            from gmmspeech.mixture import io as mio

            ubm = mio.load(args.ubm)
        overrides = feature_overrides_from_args(args)
        config = None
        if args.preset is not None:
            config = FeatureConfig.preset(args.preset).replace(**overrides)
        elif overrides or ubm is None:
            config = default_feature_config(args.model, **overrides)
        res = train_classes(
            args.manifest, args.out, config=config, data_root=args.data_root,
            features_dir=args.features_dir, n_components=n_components,
            covariance_type=args.covariance, ubm=ubm, relevance_factor=args.relevance,
            adapt=args.adapt, model=args.model, model_params=model_params, max_iter=max_iter,
            reg_covar=args.reg_covar,
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
