"""Probabilistic linear discriminant analysis (PLDA) for vectors labelled by speaker.

Two models, both trained by EM and both scored through the same closed form:

* ``model="two-cov"`` -- the two-covariance model (Brümmer & de Villiers 2010, "The
  speaker partitioning problem"): ``x = y_s + e``, ``y_s ~ N(mu, B^-1)`` per speaker,
  ``e ~ N(0, W^-1)`` per vector, full-rank between (``B^-1``) and within (``W^-1``)
  covariances.
* ``model="simplified"`` -- simplified PLDA with a speaker subspace (Kenny 2010;
  Garcia-Romero & Espy-Wilson 2011): ``x = mu + V z_s + e``, ``z_s ~ N(0, I_Q)``,
  ``e ~ N(0, Sigma)`` full; its between covariance is ``V V^T`` (rank Q).

Scoring (Kaldi's ``ivector-plda-scoring``, by the book for several enrolment vectors):
both covariances are diagonalised at once, ``A Phi_w A^T = I`` and
``A Phi_b A^T = diag(psi)``; with ``u = A (x - mu)``, enrolment mean ``u_e`` of ``n``
vectors and test ``u_t`` the log-likelihood ratio of "same speaker" against "different
speakers" is, per dimension,
``log N(u_t; n psi / (n psi + 1) u_e, 1 + psi / (n psi + 1)) - log N(u_t; 0, 1 + psi)``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from gmmspeech.backend.transforms import (
    _check_y,
    _supervised_tags,
    class_scatter,
    data_scale,
    floor_covariance,
)

__all__ = ["PLDA"]

_MODELS = ("two-cov", "simplified")
LOG_2PI = float(np.log(2.0 * np.pi))


def _sym(a):
    return 0.5 * (a + a.T)


class PLDA(TransformerMixin, BaseEstimator):
    """PLDA back-end: ``fit(X, y)`` on speaker-labelled vectors, :meth:`llr` to score.

    Parameters
    ----------
    model : {"two-cov", "simplified"}, default="two-cov"
    n_components : int or None, default=None
        Speaker-subspace rank Q of the simplified model (None: ``min(n_classes - 1,
        n_features)``); ignored by the two-covariance model.
    n_iter : int, default=10
        EM iterations after the moment-based start.
    reg : float, default=1e-8
        Relative ridge keeping the covariances positive definite.

    Attributes
    ----------
    mean_ : ndarray (D,)
    between_covariance_ : ndarray (D, D)
        ``Phi_b`` (``B^-1``, or ``V V^T`` for the simplified model).
    within_covariance_ : ndarray (D, D)
        ``Phi_w``.
    subspace_ : ndarray (D, Q)
        ``V`` (simplified model only).
    transform_ : ndarray (D, D)
        ``A`` of the simultaneous diagonalisation.
    psi_ : ndarray (D,)
        Between-speaker variances in the diagonalised space.
    log_likelihood_ : list of float
        Marginal log-likelihood of the training data after each EM iteration.
    classes_ : ndarray
    """

    def __init__(self, model="two-cov", n_components=None, n_iter=10, reg=1e-8):
        self.model = model
        self.n_components = n_components
        self.n_iter = n_iter
        self.reg = reg

    def __sklearn_tags__(self):
        return _supervised_tags(super().__sklearn_tags__())

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        y = _check_y(self, X, y)
        if self.model not in _MODELS:
            raise ValueError(f"model={self.model!r} is not supported; choose one of {', '.join(_MODELS)}")
        if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {self.n_iter!r}")
        mean, sw, sb, classes = class_scatter(X, y)
        if classes.size < 2:
            raise ValueError(f"PLDA needs at least 2 speakers (classes) in y, got {classes.size}")
        scale = data_scale(sw, sb, "PLDA")  # the covariance floors' reference
        if not 1e-250 < scale < 1e250:  # products of such variances under- or overflow float64
            raise ValueError(f"PLDA: the vectors' average variance {scale:.3g} is outside what float64 "
                             "products of covariances hold (1e-250 to 1e250); rescale X")
        _, inv = np.unique(y, return_inverse=True)
        counts = np.bincount(inv).astype(np.float64)
        sums = np.zeros((classes.size, X.shape[1]))
        np.add.at(sums, inv, X)
        scatter = X.T @ X
        self.mean_ = mean
        self.classes_ = classes
        self.log_likelihood_ = []
        if self.model == "two-cov":
            phib, phiw = floor_covariance(sb, self.reg, scale), floor_covariance(sw, self.reg, scale)
            mu = mean
            for _ in range(int(self.n_iter)):
                mu, phib, phiw = self._em_two_cov(mu, phib, phiw, counts, sums, scatter, scale)
                self.log_likelihood_.append(self._loglik(mu, phib, phiw, counts, sums, scatter))
            self.mean_ = mu
            self.between_covariance_, self.within_covariance_ = phib, phiw
        else:
            d = X.shape[1]
            q = min(classes.size - 1, d) if self.n_components is None else int(self.n_components)
            if not 1 <= q <= d:
                raise ValueError(f"n_components={self.n_components!r} must be between 1 and n_features={d}")
            ev, evec = np.linalg.eigh(_sym(sb))
            order = np.argsort(ev)[::-1][:q]
            v = evec[:, order] * np.sqrt(np.maximum(ev[order], 0.0) + 1e-12)
            sigma = floor_covariance(sw, self.reg, scale)
            cs = sums - counts[:, None] * mean
            cscatter = scatter - X.shape[0] * np.outer(mean, mean)
            for _ in range(int(self.n_iter)):
                v, sigma = self._em_simplified(v, sigma, counts, cs, cscatter, scale)
                self.log_likelihood_.append(
                    self._loglik(mean, v @ v.T, sigma, counts, sums, scatter))
            self.subspace_ = v
            self.between_covariance_ = _sym(v @ v.T)
            self.within_covariance_ = sigma
        self._diagonalise()
        return self

    def _em_two_cov(self, mu, phib, phiw, counts, sums, scatter, scale):
        s, d = sums.shape
        b = np.linalg.inv(phib)
        w = np.linalg.inv(phiw)
        bmu = b @ mu
        ys = np.empty((s, d))
        eyy = np.zeros((d, d))
        r_ = np.zeros((d, d))  # sum_s n_s E[y y^T]
        yf = np.zeros((d, d))  # sum_s y_s f_s^T
        for n_s in np.unique(counts):
            rows = np.flatnonzero(counts == n_s)
            lcov = np.linalg.inv(b + n_s * w)
            y = (bmu + sums[rows] @ w) @ lcov  # lcov symmetric
            ys[rows] = y
            e = rows.size * lcov + y.T @ y
            eyy += e
            r_ += n_s * e
            yf += y.T @ sums[rows]
        mu_new = ys.mean(axis=0)
        phib_new = floor_covariance(eyy / s - np.outer(mu_new, mu_new), self.reg, scale)
        n = counts.sum()
        phiw_new = floor_covariance((scatter - yf - yf.T + r_) / n, self.reg, scale)
        return mu_new, phib_new, phiw_new

    def _em_simplified(self, v, sigma, counts, cs, cscatter, scale):
        s, d = cs.shape
        q = v.shape[1]
        sinv = np.linalg.inv(sigma)
        vts = v.T @ sinv
        vtsv = vts @ v
        zs = np.empty((s, q))
        r_ = np.zeros((q, q))
        for n_s in np.unique(counts):
            rows = np.flatnonzero(counts == n_s)
            pcov = np.linalg.inv(np.eye(q) + n_s * vtsv)
            z = cs[rows] @ vts.T @ pcov
            zs[rows] = z
            r_ += n_s * (rows.size * pcov + z.T @ z)
        fz = cs.T @ zs  # (D, Q)
        v_new = np.linalg.solve(r_, fz.T).T
        n = counts.sum()
        sigma_new = floor_covariance((cscatter - v_new @ fz.T) / n, self.reg, scale)
        return v_new, sigma_new

    @staticmethod
    def _loglik(mu, phib, phiw, counts, sums, scatter):
        """Marginal log-likelihood of the training vectors (speakers independent).

        In the space where ``Phi_w = I`` and ``Phi_b = diag(psi)`` a speaker's ``n`` values
        of one dimension are ``N(0, I + psi 11^T)``; works for a singular ``Phi_b``.
        """
        d = mu.shape[0]
        c = np.linalg.cholesky(phiw)
        cinv = np.linalg.inv(c)
        psi, q = np.linalg.eigh(_sym(cinv @ phib @ cinv.T))
        psi = np.maximum(psi, 0.0)
        a = q.T @ cinv
        n = counts.sum()
        tot = sums.sum(0)
        cent = scatter - np.outer(tot, mu) - np.outer(mu, tot) + n * np.outer(mu, mu)
        sq = float(np.sum((a @ cent) * a))  # sum_i ||A (x_i - mu)||^2
        u = (sums - counts[:, None] * mu) @ a.T  # per speaker, sum of transformed vectors
        logdet_w = 2.0 * float(np.sum(np.log(np.diag(c))))
        g = 1.0 + counts[:, None] * psi[None, :]
        total = -0.5 * (n * d * LOG_2PI + n * logdet_w + float(np.sum(np.log(g))) + sq
                        - float(np.sum(psi[None, :] / g * u * u)))
        return float(total)

    def _diagonalise(self):
        phiw = self.within_covariance_
        phib = self.between_covariance_
        c = np.linalg.cholesky(phiw)
        cinv = np.linalg.inv(c)
        m = _sym(cinv @ phib @ cinv.T)
        psi, q = np.linalg.eigh(m)
        order = np.argsort(psi)[::-1]
        self.psi_ = np.maximum(psi[order], 0.0)
        self.transform_ = q[:, order].T @ cinv

    # ------------------------------------------------------------------ scoring
    def transform(self, X):
        """Vectors in the diagonalised space, ``A (x - mean_)``."""
        check_is_fitted(self, "transform_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) @ self.transform_.T

    def llr(self, enroll, test, n_enroll=None, *, enroll_cov=None, test_cov=None):
        """Log-likelihood ratios, shape (n_models, n_tests).

        Parameters
        ----------
        enroll : array (n_models, D)
            One vector per model: the mean of the model's enrolment vectors.
        test : array (n_tests, D)
        n_enroll : array (n_models,) or None
            Number of enrolment vectors each mean averages (default 1).
        enroll_cov, test_cov : arrays (n_models, D, D) / (n_tests, D, D) or None
            Uncertainty of each vector (e.g. the i-vector posterior covariance carried
            through the back-end's transforms), added to its within-speaker noise: with
            either given the LLR is the uncertainty-propagation one (Kenny et al. 2013,
            "PLDA for speaker verification with utterances of arbitrary duration";
            Cumani et al. 2014), see :meth:`_llr_uncertain`. None: no uncertainty.
        """
        check_is_fitted(self, "transform_")
        ue = self.transform(np.atleast_2d(enroll))
        ut = self.transform(np.atleast_2d(test))
        n = np.ones(ue.shape[0]) if n_enroll is None else np.asarray(n_enroll, dtype=np.float64)
        if n.shape != (ue.shape[0],) or np.any(n < 1):
            raise ValueError(f"n_enroll must hold one count >= 1 per enrolment vector, got shape {n.shape}")
        if enroll_cov is not None or test_cov is not None:
            return self._llr_uncertain(ue, ut, n, self._cov_in_space(enroll_cov, ue.shape[0], "enroll_cov"),
                                       self._cov_in_space(test_cov, ut.shape[0], "test_cov"))
        psi = self.psi_
        npsi = n[:, None] * psi[None, :]
        mean = npsi / (npsi + 1.0) * ue  # (M, D)
        var = 1.0 + psi[None, :] / (npsi + 1.0)  # (M, D)
        iv = 1.0 / var
        num = -0.5 * (np.sum(np.log(var), axis=1)[:, None] + iv @ (ut * ut).T
                      - 2.0 * (mean * iv) @ ut.T + np.sum(mean * mean * iv, axis=1)[:, None])
        vden = 1.0 + psi
        den = -0.5 * (np.sum(np.log(vden)) + (ut * ut) @ (1.0 / vden))
        return num - den[None, :]

    def _cov_in_space(self, cov, n, name):
        """Covariances of the input space in the diagonalised one (``A C A^T``); zeros for None."""
        d = self.psi_.shape[0]
        if cov is None:
            return np.zeros((n, d, d))
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (n, d, d):
            raise ValueError(f"{name} must have shape ({n}, {d}, {d}) (one covariance per vector), "
                             f"got {cov.shape}")
        if not np.all(np.isfinite(cov)):
            raise ValueError(f"{name} holds non-finite values")
        a = self.transform_
        return a @ cov @ a.T

    def _llr_uncertain(self, ue, ut, n, ce, ct):
        """The LLR with per-vector uncertainty, in the diagonalised space (``Phi_w = I``,
        ``Phi_b = Psi``): a model's vector is ``y + e_e`` with ``e_e ~ N(0, I / n + C_e)``,
        a test's ``y' + e_t`` with ``e_t ~ N(0, I + C_t)``; "same speaker" (``y = y'``) makes
        them jointly Gaussian with cross-covariance ``Psi``, so the LLR is
        ``log N(u_t; G u_e, Psi + I + C_t - G Psi) - log N(u_t; 0, Psi + I + C_t)`` with
        ``G = Psi (Psi + I / n + C_e)^-1``. One Cholesky factorisation per trial
        (``n_models x n_tests`` of ``D x D``): meant for the i-vector sizes of a
        speaker-ID evaluation, not for millions of trials."""
        from gmmspeech.threads import single_thread_blas

        d = self.psi_.shape[0]
        psi = np.diag(self.psi_)
        eye = np.eye(d)
        tot_t = psi + eye + ct  # (T, D, D): the test's marginal covariance
        out = np.empty((ue.shape[0], ut.shape[0]))
        # one small factorisation per trial: a multi-threaded BLAS only adds overhead there
        # (D = 200: 0.27 ms a trial on one thread, 0.9 ms with two)
        with single_thread_blas():
            den = np.array([_gauss_logpdf(x, c) for x, c in zip(ut, tot_t)])
            for m in range(ue.shape[0]):
                g = np.linalg.solve(_sym(psi + eye / n[m] + ce[m]), psi).T  # Psi P^-1 (P symmetric)
                gp = _sym(g @ psi)
                diff = ut - g @ ue[m]
                out[m] = [_gauss_logpdf(x, c - gp) for x, c in zip(diff, tot_t)]
                out[m] -= den
        return out


def _gauss_logpdf(x, cov):
    """``log N(x; 0, cov)`` for one vector ``x`` (D,) and its covariance ``cov`` (D, D): LAPACK's
    Cholesky factorisation and one triangular solve (no batched arrays of D x D per trial)."""
    from scipy.linalg import lapack

    chol, info = lapack.dpotrf(cov, lower=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError("covariance of the uncertainty LLR is not positive definite")
    z, info = lapack.dtrtrs(chol, x, lower=1)
    return -0.5 * (x.shape[0] * LOG_2PI + 2.0 * np.sum(np.log(np.diagonal(chol))) + z @ z)
