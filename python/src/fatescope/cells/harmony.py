"""Harmony (Korsunsky et al. 2019) in torch, CPU or GPU: soft k-means with a batch-diversity
penalty alternating with a mixture-of-experts ridge correction.

Follows harmonypy's algorithm and defaults: cosine-normalised embedding, K = min(100, N / 30)
clusters, sigma 0.1, theta 2, ridge lambda 1, blocks of 5% of the cells in random order,
at most 10 outer rounds x 20 clustering iterations, convergence tolerances 1e-5 / 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..logs import get_logger
from .embed import kmeans

log = get_logger(__name__)


@dataclass(frozen=True)
class HarmonyParams:
    theta: float = 2.0
    sigma: float = 0.1
    lamb: float = 1.0
    n_clusters: int | None = None
    max_iter_harmony: int = 10
    max_iter_kmeans: int = 20
    block_size: float = 0.05
    eps_cluster: float = 1e-5
    eps_harmony: float = 1e-4


def _normalize(X: torch.Tensor) -> torch.Tensor:
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)


class _Harmony:
    def __init__(self, Z: torch.Tensor, phi: torch.Tensor, p: HarmonyParams, seed: int):
        self.Z_orig, self.Z_corr, self.Z_cos = Z, Z.clone(), _normalize(Z)
        self.phi = phi  # N x B one-hot
        self.p, self.N = p, Z.shape[0]
        self.pr_b = phi.sum(0) / self.N
        self.K = p.n_clusters or int(min(round(self.N / 30.0), 100))
        self.K = max(self.K, 2)
        self.gen = torch.Generator().manual_seed(seed)
        self.theta = torch.full((phi.shape[1],), p.theta, dtype=Z.dtype, device=Z.device)
        self.Y = _normalize(kmeans(self.Z_cos, self.K, seed=seed, n_iter=25, n_init=3))
        self._compute_R_full()
        self.objective = [self._objective()]

    def _dist(self) -> torch.Tensor:
        return 2 * (1 - self.Z_cos @ self.Y.T)  # N x K

    def _compute_R_full(self) -> None:
        self.dist = self._dist()
        R = torch.exp(-self.dist / self.p.sigma)
        self.R = R / R.sum(1, keepdim=True)
        self.E = self.R.sum(0)[:, None] * self.pr_b[None, :]  # K x B
        self.O = self.R.T @ self.phi  # K x B

    def _objective(self) -> float:
        kmeans_error = (self.R * self.dist).sum()
        entropy = (self.R * torch.log(self.R.clamp_min(1e-300))).sum() * self.p.sigma
        cross = (self.R * ((self.theta[None, :] * torch.log((self.O + 1) / (self.E + 1))) @ self.phi.T).T).sum() * self.p.sigma
        return float(kmeans_error + entropy + cross)

    def _update_R(self) -> None:
        scale = torch.exp(-self.dist / self.p.sigma)
        order = torch.randperm(self.N, generator=self.gen).to(self.Z_orig.device)
        n_blocks = int(np.ceil(1 / self.p.block_size))
        for b in torch.tensor_split(order, n_blocks):
            if b.numel() == 0:
                continue
            self.E -= self.R[b].sum(0)[:, None] * self.pr_b[None, :]
            self.O -= self.R[b].T @ self.phi[b]
            R = scale[b] * ((((self.E + 1) / (self.O + 1)) ** self.theta[None, :]) @ self.phi[b].T).T
            R = R / R.sum(1, keepdim=True)
            self.R[b] = R
            self.E += R.sum(0)[:, None] * self.pr_b[None, :]
            self.O += R.T @ self.phi[b]

    def cluster(self) -> None:
        for i in range(self.p.max_iter_kmeans):
            self.Y = _normalize(self.R.T @ self.Z_cos)
            self.dist = self._dist()
            self._update_R()
            self.objective.append(self._objective())
            if i > 2:
                old = self.objective[-4:-1]
                if (np.mean(old) - self.objective[-1]) / abs(np.mean(old)) < self.p.eps_cluster:
                    break

    def correct(self) -> None:
        ones = torch.ones((self.N, 1), dtype=self.Z_orig.dtype, device=self.Z_orig.device)
        phi_moe = torch.cat([ones, self.phi], dim=1)  # N x (B+1)
        lamb = torch.diag(torch.cat([torch.zeros(1), torch.full((self.phi.shape[1],), self.p.lamb)])).to(self.Z_orig)
        Z = self.Z_orig.clone()
        for k in range(self.K):
            phi_rk = phi_moe * self.R[:, k:k + 1]  # N x (B+1)
            A = phi_rk.T @ phi_moe + lamb
            W = torch.linalg.solve(A, phi_rk.T @ self.Z_orig)  # (B+1) x d
            W[0] = 0
            Z -= phi_rk @ W
        self.Z_corr, self.Z_cos = Z, _normalize(Z)


def harmonize(Z, batches, params: HarmonyParams = HarmonyParams(), seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:
    """Harmony-corrected copy of the embedding ``Z`` (cells x dims) for the given batch labels."""
    Z = np.asarray(Z, dtype=np.float64)
    batches = np.asarray(batches).astype(str)
    if len(batches) != len(Z):
        raise InputError(f"harmony: {len(batches)} batch labels for {len(Z)} cells")
    codes = pd.Categorical(batches).codes
    if codes.max() < 1:
        log.warning("harmony: a single batch; the embedding is returned unchanged")
        return Z.astype(np.float32)
    dev = torch.device(device)
    Zt = torch.from_numpy(Z).to(dev)
    phi = torch.nn.functional.one_hot(torch.from_numpy(codes.astype(np.int64))).to(Zt).to(dev)
    h = _Harmony(Zt, phi, params, seed)
    rounds = [h.objective[-1]]
    for i in range(params.max_iter_harmony):
        h.cluster()
        h.correct()
        rounds.append(h.objective[-1])
        if i > 0:
            old, new = rounds[-2], rounds[-1]
            if (old - new) / abs(old) < params.eps_harmony:
                log.info("harmony: converged after %d rounds", i + 1)
                break
    return h.Z_corr.cpu().numpy().astype(np.float32)
