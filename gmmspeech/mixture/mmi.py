"""Maximum mutual information (MMI) training of a set of isolated-word GMM-HMMs.

ML (Baum-Welch) training fits every class model to its own data only; MMI training
re-estimates the SET of class models to make the correct class more probable against all
the others (Bahl et al. 1986; Povey 2003, "Discriminative training for large vocabulary
speech recognition", chapters 4-5; Kaldi's ``train_mmi.sh`` / HTK's ``HMMIRest``). For
isolated words no lattices are needed: the denominator "recognition network" is every
class model. With acoustic scale ``kappa`` and a flat class prior, an utterance ``X_u`` of
class ``c_u`` has the class posteriors

    ``P(w | X_u) = softmax_w(kappa log p(X_u | w))``

and the objective is ``F = sum_u log P(c_u | X_u)``. Its statistics, per Gaussian ``m`` of
every class model, are the zeroth, first and second order sums
(:class:`~gmmspeech.mixture.stats.SufficientStats`) of

* the **numerator**: the forward-backward Gaussian occupancies of every utterance under its
  own class model (the ML statistics);
* the **denominator**: for every model ``w``, the occupancies of every utterance under ``w``
  weighted by ``P(w | X_u)`` (pairs with ``P(w | X_u) < min_posterior`` are skipped: the
  lattice pruning of large-vocabulary MMI).

**Extended Baum-Welch** (Povey 2003, eqs. 4.20-4.28; Kaldi's ``ebw-diag-gmm.cc``) then
updates every Gaussian's mean and diagonal variance,

    ``mu' = (x_num - x_den + D mu) / (g_num - g_den + D)``,
    ``s2' = (S_num - S_den + D (s2 + mu**2)) / (g_num - g_den + D) - mu'**2``,

with ``D = max(2 D_min, E g_den)``, ``D_min`` the smallest constant that keeps every
variance of the Gaussian positive (the largest root of a quadratic per dimension, and
``g_num - g_den + D > 0``) and ``E = 2``. Before the update the numerator statistics are
**I-smoothed** (Povey 2003, 5.1): ``tau`` frames of the Gaussian's own ML estimate from the
numerator statistics are added (``g_num += tau``, ``x_num += tau mu_ml``,
``S_num += tau (s2_ml + mu_ml**2)``), which pulls the update toward ML (``tau`` -> infinity
gives the ML re-estimate). Variances are then floored at the model's own variance floor
(``var_floor_``). Mixture weights: Povey's weight update (``weight_update="mmi"``, eq. 4.32,
iterated, with the numerator counts I-smoothed by ``tau`` frames per state toward the ML
weights, weights floored at ``1e-5``; Kaldi's smoothed update) or the numerator ML estimate
(``"ml"``). Transition probabilities are not changed.

Only diagonal covariances are supported (Kaldi's and HTK's MMI are diagonal); a full
covariance model is rejected with a :class:`ValueError` naming ``covariance_type``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from gmmspeech.mixture.init import stats_from_resp
from gmmspeech.mixture.stats import SufficientStats

#: weights below this are floored (then renormalised), as Kaldi's ``min_gaussian_weight``
MIN_WEIGHT = 1e-5
#: a Gaussian whose smoothed numerator and denominator counts are both below this keeps its parameters
_MIN_COUNT = 1e-10


@dataclass
class MMIStats:
    """Numerator and denominator statistics of one pass over the training data.

    Attributes
    ----------
    num, den : dict
        Class label -> :class:`SufficientStats` with ``S * M`` components (state-major, as
        :meth:`GMMHMM.gaussian_posteriors <gmmspeech.mixture.hmm.GMMHMM.gaussian_posteriors>`:
        component ``j * M + m`` is Gaussian ``m`` of state ``j``).
    loglik : ndarray (U, C)
        ``log p(X_u | w)`` of every utterance under every class model (columns in the order
        of the models' keys).
    posteriors : ndarray (U, C)
        ``P(w | X_u)`` at the acoustic scale.
    objective : float
        ``sum_u log P(c_u | X_u)``.
    accuracy : float
        Fraction of utterances whose most likely class is the correct one.
    """

    num: dict
    den: dict
    loglik: np.ndarray
    posteriors: np.ndarray
    objective: float
    accuracy: float


@dataclass
class MMIResult:
    """The outcome of :func:`mmi_train`.

    Attributes
    ----------
    models : dict
        Class label -> new :class:`~gmmspeech.mixture.hmm.GMMHMM` after the last iteration.
    history : list of dict
        ``history[i]``: the models after ``i`` iterations (``history[0]``: the input models).
    trace : list of dict
        One entry per element of ``history``: ``iteration``, ``objective`` (MMI objective
        ``sum_u log P(c_u | X_u)`` of the training data under those models), ``accuracy``
        (training accuracy), ``objective_per_utterance``.
    """

    models: dict
    history: list = field(default_factory=list)
    trace: list = field(default_factory=list)


# ---------------------------------------------------------------------------- validation
def _check_models(models) -> list:
    from gmmspeech.mixture.hmm import GMMHMM

    if not isinstance(models, dict) or not models:
        raise ValueError(f"models must be a non-empty dict of class label -> GMMHMM, got {type(models).__name__}")
    labels = list(models)
    d = None
    for c in labels:
        m = models[c]
        if not isinstance(m, GMMHMM):
            raise TypeError(f"models[{c!r}] must be a GMMHMM, got {type(m).__name__}")
        m._check_is_fitted()
        if m.covariance_type != "diag":
            raise ValueError(
                f"MMI training supports covariance_type='diag' only; models[{c!r}] has "
                f"covariance_type={m.covariance_type!r}"
            )
        if d is None:
            d = m.means_.shape[2]
        elif m.means_.shape[2] != d:
            raise ValueError(f"models[{c!r}] has {m.means_.shape[2]} features, the others {d}")
    return labels


def _check_data(models, labels, X, y):
    from gmmspeech.classes import as_utterances

    seqs = as_utterances(X, name="X")
    if len(y) != len(seqs):
        raise ValueError(f"X and y must have the same length; got {len(seqs)} and {len(y)}")
    missing = sorted({str(c) for c in y if c not in models})
    if missing:
        raise ValueError(f"y has labels with no model: {missing[:5]}")
    d = models[labels[0]].means_.shape[2]
    for i, x in enumerate(seqs):
        if x.shape[1] != d:
            raise ValueError(f"X[{i}] has {x.shape[1]} features per frame, the models {d}")
    index = {c: k for k, c in enumerate(labels)}
    return seqs, np.array([index[c] for c in y], dtype=np.int64)


def _check_options(acoustic_scale, tau, E, min_posterior, weight_update):
    def number(v):
        return not isinstance(v, bool) and np.isscalar(v) and isinstance(v, (int, float, np.integer, np.floating))

    if not (number(acoustic_scale) and np.isfinite(acoustic_scale) and acoustic_scale > 0):
        raise ValueError(f"Invalid value for 'acoustic_scale': {acoustic_scale!r}. It must be a finite number > 0")
    if not (number(tau) and tau >= 0):
        raise ValueError(f"Invalid value for 'tau': {tau!r}. It must be a number >= 0 (inf: ML)")
    if not (number(E) and np.isfinite(E) and E >= 0):
        raise ValueError(f"Invalid value for 'E': {E!r}. It must be a finite number >= 0")
    if not (number(min_posterior) and 0 <= min_posterior < 1):
        raise ValueError(f"Invalid value for 'min_posterior': {min_posterior!r}. It must be in [0, 1)")
    if weight_update not in ("mmi", "ml"):
        raise ValueError(f"Invalid value for 'weight_update': {weight_update!r}. It should be 'mmi' or 'ml'")


# ---------------------------------------------------------------------------- statistics
def _class_scores(model, seqs):
    return model.score_sequences(seqs)


def _class_stats(model, seqs, num_weight, den_weight):
    """Numerator and denominator statistics of one class model over the utterances it is
    evaluated on (``num_weight``/``den_weight``: per-utterance weights)."""
    post = model.gaussian_posteriors(seqs, method="forward-backward")
    lengths = [x.shape[0] for x in seqs]
    x = np.concatenate([np.asarray(s, dtype=np.float64) for s in seqs])
    out = []
    for w in (num_weight, den_weight):
        st = stats_from_resp(x, post, "diag", sample_weight=np.repeat(w, lengths))
        out.append(st)
    return out


def _empty(model) -> SufficientStats:
    s, m, d = model.means_.shape
    return SufficientStats.zeros(s * m, d, "diag")


def mmi_stats(models, X, y, *, acoustic_scale: float = 0.1, min_posterior: float = 1e-4,
              n_jobs: int | None = 1) -> MMIStats:
    """Numerator and denominator statistics of isolated-word MMI (see the module notes).

    Parameters
    ----------
    models : dict
        Class label -> fitted diagonal :class:`~gmmspeech.mixture.hmm.GMMHMM`.
    X : list of arrays (T_u, D)
        Training utterances.
    y : sequence
        The class label of every utterance (a key of ``models``).
    acoustic_scale : float, default 0.1
        ``kappa``: the log-likelihoods are scaled by it before the class posteriors.
    min_posterior : float, default 1e-4
        Denominator pairs ``(u, w)`` with ``P(w | X_u)`` below this are skipped (0: none).
    n_jobs : int or None, default 1
        Classes in parallel (:func:`gmmspeech.parallel.parallel_map`).

    Returns
    -------
    MMIStats
    """
    labels = _check_models(models)
    _check_options(acoustic_scale, 0.0, 0.0, min_posterior, "mmi")
    seqs, yi = _check_data(models, labels, X, y)
    return _mmi_stats(models, labels, seqs, yi, float(acoustic_scale), float(min_posterior), n_jobs)


def _mmi_stats(models, labels, seqs, yi, kappa, min_posterior, n_jobs, want_stats=True) -> MMIStats:
    from gmmspeech.parallel import parallel_map
    from gmmspeech.threads import single_thread_blas

    ms = [models[c] for c in labels]
    u = np.arange(len(seqs))
    with single_thread_blas():
        ll = np.stack(parallel_map(_class_scores, [(m, seqs) for m in ms], n_jobs=n_jobs, star=True), axis=1)
    scaled = kappa * ll
    log_post = scaled - logsumexp(scaled, axis=1, keepdims=True)
    post = np.exp(log_post)
    objective = float(log_post[u, yi].sum())
    accuracy = float(np.mean(np.argmax(ll, axis=1) == yi))
    if not want_stats:
        return MMIStats({}, {}, ll, post, objective, accuracy)
    tasks, which = [], []
    for k, m in enumerate(ms):
        sel = np.flatnonzero((yi == k) | (post[:, k] >= min_posterior))
        which.append(sel)
        if sel.size:
            tasks.append((m, [seqs[i] for i in sel], (yi[sel] == k).astype(np.float64), post[sel, k]))
    with single_thread_blas():
        parts = iter(parallel_map(_class_stats, tasks, n_jobs=n_jobs, star=True))
    num, den = {}, {}
    for k, c in enumerate(labels):
        if which[k].size:
            num[c], den[c] = next(parts)
        else:
            num[c], den[c] = _empty(ms[k]), _empty(ms[k])
    return MMIStats(num, den, ll, post, objective, accuracy)


# ---------------------------------------------------------------------------- updates
def _ml_prior(num: SufficientStats, means, covariances, var_floor, reg_covar):
    """Per Gaussian ML mean / variance from the numerator statistics (the model's own
    parameters where the numerator count is zero): the I-smoothing prior."""
    n = num.n
    seen = n > _MIN_COUNT
    nk = np.where(seen, n, 1.0)[:, None]
    mu = np.where(seen[:, None], num.f / nk, means)
    var = num.s / nk - mu**2 + reg_covar
    var = np.where(seen[:, None], np.maximum(var, var_floor), covariances)
    return mu, var


def ebw_update(num: SufficientStats, den: SufficientStats, *, means, covariances, var_floor,
               tau: float = 100.0, E: float = 2.0, reg_covar: float = 0.0):
    """Extended Baum-Welch update of diagonal Gaussians (I-smoothed), see the module notes.

    Parameters
    ----------
    num, den : SufficientStats (kind "diag", K components, D features)
        Numerator and denominator statistics.
    means, covariances : arrays (K, D)
        The current parameters (``mu``, ``s2`` of the formulas).
    var_floor : float or array (D,)
        Variance floor applied to the result.
    tau : float, default 100
        I-smoothing frames toward the ML estimate of the numerator statistics (``inf``: the
        ML estimate).
    E : float, default 2
        ``D >= E * g_den``.
    reg_covar : float, default 0
        Added to the variances of the ML prior (the model's ``reg_covar``, as its M-step).

    Returns
    -------
    means, covariances : arrays (K, D)
    D : array (K,)
        The constant used per Gaussian (0 where the Gaussian kept its parameters).
    """
    for name, st in (("num", num), ("den", den)):
        if not isinstance(st, SufficientStats) or st.kind != "diag":
            raise ValueError(f"{name} must be diagonal SufficientStats")
    mu0 = np.asarray(means, dtype=np.float64)
    v0 = np.asarray(covariances, dtype=np.float64)
    if mu0.shape != num.f.shape or v0.shape != num.f.shape or den.f.shape != num.f.shape:
        raise ValueError(
            f"shapes differ: num {num.f.shape}, den {den.f.shape}, means {mu0.shape}, covariances {v0.shape}"
        )
    if isinstance(tau, bool) or not np.isscalar(tau) or not float(tau) >= 0:
        raise ValueError(f"Invalid value for 'tau': {tau!r}. It must be >= 0")
    if isinstance(E, bool) or not np.isscalar(E) or not (np.isfinite(E) and float(E) >= 0):
        raise ValueError(f"Invalid value for 'E': {E!r}. It must be a finite number >= 0")
    floor = np.broadcast_to(np.asarray(var_floor, dtype=np.float64), mu0.shape[1:])
    mu_ml, v_ml = _ml_prior(num, mu0, v0, floor, float(reg_covar))
    if np.isinf(tau):
        return mu_ml, v_ml, np.zeros(mu0.shape[0])
    tau = float(tau)
    # I-smoothed numerator minus denominator
    a = num.n + tau - den.n
    x = num.f + tau * mu_ml - den.f
    s = num.s + tau * (v_ml + mu_ml**2) - den.s
    # smallest D with positive variances: (a + D)^2 var(D) = v0 D^2 + b D + c > 0 (v0 > 0)
    b = s + a[:, None] * (v0 + mu0**2) - 2.0 * x * mu0
    c = a[:, None] * s - x**2
    disc = b * b - 4.0 * v0 * c
    root = np.where(disc > 0, (-b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * v0), 0.0)
    d_min = np.maximum(np.max(root, axis=1, initial=0.0), np.maximum(-a, 0.0))
    D = np.maximum(2.0 * d_min, float(E) * den.n)
    denom = a + D
    keep = ~(denom > _MIN_COUNT)
    dn = np.where(keep, 1.0, denom)[:, None]
    mu = (x + D[:, None] * mu0) / dn
    var = (s + D[:, None] * (v0 + mu0**2)) / dn - mu**2
    mu = np.where(keep[:, None], mu0, mu)
    var = np.where(keep[:, None], v0, var)
    var = np.maximum(var, floor)
    bad = ~(np.all(np.isfinite(mu), axis=1) & np.all(np.isfinite(var), axis=1))
    mu[bad], var[bad] = mu0[bad], v0[bad]
    return mu, var, np.where(keep | bad, 0.0, D)


def ebw_weights(num_counts, den_counts, weights, *, tau: float = 100.0, update: str = "mmi",
                n_iter: int = 100):
    """Mixture weights of every state from numerator / denominator Gaussian counts.

    Parameters
    ----------
    num_counts, den_counts : arrays (S, M)
    weights : array (S, M)
        The current weights.
    tau : float, default 100
        Frames per state of I-smoothing toward the numerator ML weights (``update="mmi"``).
    update : {"mmi", "ml"}
        ``"mmi"``: Povey's (2003, eq. 4.32) iterative update, maximising
        ``sum_m g_num_m log c_m - g_den_m c_m / c_m_old``; ``"ml"``: the numerator counts normalised.
    n_iter : int, default 100
        Iterations of the ``"mmi"`` update.

    Returns
    -------
    weights : array (S, M), rows summing to 1, every entry >= ``MIN_WEIGHT`` / (1 + M MIN_WEIGHT)
    """
    if update not in ("mmi", "ml"):
        raise ValueError(f"Invalid value for 'update': {update!r}. It should be 'mmi' or 'ml'")
    gn = np.asarray(num_counts, dtype=np.float64)
    gd = np.asarray(den_counts, dtype=np.float64)
    c0 = np.asarray(weights, dtype=np.float64)
    occ = gn.sum(axis=1, keepdims=True)
    seen = occ[:, 0] > _MIN_COUNT
    ml = gn / np.where(seen[:, None], occ, 1.0)
    if update == "ml" or np.isinf(tau):
        out = ml
    else:
        g = gn + float(tau) * ml  # tau frames of the ML weights
        ratio = gd / np.maximum(c0, MIN_WEIGHT)
        k = ratio.max(axis=1, keepdims=True) - ratio
        c = c0.copy()
        for _ in range(int(n_iter)):
            c = g + k * c
            c = c / np.maximum(c.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        out = c
    out = np.where(seen[:, None], out, c0)
    out = np.maximum(out, MIN_WEIGHT)
    return out / out.sum(axis=1, keepdims=True)


def _update_model(model, num: SufficientStats, den: SufficientStats, *, tau, E, weight_update):
    s, m, d = model.means_.shape
    mu, var, _ = ebw_update(num, den, means=model.means_.reshape(s * m, d),
                            covariances=model.covariances_.reshape(s * m, d), var_floor=model.var_floor_,
                            tau=tau, E=E, reg_covar=float(model.reg_covar))
    w = ebw_weights(num.n.reshape(s, m), den.n.reshape(s, m), model.weights_, tau=tau, update=weight_update)
    new = copy.deepcopy(model)
    new._set_emissions(w, mu.reshape(s, m, d), var.reshape(s, m, d))
    return new


def mmi_train(models, X, y, *, n_iter: int = 4, acoustic_scale: float = 0.1, tau: float = 100.0,
              E: float = 2.0, weight_update: str = "mmi", min_posterior: float = 1e-4,
              n_jobs: int | None = 1, verbose: int = 0) -> MMIResult:
    """MMI training of a set of isolated-word class models by extended Baum-Welch.

    Parameters
    ----------
    models : dict
        Class label -> fitted diagonal :class:`~gmmspeech.mixture.hmm.GMMHMM` (usually the
        ML models). Not modified.
    X : list of arrays (T_u, D)
        Training utterances (the ML training data).
    y : sequence
        The class label of every utterance (a key of ``models``).
    n_iter : int, default 4
        EBW iterations.
    acoustic_scale : float, default 0.1
        ``kappa`` (see the module notes).
    tau : float, default 100
        I-smoothing frames (``inf``: ML re-estimation of the emissions).
    E : float, default 2
        EBW constant: ``D >= E * g_den`` per Gaussian.
    weight_update : {"mmi", "ml"}, default "mmi"
        Mixture weights by Povey's update or the numerator ML estimate (:func:`ebw_weights`).
    min_posterior : float, default 1e-4
        Denominator pruning (see :func:`mmi_stats`).
    n_jobs : int or None, default 1
        Classes in parallel.
    verbose : int, default 0
        1: print the objective and accuracy of every iteration.

    Returns
    -------
    MMIResult
        New models (the inputs are unchanged), the models after every iteration and the
        trace of the objective and training accuracy.
    """
    labels = _check_models(models)
    _check_options(acoustic_scale, tau, E, min_posterior, weight_update)
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ValueError(f"Invalid value for 'n_iter': {n_iter!r}. It must be a non-negative integer")
    seqs, yi = _check_data(models, labels, X, y)
    cur = {c: models[c] for c in labels}
    history, trace = [dict(cur)], []
    for it in range(int(n_iter) + 1):
        st = _mmi_stats(cur, labels, seqs, yi, float(acoustic_scale), float(min_posterior), n_jobs,
                        want_stats=it < n_iter)
        trace.append({"iteration": it, "objective": st.objective, "accuracy": st.accuracy,
                      "objective_per_utterance": st.objective / len(seqs)})
        if verbose:
            print(f"MMI iteration {it}: objective {st.objective:.4f} accuracy {st.accuracy:.4f}")
        if it == n_iter:
            break
        cur = {c: _update_model(cur[c], st.num[c], st.den[c], tau=float(tau), E=float(E),
                                weight_update=weight_update) for c in labels}
        history.append(dict(cur))
    return MMIResult(models=cur, history=history, trace=trace)
