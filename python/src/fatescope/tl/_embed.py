"""``fs.tl.embed``: kNN graph, Leiden clusters, UMAP, optional soft k-means and integration metrics."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ..cells.checks import check_cells
from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


def embed(adata: AnnData, *, use_rep: str = "X_latent", batch_key: str = "batch", n_neighbors: int = 15,
          resolution: float = 1.0, min_dist: float = 0.5, umap: bool = True, soft_k: int = 0, temperature: float = 1.0,
          assess: bool = False, label_key: str | None = None, labels: Sequence | np.ndarray | None = None,
          seed: int = 0) -> dict | None:
    """Neighbour graph (UMAP's fuzzy kNN, as ``scanpy.pp.neighbors``), Leiden clusters and UMAP of an
    embedding; optionally soft k-means and scib-style integration metrics.

    Parameters
    ----------
    adata
        Cells with the embedding in ``obsm[use_rep]`` (at least 3 cells); modified in place.
    use_rep
        obsm key of the embedding.
    batch_key
        obs column of the batch (batch-mixing metrics; skipped when absent).
    n_neighbors, resolution, min_dist
        Neighbours of the graph and UMAP (the cell itself counted, as scanpy), Leiden resolution, UMAP min_dist.
    umap
        Compute the UMAP.
    soft_k, temperature
        Soft k-means clusters (0: off) and the softmax temperature of their assignments.
    assess
        Compute integration metrics (returned).
    label_key
        Name of the cell labels for bio-conservation metrics: ``obs[label_key]``, unless ``labels`` are given.
    labels
        Per-cell labels in obs order (e.g. read from a truth table), used as ``label_key``.
    seed
        Seed of Leiden, UMAP and k-means.

    Returns
    -------
    With ``assess``, the metrics (batch mixing, label ASW, cLISI, ARI/NMI of the best-resolution
    clustering and of ``leiden``, scib-style totals); else ``None``. Writes ``obsp["connectivities"]``,
    ``obs["leiden"]``, ``obsm["X_umap"]``, and with ``soft_k`` ``obsm["soft_kmeans"]`` and
    ``uns["soft_kmeans_centroids"]``.

    Examples
    --------
    >>> import fatescope as fs
    >>> metrics = fs.tl.embed(adata, resolution=0.5, assess=True, label_key="cell_type")
    >>> fs.pl.umap(adata, color="leiden")
    """
    from ..cells import metrics as M
    from ..cells.embed import leiden, neighbor_graph, soft_kmeans, umap_embedding

    check_cells(adata, obsm=use_rep, min_cells=3)
    truth = None
    if label_key:
        if labels is not None:
            truth = np.asarray(labels).astype(str)
            if truth.shape != (adata.n_obs,):
                raise InputError(f"labels: {truth.shape[0]} labels for {adata.n_obs} cells; expected one per cell")
        elif label_key in adata.obs:
            truth = adata.obs[label_key].astype(str).to_numpy()
        else:
            raise InputError(f"adata: obs has no {label_key!r} and no labels were given")
    X = np.asarray(adata.obsm[use_rep], dtype=np.float32)
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
    if not assess:
        return None
    batches = adata.obs[batch_key].astype(str).to_numpy() if batch_key in adata.obs else None
    metrics = M.assess(X, batches, truth, seed=seed)
    if truth is not None:
        metrics["leiden_ari"] = M.ari(truth, adata.obs["leiden"])
        metrics["leiden_nmi"] = M.nmi(truth, adata.obs["leiden"])
    metrics.update(use_rep=use_rep, batch_key=batch_key, label_key=label_key)
    return metrics
