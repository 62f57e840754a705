"""Options shared by several commands (parsing only)."""

from __future__ import annotations

import argparse


def add_parallel_args(parser: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--backend`` and ``--scheduler`` (see :mod:`gmmspeech.parallel`)."""
    g = parser.add_argument_group("parallelism")
    g.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="local worker processes (-1: all cores; default 1)")
    g.add_argument("--backend", choices=["local", "loky", "threading", "dask"], default=None,
                   help="joblib backend (default: $GMMSPEECH_BACKEND or local processes)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://host:8786 (default: $GMMSPEECH_SCHEDULER)")


def add_data_root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, metavar="R",
                        help="folder that relative manifest paths resolve against "
                             "(default: the manifest's own folder)")


def add_preset_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="speech", choices=["speech", "kaldi", "librosa"],
                        help="feature preset (default: speech)")


# --------------------------------------------------------------------------- validation
# Every argument is checked before any audio is read or any model trained; messages name
# the flags as the user typed them ("-k/--components must be >= 1, got 0") and end the
# command with exit code 2 (see gmmspeech.cli.main).


def _usage_error(message: str) -> Exception:
    from gmmspeech.errors import UsageError

    return UsageError(message)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def check_number(value, flag: str, *, lo=None, hi=None, strict: bool = False) -> None:
    """``value`` (None: not given) must be a finite number ``>= lo`` (``> lo`` with ``strict``)
    and ``<= hi``."""
    import math

    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise _usage_error(f"{flag} must be a finite number, got {_fmt(value)}")
    if lo is not None and (value <= lo if strict else value < lo):
        raise _usage_error(f"{flag} must be {'>' if strict else '>='} {_fmt(lo)}, got {_fmt(value)}")
    if hi is not None and value > hi:
        raise _usage_error(f"{flag} must be <= {_fmt(hi)}, got {_fmt(value)}")


def check_adapt(value, flag: str = "--adapt") -> None:
    """A combination of m, w and v (None: not given)."""
    if value is None:
        return
    if not value or set(value) - set("mwv") or len(set(value)) != len(value):
        raise _usage_error(f"{flag} must be a combination of m, w and v (e.g. m, mw, mwv), "
                           f"got {value!r}")


def check_input(path, flag: str, *, kind: str = "file") -> None:
    """An existing file (``kind="file"``), folder (``"dir"``) or either (``"any"``)."""
    import os

    if path is None:
        return
    if not os.path.exists(path):
        what = {"file": "file", "dir": "folder", "any": "file or folder"}[kind]
        raise _usage_error(f"{flag} {path}: no such {what}")
    if kind == "file" and not os.path.isfile(path):
        raise _usage_error(f"{flag} {path}: is a folder, expected a file")
    if kind == "dir" and not os.path.isdir(path):
        raise _usage_error(f"{flag} {path}: is a file, expected a folder")


def check_output(path, flag: str, *, kind: str = "file") -> None:
    """A path a command will write: not the wrong kind of thing, in a writable place."""
    import os

    if path is None:
        return
    p = os.path.abspath(os.fspath(path))
    if kind == "file" and os.path.isdir(p):
        raise _usage_error(f"{flag} {path}: is a folder, expected a file name")
    if kind == "dir" and os.path.exists(p) and not os.path.isdir(p):
        raise _usage_error(f"{flag} {path}: is a file, expected a folder")
    # the nearest existing ancestor must be a writable folder
    parent = p if kind == "dir" else os.path.dirname(p)
    while not os.path.exists(parent):
        nxt = os.path.dirname(parent)
        if nxt == parent:
            break
        parent = nxt
    if not os.path.isdir(parent):
        raise _usage_error(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _usage_error(f"{flag} {path}: {parent} is not writable")


def check_common(args) -> None:
    """``--jobs``, ``--backend``/``--scheduler``, ``--data-root`` and ``--features-dir``."""
    jobs = getattr(args, "jobs", None)
    if jobs == 0:
        raise _usage_error("-j/--jobs must be >= 1, or negative to count back from all cores "
                           "(-1: all), got 0")
    if getattr(args, "scheduler", None) and getattr(args, "backend", None) not in (None, "dask"):
        raise _usage_error(f"--scheduler needs --backend dask, got --backend {args.backend}")
    check_input(getattr(args, "data_root", None), "--data-root", kind="dir")
    check_output(getattr(args, "features_dir", None), "--features-dir", kind="dir")


def resume_command(*, add: str = "--resume") -> str:
    """This process's command line, with ``--resume``/``--restart`` replaced by ``add``."""
    import shlex
    import sys

    argv = list(sys.argv[1:])
    argv = [a for a in argv if a not in ("--resume", "--restart")] + [add]
    return "gmmspeech " + shlex.join(argv)


#: Feature options of ``features``, ``train-ubm`` and ``speaker-id`` -> their flags.
FEATURE_FLAGS = {"preset": "--preset", "sample_rate": "--sample-rate", "n_mfcc": "--n-mfcc",
                 "cmvn": "--cmvn", "vad": "--no-vad"}


def add_feature_options(g, *, preset: bool = True) -> None:
    """``--preset``, ``--sample-rate``, ``--n-mfcc``, ``--cmvn``, ``--no-vad`` (None = not given)."""
    if preset:
        g.add_argument("--preset", default=None, choices=["speech", "kaldi", "librosa"],
                       help="feature preset (default speech)")
    g.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="analysis rate in Hz; audio at another rate is resampled to it (default: "
                        "the preset's, 16000 for speech; 8000 suits 8 kHz corpora such as FSDD)")
    g.add_argument("--n-mfcc", type=int, default=None, metavar="N",
                   help="cepstra per frame before deltas (default: the preset's, 20)")
    g.add_argument("--cmvn", default=None, choices=["none", "utterance", "sliding", "warping"],
                   help="cepstral mean/variance normalisation (default: the preset's)")
    g.add_argument("--no-vad", dest="vad", action="store_false", default=None,
                   help="keep every frame (no energy VAD)")


def add_max_duration_arg(g) -> None:
    g.add_argument("--max-duration", type=float, default=4 * 3600.0, metavar="SECONDS",
                   help="longest accepted audio file or segment; longer ones are reported as bad "
                        "files (default 14400 = 4 hours)")


def given_feature_flags(args) -> list[str]:
    """The feature options given on the command line, as flags."""
    return [flag for dest, flag in FEATURE_FLAGS.items() if getattr(args, dest, None) is not None]


def feature_config_from_args(args):
    """The FeatureConfig of ``--preset`` (default speech) with the other feature options.

    Raises ValueError naming the flag when a value is out of range.
    """
    from gmmspeech.features.config import FeatureConfig

    config = FeatureConfig.preset(getattr(args, "preset", None) or "speech")
    changes = {dest: getattr(args, dest) for dest in ("sample_rate", "n_mfcc", "cmvn", "vad")
               if getattr(args, dest, None) is not None}
    for dest, value in changes.items():
        try:
            config = config.replace(**{dest: value})
        except ValueError as exc:
            raise ValueError(f"{FEATURE_FLAGS[dest]} {value}: {exc}") from None
    return config


def check_max_duration(args) -> float | None:
    v = getattr(args, "max_duration", None)
    if v is None:
        return None
    if not (v > 0) or v != v:
        raise ValueError(f"--max-duration must be > 0 seconds, got {v}")
    return float(v)
