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


#: The names of :data:`gmmspeech.features.config.PRESETS` (kept here so that ``--help``
#: does not import numpy; a test checks they agree).
PRESET_NAMES = ("speech", "kaldi", "librosa", "kaldi-fbank", "kaldi-plp", "librosa-fbank",
                "fbank", "plp", "lfcc", "rasta-plp", "sdc")


def add_preset_arg(parser, *, default: str | None = "speech", help: str | None = None) -> None:
    """``--preset`` (every front end) and the options that change any preset
    (``--sdc``, ``--pitch``, ``--rasta``, ``--vad-method``)."""
    parser.add_argument("--preset", default=default, choices=PRESET_NAMES,
                        help=help or "feature preset: MFCC (speech, kaldi, librosa), log filter "
                                     "banks (fbank, kaldi-fbank, librosa-fbank), PLP (plp, kaldi-plp, "
                                     "rasta-plp), LFCC (lfcc), MFCC+SDC (sdc); default: speech")
    add_feature_options(parser)


def add_feature_options(parser) -> None:
    """Options appended to any preset (see :func:`feature_overrides`)."""
    parser.add_argument("--sdc", default=None, metavar="N-d-P-k",
                        help="append shifted delta cepstra of the first N static dimensions, "
                             "e.g. 7-1-3-7")
    parser.add_argument("--pitch", default=None, choices=["kaldi", "pyin"],
                        help="append 3 pitch features: Kaldi pitch (kaldi-native-fbank) or pYIN "
                             "(librosa): probability of voicing, log-pitch, delta log-pitch")
    parser.add_argument("--rasta", action="store_true", default=None,
                        help="RASTA-filter the log filter-bank trajectories")
    parser.add_argument("--vad-method", default=None, choices=["energy", "gmm"],
                        help="voice activity detection: energy threshold or a per-utterance "
                             "GMM on frame energies (default: the preset's, energy)")


def feature_overrides(args) -> dict:
    """FeatureConfig field changes asked for by :func:`add_feature_options`' options."""
    out: dict = {}
    spec = getattr(args, "sdc", None)
    if spec is not None:
        parts = str(spec).split("-")
        try:
            n, d, p, k = (int(v) for v in parts)
        except ValueError:
            raise ValueError(f"--sdc {spec!r}: expected four integers N-d-P-k, e.g. 7-1-3-7") from None
        out.update(sdc=True, sdc_n=n, sdc_d=d, sdc_p=p, sdc_k=k)
    if getattr(args, "pitch", None):
        out["pitch"] = args.pitch
    if getattr(args, "rasta", None):
        out["rasta"] = True
    if getattr(args, "vad_method", None):
        out["vad_method"] = args.vad_method
    return out
