"""Mixture weights by mix-SQP (Kim et al. 2020), following mixsqp 0.3-48 as ashr/mashr call it.

maximise sum_i w_i log(sum_k L_ik x_k) over the simplex. The steps mirror the reference: weights
normalised, rows scaled by their maxima, a truncated SVD of L (singular values > tol_svd) only where
mixsqp's irlba-based ``tsvd`` would find one (numerical rank below half the columns), 20 EM updates,
then SQP iterations (one EM update, a convex QP by an active-set method whose Newton steps are solved
as Armadillo's ``solve`` does, a backtracking line search) until the dual residual of the non-zero
entries is below ``convtol_sqp``; entries below ``zero_threshold`` are set to zero. ``mix_weights``
adds the penalty rows of mashr/ashr's ``nullbiased`` prior (a pseudo-observation of weight
nullweight - 1 on the null component).

Both details decide where mix-SQP stops: factorising L where the reference keeps it whole put the
weights 1e-6 off and posterior means 1.4e-4 off (issue 14). The stopping rule ignores zeroed
entries, so on ill-conditioned problems the reference can stop short of the optimum at a point
decided by rounding noise (|search direction| vs 1e-14); there the two implementations can differ
(docs/mash.md).
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
            if _tsvd_low_rank(d, L.shape, tol_svd):
                keep = np.flatnonzero(d > tol_svd)
                if len(keep) < 2:
                    keep = np.arange(2)
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


def _tsvd_low_rank(d: np.ndarray, shape: tuple[int, int], tol: float) -> bool:
    """Whether mixsqp's ``tsvd`` returns a factorisation for a matrix with singular values ``d``.

    tsvd asks irlba for k = 2, 4, 8, ... singular vectors until the k-th singular value is below
    ``tol``; irlba refuses (a warning or an error, and tsvd returns NULL: mix-SQP keeps the full
    matrix) once k reaches half of min(n, m). So only a matrix whose k-th singular value is below tol
    for a power of two k < min(n, m) / 2 is factorised.
    """
    r = min(shape)
    k = 2
    while k < 0.5 * r and k <= r - 1:
        if d[k - 1] < tol:
            return True
        k = min(2 * k, r)
    return False


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
    """Newton direction of the QP subproblem: (H + a I)^-1 (-b), a the smallest shift making H + a I Cholesky-able."""
    a0, amax = 1e-15, 1e15
    d = np.diag(H).min()
    a = 0.0 if d > a0 else a0 - d
    eye = np.eye(len(b))
    while True:
        B = H + a * eye
        if a * ainc > amax:
            break
        if sla.lapack.dpotrf(B)[1] == 0:          # Armadillo's chol(): upper triangle
            break
        a = a0 if a <= 0 else a * ainc
    return _solve_like_armadillo(B, -b)


def _solve_like_armadillo(B: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Armadillo's ``solve(B, rhs)`` as mixsqp calls it: Cholesky when B looks symmetric positive definite (n >= 16),
    else LU; if the estimated reciprocal condition number is below machine epsilon, the minimum-norm least-squares
    solution (SVD, singular values below n * eps of the largest dropped).

    The QP Hessians of near-collinear likelihood columns are often that ill-conditioned; there the least-squares
    direction differs from a plain Cholesky solve, and so does the path mix-SQP takes.
    """
    n = len(rhs)
    eps = np.finfo(np.float64).eps
    anorm = float(np.abs(B).sum(axis=0).max())
    rcond, ok = 0.0, False
    if n >= 16 and _looks_sympd(B):
        c, info = sla.lapack.dpotrf(B, lower=1)
        if info == 0:
            x, _ = sla.lapack.dpotrs(c, rhs, lower=1)
            rcond, ok = sla.lapack.dpocon(c, anorm, uplo="L")[0], True
    if not ok:
        lu, piv, info = sla.lapack.dgetrf(B)
        if info == 0:
            x, _ = sla.lapack.dgetrs(lu, piv, rhs)
            rcond, ok = sla.lapack.dgecon(lu, anorm)[0], True
    if ok and rcond >= eps:
        return x
    return sla.lstsq(B, rhs, cond=n * eps, lapack_driver="gelsd")[0]


def _looks_sympd(A: np.ndarray) -> bool:
    """Armadillo's ``sym_helper::guess_sympd``: positive diagonal, symmetric, diagonally dominant pairs."""
    diag = np.diag(A)
    if diag.min() <= 0:
        return False
    tol = 100 * np.finfo(np.float64).eps
    iu = np.triu_indices(len(A), 1)
    lower, upper = A.T[iu], A[iu]           # A_ij with i > j (column-major lower triangle) and A_ji
    la, ua = np.abs(lower), np.abs(upper)
    delta = np.abs(lower - upper)
    if np.any(la >= diag.max()) or np.any((delta > tol) & (delta > np.maximum(la, ua) * tol)):
        return False
    return not np.any(2 * la >= diag[iu[0]] + diag[iu[1]])


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
