"""Isolated-word recognition with GMM-HMM word models, beside per-class GMMs and hmmlearn.

Two speaker-independent protocols:

* **DSPSpeech-20** (20 words, 23 speakers x 4 takes): trained on the speakers of
  ``data_manifests/dspspeech20/words_train.csv``, tested on the unseen speakers of
  ``words_test.csv``. The number of states and Gaussians per state is chosen on a
  development split of the *training* speakers (every third training speaker held out),
  never on the test speakers; the chosen models are then retrained on every training
  speaker.
* **FSDD** (10 digits, 6 speakers): leave one speaker out, with the settings chosen on
  DSPSpeech-20's development split (nothing is tuned on FSDD).

Every word (digit) gets one left-to-right :class:`~gmmspeech.mixture.hmm.GMMHMM` (flat start,
splitting, Baum-Welch); an utterance is assigned the word whose model gives it the largest
forward log-likelihood. The same features feed per-class GMMs (one
:class:`~gmmspeech.mixture.gmm.GMM` per word over its frames, order ignored) and hmmlearn's
``GMMHMM`` (same states, Gaussians, left-to-right start; its own k-means initialisation),
whose failures are counted, not hidden.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

#: (states, Gaussians per state) candidates tried on the development split
CANDIDATES = ((6, 2), (8, 4), (10, 4))
QUICK_CANDIDATES = ((4, 1), (6, 2))
#: cepstral mean/variance normalisation candidates: per utterance, or over all of a speaker's
#: utterances (:func:`gmmspeech.features.normalize.speaker_cmvn`; unsupervised at test time)
NORMALISATIONS = ("utterance", "speaker")
GMM_COMPONENTS = 16
HMMLEARN_ITER = 10
DSP_CREDIT = ("DSPSpeech-20 (Zhongyu Chen, https://github.com/zhongyuchen/DSPSpeech-20), "
              "MIT licence, \"Copyright (c) 2019 Zhongyu Chen\"; 23-speaker subset.")


def _speaker(row) -> str:
    # DSPSpeech-20 ids are "{speaker}-{word}-{round}", FSDD ids "{speaker}_{digit}_{index}"
    return _speaker_of(row.id)


def _speaker_of(utt_id: str) -> str:
    return utt_id.split("-")[0] if "-" in utt_id else utt_id.split("_")[0]


def _normalised(feats: dict, norm: str) -> dict:
    """``feats`` (id -> frames, no CMVN) with utterance or speaker mean/variance normalisation."""
    from gmmspeech.features.normalize import cmvn, speaker_cmvn

    ids = list(feats)
    if norm == "utterance":
        return {i: cmvn(feats[i]) for i in ids}
    if norm == "speaker":
        return dict(zip(ids, speaker_cmvn([feats[i] for i in ids], [_speaker_of(i) for i in ids])))
    raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {norm!r}")


def _fit_hmm(seqs, n_states, n_mix, max_jump):
    from gmmspeech.mixture.hmm import GMMHMM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GMMHMM(n_states, n_mix, max_jump=max_jump, n_threads=1).fit(seqs)


def _fit_gmm(seqs, n_components, seed):
    from gmmspeech.mixture.gmm import GMM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GMM(n_components, covariance_type="diag", reg_covar=1e-3, max_iter=100,
                   accelerate=None, stopping="gain", random_state=seed).fit(np.concatenate(seqs))


def _fit_hmmlearn(seqs, n_states, n_mix, max_jump, seed):
    """hmmlearn's GMMHMM in the standard left-to-right set-up; ``None`` when it fails.

    Runs on single-threaded BLAS (its many small products thrash a multi-threaded BLAS on
    a shared machine: 14x slower measured) and for ``HMMLEARN_ITER`` iterations."""
    from hmmlearn import hmm
    from threadpoolctl import threadpool_limits

    i, j = np.indices((n_states, n_states))
    band = ((j >= i) & (j - i <= max_jump)).astype(float)
    model = hmm.GMMHMM(n_states, n_mix, covariance_type="diag", n_iter=HMMLEARN_ITER, random_state=seed,
                       init_params="mcw", params="tmcw")
    model.startprob_ = np.eye(1, n_states)[0]
    model.transmat_ = band / band.sum(axis=1, keepdims=True)
    try:
        with warnings.catch_warnings(), threadpool_limits(1), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            logging.getLogger("hmmlearn").setLevel(logging.ERROR)
            model.fit(np.concatenate(seqs), [len(x) for x in seqs])
        ok = all(np.all(np.isfinite(a)) for a in (model.transmat_, model.means_, model.covars_, model.weights_))
        return (model, None) if ok else (None, "NaN in the fitted parameters")
    except Exception as exc:  # noqa: BLE001 - hmmlearn's failures are reported, whatever they are
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def _classify(models, classes, seqs, score):
    scores = np.stack([score(m, seqs) for m in models], axis=1)
    return [classes[k] for k in np.argmax(scores, axis=1)]


def _hmm_scores(m, seqs):
    return m.score_sequences(seqs)


def _gmm_scores(m, seqs):
    x = np.concatenate(seqs)
    starts = np.cumsum([0] + [len(s) for s in seqs[:-1]])
    return np.add.reduceat(m.score_samples(x), starts)


def _hmmlearn_scores(m, seqs):
    if m is None:
        return np.full(len(seqs), -np.inf)
    with np.errstate(all="ignore"):
        out = np.array([m.score(x) for x in seqs])
    return np.where(np.isfinite(out), out, -np.inf)


def _train_test(feats, labels, train_ids, test_ids, classes, systems, n_jobs, backend, scheduler):
    """Train every system's class models on ``train_ids``; predictions for ``test_ids``."""
    from gmmspeech.parallel import parallel_map

    by_class = [[feats[i] for i in train_ids if labels[i] == c] for c in classes]
    test = [feats[i] for i in test_ids]
    out = {}
    for name, (fit, args, score) in systems.items():
        t = time.perf_counter()
        models = parallel_map(fit, [(seqs, *args) for seqs in by_class], n_jobs=n_jobs, backend=backend,
                              scheduler=scheduler, star=True)
        fit_s = time.perf_counter() - t
        failures = []
        if name == "hmmlearn":
            failures = [(c, err) for c, (_, err) in zip(classes, models) if err]
            models = [m for m, _ in models]
        t = time.perf_counter()
        pred = _classify(models, classes, test, score)
        out[name] = {"pred": pred, "fit_seconds": fit_s, "score_seconds": time.perf_counter() - t,
                     "failures": failures}
    return out


def _features(rows, out, name, sample_rate, n_mfcc, n_jobs, backend, scheduler, verbose):
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig

    # no CMVN in the store: utterance or speaker normalisation is applied afterwards (_normalised)
    config = FeatureConfig.preset("speech").replace(sample_rate=sample_rate, n_mfcc=n_mfcc, cmvn="none")
    store = FeatureStore(Path(out) / f"features-{name}")
    build = store.build(rows, config=config, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                        progress=verbose)
    bad = {fid for fid, _, _ in build.failed}
    rows = [r for r in rows if r.id not in bad]
    feats = {r.id: np.asarray(store.load(r.id, mmap=False), dtype=np.float32) for r in rows}
    return rows, feats, config, build.failed


def _dsp_rows(data_root, train_manifest, test_manifest):
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.recipes._common import default_manifest

    train = read_manifest(train_manifest or default_manifest("dspspeech20", "words_train.csv"),
                          data_root=data_root)
    test = read_manifest(test_manifest or default_manifest("dspspeech20", "words_test.csv"),
                         data_root=data_root)
    return train, test


def run(*, out, data_root=None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        backend: str | None = None, scheduler: str | None = None, corpora=("dspspeech20", "fsdd"),
        states: int | None = None, mix: int | None = None, max_jump: int | None = None,
        n_mfcc: int | None = None, normalisation: str | None = None,
        hmmlearn: bool = True, hmmlearn_corpora=("dspspeech20",), train_manifest: str | None = None, test_manifest: str | None = None,
        verbose: bool = True) -> dict:
    """Run the isolated-word recipe; writes ``out/report.md`` and ``out/results.json``.

    Parameters
    ----------
    out : path-like
        Output folder (feature stores go to ``out/features-<corpus>``).
    data_root : path-like
        The shared datasets folder (holding ``dspspeech20/`` and ``fsdd/``).
    quick : bool
        Small run: 8 training speakers and 2 takes per word on DSPSpeech-20, 2 FSDD folds with
        10 recordings per digit and speaker, small candidate models.
    seed : int
        Seed of the GMM and hmmlearn initialisations (the GMM-HMM training is deterministic).
    n_jobs, backend, scheduler
        Parallel feature extraction and class-model training (see :mod:`gmmspeech.parallel`).
    corpora : sequence of {"dspspeech20", "fsdd"}
    states, mix : int or None
        Fix the number of states and Gaussians per state (skips the development selection).
    max_jump : int or None
        Largest forward jump of the left-to-right models (1: no skips; default
        :data:`~gmmspeech.mixture.hmm.WORD_HMM_DEFAULTS`).
    n_mfcc : int or None
        Cepstra (with deltas and delta-deltas: 3 x n_mfcc dimensions; default
        :data:`~gmmspeech.mixture.hmm.WORD_HMM_FEATURES`).
    normalisation : {"utterance", "speaker"} or None
        Cepstral mean/variance normalisation per utterance or over each speaker's utterances
        (:data:`NORMALISATIONS`). None: chosen on the DSPSpeech-20 development split and, for
        FSDD, in every leave-one-speaker-out fold by inner folds over its training speakers.
    hmmlearn : bool
        Compare with hmmlearn's GMMHMM (skipped with a note when not installed).
    hmmlearn_corpora : sequence of str
        Corpora on which hmmlearn runs (default DSPSpeech-20 only: it trains about 200 times
        slower than gmmspeech, see ``bench/bench_hmm.py``, so six FSDD folds take hours).
    train_manifest, test_manifest : path-like or None
        DSPSpeech-20 word manifests (default ``data_manifests/dspspeech20/words_*.csv``).
    verbose : bool
    """
    from gmmspeech import metrics, plots
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.mixture.hmm import WORD_HMM_DEFAULTS, WORD_HMM_FEATURES
    from gmmspeech.recipes._common import default_manifest, require_data_root

    t0 = time.perf_counter()
    max_jump = WORD_HMM_DEFAULTS["max_jump"] if max_jump is None else max_jump
    n_mfcc = WORD_HMM_FEATURES["n_mfcc"] if n_mfcc is None else n_mfcc
    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    norms = (normalisation,) if normalisation else NORMALISATIONS
    corpora = tuple(corpora)
    unknown = set(corpora) - {"dspspeech20", "fsdd"}
    if unknown or not corpora:
        raise ValueError(f"corpora must be among 'dspspeech20', 'fsdd'; got {list(corpora)}")
    for c in corpora:
        require_data_root(data_root, c, "words")
    if (states is None) != (mix is None):
        raise ValueError("give both states and mix, or neither (then they are chosen on the dev split)")
    if hmmlearn:
        try:
            import hmmlearn as _hl  # noqa: F401
        except ImportError:
            hmmlearn = False
            if verbose:
                print("hmmlearn not installed: comparison skipped")
    candidates = ((states, mix),) if states is not None else (QUICK_CANDIDATES if quick else CANDIDATES)

    def systems(n_states, n_mix, corpus):
        s = {"gmm-hmm": (_fit_hmm, (n_states, n_mix, max_jump), _hmm_scores),
             "gmm": (_fit_gmm, (4 if quick else GMM_COMPONENTS, seed), _gmm_scores)}
        if hmmlearn and corpus in hmmlearn_corpora:
            s["hmmlearn"] = (_fit_hmmlearn, (n_states, n_mix, max_jump, seed), _hmmlearn_scores)
        return s

    results: dict = {"recipe": "words", "quick": bool(quick), "max_jump": max_jump, "n_mfcc": n_mfcc,
                     "corpora": {}}
    rep = Report(out, "Isolated words: GMM-HMM word models vs per-class GMMs and hmmlearn")
    rep.text(
        "One left-to-right GMM-HMM per word (flat start with Viterbi re-segmentation, mixture "
        "splitting 1 -> 2 -> 4, Baum-Welch; decision by the largest forward log-likelihood), "
        f"one {4 if quick else GMM_COMPONENTS}-component diagonal GMM per word (frames as a bag), "
        "and hmmlearn's GMMHMM with the same states and Gaussians (left-to-right start, its "
        f"k-means initialisation, {HMMLEARN_ITER} iterations). Features: `speech` preset, {n_mfcc} MFCC with "
        f"log-energy, deltas and delta-deltas ({3 * n_mfcc} dims), energy VAD, then mean/variance "
        "normalisation per utterance or over each speaker's utterances (chosen on development data)."
    )
    chosen = candidates[0]
    chosen_norm = norms[0]
    labels_of = {}

    if "dspspeech20" in corpora:
        train_rows, test_rows = _dsp_rows(data_root, train_manifest, test_manifest)
        if quick:
            keep = sorted({_speaker(r) for r in train_rows})[:8]
            train_rows = [r for r in train_rows if _speaker(r) in keep and r.id.rsplit("-", 1)[1] in ("01", "07")]
            test_spk = sorted({_speaker(r) for r in test_rows})[:2]
            test_rows = [r for r in test_rows if _speaker(r) in test_spk and r.id.rsplit("-", 1)[1] in ("01", "07")]
        rows, feats, config, failed = _features(train_rows + test_rows, out, "dspspeech20", 16000, n_mfcc,
                                                n_jobs, backend, scheduler, verbose)
        labels = {r.id: r.label for r in rows}
        labels_of["dspspeech20"] = labels
        classes = sorted(set(labels.values()))
        train_ids = [r.id for r in train_rows if r.id in feats]
        test_ids = [r.id for r in test_rows if r.id in feats]
        train_spk = sorted({i.split("-")[0] for i in train_ids})
        dev_spk = set(train_spk[1::3])
        dev_rows = []
        normed = {n: _normalised(feats, n) for n in norms}
        if len(candidates) * len(norms) > 1:
            fit_ids = [i for i in train_ids if i.split("-")[0] not in dev_spk]
            dev_ids = [i for i in train_ids if i.split("-")[0] in dev_spk]
            truth = [labels[i] for i in dev_ids]
            for n_states, n_mix in candidates:
                for norm in norms:
                    sysd = {"gmm-hmm": systems(n_states, n_mix, "dev")["gmm-hmm"]}
                    res = _train_test(normed[norm], labels, fit_ids, dev_ids, classes, sysd, n_jobs, backend,
                                      scheduler)
                    acc = metrics.accuracy(truth, res["gmm-hmm"]["pred"])
                    dev_rows.append({"states": n_states, "mix": n_mix, "normalisation": norm, "dev_accuracy": acc})
                    if verbose:
                        print(f"dev: {n_states} states x {n_mix} Gaussians, {norm} CMVN: {acc:.4f}", flush=True)
            # ties: the smaller model, then per-utterance normalisation (needs no speaker labels)
            best = max(dev_rows, key=lambda d: (d["dev_accuracy"], -d["states"] * d["mix"],
                                                d["normalisation"] == "utterance"))
            chosen, chosen_norm = (best["states"], best["mix"]), best["normalisation"]
        feats = normed[chosen_norm]
        truth = [labels[i] for i in test_ids]
        res = _train_test(feats, labels, train_ids, test_ids, classes, systems(*chosen, "dspspeech20"), n_jobs,
                          backend, scheduler)
        block = {"n_train": len(train_ids), "n_test": len(test_ids), "train_speakers": train_spk,
                 "test_speakers": sorted({i.split("-")[0] for i in test_ids}), "dev_speakers": sorted(dev_spk),
                 "dev": dev_rows, "states": chosen[0], "mix": chosen[1], "normalisation": chosen_norm,
                 "n_failed_files": len(failed),
                 "systems": {}}
        for name, r in res.items():
            block["systems"][name] = {"accuracy": metrics.accuracy(truth, r["pred"]),
                                      "fit_seconds": r["fit_seconds"], "score_seconds": r["score_seconds"],
                                      "failed_classes": [{"class": c, "error": e} for c, e in r["failures"]]}
        cm = metrics.confusion_matrix(truth, res["gmm-hmm"]["pred"], labels=classes)
        block["confusion_matrix"] = np.asarray(cm).tolist()
        results["corpora"]["dspspeech20"] = block

        rep.heading("DSPSpeech-20: unseen speakers")
        rep.text(f"Trained on {len(train_spk)} speakers ({len(train_ids)} recordings), tested on "
                 f"{len(block['test_speakers'])} unseen speakers ({len(test_ids)} recordings).")
        if dev_rows:
            rep.text(f"Model size and normalisation chosen on the development split ({len(dev_spk)} of "
                     "the training speakers held out, models trained on the others): "
                     f"{chosen[0]} states x {chosen[1]} Gaussians, {chosen_norm} CMVN.")
            rep.table(["states", "Gaussians per state", "CMVN", "dev accuracy"],
                      [[d["states"], d["mix"], d["normalisation"], d["dev_accuracy"]] for d in dev_rows],
                      floatfmt=".4f")
        _system_table(rep, block["systems"])
        plots.confusion_plot(cm, classes, path=Path(out) / "confusion_dspspeech20.png",
                             title="DSPSpeech-20, GMM-HMM, test speakers (rows: truth)")
        rep.add_image("confusion_dspspeech20.png", "GMM-HMM confusion matrix on the test speakers")
        rep.credit(DSP_CREDIT)
        if verbose:
            _print_block("DSPSpeech-20 (unseen speakers)", block)

    if "fsdd" in corpora:
        manifest = default_manifest("fsdd", "digits.csv")
        frows = read_manifest(manifest, data_root=data_root)
        if quick:
            frows = [r for r in frows if int(r.id.rsplit("_", 1)[1]) < 10]
        frows, feats, config, failed = _features(frows, out, "fsdd", 8000, n_mfcc, n_jobs, backend,
                                                 scheduler, verbose)
        labels = {r.id: r.label for r in frows}
        classes = sorted(set(labels.values()))
        speakers = sorted({_speaker(r) for r in frows})
        folds = speakers[:2] if quick else speakers
        normed = {n: _normalised(feats, n) for n in norms}
        # inner folds: for the fold of speaker s, every other speaker v is held out from a model
        # trained on the remaining speakers (neither s nor v); one training per pair {s, v} serves
        # the folds of s and of v
        inner = _pair_accuracies(normed, labels, [r.id for r in frows], speakers, classes,
                                 {"gmm-hmm": systems(*chosen, "dev")["gmm-hmm"]}, n_jobs, backend,
                                 scheduler, verbose) if len(norms) > 1 else {}
        all_truth, preds, folds_out = [], {}, []
        secs = {}
        for spk in folds:
            train_ids = [r.id for r in frows if _speaker(r) != spk]
            test_ids = [r.id for r in frows if _speaker(r) == spk]
            truth = [labels[i] for i in test_ids]
            dev_acc = {n: float(np.mean([inner[n][frozenset((spk, v))][v] for v in speakers if v != spk]))
                       for n in inner}
            norm = max(norms, key=lambda n: (dev_acc.get(n, 0.0), n == "utterance"))
            res = _train_test(normed[norm], labels, train_ids, test_ids, classes, systems(*chosen, "fsdd"),
                              n_jobs, backend, scheduler)
            fold = {"test_speaker": spk, "n_test": len(test_ids), "normalisation": norm,
                    "inner_accuracy": dev_acc}
            for name, r in res.items():
                fold[name] = metrics.accuracy(truth, r["pred"])
                preds.setdefault(name, []).extend(r["pred"])
                secs[name] = secs.get(name, 0.0) + r["fit_seconds"]
                if r["failures"]:
                    fold[f"{name}_failed_classes"] = [{"class": c, "error": e} for c, e in r["failures"]]
            all_truth += truth
            folds_out.append(fold)
            if verbose:
                print(f"fsdd fold {spk}: " + ", ".join(f"{n} {fold[n]:.3f}" for n in res), flush=True)
        block = {"folds": folds_out, "states": chosen[0], "mix": chosen[1], "n_files": len(frows),
                 "inner_pairs": {n: {"+".join(sorted(k)): v for k, v in d.items()} for n, d in inner.items()},
                 "n_failed_files": len(failed), "systems": {}}
        for name, p in preds.items():
            block["systems"][name] = {"accuracy": metrics.accuracy(all_truth, p), "fit_seconds": secs[name],
                                      "failed_classes": sum(len(f.get(f"{name}_failed_classes", []))
                                                            for f in folds_out)}
        cm = metrics.confusion_matrix(all_truth, preds["gmm-hmm"], labels=classes)
        block["confusion_matrix"] = np.asarray(cm).tolist()
        results["corpora"]["fsdd"] = block
        rep.heading("FSDD digits: leave one speaker out")
        rep.text(f"{len(folds)} folds; every fold trains on the other speakers and tests on every "
                 f"recording of the held-out one. GMM-HMM size from the DSPSpeech-20 dev split: "
                 f"{chosen[0]} states x {chosen[1]} Gaussians. The normalisation of each fold is chosen "
                 "by inner folds over its training speakers only (each held out in turn from models "
                 "trained on the others); the test speaker is never used for a choice.")
        names = list(preds)
        inner_cols = [f"inner {n}" for n in norms] if inner else []
        rep.table(["held-out speaker", "test files"] + inner_cols + ["CMVN"] + names,
                  [[f["test_speaker"], f["n_test"]] + [f["inner_accuracy"][n] for n in norms if inner]
                   + [f["normalisation"]] + [f[n] for n in names] for f in folds_out]
                  + [["all folds", len(all_truth)] + [""] * len(inner_cols) + [""]
                     + [block["systems"][n]["accuracy"] for n in names]],
                  floatfmt=".4f")
        _system_table(rep, block["systems"])
        plots.confusion_plot(cm, classes, path=Path(out) / "confusion_fsdd.png",
                             title="FSDD, GMM-HMM, all held-out speakers (rows: truth)")
        rep.add_image("confusion_fsdd.png", "GMM-HMM confusion matrix over all folds")
        rep.credit("fsdd")
        if verbose:
            _print_block("FSDD (leave one speaker out)", block)

    results["seconds"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        print(f"report: {report}")
    return results


def _pair_accuracies(normed, labels, ids, speakers, classes, system, n_jobs, backend, scheduler, verbose):
    """``{normalisation: {frozenset({a, b}): {a: accuracy, b: accuracy}}}``: models trained
    on every speaker but ``a`` and ``b``, tested on each of them."""
    from itertools import combinations

    out: dict = {}
    for norm, feats in normed.items():
        out[norm] = {}
        for a, b in combinations(speakers, 2):
            train = [i for i in ids if _speaker_of(i) not in (a, b)]
            test = [i for i in ids if _speaker_of(i) in (a, b)]
            pred = np.asarray(_train_test(feats, labels, train, test, classes, system, n_jobs, backend,
                                          scheduler)["gmm-hmm"]["pred"])
            truth = np.asarray([labels[i] for i in test])
            spk = np.asarray([_speaker_of(i) for i in test])
            out[norm][frozenset((a, b))] = {v: float(np.mean(pred[spk == v] == truth[spk == v])) for v in (a, b)}
            if verbose:
                print(f"fsdd inner, {norm} CMVN, without {a} and {b}: "
                      + ", ".join(f"{v} {x:.3f}" for v, x in out[norm][frozenset((a, b))].items()), flush=True)
    return out


def _system_table(rep, systems):
    rows = []
    for name, s in systems.items():
        failed = s.get("failed_classes") or []
        n_failed = failed if isinstance(failed, int) else len(failed)
        rows.append([name, s["accuracy"], s["fit_seconds"], n_failed])
    rep.table(["system", "accuracy", "training seconds", "class models that failed"], rows, floatfmt=".4f")
    for name, s in systems.items():
        failed = s.get("failed_classes")
        if isinstance(failed, list) and failed:
            rep.text(f"{name} failures: " + "; ".join(f"class {f['class']}: {f['error']}" for f in failed[:5]))


def _print_block(title, block):
    print(title)
    rows = [[n, s["accuracy"], s["fit_seconds"]] for n, s in block["systems"].items()]
    print(format_text_table(["system", "accuracy", "train s"], rows, floatfmt=".4f"))
