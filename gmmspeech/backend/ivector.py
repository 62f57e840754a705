"""Total variability (i-vector) model: training by EM and fast extraction.

Model (Kenny; Dehak et al. 2011, "Front-end factor analysis for speaker verification"):
the mean supervector of an utterance is ``m + o + T w`` with ``w ~ N(0, I_R)``; ``m`` are
the UBM means, ``o`` an offset learnt by minimum-divergence re-estimation (zero at the
start), ``T`` the (K D x R) total-variability matrix, stored as ``(K, D, R)``. With an
utterance's Baum-Welch statistics ``N_c`` and ``F~_c = F_c - N_c (m_c + o_c)`` and the UBM
precisions ``P_c``:

* posterior precision  ``L = I + sum_c N_c T_c^T P_c T_c``,
* posterior mean (the i-vector)  ``w = L^{-1} sum_c T_c^T P_c F~_c``,
* posterior covariance  ``L^{-1}``.

The per-component ``T_c^T P_c T_c`` (K, R, R) are computed once per model, so ``L`` for a
batch of utterances is one GEMM ``N @ TT`` (B x K by K x R^2) instead of a (R x KD x R)
product per utterance, and the linear terms of a batch are one GEMM too.

EM (Kenny 2005; Dehak 2011): E-step accumulates ``A_c = sum_u N_c (L^{-1} + w w^T)``,
``C_c = sum_u F~_c w^T`` and the prior statistics ``sum w``, ``sum (L^{-1} + w w^T)``;
M-step ``T_c = C_c A_c^{-1}``; minimum divergence (Kenny, Brümmer) then re-estimates the
prior ``N(mu, S)`` of ``w`` and folds it back into the model (``o += T mu``,
``T <- T chol(S)``), which keeps the likelihood and speeds convergence. The log-likelihood
of the statistics never decreases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gmmspeech.errors import GMMSpeechError

__all__ = [
    "TVModel",
    "init_tv",
    "tv_em_step",
    "extract",
    "train_tv",
    "TVCheckpointError",
]


class TVCheckpointError(GMMSpeechError, ValueError):
    """A total-variability checkpoint cannot be resumed (other data or settings)."""

    def __init__(self, path: str, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _ubm_precisions(ubm) -> np.ndarray:
    """UBM precisions: (K, D) inverse variances (diag) or (K, D, D) matrices (full)."""
    ct = ubm.covariance_type
    cov = np.asarray(ubm.covariances_, dtype=np.float64)
    k, d = np.asarray(ubm.means_).shape
    if ct == "diag":
        return 1.0 / cov
    if ct == "spherical":
        return np.repeat((1.0 / cov)[:, None], d, axis=1)
    if ct == "full":
        return np.linalg.inv(cov)
    if ct == "tied":
        return np.broadcast_to(np.linalg.inv(cov), (k, d, d)).copy()
    raise ValueError(f"unsupported UBM covariance_type {ct!r}")


@dataclass(eq=False)
class TVModel:
    """Parameters of a total-variability model (everything extraction needs).

    Attributes
    ----------
    T : ndarray (K, D, R)
    offset : ndarray (K, D)
        Supervector offset from minimum divergence (added to the UBM means).
    prec : ndarray (K, D) or (K, D, D)
        UBM precisions (diagonal or full).
    """

    T: np.ndarray
    offset: np.ndarray
    prec: np.ndarray

    def __post_init__(self):
        self.T = np.ascontiguousarray(self.T, dtype=np.float64)
        self.offset = np.ascontiguousarray(self.offset, dtype=np.float64)
        self.prec = np.ascontiguousarray(self.prec, dtype=np.float64)
        k, d, _ = self.T.shape
        if self.offset.shape != (k, d) or self.prec.shape not in ((k, d), (k, d, d)):
            raise ValueError(f"TVModel: T {self.T.shape}, offset {self.offset.shape} and "
                             f"precisions {self.prec.shape} do not agree")
        self._cache = None

    @property
    def rank(self) -> int:
        return int(self.T.shape[2])

    @property
    def full(self) -> bool:
        return self.prec.ndim == 3

    def precomputed(self):
        """``(U (K D, R), TTp (K, R (R + 1) / 2))``: ``U_c = P_c T_c`` and the upper
        triangles of ``TT_c = T_c^T P_c T_c`` (symmetric, so half the products suffice)."""
        if self._cache is None:
            k, d, r = self.T.shape
            if self.full:
                u = np.matmul(self.prec, self.T)
            else:
                u = self.prec[:, :, None] * self.T
            iu, ju = np.triu_indices(r)
            ttp = np.empty((k, iu.size))
            for c in range(k):  # one BLAS GEMM per component
                ttp[c] = (self.T[c].T @ u[c])[iu, ju]
            self._cache = (u.reshape(k * d, r), ttp)
        return self._cache
    def offset_terms(self):
        """``(P o (K, D), o^T P o (K,))``: the offset's contribution to the log-likelihood."""
        if self.full:
            po = np.einsum("kij,kj->ki", self.prec, self.offset)
        else:
            po = self.prec * self.offset
        return po, np.einsum("kd,kd->k", po, self.offset)

    def copy(self) -> TVModel:
        return TVModel(self.T.copy(), self.offset.copy(), self.prec.copy())

    def __getstate__(self):
        # workers recompute the (large) precomputed products instead of receiving them
        return {"T": self.T, "offset": self.offset, "prec": self.prec}

    def __setstate__(self, state):
        self.T, self.offset, self.prec = state["T"], state["offset"], state["prec"]
        self._cache = None


def init_tv(ubm, rank: int, *, random_state=None, scale: float | None = None) -> TVModel:
    """A random start: ``T_c = chol(Sigma_c) G_c s`` with ``G`` standard normal and
    ``s = sqrt(0.1 / R)`` (prior variability of about a tenth of each component's variance)."""
    k, d = np.asarray(ubm.means_).shape
    rank = int(rank)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    rng = np.random.default_rng(random_state)
    g = rng.standard_normal((k, d, rank))
    s = float(np.sqrt(0.1 / rank)) if scale is None else float(scale)
    prec = _ubm_precisions(ubm)
    if prec.ndim == 3:
        chol = np.linalg.cholesky(np.linalg.inv(prec))
        t = np.matmul(chol, g) * s
    else:
        t = np.sqrt(1.0 / prec)[:, :, None] * g * s
    return TVModel(t, np.zeros((k, d)), prec)


# --------------------------------------------------------------------------- batched algebra
def _unpack_sym(packed, r):
    """(B, R (R + 1) / 2) upper triangles -> (B, R, R) symmetric matrices."""
    iu, ju = np.triu_indices(r)
    out = np.empty((packed.shape[0], r, r))
    out[:, iu, ju] = packed
    out[:, ju, iu] = packed
    return out


def _posterior_batch(model: TVModel, n, f, *, want_cov: bool):
    """Posteriors of a batch: ``(w (B, R), Linv (B, R, R) or None, loglik (B,))``.

    ``f`` is centred on the UBM means; the model's offset is removed here. ``loglik`` is the
    part of each utterance's log-likelihood that depends on the model
    (``-1/2 log|L| + 1/2 b^T L^-1 b - 1/2 sum_c (N_c o_c^T P_c o_c - 2 o_c^T P_c F_c)``).
    """
    u, tt = model.precomputed()
    b_, k = n.shape
    r = model.rank
    po, opo = model.offset_terms()
    fl = f.reshape(b_, -1)
    # b = U^T (F - N o) = U^T F - sum_c N_c T_c^T P_c o_c
    lin = fl @ u
    if np.any(model.offset):
        tpo = np.einsum("kdr,kd->kr", model.T, po)  # T_c^T P_c o_c
        lin -= n @ tpo
    prec = _unpack_sym(n @ tt, r)
    idx = np.arange(r)
    prec[:, idx, idx] += 1.0
    chol = np.linalg.cholesky(prec)
    logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    if want_cov:
        linv = np.linalg.inv(prec)
        linv = 0.5 * (linv + np.swapaxes(linv, 1, 2))
        w = np.einsum("bij,bj->bi", linv, lin)
    else:
        linv = None
        w = np.linalg.solve(prec, lin[:, :, None])[:, :, 0]
    ll = -0.5 * logdet + 0.5 * np.einsum("bi,bi->b", lin, w)
    ll -= 0.5 * (n @ opo - 2.0 * np.einsum("bkd,kd->b", f, po))
    return w, linv, ll


def _estep_task(model: TVModel, n, f, batch: int):
    """EM accumulators of a block of utterances (runs in a worker)."""
    k, d, r = model.T.shape
    iu, ju = np.triu_indices(r)
    acc_a = np.zeros((k, iu.size))  # upper triangles of A_c
    acc_c = np.zeros((k * d, r))
    h = np.zeros(r)
    hh = np.zeros(iu.size)
    ll = 0.0
    has_offset = bool(np.any(model.offset))
    for a in range(0, n.shape[0], batch):
        nb = np.asarray(n[a:a + batch], dtype=np.float64)
        fb = np.asarray(f[a:a + batch], dtype=np.float64)
        w, linv, l_ = _posterior_batch(model, nb, fb, want_cov=True)
        ep = linv[:, iu, ju] + w[:, iu] * w[:, ju]
        acc_a += nb.T @ ep
        fl = fb.reshape(fb.shape[0], -1)
        acc_c += fl.T @ w
        if has_offset:  # sum_u (F - N o) w^T = sum_u F w^T - (sum_u N_c w^T) o_c
            acc_c -= ((nb.T @ w)[:, None, :] * model.offset[:, :, None]).reshape(k * d, r)
        h += w.sum(axis=0)
        hh += ep.sum(axis=0)
        ll += float(l_.sum())
    return acc_a, acc_c, h, hh, ll


def _chunks(n_items: int, n_parts: int):
    n_parts = max(1, min(int(n_parts), n_items))
    bounds = np.linspace(0, n_items, n_parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def tv_em_step(model: TVModel, n, f, *, min_divergence: bool = True, n_jobs=1, backend=None,
               scheduler=None, batch: int = 64, n_tasks: int | None = None):
    """One EM iteration of the total-variability model.

    Parameters
    ----------
    model : TVModel
    n, f : arrays (U, K) and (U, K, D)
        Zeroth and first-order statistics (``f`` centred on the UBM means).
    min_divergence : bool
        Re-estimate the prior and fold it into ``T`` and the offset.
    n_jobs, backend, scheduler
        The E-step runs over blocks of utterances through :func:`parallel_map`.
    n_tasks : int, optional
        Blocks of utterances (default: one per worker). The partial sums are added in
        block order, so the result depends on ``n_tasks`` only through rounding.

    Returns
    -------
    (TVModel, float)
        The updated model and the log-likelihood (model-dependent part, summed over
        utterances) of the statistics under the *input* model.
    """
    from gmmspeech.parallel import effective_n_jobs, parallel_map

    k, d, r = model.T.shape
    n_utt = n.shape[0]
    if n_tasks is None:
        n_tasks = effective_n_jobs(n_jobs) if (backend or "") != "dask" else max(2, effective_n_jobs(n_jobs))
    parts = parallel_map(_estep_task, [(model, n[a:b], f[a:b], int(batch)) for a, b in _chunks(n_utt, n_tasks)],
                         n_jobs=n_jobs, backend=backend, scheduler=scheduler, star=True)
    acc_a, acc_c, h, hh, ll = parts[0]  # fresh arrays from the task: summed in place
    for p in parts[1:]:
        acc_a += p[0]
        acc_c += p[1]
        h += p[2]
        hh += p[3]
        ll += p[4]
    a_mat = _unpack_sym(acc_a, r)
    c_mat = acc_c.reshape(k, d, r)
    # T_c = C_c A_c^-1  (A_c symmetric positive definite: sum of N_c (L^-1 + w w^T)),
    # by Cholesky; a tiny ridge keeps components that saw no data solvable
    idx = np.arange(r)
    ridge = 1e-10 * np.maximum(a_mat[:, idx, idx].mean(axis=1), 1e-300)
    a_mat[:, idx, idx] += ridge[:, None]
    t_new = np.empty((k, d, r))
    from scipy.linalg import cho_factor, cho_solve

    for c in range(k):
        t_new[c] = cho_solve(cho_factor(a_mat[c], lower=True, check_finite=False), c_mat[c].T,
                             check_finite=False).T
    offset = model.offset.copy()
    if min_divergence:
        mu = h / n_utt
        s = _unpack_sym(hh[None], r)[0] / n_utt - np.outer(mu, mu)
        offset = offset + (t_new.reshape(k * d, r) @ mu).reshape(k, d)
        chol = np.linalg.cholesky(s)
        t_new = (t_new.reshape(k * d, r) @ chol).reshape(k, d, r)
    return TVModel(t_new, offset, model.prec), float(ll)


def extract(model: TVModel, n, f, *, return_cov: bool = False, batch: int = 256):
    """i-vectors (posterior means) of utterances from their statistics.

    Parameters
    ----------
    model : TVModel
    n, f : arrays (U, K), (U, K, D)
        Statistics, ``f`` centred on the UBM means.
    return_cov : bool
        Also return the posterior covariances ``L^{-1}`` (U, R, R).

    Returns
    -------
    ndarray (U, R), or (ivectors, covariances)
    """
    n = np.asarray(n, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    out = np.empty((n.shape[0], model.rank))
    covs = np.empty((n.shape[0], model.rank, model.rank)) if return_cov else None
    for a in range(0, n.shape[0], batch):
        w, linv, _ = _posterior_batch(model, n[a:a + batch], f[a:a + batch], want_cov=return_cov)
        out[a:a + batch] = w
        if return_cov:
            covs[a:a + batch] = linv
    return (out, covs) if return_cov else out


# --------------------------------------------------------------------------- training loop
def _fingerprint(n, f, settings: dict) -> str:
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(repr(n.shape).encode() + repr(f.shape).encode())
    h.update(np.ascontiguousarray(n, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(f[:, :, :1], dtype=np.float64).tobytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_tv(
    ubm,
    n,
    f,
    rank: int,
    *,
    n_iter: int = 10,
    min_divergence: bool = True,
    random_state=None,
    n_jobs=1,
    backend=None,
    scheduler=None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = False,
    init: TVModel | None = None,
):
    """Train a total-variability model by EM on Baum-Welch statistics.

    A checkpoint (``T``, offset, iteration, log-likelihood history) is written atomically
    after every iteration when ``checkpoint`` is given; ``resume=True`` continues from it
    and gives the same matrix as an uninterrupted run.

    Returns
    -------
    (TVModel, list of float)
        The model and the log-likelihood of the statistics before each iteration's update.
    """
    from gmmspeech.mixture import io as bio

    n = np.asarray(n, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if n.ndim != 2 or f.ndim != 3 or f.shape[:2] != n.shape:
        raise ValueError(f"statistics must be n (U, K) and f (U, K, D); got {n.shape}, {f.shape}")
    k, d = np.asarray(ubm.means_).shape
    if n.shape[1] != k or f.shape[2] != d:
        raise ValueError(f"statistics are for K={n.shape[1]}, D={f.shape[2]}; the UBM has K={k}, D={d}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    seed = None if random_state is None else int(random_state)
    settings = {"rank": int(rank), "min_divergence": bool(min_divergence), "seed": seed,
                "ubm": __import__("gmmspeech.backend.stats", fromlist=["ubm_key"]).ubm_key(ubm)}
    fp = _fingerprint(n, f, settings)
    ckpt = None if checkpoint is None else os.fspath(checkpoint)
    model, history, start = None, [], 0
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs checkpoint=<path>")
        if os.path.isfile(ckpt):
            arrays, info = bio.load_arrays(ckpt, "tv-checkpoint")
            if info.get("fingerprint") != fp:
                raise TVCheckpointError(ckpt, "was written for other statistics or settings; "
                                              "use the same data and settings or delete it")
            model = TVModel(arrays["T"], arrays["offset"], _ubm_precisions(ubm))
            history = [float(v) for v in arrays["history"]]
            start = int(info["iteration"])
    if model is None:
        model = init.copy() if init is not None else init_tv(ubm, rank, random_state=seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_iter), initial=min(start, int(n_iter)), desc="TV EM", unit="iter",
                   leave=True, dynamic_ncols=True)
    try:
        for it in range(start + 1, int(n_iter) + 1):
            model, ll = tv_em_step(model, n, f, min_divergence=min_divergence, n_jobs=n_jobs,
                                   backend=backend, scheduler=scheduler)
            history.append(ll)
            if ckpt:
                bio.save_arrays(ckpt, "tv-checkpoint",
                                {"T": model.T, "offset": model.offset,
                                 "history": np.asarray(history, dtype=np.float64)},
                                {"iteration": it, "fingerprint": fp})
            if bar is not None:
                bar.set_postfix(loglik_per_utt=f"{ll / max(1, n.shape[0]):.2f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return model, history
