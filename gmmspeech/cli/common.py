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


def add_ivector_system_args(p) -> None:
    """``--system`` and the i-vector options of ``speaker-id``."""
    p.add_argument("--system", default="gmm-ubm", choices=["gmm-ubm", "ivector", "fusion"],
                   help="gmm-ubm (MAP models, LLR scoring), ivector (total variability + back-end "
                        "trained on the background manifest's speakers) or fusion of both "
                        "(logistic regression trained on background-speaker trials; default gmm-ubm)")
    g = p.add_argument_group("i-vector system (--system ivector/fusion)")
    g.add_argument("--ivector-rank", default=None, metavar="R",
                   help="i-vector dimension (default auto: 400 with plenty of data, a tenth of the "
                        "training utterances when few)")
    g.add_argument("--ivector-iterations", type=int, default=None, metavar="N",
                   help="EM iterations of the total-variability matrix (default 10)")
    g.add_argument("--ivector-scoring", default=None, choices=["plda", "cosine"],
                   help="back-end scoring (default plda)")
    g.add_argument("--lda-dim", default=None, metavar="N",
                   help="LDA dimension before PLDA/cosine (an integer, a fraction like 0.5 of the "
                        "speakers - 1, or none; default none)")
    g.add_argument("--plda", default=None, choices=["two-cov", "simplified"],
                   help="PLDA model (default two-cov)")
    g.add_argument("--plda-rank", type=int, default=None, metavar="Q",
                   help="speaker-subspace rank of the simplified PLDA")
    g.add_argument("--full-ubm", action="store_true", default=None,
                   help="statistics from a full-covariance UBM refined from the diagonal one")


def parse_number(v: str | None):
    if v is None or v in ("none", "None", ""):
        return None
    if v == "auto":
        return "auto"
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a number, 'auto' or 'none'") from None


def ivector_options_from_args(args) -> dict:
    """The ``ivector_options`` of :func:`~gmmspeech.speaker.pipeline.run_speaker_id` given on
    the command line (options not given are left to the defaults)."""
    out: dict = {}
    if getattr(args, "ivector_rank", None) is not None:
        out["rank"] = parse_number(args.ivector_rank)
    if getattr(args, "ivector_iterations", None) is not None:
        out["n_iter"] = int(args.ivector_iterations)
    if getattr(args, "ivector_scoring", None) is not None:
        out["scoring"] = args.ivector_scoring
    if getattr(args, "lda_dim", None) is not None:
        out["lda_dim"] = parse_number(args.lda_dim)
    if getattr(args, "plda", None) is not None:
        out["plda_model"] = args.plda
    if getattr(args, "plda_rank", None) is not None:
        out["plda_rank"] = int(args.plda_rank)
    if getattr(args, "full_ubm", None):
        out["ubm_covariance"] = "full"
    return out
