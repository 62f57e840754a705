"""GMM-HMM word models: gmmspeech.GMMHMM against hmmlearn (GMMHMM / GaussianHMM), same run.

Data (generated, deterministic): 20 "words", each a 6-state left-to-right HMM with two
Gaussians per state over 39 MFCC-like dimensions; 90 training utterances per word (1,800 in
all, about 70 frames each) and 20 test utterances per word (400).

Training: for every word both implementations start from the SAME initial parameters (our
flat start with Viterbi re-segmentation, then splitting to M Gaussians per state; not timed
for either) and run the same fixed number of Baum-Welch iterations (no early stop) with the
same objective (paths may end in any state, hmmlearn's model; start in state 0, left-to-right
transitions). The final average log-likelihood per frame of both models is evaluated on the
training data by gmmspeech's forward algorithm (checked against hmmlearn's own ``score``).

Decoding: every test utterance scored against all 20 models (forward log-likelihood, hmmlearn
``score`` per utterance; Viterbi, hmmlearn ``decode`` per utterance); accuracy of the word
decisions is printed for both.

hmmlearn is time-boxed: it trains ``--hmmlearn-words`` of the 20 words (default 2) and
decodes ``--hmmlearn-utts`` test utterances (default 50); its totals for all 20 words /
400 utterances are extrapolated linearly (per word, per utterance) and marked as such.

Log-likelihoods: with one Gaussian per state (``GaussianHMM``) both M-steps are exact
maximum likelihood and the trained models agree. hmmlearn's ``GMMHMM`` accumulates its
covariance statistics around the means of the *previous* iteration (``X - self.means_`` in
``_accumulate_sufficient_statistics``), so its variances are inflated by the square of the
mean update and each iteration gains less than an exact EM step; its iterations approach the
same fixed points, more slowly. The difference per frame after the fixed number of
iterations is printed (gmmspeech's is higher).

Usage::

    python bench/bench_hmm.py                    # M = 1 (GaussianHMM), 2 and 4 (GMMHMM)
    python bench/bench_hmm.py --mix 4 --iters 10 --hmmlearn-words 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

D = 39
S = 6
N_WORDS = 20


def make_words(seed: int = 0):
    """20 true word models: per-state means and scales, two components per state."""
    rng = np.random.default_rng(seed)
    scale = 10.0 / (1.0 + np.arange(D)) ** 0.7
    words = []
    for _ in range(N_WORDS):
        means = rng.normal(size=(S, 2, D)) * scale * 1.5
        stds = np.exp(rng.normal(scale=0.3, size=(S, 2, D))) * scale * 0.8
        stay = rng.uniform(0.8, 0.93, S)
        words.append((means, stds, stay))
    return words


def sample_utterance(rng, word):
    means, stds, stay = word
    parts = []
    for j in range(S):
        dur = rng.geometric(1.0 - stay[j])
        comp = rng.integers(0, 2, dur)
        parts.append(means[j, comp] + rng.standard_normal((dur, D)) * stds[j, comp])
    return np.concatenate(parts)


def make_data(n_train: int, n_test: int, seed: int = 0):
    words = make_words(seed)
    rng = np.random.default_rng(seed + 1)
    train = [[sample_utterance(rng, w) for _ in range(n_train)] for w in words]
    test = [(k, sample_utterance(rng, w)) for k, w in enumerate(words) for _ in range(n_test)]
    return train, test


def initial_models(train, n_mix):
    from gmmspeech import GMMHMM

    models = []
    for seqs in train:
        m = GMMHMM(S, n_mix, require_final=False, max_iter=0, split_iter=0, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models.append(m.fit(seqs))
    return models


def ours_train(init, seqs, n_iter, n_threads=None):
    # hmmlearn's M-step: no relative variance floor, min_covar 1e-6 (= our reg_covar)
    m = init.__class__(**{**init.get_params(), "init_params": "", "max_iter": n_iter, "tol": 0.0,
                          "var_floor_rel": 0.0, "reg_covar": 1e-6, "n_threads": n_threads})
    for name in ("startprob_", "transmat_", "weights_", "means_", "covariances_", "precisions_cholesky_",
                 "var_floor_", "n_features_in_"):
        setattr(m, name, np.array(getattr(init, name), copy=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(seqs)


def hmmlearn_model(init, n_iter):
    from hmmlearn import hmm

    n_mix = init.weights_.shape[1]
    if n_mix == 1:
        h = hmm.GaussianHMM(S, covariance_type="diag", n_iter=n_iter, tol=-np.inf, init_params="",
                            params="stmc", min_covar=1e-6, covars_prior=0.0)
        h.covars_ = init.covariances_[:, 0]
        h.means_ = init.means_[:, 0]
    else:
        h = hmm.GMMHMM(S, n_mix, covariance_type="diag", n_iter=n_iter, tol=-np.inf, init_params="",
                       params="stmcw", min_covar=1e-6)
        h.weights_ = init.weights_.copy()
        h.means_ = init.means_.copy()
        h.covars_ = init.covariances_.copy()
    h.startprob_ = init.startprob_.copy()
    h.transmat_ = init.transmat_.copy()
    return h


def as_ours(h, like):
    """hmmlearn's fitted parameters as a gmmspeech model (to evaluate both the same way)."""
    from gmmspeech import GMMHMM

    if like.weights_.shape[1] == 1:
        w, mu, cov = np.ones((S, 1)), h.means_[:, None], h.covars_[:, None]
        cov = np.stack([np.diag(c) for c in h.covars_])[:, None] if cov.ndim == 4 else cov
    else:
        w, mu, cov = h.weights_, h.means_, h.covars_
    return GMMHMM.from_params(h.startprob_, h.transmat_, w, mu, cov, covariance_type="diag",
                              require_final=False, dtype=np.float64)


def run_case(train, test, n_mix, n_iter, hl_words, hl_utts):
    n_frames = [sum(len(x) for x in seqs) for seqs in train]
    t = time.perf_counter()
    init = initial_models(train, n_mix)
    t_init = time.perf_counter() - t

    # compile the numba kernels first (cached on disk; not part of anyone's training time)
    ours_train(init[0], train[0][:4], 1, n_threads=1).score_sequences(train[0][:2])
    # ours twice: one thread, and the default (threads over sequences, one per core)
    t = time.perf_counter()
    ours1 = [ours_train(init[k], train[k], n_iter, n_threads=1) for k in range(N_WORDS)]
    t_ours1 = time.perf_counter() - t
    t = time.perf_counter()
    ours = [ours_train(init[k], train[k], n_iter) for k in range(N_WORDS)]
    t_ours = time.perf_counter() - t
    same = max(abs(a.lower_bound_ - b.lower_bound_) for a, b in zip(ours, ours1))
    # the whole recipe (flat start, splitting, Baum-Welch with tol), for reference
    from gmmspeech import GMMHMM

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seqs in train:
            GMMHMM(S, n_mix, require_final=False).fit(seqs)
    t_full = time.perf_counter() - t

    have_hl = True
    try:
        import hmmlearn  # noqa: F401
    except ImportError:
        have_hl = False
    hl, t_hl, ll_rows, failures = [], 0.0, [], []
    if have_hl:
        for k in range(hl_words):
            X = np.concatenate(train[k])
            lengths = [len(x) for x in train[k]]
            h = hmmlearn_model(init[k], n_iter)
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                h.fit(X, lengths)
            t_hl += time.perf_counter() - t
            hl.append(h)
            ll_o = ours[k].score(train[k]) / n_frames[k]
            hist = np.asarray(list(h.monitor_.history), dtype=float)
            conv = bool(np.all(np.isfinite(hist)) and np.all(np.diff(hist) > -1e-6 * np.abs(hist[1:])))
            try:
                ev = as_ours(h, init[k])
            except ValueError:  # hmmlearn left a covariance that is not positive: a failed fit
                cov = np.asarray(h.covars_)
                failures.append(f"word {k}: hmmlearn's fitted covariances are not all positive "
                                f"(min {cov.min():.3g}, {int(np.sum(cov <= 0))} of {cov.size} <= 0)")
                ll_rows.append((k, ll_o, float("nan"), float("nan"), conv))
                continue
            ll_h = ev.score(train[k]) / n_frames[k]
            with np.errstate(all="ignore"):
                ll_check = h.score(X, lengths) / n_frames[k]
            ll_rows.append((k, ll_o, ll_h, ll_check, conv))

    # decoding: every test utterance against every model
    test_x = [x for _, x in test]
    truth = np.array([k for k, _ in test])
    for m in ours1:
        m.set_params(n_threads=1)
    t = time.perf_counter()
    sc1 = np.stack([m.score_sequences(test_x) for m in ours1], axis=1)
    t_dec_ours1 = time.perf_counter() - t
    t = time.perf_counter()
    sc = np.stack([m.score_sequences(test_x) for m in ours], axis=1)
    t_dec_ours = time.perf_counter() - t
    same = max(same, float(np.max(np.abs(sc - sc1) / np.maximum(1.0, np.abs(sc)))))
    acc_ours = float(np.mean(sc.argmax(1) == truth))
    t = time.perf_counter()
    vit = np.stack([m.viterbi_scores(test_x) for m in ours], axis=1)
    t_vit_ours = time.perf_counter() - t
    acc_vit = float(np.mean(vit.argmax(1) == truth))

    res = {"n_mix": n_mix, "t_init": t_init, "t_ours": t_ours, "t_full": t_full, "n_iter": n_iter,
           "t_ours1": t_ours1, "t_dec_ours1": t_dec_ours1, "threads_diff": same,
           "acc_ours": acc_ours, "acc_vit": acc_vit, "t_dec_ours": t_dec_ours, "t_vit_ours": t_vit_ours,
           "ll_rows": ll_rows, "have_hl": have_hl, "failures": failures}
    if have_hl:
        hl_full = [hmmlearn_model(o, 0) for o in ours]  # hmmlearn decoding with our trained models
        for h, o in zip(hl_full, ours):
            if n_mix == 1:
                h.means_, h.covars_ = o.means_[:, 0], o.covariances_[:, 0]
            else:
                h.weights_, h.means_, h.covars_ = o.weights_, o.means_, o.covariances_
            h.startprob_, h.transmat_ = o.startprob_, o.transmat_
        sub = np.random.default_rng(3).choice(len(test_x), size=min(hl_utts, len(test_x)), replace=False)
        t = time.perf_counter()
        sc_h = np.array([[h.score(test_x[i]) for h in hl_full] for i in sub])
        t_dec_hl = (time.perf_counter() - t) * len(test_x) / len(sub)
        t = time.perf_counter()
        vit_h = np.array([[h.decode(test_x[i])[0] for h in hl_full] for i in sub])
        t_vit_hl = (time.perf_counter() - t) * len(test_x) / len(sub)
        res.update(t_hl=t_hl * N_WORDS / max(hl_words, 1), t_dec_hl=t_dec_hl, t_vit_hl=t_vit_hl,
                   dec_diff=float(np.max(np.abs(sc_h - sc[sub]) / np.maximum(1.0, np.abs(sc[sub])))),
                   vit_diff=float(np.max(np.abs(vit_h - vit[sub]) / np.maximum(1.0, np.abs(vit[sub])))),
                   same_decisions=float(np.mean(sc_h.argmax(1) == sc[sub].argmax(1))))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mix", type=int, nargs="+", default=[1, 2, 4], help="Gaussians per state (cases)")
    ap.add_argument("--iters", type=int, default=10, help="Baum-Welch iterations (both)")
    ap.add_argument("--train", type=int, default=90, help="training utterances per word")
    ap.add_argument("--test", type=int, default=20, help="test utterances per word")
    ap.add_argument("--hmmlearn-words", type=int, default=2, help="words hmmlearn trains (time box)")
    ap.add_argument("--hmmlearn-utts", type=int, default=50, help="test utterances hmmlearn decodes")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    train, test = make_data(args.train, args.test)
    n_utt = sum(len(s) for s in train)
    n_fr = sum(len(x) for s in train for x in s)
    print(f"{N_WORDS} words x {S} states, {n_utt} training utterances ({n_fr} frames of {D} dims), "
          f"{len(test)} test utterances; {args.iters} Baum-Welch iterations from the same start")
    print(f"hmmlearn time box: trains {args.hmmlearn_words} of {N_WORDS} words and decodes "
          f"{args.hmmlearn_utts} of {len(test)} utterances; its totals are extrapolated (per word, "
          "per utterance)\n")
    rows = []
    with threadpool_limits(1, user_api="blas"):  # both single-threaded BLAS (fair, and stable under load)
        for m in args.mix:
            r = run_case(train, test, m, args.iters, args.hmmlearn_words, args.hmmlearn_utts)
            rows.append(r)
            peer = "GaussianHMM" if m == 1 else "GMMHMM"
            print(f"M={m} (hmmlearn {peer}):")
            print(f"  train 20 words: gmmspeech {r['t_ours']:.2f} s (n_threads=1: {r['t_ours1']:.2f} s; "
                  f"+ flat start/splits {r['t_init']:.2f} s; whole fit with tol {r['t_full']:.2f} s)", end="")
            if r["have_hl"]:
                print(f", hmmlearn {r['t_hl']:.2f} s (extrapolated) -> {r['t_hl'] / r['t_ours']:.1f}x "
                      f"(n_threads=1: {r['t_hl'] / r['t_ours1']:.1f}x)")
                for k, lo, lh, lc, conv in r["ll_rows"]:
                    print(f"    word {k}: avg log-lik/frame gmmspeech {lo:.5f}, hmmlearn {lh:.5f} "
                          f"(its own score {lc:.5f}), diff {lo - lh:+.2e}, hmmlearn monotone {conv}")
                for f in r["failures"]:
                    print(f"    FAILED {f}")
                print(f"  decode 400 x 20 (forward): gmmspeech {r['t_dec_ours']:.3f} s (n_threads=1: "
                      f"{r['t_dec_ours1']:.3f} s), hmmlearn {r['t_dec_hl']:.2f} s (extrapolated) -> "
                      f"{r['t_dec_hl'] / r['t_dec_ours']:.1f}x (n_threads=1: {r['t_dec_hl'] / r['t_dec_ours1']:.1f}x); "
                      f"max rel diff of scores {r['dec_diff']:.1e}, same decisions {r['same_decisions']:.3f}")
                print(f"  one thread vs default threads: max difference {r['threads_diff']:.1e}")
                print(f"  decode 400 x 20 (Viterbi): gmmspeech {r['t_vit_ours']:.3f} s, hmmlearn "
                      f"{r['t_vit_hl']:.2f} s (extrapolated) -> {r['t_vit_hl'] / r['t_vit_ours']:.1f}x; "
                      f"max rel diff {r['vit_diff']:.1e}")
            else:
                print("\n  hmmlearn not installed: no comparison")
            print(f"  word accuracy (forward) {r['acc_ours']:.4f}, (Viterbi) {r['acc_vit']:.4f}\n")
    if rows and rows[0]["have_hl"]:
        print("| M per state | peer | train gmmspeech s (1 thread / default) | train hmmlearn s | x (1 / default) | "
              "decode gmmspeech s (1 / default) | decode hmmlearn s | x (1 / default) | Viterbi x | max avg-loglik diff |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            peer = "GaussianHMM" if r["n_mix"] == 1 else "GMMHMM"
            diffs = [abs(lo - lh) for _, lo, lh, _, _ in r["ll_rows"] if np.isfinite(lh)]
            dl = max(diffs) if diffs else float("nan")
            print(f"| {r['n_mix']} | {peer} | {r['t_ours1']:.2f} / {r['t_ours']:.2f} | {r['t_hl']:.1f}* | "
                  f"{r['t_hl'] / r['t_ours1']:.1f} / {r['t_hl'] / r['t_ours']:.1f} | "
                  f"{r['t_dec_ours1']:.3f} / {r['t_dec_ours']:.3f} | {r['t_dec_hl']:.1f}* | "
                  f"{r['t_dec_hl'] / r['t_dec_ours1']:.1f} / {r['t_dec_hl'] / r['t_dec_ours']:.1f} | "
                  f"{r['t_vit_hl'] / r['t_vit_ours']:.1f} | {dl:.1e} |"
                  + (f" hmmlearn failed on {len(r['failures'])} of {len(r['ll_rows'])} words" if r["failures"] else ""))
        print("\n* extrapolated from the time-boxed subset")


if __name__ == "__main__":
    main()
