"""The mechanics of a step-by-step recipe (Kaldi ``egs/*/run.sh`` style), for ``recipes/*/run.py``.

It runs ``gmmspeech`` commands, so it sits with the command line (floor 6 of
``docs/architecture.md``), above the report writer it uses.

A recipe is a short list of stages, each a call of a public ``gmmspeech`` command; this
module gives it the common options (``--stage N``, ``--stop-stage N``, ``--quick``,
``--data-root R``, ``--out DIR``, ``-j N``), echoes every command as a shell line (also
appended to ``OUT/commands.sh``, so a run can be replayed or edited by hand), skips a step
whose output already exists (a killed run, re-run, redoes nothing finished: every output is
written under a ``.partial`` name and renamed when complete; an interrupted UBM resumes
from its checkpoint), and rewrites ``OUT/report.md`` and ``OUT/results.json`` after every
system. Example (see ``recipes/fsdd/run.py``)::

    r = Recipe("fsdd", "GMM-UBM speaker recognition on FSDD", parse_args("fsdd"))
    if r.stage(0, "data"):
        ...write r.data / "enroll.csv" ...
    with r.system("gmm-ubm") as s:
        s.gmmspeech("train-ubm", bg, "--features-dir", r.feats, "--out", s.path("ubm.npz"))
        ...
    r.finish()

No maths here: the commands do the work.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["RecipeError", "Recipe", "System", "recipe_parser", "parse_args", "repo_root",
           "partial_name", "write_manifest_rows", "limit_rows", "write_protocol",
           "protocol_manifests", "require_corpus", "read_relative", "write_feature_config", "speaker_systems",
           "ubm_manifests"]


class RecipeError(SystemExit):
    """A step of a recipe failed: the script stops with this message (naming the command and
    its exit code; the command printed its own error before) and exit status 1."""

    def __init__(self, message: str):
        super().__init__(message)


def repo_root() -> Path:
    """The source tree holding ``recipes/`` and ``data_manifests/`` (this package's parent)."""
    return Path(__file__).resolve().parents[2]


def recipe_parser(name: str, description: str = "") -> argparse.ArgumentParser:
    """The options every recipe takes."""
    p = argparse.ArgumentParser(
        prog=f"recipes/{name}/run.py", description=description,
        epilog=f"Writes OUT/report.md and OUT/results.json (rewritten as every system finishes) "
               f"and OUT/commands.sh (the commands run); see recipes/{name}/README.md for the "
               "stages, the protocol and measured run times.")
    p.add_argument("--stage", type=int, default=0, metavar="N",
                   help="start at stage N (earlier stages are not run; their outputs must exist)")
    p.add_argument("--stop-stage", type=int, default=None, metavar="N",
                   help="stop after stage N (default: run to the end)")
    p.add_argument("--quick", action="store_true",
                   help="a small run (a few speakers and files, small models) in under a minute")
    p.add_argument("--data-root", default=None, metavar="R",
                   help="the shared datasets folder (default ../shared/datasets from the "
                        "repository root)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output folder (default exp/{name}, or exp/{name}-quick with --quick)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes for features, EM, enrolment and scoring (default 1)")
    return p


def parse_args(name: str, description: str = "", argv=None,
               parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse the recipe options (defaults filled in: ``data_root``, ``out``)."""
    p = parser or recipe_parser(name, description)
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"-j/--jobs must be >= 1, got {args.jobs}")
    if args.data_root is None:
        args.data_root = os.fspath(repo_root().parent / "shared" / "datasets")
    if args.out is None:
        args.out = os.fspath(Path("exp") / (name + ("-quick" if args.quick else "")))
    return args


def partial_name(path: Path) -> Path:
    """``ubm.npz`` -> ``ubm.partial.npz``; ``models`` -> ``models.partial``."""
    path = Path(path)
    if path.suffix in _FILE_SUFFIXES:
        return path.with_name(f"{path.stem}.partial{path.suffix}")
    return path.with_name(path.name + ".partial")


_FILE_SUFFIXES = {".npz", ".tsv", ".csv", ".json", ".txt", ".npy"}


def write_manifest_rows(path, rows) -> Path:
    """Write manifest rows (:class:`~gmmspeech.corpus.manifest.Row` or dicts with ``id``,
    ``path``, ``label`` and optional ``start``/``end``) atomically."""
    from gmmspeech.corpus.manifest import Row, write_manifest

    rows = [r if isinstance(r, Row) else Row(str(r["id"]), str(r["path"]), str(r.get("label", "")),
                                             _num(r.get("start")), _num(r.get("end")))
            for r in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(rows, path)
    return path


def _num(v):
    return None if v in (None, "") else float(v)


def limit_rows(rows, max_files: int | None):
    """At most ``max_files`` rows, taken round-robin over labels (every label keeps some),
    in their original order."""
    rows = list(rows)
    if max_files is None or len(rows) <= max_files:
        return rows
    by_label: dict[str, list] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    keep: set[int] = set()
    i = 0
    while len(keep) < max_files:
        added = False
        for lst in by_label.values():
            if i < len(lst) and len(keep) < max_files:
                keep.add(id(lst[i]))
                added = True
        if not added:
            break
        i += 1
    return [r for r in rows if id(r) in keep]


#: ``--quick`` sizes of a speaker protocol: enrolled speakers, enrolment and test files per
#: speaker, background files.
QUICK = {"speakers": 3, "enroll": 4, "test": 2, "background": 12}


def write_protocol(recipe: Recipe, background, enroll, test, *, quick=None) -> dict[str, Path]:
    """Write ``data/{background,enroll,test}.csv`` and ``data/all.csv`` (every distinct file,
    for the feature stage); with ``--quick`` only :data:`QUICK` speakers and files. Returns
    the paths by role."""
    q = dict(QUICK, **(quick or {}))
    background, enroll, test = list(background), list(enroll), list(test)
    if recipe.quick:
        speakers = list(dict.fromkeys(r.label for r in enroll))[: q["speakers"]]
        enroll = [r for s in speakers for r in [x for x in enroll if x.label == s][: q["enroll"]]]
        test = [r for s in speakers for r in [x for x in test if x.label == s][: q["test"]]]
        background = limit_rows(background, q["background"])
    paths = {}
    for role, rows in (("background", background), ("enroll", enroll), ("test", test)):
        paths[role] = write_manifest_rows(recipe.data / f"{role}.csv", rows)
    seen: dict[str, Any] = {}
    for r in background + enroll + test:
        seen.setdefault(r.id, r)
    paths["all"] = write_manifest_rows(recipe.data / "all.csv", list(seen.values()))
    recipe.results["data"] = {role: len(rows) for role, rows in
                              (("background", background), ("enroll", enroll), ("test", test))}
    recipe.results["data"]["speakers"] = len({r.label for r in enroll})
    recipe.say(f"   background {len(background)} files, enrolment {len(enroll)} files of "
               f"{recipe.results['data']['speakers']} speakers, test {len(test)} files")
    return paths


def require_corpus(corpus: str, data_root, script: str | None = None) -> None:
    """Stop ``recipes/<script>/run.py`` (default: ``corpus``) with a message naming the folder and
    ``--data-root`` when ``data_root`` has no ``corpus/`` folder."""
    if not (Path(data_root) / corpus).is_dir():
        raise RecipeError(f"recipes/{script or corpus}/run.py: error: {Path(data_root) / corpus} not "
                          f"found: --data-root must be the folder holding {corpus}/ (the shared datasets)")


def protocol_manifests(corpus: str, split: str = "test", *, data_root) -> tuple[list, list, list]:
    """The rows of ``data_manifests/<corpus>/<split>/{background,enroll,test}.csv`` (paths
    relative to ``data_root``, as in the files); a missing corpus folder under
    ``data_root`` stops the recipe with a message naming it and ``--data-root``."""
    require_corpus(corpus, data_root)
    out = [read_relative(repo_root() / "data_manifests" / corpus / split / f"{role}.csv", data_root)
           for role in ("background", "enroll", "test")]
    return out[0], out[1], out[2]


def read_relative(manifest, data_root) -> list:
    """The rows of ``manifest`` with paths relative to ``data_root`` (as a recipe writes
    them, used with ``--data-root``)."""
    from gmmspeech.corpus.manifest import Row, read_manifest

    root = os.path.abspath(data_root)
    return [Row(r.id, os.path.relpath(r.path, root), r.label, r.start, r.end, r.line, r.extra)
            for r in read_manifest(manifest, data_root=root)]


def speaker_systems(quick: bool) -> dict[str, tuple[list[str], str]]:
    """The GMM-UBM systems of the speaker recipes: name -> (``train-ubm`` options beyond the
    library defaults, description). The defaults (``diag-<K>``, K from
    :data:`~gmmspeech.speaker.defaults.SPEAKER_DEFAULTS`) and a full-covariance system with
    32 components; ``quick``: one small system, the defaults with 8 components and 3 EM
    iterations (a smoke test of every step in well under a minute)."""
    from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS

    if quick:
        return {"diag-8": (["-k", "8", "--iterations", "3"],
                           "The library defaults (diagonal covariance) with 8 components and 3 "
                           "EM iterations (quick run).")}
    return {
        f"diag-{SPEAKER_DEFAULTS['n_components']}": (
            [], "The library defaults (diagonal covariance)."),
        "full-32": (["--covariance", "full", "-k", "32"],
                    "Full covariance with fewer components (a full Gaussian has about D/2 "
                    "times the parameters of a diagonal one)."),
    }


def ubm_manifests(recipe: Recipe) -> list[Path]:
    """What the UBM trains on: the background manifest, and the enrolment one when the library
    defaults say so (``SPEAKER_DEFAULTS["ubm_on_enroll"]``; never the test data)."""
    from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS

    return [recipe.data / "background.csv"] + (
        [recipe.data / "enroll.csv"] if SPEAKER_DEFAULTS["ubm_on_enroll"] else [])


def write_feature_config(recipe: Recipe, config=None) -> Path:
    """``conf/features.json``: the feature configuration (default: the speaker defaults of
    :func:`gmmspeech.speaker.defaults.speaker_feature_config`), for ``gmmspeech features
    --config``."""
    from gmmspeech.atomic import atomic_write_text
    from gmmspeech.speaker.defaults import speaker_feature_config

    cfg = config if config is not None else speaker_feature_config()
    path = recipe.out / "conf" / "features.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def _show(arg: Any, cwd: Path) -> str:
    s = os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg)
    if os.path.isabs(s):
        try:
            rel = os.path.relpath(s, cwd)
            if not rel.startswith(".." + os.sep + ".." + os.sep):
                s = rel
        except ValueError:
            pass
    return shlex.quote(s)


class Recipe:
    """One run of a recipe: options, output folders, the commands log and the report.

    Attributes
    ----------
    out : Path
        The output folder; ``out/data`` (manifests), ``out/feats`` (the feature store),
        ``out/exp/<system>`` (models, scores, evaluations).
    results : dict
        What ``results.json`` holds: ``recipe``, ``quick``, ``systems`` (per system: the
        evaluation's metrics, ``seconds``, ``settings``), plus what the recipe adds.
    """

    def __init__(self, name: str, title: str, args: argparse.Namespace, *, intro: str = "",
                 credits: tuple[str, ...] = (), body: Callable[[Any], None] | None = None):
        self.name = name
        self.title = title
        self.args = args
        self.quick = bool(args.quick)
        self.jobs = int(args.jobs)
        self.data_root = Path(args.data_root).resolve()
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = self.out / "data"
        self.feats = self.out / "feats"
        self.intro = intro
        self.credits = list(credits)
        self.body = body
        self._cwd = Path.cwd()
        self._t0 = time.perf_counter()
        self.results: dict[str, Any] = {"recipe": name, "quick": self.quick, "systems": {},
                                        "step_seconds": {}}
        prev = self.out / "results.json"
        if prev.is_file():  # keep what finished systems measured (their steps are skipped now)
            try:
                old = json.loads(prev.read_text())
            except (OSError, ValueError):
                old = {}
            if isinstance(old, dict) and old.get("quick") == self.quick:
                self.results["systems"] = dict(old.get("systems") or {})
                self.results["step_seconds"] = dict(old.get("step_seconds") or {})
        self.sections: list[tuple[str, str]] = []  # (heading, Markdown) added by the recipe
        self._log = self.out / "commands.sh"
        with open(self._log, "a", encoding="utf-8") as fh:
            fh.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} recipes/{name}/run.py "
                     + " ".join(shlex.quote(a) for a in sys.argv[1:]) + "\n")

    # ------------------------------------------------------------------ stages
    def stage(self, n: int, what: str) -> bool:
        """True when stage ``n`` is to run (``--stage`` <= n <= ``--stop-stage``); says so."""
        stop = self.args.stop_stage
        run = self.args.stage <= n and (stop is None or n <= stop)
        if run:
            self.say(f"== stage {n}: {what}")
        return run

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def gmmspeech(self, *argv: Any, out: Any = None, ok=(0, 1)) -> bool:
        """Run ``gmmspeech ARGV...`` (in this process) unless ``out`` already exists.

        ``out`` is the step's output (a file or folder, also given in ``argv``): the command
        writes it under :func:`partial_name`, renamed when the command succeeds, so an
        existing ``out`` is always complete. An interrupted ``train-ubm`` resumes from its
        checkpoint. Exit code 1 (some bad files, reported) is accepted; others raise
        :class:`RecipeError`. Returns False when the step was skipped.
        """
        from gmmspeech.cli import main

        args = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
        final = tmp = None
        if out is not None:
            final = Path(out)
            if final.exists():
                self.say(f"   (done: {_show(final, self._cwd)})")
                return False
            tmp = partial_name(final)
            args = [os.fspath(tmp) if a == os.fspath(final) else a for a in args]
            if args[0] == "train-ubm" and Path(os.fspath(tmp) + ".ckpt.npz").exists():
                args.append("--resume")
            elif tmp.is_dir():
                shutil.rmtree(tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
        if self.jobs > 1 and args[0] in _PARALLEL:
            args += ["-j", str(self.jobs)]
        line = "gmmspeech " + " ".join(_show(a, self._cwd) for a in args)
        self.say(f"$ {line}")
        with open(self._log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        sys.stdout.flush()
        t0 = time.perf_counter()
        rc = main(args)
        if rc not in ok:
            raise RecipeError(f"recipes/{self.name}/run.py: step failed (exit code {rc}): {line}")
        if final is not None:
            os.replace(tmp, final)
            self._timed(final, time.perf_counter() - t0)
        return True

    def produce(self, out: Any, write: Callable[[Path], Any], what: str) -> bool:
        """A step done by the script itself (e.g. a reference implementation), with the
        same rules as :meth:`gmmspeech`: skipped when ``out`` exists; otherwise
        ``write(tmp)`` fills ``tmp`` (the :func:`partial_name` of ``out``, a folder is created
        for it when ``out`` has no file suffix), renamed to ``out`` when it returns. ``what``
        is echoed (and logged as a comment in ``commands.sh``). Returns False when skipped."""
        final = Path(out)
        if final.exists():
            self.say(f"   (done: {_show(final, self._cwd)})")
            return False
        tmp = partial_name(final)
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
        if final.suffix not in _FILE_SUFFIXES:
            tmp.mkdir(parents=True)
        else:
            tmp.parent.mkdir(parents=True, exist_ok=True)
        line = f"# ({self.name}/run.py) {what} -> {_show(final, self._cwd)}"
        self.say(line)
        with open(self._log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        t0 = time.perf_counter()
        write(tmp)
        os.replace(tmp, final)
        self._timed(final, time.perf_counter() - t0)
        return True

    def _timed(self, out: Path, seconds: float) -> None:
        self.results["step_seconds"][os.path.relpath(out, self.out)] = round(seconds, 2)

    def seconds_of(self, out: Any) -> float | None:
        """Measured seconds of the step that wrote ``out`` (in this run or an earlier one of
        the same ``OUT``), or None when unknown."""
        return self.results["step_seconds"].get(os.path.relpath(Path(out), self.out))

    @contextmanager
    def system(self, name: str, *, description: str = "",
               settings: dict | None = None) -> Iterator[System]:
        """A system: its steps run inside; afterwards its evaluation enters the results and
        the report and ``results.json`` are rewritten (so a killed run loses nothing that
        finished)."""
        s = System(self, name, description, settings or {})
        t0 = time.perf_counter()
        yield s
        s.record(time.perf_counter() - t0)
        self.write_report()

    # ------------------------------------------------------------------ report
    def write_report(self) -> Path:
        """Write ``report.md`` and ``results.json`` from the systems finished so far."""
        from gmmspeech.recipes._speaker import METRICS_EXPLAINED
        from gmmspeech.recipes.report import Report

        rep = Report(self.out, self.title + (" (quick run)" if self.quick else ""))
        if self.intro:
            rep.text(self.intro)
        rep.text("Every step is a `gmmspeech` command; the commands of this run are in "
                 "[`commands.sh`](commands.sh).")
        systems = self.results["systems"]
        if self.body is not None:
            self.body(rep)
        elif systems:
            rows = []
            for name, m in systems.items():
                rows.append([name, m.get("n_speakers"), m.get("n_tests"), _pct(m.get("accuracy")),
                             _pct(m.get("eer")), _num2(m.get("min_dcf_sre08")),
                             _num2(m.get("min_dcf_sre10")), round(float(m.get("seconds", 0)), 1)])
            rep.table(["system", "models", "tests", "ID accuracy (%)", "EER (%)", "minDCF SRE08",
                       "minDCF SRE10", "seconds"], rows, floatfmt=".4g")
            rep.text(METRICS_EXPLAINED)
            for name, m in systems.items():
                rep.heading(name, 3)
                if m.get("description"):
                    rep.text(m["description"])
                notes = m.get("notes") or []
                if notes:
                    rep.bullets(notes)
                for fig, cap in (("det.png", "DET curve (miss against false-alarm rate on "
                                  "normal-deviate axes); lower-left is better"),
                                 ("scores.png", "target and non-target score distributions")):
                    rel = m.get("eval_dir")
                    if rel and (self.out / rel / fig).is_file():
                        rep.add_image(f"{rel}/{fig}", f"{name}: {cap}.")
        else:
            rep.text("No system has finished yet.")
        for heading, md in self.sections:
            rep.heading(heading)
            rep.text(md)
        for c in self.credits:
            rep.credit(c)
        self.results["seconds_this_run"] = round(time.perf_counter() - self._t0, 1)
        path = rep.write(self.results)
        return path

    def finish(self) -> Path:
        """Write the report a last time and print where it is."""
        path = self.write_report()
        self.say(f"report: {_show(path, self._cwd)}")
        return path


#: Commands that take -j/--jobs.
_PARALLEL = {"features", "train-ubm", "enroll", "score", "speaker-id", "train-classes", "classify",
             "train-ivector", "extract-ivectors"}


def _pct(v):
    return None if v is None else 100.0 * float(v)


def _num2(v):
    return None if v is None else float(v)


class System:
    """The steps of one system, in ``OUT/exp/<name>/``; see :meth:`Recipe.system`."""

    def __init__(self, recipe: Recipe, name: str, description: str, settings: dict):
        self.recipe = recipe
        self.name = name
        self.description = description
        self.settings = settings
        self.dir = recipe.out / "exp" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.eval_dir: Path | None = None
        self.raw_dir: Path | None = None
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def gmmspeech(self, *argv: Any, out: Any = None, ok=(0, 1)) -> bool:
        return self.recipe.gmmspeech(*argv, out=out, ok=ok)

    def evaluated(self, eval_dir, *, raw=None) -> None:
        """The ``gmmspeech evaluate`` folder whose ``results.json`` is this system's result
        (``raw``: the evaluation of the same system's unnormalised scores, reported beside)."""
        self.eval_dir = Path(eval_dir)
        self.raw_dir = None if raw is None else Path(raw)

    def record(self, seconds: float) -> None:
        systems = self.recipe.results["systems"]
        if self.eval_dir is None or not (self.eval_dir / "results.json").is_file():
            return
        res = json.loads((self.eval_dir / "results.json").read_text())
        keep = {k: res.get(k) for k in ("accuracy", "eer", "min_dcf_sre08", "min_dcf_sre10",
                                        "n_tests", "n_speakers", "n_target_trials",
                                        "n_nontarget_trials") if k in res}
        old = systems.get(self.name) or {}
        ran = any(self.dir.rglob("*")) and seconds > 1.0
        keep["seconds"] = round(seconds, 1) if ran or "seconds" not in old else old["seconds"]
        keep["eval_dir"] = os.path.relpath(self.eval_dir, self.recipe.out)
        keep["description"] = self.description
        keep["settings"] = self.settings
        ubm = self.dir / "ubm.npz"
        if ubm.is_file():
            from gmmspeech.mixture import io as mio
            from gmmspeech.recipes._speaker import convergence_note

            hist = [float(v) for v in getattr(mio.load(ubm), "history_", [])]
            keep["ubm_history"] = hist
            self.notes.append(f"UBM: {convergence_note(hist)}.")
        if self.raw_dir is not None and (self.raw_dir / "results.json").is_file():
            raw = json.loads((self.raw_dir / "results.json").read_text())
            keep["raw"] = {k: raw.get(k) for k in ("accuracy", "eer", "min_dcf_sre08",
                                                   "min_dcf_sre10")}
            self.notes.append(f"Without score normalisation (raw scores): ID accuracy "
                              f"{_fmt_pct(raw.get('accuracy'))}, EER {_fmt_pct(raw.get('eer'))}, "
                              f"minDCF SRE08 {_fmt_num(raw.get('min_dcf_sre08'))}.")
        keep["notes"] = self.notes
        keep.update(self.extra)
        systems[self.name] = keep
        m = keep
        self.recipe.say(f"== {self.name}: ID accuracy {_fmt_pct(m.get('accuracy'))}, EER "
                        f"{_fmt_pct(m.get('eer'))}, {m['seconds']} s")


def _fmt_num(v) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def _fmt_pct(v) -> str:
    return "n/a" if v is None else f"{100 * float(v):.2f} %"
