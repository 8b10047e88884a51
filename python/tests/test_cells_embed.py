"""Embedding: neighbour graph, Leiden, soft k-means, UMAP plots and --assess metrics (CLI round trip)."""
from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from click.testing import CliRunner

from fatescope.cells.embed import leiden, neighbor_graph, soft_kmeans
from fatescope.cells.metrics import ari
from fatescope.cli import main


def blobs(rng, n_per=60, k=3, d=6):
    centres = rng.normal(scale=6, size=(k, d))
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + rng.normal(size=(k * n_per, d)), labels.astype(str)


def test_graph_is_symmetric_fuzzy_knn(rng):
    X, _ = blobs(rng)
    G = neighbor_graph(X, n_neighbors=10)
    assert abs(G - G.T).max() < 1e-12 and G.max() <= 1 + 1e-12 and G.diagonal().sum() == 0
    assert (np.diff(sp.csr_matrix(G).indptr) >= 9).all()  # each cell keeps at least its k - 1 neighbours


def test_leiden_and_soft_kmeans_recover_blobs(rng):
    X, labels = blobs(rng)
    cl = leiden(neighbor_graph(X, 15), resolution=0.5, seed=0)
    assert ari(labels, cl) > 0.95
    assert (cl == leiden(neighbor_graph(X, 15), resolution=0.5, seed=0)).all()  # seeded
    probs, cent = soft_kmeans(X, 3, temperature=0.5, seed=0)
    assert probs.shape == (180, 3) and np.allclose(probs.sum(1), 1)
    assert ari(labels, probs.argmax(1).astype(str)) > 0.95


def test_cli_round_trip_assess_and_bad_input(rng, tmp_path):
    X, labels = blobs(rng)
    n = len(X)
    obs = pd.DataFrame({"batch": np.tile(["b1", "b2"], n // 2), "day": np.repeat(["d0", "d1"], n // 2)},
                       index=[f"c{i}" for i in range(n)])
    a = ad.AnnData(sp.csr_matrix((n, 5), dtype=np.float32), obs=obs)
    a.obsm["X_latent"] = X.astype(np.float32)
    a.write_h5ad(tmp_path / "cells.h5ad")
    pd.DataFrame({"cell": obs.index, "true_fate": labels}).to_parquet(tmp_path / "truth.parquet")
    res = CliRunner().invoke(main, ["embed", "--input", str(tmp_path / "cells.h5ad"), "--outdir", str(tmp_path / "emb"),
                                    "--assess", "--label-key", "true_fate", "--labels", str(tmp_path / "truth.parquet"),
                                    "--soft-k", "3", "--resolution", "0.5"])
    assert res.exit_code == 0, res.output
    out = ad.read_h5ad(tmp_path / "emb" / "cells.h5ad")
    assert out.obsm["X_umap"].shape == (n, 2) and "leiden" in out.obs and out.obsm["soft_kmeans"].shape == (n, 3)
    for f in ("umap_batch.png", "umap_day.png", "umap_leiden.png", "umap_true_fate.png", "metrics.json", "versions.yml"):
        assert (tmp_path / "emb" / f).stat().st_size > 0, f
    m = json.loads((tmp_path / "emb" / "metrics.json").read_text())
    assert m["ilisi"] > 0.8 and m["ari"] > 0.95 and m["knn_purity"] > 0.99 and m["total"] > 0.8
    res = CliRunner().invoke(main, ["embed", "--input", str(tmp_path / "cells.h5ad"), "--outdir", str(tmp_path / "bad"),
                                    "--use-rep", "X_scvi"])
    assert res.exit_code == 1 and "'X_scvi'" in res.output and not (tmp_path / "bad").exists()
