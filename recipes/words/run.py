#!/usr/bin/env python3
"""Isolated-word recognition with GMM-HMM word models (DSPSpeech-20, FSDD) beside per-class GMMs and hmmlearn.

    recipes/words/run.py [--stage N] [--stop-stage N] [--quick] [--data-root R] [--out DIR] [-j N]
                         [--corpus dspspeech20|fsdd] [--no-hmmlearn]

Stages (a finished stage's output is kept: re-running after a kill redoes nothing finished):
  0  data      the protocols' manifests -> OUT/data/{dspspeech20_train,dspspeech20_test,fsdd}.csv
  1  features  `gmmspeech features` per corpus, front end and speed factor: the word-model
               features (WORD_HMM_FEATURES with each change of WORD_HMM_FRONT_ENDS offered to the
               corpus: MFCC and MFCC + Kaldi pitch for DSPSpeech-20, MFCC with the energy VAD at
               -30 and -40 dB for FSDD; no CMVN in the store), every file also speed-perturbed by the training
               factors (Kaldi's 0.9 / 1.1) -> OUT/feats/<corpus>[-<front end>]-sp<factor>
  2  dev       DSPSpeech-20 (MFCC word models): states x Gaussians, the CMVN (per utterance / per
               speaker) and the speaker adaptation (none / fMLLR after 1 .. WORD_HMM_ADAPTATION["passes"] passes, with
               speaker-independent or speaker-adaptively trained (SAT) word models) chosen
               on a development split of the TRAINING speakers (every third one held out)
               -> OUT/exp/dspspeech20/dev.json
  3  test      DSPSpeech-20: GMM-HMM (every front end's word models, and their sum), per-class GMM and
               hmmlearn's GMMHMM trained on every training speaker, tested on the unseen test
               speakers -> OUT/exp/dspspeech20/results.json
  4  inner     FSDD: the adaptation and the front-end set of each leave-one-speaker-out fold, chosen by
               inner folds over that fold's training speakers (one training per speaker pair and front
               end serves two folds; the CMVN and model size as chosen in stage 2) -> OUT/exp/fsdd/inner.json
  5  loso      FSDD leave one speaker out (GMM-HMM with its first pass and, where the fold's set sums
               several, per front end; per-class GMM, hmmlearn's GMMHMM) -> OUT/exp/fsdd/results.json
  6  report    OUT/report.md, OUT/results.json, confusion matrices

Word models: one left-to-right gmmspeech.GMMHMM per word (the library's WORD_HMM_DEFAULTS:
flat start, mixture splitting, Baum-Welch), trained on the training speakers' recordings at
every factor of WORD_HMM_TRAINING["speeds"] (each perturbed copy of a speaker counts as a
speaker of its own for speaker CMVN, as in Kaldi), one set per front end of
WORD_HMM_FRONT_ENDS; a test recording gets the word whose models give it the largest sum of
forward log-likelihoods over the front ends. Per-class GMMs and hmmlearn use the MFCC front
end. Nothing is tuned on a test speaker.
"""

import importlib.util
import json
import sys
import time
import warnings
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import numpy as np  # noqa: E402

from gmmspeech.cli.steps import (  # noqa: E402
    Recipe,
    parse_args,
    read_relative,
    recipe_parser,
    require_corpus,
    write_manifest_rows,
)
from gmmspeech.mixture.hmm import (  # noqa: E402
    WORD_HMM_ADAPTATION,
    WORD_HMM_DEFAULTS,
    WORD_HMM_FEATURES,
    WORD_HMM_FRONT_ENDS,
    WORD_HMM_TRAINING,
)

#: (states, Gaussians per state) tried on the DSPSpeech-20 development split
CANDIDATES = ((WORD_HMM_DEFAULTS["n_states"], WORD_HMM_DEFAULTS["n_mix"]), (8, 8), (10, 4))
QUICK_CANDIDATES = ((6, 2),)  # --quick: one size (each size trains SI and SAT word models)
NORMALISATIONS = ("utterance", "speaker")
#: speaker adaptation tried on the development speakers: none (the speaker-independent pass),
#: and fMLLR (WORD_HMM_ADAPTATION's transform) with 1 up to its number of passes
ADAPTATION_PASSES = tuple(range(WORD_HMM_ADAPTATION["passes"] + 1))  # (with SAT word models too when "sat")
GMM_COMPONENTS = 16
HMMLEARN_ITER = 10
CORPORA = ("dspspeech20", "fsdd")
RATES = {"dspspeech20": 16000, "fsdd": 8000}
#: the front end of the development grids (stages 2 and 4), the per-class GMMs and hmmlearn
BASE_FRONT_END = next(iter(WORD_HMM_FRONT_ENDS))
#: front-end sets offered to each corpus (names of WORD_HMM_FRONT_ENDS whose word models'
#: log-likelihoods are summed); with several, stage 2 chooses one by 3-fold cross-validation over
#: the training speakers; FSDD's stage 4 chooses one per leave-one-speaker-out fold by its inner
#: folds. FSDD (English digits, 8 kHz) is offered the energy VAD at -30 dB (the preset's) and at
#: -40 dB (it drops less of the /s/ of "six"), alone or summed; the Kaldi pitch set, which its
#: inner folds also preferred (README), is not offered: each offered front end is one more
#: word-model training in each of stage 4's 15 inner pairs.
FRONT_END_SETS = {"dspspeech20": ((BASE_FRONT_END,), (BASE_FRONT_END, "mfcc-pitch")),
                  "fsdd": ((BASE_FRONT_END,), ("mfcc-vad40",), (BASE_FRONT_END, "mfcc-vad40"))}
CV_FOLDS = 3

parser = recipe_parser("words", __doc__.splitlines()[0])
parser.add_argument("--corpus", dest="corpora", action="append", choices=CORPORA,
                    help="corpus to run (repeatable; default both)")
parser.add_argument("--no-hmmlearn", dest="hmmlearn", action="store_false",
                    help="skip hmmlearn's GMMHMM (stages 3 and 5; it trains ~100x slower)")
args = parse_args("words", parser=parser)
corpora = tuple(args.corpora or CORPORA)
# --quick (a smoke test of every stage) trains on the unperturbed recordings only
speeds = (1.0,) if args.quick else tuple(WORD_HMM_TRAINING["speeds"])
if args.quick:  # a smoke test of hmmlearn's stage too
    HMMLEARN_ITER = 1


class WordsRecipe(Recipe):
    """The recipe mechanics (stages, commands.sh, resume) with the words report."""

    def write_report(self):
        from gmmspeech.recipes.report import Report

        rep = Report(self.out, self.title + (" (quick run)" if self.quick else ""))
        rep.text(self.intro)
        for heading, md in self.sections:
            rep.heading(heading)
            rep.text(md)
        for fig, cap in (("confusion_dspspeech20.png", "DSPSpeech-20 GMM-HMM on the test speakers (rows: truth)"),
                         ("confusion_fsdd.png", "FSDD GMM-HMM over all held-out speakers (rows: truth)")):
            if (self.out / fig).is_file():
                rep.add_image(fig, cap)
        for c in self.credits:
            rep.credit(c)
        return rep.write(self.results)


r = WordsRecipe("words", "Isolated words: GMM-HMM word models vs per-class GMMs and hmmlearn", args,
                credits=("DSPSpeech-20 (Zhongyu Chen, https://github.com/zhongyuchen/DSPSpeech-20), MIT licence, "
                         "\"Copyright (c) 2019 Zhongyu Chen\"; 23-speaker subset.", "fsdd"),
                intro=(
    "One left-to-right GMM-HMM per word (`gmmspeech.GMMHMM`, the library's `WORD_HMM_DEFAULTS`), "
    f"trained on the training speakers at speed factors {', '.join(map(str, speeds))} (Kaldi's speed "
    f"perturbation); one {GMM_COMPONENTS}-component diagonal GMM per word (frames as a bag) and "
    f"hmmlearn's GMMHMM (same states and Gaussians, left-to-right start, {HMMLEARN_ITER} iterations) "
    f"beside. Features: `speech` preset with {WORD_HMM_FEATURES['n_mfcc']} MFCC + deltas + "
    "delta-deltas, energy VAD, then CMVN per utterance or over each speaker's recordings (chosen on "
    "development speakers). GMM-HMM front ends (`WORD_HMM_FRONT_ENDS`): "
    + ", ".join(f"{k} ({', '.join(f'{a}={b}' for a, b in v.items()) or 'as above'})"
                for k, v in WORD_HMM_FRONT_ENDS.items())
    + "; one set of word models each, the sets' log-likelihoods summed. Decision: the largest "
    "(summed) forward log-likelihood."))
r.results.update({"speeds": list(speeds), "hmm": dict(WORD_HMM_DEFAULTS), "features": dict(WORD_HMM_FEATURES),
                  "adaptation": dict(WORD_HMM_ADAPTATION), "front_ends": dict(WORD_HMM_FRONT_ENDS)})


# ----------------------------------------------------------------------------- helpers
def speaker(utt_id: str) -> str:
    # DSPSpeech-20 ids are "{speaker}-{word}-{take}", FSDD ids "{speaker}_{digit}_{index}"
    return utt_id.split("-")[0] if "-" in utt_id else utt_id.split("_")[0]


def store_dir(corpus, factor, front_end=BASE_FRONT_END):
    name = corpus if front_end == BASE_FRONT_END else f"{corpus}-{front_end}"
    return r.feats / f"{name}-sp{factor:g}"


def front_ends_of(corpus):
    """The front ends of every set offered to ``corpus`` (the base one first)."""
    return list(dict.fromkeys(fe for fes in FRONT_END_SETS[corpus] for fe in fes))


def load_features(corpus, ids):
    """``{front end: {factor: {id: frames}}}`` from the stores; an id is kept only where every
    front end has it at speed 1.0 (files that failed are absent, and reported by stage 1)."""
    from gmmspeech.corpus.store import FeatureStore

    out = {}
    for fe in front_ends_of(corpus):
        out[fe] = {}
        for f in speeds:
            store = FeatureStore(store_dir(corpus, f, fe))
            out[fe][f] = {i: np.asarray(store.load(i, mmap=False)) for i in ids if i in store}
    common = set.intersection(*(set(v[1.0]) for v in out.values()))
    for fe in out:
        out[fe][1.0] = {i: x for i, x in out[fe][1.0].items() if i in common}
    return out


def normalised(items, norm):
    """CMVN of ``[(speaker key, frames)]`` per utterance or over each speaker key's frames."""
    from gmmspeech.features.normalize import cmvn, speaker_cmvn

    if norm == "utterance":
        return [cmvn(x) for _, x in items]
    return speaker_cmvn([x for _, x in items], [k for k, _ in items])


def training_set(feats, labels, ids, norm, factors=speeds, with_speakers=False):
    """Normalised training sequences by class: every id at every speed factor (a perturbed
    copy of a speaker is a speaker of its own); ``with_speakers``: also those speakers, by class."""
    items, classes = [], []
    for f in factors:
        for i in ids:
            if i in feats[f]:
                items.append((f"{speaker(i)}@{f:g}", feats[f][i]))
                classes.append(labels[i])
    by_class: dict = {}
    spk_by_class: dict = {}
    for c, (k, _), x in zip(classes, items, normalised(items, norm)):
        by_class.setdefault(c, []).append(x)
        spk_by_class.setdefault(c, []).append(k)
    return (by_class, spk_by_class) if with_speakers else by_class


def test_set(feats, ids, norm):
    ids = [i for i in ids if i in feats[1.0]]
    return ids, normalised([(speaker(i), feats[1.0][i]) for i in ids], norm)


def fit_hmm(seqs, n_states, n_mix):
    from gmmspeech.mixture.hmm import GMMHMM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = {**WORD_HMM_DEFAULTS, "n_states": n_states, "n_mix": n_mix}
        return GMMHMM(**params, n_threads=1).fit(seqs)


def fit_gmm(seqs, n_components):
    from gmmspeech.mixture.gmm import GMM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GMM(n_components, covariance_type="diag", reg_covar=1e-3, max_iter=100, accelerate=None,
                   stopping="gain", random_state=0).fit(np.concatenate(seqs))


def fit_hmmlearn(seqs, n_states, n_mix):
    """hmmlearn's GMMHMM in the standard left-to-right set-up: ``(model, None)`` or ``(None, error)``.
    Single-threaded BLAS (its many small products thrash a multi-threaded one)."""
    import logging

    from hmmlearn import hmm
    from threadpoolctl import threadpool_limits

    i, j = np.indices((n_states, n_states))
    band = ((j >= i) & (j - i <= WORD_HMM_DEFAULTS["max_jump"])).astype(float)
    model = hmm.GMMHMM(n_states, n_mix, covariance_type="diag", n_iter=HMMLEARN_ITER, random_state=0,
                       init_params="mcw", params="tmcw")
    model.startprob_ = np.eye(1, n_states)[0]
    model.transmat_ = band / band.sum(axis=1, keepdims=True)
    try:
        with warnings.catch_warnings(), threadpool_limits(1), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            logging.getLogger("hmmlearn").setLevel(logging.ERROR)
            model.fit(np.concatenate(seqs), [len(x) for x in seqs])
        ok = all(np.all(np.isfinite(a)) for a in (model.transmat_, model.means_, model.covars_, model.weights_))
        if not ok:
            return None, "NaN in the fitted parameters"
        model._check()  # hmmlearn's own validation (a row of transmat_ summing to 0 fails its score)
        return model, None
    except Exception as exc:  # noqa: BLE001 - hmmlearn's failures are reported, whatever they are
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def score_hmm(m, seqs):
    return m.score_sequences(seqs)


def score_gmm(m, seqs):
    starts = np.cumsum([0] + [len(s) for s in seqs[:-1]])
    return np.add.reduceat(m.score_samples(np.concatenate(seqs)), starts)


def score_hmmlearn(m, seqs):
    import logging

    if m is None:
        return np.full(len(seqs), -np.inf)
    # its score() re-validates the model and logs "Degenerate mixture covariance" on every call
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    with np.errstate(all="ignore"):
        out = np.array([m.score(x) for x in seqs])
    return np.where(np.isfinite(out), out, -np.inf)


def compared_systems(n_states, n_mix):
    """``{name: (fit, fit args, score, speed factors)}``: GMM-HMM, per-class GMM and (unless
    ``--no-hmmlearn`` or not installed) hmmlearn's GMMHMM."""
    systems = {"gmm-hmm": (fit_hmm, (n_states, n_mix), score_hmm, speeds),
               "gmm": (fit_gmm, (4 if r.quick else GMM_COMPONENTS,), score_gmm, (1.0,))}
    if args.hmmlearn:
        try:
            import hmmlearn  # noqa: F401
            systems["hmmlearn"] = (fit_hmmlearn, (n_states, n_mix), score_hmmlearn, (1.0,))
        except ImportError:
            r.say("   hmmlearn not installed: its comparison is skipped")
    return systems


def train_models(by_class, fit, fit_args):
    """Class models trained in parallel (-j): ``(classes, models, seconds, failures)``."""
    from gmmspeech.parallel import parallel_map

    classes = sorted(by_class)
    t = time.perf_counter()
    models = parallel_map(fit, [(by_class[c], *fit_args) for c in classes], n_jobs=r.jobs, star=True)
    seconds = time.perf_counter() - t
    failures = []
    if models and isinstance(models[0], tuple):  # hmmlearn: (model, error)
        failures = [{"class": c, "error": e} for c, (_, e) in zip(classes, models) if e]
        models = [m for m, _ in models]
    return classes, models, seconds, failures


def train_and_classify(by_class, test_seqs, fit, fit_args, score):
    """Class models trained in parallel (-j); ``(predicted class indices, seconds, failures)``."""
    _, models, seconds, failures = train_models(by_class, fit, fit_args)
    scores = np.stack([score(m, test_seqs) for m in models], axis=1)
    return np.argmax(scores, axis=1), seconds, failures


#: fMLLR settings of speaker_adapted_scores / speaker_transforms (WORD_HMM_ADAPTATION without its
#: recipe-level keys)
FMLLR = {k: v for k, v in WORD_HMM_ADAPTATION.items() if k not in ("passes", "sat")}


def adaptation_name(passes, sat=False):
    """"none", "fmllr-full-2" (2 passes), "sat-fmllr-full-2" (the same with SAT word models)."""
    if passes == 0:
        return "none"
    return ("sat-" if sat else "") + f"fmllr-{FMLLR['update']}-{passes}"


def passes_of(name):
    return 0 if name == "none" else int(name.rsplit("-", 1)[1])


def candidate_adaptations():
    """The adaptation names tried on development speakers."""
    return [adaptation_name(p, sat) for sat in ((False, True) if WORD_HMM_ADAPTATION["sat"] else (False,))
            for p in ADAPTATION_PASSES if p or not sat]


def train_word_models(by_class, spk_by_class, fit_args, sat):
    """Speaker-independent word models and, with ``sat``, speaker-adaptively trained ones
    (Kaldi's train_sat: every training speaker's fMLLR transform against the
    speaker-independent models from its labelled recordings, then word models trained on the
    transformed recordings). ``(classes, SI models, SAT models or None, seconds of all the
    training, failed classes, {"fit_seconds", "speakers_kept_identity"} of SAT or None)``."""
    from gmmspeech.mixture.fmllr import speaker_transforms

    classes, si_models, seconds, failures = train_models(by_class, fit_hmm, fit_args)
    if not sat:
        return classes, si_models, None, seconds, failures, None
    seqs = [x for c in classes for x in by_class[c]]
    spks = [k for c in classes for k in spk_by_class[c]]
    ys = [c for c in classes for _ in by_class[c]]
    t = time.perf_counter()
    tr = speaker_transforms(dict(zip(classes, si_models)), seqs, ys, spks, **FMLLR)
    kept = sorted(k for k, v in tr.items() if v.update == "none")
    if kept:
        r.say(f"   SAT: {len(kept)} training speakers kept the identity (too few frames): {', '.join(kept[:5])}")
    adapted = {c: [tr[k].apply(x) for x, k in zip(by_class[c], spk_by_class[c])] for c in classes}
    _, models, _, _ = train_models(adapted, fit_hmm, fit_args)
    sat_seconds = time.perf_counter() - t
    return (classes, si_models, models, seconds + sat_seconds, failures,
            {"fit_seconds": round(sat_seconds, 1), "speakers_kept_identity": kept})


def adapted_predictions(models, ids, seqs, names=None, sat_models=None):
    """:func:`adapted_scores` as ``({name: predicted class indices}, transform summaries)``."""
    scores, info = adapted_scores(models, ids, seqs, names, sat_models)
    return {n: np.argmax(sc, axis=1) for n, sc in scores.items()}, info


def adapted_scores(models, ids, seqs, names=None, sat_models=None):
    """Speaker-adaptive decoding of the test speakers (gmmspeech.mixture.fmllr): every test
    speaker's recordings decoded by the speaker-independent models, then one fMLLR transform per
    speaker and pass from the previous pass's hypotheses, decoded by ``models`` or, for the
    "sat-" names, by ``sat_models``. ``({name: log-likelihoods (recordings, classes)}, {name:
    {speaker: transform summary}})`` for the adaptation ``names`` (default: every candidate)."""
    from gmmspeech.mixture.fmllr import speaker_adapted_scores

    names = list(names or candidate_adaptations())
    spk = np.asarray([speaker(i) for i in ids])
    preds = {n: np.empty((len(ids), len(models))) for n in names}
    info: dict = {n: {} for n in names if n != "none"}
    families = [(False, models, None)] + ([(True, sat_models, models)] if sat_models is not None else [])
    for s in sorted(set(spk)):
        idx = np.flatnonzero(spk == s)
        for sat, decoders, first in families:
            want = [n for n in names if n == "none" or n.startswith("sat-") == sat]
            if not want or (sat and want == ["none"]):
                continue
            scores, transforms = speaker_adapted_scores(decoders, [seqs[k] for k in idx], all_passes=True,
                                                        passes=max(passes_of(n) for n in want), si_models=first,
                                                        **FMLLR)
            for n in want:
                if n == "none" and sat:
                    continue
                p = passes_of(n)
                preds[n][idx] = scores[p]
                if p:
                    t = transforms[p]
                    info[n][s] = {"update": t.update, "frames": round(t.n_frames), "gain_per_frame": round(t.gain, 4),
                                  **({"kept_identity": t.reason} if t.update == "none" else {})}
                    if t.update == "none":
                        r.say(f"   speaker {s}: identity kept ({t.reason})")
    return preds, info


def front_end_scores(feats, labels, train_ids, test_ids, norm, fit_args, front_ends, names, sat):
    """Word models of every front end of ``front_ends`` (names in WORD_HMM_FRONT_ENDS) trained on
    ``train_ids`` (and SAT ones with ``sat``) decode ``test_ids`` with the adaptations ``names``:
    ``(classes, test ids, {front end: {"scores": {name: log-likelihoods}, "transforms", "fit_seconds",
    "failed_classes", "sat"}})``; every front end must give the same words and test recordings."""
    classes = ids = None
    out: dict = {}
    for fe in front_ends:
        by_class, spk_by_class = training_set(feats[fe], labels, train_ids, norm, with_speakers=True)
        fe_ids, seqs = test_set(feats[fe], test_ids, norm)
        fe_classes, models, sat_models, secs, failures, sat_info = train_word_models(by_class, spk_by_class,
                                                                                     fit_args, sat)
        if classes is None:
            classes, ids = fe_classes, fe_ids
        elif fe_classes != classes or fe_ids != ids:
            raise SystemExit(f"recipes/words/run.py: error: front end {fe} has other words or test recordings "
                             "than the first one (see stage 1's failed files)")
        scores, info = adapted_scores(models, ids, seqs, names=names, sat_models=sat_models)
        out[fe] = {"scores": scores, "transforms": info, "fit_seconds": round(secs, 1), "failed_classes": failures,
                   "sat": sat_info}
    return classes, ids, out


def hmm_system(feats, labels, train_ids, test_ids, norm, fit_args, adapt, front_ends):
    """The GMM-HMM system: for every front end of ``front_ends`` (names in WORD_HMM_FRONT_ENDS),
    word models trained on ``train_ids`` (and SAT ones when ``adapt`` asks for them) decode
    ``test_ids`` with the speaker-independent pass and ``adapt``; the front ends' log-likelihoods
    are summed. Returns ``{"classes", "ids", "si", "adapted"}`` (predicted class indices of the
    sums) and ``"front_ends": {name: {"si", "adapted", "scores", "fit_seconds", "failed_classes",
    "sat", "transforms"}}`` ("scores": the adapted pass's log-likelihoods)."""
    classes, ids, runs = front_end_scores(feats, labels, train_ids, test_ids, norm, fit_args, front_ends,
                                          ("none", adapt), adapt.startswith("sat-"))
    out: dict = {"classes": classes, "ids": ids, "front_ends": {}}
    for fe, v in runs.items():
        sc = v["scores"]
        out["front_ends"][fe] = {"si": np.argmax(sc["none"], axis=1), "adapted": np.argmax(sc[adapt], axis=1),
                                 "scores": sc[adapt], "fit_seconds": v["fit_seconds"],
                                 "failed_classes": v["failed_classes"], "sat": v["sat"],
                                 "transforms": v["transforms"].get(adapt, {})}
    out["si"], out["adapted"] = (np.argmax(sum(v["scores"][n] for v in runs.values()), axis=1) for n in ("none", adapt))
    return out


def per_front_end(hs, get):
    """``get(front end's results)`` for the front ends of :func:`hmm_system`'s ``hs``: the value
    itself with one front end (the results keep their one-system layout), else ``{front end:
    value}``."""
    fes = hs["front_ends"]
    return get(next(iter(fes.values()))) if len(fes) == 1 else {fe: get(v) for fe, v in fes.items()}


def choose_front_ends(corpus, feats, labels, train_ids, chosen):
    """The front-end set of ``corpus`` (one of FRONT_END_SETS[corpus]) by CV_FOLDS-fold
    cross-validation over its training speakers (every CV_FOLDS-th one held out in turn), with
    the states, Gaussians, CMVN and adaptation ``chosen`` on the development split. Every front
    end's word models are trained once per fold; a set's accuracy is that of its summed
    log-likelihoods. Ties: the fewer front ends."""
    sets = FRONT_END_SETS[corpus]
    if len(sets) == 1:
        return {"sets": [{"front_ends": list(sets[0])}], "chosen": list(sets[0])}
    spks = sorted({speaker(i) for i in train_ids})
    fit_args, norm, adapt = (chosen["states"], chosen["mix"]), chosen["normalisation"], chosen.get("adaptation", "none")
    hits: dict = {st: [] for st in sets}
    folds = []
    for k in range(CV_FOLDS):
        held = spks[k::CV_FOLDS]
        hs = hmm_system(feats, labels, [i for i in train_ids if speaker(i) not in held],
                        [i for i in train_ids if speaker(i) in held], norm, fit_args, adapt, front_ends_of(corpus))
        truth = np.asarray([labels[i] for i in hs["ids"]])
        fold = {"held_out": held, "recordings": len(truth), "accuracy": {}}
        for st in sets:
            hit = np.asarray(hs["classes"])[np.argmax(sum(hs["front_ends"][fe]["scores"] for fe in st), axis=1)] == truth
            hits[st].append(hit)
            fold["accuracy"]["+".join(st)] = float(hit.mean())
        folds.append(fold)
        r.say(f"   front ends, fold {k + 1}/{CV_FOLDS} ({len(held)} speakers held out): "
              + ", ".join(f"{name} {pct(a)}" for name, a in fold["accuracy"].items()))
    rows = [{"front_ends": list(st), "accuracy": float(np.concatenate(hits[st]).mean())} for st in sets]
    best = max(rows, key=lambda d: (d["accuracy"], -len(d["front_ends"])))
    return {"states": fit_args[0], "mix": fit_args[1], "normalisation": norm, "adaptation": adapt,
            "folds": folds, "sets": rows, "chosen": best["front_ends"]}


def parse_setting(key):
    """``(CMVN, adaptation, front ends)`` of an FSDD inner setting "<cmvn>/<adaptation>/<set>"
    (an inner.json of an earlier version: "<cmvn>/<adaptation>" or "<cmvn>", the MFCC front end
    and no adaptation)."""
    parts = key.split("/")
    return (parts[0], parts[1] if len(parts) > 1 else "none",
            parts[2].split("+") if len(parts) > 2 else [BASE_FRONT_END])


def setting_preference(key):
    """Tie-breaks between inner settings of equal accuracy (larger is preferred): fewer adaptation
    passes, then no SAT, then fewer front ends, then the earlier set of FRONT_END_SETS, then
    per-utterance CMVN (needs no speaker labels)."""
    norm, adapt, fes = parse_setting(key)
    order = [list(st) for st in FRONT_END_SETS["fsdd"]]
    return (-passes_of(adapt), not adapt.startswith("sat-"), -len(fes),
            -(order.index(fes) if fes in order else len(order)), norm == "utterance")


def accuracy(classes, pred, truth):
    return float(np.mean(np.asarray([classes[k] for k in pred]) == np.asarray(truth)))


def done(path):
    if Path(path).is_file():
        r.say(f"   (done: {Path(path).relative_to(r.out)})")
        return True
    return False


def save(path, obj):
    from gmmspeech.atomic import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def load_json(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def needed(path, stage: int, earlier: int):
    """``path`` (written by stage ``earlier``) as JSON, or stop: stage ``stage`` cannot run without it."""
    obj = load_json(path)
    if obj is None:
        raise SystemExit(f"recipes/words/run.py: error: stage {stage} needs stage {earlier}'s "
                         f"{path} (run from --stage {earlier})")
    return obj


# ----------------------------------------------------------------------------- 0 data
manifests = {"dspspeech20_train": r.data / "dspspeech20_train.csv", "dspspeech20_test": r.data / "dspspeech20_test.csv",
             "fsdd": r.data / "fsdd.csv"}
if r.stage(0, "data"):
    from gmmspeech.cli.steps import repo_root

    for corpus in corpora:
        require_corpus(corpus, r.data_root, "words")
    man = repo_root() / "data_manifests"
    if "dspspeech20" in corpora:
        train = read_relative(man / "dspspeech20" / "words_train.csv", r.data_root)
        test = read_relative(man / "dspspeech20" / "words_test.csv", r.data_root)
        if r.quick:  # 6 training and 2 test speakers, two takes per word
            keep = sorted({speaker(x.id) for x in train})[:6]
            train = [x for x in train if speaker(x.id) in keep and x.id.rsplit("-", 1)[1] in ("01", "07")]
            keep = sorted({speaker(x.id) for x in test})[:2]
            test = [x for x in test if speaker(x.id) in keep and x.id.rsplit("-", 1)[1] in ("01", "07")]
        write_manifest_rows(manifests["dspspeech20_train"], train)
        write_manifest_rows(manifests["dspspeech20_test"], test)
        write_manifest_rows(r.data / "dspspeech20.csv", train + test)
    if "fsdd" in corpora:
        rows = read_relative(man / "fsdd" / "digits.csv", r.data_root)
        if r.quick:  # 2 recordings per digit and speaker
            rows = [x for x in rows if int(x.id.rsplit("_", 1)[1]) < 2]
        write_manifest_rows(manifests["fsdd"], rows)

# ----------------------------------------------------------------------------- 1 features
if r.stage(1, "features"):
    from gmmspeech.features.config import FeatureConfig

    for corpus in corpora:  # before any work: a front end's optional dependency is missing
        for fe in front_ends_of(corpus):
            if WORD_HMM_FRONT_ENDS[fe].get("pitch") == "kaldi" and importlib.util.find_spec("kaldi_native_fbank") is None:
                raise SystemExit(f"recipes/words/run.py: error: the {fe} front end of {corpus} needs Kaldi pitch "
                                 "from kaldi-native-fbank: pip install 'gmmspeech[pitch]' (or run --corpus fsdd)")
    for corpus in corpora:
        for fe in front_ends_of(corpus):
            changes = WORD_HMM_FRONT_ENDS[fe]
            for f in speeds:
                cfg = FeatureConfig.preset("speech").replace(sample_rate=RATES[corpus], cmvn="none", speed=float(f),
                                                             **{**WORD_HMM_FEATURES, **changes})
                store = store_dir(corpus, f, fe)
                conf = r.out / "conf" / f"{store.name}.json"
                save(conf, cfg.to_dict())
                r.gmmspeech("features", r.data / f"{corpus}.csv", "--config", conf, "--data-root", r.data_root,
                            "--quiet", "--out", store, out=store)


def manifest_rows(name):
    from gmmspeech.corpus.manifest import read_manifest

    if not manifests[name].is_file():  # --stage past stage 0 on a fresh --out
        raise SystemExit(f"recipes/words/run.py: error: {manifests[name]} is missing: it is written "
                         "by stage 0 (run from --stage 0)")
    return read_manifest(manifests[name], data_root=r.data_root)


def pct(v):
    return f"{100 * v:.2f} %"


# ----------------------------------------------------------------------------- DSPSpeech-20
dsp_dir = r.out / "exp" / "dspspeech20"
if "dspspeech20" in corpora and r.args.stage <= 3 and (r.args.stop_stage is None or r.args.stop_stage >= 2):
    train_rows, test_rows = manifest_rows("dspspeech20_train"), manifest_rows("dspspeech20_test")
    labels = {x.id: x.label for x in train_rows + test_rows}
    all_feats = load_features("dspspeech20", list(labels))
    feats = all_feats[BASE_FRONT_END]
    train_ids = [x.id for x in train_rows if x.id in feats[1.0]]
    train_spk = sorted({speaker(i) for i in train_ids})
    dev_spk = train_spk[1::3]
    if r.stage(2, "DSPSpeech-20: model size and CMVN on the development split") and not done(dsp_dir / "dev.json"):
        fit_ids = [i for i in train_ids if speaker(i) not in dev_spk]
        rows = []
        for n_states, n_mix in (QUICK_CANDIDATES if r.quick else CANDIDATES):
            for norm in NORMALISATIONS:
                by_class, spk_by_class = training_set(feats, labels, fit_ids, norm, with_speakers=True)
                ids, seqs = test_set(feats, [i for i in train_ids if speaker(i) in dev_spk], norm)
                classes, models, sat, secs, _, _ = train_word_models(by_class, spk_by_class, (n_states, n_mix),
                                                                     WORD_HMM_ADAPTATION["sat"])
                preds, _ = adapted_predictions(models, ids, seqs, sat_models=sat)
                for adapt, pred in preds.items():
                    acc = accuracy(classes, pred, [labels[i] for i in ids])
                    rows.append({"states": n_states, "mix": n_mix, "normalisation": norm, "adaptation": adapt,
                                 "dev_accuracy": acc})
                    r.say(f"   dev: {n_states} states x {n_mix} Gaussians, {norm} CMVN, adaptation {adapt}: "
                          f"{pct(acc)} ({secs:.0f} s training)")
        # ties: the smaller model, then fewer adaptation passes, then no SAT, then per-utterance CMVN
        # (needs no speaker labels)
        best = max(rows, key=lambda d: (d["dev_accuracy"], -d["states"] * d["mix"], -passes_of(d["adaptation"]),
                                        not d["adaptation"].startswith("sat-"), d["normalisation"] == "utterance"))
        save(dsp_dir / "dev.json", {"dev_speakers": dev_spk, "candidates": rows, "chosen": best})
    if r.stage(2, "DSPSpeech-20: front ends by cross-validation over the training speakers") and \
            not done(dsp_dir / "front_ends.json"):
        save(dsp_dir / "front_ends.json", choose_front_ends(
            "dspspeech20", all_feats, labels, train_ids, needed(dsp_dir / "dev.json", 2, 2)["chosen"]))
    if r.stage(3, "DSPSpeech-20: test") and not done(dsp_dir / "results.json"):
        dev = needed(dsp_dir / "dev.json", 3, 2)
        ch = dev["chosen"]
        n_states, n_mix, norm = ch["states"], ch["mix"], ch["normalisation"]
        adapt = ch.get("adaptation", "none")  # (a dev.json of an earlier version: no adaptation)
        fes = needed(dsp_dir / "front_ends.json", 3, 2)["chosen"]
        test_ids, test_seqs = test_set(feats, [x.id for x in test_rows], norm)
        truth = [labels[i] for i in test_ids]
        systems = compared_systems(n_states, n_mix)
        out = {"train_speakers": train_spk, "test_speakers": sorted({speaker(i) for i in test_ids}),
               "n_train": len(train_ids), "n_test": len(test_ids), "states": n_states, "mix": n_mix,
               "normalisation": norm, "adaptation": adapt, "front_ends": list(fes), "systems": {}}
        for name, (fit, fargs, score, factors) in systems.items():
            if name == "gmm-hmm":  # per front end: the speaker-independent first pass, then the dev-chosen
                # adaptation; the front ends' log-likelihoods summed
                hs = hmm_system(all_feats, labels, train_ids, test_ids, norm, fargs, adapt, fes)
                classes, pred = hs["classes"], hs["adapted"]
                secs = sum(v["fit_seconds"] for v in hs["front_ends"].values())
                failures = [f for v in hs["front_ends"].values() for f in v["failed_classes"]]
                sat = per_front_end(hs, lambda v: v["sat"])
                out["sat"] = {fe: v for fe, v in sat.items() if v} if len(fes) > 1 else sat
                out["transforms"] = per_front_end(hs, lambda v: v["transforms"])
                for fe, v in (hs["front_ends"].items() if len(fes) > 1 else ()):
                    out["systems"][f"gmm-hmm-{fe}"] = {
                        "accuracy": accuracy(classes, v["adapted"], truth), "si_accuracy": accuracy(classes, v["si"], truth),
                        "fit_seconds": v["fit_seconds"], "speeds": list(factors), "failed_classes": v["failed_classes"],
                        "adaptation": adapt, "front_ends": [fe]}
                    r.say(f"   gmm-hmm, {fe} front end alone: {pct(out['systems'][f'gmm-hmm-{fe}']['accuracy'])} "
                          f"(first pass {pct(out['systems'][f'gmm-hmm-{fe}']['si_accuracy'])})")
                if adapt != "none":
                    out["systems"]["gmm-hmm-si"] = {
                        "accuracy": accuracy(classes, hs["si"], truth), "fit_seconds": secs,
                        "speeds": list(factors), "failed_classes": failures, "adaptation": "none",
                        "front_ends": list(fes)}
                    r.say(f"   gmm-hmm-si (first pass): {pct(out['systems']['gmm-hmm-si']['accuracy'])}")
            else:
                by_class = training_set(feats, labels, train_ids, norm, factors)
                classes = sorted(by_class)
                pred, secs, failures = train_and_classify(by_class, test_seqs, fit, fargs, score)
            out["systems"][name] = {"accuracy": accuracy(classes, pred, truth), "fit_seconds": round(secs, 1),
                                    "speeds": list(factors), "failed_classes": failures,
                                    "adaptation": adapt if name == "gmm-hmm" else "none",
                                    "front_ends": list(fes) if name == "gmm-hmm" else [BASE_FRONT_END]}
            if name == "gmm-hmm":
                from gmmspeech import metrics

                out["confusion_matrix"] = np.asarray(metrics.confusion_matrix(
                    truth, [classes[k] for k in pred], labels=classes)).tolist()
                out["classes"] = classes
            r.say(f"   {name}: {pct(out['systems'][name]['accuracy'])} ({secs:.0f} s"
                  + (f", {len(failures)} failed word models" if failures else "") + ")")
        save(dsp_dir / "results.json", out)

# ----------------------------------------------------------------------------- FSDD
fsdd_dir = r.out / "exp" / "fsdd"
if "fsdd" in corpora and r.args.stage <= 5 and (r.args.stop_stage is None or r.args.stop_stage >= 4):
    rows = manifest_rows("fsdd")
    labels = {x.id: x.label for x in rows}
    all_feats = load_features("fsdd", list(labels))
    feats = all_feats[BASE_FRONT_END]
    ids = [i for i in labels if i in feats[1.0]]
    speakers = sorted({speaker(i) for i in ids})
    if r.quick:  # three speakers: two folds, three inner pairs
        speakers = speakers[:3]
        ids = [i for i in ids if speaker(i) in speakers]
    folds = speakers[:2] if r.quick else speakers
    dev = load_json(dsp_dir / "dev.json")
    n_states, n_mix = ((dev["chosen"]["states"], dev["chosen"]["mix"]) if dev
                       else (WORD_HMM_DEFAULTS["n_states"], WORD_HMM_DEFAULTS["n_mix"]))
    if r.quick:
        n_states, n_mix = QUICK_CANDIDATES[-1]
    # the CMVN as chosen on DSPSpeech-20's development split, like the model size (speaker CMVN
    # won every FSDD fold's inner comparison by 3.4-6.2 points in sessions 3 and 6)
    fsdd_norm = dev["chosen"]["normalisation"] if dev else "speaker"
    if r.stage(4, "FSDD: front ends and adaptation of every fold by inner folds") and not done(fsdd_dir / "inner.json"):
        # for the fold of speaker s, each other speaker v is held out from models trained on the
        # rest (neither s nor v): one training per pair {s, v} and front end serves the folds of s
        # and of v; a setting is "<CMVN>/<adaptation>/<front-end set>" (every adaptation is decoded
        # from the same models, every set sums its front ends' log-likelihoods)
        inner = {}
        sets = FRONT_END_SETS["fsdd"]
        for a, b in combinations(speakers, 2):
            classes, tids, runs = front_end_scores(
                all_feats, labels, [i for i in ids if speaker(i) not in (a, b)],
                [i for i in ids if speaker(i) in (a, b)], fsdd_norm, (n_states, n_mix), front_ends_of("fsdd"),
                candidate_adaptations(), WORD_HMM_ADAPTATION["sat"])
            spk = np.asarray([speaker(i) for i in tids])
            truth = np.asarray([labels[i] for i in tids])
            for adapt in candidate_adaptations():
                for st in sets:
                    pred = np.argmax(sum(runs[fe]["scores"][adapt] for fe in st), axis=1)
                    hit = np.asarray(classes)[pred] == truth
                    res = inner.setdefault(f"{fsdd_norm}/{adapt}/{'+'.join(st)}", {})[f"{a}+{b}"] = {
                        v: float(hit[spk == v].mean()) for v in (a, b)}
                    r.say(f"   inner, {fsdd_norm} CMVN, adaptation {adapt}, front ends {'+'.join(st)}, without {a} "
                          f"and {b}: " + ", ".join(f"{v} {pct(x)}" for v, x in res.items()))
        save(fsdd_dir / "inner.json", {"states": n_states, "mix": n_mix, "normalisation": fsdd_norm,
                                       "front_end_sets": [list(st) for st in sets], "pairs": inner})
    if r.stage(5, "FSDD: leave one speaker out") and not done(fsdd_dir / "results.json"):
        inner = needed(fsdd_dir / "inner.json", 5, 4)
        pairs = inner["pairs"]
        out = {"states": n_states, "mix": n_mix, "front_end_sets": [list(st) for st in FRONT_END_SETS["fsdd"]],
               "folds": [], "systems": {}}
        fold_systems = compared_systems(n_states, n_mix)
        preds: dict = {"gmm-hmm-si": [], **{name: [] for name in fold_systems}}
        truth_all = []
        for s in folds:
            inner_acc = {k: float(np.mean([p[v] for pair, p in pairs[k].items() if s in pair.split("+")
                                           for v in p if v != s])) for k in pairs}
            setting = max(inner_acc, key=lambda k: (inner_acc[k], *setting_preference(k)))
            norm, adapt, fes = parse_setting(setting)
            train_ids = [i for i in ids if speaker(i) != s]
            tids, seqs = test_set(feats, [i for i in ids if speaker(i) == s], norm)
            truth = [labels[i] for i in tids]
            fold = {"test_speaker": s, "n_test": len(tids), "normalisation": norm, "adaptation": adapt,
                    "front_ends": fes, "inner_accuracy": inner_acc}
            for name, (fit, fargs, score, factors) in fold_systems.items():
                if name == "gmm-hmm":  # per front end: the speaker-independent first pass, then the
                    # inner-chosen adaptation; the front ends' log-likelihoods summed
                    hs = hmm_system(all_feats, labels, train_ids, tids, norm, fargs, adapt, fes)
                    classes = hs["classes"]
                    si = [classes[k] for k in hs["si"]]
                    fold["gmm-hmm-si"] = float(np.mean(np.asarray(si) == np.asarray(truth)))
                    preds["gmm-hmm-si"] += si
                    for fe, v in (hs["front_ends"].items() if len(fes) > 1 else ()):
                        p_fe = [classes[k] for k in v["adapted"]]
                        fold[f"gmm-hmm-{fe}"] = float(np.mean(np.asarray(p_fe) == np.asarray(truth)))
                    pred = [classes[k] for k in hs["adapted"]]
                    if adapt != "none":
                        fold["transform"] = per_front_end(hs, lambda v, s=s: v["transforms"][s])
                else:
                    by_class = training_set(feats, labels, train_ids, norm, factors)
                    pred, secs, failures = train_and_classify(by_class, seqs, fit, fargs, score)
                    pred = [sorted(by_class)[k] for k in pred]
                    if name == "hmmlearn":
                        fold["hmmlearn_failed_classes"] = failures
                fold[name] = float(np.mean(np.asarray(pred) == np.asarray(truth)))
                preds[name] += pred
            truth_all += truth
            out["folds"].append(fold)
            r.say(f"   fold {s} ({norm} CMVN, adaptation {adapt}, front ends {'+'.join(fes)}): "
                  f"GMM-HMM {pct(fold['gmm-hmm'])} "
                  f"(first pass {pct(fold['gmm-hmm-si'])}), GMM {pct(fold['gmm'])}"
                  + (f", hmmlearn {pct(fold['hmmlearn'])} ({len(fold['hmmlearn_failed_classes'])} failed word "
                     "models)" if "hmmlearn" in fold else ""))
        from gmmspeech import metrics

        classes = sorted(set(labels.values()))
        for name, p in preds.items():
            out["systems"][name] = {"accuracy": float(np.mean(np.asarray(p) == np.asarray(truth_all)))}
        out["confusion_matrix"] = np.asarray(metrics.confusion_matrix(truth_all, preds["gmm-hmm"],
                                                                      labels=classes)).tolist()
        out["classes"] = classes
        save(fsdd_dir / "results.json", out)

# ----------------------------------------------------------------------------- 6 report
if r.stage(6, "report"):
    from gmmspeech import plots

    dev, dsp, fsdd = load_json(dsp_dir / "dev.json"), load_json(dsp_dir / "results.json"), load_json(fsdd_dir / "results.json")
    if dsp:
        r.results["dspspeech20"] = {"dev": dev, **dsp}
        md = [f"Trained on {len(dsp['train_speakers'])} speakers ({dsp['n_train']} recordings, each also at the "
              f"other speed factors), tested on {len(dsp['test_speakers'])} unseen speakers ({dsp['n_test']} "
              f"recordings). Chosen on the development split: {dsp['states']} states x {dsp['mix']} Gaussians, "
              f"{dsp['normalisation']} CMVN, speaker adaptation {dsp.get('adaptation', 'none')} (fMLLR: "
              "`gmmspeech.mixture.fmllr`, one transform per test speaker from the previous pass's "
              "hypotheses; `gmm-hmm-si` is the speaker-independent first pass). `gmm-hmm` sums the "
              "log-likelihoods of the word models of every front end (" + ", ".join(dsp.get("front_ends", {}) or
              r.results["front_ends"]) + "); `gmm-hmm-<front end>` is one front end's word models alone.", "",
              "| states | Gaussians | CMVN | adaptation | dev accuracy |", "|---|---|---|---|---|"]
        md += [f"| {d['states']} | {d['mix']} | {d['normalisation']} | {d.get('adaptation', 'none')} | "
               f"{pct(d['dev_accuracy'])} |" for d in (dev or {}).get("candidates", [])]
        md += ["", "| system | test accuracy | adaptation | training data | training seconds | word models that failed |",
               "|---|---|---|---|---|---|"]
        for name, s in dsp["systems"].items():
            md.append(f"| {name} | {pct(s['accuracy'])} | {s.get('adaptation', 'none')} | "
                      f"speeds {', '.join(map(str, s['speeds']))} | {s['fit_seconds']} | {len(s['failed_classes'])} |")
            for f in s["failed_classes"][:5]:
                md.append(f"\n{name}, word {f['class']}: {f['error']}")
        r.sections.append(("DSPSpeech-20: unseen speakers", "\n".join(md)))
        plots.confusion_plot(np.asarray(dsp["confusion_matrix"]), dsp["classes"],
                             path=r.out / "confusion_dspspeech20.png",
                             title="DSPSpeech-20, GMM-HMM, test speakers (rows: truth)")
    if fsdd:
        r.results["fsdd"] = fsdd
        md = [f"Leave one speaker out; {fsdd['states']} states x {fsdd['mix']} Gaussians; the speaker "
              "adaptation and the GMM-HMM front-end set (" + "; ".join("+".join(st) for st in
                                                                    fsdd.get("front_end_sets", [[BASE_FRONT_END]]))
              + ": a set sums its front ends' log-likelihoods) of each fold chosen by inner folds over its "
              "training speakers (chosen inner setting <CMVN>/<adaptation>/<front ends> shown); GMM-HMM SI = "
              "the speaker-independent first pass.", "",
              "| held-out speaker | tests | chosen inner setting | inner accuracy | CMVN | adaptation | front ends | "
              "GMM-HMM | GMM-HMM SI | GMM | hmmlearn (failed word models) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for f in fsdd["folds"]:
            fes = f.get("front_ends", [BASE_FRONT_END])
            key = f"{f['normalisation']}/{f.get('adaptation', 'none')}/{'+'.join(fes)}"
            if key not in f["inner_accuracy"]:  # (an earlier version's keys)
                key = max(f["inner_accuracy"], key=f["inner_accuracy"].get)
            hl = (f"{pct(f['hmmlearn'])} ({len(f['hmmlearn_failed_classes'])})" if "hmmlearn" in f else "not run")
            md.append(f"| {f['test_speaker']} | {f['n_test']} | {key} | {pct(f['inner_accuracy'][key])} | "
                      f"{f['normalisation']} | {f.get('adaptation', 'none')} | {'+'.join(fes)} | {pct(f['gmm-hmm'])} | "
                      f"{pct(f['gmm-hmm-si']) if 'gmm-hmm-si' in f else ''} | {pct(f['gmm'])} | {hl} |")
        sys_ = fsdd["systems"]
        md.append(f"| all folds | {sum(f['n_test'] for f in fsdd['folds'])} | | | | | | "
                  f"{pct(sys_['gmm-hmm']['accuracy'])} | "
                  f"{pct(sys_['gmm-hmm-si']['accuracy']) if 'gmm-hmm-si' in sys_ else ''} | "
                  f"{pct(sys_['gmm']['accuracy'])} | "
                  f"{pct(sys_['hmmlearn']['accuracy']) if 'hmmlearn' in sys_ else 'not run'} |")
        alone = [f"{f['test_speaker']}: " + ", ".join(f"{k[len('gmm-hmm-'):]} {pct(v)}" for k, v in f.items()
                                                      if k.startswith("gmm-hmm-") and k != "gmm-hmm-si")
                 for f in fsdd["folds"] if len(f.get("front_ends", ())) > 1]
        if alone:
            md.append(f"\nGMM-HMM per front end alone in the folds that sum several: {'; '.join(alone)}.")
        for f in fsdd["folds"]:
            for fc in f.get("hmmlearn_failed_classes", [])[:3]:
                md.append(f"\nhmmlearn, fold {f['test_speaker']}, digit {fc['class']}: {fc['error']}")
        r.sections.append(("FSDD digits: leave one speaker out", "\n".join(md)))
        plots.confusion_plot(np.asarray(fsdd["confusion_matrix"]), fsdd["classes"], path=r.out / "confusion_fsdd.png",
                             title="FSDD, GMM-HMM, all held-out speakers (rows: truth)")
r.finish()
