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


def add_feature_options(parser: argparse.ArgumentParser, *, preset_default: str | None = "speech") -> None:
    """``--preset``, ``--sample-rate``, ``--n-mfcc``, ``--cmvn``, ``--no-vad``,
    ``--features-dir`` and ``--data-root`` (read back with :func:`feature_config_from_args`)."""
    g = parser.add_argument_group("features")
    g.add_argument("--preset", default=preset_default, choices=["speech", "kaldi", "librosa"],
                   help=f"feature preset (default {preset_default})")
    g.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="analysis rate; audio at other rates is resampled (default: the "
                        "preset's, 16000 for speech; 8000 suits FSDD)")
    g.add_argument("--n-mfcc", type=int, default=None, metavar="N",
                   help="cepstra per frame before deltas (default: the preset's)")
    g.add_argument("--cmvn", default=None, choices=["none", "utterance", "sliding", "warping"],
                   help="cepstral mean/variance normalisation (default: the preset's)")
    g.add_argument("--no-vad", dest="vad", action="store_false", default=None,
                   help="keep every frame (no energy VAD)")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature store folder, reused across runs (default: a temporary folder)")
    add_data_root_arg(g)


def feature_overrides_from_args(args: argparse.Namespace) -> dict:
    """The FeatureConfig changes asked for by :func:`add_feature_options` options."""
    out = {}
    for dest, field in (("sample_rate", "sample_rate"), ("n_mfcc", "n_mfcc"), ("cmvn", "cmvn"),
                        ("vad", "vad")):
        v = getattr(args, dest, None)
        if v is not None:
            out[field] = v
    return out
