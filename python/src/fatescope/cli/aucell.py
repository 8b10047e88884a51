"""``fatescope aucell``: regulon activity per cell (ctxcore AUCell), streamed over cells from a backed h5ad.

Writes ``aucell.parquet`` (cells x regulons) and a copy of the input AnnData with
``obsm["X_aucell"]`` and ``uns["aucell_regulons"]`` added (the copy is made file to file, then the
two keys are written with h5py, so memory never holds the whole matrix).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import anndata as ad
import click
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_anndata, read_table
from ..logs import get_logger, progress
from ..regulons.aucell import auc_cutoff, aucell_batch, aucell_batch_torch, binarize, build_signatures, shuffle_positions
from ..regulons.stream import block_rows, iter_blocks
from .common import outdir_option, stage_command
from ..device import resolve_device

log = get_logger(__name__)
OUTPUTS = ("aucell.parquet", "cells.h5ad", "aucell_regulons.csv", "aucell_report.json")


def scoring_genes(regulons: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """Per regulon its top ``k`` targets by weight plus the TF (regulon, gene, weight)."""
    missing = {"regulon", "tf", "target", "weight"} - set(regulons.columns)
    if missing:
        raise InputError(f"regulon table lacks columns {sorted(missing)} (expected regulon, tf, target, weight)")
    r = regulons.sort_values(["regulon", "weight", "target"], ascending=[True, False, True], kind="stable")
    r = r[r["target"] != r["tf"]]
    if k is not None:
        r = r.groupby("regulon", sort=False).head(k)
    tf_rows = regulons.drop_duplicates("regulon")[["regulon", "tf"]].assign(target=lambda d: d["tf"], weight=1.0)
    out = pd.concat([r[["regulon", "tf", "target", "weight"]], tf_rows], ignore_index=True)
    return out.rename(columns={"target": "gene"}).sort_values(["regulon"], kind="stable").reset_index(drop=True)


def run(cells: str, regulons: str, outdir: str = "aucell", layer: str | None = None, k: int | None = 50,
        auc_threshold: float = 0.05, batch_size: int = 32, seed: int = 0, weighted: bool = False,
        binarize_auc: bool = False, device: str = "auto") -> Path:
    table = read_table(regulons, "the prune stage's regulons.parquet")
    try:
        genes_table = scoring_genes(table, k)
    except InputError as exc:
        raise InputError(f"{regulons}: {exc}") from None
    adata = read_anndata(cells, "the qc stage's cells.h5ad", backed="r")
    if layer and layer not in adata.layers:
        raise InputError(f"{cells}: layer {layer!r} not found (layers: {sorted(adata.layers)})")
    matrix = adata.layers[layer] if layer else adata.X
    sigs = build_signatures(genes_table, adata.var_names, weighted=weighted)
    if not len(sigs.names):
        raise InputError(f"{regulons}: no regulons")
    cutoff = auc_cutoff(auc_threshold, adata.n_vars)
    perm, pos = shuffle_positions(adata.n_vars, seed)
    dev = str(resolve_device(device))
    auc = np.empty((adata.n_obs, len(sigs.names)), dtype=np.float64, order="F")  # columns go to Parquet zero-copy
    rows = block_rows(adata.n_vars, batch_size)
    t0 = time.perf_counter()
    for start, block in progress(iter_blocks(matrix, adata.n_obs, rows), desc="aucell", total=-(-adata.n_obs // rows)):
        for b in range(0, len(block), rows if dev == "cpu" else batch_size * 64):
            part = block[b:b + (rows if dev == "cpu" else batch_size * 64)]
            out = aucell_batch(part, sigs, perm, pos, cutoff) if dev == "cpu" else \
                aucell_batch_torch(part, sigs, perm, cutoff, device=dev)
            auc[start + b:start + b + len(part)] = out
    elapsed = time.perf_counter() - t0
    obs_names = adata.obs_names.to_numpy(str)
    adata.file.close()
    report = {"n_cells": int(len(obs_names)), "n_genes": int(len(pos)), "n_regulons": len(sigs.names),
              "rank_cutoff": cutoff, "seconds": round(elapsed, 3), "device": dev,
              "regulons_scored_zero_80pct_rule": [n for n, d in zip(sigs.names, sigs.max_auc_denom) if d == 0]}
    settings = dict(cells=cells, regulons=regulons, layer=layer, k=k, auc_threshold=auc_threshold, batch_size=batch_size,
                    seed=seed, weighted=weighted, binarize_auc=binarize_auc, device=dev)
    with staged_output(outdir, "aucell", settings, ["numba", "numpy", "pandas", "anndata", "h5py"]) as tmp:
        columns = {"cell": pa.array(obs_names), **{n: pa.array(auc[:, k]) for k, n in enumerate(sigs.names)}}
        pq.write_table(pa.table(columns), tmp / OUTPUTS[0])
        del columns
        shutil.copyfile(cells, tmp / OUTPUTS[1])
        with h5py.File(tmp / OUTPUTS[1], "r+") as f:
            for key in ("obsm/X_aucell", "uns/aucell_regulons"):
                if key in f:
                    del f[key]
            write_elem = getattr(getattr(ad, "io", None), "write_elem", None) or ad.experimental.write_elem
            write_elem(f, "obsm/X_aucell", auc.astype(np.float32))
            write_elem(f, "uns/aucell_regulons", np.asarray(sigs.names, dtype=object))
        info = pd.DataFrame({"regulon": sigs.names, "n_genes": sigs.n_genes, "n_genes_in_data": sigs.n_present})
        if binarize_auc:
            thresholds, binary = binarize(auc)
            info["threshold"] = thresholds
            bframe = pd.DataFrame(binary, columns=sigs.names)
            bframe.insert(0, "cell", obs_names)
            bframe.to_parquet(tmp / "aucell_binary.parquet", index=False)
        info.to_csv(tmp / OUTPUTS[2], index=False)
        (tmp / OUTPUTS[3]).write_text(json.dumps(report, indent=1))
    log.info("aucell: %d cells x %d regulons in %.2f s written to %s", len(obs_names), len(sigs.names), elapsed, outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("aucell", help="Score regulon activity per cell with AUCell (ctxcore semantics: descending ranks, "
                              "seeded tie-breaking, AUC over the top 5% of genes), streaming cells from disk.")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="AnnData to score (qc/cells.h5ad).")
@click.option("--regulons", required=True, type=click.Path(dir_okay=False), help="prune/regulons.parquet.")
@outdir_option("aucell")
@click.option("--layer", default="", help="Layer to rank ('' = X). Ranks within a cell do not change with library "
                                          "size normalisation or log1p, so raw counts are fine.")
@click.option("--k", default=50, type=click.IntRange(min=1), help="Top-k targets per regulon scored (plus the TF).")
@click.option("--auc-threshold", default=0.05, type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of the genes under the AUC (rank cutoff round(x n_genes) - 1).")
@click.option("--batch-size", default=32, type=click.IntRange(min=1),
              help="Cells per scoring batch; reads are blocks of whole batches of about 128 MiB.")
@click.option("--seed", default=0, type=int, help="Seed of the tie-breaking gene shuffle (as ctxcore's seed).")
@click.option("--weighted/--no-weighted", default=False, help="Weight genes by regulon weight (ctxcore noweights=False).")
@click.option("--binarize-auc/--no-binarize-auc", default=False,
              help="Also write per-regulon on/off calls (Otsu threshold) as aucell_binary.parquet.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Scoring device.")
def command(**kwargs) -> None:
    kwargs["layer"] = kwargs["layer"] or None
    run(**kwargs)
