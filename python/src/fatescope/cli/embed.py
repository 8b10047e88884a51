"""``fatescope embed``: kNN graph, UMAP, Leiden clusters, optional soft k-means, plots, metrics."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..cells.embed import leiden, neighbor_graph, soft_kmeans, umap_embedding
from ..cells import metrics as M
from ..cells.plots import umap_plot
from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_anndata, read_table
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "umap_batch.png", "umap_day.png", "umap_leiden.png")
PACKAGES = ["umap-learn", "igraph", "scikit-learn", "anndata", "numpy", "matplotlib"]


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


def run(input: str, outdir: str = "embed", use_rep: str = "X_latent", batch_key: str = "batch", n_neighbors: int = 15,
        resolution: float = 1.0, min_dist: float = 0.5, umap: bool = True, soft_k: int = 0, temperature: float = 1.0,
        plot_keys: str = "batch,day,leiden", assess: bool = False, label_key: str | None = None,
        labels: str | None = None, seed: int = 0) -> Path:
    adata = read_anndata(input, "the cells.h5ad of the integrate stage")
    if use_rep not in adata.obsm:
        raise InputError(f"{input}: obsm has no {use_rep!r} (obsm: {', '.join(adata.obsm) or 'none'}); run integrate first")
    X = np.asarray(adata.obsm[use_rep], dtype=np.float32)
    if adata.n_obs < 3:
        raise InputError(f"{input}: {adata.n_obs} cells; embedding needs at least 3")
    graph = neighbor_graph(X, n_neighbors=n_neighbors, seed=seed)
    adata.obsp["connectivities"] = graph
    adata.obs["leiden"] = pd.Categorical(leiden(graph, resolution=resolution, seed=seed))
    log.info("embed: %d Leiden clusters at resolution %s", adata.obs["leiden"].nunique(), resolution)
    if umap:
        adata.obsm["X_umap"] = umap_embedding(X, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    if soft_k:
        probs, cent = soft_kmeans(X, soft_k, temperature=temperature, seed=seed)
        adata.obsm["soft_kmeans"] = probs
        adata.uns["soft_kmeans_centroids"] = cent
    truth = None
    if label_key:
        truth = read_labels(labels, label_key, adata.obs_names) if labels else (
            adata.obs[label_key].astype(str).to_numpy() if label_key in adata.obs else None)
        if truth is None:
            raise InputError(f"{input}: obs has no {label_key!r} and no --labels file was given")
    metrics = None
    if assess:
        batches = adata.obs[batch_key].astype(str).to_numpy() if batch_key in adata.obs else None
        metrics = M.assess(X, batches, truth, seed=seed)
        if truth is not None:
            metrics["leiden_ari"] = M.ari(truth, adata.obs["leiden"])
            metrics["leiden_nmi"] = M.nmi(truth, adata.obs["leiden"])
        metrics.update(use_rep=use_rep, batch_key=batch_key, label_key=label_key)
    settings = dict(input=input, use_rep=use_rep, batch_key=batch_key, n_neighbors=n_neighbors, resolution=resolution,
                    min_dist=min_dist, umap=umap, soft_k=soft_k, temperature=temperature, plot_keys=plot_keys,
                    assess=assess, label_key=label_key, labels=labels, seed=seed)
    with staged_output(outdir, "embed", settings, PACKAGES) as tmp:
        if umap:
            for key in [k.strip() for k in plot_keys.split(",") if k.strip()]:
                if key in adata.obs:
                    umap_plot(adata.obsm["X_umap"], adata.obs[key], key, tmp / f"umap_{key}.png", seed=seed)
                else:
                    log.warning("embed: obs has no %r; its UMAP plot is skipped", key)
            if truth is not None:
                umap_plot(adata.obsm["X_umap"], truth, label_key, tmp / f"umap_{label_key}.png", seed=seed)
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return Path(outdir) / OUTPUTS[0]


@stage_command("embed", help="kNN graph, UMAP and Leiden clusters on the integrated latent; optional soft k-means; "
                             "UMAP plots by batch, day and cluster; with --assess, integration metrics to metrics.json.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="cells.h5ad of the integrate stage.")
@outdir_option("embed")
@click.option("--use-rep", default="X_latent", help="obsm key of the embedding to use.")
@click.option("--batch-key", default="batch", help="obs column holding the batch (for plots and metrics).")
@click.option("--n-neighbors", default=15, type=click.IntRange(min=2), help="Neighbours of the kNN graph and UMAP.")
@click.option("--resolution", default=1.0, type=click.FloatRange(min=0, min_open=True), help="Leiden resolution.")
@click.option("--min-dist", default=0.5, type=click.FloatRange(min=0), help="UMAP min_dist.")
@click.option("--umap/--no-umap", default=True, help="Compute the UMAP (and its plots).")
@click.option("--soft-k", default=0, type=click.IntRange(min=0), help="Soft k-means clusters (0 = off) -> obsm['soft_kmeans'].")
@click.option("--temperature", default=1.0, type=click.FloatRange(min=0, min_open=True), help="Soft k-means temperature.")
@click.option("--plot-keys", default="batch,day,leiden", help="Comma-separated obs columns to colour UMAP plots by.")
@click.option("--assess/--no-assess", default=False, help="Write integration metrics to metrics.json.")
@click.option("--label-key", default=None, help="Column with cell labels for bio-conservation metrics [default: none].")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Table (parquet/CSV, column 'cell') holding --label-key, when it is not in obs [default: none].")
@click.option("--seed", default=0, type=int, help="Random seed (graph, Leiden, UMAP, k-means).")
def command(**kwargs) -> None:
    run(**kwargs)
