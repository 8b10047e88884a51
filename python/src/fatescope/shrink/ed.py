"""Extreme deconvolution (Bovy et al. 2011) with zero, fixed means: mashr's ``cov_ed`` ("bovy").

EM for a mixture of K zero-mean Gaussians observed with known per-effect noise covariances:
responsibilities from N(y_i; 0, U_k + S_i), then U_k <- sum_i q_ik (b_ik b_ik' + B_ik) / sum_i q_ik with
b_ik, B_ik the posterior mean and covariance of the effect under component k. Stops when the average
log-likelihood gains <= tol (1e-6), as the reference C code does; mashr then adds 1/sqrt(n) to the
diagonal of every estimate (mashr issue 91).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from ..logs import get_logger
from .covariances import Ulist
from .data import MashData

log = get_logger(__name__)


def _noise_covariances(data: MashData) -> np.ndarray:
    """n x R x R: diag(s) V diag(s) for every effect."""
    s = data.shat
    return s[:, :, None] * data.V[None] * s[:, None, :]


def extreme_deconvolution(y: np.ndarray, S: np.ndarray, ulist: list[np.ndarray], amp: np.ndarray,
                          tol: float = 1e-6, maxiter: int = 1_000_000) -> tuple[list[np.ndarray], np.ndarray, float, int]:
    """Fit zero-mean mixture covariances; returns (covariances, amplitudes, avg loglik, iterations)."""
    n, R = y.shape
    U = np.stack([np.asarray(u, dtype=np.float64) for u in ulist])
    amp = np.asarray(amp, dtype=np.float64).copy()
    K = len(U)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    old = 0.0
    diff = 2 * tol
    it = 0
    fixed = np.zeros(K, dtype=bool)
    avg = float("nan")
    while diff > tol and it < maxiter:
        T = U[None] + S[:, None]                                   # n x K x R x R
        Tinv = np.linalg.inv(T)
        _, logdet = np.linalg.slogdet(T)
        Tinv_y = np.einsum("nkab,nb->nka", Tinv, y)
        expo = np.einsum("na,nka->nk", y, Tinv_y)
        with np.errstate(divide="ignore"):
            logq = np.log(amp)[None] - R * half_log_2pi - 0.5 * logdet - 0.5 * expo
        norm = logsumexp(logq, axis=1)
        avg = float(norm.sum() / n)
        q = np.exp(logq - norm[:, None])
        b = np.einsum("kab,nkb->nka", U, Tinv_y)                   # posterior means
        UTinv = np.einsum("kab,nkbc->nkac", U, Tinv)
        B = U[None] - np.einsum("nkab,kbc->nkac", UTinv, U)        # posterior covariances
        qj = q.sum(axis=0)
        for k in range(K):
            if fixed[k]:
                continue
            if qj[k] < np.finfo(float).tiny:
                amp[k] = 0.0
                fixed[k] = True
                continue
            M = np.einsum("n,na,nb->ab", q[:, k], b[:, k], b[:, k]) + np.einsum("n,nab->ab", q[:, k], B[:, k])
            M = M / qj[k]
            U[k] = (M + M.T) / 2
            amp[k] = qj[k]
        amp = np.where(fixed, amp, amp / n)
        if it > 0:
            diff = avg - old
        old = avg
        it += 1
    return [U[k] for k in range(K)], amp, avg, it


def cov_ed(data: MashData, ulist_init: Ulist, subset=None, tol: float = 1e-6, maxiter: int = 1_000_000) -> Ulist:
    """mashr ``cov_ed(data, Ulist_init, subset)``: ED refinement, names prefixed ``ED_``."""
    sub = data if subset is None else data.subset(subset)
    K = len(ulist_init)
    with threadpool_limits(1, user_api="blas"):      # many tiny batched inverses: threads only contend
        covs, _, avg, it = extreme_deconvolution(sub.bhat, _noise_covariances(sub), list(ulist_init.values()),
                                                 np.full(K, 1.0 / K), tol=tol, maxiter=maxiter)
    log.info("extreme deconvolution: %d covariances on %d effects, %d iterations, avg loglik %.6f",
             K, sub.n_effects, it, avg)
    eps = np.eye(data.n_conditions) / math.sqrt(sub.n_effects)
    return {f"ED_{name}": U + eps for name, U in zip(ulist_init, covs)}
