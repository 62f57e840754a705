"""Sub-commands ``features`` (manifest -> feature store) and ``manifest`` (from-kaldi,
from-commonvoice, check)."""

from __future__ import annotations

import argparse
import os
import sys

from gmmspeech.cli.common import (
    add_data_root_arg,
    add_feature_options,
    add_max_duration_arg,
    add_parallel_args,
)


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser(
        "features",
        help="extract features of every manifest row into a feature store",
        description="Extract features of every row of MANIFEST into the store folder DIR: one "
        ".npy per row plus DIR/index.tsv and DIR/store.json. Rows already in the store with the "
        "same configuration are skipped. Files that cannot be used are listed in DIR/errors.tsv "
        "and the command exits 1; the good ones are still done.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV file list (id,path,label[,start,end])")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="feature store folder")
    g = p.add_argument_group("features")
    add_feature_options(g)
    g.add_argument("--config", default=None, metavar="JSON",
                   help="FeatureConfig JSON file, or another store's store.json to reuse its "
                        "configuration (not with the options above)")
    add_max_duration_arg(g)
    add_data_root_arg(p)
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_features)

    m = sub.add_parser("manifest", help="convert or check manifests",
                       description="Manifest tools: convert a Kaldi data directory, check a manifest.")
    msub = m.add_subparsers(dest="manifest_command", metavar="ACTION")
    k = msub.add_parser(
        "from-kaldi",
        help="convert a Kaldi data directory (wav.scp, utt2spk[, segments, text, spk2gender, "
             "spk2age]) to a manifest",
        description="Convert a Kaldi data directory to a manifest: one row per recording of "
        "wav.scp, or per segment when DIR/segments exists; label = speaker from utt2spk; "
        "text, spk2gender and spk2age become the columns text, gender and age. "
        "wav.scp must list plain file paths (piped commands are refused). Relative paths "
        "stay relative: use the manifest with --data-root set to the folder they are relative "
        "to (for a Kaldi recipe, its top folder), or give --wav-root to resolve them now.",
    )
    k.add_argument("data_dir", metavar="DIR", help="Kaldi data directory")
    k.add_argument("--out", "-o", default=None, metavar="FILE", help="output CSV (default: stdout)")
    k.add_argument("--wav-root", "--root", dest="wav_root", default=None, metavar="R",
                   help="resolve relative wav.scp paths against R now (absolute paths in the "
                        "manifest); default: keep them relative, to be resolved by --data-root "
                        "when the manifest is used")
    k.add_argument("--relative-to", default=None, metavar="R",
                   help="write absolute paths relative to R (read back with --data-root R); "
                        "default: paths as wav.scp (or --wav-root) gives them")
    k.set_defaults(func=_cmd_from_kaldi)
    v = msub.add_parser(
        "from-commonvoice",
        help="convert a Common Voice folder (clips/*.mp3 and validated.tsv) to a manifest",
        description="Convert a corpus in the Mozilla Common Voice layout to a manifest: one row "
        "per clip of DIR/validated.tsv (or --tsv), id = clip name, path = clips/<path> relative "
        "to DIR (use the manifest with --data-root DIR), label = client_id (the speaker); "
        "sentence, gender, age, accents and locale become the columns text, gender, age, "
        "accents and locale.",
    )
    v.add_argument("folder", metavar="DIR", help="Common Voice folder (holding clips/)")
    v.add_argument("--tsv", default="validated.tsv", metavar="NAME",
                   help="the list of clips in DIR (default validated.tsv)")
    v.add_argument("--min-clips", type=int, default=1, metavar="N",
                   help="keep only speakers with at least N clips (default 1: all)")
    v.add_argument("--out", "-o", default=None, metavar="FILE", help="output CSV (default: stdout)")
    v.set_defaults(func=_cmd_from_commonvoice)
    c = msub.add_parser("check", help="validate a manifest and check that every file exists",
                        description="Validate MANIFEST and check that every audio file exists; "
                        "exits 1 when files are missing.")
    c.add_argument("manifest", metavar="MANIFEST")
    add_data_root_arg(c)
    c.set_defaults(func=_cmd_check)
    m.set_defaults(func=lambda args: _manifest_help(m))


def _manifest_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _cmd_features(args: argparse.Namespace) -> int:
    from gmmspeech.cli.common import (
        check_common,
        check_input,
        check_max_duration,
        check_output,
        feature_config_from_args,
        given_feature_flags,
    )
    from gmmspeech.corpus.manifest import missing_files_hint, read_manifest
    from gmmspeech.corpus.store import FeatureStore, upsampling_note
    from gmmspeech.features.config import FeatureConfig

    check_input(args.manifest, "MANIFEST")
    check_input(args.config, "--config")
    check_output(args.out, "-o/--out", kind="dir")
    check_common(args)
    try:
        max_duration = check_max_duration(args)
        if args.config is not None:
            flags = given_feature_flags(args)
            if flags:
                raise ValueError(f"{', '.join(flags)} cannot apply with --config (the configuration "
                                 "file fixes every feature setting); drop one of them")
            import json

            with open(args.config, encoding="utf-8") as fh:
                text = fh.read()
            try:
                doc = json.loads(text)
                if isinstance(doc, dict) and isinstance(doc.get("config"), dict):
                    doc = doc["config"]  # another store's store.json: reuse its configuration
                config = FeatureConfig.from_dict(doc)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"--config {args.config}: {exc}") from None
        else:
            config = feature_config_from_args(args)
    except ValueError as exc:
        print(f"gmmspeech features: error: {exc}", file=sys.stderr)
        return 2
    rows = read_manifest(args.manifest, data_root=args.data_root)
    store = FeatureStore(args.out)
    report = store.build(rows, config=config, n_jobs=args.jobs, backend=args.backend,
                         scheduler=args.scheduler, progress=not args.quiet,
                         max_duration=max_duration)
    note = upsampling_note(report.upsampled, report.n_done, config.sample_rate)
    if note:
        print(note, file=sys.stderr)
    if report.failed:
        print(report.summary(), file=sys.stderr)
        hint = missing_files_hint(args.manifest, rows, data_root=args.data_root)
        if hint:
            print(hint, file=sys.stderr)
        return 1
    print(f"{report.summary()} -> {store.root}")
    return 0


def _cmd_from_kaldi(args: argparse.Namespace) -> int:
    from gmmspeech.corpus.manifest import format_manifest, from_kaldi, write_manifest

    rows = from_kaldi(args.data_dir, wav_root=args.wav_root)
    if args.out is None:
        sys.stdout.write(format_manifest(rows, root=args.relative_to))
    else:
        write_manifest(rows, args.out, root=args.relative_to)
        n_seg = sum(r.start is not None or r.end is not None for r in rows)
        kind = "segments" if n_seg else "recordings"
        print(f"{len(rows)} {kind}, {len({r.label for r in rows})} speakers -> {args.out}")
        n_rel = sum(not os.path.isabs(r.path) for r in rows)
        if n_rel:
            print(f"{n_rel} paths are relative: use {args.out} with --data-root set to the folder "
                  "they are relative to (or convert again with --wav-root)")
    return 0


def _cmd_from_commonvoice(args: argparse.Namespace) -> int:
    from collections import Counter

    from gmmspeech.cli.common import check_number
    from gmmspeech.corpus.manifest import format_manifest, from_commonvoice, write_manifest

    check_number(args.min_clips, "--min-clips", lo=1)
    rows = from_commonvoice(args.folder, tsv=args.tsv)
    n = Counter(r.label for r in rows)
    rows = [r for r in rows if n[r.label] >= args.min_clips]
    if args.out is None:
        sys.stdout.write(format_manifest(rows))
        return 0
    write_manifest(rows, args.out)
    dropped = sum(1 for c in n.values() if c < args.min_clips)
    print(f"{len(rows)} clips, {len({r.label for r in rows})} speakers -> {args.out}"
          + (f" ({dropped} speakers with fewer than {args.min_clips} clips left out)" if dropped else "")
          + f"; paths are relative to {args.folder}: use --data-root {args.folder}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from gmmspeech.corpus.manifest import missing_files_hint, read_manifest

    rows = read_manifest(args.manifest, data_root=args.data_root)
    missing = [r for r in rows if not os.path.isfile(r.path)]
    for r in missing:
        print(f"{args.manifest}, line {r.line}: id {r.id!r}: no such file {r.path}", file=sys.stderr)
    n_seg = sum(r.start is not None or r.end is not None for r in rows)
    labels = {r.label for r in rows}
    print(f"{args.manifest}: {len(rows)} rows ({n_seg} segments), {len(labels)} labels, "
          f"{len(missing)} missing files")
    hint = missing_files_hint(args.manifest, rows, data_root=args.data_root)
    if hint:
        print(hint, file=sys.stderr)
    return 1 if missing else 0
