"""CellRank 2.x ``PseudotimeKernel(threshold_scheme='soft')`` and ``ConnectivityKernel`` transition matrices,
vectorised over all edges at once (CellRank loops over cells in Python)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..logs import get_logger
from ._checks import per_cell, square_nonnegative

log = get_logger(__name__)


def _row_normalise(matrix: sp.csr_matrix, what: str) -> sp.csr_matrix:
    """Divide each row by its sum (CellRank's ``_normalize``); a row with no weight is an error, not NaN."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    empty = sums <= 0
    if empty.any():
        raise InputError(f"{what}: {int(empty.sum())} cells have no neighbours with positive weight "
                         f"(e.g. cell index {int(np.flatnonzero(empty)[0])}); the kNN graph must give every cell "
                         "at least one neighbour")
    matrix = matrix.copy()
    matrix.data /= np.repeat(sums, np.diff(matrix.indptr))
    return matrix


def soft_bias(connectivities: sp.csr_matrix, pseudotime: np.ndarray, b: float, nu: float) -> sp.csr_matrix:
    """Down-weight the edges i -> j into the pseudotime past (t_j < t_i) by the generalised logistic
    ``2 / (1 + exp(b (t_i - t_j)))^(1/nu)`` (VIA's soft scheme as CellRank applies it); future edges keep weight."""
    rows = np.repeat(np.arange(connectivities.shape[0]), np.diff(connectivities.indptr))
    dt = pseudotime[rows] - pseudotime[connectivities.indices]
    del rows
    past = dt > 0
    with np.errstate(over="ignore"):  # exp overflow -> weight 0, as in CellRank
        weights = 2.0 / (1.0 + np.exp(b * dt[past])) ** (1.0 / nu)
    biased = connectivities.copy()
    biased.data[past] *= weights
    biased.eliminate_zeros()
    return biased


def transition_matrix(connectivities: sp.spmatrix, pseudotime: np.ndarray, *, connectivity_weight: float = 0.0,
                      b: float = 10.0, nu: float = 0.5, density_normalize: bool = True) -> sp.csr_matrix:
    """Row-stochastic transition matrix of a walk on the kNN graph biased forward in pseudotime.

    CellRank's ``PseudotimeKernel(...).compute_transition_matrix(threshold_scheme='soft', b=b, nu=nu)``,
    optionally mixed as ``(1 - w) * pk + w * ck`` with ``ck`` CellRank's ``ConnectivityKernel`` (density
    normalised ``Q C Q``, ``q`` the column sums of C, then row-normalised) -- ``0.8 * pk + 0.2 * ck`` is
    ``connectivity_weight=0.2``. The symmetric part keeps the walk from being trapped by pseudotime noise.
    """
    conn = square_nonnegative(connectivities, "connectivities")
    t = per_cell(pseudotime, conn.shape[0], "pseudotime")
    if not 0.0 <= connectivity_weight <= 1.0:
        raise InputError(f"connectivity_weight: {connectivity_weight} is outside [0, 1]")
    if b <= 0 or nu <= 0:
        raise InputError(f"soft scheme: b ({b}) and nu ({nu}) must be > 0")
    conn = conn if conn.has_sorted_indices else conn.sorted_indices()  # never reorder the caller's matrix
    T = _row_normalise(soft_bias(conn, t, b, nu), "pseudotime kernel") if connectivity_weight < 1 else None
    if connectivity_weight > 0:
        ck = conn
        if density_normalize:
            q = np.asarray(conn.sum(axis=0)).ravel()
            with np.errstate(divide="ignore"):
                inv = np.where(q > 0, 1.0 / q, 0.0)
            ck = sp.diags(inv) @ conn @ sp.diags(inv)
        ck = _row_normalise(sp.csr_matrix(ck), "connectivity kernel")
        T = ck if T is None else (1.0 - connectivity_weight) * T + connectivity_weight * ck
    T = sp.csr_matrix(T)
    T.sort_indices()
    log.info("transition matrix: %d cells, %d edges (soft scheme b=%g nu=%g, connectivity weight %g)",
             T.shape[0], T.nnz, b, nu, connectivity_weight)
    return T
