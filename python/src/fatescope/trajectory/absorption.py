"""Absorption (fate) probabilities of a Markov chain into sets of terminal cells, as CellRank's
``compute_fate_probabilities``: with Q the transient -> transient block of T and S the transient -> terminal
block summed per terminal state, solve ``(I - Q) X = S``; terminal cells get probability 1 on their own state."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.sparse.csgraph import breadth_first_order

from ..errors import InputError
from ..logs import get_logger
from ._checks import per_cell, square_nonnegative
from .precondition import TwoLevel

log = get_logger(__name__)

SOLVERS = ("auto", "direct", "gmres", "bicgstab")
# above this many transient cells "auto" leaves SuperLU (its fill-in grows fast on kNN graphs)
DIRECT_MAX_CELLS = 20_000


def _terminal_indicator(terminal: Mapping[str, np.ndarray], n_cells: int) -> tuple[list[str], np.ndarray]:
    """Fate names and, per cell, the column of its terminal state (-1 when transient); InputError on
    empty, out-of-range or overlapping states."""
    if not terminal:
        raise InputError("terminal states: none given; expected at least one state with cells")
    names = [str(k) for k in terminal]
    fate_of = np.full(n_cells, -1, dtype=np.int64)
    for column, (name, cells) in enumerate(terminal.items()):
        cells = np.asarray(cells).ravel()
        if cells.dtype == bool:
            cells = np.flatnonzero(cells)
        if cells.size == 0:
            raise InputError(f"terminal state {name!r} has no cells")
        if not np.issubdtype(cells.dtype, np.integer) or cells.min() < 0 or cells.max() >= n_cells:
            raise InputError(f"terminal state {name!r}: expected cell indices in [0, {n_cells}), "
                             f"got {cells.dtype} values {cells[:3].tolist()}...")
        taken = fate_of[cells] >= 0
        if taken.any():
            other = names[fate_of[cells[taken][0]]]
            raise InputError(f"terminal state {name!r} shares {int(taken.sum())} cells with {other!r}; "
                             "terminal states must be disjoint")
        fate_of[cells] = column
    if (fate_of >= 0).all():
        raise InputError(f"terminal states {names} cover all {n_cells} cells; no transient cell is left "
                         "whose fate could be computed")
    return names, fate_of


def _check_reachable(T: sp.csr_matrix, terminal_mask: np.ndarray) -> None:
    """Every transient cell must reach a terminal cell, else I - Q is singular: walk the reversed graph
    from a virtual node linked to all terminal cells."""
    n = T.shape[0]
    hub = sp.csr_matrix((np.ones(int(terminal_mask.sum())), (np.zeros(int(terminal_mask.sum()), dtype=np.int64),
                                                          np.flatnonzero(terminal_mask))), shape=(1, n + 1))
    reverse = sp.vstack([sp.hstack([T.T.tocsr(), sp.csr_matrix((n, 1))]), hub], format="csr")
    seen = np.zeros(n + 1, dtype=bool)
    seen[breadth_first_order(reverse, n, directed=True, return_predecessors=False)] = True
    stuck = ~seen[:n]
    if stuck.any():
        raise InputError(f"{int(stuck.sum())} transient cells cannot reach any terminal state (e.g. cell index "
                         f"{int(np.flatnonzero(stuck)[0])}): they sit in a closed part of the graph; add a terminal "
                         "state there or mix in the connectivity kernel (connectivity_weight > 0)")


def _solve_direct(A: sp.csr_matrix, S: np.ndarray) -> np.ndarray:
    lu = sla.splu(A.tocsc())
    log.info("absorption: direct SuperLU solve of %d transient cells (fill %d nnz)", A.shape[0],
             lu.L.nnz + lu.U.nnz)
    return lu.solve(S)


def _solve_iterative(A: sp.csr_matrix, S: np.ndarray, order: np.ndarray | None, method: str,
                     tol: float, maxiter: int) -> np.ndarray:
    """Krylov solve with the two-level preconditioner (:class:`TwoLevel`) in pseudotime ``order``; the last
    fate is one minus the others (rows sum to 1 as every transient cell reaches a terminal one)."""
    perm = np.argsort(order, kind="stable") if order is not None else np.arange(A.shape[0])
    A = A[perm][:, perm].tocsr()
    Sp = S[perm]
    precond = TwoLevel(A)
    krylov = {"gmres": sla.gmres, "bicgstab": sla.bicgstab}[method]
    n_solve = Sp.shape[1] - 1 if Sp.shape[1] > 1 else 1
    X = np.empty_like(Sp)
    for k in range(n_solve):
        b = Sp[:, k]
        iterations = [0]

        def count(_, it=iterations):
            it[0] += 1

        kwargs = {"restart": 50, "callback_type": "pr_norm"} if method == "gmres" else {}
        x, info = krylov(A, b, rtol=tol, atol=0.0, M=precond, maxiter=maxiter, callback=count, **kwargs)
        residual = np.linalg.norm(b - A @ x) / max(np.linalg.norm(b), np.finfo(float).tiny)
        log.info("absorption: %s fate %d: %d iterations, relative residual %.2e", method, k, iterations[0],
                 residual)
        if info != 0 and residual > tol * 10:
            raise RuntimeError(f"absorption probabilities: {method} did not converge for fate column {k} "
                               f"(relative residual {residual:.2e} after {iterations[0]} iterations, tol {tol:g}); "
                               "try solver='direct'")
        X[:, k] = x
    if n_solve < Sp.shape[1]:
        X[:, -1] = 1.0 - X[:, :-1].sum(axis=1)
    out = np.empty_like(X)
    out[perm] = X
    return out


def absorption_probabilities(transition: sp.csr_matrix, terminal: Mapping[str, np.ndarray], *,
                             solver: str = "auto", tol: float = 1e-10, order: np.ndarray | None = None,
                             maxiter: int = 1000) -> np.ndarray:
    """Probability that a walk from each cell is absorbed in each terminal state: ``(n_cells, n_fates)``,
    columns in the order of ``terminal``, rows sum to 1, terminal cells one-hot on their own state.

    ``solver``: ``direct`` (SuperLU), ``gmres`` / ``bicgstab`` (two-level preconditioner whose Gauss-Seidel
    sweeps follow ``order``, the kernel's pseudotime -- pass it: without it the sweeps run in cell order and
    need more iterations), or ``auto`` (direct up to DIRECT_MAX_CELLS transient cells, else gmres). ``tol``
    is the iterative solvers' relative residual (checked on the true residual; RuntimeError if not reached
    in ``maxiter`` iterations).
    """
    if solver not in SOLVERS:
        raise InputError(f"solver: {solver!r} is not one of {', '.join(SOLVERS)}")
    T = square_nonnegative(transition, "transition matrix")
    n = T.shape[0]
    sums = np.asarray(T.sum(axis=1)).ravel()
    off = np.abs(sums - 1.0) > 1e-6
    if off.any():
        raise InputError(f"transition matrix: {int(off.sum())} rows do not sum to 1 (e.g. cell index "
                         f"{int(np.flatnonzero(off)[0])}: {sums[off][0]:.6g}); expected a row-stochastic matrix")
    if order is not None:
        order = per_cell(order, n, "order")
    names, fate_of = _terminal_indicator(terminal, n)
    is_terminal = fate_of >= 0
    _check_reachable(T, is_terminal)

    transient = np.flatnonzero(~is_terminal)
    rows = T[transient]
    to_fate = sp.csr_matrix((np.ones(int(is_terminal.sum())), (np.flatnonzero(is_terminal), fate_of[is_terminal])),
                            shape=(n, len(names)))
    S = np.asarray((rows @ to_fate).todense())
    A = (sp.identity(transient.size, format="csr") - rows[:, transient]).tocsr()
    del rows
    method = solver if solver != "auto" else ("direct" if transient.size <= DIRECT_MAX_CELLS else "gmres")
    if method == "direct":
        X = _solve_direct(A, S)
    else:
        X = _solve_iterative(A, S, None if order is None else order[transient], method, tol, maxiter)

    probs = np.zeros((n, len(names)))
    probs[transient] = X
    probs[np.flatnonzero(is_terminal), fate_of[is_terminal]] = 1.0
    drift = float(np.abs(probs.sum(axis=1) - 1.0).max())
    log.info("absorption: %d cells, %d fates (%s), solver %s, max |row sum - 1| %.2e", n, len(names),
             ", ".join(names), method, drift)
    return probs
