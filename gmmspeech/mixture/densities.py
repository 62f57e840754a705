"""Gaussian log-densities in GEMM form, for every covariance type.

The E-step of a mixture is dominated by evaluating ``log phi_k + log N(x | mu_k, Sigma_k)``
for every frame and component. Expanding the quadratic form turns that into one matrix
product per chunk of frames:

* diagonal and spherical models: ``[x**2, x, 1] @ W`` with ``W`` of shape ``(2D + 1, K)``
  holding ``-precision / 2``, ``precision * mu`` and the per-component constant;
* full and tied models: ``[vech(x x^T), x, 1] @ W`` where ``vech`` lists the ``D (D + 1) / 2``
  products ``x_i x_j`` (``i <= j``); off-diagonal weights are doubled.

The same design matrix ``Z`` then gives the sufficient statistics of the chunk as one more
product, ``R^T @ Z`` (second-order, first-order and zeroth-order sums at once).

Frames are centred on a reference point (the mixture's mean) before the expansion, so that
``x**2`` and ``x . mu`` do not cancel catastrophically when features sit far from the origin
(float32 data with offsets of 1e4 and more).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from gmmspeech._lazy import lazy_kernel

COVARIANCE_TYPES = ("spherical", "tied", "diag", "full")
LOG_2PI = float(np.log(2.0 * np.pi))

ILL_DEFINED_MSG = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


def stats_kind(covariance_type: str) -> str:
    """``"full"`` for full and tied models (second moments as matrices), ``"diag"`` otherwise."""
    return "full" if covariance_type in ("full", "tied") else "diag"


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters of a mixture (as scikit-learn counts them)."""
    k, d = n_components, n_features
    if covariance_type == "full":
        cov = k * d * (d + 1) / 2.0
    elif covariance_type == "diag":
        cov = k * d
    elif covariance_type == "tied":
        cov = d * (d + 1) / 2.0
    else:
        cov = k
    return int(cov + k * d + k - 1)


# ----------------------------------------------------------------------------- precisions


def precisions_cholesky_from_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precision matrices (scikit-learn's ``precisions_cholesky_``).

    For full/tied models ``P`` is upper triangular with ``precision = P @ P.T``; for diagonal
    and spherical models it is ``1 / sqrt(variance)``. Raises ``ValueError`` when a covariance
    is not positive definite.
    """
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        mats = cov[None] if covariance_type == "tied" else cov
        d = mats.shape[-1]
        try:
            chol = np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            raise ValueError(ILL_DEFINED_MSG) from None
        eye = np.eye(d)
        out = np.empty_like(mats)
        for k in range(mats.shape[0]):
            out[k] = linalg.solve_triangular(chol[k], eye, lower=True).T
        return out[0] if covariance_type == "tied" else out
    if np.any(~np.isfinite(cov)) or np.any(cov <= 0.0):
        raise ValueError(ILL_DEFINED_MSG)
    return 1.0 / np.sqrt(cov)


def precisions_from_cholesky(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision matrices (or inverse variances) from their Cholesky factors."""
    pc = np.asarray(prec_chol, dtype=np.float64)
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", pc, pc)
    if covariance_type == "tied":
        return pc @ pc.T
    return pc**2


def covariances_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Covariances from precisions (matrix inverse, or reciprocal for diag/spherical)."""
    p = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(p)
    return 1.0 / p


def precisions_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Upper-triangular ``P`` with ``precision = P @ P.T`` (scikit-learn's convention)."""
    p = np.asarray(precisions, dtype=np.float64)
    if covariance_type == "full":
        return np.stack([np.linalg.cholesky(pk) for pk in p])
    if covariance_type == "tied":
        return np.linalg.cholesky(p)
    return np.sqrt(p)


def log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log det(P)`` per component (half the log-determinant of the precision)."""
    pc = np.asarray(prec_chol, dtype=np.float64)
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(pc, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return np.sum(np.log(np.diag(pc)))
    if covariance_type == "diag":
        return np.sum(np.log(pc), axis=1)
    return n_features * np.log(pc)


# ----------------------------------------------------------------------------- vech helpers


def vech_indices(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the upper triangle (``i <= j``) in the order ``Z`` uses."""
    return np.triu_indices(n_features)


def unvech(v: np.ndarray, n_features: int) -> np.ndarray:
    """Symmetric ``(..., D, D)`` matrices from ``(..., D (D + 1) / 2)`` upper-triangle vectors."""
    iu, ju = vech_indices(n_features)
    out = np.zeros(v.shape[:-1] + (n_features, n_features), dtype=v.dtype)
    out[..., iu, ju] = v
    out[..., ju, iu] = v
    return out


# ----------------------------------------------------------------------------- the plan


class DensityPlan:
    """Everything needed to score frames against one set of mixture parameters.

    Built once per E-step (cheap: O(K D^2)); holds the centring point ``ref`` and the
    GEMM weight matrix ``W`` in the compute dtype.

    Parameters
    ----------
    weights, means, prec_chol : arrays
        Mixture weights ``(K,)``, means ``(K, D)`` and precision Cholesky factors.
    covariance_type : str
    dtype : numpy dtype
        Compute dtype of the GEMMs (float32 or float64).
    """

    #: a component is scored exactly (per-component centring, float64) when the GEMM form's
    #: rounding error, about ``2 eps M_k`` with ``M_k = sum_d prec_kd (mu_kd - ref_d)^2``,
    #: could exceed this many nats (narrow components far from the mixture mean)
    max_rounding_error = 5e-4

    def __init__(self, weights, means, prec_chol, covariance_type, dtype=np.float32):
        means = np.asarray(means, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        k, d = means.shape
        self.n_components, self.n_features = k, d
        self.covariance_type = covariance_type
        self.dtype = np.dtype(dtype)
        self.form = stats_kind(covariance_type)
        # centring point: the mixture mean
        self.ref = weights @ means / max(weights.sum(), np.finfo(np.float64).tiny)
        mu = means - self.ref
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        const = log_w - 0.5 * d * LOG_2PI + log_det_cholesky(prec_chol, covariance_type, d)
        if self.form == "diag":
            prec = precisions_from_cholesky(prec_chol, covariance_type)
            if covariance_type == "spherical":
                prec = np.repeat(prec[:, None], d, axis=1)
            w = np.empty((2 * d + 1, k))
            w[:d] = -0.5 * prec.T
            w[d : 2 * d] = (prec * mu).T
            w[2 * d] = const - 0.5 * np.sum(prec * mu * mu, axis=1)
            self.n_quad = d
        else:
            prec = precisions_from_cholesky(prec_chol, covariance_type)
            if covariance_type == "tied":
                prec = np.broadcast_to(prec, (k, d, d))
            iu, ju = vech_indices(d)
            p = iu.size
            quad = -prec[:, iu, ju]  # off-diagonal terms appear twice in x^T A x
            quad[:, iu == ju] *= 0.5
            lin = np.einsum("kij,kj->ki", prec, mu)
            w = np.empty((p + d + 1, k))
            w[:p] = quad.T
            w[p : p + d] = lin.T
            w[p + d] = const - 0.5 * np.sum(lin * mu, axis=1)
            self.n_quad = p
        # float32 guard: components whose expansion cancels badly are scored exactly
        pc = np.asarray(prec_chol, dtype=np.float64)
        if covariance_type == "full":
            mag = np.einsum("kd,kde->ke", mu, pc)
        elif covariance_type == "tied":
            mag = mu @ pc
        elif covariance_type == "diag":
            mag = mu * pc
        else:
            mag = mu * pc[:, None]
        m_k = np.sum(mag * mag, axis=1)
        risky = np.flatnonzero(2.0 * np.finfo(self.dtype).eps * m_k > self.max_rounding_error)
        if risky.size > max(1, k // 4) and self.dtype != np.float64:
            # too many: the whole E-step in float64 is cheaper than per-component work
            self.dtype = np.dtype(np.float64)
            risky = risky[:0]
        self.risky = risky
        if risky.size:
            self.const = const[risky]
            self.means64 = means[risky]
            if covariance_type in ("full", "tied"):
                self.chol64 = pc[risky] if covariance_type == "full" else np.repeat(pc[None], risky.size, 0)
            else:
                p2 = pc**2
                self.prec64 = p2[risky] if covariance_type == "diag" else np.repeat(p2[risky][:, None], d, 1)
        self.W = np.ascontiguousarray(w, dtype=self.dtype)
        self.ref_c = self.ref.astype(self.dtype)

    def exact_columns(self, x: np.ndarray, lp: np.ndarray) -> None:
        """Overwrite the columns of the risky components with exactly centred float64 values."""
        xd = np.asarray(x, dtype=np.float64)
        for j, k in enumerate(self.risky):
            diff = xd - self.means64[j]
            if self.form == "full":
                y = diff @ self.chol64[j]
                q = np.einsum("ij,ij->i", y, y)
            else:
                q = (diff * diff) @ self.prec64[j]
            lp[:, k] = self.const[j] - 0.5 * q

    def exact_stats(self, x: np.ndarray, resp_cols: np.ndarray, acc: dict) -> None:
        """Add centred float64 statistics of the risky components (posteriors ``resp_cols``)."""
        xd = np.asarray(x, dtype=np.float64)
        for j in range(self.risky.size):
            r = np.asarray(resp_cols[:, j], dtype=np.float64)
            diff = xd - self.means64[j]
            acc["n"][j] += r.sum()
            acc["f"][j] += r @ diff
            if self.form == "full":
                acc["s"][j] += (diff * r[:, None]).T @ diff
            else:
                acc["s"][j] += r @ (diff * diff)

    def exact_accumulator(self) -> dict:
        r, d = self.risky.size, self.n_features
        s_shape = (r, d, d) if self.form == "full" else (r, d)
        return {"n": np.zeros(r), "f": np.zeros((r, d)), "s": np.zeros(s_shape)}

    def patch_stats(self, n, f, s, acc: dict) -> None:
        """Replace the risky components' statistics by their exact (uncentred) values."""
        for j, k in enumerate(self.risky):
            mu = self.means64[j]
            nk, fc, sc = acc["n"][j], acc["f"][j], acc["s"][j]
            n[k] = nk
            f[k] = fc + nk * mu
            if self.form == "full":
                s[k] = sc + np.outer(fc, mu) + np.outer(mu, fc) + nk * np.outer(mu, mu)
            else:
                s[k] = sc + 2.0 * fc * mu + nk * mu * mu

    @property
    def n_columns(self) -> int:
        return self.n_quad + self.n_features + 1

    def design(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The design matrix ``[quad(x - ref), x - ref, 1]`` of a chunk, in the compute dtype."""
        return design_matrix(x, self.ref, self.form, self.dtype, out=out, ref_c=self.ref_c)

    def log_prob(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Weighted log-densities ``(n, K)`` of a design matrix (one GEMM)."""
        if out is None:
            return z @ self.W
        return np.matmul(z, self.W, out=out[: z.shape[0]])

    def uncentre(self, g: np.ndarray):
        """Turn ``R^T @ Z`` (float64, centred) into uncentred ``(n, f, s)`` statistics."""
        return uncentre_stats(g, self.ref, self.form)


def design_matrix(x, ref, form, dtype, *, out=None, ref_c=None) -> np.ndarray:
    """``[quad(x - ref), x - ref, 1]`` in ``dtype``: ``quad`` is ``x**2`` (form "diag") or
    the upper-triangle products ``vech(x x^T)`` (form "full")."""
    dtype = np.dtype(dtype)
    n, d = x.shape
    n_quad = d if form == "diag" else d * (d + 1) // 2
    if out is None:
        z = np.empty((n, n_quad + d + 1), dtype=dtype)
    else:
        z = out[:n]
    if n > 0:
        kern = kernels()
        if kern is not None:
            r = ref if x.dtype == np.float64 else ref.astype(x.dtype)
            if form == "full":
                kern.vech_design(x, r, z)
            else:
                kern.diag_design(x, r, z)
            return z
    lin = z[:, n_quad : n_quad + d]
    if x.dtype == dtype:
        np.subtract(x, ref.astype(dtype) if ref_c is None else ref_c, out=lin)
    else:
        # subtract in the wider dtype first: keeps the digits of far-off-origin data
        lin[...] = x - ref
    if form == "diag":
        np.square(lin, out=z[:, :d])
    else:
        off = 0
        for i in range(d):
            np.multiply(lin[:, i : i + 1], lin[:, i:], out=z[:, off : off + d - i])
            off += d - i
    z[:, -1] = 1.0
    return z


def uncentre_stats(g: np.ndarray, ref: np.ndarray, form: str):
    """Turn ``R^T @ Z`` (float64, about ``ref``) into uncentred ``(n, f, s)``."""
    d = ref.shape[0]
    p = d if form == "diag" else d * (d + 1) // 2
    n = g[:, p + d].copy()
    fc = g[:, p : p + d]
    f = fc + n[:, None] * ref
    if form == "diag":
        s = g[:, :p] + 2.0 * fc * ref + n[:, None] * ref**2
    else:
        sc = unvech(g[:, :p], d)
        cross = fc[:, :, None] * ref[None, None, :]
        s = sc + cross + np.swapaxes(cross, 1, 2) + n[:, None, None] * np.outer(ref, ref)
    return n, f, s


def logsumexp_normalize(lp: np.ndarray, weights: np.ndarray | None = None, top_c: int | None = None):
    """In place: turn weighted log-densities into posteriors; return per-frame ``log p(x)``.

    ``lp`` (n, K) is overwritten by the responsibilities (multiplied by the frame
    weights when given). With ``top_c`` only the ``top_c`` best components of each frame
    keep a posterior (renormalised over them) and ``log p(x)`` is the top-C approximation.
    """
    n, k = lp.shape
    if top_c is not None and top_c < k:
        thresh = np.partition(lp, k - top_c, axis=1)[:, k - top_c : k - top_c + 1]
        lp[lp < thresh] = -np.inf
    m = lp.max(axis=1, keepdims=True)
    bad = ~np.isfinite(m[:, 0])
    if bad.any():  # a frame no component can explain (only with degenerate inputs)
        m[bad] = 0.0
        lp[bad] = np.where(np.isnan(lp[bad]), -np.inf, lp[bad])
    lp -= m
    np.exp(lp, out=lp)
    tot = lp.sum(axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logp = m[:, 0].astype(np.float64) + np.log(tot[:, 0])
    scale = 1.0 / np.where(tot > 0, tot, 1.0)
    if weights is not None:
        scale = scale * weights[:, None]
    lp *= scale.astype(lp.dtype)
    return logp


# ----------------------------------------------------------------------------- numba kernels



class _Kernels:
    """Fused row loops compiled with numba (imported and compiled on first use, cached)."""

    def __init__(self):
        from numba import njit

        @njit(cache=True, nogil=True)
        def vech_design(x, ref, z):  # pragma: no cover - compiled
            n, d = x.shape
            p = d * (d + 1) // 2
            buf = np.empty(d, z.dtype)
            for r in range(n):
                for i in range(d):
                    v = x[r, i] - ref[i]
                    buf[i] = v
                    z[r, p + i] = v
                off = 0
                for i in range(d):
                    vi = buf[i]
                    row = z[r, off : off + d - i]
                    for j in range(d - i):
                        row[j] = vi * buf[i + j]
                    off += d - i
                z[r, p + d] = 1.0

        @njit(cache=True, nogil=True)
        def diag_design(x, ref, z):  # pragma: no cover - compiled
            n, d = x.shape
            for r in range(n):
                for i in range(d):
                    v = z.dtype.type(x[r, i] - ref[i])
                    z[r, d + i] = v
                    z[r, i] = v * v
                z[r, 2 * d] = 1.0

        # no NaN can reach these kernels (finite design times finite weights; -inf only
        # from zero weights), which lets LLVM vectorise the max and the sums
        @njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "nnan"})
        def row_max_subtract(lp, m):  # pragma: no cover - compiled
            n, k = lp.shape
            acc = np.empty(16, lp.dtype)
            k16 = k - k % 16
            for r in range(n):
                for lane in range(16):
                    acc[lane] = -np.inf
                for c in range(0, k16, 16):
                    for lane in range(16):
                        v = lp[r, c + lane]
                        acc[lane] = v if v > acc[lane] else acc[lane]
                mx = -np.inf
                for lane in range(16):
                    mx = acc[lane] if acc[lane] > mx else mx
                for c in range(k16, k):
                    mx = lp[r, c] if lp[r, c] > mx else mx
                if not (mx > -np.inf and mx < np.inf):
                    mx = 0.0
                m[r] = mx
                for c in range(k):
                    lp[r, c] -= mx

        @njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
        def row_normalise(e, m, w, logp, factor, scale_e):  # pragma: no cover - compiled
            n, k = e.shape
            has_w = w.shape[0] > 0
            for r in range(n):
                s = 0.0
                for c in range(k):
                    s += e[r, c]
                if s > 0.0:
                    logp[r] = m[r] + np.log(s)
                    f = (w[r] if has_w else 1.0) / s
                else:
                    logp[r] = -np.inf
                    f = 0.0
                factor[r] = f
                if scale_e:
                    for c in range(k):
                        e[r, c] *= f

        @njit(cache=True, nogil=True)
        def scale_rows(a, factor):  # pragma: no cover - compiled
            n, k = a.shape
            for r in range(n):
                f = factor[r]
                for c in range(k):
                    a[r, c] *= f

        self.vech_design = vech_design
        self.diag_design = diag_design
        self.row_max_subtract = row_max_subtract
        self.row_normalise = row_normalise
        self.scale_rows = scale_rows


@lazy_kernel
def kernels():
    """The numba kernels, or None where numba is unavailable (numpy fallbacks are used).

    Built once, on first use; E-step threads arriving meanwhile wait for them.
    """
    try:
        return _Kernels()
    except ImportError:  # pragma: no cover - numba ships with librosa
        return None


def posteriors_and_scale(lp, z, weights, top_c, logp, m, factor):
    """E-step core of one chunk, in place: after it, ``lp.T @ z`` is the chunk's ``R^T Z``.

    ``lp`` (n, K) holds weighted log-densities; ``z`` (n, cols) the design matrix. The frame
    posteriors times frame weights are split between ``lp`` and ``z``: whichever is narrower
    gets scaled by ``w_n / sum_k exp(lp_nk - max)`` (the other holds ``exp(lp - max)``).
    Writes ``log p(x_n)`` into ``logp``; returns True when ``z`` was scaled (then the
    posteriors are ``lp * factor[:, None]``), False when ``lp`` holds the posteriors.
    """
    n, k = lp.shape
    kern = kernels()
    if kern is None or (top_c is not None and top_c < k):
        logp[:n] = logsumexp_normalize(lp, weights, top_c)
        return False
    mm, ff = m[:n], factor[:n]
    kern.row_max_subtract(lp, mm)
    np.exp(lp, out=lp)
    w = np.empty(0, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    scale_e = k <= z.shape[1]
    kern.row_normalise(lp, mm, w, logp[:n], ff, scale_e)
    if not scale_e:
        kern.scale_rows(z, ff)
    return not scale_e
