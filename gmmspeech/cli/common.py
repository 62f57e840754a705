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
