"""Diffusion pseudotime (Haghverdi et al. 2016) with scanpy's numbers: ``scanpy.tl.diffmap`` of the kNN
graph followed by ``scanpy.tl.dpt`` from one root cell, without an AnnData."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.sparse.csgraph import connected_components

from ..errors import InputError
from ..logs import get_logger
from ._checks import square_nonnegative
from .coarsen import aggregate

log = get_logger(__name__)

# eigenvalues at or above this are the stationary component(s) and are not rescaled. scanpy uses 0.9994 because it
# keeps float32 eigenvalues; on graphs of more than a few thousand cells the slow non-trivial components exceed
# 0.9994 and scanpy's DPT is then dominated by noisy fast components (correlation with the planted time 0.23 on
# a 6,000-cell branching trajectory, 0.98 with this float64 threshold). Pass stationary=0.9994 for scanpy's numbers.
STATIONARY_EIGENVALUE = 1.0 - 1e-9
# above this many cells the diffusion map is computed on at most COARSE_TARGET aggregates of cells
# (trajectory/coarsen.py) and carried back to the cells by SMOOTHING_STEPS steps of the random walk: ARPACK
# on the full graph did not finish in 11 CPU-minutes at 1M cells (docs/benchmarks.md, "Fate probabilities")
COARSE_ABOVE = 100_000
COARSE_TARGET = 20_000
SMOOTHING_STEPS = 3


def diffusion_map(connectivities: sp.spmatrix, n_comps: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors of scanpy's symmetric diffusion operator: density-normalised
    ``K = Q W Q`` (q the column sums of W), then ``Z K Z`` with z the square roots of K's column sums."""
    W = square_nonnegative(connectivities, "connectivities")
    n = W.shape[0]
    if n < 3:
        raise InputError(f"connectivities: {n} cells; a diffusion map needs at least 3")
    n_comps = min(n_comps, n - 1)
    q = np.asarray(W.sum(axis=0)).ravel()
    if (q <= 0).any():
        raise InputError(f"connectivities: {int((q <= 0).sum())} cells have no neighbours "
                         f"(e.g. cell index {int(np.flatnonzero(q <= 0)[0])})")
    K = sp.diags(1.0 / q) @ W @ sp.diags(1.0 / q)
    z = np.sqrt(np.asarray(K.sum(axis=0)).ravel())
    sym = sp.csr_matrix(sp.diags(1.0 / z) @ K @ sp.diags(1.0 / z))
    del K
    v0 = np.random.RandomState(seed).standard_normal(n)  # scanpy's seeded start vector (random_state=0)
    evals, evecs = sla.eigsh(sym, k=n_comps, which="LM", v0=v0)
    return evals[::-1].copy(), np.ascontiguousarray(evecs[:, ::-1])


def coarse_diffusion_map(connectivities: sp.spmatrix, n_comps: int = 15, seed: int = 0,
                         target: int = COARSE_TARGET) -> tuple[np.ndarray, np.ndarray]:
    """Diffusion map of a very large graph: ``diffusion_map`` of the graph of at most ``target`` aggregates
    (summed edge weights), each aggregate's eigenvector entries given to its cells and smoothed by
    SMOOTHING_STEPS steps of the cells' random walk. An approximation, logged; below COARSE_ABOVE cells the
    exact map is used."""
    W = sp.csr_matrix(connectivities)
    labels = aggregate(W, target, seed)
    m = int(labels.max()) + 1
    P = sp.csr_matrix((np.ones(W.shape[0]), (np.arange(W.shape[0]), labels)), shape=(W.shape[0], m))
    coarse = sp.csr_matrix(P.T @ W @ P)
    coarse.setdiag(0)
    coarse.eliminate_zeros()
    evals, coarse_vecs = diffusion_map(coarse, n_comps, seed)
    walk = sp.diags(1.0 / np.asarray(W.sum(axis=1)).ravel()) @ W
    evecs = coarse_vecs[labels]
    for _ in range(SMOOTHING_STEPS):
        evecs = walk @ evecs
    log.info("diffusion map of %d cells on %d aggregates (%.1f cells each), %d smoothing steps", W.shape[0], m,
             W.shape[0] / m, SMOOTHING_STEPS)
    return evals, evecs


def dpt_distance(evals: np.ndarray, evecs: np.ndarray, root: int,
                 stationary: float = STATIONARY_EIGENVALUE) -> np.ndarray:
    """scanpy's DPT distance of every cell to ``root``: the eigenvector differences, non-stationary components
    scaled by ``lambda / (1 - lambda)`` (Haghverdi 2016, supplement Eq. 15)."""
    scale = np.where(evals < stationary, evals / (1.0 - evals), 1.0)
    return np.sqrt((((evecs - evecs[root]) * scale) ** 2).sum(axis=1))


def pick_root(evals: np.ndarray, evecs: np.ndarray, root_cells: np.ndarray,
              stationary: float = STATIONARY_EIGENVALUE) -> int:
    """The root cell: the extreme of the first non-trivial diffusion component within ``root_cells``, on the
    side where the root cells lie relative to all cells (the tip of the diffusion map's main axis that the
    root population occupies -- the cell of that population farthest from the rest of the process)."""
    nontrivial = np.flatnonzero(evals < stationary)
    if nontrivial.size == 0:
        raise InputError("diffusion map: every component is stationary; the graph carries no trajectory")
    dc = evecs[:, nontrivial[0]]
    side = np.sign(dc[root_cells].mean() - dc.mean()) or 1.0
    return int(root_cells[np.argmax(side * dc[root_cells])])


def diffusion_pseudotime(connectivities: sp.spmatrix, root_cells: np.ndarray, *, n_comps: int = 15,
                         n_dcs: int = 10, seed: int = 0, stationary: float = STATIONARY_EIGENVALUE,
                         coarse_above: int = COARSE_ABOVE,
                         coarse_target: int = COARSE_TARGET) -> tuple[np.ndarray, int]:
    """Diffusion pseudotime of every cell in [0, 1] and the root cell index.

    scanpy's math: ``sc.tl.diffmap(n_comps=n_comps)`` then ``sc.tl.dpt(n_dcs=n_dcs)`` from the root chosen by
    :func:`pick_root` among ``root_cells`` (indices or a boolean mask); only the eigenvalue threshold
    ``stationary`` differs from scanpy (see STATIONARY_EIGENVALUE; equal results on the pancreas data). Graphs of
    more than ``coarse_above`` cells get the diffusion map of at most ``coarse_target`` aggregates
    (:func:`coarse_diffusion_map`).
    The graph must be connected: DPT is infinite across components, and the walk downstream could not use
    such a pseudotime.
    """
    W = square_nonnegative(connectivities, "connectivities")
    n = W.shape[0]
    roots = np.asarray(root_cells).ravel()
    if roots.dtype == bool:
        roots = np.flatnonzero(roots)
    if roots.size == 0:
        raise InputError("root cells: none given; expected the indices of the cells a pseudotime starts from")
    if not np.issubdtype(roots.dtype, np.integer) or roots.min() < 0 or roots.max() >= n:
        raise InputError(f"root cells: expected cell indices in [0, {n}), got {roots[:3].tolist()}...")
    n_parts, part = connected_components(W, directed=False)
    if n_parts > 1:
        sizes = np.sort(np.bincount(part))[::-1]
        raise InputError(f"connectivities: the kNN graph has {n_parts} connected components (sizes "
                         f"{sizes[:5].tolist()}...); diffusion pseudotime needs one -- pass a pseudotime instead "
                         "or rebuild the graph with more neighbours")
    evals, evecs = (diffusion_map(W, n_comps, seed) if n <= coarse_above
                    else coarse_diffusion_map(W, n_comps, seed, coarse_target))
    n_dcs = min(n_dcs, evals.size)
    evals, evecs = evals[:n_dcs], evecs[:, :n_dcs]
    root = pick_root(evals, evecs, roots, stationary)
    distance = dpt_distance(evals, evecs, root, stationary)
    pseudotime = distance / distance.max()
    log.info("diffusion pseudotime: %d cells, %d diffusion components (eigenvalues %s), root cell %d",
             n, n_dcs, np.array2string(evals[:4], precision=4), root)
    return pseudotime, root
