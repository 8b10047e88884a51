"""``fs.tl.aucell``: regulon activity per cell with AUCell (ctxcore semantics), streamed over cells."""
from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import InputError
from ..logs import get_logger
from ..regulons.aucell import auc_cutoff, binarize, build_signatures, score_cells, scoring_genes

log = get_logger(__name__)
OBSM_KEY, NAMES_KEY, BINARY_KEY = "X_aucell", "aucell_regulons", "X_aucell_binary"


def layer_matrix(adata: AnnData, layer: str | None):
    """``adata.layers[layer]`` (``None``: ``adata.X``); an unknown layer is an InputError listing the layers."""
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise InputError(f"layer {layer!r} not found (layers: {sorted(adata.layers)})")
    return adata.layers[layer]


def aucell(adata: AnnData, regulons: pd.DataFrame, *, layer: str | None = None, k: int | None = 50,
           auc_threshold: float = 0.05, batch_size: int = 32, seed: int = 0, weighted: bool = False,
           binarize_auc: bool = False, device: Literal["auto", "cpu", "cuda"] = "auto") -> pd.DataFrame:
    """Score each regulon in each cell with AUCell: the area under the recovery curve of its genes among
    the cell's top-ranked genes (ranks descending, ties broken by a seeded gene shuffle, as ctxcore).

    Works on a backed AnnData (``anndata.read_h5ad(path, backed="r")``): cells are read in blocks of
    about 128 MiB, so memory follows the block, not the data.

    Parameters
    ----------
    adata
        Cells x genes; ranks within a cell do not change with library-size normalisation or log1p,
        so raw counts are fine.
    regulons
        ``fs.tl.prune(...).regulons`` (``regulon``, ``tf``, ``target``, ``weight``).
    layer
        Layer to rank; ``None`` uses ``adata.X``.
    k
        Top-k targets per regulon by weight scored, plus the TF (``None``: all targets).
    auc_threshold
        Fraction of the genes under the AUC (rank cutoff ``round(auc_threshold x n_genes) - 1``).
    batch_size
        Cells per scoring batch.
    seed
        Seed of the tie-breaking gene shuffle (ctxcore's seed).
    weighted
        Weight genes by regulon weight (ctxcore ``noweights=False``).
    binarize_auc
        Also call each regulon on/off per cell (Otsu threshold on its AUC distribution).
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` (numba) or ``"cuda"`` (torch).

    Returns
    -------
    AUC per cell and regulon (float64), indexed by ``adata.obs_names``. Writes
    ``adata.obsm["X_aucell"]`` (the same, float32), ``adata.uns["aucell_regulons"]`` (its column
    names), ``adata.uns["aucell"]`` (``report``: cells, genes, rank cutoff, device, seconds,
    regulons scored 0 by the 80% rule; ``regulons``: genes per regulon and in the data, and with
    ``binarize_auc`` the threshold) and, with ``binarize_auc``, ``adata.obsm["X_aucell_binary"]`` (uint8).

    Examples
    --------
    >>> import fatescope as fs
    >>> auc = fs.tl.aucell(adata, res.regulons, layer="counts")
    >>> adata.obsm["X_aucell"].shape
    """
    from ..device import resolve_device

    matrix, sigs, cutoff = _setup(adata, regulons, layer, k, auc_threshold, weighted)
    dev = str(resolve_device(device))
    t0 = time.perf_counter()
    auc = score_cells(matrix, adata.n_obs, sigs, cutoff, seed, batch_size, dev)
    elapsed = time.perf_counter() - t0
    log.info("aucell: %d cells x %d regulons in %.2f s", adata.n_obs, len(sigs.names), elapsed)
    return _annotate(adata, sigs, cutoff, auc, binarize_auc, dev, elapsed)


def _setup(adata: AnnData, regulons: pd.DataFrame, layer, k, auc_threshold, weighted):
    """(matrix, signatures, rank cutoff) of a scoring run."""
    genes_table = scoring_genes(regulons, k)
    matrix = layer_matrix(adata, layer)
    sigs = build_signatures(genes_table, adata.var_names, weighted=weighted)
    return matrix, sigs, auc_cutoff(auc_threshold, adata.n_vars)


def _annotate(adata: AnnData, sigs, cutoff: int, auc: np.ndarray, binarize_auc: bool, dev: str,
              elapsed: float) -> pd.DataFrame:
    """Write the scores of every cell into ``adata`` (obsm, uns) as ``aucell`` documents; the AUC frame."""
    info = pd.DataFrame({"regulon": sigs.names, "n_genes": sigs.n_genes, "n_genes_in_data": sigs.n_present})
    if binarize_auc:
        info["threshold"], binary = binarize(auc)
        adata.obsm[BINARY_KEY] = binary
    report = {"n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars), "n_regulons": len(sigs.names),
              "rank_cutoff": cutoff, "seconds": round(elapsed, 3), "device": dev,
              "regulons_scored_zero_80pct_rule": [n for n, d in zip(sigs.names, sigs.max_auc_denom) if d == 0]}
    adata.obsm[OBSM_KEY] = auc.astype(np.float32)
    adata.uns[NAMES_KEY] = np.asarray(sigs.names, dtype=object)
    adata.uns["aucell"] = {"report": report, "regulons": info}
    return pd.DataFrame(auc, index=adata.obs_names.copy(), columns=pd.Index(sigs.names), copy=False)


def aucell_cells(adata: AnnData, regulons: pd.DataFrame, start: int, stop: int, *, layer: str | None = None,
                 k: int | None = 50, auc_threshold: float = 0.05, batch_size: int = 32, seed: int = 0,
                 weighted: bool = False, device: str = "auto") -> tuple[pd.DataFrame, dict]:
    """``aucell``'s scores of cells [start, stop) only, to the bit (a chunk of a split run; ``adata`` is left as it
    is), and the run's report pieces (device, seconds)."""
    from ..device import resolve_device

    matrix, sigs, cutoff = _setup(adata, regulons, layer, k, auc_threshold, weighted)
    dev = str(resolve_device(device))
    t0 = time.perf_counter()
    auc = score_cells(matrix, adata.n_obs, sigs, cutoff, seed, batch_size, dev, (start, stop))
    elapsed = time.perf_counter() - t0
    log.info("aucell: cells %d..%d x %d regulons in %.2f s", start, stop - 1, len(sigs.names), elapsed)
    frame = pd.DataFrame(auc, index=adata.obs_names[start:stop].copy(), columns=pd.Index(sigs.names), copy=False)
    return frame, {"device": dev, "seconds": elapsed}


def aucell_from_scores(adata: AnnData, regulons: pd.DataFrame, auc: np.ndarray, *, k: int | None = 50,
                       auc_threshold: float = 0.05, weighted: bool = False, binarize_auc: bool = False,
                       device: str = "cpu", seconds: float = 0.0) -> pd.DataFrame:
    """``aucell``'s results from the scores of every cell computed elsewhere (the chunks of a split run, in
    order): the same annotations of ``adata`` (binarisation needs every cell, so it happens here) and frame."""
    _, sigs, cutoff = _setup(adata, regulons, None, k, auc_threshold, weighted)
    if auc.shape != (adata.n_obs, len(sigs.names)):
        raise InputError(f"scores of shape {auc.shape}; expected {adata.n_obs} cells x {len(sigs.names)} regulons")
    return _annotate(adata, sigs, cutoff, auc, binarize_auc, device, seconds)
