"""``fatescope aucell``: regulon activity per cell (ctxcore AUCell), streamed over cells from a backed h5ad.

Writes ``aucell.parquet`` (cells x regulons) and a copy of the input AnnData with
``obsm["X_aucell"]`` and ``uns["aucell_regulons"]`` added (the copy is made file to file, then the
two keys are written with h5py, so memory never holds the whole matrix).

Nextflow may split the scoring over chunks of cells (``aucell_chunk_size``): one ``--chunk K`` task per chunk,
then one ``--gather`` task writing these outputs, the one-task run's to the bit (cli/aucell_chunks.py).
"""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import anndata as ad
import click
import h5py
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_anndata, read_table
from ..logs import get_logger
from ..regulons.aucell import check_regulons
from ..tl._aucell import aucell, layer_matrix
from . import aucell_chunks
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("aucell.parquet", "cells.h5ad", "aucell_regulons.csv", "aucell_report.json")


PACKAGES = ["numba", "numpy", "pandas", "anndata", "h5py"]
TASK_SPLIT_OPTIONS = ("chunk_size", "chunk", "gather")  # how Nextflow splits the stage: no API counterpart


def run(cells: str, regulons: str, outdir: str = "aucell", layer: str | None = api_default(aucell, "layer"),
        k: int | None = api_default(aucell, "k"), auc_threshold: float = api_default(aucell, "auc_threshold"),
        batch_size: int = api_default(aucell, "batch_size"), seed: int = api_default(aucell, "seed"),
        weighted: bool = api_default(aucell, "weighted"), binarize_auc: bool = api_default(aucell, "binarize_auc"),
        device: str = api_default(aucell, "device"), chunk_size: int | None = None, chunk: int | None = None,
        gather: tuple[str, ...] | list[str] = ()) -> Path:
    if chunk is not None and (chunk_size is None or gather):
        raise InputError("--chunk scores one chunk of cells: give it with --chunk-size and without --gather")
    table = read_table(regulons, "the prune stage's regulons.parquet")
    try:
        check_regulons(table)
    except InputError as exc:
        raise InputError(f"{regulons}: {exc}") from None
    adata = read_anndata(cells, "the qc stage's cells.h5ad", backed="r")
    settings = dict(cells=cells, regulons=regulons, layer=layer, k=k, auc_threshold=auc_threshold,
                    batch_size=batch_size, seed=seed, weighted=weighted, binarize_auc=binarize_auc)
    with contextlib.closing(adata.file):
        try:
            layer_matrix(adata, layer)
        except InputError as exc:
            raise InputError(f"{cells}: {exc}") from None
        if chunk is not None:
            return aucell_chunks.score_chunk(adata, table, outdir, chunk, chunk_size, settings, batch_size, device,
                                             PACKAGES)
        if gather:
            frame = aucell_chunks.gather_scores(list(gather), adata, table, settings)
            settings["gather"] = list(gather)
        else:
            frame = aucell(adata, table, layer=layer, k=k, auc_threshold=auc_threshold, batch_size=batch_size,
                           seed=seed, weighted=weighted, binarize_auc=binarize_auc, device=device)
    auc = frame.to_numpy()  # Fortran order: each regulon's column goes to Parquet without a copy
    names, obs_names = list(frame.columns), frame.index.to_numpy(str)
    info, report = adata.uns["aucell"]["regulons"], adata.uns["aucell"]["report"]
    settings["device"] = report["device"]
    with staged_output(outdir, "aucell", settings, PACKAGES) as tmp:
        columns = {"cell": pa.array(obs_names), **{n: pa.array(auc[:, j]) for j, n in enumerate(names)}}
        pq.write_table(pa.table(columns), tmp / OUTPUTS[0])
        del columns
        shutil.copyfile(cells, tmp / OUTPUTS[1])
        with h5py.File(tmp / OUTPUTS[1], "r+") as f:
            for key in ("obsm/X_aucell", "uns/aucell_regulons"):
                if key in f:
                    del f[key]
            write_elem = getattr(getattr(ad, "io", None), "write_elem", None) or ad.experimental.write_elem
            write_elem(f, "obsm/X_aucell", adata.obsm["X_aucell"])
            write_elem(f, "uns/aucell_regulons", adata.uns["aucell_regulons"])
        if binarize_auc:
            bframe = pd.DataFrame(adata.obsm["X_aucell_binary"], columns=names)
            bframe.insert(0, "cell", obs_names)
            bframe.to_parquet(tmp / "aucell_binary.parquet", index=False)
        info.to_csv(tmp / OUTPUTS[2], index=False)
        (tmp / OUTPUTS[3]).write_text(json.dumps(report, indent=1))
    log.info("aucell: %d cells x %d regulons written to %s", len(obs_names), len(names), outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("aucell", help="Score regulon activity per cell with AUCell (ctxcore semantics: descending ranks, "
                              "seeded tie-breaking, AUC over the top 5% of genes), streaming cells from disk.")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="AnnData to score (qc/cells.h5ad).")
@click.option("--regulons", required=True, type=click.Path(dir_okay=False), help="prune/regulons.parquet.")
@outdir_option("aucell")
@click.option("--layer", default="", help="Layer to rank ('' = X). Ranks within a cell do not change with library "
                                          "size normalisation or log1p, so raw counts are fine.")
@click.option("--k", default=api_default(aucell, "k"), type=click.IntRange(min=1),
              help="Top-k targets per regulon scored (plus the TF).")
@click.option("--auc-threshold", default=api_default(aucell, "auc_threshold"),
              type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of the genes under the AUC (rank cutoff round(x n_genes) - 1).")
@click.option("--batch-size", default=api_default(aucell, "batch_size"), type=click.IntRange(min=1),
              help="Cells per scoring batch; reads are blocks of whole batches of about 128 MiB.")
@click.option("--seed", default=api_default(aucell, "seed"), type=int,
              help="Seed of the tie-breaking gene shuffle (as ctxcore's seed).")
@click.option("--weighted/--no-weighted", default=api_default(aucell, "weighted"),
              help="Weight genes by regulon weight (ctxcore noweights=False).")
@click.option("--binarize-auc/--no-binarize-auc", default=api_default(aucell, "binarize_auc"),
              help="Also write per-regulon on/off calls (Otsu threshold) as aucell_binary.parquet.")
@click.option("--device", default=api_default(aucell, "device"), type=click.Choice(["auto", "cpu", "cuda"]),
              help="Scoring device.")
@click.option("--chunk-size", default=None, type=click.IntRange(min=1),
              help="Cells per task when Nextflow splits this stage (one task per chunk, then one gather task); the "
                   "outputs are the same to the bit. One task (fatescope run) ignores it [default: no split].")
@click.option("--chunk", default=None, type=click.IntRange(min=0),
              help="Split task: score chunk K (0-based) of --chunk-size cells only; writes aucell_chunk.parquet and "
                   "aucell_chunk.json [default: score every cell].")
@click.option("--gather", multiple=True, type=click.Path(),
              help="Split task: the --chunk folders (repeat; any order) of the same --cells, --regulons and settings; "
                   "writes the standard outputs, checking that the chunks cover every cell once.")
def command(**kwargs) -> None:
    kwargs["layer"] = kwargs["layer"] or None
    run(**kwargs)
