"""Sub-commands ``demo`` and ``recipe NAME``: argument parsing and printing only.

The recipes live in :mod:`gmmspeech.recipes`; each writes ``OUT/report.md`` and
``OUT/results.json``. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse

from gmmspeech.cli.common import PRESET_NAMES, add_parallel_args

# the registry is duplicated here as plain strings so that --help imports nothing
_HELP = {
    "demo": "speaker identification on a synthesised corpus (LibriSpeech with --data-root)",
    "speaker_id": "the LibriSpeech and FSDD speaker recipes (recipes/librispeech, recipes/fsdd) in one run",
    "score_files": "score every audio file of a folder or manifest against saved models (TSV)",
    "train_corpus": "batch UBM training over a manifest with the feature store, progress and resume",
    "em_tutorial": "the textbook EM: heights (1-D) and Old Faithful (2-D), traces, BIC/AIC, posteriors",
}


#: The step-by-step recipes of the source tree (``recipes/<name>/run.py``): the launcher runs
#: the script with the arguments given after the name.
SCRIPTS = {
    "librispeech": "GMM-UBM speaker recognition on LibriSpeech, step by step (recipes/librispeech/run.py)",
    "fsdd": "GMM-UBM speaker recognition on FSDD, step by step (recipes/fsdd/run.py)",
    "dspspeech20": "GMM-UBM speaker recognition on DSPSpeech-20, step by step (recipes/dspspeech20/run.py)",
    "speechocean762": "GMM-UBM speaker recognition on speechocean762, step by step "
                      "(recipes/speechocean762/run.py)",
    "commonvoice": "GMM-UBM speaker recognition on a Common Voice folder (MP3), step by step "
                   "(recipes/commonvoice/run.py)",
    "words": "isolated words with GMM-HMM word models (DSPSpeech-20, FSDD) vs per-class GMMs and hmmlearn, "
             "step by step (recipes/words/run.py)",
    "digits": "spoken digits with one GMM per digit on FSDD, leave-one-speaker-out, beside "
              "scikit-learn, step by step (recipes/digits/run.py)",
}


def _describe(name: str) -> str:
    """The description ``gmmspeech recipe NAME --help`` shows."""
    text = _HELP[name]
    return (f"{text[0].upper()}{text[1:]}. Writes OUT/report.md (tables and PNG figures) and "
            f"OUT/results.json; see recipes/{name}/README.md for the protocol and expected "
            "run times.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _common(p: argparse.ArgumentParser, name: str, *, data_root_help: str, parallel: bool = True) -> None:
    p.add_argument("--data-root", dest="data_root", default=None, metavar="R",
                   help=data_root_help)
    p.add_argument("--out", default=f"exp/{name}", metavar="DIR",
                   help=f"output folder for report.md, results.json and figures (default exp/{name})")
    p.add_argument("--quick", action="store_true",
                   help="a small, fast run (for tests and smoke checks); default is the full run")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print only the report location")
    if parallel:
        add_parallel_args(p)


def _add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speakers", dest="n_speakers", type=_positive_int, default=None,
                   help="synthetic speakers (default 24)")
    p.add_argument("--utterances", dest="n_utterances", type=_positive_int, default=None,
                   help="synthetic utterances per speaker (default 6: 3 enrolment, 3 test)")
    p.add_argument("--components", dest="n_components", type=_positive_int, default=None,
                   help="UBM components (default 64 synthetic, 128 LibriSpeech; 32 with --quick)")


def register(sub) -> None:
    """Add ``demo`` and ``recipe`` to the parser."""
    demo = sub.add_parser(
        "demo", help=_HELP["demo"],
        description="Run the whole GMM-UBM speaker-identification chain on a corpus synthesised "
                    "on the fly (no download): features, UBM, MAP adaptation, scoring and metrics. "
                    "With --data-root pointing at the shared datasets it runs the LibriSpeech "
                    "protocol (data_manifests/librispeech/*.csv) instead.",
    )
    _common(demo, "demo", data_root_help="shared datasets folder: run the LibriSpeech protocol "
                                         "instead of the synthetic corpus")
    demo.set_defaults(out="demo-out")
    _add_demo_args(demo)
    demo.set_defaults(func=_run, recipe="demo")

    rec = sub.add_parser(
        "recipe", help="run a recipe (librispeech, fsdd, dspspeech20, speechocean762, commonvoice, "
                       "speaker_id, digits, words, score_files, train_corpus, em_tutorial)",
        description="Run a recipe; each writes OUT/report.md (tables and PNG figures) and "
                    "OUT/results.json. `gmmspeech recipe NAME --help` lists a recipe's options.",
    )
    rsub = rec.add_subparsers(dest="recipe", metavar="NAME")
    rec.set_defaults(func=_list)

    p = rsub.add_parser("demo", help=_HELP["demo"], description=_describe("demo"))
    _common(p, "demo", data_root_help="shared datasets folder (LibriSpeech protocol)")
    _add_demo_args(p)
    p.set_defaults(func=_run)

    ds = "shared datasets folder holding fsdd/ and librispeech/ (e.g. ../shared/datasets)"
    p = rsub.add_parser("speaker_id", aliases=["speaker-id"], help=_HELP["speaker_id"],
                        description="Run the step-by-step speaker recipes recipes/librispeech/run.py "
                                    "and recipes/fsdd/run.py, into OUT/librispeech and OUT/fsdd (each "
                                    "writes its report.md and results.json; see their README.md).")
    p.add_argument("--data-root", dest="data_root", default=None, metavar="R",
                   help=ds + "; default ../shared/datasets from the repository root")
    p.add_argument("--out", default="exp/speaker_id", metavar="DIR",
                   help="output folder (default exp/speaker_id)")
    p.add_argument("--quick", action="store_true", help="small runs (under a minute each)")
    p.add_argument("--protocol", dest="protocols", action="append",
                   choices=["librispeech", "fsdd"], default=None,
                   help="corpus to run (repeatable; default both)")
    p.add_argument("--stage", type=int, default=None, metavar="N", help="start at stage N")
    p.add_argument("--stop-stage", type=int, default=None, metavar="N", help="stop after stage N")
    p.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                   help="worker processes (default 1)")
    p.set_defaults(func=_run_speaker_id, recipe="speaker_id")

    for name, text in SCRIPTS.items():
        p = rsub.add_parser(name, help=text, add_help=False,
                            description=f"{text}; every argument goes to the script (--help "
                                        "lists them).")
        p.add_argument("script_args", nargs=argparse.REMAINDER)
        p.set_defaults(func=_run_script, recipe=name)


    p = rsub.add_parser("score_files", aliases=["score-files"], help=_HELP["score_files"], description=_describe("score_files"))
    _common(p, "score_files", data_root_help="folder that relative manifest paths resolve against")
    p.add_argument("--models", required=True, metavar="DIR",
                   help="folder of saved models (*.npz, e.g. from gmmspeech enroll); a file "
                        "named ubm.npz there (or --ubm) is used as the background model")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="folder of audio files (searched recursively) or a manifest CSV")
    p.add_argument("--ubm", default=None, metavar="FILE",
                   help="background model: scores become log-likelihood ratios")
    p.add_argument("--tsv", default=None, metavar="FILE",
                   help="output table (default OUT/scores.tsv)")
    p.add_argument("--preset", default=None, choices=PRESET_NAMES,
                   help="feature preset (default: the configuration saved with the models, else speech)")
    p.add_argument("--max-files", dest="max_files", type=_positive_int, default=None,
                   help="score at most N files")
    p.set_defaults(func=_run, recipe="score_files")

    p = rsub.add_parser("train_corpus", aliases=["train-corpus"], help=_HELP["train_corpus"], description=_describe("train_corpus"))
    _common(p, "train_corpus", data_root_help="folder that relative manifest paths resolve against")
    p.add_argument("--manifest", default=None, metavar="CSV",
                   help="training manifest (default data_manifests/librispeech/background.csv)")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="feature store folder (default OUT/store); reused and completed on resume")
    p.add_argument("--components", dest="n_components", type=_positive_int, default=None,
                   help="UBM components (default 256)")
    p.add_argument("--covariance", dest="covariance_type", choices=["diag", "full"], default="diag")
    p.add_argument("--iterations", dest="max_iter", type=_positive_int, default=None,
                   help="EM iterations per split stage (default 10)")
    p.add_argument("--preset", default="speech", choices=PRESET_NAMES)
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start training from scratch even when a checkpoint exists")
    p.add_argument("--max-files", dest="max_files", type=_positive_int, default=None,
                   help="use at most N files of the manifest")
    p.set_defaults(func=_run, recipe="train_corpus")

    p = rsub.add_parser("em_tutorial", aliases=["em-tutorial"], help=_HELP["em_tutorial"], description=_describe("em_tutorial"))
    _common(p, "em_tutorial", data_root_help="shared datasets folder holding old-faithful/faithful.csv",
            parallel=False)
    p.add_argument("--epsilon", type=_positive_float, default=1e-4,
                   help="stop when no parameter moves by more than this (default 1e-4)")
    p.add_argument("--n-heights", dest="n_heights", type=_positive_int, default=None,
                   help="size of the heights sample (default 1000)")
    p.add_argument("--k-max", dest="k_max", type=_positive_int, default=None,
                   help="largest K for BIC/AIC (default 6)")
    p.add_argument("--faithful", default=None, metavar="CSV", help="path of faithful.csv")
    p.set_defaults(func=_run, recipe="em_tutorial")


_ALIASES = {"speaker-id": "speaker_id", "score-files": "score_files",
            "train-corpus": "train_corpus", "em-tutorial": "em_tutorial"}
_NOT_OPTIONS = {"command", "func", "recipe", "jobs", "quiet", "threads"}  # --threads: the process (cli.main)


def _list(args) -> int:
    print("recipes (gmmspeech recipe NAME --help):")
    for name, text in {**SCRIPTS, **_HELP}.items():
        print(f"  {name:<15} {text}")
    return 0 if getattr(args, "recipe", None) is None else 2


def _run(args) -> int:
    import inspect

    from gmmspeech import recipes

    name = _ALIASES.get(args.recipe, args.recipe)
    module = recipes.get(name)
    accepted = inspect.signature(module.run).parameters
    kwargs = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS and v is not None}
    if "jobs" in vars(args):
        kwargs["n_jobs"] = args.jobs
    kwargs["verbose"] = not args.quiet
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:  # a programming error between this parser and the recipe
        raise TypeError(f"recipe {name} does not accept {', '.join(unknown)}")
    module.run(**kwargs)
    if args.quiet:
        print(f"report: {args.out}/report.md")
    return 0


def _run_speaker_id(args) -> int:
    import os

    rc = 0
    for corpus in args.protocols or ["librispeech", "fsdd"]:
        argv = ["--out", os.path.join(args.out, corpus), "-j", str(args.jobs)]
        argv += ["--data-root", args.data_root] if args.data_root else []
        argv += ["--quick"] if args.quick else []
        argv += ["--stage", str(args.stage)] if args.stage is not None else []
        argv += ["--stop-stage", str(args.stop_stage)] if args.stop_stage is not None else []
        rc = max(rc, run_script(corpus, argv))
    return rc


def _run_script(args) -> int:
    return run_script(args.recipe, args.script_args)


def run_script(name: str, argv: list[str]) -> int:
    """Run ``recipes/<name>/run.py`` of the source tree with the arguments ``argv``."""
    import runpy
    import sys

    from gmmspeech.cli.steps import repo_root

    script = repo_root() / "recipes" / name / "run.py"
    if not script.is_file():
        print(f"gmmspeech recipe: error: {script} not found; the step-by-step recipes live in "
              "the gmmspeech source tree (recipes/<name>/run.py): run them from a checkout",
              file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        return int(exc.code or 0)
    finally:
        sys.argv = saved
    return 0
