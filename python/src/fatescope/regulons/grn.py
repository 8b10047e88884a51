"""GRN inference with RegDiffusion (the ``regdiffusion`` package) on log-normalised expression.

RegDiffusion learns a dense gene x gene adjacency (rows regulate columns, scaled so strong links
exceed 1-10). Edges below ``sparsity_threshold`` are zeroed and only rows of TFs are kept. With
several runs (``n_runs``, seeds seed, seed+1, ...) the adjacency is the mean over runs and each
kept edge reports the fraction of runs in which it passed the threshold (its stability).
The package's own training log (``LightLogger``) is pointed at a folder the caller chooses, so
nothing is written to the working directory.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cells.preprocess import log_normalize
from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class GRNParams:
    n_steps: int = 1000
    sparsity_threshold: float = 1.5
    n_runs: int = 1
    seed: int = 0
    target_sum: float = 1e4


def subsample_cells(n_cells: int, max_cells: int | None, seed: int) -> np.ndarray | None:
    """Row indices (sorted) of a seeded uniform sample of ``max_cells`` of ``n_cells`` cells, or None when all
    are kept. RegDiffusion trains on the dense cells x genes matrix; a sample bounds its memory."""
    if max_cells is None or n_cells <= max_cells:
        return None
    if max_cells < 1:
        raise InputError(f"max_cells={max_cells}: expected a number of cells >= 1, or None (all cells)")
    return np.sort(np.random.default_rng(seed).choice(n_cells, size=max_cells, replace=False))


def expression_matrix(counts, target_sum: float = 1e4) -> np.ndarray:
    """RegDiffusion's input: ``cells.preprocess.log_normalize`` (log1p of counts / cell total x target_sum,
    float32) densified; cells without counts are refused (RegDiffusion would train on empty rows)."""
    totals = np.asarray(counts.sum(axis=1)).ravel()
    if np.any(totals <= 0):
        raise InputError(f"{int((totals <= 0).sum())} cells have no counts; run qc first")
    return log_normalize(counts, target_sum).toarray()


def variable_genes(X: np.ndarray) -> np.ndarray:
    """Genes with non-zero variance (RegDiffusion refuses constant genes)."""
    return X.std(axis=0) > 0


@contextlib.contextmanager
def _quiet_tqdm():
    """The package's training bar only on a terminal (as fatescope's own bars)."""
    import functools

    import regdiffusion.trainer as rdt

    original = rdt.tqdm
    rdt.tqdm = functools.partial(original, disable=None)
    try:
        yield
    finally:
        rdt.tqdm = original


def train_regdiffusion(X: np.ndarray, n_steps: int, seed: int, device: str, log_dir: Path):
    """One RegDiffusion model; returns (adjacency float32 genes x genes, trainer)."""
    import regdiffusion as rd

    log_dir.mkdir(parents=True, exist_ok=True)
    logger = rd.LightLogger(result_dir=str(log_dir))
    with contextlib.redirect_stdout(io.StringIO()), _quiet_tqdm():  # the package prints device notes and a bar
        trainer = rd.RegDiffusionTrainer(X, n_steps=n_steps, device=device, seed=seed, logger=logger)
        trainer.train()
    return np.asarray(trainer.get_adj(), dtype=np.float32), trainer


def model_state(trainer, genes: pd.Index) -> dict:
    """What is needed to reload a trained model: weights, plain hyper-parameters, gene order."""
    hp = {k: v for k, v in trainer.hp.items() if isinstance(v, (int, float, str, bool, list, tuple))}
    return {"state_dict": trainer.model.state_dict(), "hp": hp, "genes": [str(g) for g in genes]}


def infer_grn(X: np.ndarray, genes: pd.Index, tfs: list[str], params: GRNParams, device: str,
              log_dir: Path) -> tuple[pd.DataFrame, list, dict]:
    """Edges (tf, target, importance, stability) from the TF rows, one model state per run, a report."""
    keep = variable_genes(X)
    if keep.sum() < 2:
        raise InputError(f"only {int(keep.sum())} genes vary across cells; RegDiffusion needs at least 2")
    genes = pd.Index(genes)[keep]
    X = np.ascontiguousarray(X[:, keep])
    tf_rows = genes.get_indexer([t for t in tfs if t in set(genes)])
    if len(tf_rows) == 0:
        raise InputError("no TF of the list is among the expressed (non-constant) genes")
    total = np.zeros((len(tf_rows), len(genes)), dtype=np.float64)
    passed = np.zeros((len(tf_rows), len(genes)), dtype=np.int32)
    states = []
    for run in range(params.n_runs):
        log.info("RegDiffusion run %d/%d: %d cells x %d genes, %d steps, seed %d", run + 1, params.n_runs,
                 X.shape[0], X.shape[1], params.n_steps, params.seed + run)
        adj, trainer = train_regdiffusion(X, params.n_steps, params.seed + run, device, log_dir / f"run{run}")
        rows = adj[tf_rows]
        total += rows
        passed += rows >= params.sparsity_threshold
        states.append(model_state(trainer, genes))
        del trainer, adj
    mean = total / params.n_runs
    tf_idx, tgt_idx = np.nonzero(mean >= params.sparsity_threshold)
    edges = pd.DataFrame({"tf": genes[tf_rows][tf_idx].to_numpy(str), "target": genes[tgt_idx].to_numpy(str),
                          "importance": mean[tf_idx, tgt_idx], "stability": passed[tf_idx, tgt_idx] / params.n_runs})
    edges = edges[edges["tf"] != edges["target"]]
    edges = edges.sort_values(["tf", "importance"], ascending=[True, False], kind="stable").reset_index(drop=True)
    report = {"n_genes_used": int(len(genes)), "n_genes_constant_dropped": int((~keep).sum()),
              "n_tfs_used": int(len(tf_rows)), "n_edges": int(len(edges)), "n_runs": params.n_runs,
              "n_tfs_with_edges": int(edges["tf"].nunique())}
    if params.n_runs > 1:
        stab = edges["stability"].to_numpy()
        report["edge_stability"] = {"mean": float(stab.mean()) if len(stab) else None,
                                    "fraction_in_all_runs": float((stab == 1).mean()) if len(stab) else None}
    return edges, states, report
