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
