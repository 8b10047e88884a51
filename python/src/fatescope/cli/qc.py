"""``fatescope qc``: load every sample, attach guides and fate probabilities, filter, report.

Nextflow splits it: ``--load-only`` per sample (in parallel), then ``--merge`` joins, filters and
reports; the result is the one-task run's, the same cells.h5ad and qc_per_sample.csv.
"""
from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from .._read import join_samples, load_sample, load_samples
from ..cells.qc import QCParams, check_samples_kept, per_sample_table, prefilter_sample
from ..errors import InputError
from ..io.annotations import read_guide_map
from ..io.outputs import staged_output
from ..io.qc_samples import read_loaded_samples, sample_file, write_loaded_sample
from ..io.samplesheet import validate_samplesheet
from ..logs import get_logger
from ..pp._qc import qc
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "qc_per_sample.csv")
META_COLUMNS = ("sample", "batch", "day", "replicate")
PACKAGES = ["anndata", "scipy", "numpy", "pandas", "h5py"]


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(qc, name)


def run(input: str | None = None, outdir: str = "qc", guide_map: str | None = None,
        min_features: int = _d("min_features"), min_cells: int = _d("min_cells"),
        max_pct_mito: float | None = _d("max_pct_mito"), mito_prefix: str = _d("mito_prefix"), gene_join: str = "inner",
        load_only: bool = False, merge: tuple[str, ...] | list[str] = ()) -> Path:
    if bool(input) == bool(merge) or (load_only and not input):
        raise InputError("qc: give --input (a samplesheet; with --load-only, only load its samples) or --merge "
                         "(the per-sample files of `fatescope qc --load-only` runs), not both")
    gmap = read_guide_map(guide_map) if guide_map else None
    if load_only:
        return _load_only(input, outdir, gmap, guide_map, min_features)
    if input:
        sheet = validate_samplesheet(input).table
        adata, raw = load_samples(sheet, gmap, gene_join)
        loaded = {name: a.shape for name, a in raw.items()}
    else:
        adata, loaded = _merged(list(merge), gmap, guide_map, gene_join)
    qc(adata, min_features=min_features, min_cells=min_cells, max_pct_mito=max_pct_mito, mito_prefix=mito_prefix)
    table = per_sample_table(loaded, adata)
    for col in META_COLUMNS:  # the samplesheet's text columns, stored as categories
        adata.obs[col] = pd.Categorical(adata.obs[col].astype(str))
    settings = dict(input=input, merge=list(merge) or None, guide_map=guide_map, gene_join=gene_join,
                    min_features=min_features, min_cells=min_cells, max_pct_mito=max_pct_mito, mito_prefix=mito_prefix)
    with staged_output(outdir, "qc", settings, PACKAGES) as tmp:
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        table.to_csv(tmp / OUTPUTS[1], index=False)
    log.info("qc: %d cells x %d genes written to %s", adata.n_obs, adata.n_vars, outdir)
    return Path(outdir) / OUTPUTS[0]


def _load_only(input: str, outdir: str, gmap: pd.DataFrame | None, guide_map: str | None, min_features: int) -> Path:
    """Each sample of the samplesheet as loaded, less the cells that cannot pass --min-features, one file each."""
    sheet = validate_samplesheet(input).table
    params = QCParams(min_features=min_features)
    written = []
    settings = dict(input=input, guide_map=guide_map, min_features=min_features, load_only=True)
    with staged_output(outdir, "qc-load", settings, PACKAGES) as tmp:  # versions.yml: FATESCOPE:QC_LOAD
        for _, row in sheet.iterrows():
            adata, fate_names = load_sample(row, gmap, None)
            kept = prefilter_sample(adata, min_features)
            check_samples_kept([row["sample"]], kept.obs["sample"].to_numpy() if kept.n_obs else [], params)
            write_loaded_sample(kept, sample_file(tmp, row["sample"]), row["sample"], adata.shape,
                                None if gmap is None else list(gmap.index), fate_names)
            log.info("sample %s: %d cells x %d genes loaded, %d cells with >= %d genes kept", row["sample"],
                     adata.n_obs, adata.n_vars, kept.n_obs, min_features)
            written.append(sample_file(outdir, row["sample"]))
    return written[0]


def _merged(paths: list[str], gmap: pd.DataFrame | None, guide_map: str | None, gene_join: str):
    """The --merge files as one AnnData (as load_samples joins them) and the samples' sizes as loaded."""
    loaded = read_loaded_samples(paths)
    map_names = None if gmap is None else list(gmap.index)
    if loaded.guide_names != map_names:
        raise InputError(f"--guide-map {guide_map}: the samples were loaded with "
                         f"{'no guide map' if loaded.guide_names is None else f'guides {loaded.guide_names[:5]}...'}, "
                         f"this map has {'none' if map_names is None else f'guides {map_names[:5]}...'}; "
                         f"merge with the guide map the samples were loaded with")
    return join_samples(loaded.samples, gmap, loaded.fate_names, gene_join), loaded.sizes


@stage_command("qc", help="Load every sample of the samplesheet (h5ad, 10x .h5 or MatrixMarket folder), attach guide "
                          "calls and fate probabilities, concatenate, filter cells and genes, and report per sample.")
@click.option("--input", default=None, type=click.Path(dir_okay=False),
              help="Samplesheet CSV (validated again here) [default: none; required unless --merge].")
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
@click.option("--load-only", is_flag=True,
              help="Split qc, step 1 (Nextflow: one task per sample): only load each sample of --input, attach its "
                   "guides and fate probabilities, drop the cells under --min-features genes, and write "
                   "<outdir>/<sample>.h5ad.")
@click.option("--merge", multiple=True, type=click.Path(dir_okay=False),
              help="Split qc, step 2: the <sample>.h5ad files of --load-only runs (repeat the option; in samplesheet "
                   "order), joined and filtered as one qc run of the whole samplesheet would [default: none].")
def command(**kwargs) -> None:
    run(**kwargs)
