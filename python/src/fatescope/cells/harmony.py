"""Harmony (Korsunsky et al. 2019) in torch, CPU or GPU: soft k-means with a batch-diversity
penalty alternating with a mixture-of-experts ridge correction.

Follows the current Harmony (R harmony >= 1.2, "harmony2", which harmonypy >= 2 ports): cosine-
normalised embedding, K = min(100, N / 30) clusters, sigma 0.1, theta 2, diversity weights
((2E + 1) / (O + E + 1))^theta, a ridge penalty estimated per cluster (lambda_b = alpha E_kb,
alpha 0.2), batches with almost no cells in a cluster left out of its regression, cluster
centroids taken from the regression intercepts, blocks of 5% of the cells in random order, at
most 10 rounds x 4 clustering passes, convergence tolerances 1e-3 (clustering, over a window of
3) and 1e-2 (rounds), float32. Only the k-means start differs from the peers (ours: seeded
k-means++), so runs match harmonypy's in quality, not bit for bit.
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
WINDOW = 3  # clustering passes compared for convergence


@dataclass(frozen=True)
class HarmonyParams:
    theta: float = 2.0
    sigma: float = 0.1
    lamb: float | None = None  # None: estimated per cluster as alpha x expected cells of each batch
    alpha: float = 0.2
    n_clusters: int | None = None
    max_iter_harmony: int = 10
    max_iter_kmeans: int = 4
    block_size: float = 0.05
    eps_cluster: float = 1e-3
    eps_harmony: float = 1e-2
    batch_prop_cutoff: float = 1e-5


def _normalize(X: torch.Tensor) -> torch.Tensor:
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)


class _Harmony:
    def __init__(self, Z: torch.Tensor, phi: torch.Tensor, p: HarmonyParams, seed: int):
        self.Z_orig, self.Z_corr = Z, Z.clone()
        self.phi = phi  # N x B one-hot
        self.phi_moe = torch.cat([torch.ones_like(phi[:, :1]), phi], dim=1)  # with the intercept
        self.p, self.N = p, Z.shape[0]
        self.n_b = phi.sum(0)
        self.pr_b = self.n_b / self.N
        self.K = max(p.n_clusters or int(min(round(self.N / 30.0), 100)), 2)
        self.block_size = p.block_size if self.N >= 40 else 0.2
        self.gen = torch.Generator().manual_seed(seed)
        self.theta = torch.full((phi.shape[1],), p.theta, dtype=Z.dtype, device=Z.device)
        self.Y = _normalize(kmeans(_normalize(Z), self.K, seed=seed, n_iter=25, n_init=3))
        self._assign()
        self.objective = [self._objective()]

    def _assign(self) -> None:
        """Soft assignments of the (corrected) cells to the current centroids, from scratch."""
        Z_cos = _normalize(self.Z_corr)
        self.dist = 2 * (1 - Z_cos @ self.Y.T)  # N x K
        self.R = torch.softmax(-self.dist / self.p.sigma, dim=1)
        self.E = self.R.sum(0)[:, None] * self.pr_b[None, :]  # K x B expected
        self.O = self.R.T @ self.phi  # K x B observed

    def _objective(self) -> float:
        kmeans_error = (self.R * self.dist).sum()
        entropy = (self.R * torch.log(self.R.clamp_min(torch.finfo(self.R.dtype).tiny))).sum() * self.p.sigma
        penalty = self.theta[None, :] * torch.log((self.O + self.E + 1) / (2 * self.E + 1))
        cross = (self.R * (self.phi @ penalty.T)).sum() * self.p.sigma
        return float(kmeans_error + entropy + cross) * 2000.0 / self.N

    def _update_R(self) -> None:
        """One pass of block-wise updates in random order: cells leave O and E, get new
        assignments weighted against over-represented batches, and are put back."""
        scale = torch.softmax(-self.dist / self.p.sigma, dim=1)
        order = torch.randperm(self.N, generator=self.gen).to(self.Z_orig.device)
        n_blocks = int(np.ceil(1 / self.block_size))
        per_block = int(self.N * self.block_size)
        bounds = [i * per_block for i in range(n_blocks)] + [self.N]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            b = order[lo:hi]
            if b.numel() == 0:
                continue
            self.E -= self.R[b].sum(0)[:, None] * self.pr_b[None, :]
            self.O -= self.R[b].T @ self.phi[b]
            weight = ((2 * self.E + 1) / (self.O + self.E + 1)) ** self.theta[None, :]  # K x B
            R = scale[b] * (self.phi[b] @ weight.T)
            R = R / R.sum(1, keepdim=True)
            self.R[b] = R
            self.E += R.sum(0)[:, None] * self.pr_b[None, :]
            self.O += R.T @ self.phi[b]

    def cluster(self, first: bool) -> None:
        if not first:
            self._assign()
        window: list[float] = []
        for i in range(self.p.max_iter_kmeans):
            self._update_R()
            window.append(self._objective())
            if i > WINDOW:
                old, new = sum(window[-WINDOW - 1:-1]), sum(window[-WINDOW:])
                if abs(old - new) / abs(old) < self.p.eps_cluster:
                    break
        self.objective.append(window[-1])

    def correct(self) -> None:
        """Per cluster, a ridge regression of the original coordinates on the batches (weights R_k);
        the batch terms are removed from the cells, the intercept becomes the cluster's centroid."""
        Z = self.Z_orig.clone()
        Y = self.Y.clone()
        for k in range(self.K):
            keep = torch.nonzero(self.O[k] / self.n_b > self.p.batch_prop_cutoff).flatten()
            if keep.numel() < 2:
                continue
            if keep.numel() == self.phi.shape[1]:  # the usual case: every batch, every cell
                cells, design = slice(None), self.phi_moe
            else:
                cells = torch.nonzero(self.phi[:, keep].sum(1) > 0).flatten()
                design = self.phi_moe[cells][:, torch.cat([keep.new_zeros(1), keep + 1])]
            weighted = design * self.R[cells, k:k + 1]  # cells x (1 + kept batches)
            ridge = (self.p.alpha * self.E[k, keep] if self.p.lamb is None
                     else torch.full((keep.numel(),), self.p.lamb, dtype=Z.dtype, device=Z.device))
            A = weighted.T @ design + torch.diag(torch.cat([ridge.new_zeros(1), ridge]))
            W = torch.linalg.solve(A, weighted.T @ self.Z_orig[cells])  # (1 + kept) x d
            Y[k] = W[0]
            W[0] = 0
            Z[cells] -= weighted @ W
        self.Z_corr, self.Y = Z, _normalize(Y)


def harmonize(Z, batches, params: HarmonyParams = HarmonyParams(), seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:
    """Harmony-corrected copy of the embedding ``Z`` (cells x dims) for the given batch labels."""
    Z = np.asarray(Z, dtype=np.float32)  # as harmonypy; N x K assignments are most of the memory
    batches = np.asarray(batches).astype(str)
    if Z.ndim != 2 or len(batches) != len(Z):
        raise InputError(f"harmony: {len(batches)} batch labels for an embedding of shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise InputError("harmony: the embedding has missing or infinite values")
    codes = pd.Categorical(batches).codes
    if codes.max() < 1:
        log.warning("harmony: a single batch; the embedding is returned unchanged")
        return Z.astype(np.float32)
    if len(Z) < 6:
        raise InputError(f"harmony: {len(Z)} cells; Harmony needs at least 6")
    dev = torch.device(device)
    Zt = torch.from_numpy(Z).to(dev)
    phi = torch.nn.functional.one_hot(torch.from_numpy(codes.astype(np.int64))).to(Zt).to(dev)
    h = _Harmony(Zt, phi, params, seed)
    for i in range(params.max_iter_harmony):
        h.cluster(first=i == 0)
        h.correct()
        old, new = h.objective[-2], h.objective[-1]
        if (old - new) / abs(old) < params.eps_harmony:
            log.info("harmony: converged after %d rounds", i + 1)
            break
    return h.Z_corr.cpu().numpy().astype(np.float32)
