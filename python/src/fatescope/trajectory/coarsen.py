"""Graph aggregation for diffusion maps of very large graphs.

ARPACK needs ever more iterations as a kNN graph grows (its top diffusion eigenvalues crowd towards 1), so
beyond ``COARSE_ABOVE`` cells the diffusion map is computed on a graph of aggregates and carried back to the
cells. Aggregates: repeated rounds of a randomised maximal-independent-set rule (a cell with the highest
priority among its neighbours seeds an aggregate, its neighbours join the seed of highest priority), all
vectorised, until at most ``target`` aggregates remain.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _neighbour_max(W: sp.csr_matrix, values: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the largest ``values`` among its eligible neighbours and that neighbour's index (-1: none)."""
    cand = np.where(eligible[W.indices], values[W.indices], -np.inf)
    counts = np.diff(W.indptr)
    best = np.full(W.shape[0], -np.inf)
    arg = np.full(W.shape[0], -1, dtype=np.int64)
    rows = np.flatnonzero(counts > 0)
    if rows.size:
        best[rows] = np.maximum.reduceat(cand, W.indptr[rows])
        entries = np.flatnonzero((cand == np.repeat(best, counts)) & np.isfinite(cand))
        row_of = np.repeat(np.arange(W.shape[0]), counts)[entries]  # non-decreasing: entries ascend
        first = np.flatnonzero(np.diff(row_of, prepend=-1))  # the first best entry of each row
        arg[row_of[first]] = W.indices[entries[first]]
    return best, arg


def aggregate_once(W: sp.csr_matrix, seed: int = 0) -> np.ndarray:
    """One level of aggregation of the (symmetric) graph ``W``: an aggregate index per node, 0..m-1."""
    n = W.shape[0]
    priority = np.random.default_rng(seed).random(n)
    label = np.full(n, -1, dtype=np.int64)
    free = np.ones(n, bool)
    while free.any():
        best, _ = _neighbour_max(W, priority, free)
        seeds = free & (priority > best)  # free cells above every free neighbour: an independent set
        label[seeds] = np.flatnonzero(seeds)
        free &= ~seeds
        _, join = _neighbour_max(W, priority, seeds | (label == np.arange(n)))
        joins = free & (join >= 0)
        label[joins] = join[joins]
        free &= ~joins
    _, compact = np.unique(label, return_inverse=True)
    return compact


def aggregate(W: sp.csr_matrix, target: int, seed: int = 0) -> np.ndarray:
    """Aggregate index (0..m-1, m <= ``target`` unless a level stops shrinking) of every node of ``W``."""
    labels = np.arange(W.shape[0])
    graph = sp.csr_matrix(W)
    level = 0
    while graph.shape[0] > target:
        coarse = aggregate_once(graph, seed + level)
        if coarse.max() + 1 >= graph.shape[0]:
            break
        P = sp.csr_matrix((np.ones(graph.shape[0]), (np.arange(graph.shape[0]), coarse)))
        graph = sp.csr_matrix(P.T @ graph @ P)
        graph.setdiag(0)
        graph.eliminate_zeros()
        labels = coarse[labels]
        level += 1
    return labels
