"""Sub-commands ``posteriors`` (UBM posteriorgrams -> feature store) and ``supervectors``."""

from __future__ import annotations

import argparse
import sys

from gmmspeech.cli.common import (
    PRESET_NAMES,
    add_data_root_arg,
    add_max_duration_arg,
    add_parallel_args,
    add_preset_arg,
)


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser(
        "posteriors", help="per-frame UBM posteriorgrams of a manifest into a feature store",
        description="Extract the features of every row of MANIFEST (the configuration saved in "
        "the UBM file unless --preset is given) and write the per-frame posteriors of the UBM's "
        "components (frames x K) into the feature store STORE, which reloads like any other "
        "(gmmspeech.corpus.FeatureStore). Bad files are listed in STORE/errors.tsv (exit 1).",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV file list (id,path,label[,start,end])")
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--out", "-o", required=True, metavar="STORE", help="feature store folder")
    p.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="keep the C largest posteriors per frame (renormalised), zeros elsewhere "
                        "(default: dense)")
    p.add_argument("--log", action="store_true", help="log posteriors (floored at log 1e-10)")
    g = p.add_argument_group("features")
    add_preset_arg(g, default=None, help="feature preset (" + ", ".join(PRESET_NAMES)
                   + "; default: the configuration saved in the UBM file)")
    add_data_root_arg(g)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_posteriors)

    p = sub.add_parser(
        "supervectors", help="GMM mean supervectors, one per manifest row, into an .npz file",
        description="MAP-adapt the UBM's means to every row of MANIFEST and write the stacked "
        "means normalised by sqrt(w) Sigma^-1/2 of the UBM (GMM supervectors) to FILE.npz "
        "(arrays ids, labels, supervectors, metadata; no pickle).",
    )
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output .npz")
    p.add_argument("--relevance", type=float, default=16.0, metavar="R",
                   help="MAP relevance factor (default 16)")
    p.add_argument("--center", action="store_true", help="subtract the UBM's means first")
    g = p.add_argument_group("features")
    add_preset_arg(g, default=None, help="feature preset (default: the configuration saved in "
                                         "the UBM file)")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature stores folder, as for enroll and score: features are reused from and "
                        "added to DIR/<config hash> (or DIR itself when it is a store of the same "
                        "configuration); files already in the stores the UBM file records are read "
                        "from there; default: a temporary folder")
    add_max_duration_arg(g)
    add_data_root_arg(g)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_supervectors)


def _config(args, ubm):
    from gmmspeech.cli.cmd_speaker import _config_for

    return _config_for(args, ubm)


def _cmd_posteriors(args: argparse.Namespace) -> int:
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.gmmfeatures import posteriorgram_store

    try:
        config = _config(args, mio.load(args.ubm))
        if args.top_c is not None and args.top_c < 1:
            raise ValueError(f"--top-c must be >= 1, got {args.top_c}")
        rows = read_manifest(args.manifest, data_root=args.data_root)
        store, report = posteriorgram_store(args.ubm, rows, args.out, feature_config=config,
                                            top_c=args.top_c, log=args.log, n_jobs=args.jobs,
                                            backend=args.backend, scheduler=args.scheduler,
                                            progress=not args.quiet)
    except ValueError as exc:
        print(f"gmmspeech posteriors: error: {exc}", file=sys.stderr)
        return 2
    if report.failed:
        print(report.summary(), file=sys.stderr)
        return 1
    print(f"{report.summary()} -> {store.root} ({store.config.n_components} posteriors per frame)")
    return 0


def _cmd_supervectors(args: argparse.Namespace) -> int:
    import numpy as np

    from gmmspeech.cli.cmd_speaker import _FeatureDir, _open_features
    from gmmspeech.cli.common import check_max_duration
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.gmmfeatures import save_supervectors, supervectors
    from gmmspeech.speaker.pipeline import recorded_stores

    try:
        check_max_duration(args)
        ubm = mio.load(args.ubm)
        config = _config(args, ubm)
        if config.n_features != ubm.means_.shape[1]:
            raise ValueError(f"the front end gives {config.n_features} dims, the UBM has "
                             f"{ubm.means_.shape[1]}")
        with _FeatureDir(args.features_dir) as fdir:
            # the UBM's stores are read, new features go to --features-dir (FDIR/<config hash>)
            feats, rows, bad = _open_features(args, args.manifest, config, fdir, reuse=recorded_stores(ubm),
                                              role="supervectors", progress=not args.quiet)
            if not rows:
                from gmmspeech.cli.cmd_speaker import _no_usable_file

                _no_usable_file("supervectors", args.manifest, args.data_root)
                return 2
            sv = supervectors(ubm, [np.asarray(feats.load(r.id)) for r in rows],
                              relevance_factor=args.relevance, center=args.center)
    except ValueError as exc:
        print(f"gmmspeech supervectors: error: {exc}", file=sys.stderr)
        return 2
    save_supervectors(args.out, [r.id for r in rows], [str(r.label) for r in rows], sv,
                      metadata={"ubm": args.ubm, "relevance_factor": args.relevance,
                                "center": args.center, "feature_config": config.to_dict()})
    print(f"wrote {args.out}: {sv.shape[0]} supervectors of {sv.shape[1]} dims"
          + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0
