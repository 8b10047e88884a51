"""``fatescope embed``: kNN graph, UMAP, Leiden clusters, optional soft k-means, plots, metrics."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_cells, read_table
from ..logs import get_logger
from ..pl._cells import umap as plot_umap
from ..tl._embed import embed
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "umap_batch.png", "umap_day.png", "umap_leiden.png")
PACKAGES = ["umap-learn", "igraph", "scikit-learn", "anndata", "numpy", "matplotlib"]


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(embed, name)


def read_labels(path: str, label_key: str, cells: pd.Index) -> np.ndarray:
    """Labels for ``cells`` from a table (parquet or CSV) with a ``cell`` column (or index)."""
    table = read_table(path, f"a table of cell labels with a 'cell' column and {label_key!r}")
    if "cell" in table.columns:
        table = table.set_index("cell")
    if label_key not in table.columns:
        raise InputError(f"{path}: no column {label_key!r} (columns: {', '.join(map(str, table.columns))})")
    labels = table[label_key].reindex(cells)
    if labels.isna().all():
        raise InputError(f"{path}: none of its cells match the cells of the input (e.g. {table.index[0]!r} vs {cells[0]!r})")
    if labels.isna().any():
        log.warning("%s: %d cells have no label; they are labelled 'NA'", path, int(labels.isna().sum()))
    return labels.astype(str).fillna("NA").to_numpy()


def run(input: str, outdir: str = "embed", use_rep: str = _d("use_rep"), batch_key: str = _d("batch_key"),
        n_neighbors: int = _d("n_neighbors"), resolution: float = _d("resolution"), min_dist: float = _d("min_dist"),
        umap: bool = _d("umap"), soft_k: int = _d("soft_k"), temperature: float = _d("temperature"),
        plot_keys: str = "batch,day,leiden", assess: bool = _d("assess"), label_key: str | None = _d("label_key"),
        labels: str | None = None, seed: int = _d("seed")) -> Path:
    adata = read_cells(input, what="the cells.h5ad of the integrate stage", obsm=use_rep, min_cells=3)
    truth = None
    if label_key:
        if labels:
            truth = read_labels(labels, label_key, adata.obs_names)
        elif label_key not in adata.obs:
            raise InputError(f"{input}: obs has no {label_key!r} and no --labels file was given")
    metrics = embed(adata, use_rep=use_rep, batch_key=batch_key, n_neighbors=n_neighbors, resolution=resolution,
                    min_dist=min_dist, umap=umap, soft_k=soft_k, temperature=temperature, assess=assess,
                    label_key=label_key, labels=truth, seed=seed)
    settings = dict(input=input, use_rep=use_rep, batch_key=batch_key, n_neighbors=n_neighbors, resolution=resolution,
                    min_dist=min_dist, umap=umap, soft_k=soft_k, temperature=temperature, plot_keys=plot_keys,
                    assess=assess, label_key=label_key, labels=labels, seed=seed)
    with staged_output(outdir, "embed", settings, PACKAGES) as tmp:
        if umap:
            for key in [k.strip() for k in plot_keys.split(",") if k.strip()]:
                if key in adata.obs:
                    plot_umap(adata, color=key, seed=seed).savefig(tmp / f"umap_{key}.png")
                else:
                    log.warning("embed: obs has no %r; its UMAP plot is skipped", key)
            if label_key:
                plot_umap(adata, color=label_key, values=truth, seed=seed).savefig(tmp / f"umap_{label_key}.png")
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return Path(outdir) / OUTPUTS[0]


@stage_command("embed", help="kNN graph, UMAP and Leiden clusters on the integrated latent; optional soft k-means; "
                             "UMAP plots by batch, day and cluster; with --assess, integration metrics to metrics.json.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="cells.h5ad of the integrate stage.")
@outdir_option("embed")
@click.option("--use-rep", default=_d("use_rep"), help="obsm key of the embedding to use.")
@click.option("--batch-key", default=_d("batch_key"), help="obs column holding the batch (for plots and metrics).")
@click.option("--n-neighbors", default=_d("n_neighbors"), type=click.IntRange(min=2),
              help="Neighbours of the kNN graph and UMAP.")
@click.option("--resolution", default=_d("resolution"), type=click.FloatRange(min=0, min_open=True),
              help="Leiden resolution.")
@click.option("--min-dist", default=_d("min_dist"), type=click.FloatRange(min=0), help="UMAP min_dist.")
@click.option("--umap/--no-umap", default=_d("umap"), help="Compute the UMAP (and its plots).")
@click.option("--soft-k", default=_d("soft_k"), type=click.IntRange(min=0),
              help="Soft k-means clusters (0 = off) -> obsm['soft_kmeans'].")
@click.option("--temperature", default=_d("temperature"), type=click.FloatRange(min=0, min_open=True),
              help="Soft k-means temperature.")
@click.option("--plot-keys", default="batch,day,leiden", help="Comma-separated obs columns to colour UMAP plots by.")
@click.option("--assess/--no-assess", default=_d("assess"), help="Write integration metrics to metrics.json.")
@click.option("--label-key", default=_d("label_key"),
              help="Column with cell labels for bio-conservation metrics [default: none].")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Table (parquet/CSV, column 'cell') holding --label-key, when it is not in obs [default: none].")
@click.option("--seed", default=_d("seed"), type=int, help="Random seed (graph, Leiden, UMAP, k-means).")
def command(**kwargs) -> None:
    run(**kwargs)
