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
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads inside each process (default: $GMMSPEECH_THREADS, else the cores "
                        "of the CPU affinity mask, capped by a cgroup CPU quota; 1 in each worker "
                        "process when -j > 1)")


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
    add_frontend_options(parser)


def add_frontend_options(parser) -> None:
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
        if os.path.isdir(path):
            raise _usage_error(f"{flag} {path}: is a folder, expected a file")
        raise _usage_error(f"{flag} {path}: not a regular file (a pipe, socket or device), "
                           "expected a file")
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
    """``--jobs``, ``--backend``/``--scheduler``, ``--data-root`` and ``--features-dir``; then,
    unless ``--quiet``, the run's thread count on stderr (its log)."""
    jobs = getattr(args, "jobs", None)
    if jobs == 0:
        raise _usage_error("-j/--jobs must be >= 1, or negative to count back from all cores "
                           "(-1: all), got 0")
    if getattr(args, "scheduler", None) and getattr(args, "backend", None) not in (None, "dask"):
        raise _usage_error(f"--scheduler needs --backend dask, got --backend {args.backend}")
    check_input(getattr(args, "data_root", None), "--data-root", kind="dir")
    check_output(getattr(args, "features_dir", None), "--features-dir", kind="dir")
    if hasattr(args, "threads") and not getattr(args, "quiet", False):
        log_threads(args)


def log_threads(args) -> None:
    """The run's thread count, for its log (stderr): printed once the arguments are checked."""
    import sys

    from gmmspeech.threads import describe_threads

    jobs = getattr(args, "jobs", 1) or 1
    extra = f"; {jobs} worker processes (-j), 1 thread each" if jobs != 1 else ""
    how = describe_threads(via="--threads" if args.threads else None)
    print(f"gmmspeech {args.command}: {how} per process{extra}", file=sys.stderr)


def resume_command(*, add: str = "--resume") -> str:
    """This process's command line, with ``--resume``/``--restart`` replaced by ``add``."""
    import shlex
    import sys

    argv = list(sys.argv[1:])
    argv = [a for a in argv if a not in ("--resume", "--restart")] + [add]
    return "gmmspeech " + shlex.join(argv)


#: Feature options of ``features``, ``train-ubm`` and ``speaker-id`` -> their flags.
FEATURE_FLAGS = {"preset": "--preset", "sample_rate": "--sample-rate", "n_mfcc": "--n-mfcc",
                 "cmvn": "--cmvn", "vad": "--no-vad", "sdc": "--sdc", "pitch": "--pitch",
                 "rasta": "--rasta", "vad_method": "--vad-method"}


def add_feature_options(g, *, preset: bool = True, speaker: dict | None = None) -> None:
    """``--preset``, ``--sample-rate``, ``--n-mfcc``, ``--cmvn``, ``--no-vad`` (None = not given).

    ``speaker``: the speaker system's defaults (``speaker_defaults()``) when the command
    starts from them rather than from the plain preset (train-ubm), so that --help says so.
    """
    fo = (speaker or {}).get("feature_overrides") or {}
    if preset:
        g.add_argument("--preset", default=None, choices=PRESET_NAMES,
                       help="feature preset: MFCC (speech, kaldi, librosa), log filter banks "
                            "(fbank, kaldi-fbank, librosa-fbank), PLP (plp, kaldi-plp, "
                            "rasta-plp), LFCC (lfcc), MFCC+SDC (sdc); "
                            + ("default speech" if speaker is None else
                               "used as it is (default: the speaker defaults, "
                               + speaker["preset"]
                               + "".join(f", {k}={v}" for k, v in fo.items()) + ")"))
    add_frontend_options(g)
    g.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="analysis rate in Hz; audio at another rate is resampled to it (default: "
                        "the preset's, 16000 for speech; 8000 suits 8 kHz corpora such as FSDD)")
    g.add_argument("--n-mfcc", type=int, default=None, metavar="N",
                   help="cepstra per frame before deltas (default: "
                        + (f"{fo['n_mfcc']}" if "n_mfcc" in fo else "the preset's, 20") + ")")
    g.add_argument("--cmvn", default=None, choices=["none", "utterance", "sliding", "warping"],
                   help="cepstral mean/variance normalisation (default: "
                        + (f"{fo['cmvn']}" if "cmvn" in fo else "the preset's") + ")")
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
    extra = feature_overrides(args)
    if extra:
        try:
            config = config.replace(**extra)
        except ValueError as exc:
            flags = ", ".join(FEATURE_FLAGS.get(k, k) for k in ("sdc", "pitch", "rasta", "vad_method")
                              if getattr(args, k, None))
            raise ValueError(f"{flags}: {exc}") from None
    return config


def check_max_duration(args) -> float | None:
    v = getattr(args, "max_duration", None)
    if v is None:
        return None
    if not (v > 0) or v != v:
        raise ValueError(f"--max-duration must be > 0 seconds, got {v}")
    return float(v)


def feature_overrides_from_args(args: argparse.Namespace) -> dict:
    """The FeatureConfig changes asked for by :func:`add_feature_options` options, the
    front-end ones (``--sdc``, ``--pitch``, ``--rasta``, ``--vad-method``) included."""
    out = {dest: getattr(args, dest) for dest in ("sample_rate", "n_mfcc", "cmvn", "vad")
           if getattr(args, dest, None) is not None}
    out.update(feature_overrides(args))
    return out


def add_ivector_system_args(p) -> None:
    """``--system`` and the i-vector options of ``speaker-id``."""
    p.add_argument("--system", default="gmm-ubm", choices=["gmm-ubm", "ivector", "fusion"],
                   help="gmm-ubm (MAP models, LLR scoring), ivector (total variability + back-end "
                        "trained on the background and enrolled speakers) or fusion of both "
                        "(non-negative logistic regression trained on held-out trials cut from the "
                        "enrolment recordings; the i-vector system is dropped when it does not help "
                        "there; default gmm-ubm)")
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
    g.add_argument("--ivector-ubm-components", type=int, default=None, metavar="K",
                   help="a UBM of its own with K diagonal components for the i-vector system "
                        "(default: the GMM-UBM system's UBM)")
    g.add_argument("--enroll-ivectors", default=None, choices=["mean", "pooled"],
                   help="a speaker model: the i-vectors of its enrolment recordings (mean) or "
                        "one i-vector of their summed statistics (pooled; default: see "
                        "IVECTOR_DEFAULTS)")
    g.add_argument("--full-ubm", action="store_true", default=None,
                   help="statistics from a full-covariance UBM refined from the diagonal one")
    g.add_argument("--ivector-norm", default=None, choices=["none", "tnorm", "snorm"],
                   help="normalisation of the i-vector scores: T-norm over the other enrolled "
                        "models, S-norm with the background speakers as cohort (default: see "
                        "IVECTOR_DEFAULTS)")
    g.add_argument("--plda-on-enroll", action=argparse.BooleanOptionalAction, default=None,
                   help="train the back-end on the enrolment recordings' speaker labels too, "
                        "besides the background speakers (default on)")
    g.add_argument("--enroll-count", default=None, choices=["vectors", "recordings"],
                   help="what the PLDA score counts a pooled speaker model as: one i-vector "
                        "(vectors) or its number of enrolment recordings (recordings; default: see "
                        "IVECTOR_DEFAULTS)")
    g.add_argument("--ivector-uncertainty", dest="ivector_uncertainty",
                   action=argparse.BooleanOptionalAction, default=None,
                   help="PLDA scores that propagate each i-vector's posterior covariance through "
                        "the back-end (short recordings are uncertain; default: see "
                        "IVECTOR_DEFAULTS)")
    g.add_argument("--fusion-trials", default=None, choices=["enroll", "background"],
                   help="held-out trials the fusion is trained and checked on: cut from the "
                        "enrolment recordings (default) or among background speakers")
    g.add_argument("--no-fusion-check", dest="fusion_check", action="store_false", default=None,
                   help="keep the i-vector system in the fusion even when it does not improve the "
                        "held-out trials")
    g.add_argument("--ivector-background", nargs="+", default=None, metavar="MANIFEST",
                   help="extra background of the i-vector system: labelled manifests of other "
                        "speakers (e.g. other corpora, same --data-root); their recordings train "
                        "the TV matrix and are speaker classes of the back-end (each manifest's "
                        "labels its own speakers); never a test file")
    g.add_argument("--ivector-domain-norm", default=None, choices=["none", "mean", "whiten"],
                   help="with --ivector-background: centre (mean) or centre and whiten (whiten) the "
                        "back-end's i-vectors on the run's own background and enrolment i-vectors "
                        "instead of on all its training i-vectors (default none)")
    g.add_argument("--ivector-whiten-shrinkage", default=None, choices=["auto", "none", "ledoit-wolf", "oas"],
                   help="shrink the covariance the back-end whitens with, weight estimated from the "
                        "data (Ledoit-Wolf or OAS; with --ivector-domain-norm whiten, ledoit-wolf "
                        "shrinks the in-domain covariance towards that of all training i-vectors); "
                        "auto (default): the in-domain whitening picks none or ledoit-wolf by "
                        "held-out trials among the enrolment recordings, any other whitening none")
    g.add_argument("--ivector-tv-seeds", default=None, metavar="N",
                   help="train N i-vector systems, each its own total-variability matrix from another "
                        "random start (--seed, --seed + 1, ...), and average their scores; auto "
                        "(default): 3 when the TV matrix has fewer than 4,000 training recordings, "
                        "else 1")
    g.add_argument("--ivector-speed-perturb", nargs="+", type=float, default=None, metavar="SPEED",
                   help="speed-perturbed copies (e.g. 0.9 1.1) of every background recording "
                        "(background manifest: speakers not enrolled; --ivector-background) as "
                        "extra back-end speaker classes, one per speaker and speed")


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


def parse_auto_int(v: str, flag: str):
    """``v``: "auto" or an integer >= 1 (a usage error naming ``flag``)."""
    if v == "auto":
        return "auto"
    if not (isinstance(v, str) and v.isascii() and v.isdigit()):
        raise _usage_error(f"{flag} must be an integer >= 1 or auto, got {v!r}")
    k = int(v)
    check_number(k, flag, lo=1)
    return k


def parse_tv_seeds(v: str):
    """``--ivector-tv-seeds``: "auto" or an integer >= 1 (a usage error naming the flag)."""
    return parse_auto_int(v, "--ivector-tv-seeds")


def ivector_options_from_args(args) -> dict:
    """The ``ivector_options`` of :func:`~gmmspeech.speaker.pipeline.run_speaker_id` given on
    the command line (options not given are left to the defaults)."""
    out: dict = {}
    if getattr(args, "ivector_rank", None) is not None:
        out["rank"] = parse_auto_int(args.ivector_rank, "--ivector-rank")
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
    if getattr(args, "ivector_ubm_components", None) is not None:
        out["ubm_components"] = int(args.ivector_ubm_components)
    if getattr(args, "enroll_ivectors", None) is not None:
        out["enroll_ivectors"] = args.enroll_ivectors
    if getattr(args, "full_ubm", None):
        out["ubm_covariance"] = "full"
    for dest, key in (("ivector_norm", "norm"), ("plda_on_enroll", "plda_on_enroll"),
                      ("fusion_trials", "fusion_trials"), ("fusion_check", "fusion_check"),
                      ("ivector_uncertainty", "uncertainty"), ("enroll_count", "enroll_count"),
                      ("ivector_domain_norm", "domain_norm"),
                      ("ivector_whiten_shrinkage", "whiten_shrinkage")):
        if getattr(args, dest, None) is not None:
            out[key] = getattr(args, dest)
    if getattr(args, "ivector_tv_seeds", None) is not None:
        out["tv_seeds"] = parse_tv_seeds(args.ivector_tv_seeds)
    if getattr(args, "ivector_speed_perturb", None) is not None:
        out["speed_perturb"] = tuple(float(v) for v in args.ivector_speed_perturb)
    return out
