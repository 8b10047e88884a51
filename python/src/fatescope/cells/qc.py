"""QC of the concatenated samples: per-cell metrics, cell and gene filters, per-sample report.

Pure functions on AnnData; reading files is the caller's job (``fatescope.cli.qc``).
"""
from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class QCParams:
    min_features: int = 600
    min_cells: int = 3
    max_pct_mito: float | None = None
    mito_prefix: str = "MT-"


def _union_genes(samples: list[ad.AnnData]) -> pd.Index:
    genes: dict[str, None] = {}
    for a in samples:
        genes.update(dict.fromkeys(a.var_names))
    return pd.Index(list(genes))


def _intersect_genes(samples: list[ad.AnnData]) -> pd.Index:
    common = set(samples[0].var_names)
    for a in samples[1:]:
        common &= set(a.var_names)
    return pd.Index([g for g in samples[0].var_names if g in common])


def _align(X: sp.csr_matrix, genes: pd.Index, target: pd.Index) -> sp.csr_matrix:
    """Columns of ``X`` (named ``genes``) placed at their position in ``target``; absent -> 0."""
    pos = target.get_indexer(genes)
    keep = pos >= 0
    selector = sp.csr_matrix((np.ones(keep.sum(), dtype=X.dtype), (np.flatnonzero(keep), pos[keep])),
                             shape=(len(genes), len(target)))
    return sp.csr_matrix(X @ selector)


def concat_samples(samples: dict[str, ad.AnnData], join: str = "inner") -> ad.AnnData:
    """Concatenate per-sample AnnData (keyed by sample name) with an inner or outer gene join.

    Barcodes become ``<sample>_<barcode>``; per-sample ``obs`` columns and ``obsm`` matrices
    of equal width are carried over.
    """
    if join not in ("inner", "outer"):
        raise InputError(f"gene join must be 'inner' or 'outer', got {join!r}")
    parts = list(samples.values())
    genes = _intersect_genes(parts) if join == "inner" else _union_genes(parts)
    if len(genes) == 0:
        raise InputError("the samples share no gene names (inner join is empty); check that all samples use the "
                         "same gene identifiers, or use --gene-join outer")
    X = sp.vstack([_align(a.X, a.var_names, genes) for a in parts], format="csr")
    obs = pd.concat([a.obs.assign(barcode=a.obs_names.values) for a in parts], ignore_index=True)
    obs.index = pd.Index([f"{s}_{b}" for s, a in samples.items() for b in a.obs_names], dtype=str)
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    for key in set.intersection(*(set(a.obsm) for a in parts)) if parts else ():
        mats = [a.obsm[key] for a in parts]
        out.obsm[key] = sp.vstack(mats, format="csr") if sp.issparse(mats[0]) else np.vstack(mats)
    return out


def add_qc_metrics(adata: ad.AnnData, mito_prefix: str = "MT-") -> None:
    """Per-cell ``n_genes_by_counts``, ``total_counts``, ``pct_counts_mt``; per-gene ``n_cells_by_counts``."""
    X = sp.csr_matrix(adata.X)
    adata.obs["n_genes_by_counts"] = np.diff(X.indptr).astype(np.int64)
    adata.obs["total_counts"] = np.asarray(X.sum(axis=1)).ravel()
    mito = adata.var_names.str.upper().str.startswith(mito_prefix.upper()) if mito_prefix else np.zeros(adata.n_vars, bool)
    adata.var["mt"] = mito
    mt_counts = np.asarray(X[:, np.flatnonzero(mito)].sum(axis=1)).ravel() if mito.any() else np.zeros(adata.n_obs)
    with np.errstate(invalid="ignore", divide="ignore"):
        adata.obs["pct_counts_mt"] = np.where(adata.obs["total_counts"] > 0, 100 * mt_counts / adata.obs["total_counts"], 0.0)
    adata.var["n_cells_by_counts"] = np.bincount(X.indices, minlength=adata.n_vars).astype(np.int64)


def filter_cells_and_genes(adata: ad.AnnData, params: QCParams) -> ad.AnnData:
    """Keep, in place, the cells with >= min_features genes (and <= max_pct_mito), then the genes in
    >= min_cells of them; QC metrics of what is kept in obs/var. Returns ``adata``."""
    add_qc_metrics(adata, params.mito_prefix)
    keep = adata.obs["n_genes_by_counts"].to_numpy() >= params.min_features
    if params.max_pct_mito is not None:
        keep &= adata.obs["pct_counts_mt"].to_numpy() <= params.max_pct_mito
    adata._inplace_subset_obs(keep)  # what scanpy's filter_cells(inplace=True) does
    X = sp.csr_matrix(adata.X)
    n_cells = np.bincount(X.indices, minlength=adata.n_vars)
    if keep.any() and not (n_cells >= params.min_cells).any():
        raise InputError(f"no gene is detected in min_cells={params.min_cells} of the {int(keep.sum())} cells left after "
                         f"the cell filters (most: {int(n_cells.max())} cells); lower min_cells")
    adata._inplace_subset_var(n_cells >= params.min_cells)
    add_qc_metrics(adata, params.mito_prefix)
    log.info("filters kept %d cells and %d genes", adata.n_obs, adata.n_vars)
    return adata


def prefilter_sample(adata: ad.AnnData, min_features: int) -> ad.AnnData:
    """The cells of one sample that can pass the cell filter after any gene join: a join only removes
    genes, so a cell with fewer than ``min_features`` detected genes in its own sample never passes.
    Lets each sample shrink before the merge without changing what the merged filter keeps."""
    X = sp.csr_matrix(adata.X)
    detected = np.bincount(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[X.data != 0], minlength=X.shape[0])
    keep = detected >= min_features
    return adata if keep.all() else adata[keep].copy()


def per_sample_table(loaded: dict[str, tuple[int, int]], filtered: ad.AnnData) -> pd.DataFrame:
    """Cells and genes per sample before (as loaded: ``{sample: (cells, genes)}``) and after the join and filters."""
    rows = []
    X = sp.csr_matrix(filtered.X)
    for name, (n_cells, n_genes) in loaded.items():
        sel = np.flatnonzero(filtered.obs["sample"].to_numpy() == name)
        sub = X[sel]
        obs = filtered.obs.iloc[sel]
        rows.append({
            "sample": name,
            "cells_before": n_cells,
            "genes_before": n_genes,
            "cells_after": len(sel),
            "genes_after": int((np.bincount(sub.indices, minlength=filtered.n_vars) > 0).sum()),
            "median_genes_per_cell": float(obs["n_genes_by_counts"].median()) if len(sel) else 0.0,
            "median_counts_per_cell": float(obs["total_counts"].median()) if len(sel) else 0.0,
            "median_pct_counts_mt": round(float(obs["pct_counts_mt"].median()), 4) if len(sel) else 0.0,
            "cells_with_guides": int(obs["n_guides"].gt(0).sum()) if "n_guides" in obs else 0,
            "cells_with_fate_probs": int(obs["has_fate_probs"].sum()) if "has_fate_probs" in obs else 0,
        })
    return pd.DataFrame(rows)


def check_samples_kept(samples_before, samples_after, params: QCParams) -> None:
    """Every sample (in order of appearance) must keep at least one cell; name the ones that lose all."""
    kept = set(np.asarray(samples_after).astype(str))
    empty = [s for s in pd.unique(np.asarray(samples_before).astype(str)) if s not in kept]
    if empty:
        raise InputError(f"no cells left after filtering in sample(s) {', '.join(empty)} "
                         f"(min_features={params.min_features}, max_pct_mito={params.max_pct_mito}); lower the thresholds")
