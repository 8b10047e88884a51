"""``fatescope qc``: load every sample, attach guides and fate probabilities, filter, report."""
from __future__ import annotations

from pathlib import Path

import anndata as ad
import click
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..cells.qc import concat_samples, per_sample_table
from ..errors import InputError
from ..io.annotations import read_fate_probs, read_guide_calls, read_guide_map
from ..io.counts import read_counts
from ..io.outputs import staged_output
from ..io.samplesheet import validate_samplesheet
from ..logs import get_logger, progress
from ..pp._qc import qc
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "qc_per_sample.csv")
META_COLUMNS = ("sample", "batch", "day", "replicate")


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(qc, name)


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
    aligned = probs.reindex(adata.obs_names)
    covered = int(aligned.notna().all(axis=1).sum())
    if covered == 0:
        raise InputError(f"{path}: none of its cell barcodes match the counts' barcodes "
                         f"(e.g. {probs.index[0]!r} vs {adata.obs_names[0]!r})")
    if covered < adata.n_obs:
        log.warning("%s: %d of %d cells have no fate probabilities (qc_per_sample.csv: cells_with_fate_probs); "
                    "fate-fit refuses them unless --missing-fate-probs drop", path, adata.n_obs - covered, adata.n_obs)
    adata.obsm["fate_probs"] = aligned.to_numpy(np.float64)
    adata.obs["has_fate_probs"] = aligned.notna().all(axis=1).to_numpy()
    return names


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
    _fill_missing_fates(raw, fate_names)
    adata = concat_samples(raw, join=gene_join)
    if guide_map is not None:
        adata.obs["n_guides"] = np.diff(sp.csr_matrix(adata.obsm["guides"]).indptr).astype(np.int64)
        adata.uns["guide_names"] = guide_map.index.to_numpy(str)
        adata.uns["guide_genes"] = guide_map["gene_name"].to_numpy(str)
        adata.uns["guide_is_ntc"] = guide_map["is_ntc"].to_numpy(bool)
    if fate_names is not None:
        adata.uns["fate_names"] = np.asarray(fate_names, dtype=str)
    return adata, raw


def run(input: str, outdir: str = "qc", guide_map: str | None = None, min_features: int = _d("min_features"),
        min_cells: int = _d("min_cells"), max_pct_mito: float | None = _d("max_pct_mito"),
        mito_prefix: str = _d("mito_prefix"), gene_join: str = "inner") -> Path:
    sheet = validate_samplesheet(input).table
    gmap = read_guide_map(guide_map) if guide_map else None
    adata, raw = load_samples(sheet, gmap, gene_join)
    qc(adata, min_features=min_features, min_cells=min_cells, max_pct_mito=max_pct_mito, mito_prefix=mito_prefix)
    table = per_sample_table(raw, adata)
    for col in META_COLUMNS:  # the samplesheet's text columns, stored as categories
        adata.obs[col] = pd.Categorical(adata.obs[col].astype(str))
    settings = dict(input=input, guide_map=guide_map, gene_join=gene_join, min_features=min_features,
                    min_cells=min_cells, max_pct_mito=max_pct_mito, mito_prefix=mito_prefix)
    with staged_output(outdir, "qc", settings, ["anndata", "scipy", "numpy", "pandas", "h5py"]) as tmp:
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        table.to_csv(tmp / OUTPUTS[1], index=False)
    log.info("qc: %d cells x %d genes written to %s", adata.n_obs, adata.n_vars, outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("qc", help="Load every sample of the samplesheet (h5ad, 10x .h5 or MatrixMarket folder), attach guide "
                          "calls and fate probabilities, concatenate, filter cells and genes, and report per sample.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="Samplesheet CSV (validated again here).")
@outdir_option("qc")
@click.option("--guide-map", default=None, type=click.Path(dir_okay=False),
              help="Guide map CSV (guide_name, gene_name, is_ntc); required when the samplesheet has guides [default: none].")
@click.option("--min-features", default=_d("min_features"), type=click.IntRange(min=0),
              help="Minimum genes detected per cell.")
@click.option("--min-cells", default=_d("min_cells"), type=click.IntRange(min=0),
              help="Minimum cells in which a gene is detected.")
@click.option("--max-pct-mito", default=_d("max_pct_mito"), type=click.FloatRange(0, 100),
              help="Maximum percent of counts from mitochondrial genes [default: no filter].")
@click.option("--mito-prefix", default=_d("mito_prefix"),
              help="Prefix of mitochondrial gene symbols (case-insensitive).")
@click.option("--gene-join", default="inner", type=click.Choice(["inner", "outer"]),
              help="Keep genes present in every sample (inner) or in any sample (outer, zeros filled).")
def command(**kwargs) -> None:
    run(**kwargs)
