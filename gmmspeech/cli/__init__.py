"""Command-line interface: argument parsing and printing only, no maths.

Each command group lives in its own module with a ``register(subparsers)`` function;
the modules import numpy, librosa and the models only inside the command functions,
so ``gmmspeech --help`` answers without loading them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gmmspeech import __version__

# modules that add sub-commands, in the order they appear in --help
COMMAND_MODULES = (
    "gmmspeech.cli.cmd_features",  # features, manifest
    "gmmspeech.cli.cmd_speaker",  # train-ubm, enroll, score, evaluate, speaker-id
    "gmmspeech.cli.cmd_classes",  # train-classes, classify
    "gmmspeech.cli.cmd_gmmfeatures",  # posteriors, supervectors
    "gmmspeech.cli.cmd_ivector",  # train-ivector, extract-ivectors, train-backend, score-ivectors
    "gmmspeech.cli.cmd_recipes",  # demo, recipe
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmmspeech",
        description="Speech features and Gaussian mixture models: MFCC front end, fast EM, "
        "GMM-UBM speaker recognition.",
    )
    parser.add_argument("--version", action="version", version=f"gmmspeech {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _run(args) -> int:
    """Run the command; with the parallelism options, under ``--threads`` (restored after,
    for embedded use; the count is logged by :func:`gmmspeech.cli.common.check_common`)."""
    if not hasattr(args, "threads"):
        return int(args.func(args) or 0)
    from gmmspeech.threads import thread_limit

    if args.threads is not None and args.threads < 1:
        from gmmspeech.cli.common import _usage_error

        raise _usage_error(f"--threads must be >= 1, got {args.threads}")
    with thread_limit(args.threads):
        return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if len(given) >= 2 and given[0] == "recipe":
        from gmmspeech.cli.cmd_recipes import SCRIPTS, run_script

        if given[1] in SCRIPTS:  # every further argument (--help too) belongs to the script
            return run_script(given[1], given[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    import errno
    import signal

    from gmmspeech.errors import GMMSpeechError

    def _terminate(signum, frame):  # SIGTERM unwinds like Ctrl-C: indexes get written
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        return _run(args)
    except GMMSpeechError as exc:
        print(f"gmmspeech {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"gmmspeech {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"gmmspeech {args.command}: error: {exc.strerror}{where}; files written before are "
              "intact (written atomically) and a re-run redoes only what is missing",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gmmspeech {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
