"""Reading an experiment: the samplesheet's samples as one AnnData with guide calls and fate probabilities.

``fs.read_samples`` is what the qc stage loads before it filters (``fs.pp.qc``).
"""
from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cells.qc import concat_samples
from .errors import InputError
from .io.annotations import read_fate_probs, read_guide_calls, read_guide_map
from .io.counts import read_counts
from .io.samplesheet import validate_samplesheet
from .logs import get_logger, progress

log = get_logger(__name__)


def read_samples(samplesheet: str | os.PathLike, guide_map: str | os.PathLike | pd.DataFrame | None = None, *,
                 gene_join: str = "inner") -> ad.AnnData:
    """Every sample of a samplesheet, concatenated, with guide calls and fate probabilities attached.

    Parameters
    ----------
    samplesheet
        Samplesheet CSV (columns sample, counts, batch, day, replicate[, guides, fate_probs]), validated.
    guide_map
        Guide map (CSV path or the table ``io.annotations.read_guide_map`` returns); needed when samples have guides.
    gene_join
        ``inner``: genes in every sample; ``outer``: genes in any sample (zeros filled).

    Returns
    -------
    AnnData with raw counts (``X`` and ``layers["counts"]``), the samplesheet's columns in ``obs``, guide calls in
    ``obsm["guides"]`` (names in ``uns["guide_names"]``) and fate probabilities in ``obsm["fate_probs"]`` (names in
    ``uns["fate_names"]``).

    Examples
    --------
    >>> import fatescope as fs
    >>> adata = fs.read_samples("sim/samplesheet.csv", "sim/guide_map.csv")  # doctest: +SKIP
    >>> fs.pp.qc(adata)  # doctest: +SKIP
    """
    sheet = validate_samplesheet(str(samplesheet)).table
    gmap = read_guide_map(str(guide_map)) if isinstance(guide_map, (str, os.PathLike)) else guide_map
    return load_samples(sheet, gmap, gene_join)[0]


def _attach_guides(adata: ad.AnnData, path: str, guide_map: pd.DataFrame) -> None:
    barcodes, calls = read_guide_calls(path, guide_map.index)
    rows = pd.Index(barcodes).get_indexer(adata.obs_names)
    matched = rows >= 0
    if len(barcodes) == 0:
        log.warning("%s: no guide calls in this file; the sample's cells carry no guides", path)
    elif not matched.any():
        raise InputError(f"{path}: none of its {len(barcodes)} cell barcodes match the counts' barcodes "
                         f"(e.g. {barcodes[0]!r} vs {adata.obs_names[0]!r})")
    pick = sp.csr_matrix((np.ones(matched.sum()), (np.flatnonzero(matched), rows[matched])), shape=(adata.n_obs, len(barcodes)))
    adata.obsm["guides"] = sp.csr_matrix(pick @ calls, dtype=np.float32)
    unmatched = len(barcodes) - int(matched.sum())
    if unmatched:
        log.warning("%s: %d guide-call barcodes are not in the counts and were ignored", path, unmatched)


def _attach_fate_probs(adata: ad.AnnData, path: str, fate_names: list[str] | None) -> list[str]:
    probs = read_fate_probs(path)
    names = list(map(str, probs.columns))
    if fate_names is not None and names != fate_names:
        raise InputError(f"{path}: fate columns {names} differ from the other samples' {fate_names}")
    _align_fate_probs(adata, probs, path)
    return names


def replace_fate_probs(adata: ad.AnnData, path: str, key: str = "fate_probs") -> ad.AnnData:
    """Give the cells the fate probabilities of a table (``cell`` + one column per fate, e.g. the
    fate-probs stage's fate_probs.csv) in ``obsm[key]``, in place of the samples' own."""
    probs = read_fate_probs(path)
    _align_fate_probs(adata, probs, path, key)
    adata.uns["fate_names"] = list(map(str, probs.columns))
    return adata


def _align_fate_probs(adata: ad.AnnData, probs: pd.DataFrame, path: str, key: str = "fate_probs") -> None:
    aligned = probs.reindex(adata.obs_names)
    covered = int(aligned.notna().all(axis=1).sum())
    if covered == 0:
        raise InputError(f"{path}: none of its cell barcodes match the counts' barcodes "
                         f"(e.g. {probs.index[0]!r} vs {adata.obs_names[0]!r})")
    if covered < adata.n_obs:
        log.warning("%s: %d of %d cells have no fate probabilities (qc_per_sample.csv: cells_with_fate_probs); "
                    "fate-fit refuses them unless --missing-fate-probs drop", path, adata.n_obs - covered, adata.n_obs)
    adata.obsm[key] = aligned.to_numpy(np.float64)
    adata.obs["has_fate_probs"] = aligned.notna().all(axis=1).to_numpy()


def load_sample(row: pd.Series, guide_map: pd.DataFrame | None, fate_names: list[str] | None) -> tuple[ad.AnnData, list[str] | None]:
    """One samplesheet row -> AnnData with its metadata, guide calls and fate probabilities."""
    adata = read_counts(row["counts"])
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"{row['counts']}: sample {row['sample']!r} is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    repeated = pd.unique(adata.obs_names[adata.obs_names.duplicated()])
    if len(repeated):
        raise InputError(f"{row['counts']}: sample {row['sample']!r} has {len(repeated)} barcode(s) on more than one "
                         f"cell (e.g. {', '.join(map(repr, repeated[:3]))}); expected one row per barcode")
    for col, value in row.items():
        if col not in ("counts", "guides", "fate_probs") and isinstance(value, str):
            adata.obs[col] = value
    if isinstance(row.get("guides"), str):
        if guide_map is None:
            raise InputError(f"sample {row['sample']!r} has a guides file but no guide map was given (--guide-map)")
        _attach_guides(adata, row["guides"], guide_map)
    elif guide_map is not None:
        adata.obsm["guides"] = sp.csr_matrix((adata.n_obs, len(guide_map)), dtype=np.float32)
    if isinstance(row.get("fate_probs"), str):
        fate_names = _attach_fate_probs(adata, row["fate_probs"], fate_names)
    return adata, fate_names


def _fill_missing_fates(samples: dict[str, ad.AnnData], fate_names: list[str] | None) -> None:
    if fate_names is None:
        return
    for a in samples.values():
        if "fate_probs" not in a.obsm:
            a.obsm["fate_probs"] = np.full((a.n_obs, len(fate_names)), np.nan)
            a.obs["has_fate_probs"] = False


def load_samples(sheet: pd.DataFrame, guide_map: pd.DataFrame | None, gene_join: str) -> tuple[ad.AnnData, dict[str, ad.AnnData]]:
    """Every sample of the samplesheet, concatenated with its guides and fate probabilities; and each as loaded."""
    raw: dict[str, ad.AnnData] = {}
    fate_names = None
    for _, row in progress(sheet.iterrows(), desc="load samples", total=len(sheet)):
        raw[row["sample"]], fate_names = load_sample(row, guide_map, fate_names)
        log.info("sample %s: %d cells x %d genes (%s)", row["sample"], raw[row["sample"]].n_obs,
                 raw[row["sample"]].n_vars, raw[row["sample"]].uns["counts_format"])
    return join_samples(raw, guide_map, fate_names, gene_join), raw


def join_samples(samples: dict[str, ad.AnnData], guide_map: pd.DataFrame | None, fate_names: list[str] | None,
                 gene_join: str) -> ad.AnnData:
    """Loaded samples (``load_sample``'s AnnData, by sample name, in order) as one AnnData: the gene join,
    barcodes ``<sample>_<barcode>``, samples without fate probabilities given NaN rows, the guide map in ``uns``."""
    _fill_missing_fates(samples, fate_names)
    adata = concat_samples(samples, join=gene_join)
    if guide_map is not None:
        adata.obs["n_guides"] = np.diff(sp.csr_matrix(adata.obsm["guides"]).indptr).astype(np.int64)
        adata.uns["guide_names"] = guide_map.index.to_numpy(str)
        adata.uns["guide_genes"] = guide_map["gene_name"].to_numpy(str)
        adata.uns["guide_is_ntc"] = guide_map["is_ntc"].to_numpy(bool)
    if fate_names is not None:
        adata.uns["fate_names"] = np.asarray(fate_names, dtype=str)
    return adata
