"""Choose the i-vector and fusion settings of ``speaker-id --system ivector|fusion`` on dev splits.

Usage (from the repository root)::

    .venv/bin/python bench/ivector_dev.py --data-root ../shared/datasets --work exp/ivector_dev \\
        [--corpora speechocean762 ...] [--splits dev] [--grid default|search] [--seeds N]

For every corpus and split of ``data_manifests/<corpus>/{dev,test}`` it builds the speaker
system exactly as :func:`gmmspeech.speaker.pipeline.run_speaker_id` does with no options
(one feature store of the speaker defaults' features, the UBM of
:data:`~gmmspeech.speaker.defaults.SPEAKER_DEFAULTS` on background + enrolment data, MAP
models, raw LLRs), then evaluates i-vector settings (keys of
:data:`~gmmspeech.speaker.pipeline.IVECTOR_DEFAULTS`) through the pipeline's own
functions: total variability and i-vectors (cached per TV setting), back-end and score
normalisation, and the fusion with its held-out check. Every evaluation (accuracy / EER /
minDCF of GMM-UBM, i-vector and fusion, and the fusion's report) is appended to
``WORK/results.jsonl``. Settings are chosen on the dev splits only; ``--splits test``
reports the chosen ones.

``--seeds N`` evaluates every setting N times with other random starts of the TV matrix
(bench key ``_seed``; the UBM and the GMM-UBM scores are seed 0's): without ``tv_seeds``
in the setting each run is one TV matrix (``tv_seeds`` 1) from the start k = 0..N-1, the
single-start spread; with ``tv_seeds`` m the k-th run's m matrices start at k m (no start
shared). A ``seed_summary`` line follows: mean, standard deviation and range of the
i-vector and fusion accuracy / EER over the runs, and the metrics of the i-vector scores
averaged over them. With a few hundred training recordings the TV matrix (and so every
i-vector figure) depends on its random start: one start's figure is one draw.

``--grid default`` evaluates :data:`IVECTOR_DEFAULTS` only; ``--grid search`` a one-
dimension-at-a-time sweep around them (:data:`SWEEP`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CORPORA = ("speechocean762", "librispeech", "fsdd", "dspspeech20")
ROLES = ("background", "enroll", "test")

#: One dimension at a time around IVECTOR_DEFAULTS (dev only).
SWEEP: list[tuple[str, list]] = [
    ("norm", ["none", "tnorm", "snorm"]),
    ("plda_on_enroll", [False, True]),
    ("lda_dim", [None, 0.5]),
    ("rank", ["auto", 50, 100, 200]),
    ("fusion_trials", ["enroll", "background"]),
]

TV_KEYS = ("rank", "n_iter", "top_c", "ubm_components", "ubm_covariance", "full_iter", "tv_on_enroll",
           "extra_background_tv", "speed_perturb", "speed_perturb_tv")

#: Bench-only option keys (not i-vector settings): ``_pool``, corpora whose dev-split
#: manifests of the roles ``_pool_roles`` (default background and enroll: labelled
#: recordings, never a test recording) are the extra background of every other corpus'
#: split (``speaker-id --ivector-background``); a corpus never pools itself. ``_seed``:
#: the i-vector system's random state (``speaker-id --seed``; default 0, the UBM and the
#: GMM-UBM scores stay those of seed 0), as ``--seeds N`` sets it.
POOL_KEYS = ("_pool", "_pool_roles", "_seed")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Split:
    """Features, UBM and GMM-UBM scores of one corpus split, as run_speaker_id builds them."""

    def __init__(self, corpus, split, data_root, work, n_jobs):
        from gmmspeech.corpus.manifest import read_manifest
        from gmmspeech.mixture import io as mio
        from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS as D
        from gmmspeech.speaker.defaults import resolve_score_mode, speaker_feature_config
        from gmmspeech.speaker.pipeline import (
            _distinct,
            _gmm_ubm_scores,
            build_features,
            ubm_training_source,
        )
        from gmmspeech.speaker.ubm import train_ubm

        self.name = f"{corpus}/{split}"
        self.par = dict(n_jobs=n_jobs, backend=None, scheduler=None)
        cfg = speaker_feature_config()
        self.corpus, self.data_root, self.work, self.cfg = corpus, data_root, Path(work), cfg
        wanted = {role: read_manifest(ROOT / "data_manifests" / corpus / split / f"{role}.csv",
                                      data_root=data_root) for role in ROLES}
        fdir = Path(work) / "features" / corpus / cfg.config_hash()
        t0 = time.perf_counter()
        allrows = _distinct([r for rs in wanted.values() for r in rs])
        st, _good, bad = build_features(allrows, fdir, config=cfg, progress=False, **self.par)
        if bad:
            raise RuntimeError(f"{self.name}: {len(bad)} bad files, e.g. {bad[0]}")
        self.rows = wanted
        self.fdir = fdir
        self.stores = {role: st.subset([r.id for r in wanted[role]]) for role in ROLES}
        log(f"{self.name}: features {time.perf_counter() - t0:.0f} s")
        self.dir = Path(work) / "runs" / corpus / split
        self.dir.mkdir(parents=True, exist_ok=True)
        upath = self.dir / "ubm.npz"
        if upath.is_file():
            self.ubm = mio.load(upath)
        else:
            t0 = time.perf_counter()
            self.ubm = train_ubm(ubm_training_source(self.stores, self.rows, ubm_on_enroll=D["ubm_on_enroll"]),
                                 int(D["n_components"]), D["covariance_type"], max_iter=int(D["max_iter"]),
                                 init=D["ubm_init"], random_state=0, progress=False, **self.par)
            mio.save(self.ubm, upath, metadata={"role": "ubm"})
            log(f"{self.name}: UBM {time.perf_counter() - t0:.0f} s")
        mode, top_c = resolve_score_mode(D["score_mode"], D["top_c"], D["covariance_type"])
        self.gmm_cfg = dict(relevance_factor=D["relevance_factor"], adapt=D["adapt"], mode=mode, top_c=top_c,
                            norm=None, norm_top_n=None, impostor_segment_frames=300, max_impostors=400,
                            norm_cohort="background", need_cohort=False, need_impostors=False,
                            feature_meta={})
        t0 = time.perf_counter()
        spath = self.dir / "gmm_scores.npz"
        if spath.is_file():
            z = np.load(spath, allow_pickle=False)
            self.gmm, self.model_labels = z["scores"], [str(v) for v in z["models"]]
        else:
            self.gmm, self.model_labels, _raw = _gmm_ubm_scores(self.ubm, self.stores, self.rows, str(self.dir),
                                                                self.gmm_cfg, self.par, False, lambda m: None)
            np.savez(spath, scores=self.gmm, models=np.asarray(self.model_labels))
        self.test_labels = [str(r.label) for r in self.rows["test"]]
        log(f"{self.name}: GMM-UBM scores {time.perf_counter() - t0:.0f} s")
        self._front: dict = {}  # (setting, start) -> front of that TV matrix
        self._base: dict = {}  # setting -> statistics (and the first front built on them)

    def extra(self, opts, pool, pool_roles):
        """The extra background of ``speaker-id --ivector-background`` made of the other
        corpora's dev manifests (``pool``), plus the speed-perturbed copies of
        ``opts["speed_perturb"]`` (of the split's background and of the pooled rows)."""
        from gmmspeech.corpus.manifest import read_manifest
        from gmmspeech.speaker.pipeline import _not_enrolled, extra_background

        sources = [(c, [r for role in pool_roles for r in read_manifest(
                        ROOT / "data_manifests" / c / "dev" / f"{role}.csv", data_root=self.data_root)],
                    str(self.work / "features" / c / self.cfg.config_hash()), True)
                   for c in pool if c != self.corpus]
        sources.append(("", _not_enrolled(self.rows["background"], self.rows["enroll"]), str(self.fdir), False))
        extra, bad = extra_background(sources, config=self.cfg, opts=opts, progress=False,
                                      say=log, **self.par)
        if bad:
            raise RuntimeError(f"{self.name}: {len(bad)} bad files in the pooled background, e.g. {bad[0]}")
        return extra or None

    def front(self, opts, pool=(), pool_roles=("background", "enroll"), seed=0, ubm_seed=None):
        """The i-vector front of the TV matrix from the random start ``seed``, built as
        ``_ivector_scores`` builds its systems: the statistics (and, with
        ``ubm_components``, the i-vector system's own UBM, trained from ``ubm_seed``, the
        run's seed) once per setting, one TV matrix per start on them (``_tv_member``)."""
        from gmmspeech.speaker.pipeline import _ivector_front, _tv_member

        key = tuple(str(opts[k]) for k in TV_KEYS) + (tuple(pool), tuple(pool_roles))
        base_key = key + (None if opts["ubm_components"] is None else int(seed if ubm_seed is None else ubm_seed),)
        if base_key not in self._base:
            t0 = time.perf_counter()
            extra = self.extra(opts, pool, pool_roles)
            self._base[base_key] = _ivector_front(self.ubm, self.stores, self.rows, str(self.dir), opts,
                                                  int(seed if ubm_seed is None else ubm_seed), self.par, False,
                                                  lambda m: None, extra=extra)
            n_extra = len(self._base[base_key]["labels"].get("extra", []))
            log(f"{self.name}: TV {dict(zip(TV_KEYS, key))} pool={list(pool)} ({n_extra} extra recordings, "
                f"{len(set(self._base[base_key]['labels'].get('extra', [])))} extra classes) "
                f"{time.perf_counter() - t0:.0f} s")
        base = self._base[base_key]
        mkey = base_key + (int(seed),)
        if mkey not in self._front:
            self._front[mkey] = (base if base["random_state"] == int(seed) else
                                 _tv_member(base, opts, int(seed), self.par, False, lambda m: None))
        return self._front[mkey]

    def evaluate(self, options: dict, dump=None, fusion: bool = True) -> dict:
        from gmmspeech.speaker.pipeline import (
            _align_columns,
            _fusion,
            _ivector_backend_scores,
            _ivector_ensemble,
            _tv_seeds,
            evaluate_matrix,
            ivector_settings,
        )

        opts = ivector_settings({k: v for k, v in options.items() if k not in POOL_KEYS})
        seed = int(options.get("_seed", 0))
        pool = (tuple(options.get("_pool", ())), tuple(options.get("_pool_roles", ("background", "enroll"))))
        members = []
        k = _tv_seeds(opts, len(self.front(opts, *pool, seed)["tv_stats"]))
        for j in range(k):  # as _ivector_scores: TV matrices from seed, seed + 1, ... on the same statistics
            members.append(_ivector_backend_scores(self.front(opts, *pool, seed + j, ubm_seed=seed), None, opts,
                                                   lambda m: None,
                                                   heldout=(self.stores["enroll"], self.rows["enroll"], self.par)))
        iv = _ivector_ensemble(members)
        front = members[0]
        iv_scores = _align_columns(iv["scores"], iv["model_labels"], self.model_labels)
        t0 = time.perf_counter()
        fused = (_fusion(self.ubm, self.stores, self.rows, iv, self.gmm_cfg, opts, self.par, lambda m: None)
                 if fusion else {"fusion": None, "keep": None, "reason": "not evaluated (--no-fusion)"})
        t_fusion = time.perf_counter() - t0
        fu = fused["fusion"]
        fused_scores = self.gmm if fu is None else fu.fuse(self.gmm, iv_scores)

        def metrics(s):
            m = evaluate_matrix(s, self.model_labels, self.test_labels, verbose=False)
            return {k: m[k] for k in ("accuracy", "eer", "min_dcf_sre08")}

        if dump is not None:  # the real trials' scores and the held-out trials, for choosing the check's rule
            tr = fused.get("trials") or {}
            np.savez(dump, gmm=self.gmm, ivector=iv_scores, models=np.asarray(self.model_labels),
                     tests=np.asarray(self.test_labels),
                     **{f"heldout_{k}": np.asarray(v) for k, v in tr.items()})
        rep = {k: v for k, v in fused.items() if k not in ("fusion", "fitted", "trials")}
        if fused.get("fitted") is not None:
            rep["weights"] = [float(v) for v in fused["fitted"].coef_]
        return {"split": self.name, "options": options, "rank": int(front["extractor"].rank_), "tv_seeds": k,
                "whiten_choice": iv.get("whiten_choice"),
                "gmm-ubm": metrics(self.gmm), "ivector": metrics(iv_scores), "fusion": metrics(fused_scores),
                "fusion_report": rep, "fusion_seconds": round(t_fusion, 1), "_scores": iv_scores}

    def seed_summary(self, options: dict, results: list) -> dict:
        """Across the evaluations of ``options`` with several seeds (``results``): mean and
        standard deviation of the i-vector (and fusion) accuracy / EER, and the metrics of the
        i-vector scores averaged over the seeds (an ensemble of the seeds' systems)."""
        from gmmspeech.speaker.pipeline import evaluate_matrix

        out = {"split": self.name, "options": options, "seeds": [r["options"].get("_seed", 0) for r in results]}
        for system in ("ivector", "fusion"):
            for k in ("accuracy", "eer"):
                v = np.array([r[system][k] for r in results], dtype=float)
                out[f"{system}_{k}_mean"] = float(v.mean())
                out[f"{system}_{k}_sd"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
                out[f"{system}_{k}_range"] = [float(v.min()), float(v.max())]
        m = evaluate_matrix(np.mean([r["_scores"] for r in results], axis=0), self.model_labels, self.test_labels,
                            verbose=False)
        out["ivector_seed_average"] = {k: m[k] for k in ("accuracy", "eer", "min_dcf_sre08")}
        out["gmm-ubm"] = results[0]["gmm-ubm"]
        return out


def line(res: dict) -> str:
    def f(m):
        return f"{100 * m['accuracy']:5.1f}/{100 * m['eer']:5.2f}"

    r = res["fusion_report"]
    w = r.get("weights")
    chk = r.get("check") or {}
    return (f"{res['split']:22s} {json.dumps(res['options'], sort_keys=True):60s} R={res['rank']:3d} "
            f"gmm {f(res['gmm-ubm'])} iv {f(res['ivector'])} fus {f(res['fusion'])} "
            f"keep={r.get('keep')} w={None if w is None else [round(v, 3) for v in w]} "
            f"cllr={chk.get('cllr')} whiten={(res.get('whiten_choice') or {}).get('chosen')}")


def seed_line(summ: dict) -> str:
    def ms(system, k):
        return f"{100 * summ[f'{system}_{k}_mean']:.2f}+-{100 * summ[f'{system}_{k}_sd']:.2f}"

    av = summ["ivector_seed_average"]
    return (f"{summ['split']:22s} {json.dumps(summ['options'], sort_keys=True):60s} seeds={len(summ['seeds'])} "
            f"iv acc {ms('ivector', 'accuracy')} eer {ms('ivector', 'eer')} | seed-averaged scores "
            f"{100 * av['accuracy']:.1f}/{100 * av['eer']:.2f} | fus acc {ms('fusion', 'accuracy')} "
            f"eer {ms('fusion', 'eer')}")


def _seed_runs(base: dict, n: int) -> list[dict]:
    """``--seeds n``: the option sets of the ``n`` runs. Without ``tv_seeds`` in ``base`` a run
    is one TV matrix (``tv_seeds`` 1), the k-th from the start k: the single-start spread.
    With ``tv_seeds`` m (``"auto"``: the most it resolves to) the k-th run's matrices start at
    k m, so no two runs share a start."""
    from gmmspeech.speaker.pipeline import AUTO_TV_SEEDS

    if "tv_seeds" not in base:
        return [{**base, "tv_seeds": 1, "_seed": k} for k in range(n)]
    m = AUTO_TV_SEEDS if base["tv_seeds"] == "auto" else int(base["tv_seeds"])
    return [{**base, "_seed": k * m} for k in range(n)]


def _evaluate_one(sp, corpus, split, options, args):
    """One evaluation of ``options`` on the split ``sp`` (None, logged, if it failed)."""
    try:
        dump = None
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            tag = "-".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"
            dump = Path(args.dump) / f"{corpus}-{split}-{tag}.npz"
        return sp.evaluate(options, dump=dump, fusion=not args.no_fusion)
    except Exception as exc:  # noqa: BLE001 - record and go on
        log(f"{sp.name} {options}: FAILED {type(exc).__name__}: {exc}")
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--work", default=str(ROOT / "exp" / "ivector_dev"))
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA))
    ap.add_argument("--splits", nargs="+", default=["dev"])
    ap.add_argument("--grid", choices=["default", "search"], default="default")
    ap.add_argument("--options", default=None, help="JSON list of option dicts to evaluate instead of a grid")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--dump", default=None,
                    help="folder: per evaluation an .npz of the real trials' GMM-UBM and i-vector score "
                         "matrices and the fusion's held-out trials (input of the check's rule choice)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="evaluate every option set N times with other TV random starts (bench key _seed; "
                         "one TV matrix per run unless the set gives tv_seeds) and print the mean, standard "
                         "deviation and the seed-averaged i-vector scores")
    ap.add_argument("--no-fusion", action="store_true",
                    help="evaluate the i-vector system only (the fusion's held-out TV retraining skipped)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.options:
        grid = json.loads(args.options)
    elif args.grid == "default":
        grid = [{}]
    else:
        grid = [{}] + [{k: v} for k, vals in SWEEP for v in vals]
        seen, grid_u = set(), []
        for g in grid:
            key = json.dumps(g, sort_keys=True)
            if key not in seen:
                seen.add(key)
                grid_u.append(g)
        grid = grid_u
    with open(work / "results.jsonl", "a") as fh:
        for corpus in args.corpora:
            for split in args.splits:
                sp = Split(corpus, split, args.data_root, work, args.jobs)
                for base in grid:
                    runs = []
                    for options in ([base] if args.seeds == 1 else _seed_runs(base, args.seeds)):
                        res = _evaluate_one(sp, corpus, split, options, args)
                        if res is None:
                            continue
                        runs.append(res)
                        fh.write(json.dumps({k: v for k, v in res.items() if k != "_scores"}, default=str) + "\n")
                        fh.flush()
                        print(line(res), flush=True)
                    if len(runs) >= 2:
                        summ = sp.seed_summary(base, runs)
                        fh.write(json.dumps({"seed_summary": summ}, default=str) + "\n")
                        fh.flush()
                        print(seed_line(summ), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
