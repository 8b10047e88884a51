"""``fs.tl.grn``: RegDiffusion TF -> target network on the log-normalised counts of an AnnData."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from anndata import AnnData

from ..cells.checks import counts_layer
from ..errors import InputError
from ..logs import get_logger
from ..regulons.grn import GRNParams, expression_matrix, infer_grn, subsample_cells
from ..regulons.tfs import read_tf_list, tfs_in_data

log = get_logger(__name__)


def tf_names(tfs: str | Sequence[str]) -> list[str]:
    """A TF list: a bundled name ('human', 'mouse'), a file with one symbol per line, or the names themselves."""
    if isinstance(tfs, (str, os.PathLike)):
        return read_tf_list(str(tfs))
    names = list(dict.fromkeys(str(t) for t in tfs))
    if not names:
        raise InputError("tfs: the TF list is empty (expected gene symbols, 'human', 'mouse' or a file)")
    return names


def grn(adata: AnnData, *, tfs: str | Sequence[str] = "human", layer: str | None = "counts", n_steps: int = 1000,
        sparsity_threshold: float = 1.5, n_runs: int = 1, seed: int = 0, max_cells: int | None = 50_000,
        device: Literal["auto", "cpu", "cuda"] = "auto", log_dir: str | os.PathLike | None = None,
        return_models: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, list[dict]]:
    """Infer TF -> target edges with RegDiffusion on log-normalised expression (library size 1e4, log1p).

    Genes constant across cells are dropped; only rows of TFs are kept, edges below
    ``sparsity_threshold`` are zeroed. With ``n_runs`` > 1 the seeds ``seed..seed+n_runs-1`` are
    trained, the weights averaged, and each edge reports the fraction of runs it passed the
    threshold. Torch is switched to deterministic kernels (``fatescope.device.set_threads``) so
    the same seed gives the same network.

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``layer``.
    tfs
        TF names, a bundled list (``"human"``: Lambert 2018, ``"mouse"``: MGI) or a file with one symbol per line.
    layer
        Layer with raw counts (``"auto"``: 'decontaminated' when present, else 'counts'); ``None`` uses ``adata.X``.
    n_steps, sparsity_threshold, n_runs, seed
        RegDiffusion training iterations, edge weight cut-off, ensemble size, seed of the first run.
    max_cells
        Train on a uniform sample of this many cells (drawn with ``seed``) when there are more; ``None``: all.
        RegDiffusion holds the dense cells x genes matrix (about 30 bytes per entry in training): 50,000
        cells x 20,000 genes is ~30 GiB, where 1M cells would be ~600 GiB.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    log_dir
        Folder for RegDiffusion's own training logs (``run<i>/``); ``None``: a temporary folder, removed afterwards.
    return_models
        Also return each run's model state (``state_dict``, ``hp``, ``genes``; what ``torch.save`` needs to reload).

    Returns
    -------
    The adjacency (``tf``, ``target``, ``importance``, ``stability``), sorted by TF then importance;
    with ``return_models``, ``(adjacency, models)``. Writes ``adata.uns["grn"]``: the report (TFs of
    the list in the data, cells and genes used, edges, edge stability, device).

    Examples
    --------
    >>> import fatescope as fs
    >>> adjacency = fs.tl.grn(adata, tfs="human", n_steps=300)
    >>> adjacency.head()
    """
    from ..device import resolve_device, set_threads

    counts = adata.layers[counts_layer(adata, layer)] if layer is not None else adata.X
    present, tf_report = tfs_in_data(tf_names(tfs), adata.var_names)
    set_threads(0)  # deterministic kernels: the same seed gives the same network
    dev = str(resolve_device(device))
    params = GRNParams(n_steps=n_steps, sparsity_threshold=sparsity_threshold, n_runs=n_runs, seed=seed)
    rows = subsample_cells(adata.n_obs, max_cells, seed)
    if rows is not None:
        log.info("grn: training on %d of %d cells (max_cells, seed %d)", len(rows), adata.n_obs, seed)
        counts = counts[rows]
    X = expression_matrix(counts, params.target_sum)
    logs = tempfile.TemporaryDirectory(prefix="fatescope_grn_") if log_dir is None else contextlib.nullcontext(log_dir)
    with logs as folder:
        edges, models, report = infer_grn(X, adata.var_names, present, params, dev, Path(folder))
    if edges.empty:
        log.warning("grn: no TF edge reached sparsity_threshold %s", sparsity_threshold)
    adata.uns["grn"] = {**tf_report, **report, "n_cells": int(adata.n_obs),
                        "n_cells_used": int(adata.n_obs if rows is None else len(rows)), "device": dev}
    return (edges, models) if return_models else edges
