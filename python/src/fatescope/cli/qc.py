"""``fatescope qc``: load every sample, attach guides and fate probabilities, filter, report."""
from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from .._read import load_samples
from ..cells.qc import per_sample_table
from ..io.annotations import read_guide_map
from ..io.outputs import staged_output
from ..io.samplesheet import validate_samplesheet
from ..logs import get_logger
from ..pp._qc import qc
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "qc_per_sample.csv")
META_COLUMNS = ("sample", "batch", "day", "replicate")


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(qc, name)


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
