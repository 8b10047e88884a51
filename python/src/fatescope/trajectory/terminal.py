"""Terminal states: the named clusters a user gives, or clusters found by a documented flow rule
(CellRank's GPCCA macrostates would need pygpcca; this rule needs only the transition matrix)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..logs import get_logger
from ._checks import per_cell, square_nonnegative

log = get_logger(__name__)


def terminal_cells(labels: np.ndarray, states: Sequence[str]) -> dict[str, np.ndarray]:
    """``state -> indices of the cells labelled with it``, in the order of ``states``."""
    labels = np.asarray(labels).astype(str)
    states = [str(s) for s in states]
    if not states:
        raise InputError("terminal states: none given; expected at least one label")
    if len(set(states)) != len(states):
        raise InputError(f"terminal states: {states} name a state twice")
    out = {s: np.flatnonzero(labels == s) for s in states}
    empty = [s for s, cells in out.items() if cells.size == 0]
    if empty:
        known = ", ".join(np.unique(labels)[:20].tolist())
        raise InputError(f"terminal state(s) {empty} have no cells; labels present: {known}")
    return out


def cluster_flow(transition: sp.csr_matrix, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster names and the cluster x cluster flux ``F[a, b] = sum_{i in a, j in b} T[i, j]`` (one unit of
    mass per cell): its diagonal over the cluster size is the cluster's self-retention."""
    names, codes = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    member = sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, names.size))
    return names, np.asarray((member.T @ transition @ member).todense())


def find_terminal_states(transition: sp.csr_matrix, clusters: np.ndarray, pseudotime: np.ndarray, *,
                         max_drain: float = 0.25, min_retention: float = 0.6, min_cells: int = 10) -> list[str]:
    """Clusters where the walk ends: sinks of the coarse-grained flow, latest in median pseudotime first.

    Rule, with ``F`` the cluster flux (:func:`cluster_flow`), ``N = F - F^T`` the net flux and ``|a|`` the
    size of cluster ``a``: (1) ``a`` keeps what flows in: its net outflow ``sum_b max(N[a, b], 0)`` is at
    most ``max_drain`` times its net inflow ``sum_b max(N[b, a], 0)`` (a pass-through cluster passes on about
    all of it, a source has no inflow; neighbouring end states may exchange cells in balance); (2) the walk
    stays: ``F[a, a] / |a| >= min_retention``; (3) ``|a| >= min_cells``. If no cluster passes, the cluster with
    the largest median pseudotime is returned, with a warning. On the pancreas data this gives Delta, Beta
    and Alpha (Epsilon drains into Alpha under the pseudotime kernel).
    """
    T = square_nonnegative(transition, "transition matrix")
    t = per_cell(pseudotime, T.shape[0], "pseudotime")
    clusters = np.asarray(clusters).astype(str)
    if clusters.shape != (T.shape[0],):
        raise InputError(f"clusters: {clusters.shape[0]} labels for {T.shape[0]} cells; expected one per cell")
    names, flux = cluster_flow(T, clusters)
    codes = np.unique(clusters, return_inverse=True)[1]
    sizes = np.bincount(codes, minlength=names.size).astype(np.float64)
    net = np.maximum(flux - flux.T, 0.0)
    inflow, outflow = net.sum(axis=0), net.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drain = np.where(inflow > 0, outflow / inflow, np.inf)
    retention = np.diag(flux) / sizes
    keep = (drain <= max_drain) & (retention >= min_retention) & (sizes >= min_cells)
    median_t = np.array([np.median(t[codes == k]) for k in range(names.size)])
    log.debug("cluster flow: %s", "; ".join(
        f"{c}: net in {i:.2f}, drained {d:.2f}, retention {r:.2f}"
        for c, i, d, r in zip(names, inflow, drain, retention)))
    if not keep.any():
        latest = names[int(np.argmax(median_t))]
        log.warning("terminal states: no cluster is a sink of the cluster flow (drained <= %g, retention "
                    ">= %g); using the latest cluster in pseudotime, %s", max_drain, min_retention, latest)
        return [str(latest)]
    found = [str(c) for c in names[keep][np.argsort(-median_t[keep], kind="stable")]]
    log.info("terminal states found (sinks of the cluster flow): %s", ", ".join(found))
    return found
