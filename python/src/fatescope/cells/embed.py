"""Neighbour graph, UMAP, Leiden clusters and soft k-means on an embedding (pure functions).

The graph is the UMAP fuzzy simplicial set of the kNN (what ``scanpy.pp.neighbors`` builds);
Leiden runs on it with igraph (modularity objective with a resolution, as ``scanpy.tl.leiden``
with ``flavor="igraph"``).
"""
from __future__ import annotations

import random

import numpy as np
import scipy.sparse as sp
import torch

from ..logs import get_logger

log = get_logger(__name__)


def _smooth_knn(dist: np.ndarray, n_iter: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's per-cell rho (nearest distance) and sigma with sum_j exp(-(d_j - rho) / sigma) = log2(k)."""
    k = dist.shape[1] + 1  # UMAP counts the cell itself among its neighbours
    target = np.log2(k)
    rho = np.where(dist[:, 0] > 0, dist[:, 0], 0.0)
    lo, hi, mid = np.zeros(len(dist)), np.full(len(dist), np.inf), np.ones(len(dist))
    for _ in range(n_iter):
        val = np.exp(-np.maximum(dist - rho[:, None], 0) / mid[:, None]).sum(1)
        big = val > target
        hi = np.where(big, mid, hi)
        lo = np.where(big, lo, mid)
        mid = np.where(np.isinf(hi), mid * 2, (lo + hi) / 2)
    mean_d = dist.mean()
    sigma = np.maximum(mid, 1e-3 * np.where(rho > 0, dist.mean(1), mean_d))
    return rho, sigma


def neighbor_graph(X, n_neighbors: int = 15, seed: int = 0) -> sp.csr_matrix:
    """Symmetric weighted kNN graph (UMAP connectivities, as ``scanpy.pp.neighbors``), cells x cells.
    ``n_neighbors`` counts the cell itself, as in scanpy; ``seed`` is unused (exact kNN)."""
    from .metrics import knn

    X = np.asarray(X, dtype=np.float32)
    idx, dist = knn(X, max(min(n_neighbors, len(X)) - 1, 1))
    dist = dist.astype(np.float64)
    rho, sigma = _smooth_knn(dist)
    w = np.exp(-np.maximum(dist - rho[:, None], 0) / sigma[:, None])
    n = len(X)
    W = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())), shape=(n, n))
    Wt = W.T.tocsr()
    graph = W + Wt - W.multiply(Wt)
    graph.eliminate_zeros()
    return sp.csr_matrix(graph)


def leiden(graph: sp.csr_matrix, resolution: float = 1.0, seed: int = 0, n_iterations: int = 2) -> np.ndarray:
    """Leiden clusters (modularity with resolution), labelled '0', '1', ... by decreasing size."""
    import igraph as ig

    coo = sp.triu(graph, k=1).tocoo()
    g = ig.Graph(n=graph.shape[0], edges=list(zip(coo.row.tolist(), coo.col.tolist())), directed=False)
    g.es["weight"] = coo.data.tolist()
    ig.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution,
                                  n_iterations=n_iterations)
    finally:
        ig.set_random_number_generator(random)
    member = np.asarray(part.membership)
    order = np.argsort(-np.bincount(member), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[member].astype(str)


def umap_embedding(X, n_neighbors: int = 15, min_dist: float = 0.5, seed: int = 0) -> np.ndarray:
    """2-d UMAP (umap-learn) of ``X``; seeded, hence single-threaded in umap-learn."""
    import umap

    X = np.asarray(X, dtype=np.float32)
    model = umap.UMAP(n_neighbors=min(n_neighbors, len(X) - 1), min_dist=min_dist, random_state=seed,
                      init="spectral" if len(X) > n_neighbors + 2 else "random")
    return model.fit_transform(X).astype(np.float32)


def kmeans(X: torch.Tensor, k: int, seed: int = 0, n_iter: int = 50, n_init: int = 5) -> torch.Tensor:
    """Lloyd's k-means with k-means++ starts (torch, any device); returns the centroids (k x d)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    best, best_cost = None, np.inf
    for _ in range(n_init):
        first = torch.randint(len(X), (1,), generator=gen).item()
        cent = X[first:first + 1]
        for _ in range(1, k):
            d = torch.cdist(X, cent).min(1).values ** 2
            p = (d / d.sum()).cpu() if d.sum() > 0 else torch.full((len(X),), 1.0 / len(X))
            cent = torch.cat([cent, X[torch.multinomial(p, 1, generator=gen).item()][None]])
        for _ in range(n_iter):
            assign = torch.cdist(X, cent).argmin(1)
            new = torch.zeros_like(cent).index_add_(0, assign, X)
            counts = torch.bincount(assign, minlength=k).clamp_min(1).to(X.dtype)[:, None]
            new = torch.where(torch.bincount(assign, minlength=k)[:, None] > 0, new / counts, cent)
            if torch.allclose(new, cent):
                break
            cent = new
        cost = float((torch.cdist(X, cent).min(1).values ** 2).sum())
        if cost < best_cost:
            best, best_cost = cent, cost
    return best


def soft_kmeans(X, k: int, temperature: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Soft assignments softmax(-||x - c||^2 / temperature) to k-means centroids of the standardised
    embedding; returns (cells x k probabilities, centroids)."""
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    Xt = (Xt - Xt.mean(0)) / Xt.std(0).clamp_min(1e-8)
    cent = kmeans(Xt, k, seed=seed)
    probs = torch.softmax(-torch.cdist(Xt, cent) ** 2 / temperature, dim=1)
    return probs.numpy(), cent.numpy()
