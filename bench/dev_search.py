"""Choose the speaker-recognition defaults on the development splits of every shared corpus.

Usage (from the repository root)::

    .venv/bin/python bench/dev_search.py --data-root ../shared/datasets --work exp/dev_search
    .venv/bin/python bench/dev_search.py --data-root ../shared/datasets --work exp/dev_search --report

The protocol is ``data_manifests/<corpus>/{dev,test}/{background,enroll,test}.csv`` for
LibriSpeech, FSDD, DSPSpeech-20 and speechocean762 (see ``data_manifests/README.md``).

**Search** (default): a coordinate search over the settings of
:func:`gmmspeech.speaker.pipeline.run_speaker_id` (:data:`DIMENSIONS`, in that order:
feature normalisation, VAD, cepstra, UBM size, UBM data, relevance factor, adapted
parameters, scoring mode, score normalisation and its cohort), evaluated on the **dev
splits only**. From the current setting every value of one dimension is tried with the
others fixed; the value maximising the objective is kept; passes repeat until a pass
changes nothing (at most ``--passes``). Objective: the mean over corpora of
(identification accuracy % - EER %). Ties keep the earlier (cheaper) value. Every
evaluation is recorded in ``WORK/search.json``; the chosen setting is the candidate for
:data:`gmmspeech.speaker.defaults.SPEAKER_DEFAULTS`. The per-corpus best setting is the
evaluated setting with the highest dev accuracy on that corpus (ties: lower EER).

CPU economy: the audio is analysed once per corpus and split into a feature store of 30
static cepstra (c0 = log-energy, no deltas, VAD or CMVN); every searched feature setting
(cepstra count, VAD, CMVN) is derived from it in memory with
:func:`gmmspeech.features.extract.postprocess` (checked against ``extract`` on a few
files at start-up). UBMs are cached per (features, size, data) in ``WORK/ubm`` and every
other dimension reuses them; scores are cached per (UBM, MAP, scoring mode) and the nine
normalisations reuse them. The evaluation composes the library functions
``run_speaker_id`` uses (enrolment, scoring, cohort models, impostor segments,
``normalise_scores``), with the UBM trained on in-memory arrays instead of stores (the
same data; the reservoir draw can differ), so the ``--report`` step re-runs the chosen
settings through ``run_speaker_id`` itself.

**Report** (``--report``): evaluates the current defaults (``SPEAKER_DEFAULTS``), each
corpus's best dev setting and the old defaults (``classic``) on the test **and** dev
splits, and prints the README table (accuracy / EER / minDCF SRE08); ``--cli`` also runs
``gmmspeech speaker-id`` with no option but the manifests and paths on every split, as
a user would (features cached with ``--features-dir``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CORPORA = ("librispeech", "fsdd", "dspspeech20", "speechocean762")
ROLES = ("background", "enroll", "test")

#: The searched dimensions, in coordinate order, with their candidate values. The
#: dimensions that reuse the UBM (normalisation, MAP, scoring) come first, those that
#: retrain it (features, UBM size and data) after, so a search cut short by the CPU
#: budget has still searched the cheap dimensions on every corpus.
DIMENSIONS: list[tuple[str, list]] = [
    ("norm", ["none", "znorm", "tnorm", "snorm", "asnorm"]),
    ("norm_cohort", ["background", "enrolled", "both"]),
    ("relevance_factor", [1.0, 2.0, 4.0, 8.0, 16.0]),
    ("adapt", ["m", "mw", "mwv"]),
    ("score_mode", ["exact", "topc", "linear"]),
    ("cmvn", ["none", "utterance", "sliding", "warping"]),
    ("n_components", [64, 128, 256]),
    ("ubm_on_enroll", [False, True]),
    ("vad", [False, True]),
    ("n_mfcc", [13, 20, 24, 30]),
]

#: Starting point of the search: the settings first tuned on LibriSpeech.
START = dict(cmvn="none", vad=False, n_mfcc=24, n_components=128, ubm_on_enroll=True,
             relevance_factor=4.0, adapt="m", score_mode="exact", norm="tnorm",
             norm_cohort="background")

FEATURE_KEYS = ("cmvn", "vad", "n_mfcc")


def feature_config_of(setting: dict):
    from gmmspeech.speaker.defaults import speaker_feature_config

    return speaker_feature_config("speech", {k: setting[k] for k in FEATURE_KEYS})


def _raw_config():
    return feature_config_of(dict(cmvn="none", vad=False, n_mfcc=30)).replace(deltas=0)


def derive(raw: np.ndarray, cfg) -> np.ndarray:
    """The features of ``cfg`` from the raw static cepstra of :data:`RAW_CONFIG`.

    The DCT-II coefficients, the lifter and c0 (the frame log-energy) of the first n
    cepstra do not depend on how many are computed, and deltas, VAD and CMVN are
    :func:`gmmspeech.features.extract.postprocess` applied to them, so one extraction
    serves every cepstra count, VAD and normalisation (checked against ``extract``).
    """
    from gmmspeech.features.extract import postprocess

    raw = np.asarray(raw, dtype=np.float64)
    return postprocess(raw[:, : cfg.n_mfcc], raw[:, 0], config=cfg)


def to_kwargs(setting: dict) -> dict:
    """A search setting as keyword arguments of ``run_speaker_id``."""
    return dict(
        preset="speech",
        feature_overrides={k: setting[k] for k in FEATURE_KEYS},
        n_components=int(setting["n_components"]),
        ubm_on_enroll=bool(setting["ubm_on_enroll"]),
        relevance_factor=float(setting["relevance_factor"]),
        adapt=setting["adapt"],
        top_c=5 if setting["score_mode"] == "topc" else None,
        score_mode=setting["score_mode"],
        norm=None if setting["norm"] == "none" else setting["norm"],
        norm_cohort=setting["norm_cohort"],
    )


def from_kwargs(kw: dict) -> dict:
    """The search setting of ``run_speaker_id`` keyword arguments (defaults filled in)."""
    from gmmspeech.speaker.defaults import speaker_feature_config

    cfg = speaker_feature_config(kw.get("preset"), kw.get("feature_overrides"))
    mode = kw.get("score_mode") or ("topc" if kw.get("top_c") else "exact")
    return dict(cmvn=cfg.cmvn, vad=cfg.vad, n_mfcc=cfg.n_mfcc, n_components=int(kw["n_components"]),
                ubm_on_enroll=bool(kw["ubm_on_enroll"]), relevance_factor=float(kw["relevance_factor"]),
                adapt=kw["adapt"], score_mode=mode, norm=kw.get("norm") or "none",
                norm_cohort=kw.get("norm_cohort", "background"))


def key_of(setting: dict) -> str:
    return json.dumps({k: setting[k] for k, _ in DIMENSIONS}, sort_keys=True)


def short(setting: dict, base: dict | None = None) -> str:
    """The setting as a compact string (only what differs from ``base`` when given)."""
    names = {"cmvn": "cmvn", "vad": "vad", "n_mfcc": "cep", "n_components": "K",
             "ubm_on_enroll": "ubm+enrol", "relevance_factor": "r", "adapt": "adapt",
             "score_mode": "score", "norm": "norm", "norm_cohort": "cohort"}
    parts = []
    for k, _ in DIMENSIONS:
        if base is not None and base.get(k) == setting[k]:
            continue
        v = setting[k]
        parts.append(f"{names[k]}={v:g}" if isinstance(v, float) else f"{names[k]}={v}")
    return ", ".join(parts) or "(same)"


RAW_CONFIG = None  # set in main() (imports gmmspeech lazily)


class Evaluator:
    """Dev/test evaluation of settings with feature, UBM and score caches."""

    def __init__(self, data_root: Path, work: Path, n_jobs: int = 2, verbose: bool = True):
        self.data_root = Path(data_root)
        self.work = Path(work)
        self.n_jobs = n_jobs
        self.verbose = verbose
        self._raw: dict = {}
        self._arrays: dict = {}
        self._ubms: dict = {}
        self._scores: dict = {}

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def manifests(self, corpus: str, split: str) -> dict[str, Path]:
        return {role: ROOT / "data_manifests" / corpus / split / f"{role}.csv" for role in ROLES}

    def features_dir(self, corpus: str, split: str) -> Path:
        return self.work / "features" / corpus / split

    def raw(self, corpus: str, split: str):
        """Rows and static-cepstra store (30 cepstra, c0 = log-energy, no deltas/VAD/CMVN)."""
        from gmmspeech.speaker.pipeline import build_features

        key = (corpus, split)
        if key not in self._raw:
            fdir = self.features_dir(corpus, split) / RAW_CONFIG.config_hash()
            stores, rows = {}, {}
            t0 = time.perf_counter()
            for role, man in self.manifests(corpus, split).items():
                st, good, bad = build_features(man, fdir / role, config=RAW_CONFIG, data_root=self.data_root,
                                               n_jobs=self.n_jobs, progress=False, role=role)
                if bad:
                    raise RuntimeError(f"{corpus}/{split}/{role}: {len(bad)} bad files, e.g. {bad[0]}")
                stores[role], rows[role] = st, good
            self.log(f"raw cepstra {corpus}/{split}: {time.perf_counter() - t0:.1f} s")
            self._raw[key] = (stores, rows)
            self.check_derivation(corpus, split)
        return self._raw[key]

    def check_derivation(self, corpus: str, split: str) -> None:
        """Derived features equal ``features.extract`` with the full configuration."""
        from gmmspeech.features.extract import extract

        stores, rows = self._raw[(corpus, split)]
        for setting in (START, dict(START, cmvn="utterance", vad=True, n_mfcc=13),
                        dict(START, cmvn="sliding", n_mfcc=20)):
            cfg = feature_config_of(setting)
            for r in rows["test"][:2]:
                ref = extract(r.path, config=cfg, start=r.start, end=r.end)
                got = derive(np.asarray(stores["test"].load(r.id)), cfg)
                err = float(np.max(np.abs(ref - got))) / max(float(np.max(np.abs(ref))), 1e-9)
                if ref.shape != got.shape or err > 1e-4:
                    raise RuntimeError(f"derived features differ from extract() for {r.id}: "
                                       f"{ref.shape} vs {got.shape}, relative error {err:.2e}")

    def arrays(self, corpus: str, split: str, setting: dict):
        """role -> (arrays, rows) of the setting's feature configuration (LRU cached)."""
        cfg = feature_config_of(setting)
        key = (corpus, split, cfg.config_hash())
        if key in self._arrays:
            self._arrays[key] = self._arrays.pop(key)
            return self._arrays[key]
        stores, rows = self.raw(corpus, split)
        out = {role: ([derive(np.asarray(stores[role].load(r.id)), cfg) for r in rows[role]], rows[role])
               for role in ROLES}
        self._arrays[key] = out
        while len(self._arrays) > 8:
            self._arrays.pop(next(iter(self._arrays)))
        return out

    def ubm(self, corpus: str, split: str, setting: dict):
        from gmmspeech.mixture import io as mio
        from gmmspeech.speaker.ubm import train_ubm

        cfg = feature_config_of(setting)
        key = (corpus, split, cfg.config_hash(), int(setting["n_components"]), bool(setting["ubm_on_enroll"]))
        if key not in self._ubms:
            path = self.work / "ubm" / f"{corpus}-{split}-{key[2]}-K{key[3]}-{'bge' if key[4] else 'bg'}.npz"
            if path.is_file():
                ubm = mio.load(path)
            else:
                arr = self.arrays(corpus, split, setting)
                data = list(arr["background"][0]) + (list(arr["enroll"][0]) if key[4] else [])
                t0 = time.perf_counter()
                ubm = train_ubm(data, key[3], "diag", max_iter=10, init="split", random_state=0,
                                n_jobs=self.n_jobs)
                path.parent.mkdir(parents=True, exist_ok=True)
                mio.save(ubm, path, metadata={"role": "ubm", "feature_config": cfg.to_dict()})
                self.log(f"UBM {path.name}: {time.perf_counter() - t0:.1f} s")
            self._ubms[key] = ubm
        return self._ubms[key]

    def score_parts(self, corpus: str, split: str, setting: dict):
        """Raw, background-cohort and impostor scores (cached per UBM, MAP and scoring mode)."""
        from gmmspeech.speaker.map import enroll
        from gmmspeech.speaker.pipeline import _segments
        from gmmspeech.speaker.scoring import score

        cfg = feature_config_of(setting)
        key = (corpus, split, cfg.config_hash(), int(setting["n_components"]), bool(setting["ubm_on_enroll"]),
               float(setting["relevance_factor"]), setting["adapt"], setting["score_mode"])
        if key not in self._scores:
            ubm = self.ubm(corpus, split, setting)
            arr = self.arrays(corpus, split, setting)
            mode = setting["score_mode"]
            kw = dict(top_c=5 if mode == "topc" else None, mode=mode, n_jobs=self.n_jobs)
            map_kw = dict(relevance_factor=float(setting["relevance_factor"]), adapt=setting["adapt"],
                          n_jobs=self.n_jobs)

            def by_label(role):
                out: dict = {}
                for x, r in zip(*arr[role]):
                    out.setdefault(str(r.label), []).append(x)
                return out

            models = enroll(ubm, by_label("enroll"), **map_kw)
            labels = list(models)
            utts = arr["test"][0]
            raw = score([models[m] for m in labels], ubm, utts, **kw)
            cohort = enroll(ubm, by_label("background"), **map_kw)
            coh_labels = list(cohort)
            coh = score([cohort[c] for c in coh_labels], ubm, utts, **kw)
            segs, imp_labels = _segments(arr["background"][0], 300, 400,
                                         [str(r.label) for r in arr["background"][1]])
            imp = score([models[m] for m in labels], ubm, segs, **kw)
            self._scores[key] = dict(raw=raw, labels=labels, test_labels=[str(r.label) for r in arr["test"][1]],
                                     coh=coh, coh_labels=coh_labels, imp=imp, imp_labels=imp_labels)
        return self._scores[key]

    def evaluate(self, corpus: str, split: str, setting: dict) -> dict:
        from gmmspeech import metrics
        from gmmspeech.speaker.pipeline import normalise_scores

        p = self.score_parts(corpus, split, setting)
        norm = None if setting["norm"] == "none" else setting["norm"]
        s = normalise_scores(p["raw"], norm, model_labels=p["labels"], impostor_scores=p["imp"],
                             impostor_labels=p["imp_labels"], cohort_scores=p["coh"],
                             cohort_labels=p["coh_labels"], norm_cohort=setting["norm_cohort"])
        m = metrics.evaluate_scores(s, p["labels"], p["test_labels"])
        return {"accuracy": float(m["accuracy"]), "eer": float(m["eer"]),
                "min_dcf_sre08": float(m["min_dcf_sre08"]), "n_tests": int(m["n_tests"]),
                "n_speakers": len(p["labels"])}


def objective(results: dict[str, dict]) -> float:
    """Mean over corpora of (accuracy % - EER %)."""
    return float(np.mean([100 * (r["accuracy"] - r["eer"]) for r in results.values()]))


def search(ev: Evaluator, corpora, passes: int, out: Path, dims=None, start=None) -> dict:
    """Coordinate search from ``start`` (default :data:`START`) over ``dims`` (default: all
    of :data:`DIMENSIONS`, in their order); evaluations already in ``search.json`` are
    reused, and the steps are appended to its record."""
    log_path = out / "search.json"
    record: dict = {"evaluations": {}, "steps": []}
    if log_path.is_file():
        record = json.loads(log_path.read_text())
    dimensions = [(d, v) for d, v in DIMENSIONS if dims is None or d in dims]
    first_pass = 1 + max((st["pass"] for st in record["steps"]), default=0)

    def run(setting):
        k = key_of(setting)
        if k not in record["evaluations"]:
            res = {c: ev.evaluate(c, "dev", setting) for c in corpora}
            record["evaluations"][k] = {"setting": dict(setting), "dev": res, "objective": objective(res)}
            ev.log(f"{short(setting, START):60s} objective {objective(res):7.2f}  "
                   + "  ".join(f"{c[:6]} {100 * r['accuracy']:.1f}/{100 * r['eer']:.2f}" for c, r in res.items()))
            log_path.write_text(json.dumps(record, indent=1, sort_keys=True))
        return record["evaluations"][k]["objective"]

    current = dict(start or START)
    best = run(current)
    for n_pass in range(first_pass - 1, first_pass - 1 + passes):
        changed = False
        for dim, values in dimensions:
            scores = []
            for v in values:
                cand = dict(current, **{dim: v})
                if dim == "norm_cohort" and current["norm"] in ("none", "znorm"):
                    continue  # the cohort only matters to T-/S-norm
                scores.append((run(cand), v))
            if not scores:
                continue
            top = max(s for s, _ in scores)
            # keep the current value on a tie, else the first value reaching the top
            choice = current[dim] if any(s == top and v == current[dim] for s, v in scores) else next(
                v for s, v in scores if s == top)
            record["steps"].append({"pass": n_pass + 1, "dimension": dim,
                                    "tried": [[v, s] for s, v in scores], "chosen": choice})
            if choice != current[dim]:
                changed = True
                current[dim] = choice
                best = top
                ev.log(f"pass {n_pass + 1}: {dim} -> {choice} (objective {top:.2f})")
        if not changed:
            break
    record["chosen"] = current
    record["chosen_objective"] = best
    per = {}
    for c in corpora:
        items = [(e["dev"][c]["accuracy"], -e["dev"][c]["eer"], e["setting"]) for e in record["evaluations"].values()
                 if c in e["dev"]]
        acc, neg_eer, setting = max(items, key=lambda t: (t[0], t[1]))
        per[c] = {"setting": setting, "dev_accuracy": acc, "dev_eer": -neg_eer}
    record["per_corpus_best"] = per
    log_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def steps_table(record: dict) -> str:
    lines = ["| pass | dimension | tried (objective on dev) | chosen |", "|---|---|---|---|"]
    for st in record["steps"]:
        tried = ", ".join(f"{v}: {s:.2f}" for v, s in st["tried"])
        lines.append(f"| {st['pass']} | {st['dimension']} | {tried} | {st['chosen']} |")
    return "\n".join(lines)


def report(ev: Evaluator, corpora, record: dict, out: Path, cli: bool, splits=("dev", "test")) -> str:
    """Old defaults, new defaults and each corpus's best dev setting on dev and test (the
    evaluator), ``gmmspeech speaker-id`` without flags (``cli``), and the baseline."""
    from gmmspeech.speaker.defaults import CLASSIC_SETTINGS, speaker_defaults

    systems = {"new defaults": {c: from_kwargs(speaker_defaults()) for c in corpora},
               "best on this corpus's dev": {c: record["per_corpus_best"][c]["setting"] for c in corpora},
               "old defaults (classic)": {c: from_kwargs(CLASSIC_SETTINGS) for c in corpora}}
    path = out / "report.json"
    results: dict = json.loads(path.read_text())["results"] if path.is_file() else {}

    def save():
        path.write_text(json.dumps({"results": results, "per_corpus_best": record["per_corpus_best"],
                                    "chosen": record.get("chosen"), "systems": systems},
                                   indent=1, sort_keys=True))

    for split in reversed(splits):  # test first: the figures the README needs most
        for name, per in systems.items():
            for c in corpora:
                if split in results.get(name, {}).get(c, {}):
                    continue
                r = ev.evaluate(c, split, per[c])
                results.setdefault(name, {}).setdefault(c, {})[split] = r
                ev.log(f"{name} {c}/{split}: {100 * r['accuracy']:.2f} % / {100 * r['eer']:.2f} %")
                save()
            if cli and name == "new defaults":
                for c in corpora:
                    if split in results.get("speaker-id, no flags", {}).get(c, {}):
                        continue
                    m = ev.manifests(c, split)
                    run_out = out / "runs" / "cli-no-flags" / c / split
                    cmd = [sys.executable, "-m", "gmmspeech", "speaker-id", "--background", str(m["background"]),
                           "--enroll", str(m["enroll"]), "--test", str(m["test"]), "--out", str(run_out),
                           "--data-root", str(ev.data_root), "--features-dir", str(ev.features_dir(c, split)),
                           "--jobs", str(ev.n_jobs), "--quiet"]
                    subprocess.run(cmd, check=True, cwd=ROOT)
                    res = json.loads((run_out / "results.json").read_text())
                    results.setdefault("speaker-id, no flags", {}).setdefault(c, {})[split] = {
                        k: res[k] for k in ("accuracy", "eer", "min_dcf_sre08", "n_tests", "n_speakers")}
                    ev.log(f"speaker-id no flags {c}/{split}: {100 * res['accuracy']:.2f} %")
                    save()
    baseline = out.parent / "baseline" / "results.json"
    if baseline.is_file():
        base = json.loads(baseline.read_text())
        results["librosa + scikit-learn baseline"] = {c: base[c] for c in corpora if c in base}
    save()

    def cell(r):
        return (f"{100 * r['accuracy']:.1f} / {100 * r['eer']:.2f} / {r['min_dcf_sre08']:.3f}"
                if r else "not run")

    rows = ["| corpus | system | dev: acc % / EER % / minDCF08 | test: acc % / EER % / minDCF08 |",
            "|---|---|---|---|"]
    for c in corpora:
        for name, per in results.items():
            if c in per:
                rows.append(f"| {c} | {name} | {cell(per[c].get('dev'))} | {cell(per[c].get('test'))} |")
    best = ["", "Per-corpus best dev settings (what differs from the new defaults):", ""]
    d = from_kwargs(speaker_defaults())
    for c in corpora:
        best.append(f"- {c}: {short(record['per_corpus_best'][c]['setting'], d)}")
    text = "\n".join(rows + best)
    (out / "report.md").write_text(text + "\n")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--work", default=str(ROOT / "exp" / "dev_search"))
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=CORPORA)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="dev and test table of old/new/best settings")
    ap.add_argument("--cli", action="store_true", help="with --report: also run gmmspeech speaker-id without flags")
    ap.add_argument("--dims", nargs="+", choices=[d for d, _ in DIMENSIONS], default=None,
                    help="search only these dimensions (e.g. a second pass over the ones that reuse the UBMs)")
    ap.add_argument("--from-chosen", action="store_true",
                    help="start from the setting the previous search chose (WORK/search.json) instead of START")
    ap.add_argument("--splits", nargs="+", default=["dev", "test"], choices=["dev", "test"],
                    help="with --report: the splits to evaluate (test first)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    global RAW_CONFIG
    RAW_CONFIG = _raw_config()
    ev = Evaluator(Path(args.data_root).resolve(), work, n_jobs=args.jobs)
    if args.report:
        record = json.loads((work / "search.json").read_text())
        print(report(ev, args.corpora, record, work, args.cli, tuple(args.splits)))
        return 0
    start = None
    if args.from_chosen:
        start = json.loads((work / "search.json").read_text())["chosen"]
    record = search(ev, args.corpora, args.passes, work, dims=args.dims, start=start)
    print(steps_table(record))
    print()
    print("chosen:", short(record["chosen"]), f"(objective {record['chosen_objective']:.2f})")
    for c, b in record["per_corpus_best"].items():
        print(f"best on {c} dev: {100 * b['dev_accuracy']:.2f} % / {100 * b['dev_eer']:.2f} %: {short(b['setting'])}")
    (work / "steps.md").write_text(steps_table(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
