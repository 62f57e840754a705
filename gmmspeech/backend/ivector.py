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

from gmmspeech.backend.stats import check_stats
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
        """``(U (K D, R), TTp (K, R (R + 1) / 2), TPo (K, R))``: ``U_c = P_c T_c``, the upper
        triangles of ``TT_c = T_c^T P_c T_c`` (symmetric, so half the products suffice) and
        ``T_c^T P_c o_c`` (the offset's share of the linear term; None without offset)."""
        if self._cache is None:
            k, d, r = self.T.shape
            from scipy.linalg import blas

            if self.full:
                u = np.matmul(self.prec, self.T)
                root = np.swapaxes(np.linalg.cholesky(self.prec), 1, 2)  # P_c = R_c^T R_c
                half = np.matmul(root, self.T)
            else:
                u = self.prec[:, :, None] * self.T
                half = np.sqrt(self.prec)[:, :, None] * self.T
            # T_c^T P_c T_c = (R_c T_c)^T (R_c T_c): one BLAS SYRK per component (one
            # triangle, half a GEMM's work); (R_c T_c)^T is Fortran-ordered, so "lower"
            # there is our upper triangle
            flat = _triu_flat(r)
            sq = np.empty((r, r))
            ttp = np.empty((k, flat.size))
            for c in range(k):
                out = blas.dsyrk(1.0, half[c].T, lower=1, trans=0, c=sq.T, overwrite_c=1)
                ttp[c] = out.T.ravel()[flat] if not np.shares_memory(out, sq) else sq.ravel()[flat]
            tpo = None
            if np.any(self.offset):
                tpo = np.einsum("kdr,kd->kr", u, self.offset)
            self._cache = (u.reshape(k * d, r), ttp, tpo)
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
_TRIU: dict = {}


def _triu(r: int):
    """Row and column indices of the upper triangle of an (r, r) matrix (cached)."""
    if r not in _TRIU:
        _TRIU[r] = np.triu_indices(r)
    return _TRIU[r]


def _triu_flat(r: int):
    """Flat (row-major) positions of the upper triangle of an (r, r) matrix, packed order."""
    iu, ju = _triu(r)
    return iu * r + ju


def _rows(r: int):
    """Start of each row of the packed upper triangle (``numpy.triu_indices`` order: row
    ``i`` holds columns ``i .. r-1`` contiguously)."""
    return np.concatenate([[0], np.cumsum(np.arange(r, 0, -1))])


def _to_upper(packed, out):
    """Write packed upper triangles (B, R (R + 1) / 2) into the upper triangles of ``out``
    (B, R, R), one contiguous row slice at a time (the lower triangles are left as they are)."""
    r = out.shape[1]
    st = _rows(r)
    for i in range(r):
        out[:, i, i:] = packed[:, st[i]:st[i + 1]]
    return out


def _from_upper(mats, out=None):
    """The upper triangles of (B, R, R) matrices, packed (B, R (R + 1) / 2)."""
    b_, r, _ = mats.shape
    st = _rows(r)
    if out is None:
        out = np.empty((b_, st[-1]))
    for i in range(r):
        out[:, st[i]:st[i + 1]] = mats[:, i, i:]
    return out


def _unpack_sym(packed, r):
    """(B, R (R + 1) / 2) upper triangles -> (B, R, R) symmetric matrices."""
    out = _to_upper(packed, np.empty((packed.shape[0], r, r)))
    iu, ju = _triu(r)
    out[:, ju, iu] = out[:, iu, ju]
    return out


def _posterior_batch(model: TVModel, n, f, *, want_cov: bool):
    """Posteriors of a batch: ``(w (B, R), Linv (B, R (R + 1) / 2) or None, loglik (B,))``.

    ``f`` is centred on the UBM means; the model's offset is removed here. The posterior
    covariances come back as packed upper triangles (the order of ``numpy.triu_indices``).
    ``loglik`` is the part of each utterance's log-likelihood that depends on the model
    (``-1/2 log|L| + 1/2 b^T L^-1 b - 1/2 sum_c (N_c o_c^T P_c o_c - 2 o_c^T P_c F_c)``).

    The precisions of the batch are one GEMM ``N @ TTp`` (upper triangles only); each is
    factored in place by LAPACK (``potrf``, reading one triangle) and, when covariances are
    wanted, inverted in place from its Cholesky factor (``potri``: half the work of a
    general inverse, the result again in one triangle).
    """
    from scipy.linalg import blas, lapack

    u, tt, tpo = model.precomputed()
    b_, k = n.shape
    r = model.rank
    fl = f.reshape(b_, -1)
    # b = U^T (F - N o) = U^T F - sum_c N_c T_c^T P_c o_c
    lin = fl @ u
    if tpo is not None:
        lin -= n @ tpo
    mats = _to_upper(n @ tt, np.empty((b_, r, r)))  # the lower triangles are never read
    idx = np.arange(r)
    mats[:, idx, idx] += 1.0
    w = np.empty((b_, r))
    logdet = np.empty(b_)
    for i in range(b_):
        # the transposed view is Fortran-ordered: its lower triangle is our upper one
        c, info = lapack.dpotrf(mats[i].T, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"i-vector posterior precision of utterance {i} of the batch "
                                        f"is not positive definite (potrf info={info})")
        logdet[i] = 2.0 * np.sum(np.log(np.diagonal(c)))
        if want_cov:
            inv, info = lapack.dpotri(c, lower=1, overwrite_c=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"i-vector posterior precision of utterance {i} is singular")
            w[i] = blas.dsymv(1.0, inv, lin[i], lower=1)
            if not np.shares_memory(inv, mats[i]):
                mats[i] = inv.T
        else:
            w[i] = lapack.dpotrs(c, lin[i], lower=1)[0]
    linv = _from_upper(mats) if want_cov else None
    ll = -0.5 * logdet + 0.5 * np.einsum("bi,bi->b", lin, w)
    if tpo is not None:
        po, opo = model.offset_terms()
        ll -= 0.5 * (n @ opo - 2.0 * (fl @ po.ravel()))
    return w, linv, ll


def _gemm_acc(c, a, b):
    """In place ``c += a @ b`` for a C-ordered ``c``: one BLAS ``dgemm`` with ``beta = 1``
    on the Fortran-ordered transposes (``c^T += b^T a^T``), no temporary of ``c``'s size."""
    from scipy.linalg import blas

    x, y = b.T, a.T
    x, tx = (x, 0) if x.flags.f_contiguous else (np.asfortranarray(x.T) if not x.flags.c_contiguous else x.T, 1)
    y, ty = (y, 0) if y.flags.f_contiguous else (np.asfortranarray(y.T) if not y.flags.c_contiguous else y.T, 1)
    out = blas.dgemm(1.0, x, y, beta=1.0, c=c.T, trans_a=tx, trans_b=ty, overwrite_c=1)
    if not np.shares_memory(out, c):  # pragma: no cover - the BLAS wrapper made a copy
        c.T[...] = out


def _estep_task(model: TVModel, n, f, batch: int):
    """EM accumulators of a block of utterances (runs in a worker)."""
    k, d, r = model.T.shape
    iu, ju = _triu(r)
    acc_a = np.zeros((k, iu.size))  # upper triangles of A_c
    acc_c = np.zeros((k * d, r))
    nw = np.zeros((k, r))
    h = np.zeros(r)
    hh = np.zeros(iu.size)
    ll = 0.0
    for a in range(0, n.shape[0], batch):
        nb = np.ascontiguousarray(n[a:a + batch], dtype=np.float64)
        fb = np.ascontiguousarray(f[a:a + batch], dtype=np.float64)
        w, ep, l_ = _posterior_batch(model, nb, fb, want_cov=True)
        ep += w[:, iu] * w[:, ju]  # E[w w^T] = L^-1 + w w^T, packed
        fl = fb.reshape(fb.shape[0], -1)
        _gemm_acc(acc_a, nb.T, ep)  # A_c += sum_u N_uc E_u
        _gemm_acc(acc_c, fl.T, w)  # C += sum_u F_u w_u^T
        nw += nb.T @ w
        h += w.sum(axis=0)
        hh += ep.sum(axis=0)
        ll += float(l_.sum())
    if np.any(model.offset):  # sum_u (F - N o) w^T = sum_u F w^T - (sum_u N_c w^T) o_c
        acc_c -= (nw[:, None, :] * model.offset[:, :, None]).reshape(k * d, r)
    return acc_a, acc_c, h, hh, ll


def _in_process(n_jobs, backend, scheduler) -> bool:
    """Whether the blocks run on this process's threads (one local job, no Dask)."""
    from gmmspeech.parallel import effective_n_jobs, resolve_backend

    return effective_n_jobs(n_jobs) <= 1 and resolve_backend(backend, scheduler)[0] != "dask"


def _run_blocks(task, args: list, *, n_jobs, backend, scheduler, n_threads) -> list:
    """``[task(*a) for a in args]``: across processes or a Dask cluster when asked
    (:func:`parallel_map`), else on this process's threads (:func:`gmmspeech.threads.map_items`).
    Either way each block's matrix products run on one BLAS thread: the per-utterance
    products and factorisations are small, and a multi-threaded BLAS spin-waits on them
    (7.8x slower than one thread with the other core busy, issue 15)."""
    from gmmspeech.parallel import parallel_map
    from gmmspeech.threads import map_items

    if _in_process(n_jobs, backend, scheduler):
        return map_items(lambda a: task(*a), args, n_threads=n_threads)
    return parallel_map(_one_blas_thread, [(task, a) for a in args], n_jobs=n_jobs, backend=backend,
                        scheduler=scheduler, star=True)


def _one_blas_thread(task, args):
    from gmmspeech.threads import single_thread_blas

    with single_thread_blas():
        return task(*args)


def _default_tasks(n_jobs, backend, scheduler, n_threads) -> int:
    """Blocks of utterances: one per thread in this process, one per local worker, at least
    two on a Dask cluster."""
    from gmmspeech.parallel import effective_n_jobs, resolve_backend
    from gmmspeech.threads import resolve_threads

    if _in_process(n_jobs, backend, scheduler):
        return resolve_threads(n_threads)
    workers = effective_n_jobs(n_jobs)
    return max(2, workers) if resolve_backend(backend, scheduler)[0] == "dask" else workers


def _chunks(n_items: int, n_parts: int):
    n_parts = max(1, min(int(n_parts), n_items))
    bounds = np.linspace(0, n_items, n_parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def tv_em_step(model: TVModel, n, f, *, min_divergence: bool = True, n_jobs=1, backend=None,
               scheduler=None, batch: int = 64, n_tasks: int | None = None, n_threads: int | None = None):
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
        Blocks of utterances (default: one per worker; in this process, one per thread).
        The partial sums are added in block order, so the result depends on ``n_tasks``
        (and so on the thread count) only through rounding.
    n_threads : int, optional
        Threads for the blocks when ``n_jobs`` is 1 (None:
        :func:`gmmspeech.threads.default_threads`); BLAS runs on one thread per block.

    Returns
    -------
    (TVModel, float)
        The updated model and the log-likelihood (model-dependent part, summed over
        utterances) of the statistics under the *input* model.
    """
    from gmmspeech.threads import single_thread_blas

    with single_thread_blas():
        return _tv_em_step(model, n, f, min_divergence, n_jobs, backend, scheduler, batch, n_tasks, n_threads)


def _tv_em_step(model, n, f, min_divergence, n_jobs, backend, scheduler, batch, n_tasks, n_threads):
    k, d, r = model.T.shape
    n_utt = n.shape[0]
    if n_tasks is None:
        n_tasks = _default_tasks(n_jobs, backend, scheduler, n_threads)
    model.precomputed()  # once, before the blocks share it
    parts = _run_blocks(_estep_task, [(model, n[a:b], f[a:b], int(batch)) for a, b in _chunks(n_utt, n_tasks)],
                        n_jobs=n_jobs, backend=backend, scheduler=scheduler, n_threads=n_threads)
    acc_a, acc_c, h, hh, ll = parts[0]  # fresh arrays from the task: summed in place
    for p in parts[1:]:
        acc_a += p[0]
        acc_c += p[1]
        h += p[2]
        hh += p[3]
        ll += p[4]
    from scipy.linalg import lapack

    c_mat = acc_c.reshape(k, d, r)
    # T_c = C_c A_c^-1  (A_c symmetric positive definite: sum of N_c (L^-1 + w w^T)),
    # by Cholesky, one component at a time (LAPACK reads the one triangle written); a tiny
    # ridge keeps components that saw no data solvable
    flat = _triu_flat(r)
    iu, ju = _triu(r)
    packed_diag = np.flatnonzero(iu == ju)  # the diagonal's positions, packed and flat
    diag = flat[packed_diag]
    ridge = 1e-10 * np.maximum(acc_a[:, packed_diag].mean(axis=1), 1e-300)
    t_new = np.empty((k, d, r))
    a_c = np.empty((r, r))
    for c in range(k):
        a_c.ravel()[flat] = acc_a[c]
        a_c.ravel()[diag] += ridge[c]
        fac, info = lapack.dpotrf(a_c.T, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"TV M-step: the accumulator of component {c} is not "
                                        f"positive definite (potrf info={info})")
        sol, info = lapack.dpotrs(fac, c_mat[c].T, lower=1)  # A_c^-1 C_c^T  (R, D)
        t_new[c] = sol.T
    offset = model.offset.copy()
    if min_divergence:
        mu = h / n_utt
        s = _unpack_sym(hh[None], r)[0] / n_utt - np.outer(mu, mu)
        offset = offset + (t_new.reshape(k * d, r) @ mu).reshape(k, d)
        chol = np.linalg.cholesky(s)
        t_new = (t_new.reshape(k * d, r) @ chol).reshape(k, d, r)
    return TVModel(t_new, offset, model.prec), float(ll)


def _extract_task(model: TVModel, n, f, return_cov: bool, batch: int):
    """i-vectors (and packed covariances) of a block of utterances (runs in a worker)."""
    r = model.rank
    out = np.empty((n.shape[0], r))
    covs = np.empty((n.shape[0], r * (r + 1) // 2)) if return_cov else None
    for a in range(0, n.shape[0], batch):
        nb = np.ascontiguousarray(n[a:a + batch], dtype=np.float64)
        fb = np.ascontiguousarray(f[a:a + batch], dtype=np.float64)
        w, linv, _ = _posterior_batch(model, nb, fb, want_cov=return_cov)
        out[a:a + batch] = w
        if return_cov:
            covs[a:a + batch] = linv
    return out, covs


def extract(model: TVModel, n, f, *, return_cov: bool = False, batch: int = 128, n_jobs=1,
            backend=None, scheduler=None, n_tasks: int | None = None, n_threads: int | None = None):
    """i-vectors (posterior means) of utterances from their statistics.

    Parameters
    ----------
    model : TVModel
    n, f : arrays (U, K), (U, K, D)
        Statistics, ``f`` centred on the UBM means.
    return_cov : bool
        Also return the posterior covariances ``L^{-1}`` (U, R, R).
    batch : int
        Utterances whose precisions are formed by one GEMM.
    n_jobs, backend, scheduler
        Blocks of utterances run through :func:`gmmspeech.parallel.parallel_map` (local
        processes or a Dask cluster); each utterance's i-vector does not depend on the
        blocks.
    n_tasks : int, optional
        Blocks of utterances (default: one per worker, at least two on Dask; in this
        process, one per thread).
    n_threads : int, optional
        Threads for the blocks when ``n_jobs`` is 1 (None:
        :func:`gmmspeech.threads.default_threads`); BLAS runs on one thread per block.

    Returns
    -------
    ndarray (U, R), or (ivectors, covariances)
    """
    from gmmspeech.threads import single_thread_blas

    n = np.asarray(n, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if n.ndim != 2 or f.ndim != 3 or f.shape[:2] != n.shape or f.shape[1:] != model.T.shape[:2]:
        raise ValueError(f"statistics n {n.shape} and f {f.shape} do not fit the model "
                         f"(K={model.T.shape[0]}, D={model.T.shape[1]})")
    check_stats(n, f)
    if n.shape[0] == 0:
        empty = np.empty((0, model.rank))
        return (empty, np.empty((0, model.rank, model.rank))) if return_cov else empty
    if n_tasks is None:
        n_tasks = _default_tasks(n_jobs, backend, scheduler, n_threads)
    with single_thread_blas():
        model.precomputed()  # once, before the blocks share it
        parts = _run_blocks(_extract_task, [(model, n[a:b], f[a:b], bool(return_cov), int(batch))
                                            for a, b in _chunks(n.shape[0], n_tasks)],
                            n_jobs=n_jobs, backend=backend, scheduler=scheduler, n_threads=n_threads)
    out = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    if not return_cov:
        return out
    r = model.rank
    covs = np.empty((n.shape[0], r, r))
    row = 0
    for _, packed in parts:
        covs[row:row + packed.shape[0]] = _unpack_sym(packed, r)
        row += packed.shape[0]
    return out, covs


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
    check_stats(n, f)
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
