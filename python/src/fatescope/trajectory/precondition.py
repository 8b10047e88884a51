"""Two-level preconditioner for ``(I - Q) x = b`` of a forward-biased walk on a kNN graph.

The soft pseudotime kernel still gives a neighbour in the past about half the weight of one in the future
(``2 / (1 + e^{b dt})^2 -> 1/2`` as ``dt -> 0``), so on a large graph the walk is a diffusion with drift:
Gauss-Seidel sweeps in pseudotime order remove the drift part but converge like a diffusion along the
trajectory (hundreds of Krylov iterations at 100k cells). A coarse grid of cell aggregates (Voronoi cells of
random seeds on the graph, Galerkin coarse matrix, solved directly) removes the smooth error that sweeps
leave, so the iteration count stays small as the graph grows.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.sparse.csgraph import dijkstra

from ..logs import get_logger

log = get_logger(__name__)


def aggregates(A: sp.csr_matrix, size: int, seed: int) -> np.ndarray:
    """Aggregate id of every cell: the nearest (in graph hops) of ``n / size`` random seed cells; a cell no
    seed reaches is its own aggregate."""
    n = A.shape[0]
    rng = np.random.default_rng(seed)
    seeds = np.sort(rng.choice(n, max(1, n // size), replace=False))
    hops = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)  # A has negative entries
    _, _, owner = dijkstra(hops, directed=False, indices=seeds, unweighted=True, min_only=True,
                           return_predecessors=True)
    ids = np.searchsorted(seeds, owner)
    lone = owner < 0
    ids[lone] = seeds.size + np.arange(int(lone.sum()))
    return ids


class TwoLevel(sla.LinearOperator):
    """``M^-1 r``: Gauss-Seidel sweep with the upper-triangular part of A (forward in pseudotime), coarse
    correction on the aggregates, sweep with the lower-triangular part (backward). A must be in pseudotime
    order for the sweeps to follow the flow."""

    def __init__(self, A: sp.csr_matrix, aggregate_size: int = 50, seed: int = 0):
        super().__init__(dtype=np.float64, shape=A.shape)
        n = A.shape[0]
        self.A = A
        opts = {"permc_spec": "NATURAL", "diag_pivot_thresh": 0.0}
        self.upper = sla.splu(sp.triu(A, format="csc"), **opts)
        self.lower = sla.splu(sp.tril(A, format="csc"), **opts)
        ids = aggregates(A, aggregate_size, seed)
        self.P = sp.csr_matrix((np.ones(n), (np.arange(n), ids)), shape=(n, int(ids.max()) + 1))
        coarse = (self.P.T @ A @ self.P).tocsc()
        self.coarse = sla.splu(coarse)
        log.info("absorption preconditioner: %d aggregates (coarse fill %d nnz)", coarse.shape[0],
                 self.coarse.L.nnz + self.coarse.U.nnz)

    def _matvec(self, r: np.ndarray) -> np.ndarray:
        r = np.ravel(r)
        x = self.upper.solve(r)
        x += self.P @ self.coarse.solve(self.P.T @ (r - self.A @ x))
        x += self.lower.solve(r - self.A @ x)
        return x
