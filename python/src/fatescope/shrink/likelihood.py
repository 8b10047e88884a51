"""The J x P matrix of log-likelihoods log N(bhat_j; 0, U_p + Sigma_j), in batches, in log space.

Sigma_j = diag(shat_j) V diag(shat_j). When every effect has the same Sigma (mashr's "common cov"
case) each component is factorised once; otherwise every (effect, component) pair gets a batched
Cholesky. Computed with torch in float64 on the chosen device (CUDA when present).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from ..device import resolve_device
from .data import MashData

DTYPE = torch.float64


@contextlib.contextmanager
def single_torch_thread(device: str = "auto") -> Iterator[None]:
    """Run torch on one CPU thread (restored afterwards).

    The engine's work is many tiny batched factorisations: with OpenMP threads torch's batched
    triangular solves and inverses of small matrices become 10-100x slower (measured: 1,200 solves of
    44 x 44, 19 s with 2 threads vs 0.07 s with 1), and idle workers spin.
    """
    before = torch.get_num_threads()
    if resolve_device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def expand_cov(ulist: list[np.ndarray], grid: np.ndarray, usepointmass: bool = True) -> np.ndarray:
    """P x R x R: the null (optional) then, for each grid value g, every U scaled by g^2 (mashr's order)."""
    R = ulist[0].shape[0]
    scaled = [g ** 2 * U for g in grid for U in ulist]
    if usepointmass:
        scaled = [np.zeros((R, R))] + scaled
    return np.stack(scaled)


def row_batches(J: int, P: int, R: int, budget: int = 2 ** 25) -> Iterator[slice]:
    """Row slices sized so that one batch holds about ``budget`` doubles of J x P x R x R work arrays."""
    size = max(1, budget // max(1, P * R * R))
    for start in range(0, J, size):
        yield slice(start, min(J, start + size))


def safe_cholesky(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Cholesky; returns (L, ok) with ok False where the matrix is not positive definite."""
    L, info = torch.linalg.cholesky_ex(A)
    ok = info == 0
    if not bool(ok.all()):
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        L = torch.where(ok[..., None, None], L, eye)
    return L, ok


def noise_cov(shat: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    return shat[..., :, None] * V * shat[..., None, :]


def _loglik_from_chol(b: torch.Tensor, L: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """log N(b; 0, L L') with b broadcast against L (..., R) and (..., R, R)."""
    R = L.shape[-1]
    z = torch.linalg.solve_triangular(L, b.unsqueeze(-1).expand(*L.shape[:-1], 1), upper=False).squeeze(-1)
    logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    out = -0.5 * R * math.log(2 * math.pi) - logdet - 0.5 * (z * z).sum(-1)
    return torch.where(ok, out, torch.full_like(out, -math.inf))


def calc_loglik_matrix(data: MashData, xU: np.ndarray, device: str = "auto") -> np.ndarray:
    """J x P conditional log-likelihoods (not yet row-normalised)."""
    dev = resolve_device(device)
    U = torch.as_tensor(xU, dtype=DTYPE, device=dev)
    V = torch.as_tensor(data.V, dtype=DTYPE, device=dev)
    J, R = data.bhat.shape
    out = np.empty((J, len(xU)))
    if data.common_shat():
        S = noise_cov(torch.as_tensor(data.shat[0], dtype=DTYPE, device=dev), V)
        L, ok = safe_cholesky(U + S)                       # P x R x R
        Linv = torch.linalg.solve_triangular(L, torch.eye(R, dtype=DTYPE, device=dev).expand_as(L), upper=False)
        Q = (Linv.transpose(-1, -2) @ Linv).reshape(len(xU), R * R)      # (U + S)^-1 (cholesky_inverse is slow batched)
        const = -0.5 * R * math.log(2 * math.pi) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        const = torch.where(ok, const, torch.full_like(const, -math.inf))
        for rows in row_batches(J, len(xU), R):
            b = torch.as_tensor(data.bhat[rows], dtype=DTYPE, device=dev)
            bb = (b[:, :, None] * b[:, None, :]).reshape(len(b), R * R)
            out[rows] = (const - 0.5 * bb @ Q.T).cpu().numpy()     # quadratic forms as one matrix product
        return out
    for rows in row_batches(J, len(xU), R):
        b = torch.as_tensor(data.bhat[rows], dtype=DTYPE, device=dev)
        S = noise_cov(torch.as_tensor(data.shat[rows], dtype=DTYPE, device=dev), V)
        L, ok = safe_cholesky(U[None] + S[:, None])
        out[rows] = _loglik_from_chol(b[:, None, :], L, ok).cpu().numpy()
    return out


def relative_loglik(matrix_llik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each row's maximum (mashr's ``calc_relative_lik_matrix``); returns (matrix, lfactors)."""
    lfactors = matrix_llik.max(axis=1)
    return matrix_llik - lfactors[:, None], lfactors


def vloglik(pi: np.ndarray, rel: np.ndarray, lfactors: np.ndarray, shat_alpha: np.ndarray) -> np.ndarray:
    """Per-effect marginal log-likelihood on the original scale."""
    keep = pi > 0
    return np.log(np.exp(rel[:, keep]) @ pi[keep]) + lfactors - np.log(shat_alpha).sum(axis=1)
