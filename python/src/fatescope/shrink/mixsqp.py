"""Mixture weights by mix-SQP (Kim et al. 2020), following mixsqp 0.3-48 as ashr/mashr call it.

maximise sum_i w_i log(sum_k L_ik x_k) over the simplex. The steps mirror the reference: weights
normalised, rows scaled by their maxima, a truncated SVD of L (singular values > tol_svd) when it
lowers the rank, 20 EM updates, then SQP iterations (one EM update, a convex QP by an active-set
method, a backtracking line search) until the dual residual is below ``convtol_sqp``; entries below
``zero_threshold`` are set to zero. ``mix_weights`` adds the penalty rows of mashr/ashr's
``nullbiased`` prior (a pseudo-observation of weight nullweight - 1 on the null component).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_limits

from ..logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SQPControl:
    eps: float = 1e-6                    # ashr's setting (mixsqp's own default is 1e-8)
    numiter_em: int = 20                 # ashr's setting
    tol_svd: float = 1e-6
    convtol_sqp: float = 1e-8
    convtol_activeset: float = 1e-10
    zero_threshold: float = 1e-8
    zero_threshold_searchdir: float = 1e-14
    suffdecr: float = 0.01
    stepsizereduce: float = 0.75
    minstepsize: float = 1e-8
    identity_contrib_increase: float = 10.0
    maxiter_sqp: int = 1000


DEFAULT_CONTROL = SQPControl()


class _Lik:
    """L (n x m) or its factorisation U V' with the products the algorithm needs."""

    def __init__(self, L: np.ndarray, tol_svd: float):
        self.U = self.V = None
        self.L = L
        m = L.shape[1]
        if tol_svd > 0 and m > 4:
            u, d, vt = sla.svd(L, full_matrices=False)
            keep = np.flatnonzero(d > tol_svd)
            if len(keep) < 2:
                keep = np.arange(min(2, len(d)))
            if len(keep) < m:
                sd = np.sqrt(d[keep])
                self.U, self.V = u[:, keep] * sd, vt[keep].T * sd
                self.L = self.U @ self.V.T

    def times(self, x: np.ndarray) -> np.ndarray:
        return self.U @ (self.V.T @ x) if self.U is not None else self.L @ x

    def grad_hess(self, w: np.ndarray, x: np.ndarray, e: float) -> tuple[np.ndarray, np.ndarray]:
        u = self.times(x) + e
        if self.U is not None:
            g = -self.V @ (self.U.T @ (w / u))
            Z = self.U * (np.sqrt(w) / u)[:, None]
            return g, self.V @ (Z.T @ Z) @ self.V.T
        Z = self.L * (np.sqrt(w) / u)[:, None]
        return -self.L.T @ (w / u), Z.T @ Z


def _objective(lik: _Lik, w, x, z, e) -> float:
    u = lik.times(x) + e
    if u.min() <= 0:
        raise FloatingPointError("mix-SQP objective is -Inf")
    return float(-np.sum(w * (z + np.log(u))))


def _em_update(L: np.ndarray, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One EM step as mixsqp's: P = L diag(x+e), rows / row max, + e, rows / row sum; x = P'w.

    Expanded so that only the row maxima need the n x m product: with M the row maxima and
    s = L(x+e)/M + m e the row sums, x_k = (x_k + e) (L' (w / (s M)))_k + e sum(w / s).
    """
    e = 1e-15
    xe = x + e
    M = (L * xe).max(axis=1)
    s = (L @ xe) / M + e * L.shape[1]
    return xe * (L.T @ (w / (s * M))) + e * np.sum(w / s)


def _feasible_stepsize(x, p) -> tuple[int, float]:
    neg = np.flatnonzero(p < 0)
    if len(neg) == 0:
        return -1, 1.0
    t = -x[neg] / p[neg]
    j = int(np.argmin(t))
    return int(neg[j]), float(min(1.0, t[j]))


def _searchdir(H: np.ndarray, b: np.ndarray, ainc: float) -> np.ndarray:
    a0, amax = 1e-15, 1e15
    d = np.diag(H).min()
    a = 0.0 if d > a0 else a0 - d
    eye = np.eye(len(b))
    while True:
        B = H + a * eye
        if a * ainc > amax:
            return sla.solve(B, -b)
        try:
            return sla.cho_solve(sla.cho_factor(B), -b)
        except sla.LinAlgError:
            a = a0 if a <= 0 else a * ainc


def _activeset_qp(H, g, y, maxiter, c: SQPControl) -> np.ndarray:
    y = y.copy()
    t = y > 0
    for _ in range(maxiter):
        i, j = np.flatnonzero(t), np.flatnonzero(~t)
        y[j] = 0
        b = g.copy()
        b[i] += H[np.ix_(i, i)] @ y[i]
        p = np.zeros_like(y)
        p[i] = _searchdir(H[np.ix_(i, i)], b[i], c.identity_contrib_increase)
        if np.max(np.abs(p)) <= c.zero_threshold_searchdir:
            b = g + H @ y
            if len(j) == 0 or b[j].min() >= -c.convtol_activeset:
                break
            t[j[np.argmin(b[j])]] = True
        else:
            k, a = _feasible_stepsize(y, p)
            add = k >= 0 and a < 1 and len(i) > 1
            y += a * p
            y[y < 0] = 0
            if add:
                t[k] = False
                y[k] = 0
    return y


def _line_search(f, lik, w, z, g, x, y, e, c: SQPControl) -> np.ndarray:
    p = y - x
    _, afeas = _feasible_stepsize(x, p)
    if afeas <= c.minstepsize:
        return afeas * y + (1 - afeas) * x
    a = min(1.0, afeas)
    while True:
        xnew = a * y + (1 - a) * x
        fnew = _objective(lik, w, xnew, z, e)
        if xnew.min() >= 0 and fnew + xnew.sum() <= f + x.sum() + c.suffdecr * a * np.dot(y - x, g + 1):
            return xnew
        if a * c.stepsizereduce < c.minstepsize:
            xnew = c.minstepsize * y + (1 - c.minstepsize) * x
            return x if xnew.min() < 0 else xnew
        a *= c.stepsizereduce


def mixsqp(L: np.ndarray, w: np.ndarray | None = None, x0: np.ndarray | None = None,
           control: SQPControl = DEFAULT_CONTROL) -> tuple[np.ndarray, bool]:
    """Maximiser x (sums to 1) of sum_i w_i log(L_i. x); returns (x, converged)."""
    # single-threaded BLAS: these are small dense problems, and OpenBLAS threads fight torch's OpenMP pool
    with threadpool_limits(1, user_api="blas"):
        return _mixsqp(L, w, x0, control)


def _mixsqp(L, w, x0, control: SQPControl) -> tuple[np.ndarray, bool]:
    L = np.asarray(L, dtype=np.float64)
    n, m0 = L.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    w = w / w.sum()
    x0 = np.ones(m0) if x0 is None else np.asarray(x0, dtype=np.float64)
    nonzero = np.flatnonzero(L.max(axis=0) > 0)
    if len(nonzero) == 1 or m0 == 1:
        x = np.zeros(m0)
        x[nonzero] = 1.0
        return x, True
    L, x = L[:, nonzero], x0[nonzero] / x0[nonzero].sum()
    m = L.shape[1]
    zmax = L.max(axis=1)
    L, z = L / zmax[:, None], np.log(zmax)
    lik = _Lik(L, control.tol_svd)
    e = control.eps - min(0.0, float(lik.L.min()))
    for _ in range(control.numiter_em):
        x = _em_update(lik.L, w, x)
    maxiter_as = min(20, m + 1)
    converged = False
    for _ in range(control.maxiter_sqp):
        x = _em_update(lik.L, w, x)
        x[x <= control.zero_threshold] = 0
        f = _objective(lik, w, x, z, e)
        g, H = lik.grad_hess(w, x, e)
        if 1 + g[x > control.zero_threshold].min() >= -control.convtol_sqp:
            converged = True
            break
        y = _activeset_qp(H, g - H @ x + 1, x, maxiter_as, control)
        x = _line_search(f, lik, w, z, g, x, y, e, control)
    if not converged:
        log.warning("mix-SQP did not converge within %d iterations; weights may be inaccurate", control.maxiter_sqp)
    out = np.zeros(m0)
    out[nonzero] = x / x.sum()
    return out, converged


def mix_weights(matrix_lik: np.ndarray, prior: np.ndarray, control: SQPControl = DEFAULT_CONTROL,
                x0: np.ndarray | None = None) -> np.ndarray:
    """ashr's ``mixSQP`` wrapper: penalty rows for prior - 1, then mix-SQP; weights sum to 1."""
    k = matrix_lik.shape[1]
    extra = np.asarray(prior, dtype=np.float64) - 1
    rows = np.flatnonzero(extra != 0)
    A = np.vstack([np.eye(k)[rows], matrix_lik])
    wts = np.concatenate([extra[rows], np.ones(matrix_lik.shape[0])])
    x, _ = mixsqp(A, wts, np.full(k, 1.0 / k) if x0 is None else x0, control)
    return x


def set_prior(K: int, prior: str, nullweight: float = 10.0) -> np.ndarray:
    """mashr's ``set_prior``: uniform, or nullbiased (first component weighted ``nullweight``)."""
    out = np.ones(K)
    if prior == "nullbiased":
        out[0] = nullweight
    elif prior != "uniform":
        raise ValueError(f"prior must be 'nullbiased' or 'uniform', got {prior!r}")
    return out
