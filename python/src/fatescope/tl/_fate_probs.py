"""``fs.tl.fate_probs``: per-cell fate probabilities as CellRank computes them (pseudotime kernel on the
kNN graph, absorption probabilities into terminal states), for experiments that bring none."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class FateProbabilities:
    """What ``fs.tl.fate_probs`` computed: the tables the stage writes, for a caller without files."""
    probs: pd.DataFrame          # cells x fates, rows sum to 1
    transition: sp.csr_matrix    # row-stochastic cell x cell transition matrix
    terminal: pd.Series          # cell -> its terminal state (only the terminal cells)
    pseudotime: np.ndarray       # (n_cells,) the kernel's pseudotime
    root: str | None             # the root cell of the diffusion pseudotime (None when given)

    def terminal_table(self) -> pd.DataFrame:
        """``cell, terminal_state`` rows (the stage's terminal_states.csv)."""
        return pd.DataFrame({"cell": self.terminal.index, "terminal_state": self.terminal.to_numpy()})


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(s) for s in value]
    return [s for s in items if s] or None


def _labels(adata: AnnData, key: str, labels, what: str) -> np.ndarray:
    if labels is not None:
        values = np.asarray(labels).astype(str)
        if values.shape != (adata.n_obs,):
            raise InputError(f"labels: {values.shape[0]} labels for {adata.n_obs} cells; expected one per cell")
        return values
    if key not in adata.obs:
        raise InputError(f"adata: obs has no {key!r} ({what}; columns: {', '.join(map(str, adata.obs.columns))})")
    return adata.obs[key].astype(str).to_numpy()


def _root_cells(adata: AnnData, root_key: str, root_states: list[str] | None) -> np.ndarray:
    """Indices of the cells a diffusion pseudotime may start from: ``root_states`` of ``obs[root_key]``, or
    the earliest value of that column (days ordered by their number, as the fate model orders them)."""
    from ..fate.encoding import order_days

    values = _labels(adata, root_key, None, "the root cells' column")
    if root_states is None:
        root_states = order_days(values, None, "adata", root_key)[:1]
    missing = [s for s in root_states if s not in set(values)]
    if missing:
        raise InputError(f"adata: root state(s) {missing} are not values of obs[{root_key!r}] "
                         f"(values: {', '.join(sorted(set(values))[:10])})")
    return np.flatnonzero(np.isin(values, root_states))


def fate_probs(adata: AnnData, *, pseudotime_key: str | None = None, root_key: str = "day",
               root_states: str | Sequence[str] | None = None, terminal_key: str = "leiden",
               terminal_states: str | Sequence[str] | None = None, labels: Sequence | np.ndarray | None = None,
               connectivity_weight: float = 0.0, b: float = 10.0, nu: float = 0.5, n_comps: int = 15,
               solver: Literal["auto", "direct", "gmres", "bicgstab"] = "auto", tol: float = 1e-10, conn_key: str = "connectivities") -> FateProbabilities:
    """Fate probabilities of every cell: absorption probabilities of a random walk on the kNN graph,
    biased forward in pseudotime, into terminal cell states -- CellRank's ``PseudotimeKernel`` (soft
    scheme) and ``compute_fate_probabilities``, computed without CellRank.

    Parameters
    ----------
    adata
        Cells with the kNN graph in ``obsp[conn_key]`` (``fs.tl.embed`` writes it); modified in place.
    pseudotime_key
        obs column holding a pseudotime to use; default: diffusion pseudotime (scanpy's DPT on the same
        graph) from a root among the root cells, written to ``obs["dpt_pseudotime"]``.
    root_key, root_states
        The root cells of the diffusion pseudotime: cells whose ``obs[root_key]`` is one of ``root_states``
        (list or comma-separated); default: the earliest day (``day`` labels ordered by their number).
    terminal_key, terminal_states
        Terminal states: every cell whose ``obs[terminal_key]`` (or ``labels``) is one of
        ``terminal_states`` is absorbing, and each state is one fate named by its label. Default: the
        clusters of ``terminal_key`` that the random walk does not leave forward in pseudotime
        (``fatescope.trajectory.terminal.find_terminal_states``).
    labels
        Per-cell labels in obs order, used as ``terminal_key`` (e.g. annotations read from a table).
    connectivity_weight
        Weight ``w`` of CellRank's connectivity kernel in ``(1 - w) * pseudotime + w * connectivity``
        (CellRank's tutorials use 0.2); 0 = the pseudotime kernel alone.
    b, nu
        The soft scheme's logistic steepness and shape (CellRank's defaults): an edge to a neighbour
        ``dt`` earlier in pseudotime keeps ``2 / (1 + exp(b dt)) ** (1 / nu)`` of its weight.
    n_comps
        Diffusion components of the pseudotime.
    solver, tol
        Linear solver of the absorption problem: ``direct`` (sparse LU), ``gmres`` or ``bicgstab``
        (preconditioned by the part of the system that moves forward in pseudotime), ``auto`` (direct
        for small systems, gmres beyond); and the iterative solvers' relative residual.
    conn_key
        obsp key of the kNN connectivities.

    Returns
    -------
    A :class:`FateProbabilities`. Writes ``obsm["fate_probs"]`` (cells x fates, rows sum to 1),
    ``uns["fate_names"]``, ``obs["terminal_state"]`` (the state of terminal cells, else missing),
    ``obsp["T_fwd"]`` (the transition matrix, CellRank's key) and, when computed, ``obs["dpt_pseudotime"]``.

    Examples
    --------
    >>> import fatescope as fs
    >>> fs.tl.embed(adata)
    >>> result = fs.tl.fate_probs(adata, terminal_key="cell_type", terminal_states="Alpha,Beta,Delta,Epsilon",
    ...                           root_key="cell_type", root_states="Ductal", connectivity_weight=0.2)
    >>> result.probs.head()
    """
    from ..trajectory.absorption import absorption_probabilities
    from ..trajectory.kernel import transition_matrix
    from ..trajectory.pseudotime import diffusion_pseudotime
    from ..trajectory.terminal import find_terminal_states, terminal_cells

    if conn_key not in adata.obsp:
        raise InputError(f"adata: obsp has no {conn_key!r} (obsp: {', '.join(adata.obsp) or 'none'}); run fs.tl.embed first")
    if not 0.0 <= connectivity_weight < 1.0:
        raise InputError(f"connectivity_weight {connectivity_weight}: expected a weight in [0, 1)")
    conn = sp.csr_matrix(adata.obsp[conn_key], dtype=np.float64)
    root = None
    if pseudotime_key is not None:
        if pseudotime_key not in adata.obs:
            raise InputError(f"adata: obs has no pseudotime column {pseudotime_key!r}")
        pseudotime = pd.to_numeric(adata.obs[pseudotime_key], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(pseudotime).all():
            raise InputError(f"adata: obs[{pseudotime_key!r}] has {int((~np.isfinite(pseudotime)).sum())} missing or "
                             "non-numeric values; expected a number per cell")
    else:
        pseudotime, root_index = diffusion_pseudotime(conn, _root_cells(adata, root_key, _names(root_states)),
                                                      n_comps=n_comps)
        root = str(adata.obs_names[root_index])
        adata.obs["dpt_pseudotime"] = pseudotime
        log.info("fate-probs: diffusion pseudotime from root cell %s", root)
    transition = transition_matrix(conn, pseudotime, connectivity_weight=connectivity_weight, b=b, nu=nu)
    clusters = _labels(adata, terminal_key, labels, "the terminal states' column")
    states = _names(terminal_states)
    if states is None:
        states = find_terminal_states(transition, clusters, pseudotime)
        log.info("fate-probs: terminal states found: %s", ", ".join(states))
    terminal = terminal_cells(clusters, states)
    probs = absorption_probabilities(transition, terminal, solver=solver, tol=tol, order=pseudotime)
    names = list(terminal)
    adata.obsm["fate_probs"] = probs
    adata.uns["fate_names"] = names
    state_of_cell = pd.Series(pd.NA, index=adata.obs_names, dtype=object)
    for name, cells in terminal.items():
        state_of_cell.iloc[cells] = name
    adata.obs["terminal_state"] = pd.Categorical(state_of_cell, categories=names)
    adata.obsp["T_fwd"] = transition
    for j, (name, cells) in enumerate(terminal.items()):
        log.info("fate-probs: %s: %d terminal cells; mean probability over all cells %.3f", name, len(cells),
                 float(probs[:, j].mean()))
    return FateProbabilities(pd.DataFrame(probs, index=adata.obs_names.copy(), columns=names), transition,
                             state_of_cell.dropna(), pseudotime, root)
