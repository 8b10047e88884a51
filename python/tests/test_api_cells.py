"""The cell stages' Python API (fs.pp.qc, fs.pp.ambient, fs.tl.integrate, IntegrationModel, fs.tl.embed,
fs.pl.umap): the same numbers as the CLI on the same input and seed (bitwise), planted QC truth,
projection, save/load, and bad arguments."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

import fatescope as fs
from fatescope.cli import main
from fatescope.errors import InputError
from fatescope.io.readers import read_cells

SIM = ["--seed", "3", "--n-cells", "300", "--n-genes", "200", "--n-days", "2", "--n-replicates", "2",
       "--batch-effect-sd", "0.8", "--n-tfs", "3", "--targets-per-tf", "10", "--n-perturbed-genes", "6", "--n-motifs", "20",
       "--kmax", "4", "--moi", "1.0"]
TINY = dict(n_top_features=100, max_iteration=40, seed=1, hidden=32)  # a few seconds; the default is 30,000 iterations
TINY_CLI = ["--n-top-features", "100", "--max-iteration", "40", "--seed", "1", "--hidden", "32", "--threads", "1"]


def cli(*args) -> None:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI's --threads 1: the same kernels, the same bits
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """simulate (2 batches with a strong batch effect) -> qc, through the CLI."""
    root = tmp_path_factory.mktemp("api-cells")
    cli("simulate", "--outdir", root / "simulate", *SIM)
    cli("qc", "--input", root / "simulate" / "samplesheet.csv", "--guide-map", root / "simulate" / "guide_map.csv",
        "--outdir", root / "qc", "--min-features", 170)
    return root


def same_arrays(a, b) -> bool:
    a, b = (x.toarray() if sp.issparse(x) else np.asarray(x) for x in (a, b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_qc_equals_cli(run):
    from fatescope._read import load_samples
    from fatescope.io.annotations import read_guide_map
    from fatescope.io.samplesheet import validate_samplesheet

    sheet = validate_samplesheet(str(run / "simulate" / "samplesheet.csv")).table
    adata, _ = load_samples(sheet, read_guide_map(str(run / "simulate" / "guide_map.csv")), "inner")
    n_before = adata.n_obs
    assert fs.pp.qc(adata, min_features=170) is None
    ref = ad.read_h5ad(run / "qc" / "cells.h5ad")
    assert n_before > adata.n_obs == ref.n_obs  # the filter removed cells
    assert list(adata.obs_names) == list(ref.obs_names) and list(adata.var_names) == list(ref.var_names)
    for a, b in ((adata.X, ref.X), (adata.layers["counts"], ref.layers["counts"]), (adata.obsm["guides"], ref.obsm["guides"])):
        assert same_arrays(a, b)
    for col in ("n_genes_by_counts", "total_counts", "pct_counts_mt", "n_guides"):
        assert same_arrays(adata.obs[col], ref.obs[col]), col
    pd.testing.assert_frame_equal(adata.var, ref.var)


def test_qc_planted_truth():
    """Cell c2 has 2 genes (below 3), gene g4 is in one kept cell only (below 2); c0's mito share is 4/10."""
    X = np.array([[3, 2, 1, 4, 0], [1, 1, 1, 0, 0], [0, 0, 5, 5, 0], [1, 2, 0, 3, 1]], dtype=np.float32)
    adata = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame({"sample": ["a", "a", "b", "b"]}, index=[f"c{i}" for i in range(4)]),
                       var=pd.DataFrame(index=["g0", "g1", "g2", "MT-CO1", "g4"]))
    fs.pp.qc(adata, min_features=3, min_cells=2)
    assert list(adata.obs_names) == ["c0", "c1", "c3"] and list(adata.var_names) == ["g0", "g1", "g2", "MT-CO1"]
    assert adata.obs.loc["c0", "pct_counts_mt"] == pytest.approx(40.0)
    assert adata.obs["n_genes_by_counts"].tolist() == [4, 3, 3]  # counted on the kept genes
    assert same_arrays(adata.layers["counts"], adata.X)
    lost = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame({"sample": ["a", "b", "b", "a"]}, index=[f"c{i}" for i in range(4)]))
    with pytest.raises(InputError, match="sample\\(s\\) b "):
        fs.pp.qc(lost, min_features=4, min_cells=1)  # b's cells have 3 and 2 genes
    with pytest.raises(InputError, match="max_pct_mito"):
        fs.pp.qc(adata, max_pct_mito=120)


def test_ambient_equals_cli(run, tmp_path):
    cli("ambient", "--input", run / "qc" / "cells.h5ad", "--outdir", tmp_path / "amb", "--epochs", 3)
    ref = ad.read_h5ad(tmp_path / "amb" / "cells.h5ad")
    adata = ad.read_h5ad(run / "qc" / "cells.h5ad")
    summary = fs.pp.ambient(adata, epochs=3)
    assert same_arrays(adata.layers["decontaminated"], ref.layers["decontaminated"])
    assert same_arrays(adata.obs["ambient_fraction"], ref.obs["ambient_fraction"])
    assert summary == json.loads((tmp_path / "amb" / "ambient.json").read_text())
    assert 0 < summary["fraction_of_counts_removed"] < 0.5
    del adata.layers["counts"]
    with pytest.raises(InputError, match="'counts'"):
        fs.pp.ambient(adata, epochs=1)


@pytest.mark.parametrize("method,harmony_on,keys", [("scalex", "latent", ["X_latent"]),
                                                    ("harmony", "latent", ["X_latent", "X_scalex", "X_impute"]),
                                                    ("harmony", "pca", ["X_latent", "X_pca"])])
def test_integrate_equals_cli(run, tmp_path, method, harmony_on, keys):
    impute = ["--impute-batch", "batch1"] if "X_impute" in keys else []
    cli("integrate", "--input", run / "qc" / "cells.h5ad", "--outdir", tmp_path / "int", "--method", method,
        "--harmony-on", harmony_on, "--n-pcs", 10, *impute, *TINY_CLI)
    ref = ad.read_h5ad(tmp_path / "int" / "cells.h5ad")
    adata = ad.read_h5ad(run / "qc" / "cells.h5ad")
    model = fs.tl.integrate(adata, method=method, harmony_on=harmony_on, n_pcs=10, impute_batch=impute[1] if impute else None,
                            **TINY)
    assert set(adata.obsm) - {"guides", "fate_probs"} == set(keys)
    for key in keys:
        assert same_arrays(adata.obsm[key], ref.obsm[key]), key
    info = json.loads((tmp_path / "int" / "integrate.json").read_text())
    assert info == json.loads(json.dumps(model.info, default=float))
    if harmony_on == "pca":
        assert model.vae is None and not (tmp_path / "int" / "checkpoint").exists()
        with pytest.raises(InputError, match="trained no model"):
            model.project(adata)
    else:
        assert info["iterations"] >= 40 and info["loss_history"][-1] < info["loss_history"][0]
        model.save(tmp_path / "api_checkpoint")
        saved = torch.load(tmp_path / "api_checkpoint" / "model.pt", weights_only=True)
        theirs = torch.load(tmp_path / "int" / "checkpoint" / "model.pt", weights_only=True)
        assert saved["genes"] == theirs["genes"] and saved["domains"] == theirs["domains"] == ["batch1", "batch2"]
        assert all(torch.equal(saved["state_dict"][k], v) for k, v in theirs["state_dict"].items())


def test_projection_equals_cli(run, tmp_path):
    """Train on batch1, map batch2 in: fs.tl.integrate + model.project == integrate --projection, and the
    model saved after projecting == the CLI's; a loaded model projects the same bits."""
    cells = ad.read_h5ad(run / "qc" / "cells.h5ad")
    cells[cells.obs["batch"] == "batch1"].copy().write_h5ad(tmp_path / "ref.h5ad")
    cells[cells.obs["batch"] == "batch2"].copy().write_h5ad(tmp_path / "query.h5ad")
    cli("integrate", "--input", tmp_path / "ref.h5ad", "--outdir", tmp_path / "int", *TINY_CLI)
    cli("integrate", "--input", tmp_path / "query.h5ad", "--outdir", tmp_path / "rep", "--projection", tmp_path / "int",
        "--repeat", "--impute-batch", "batch2", "--threads", 1)
    cli("integrate", "--input", tmp_path / "query.h5ad", "--outdir", tmp_path / "both", "--projection", tmp_path / "int",
        "--threads", 1)
    rep, both = ad.read_h5ad(tmp_path / "rep" / "cells.h5ad"), ad.read_h5ad(tmp_path / "both" / "cells.h5ad")

    model = fs.tl.integrate(ad.read_h5ad(tmp_path / "ref.h5ad"), **TINY)
    query = ad.read_h5ad(tmp_path / "query.h5ad")
    latent = model.project(query, impute_batch="batch2")
    assert same_arrays(latent, rep.obsm["X_latent"]) and same_arrays(query.obsm["X_latent"], latent)
    assert same_arrays(query.obsm["X_impute"], rep.obsm["X_impute"])
    assert model.domains == ["batch1", "batch2"] and model.info["projected_batches"] == ["batch2"]
    model.save(tmp_path / "api_checkpoint")
    saved = torch.load(tmp_path / "api_checkpoint" / "model.pt", weights_only=True)
    theirs = torch.load(tmp_path / "rep" / "checkpoint" / "model.pt", weights_only=True)
    assert saved.keys() == theirs.keys() and saved["domains"] == theirs["domains"]
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in theirs["state_dict"].items())

    loaded = fs.tl.IntegrationModel.load(tmp_path / "int" / "checkpoint", device="cpu")
    assert loaded.domains == ["batch1"] and loaded.genes == model.genes
    again = ad.read_h5ad(tmp_path / "query.h5ad")
    assert same_arrays(loaded.project(again), rep.obsm["X_latent"])

    from fatescope.tl._integrate import with_reference

    joined = with_reference(ad.read_h5ad(tmp_path / "int" / "cells.h5ad"), again)
    assert same_arrays(joined.obsm["X_latent"], both.obsm["X_latent"])
    assert joined.obs["projection"].tolist() == both.obs["projection"].tolist()
    with pytest.raises(InputError, match="impute_batch='batch9'"):
        loaded.project(again, impute_batch="batch9")
    with pytest.raises(InputError, match="not a checkpoint|no SCALEX checkpoint"):
        fs.tl.IntegrationModel.load(tmp_path)


def blobs(n_per=60, k=3, d=6, seed=7):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6, size=(k, d))
    labels = np.repeat(np.arange(k), n_per)
    return (centres[labels] + rng.normal(size=(k * n_per, d))).astype(np.float32), labels.astype(str)


def test_embed_and_umap_plot_equal_cli(tmp_path):
    X, labels = blobs()
    n = len(X)
    obs = pd.DataFrame({"batch": np.tile(["b1", "b2"], n // 2), "day": np.repeat(["d0", "d1"], n // 2)},
                       index=[f"c{i}" for i in range(n)])
    a = ad.AnnData(sp.csr_matrix((n, 5), dtype=np.float32), obs=obs)
    a.obsm["X_latent"] = X
    a.write_h5ad(tmp_path / "cells.h5ad")
    pd.DataFrame({"cell": obs.index, "true_fate": labels}).to_parquet(tmp_path / "truth.parquet")
    cli("embed", "--input", tmp_path / "cells.h5ad", "--outdir", tmp_path / "emb", "--assess", "--label-key", "true_fate",
        "--labels", tmp_path / "truth.parquet", "--soft-k", 3, "--resolution", 0.5)
    ref = ad.read_h5ad(tmp_path / "emb" / "cells.h5ad")
    adata = ad.read_h5ad(tmp_path / "cells.h5ad")
    metrics = fs.tl.embed(adata, assess=True, label_key="true_fate", labels=labels, soft_k=3, resolution=0.5)
    assert metrics == json.loads((tmp_path / "emb" / "metrics.json").read_text())
    assert metrics["leiden_ari"] > 0.95  # the three planted blobs are the three clusters
    assert adata.obs["leiden"].tolist() == ref.obs["leiden"].tolist()
    for key in ("X_umap", "soft_kmeans"):
        assert same_arrays(adata.obsm[key], ref.obsm[key]), key
    assert same_arrays(adata.obsp["connectivities"], ref.obsp["connectivities"])
    for color, values in (("batch", None), ("true_fate", labels)):
        fig = fs.pl.umap(adata, color=color, values=values)
        fig.savefig(tmp_path / f"api_{color}.png")
        assert (tmp_path / f"api_{color}.png").read_bytes() == (tmp_path / "emb" / f"umap_{color}.png").read_bytes()
    assert fs.tl.embed(adata, umap=False) is None
    with pytest.raises(InputError, match="'X_scvi'"):
        fs.tl.embed(adata, use_rep="X_scvi")
    with pytest.raises(InputError, match="'cell_type'"):
        fs.tl.embed(adata, label_key="cell_type")
    with pytest.raises(InputError, match="'plate'"):
        fs.pl.umap(adata, color="plate")


def test_read_cells_names_file_and_key(tmp_path):
    a = ad.AnnData(sp.csr_matrix(np.ones((3, 2), dtype=np.float32)), obs=pd.DataFrame({"batch": list("aab")}, index=list("xyz")))
    a.layers["counts"] = a.X.copy()
    path = tmp_path / "cells.h5ad"
    a.write_h5ad(path)
    assert read_cells(path, what="cells", batch_key="batch", layer="auto", min_cells=2).n_obs == 3
    for kwargs, text in ((dict(batch_key="plate"), "obs has no column 'plate'"), (dict(layer="spliced"), "'spliced'"),
                         (dict(obsm="X_latent"), "'X_latent'"), (dict(min_cells=5), "3 cells x 2 genes")):
        with pytest.raises(InputError, match=text) as err:
            read_cells(path, what="cells", **kwargs)
        assert str(path) in str(err.value)


def test_api_defaults_are_the_cli_defaults():
    """One source of defaults: each click option with an API keyword of the same name has its default."""
    from fatescope.cli import command_for

    pairs = [("qc", fs.pp.qc), ("ambient", fs.pp.ambient), ("integrate", fs.tl.integrate), ("embed", fs.tl.embed)]
    for stage, function in pairs:
        api = inspect.signature(function).parameters
        shared = [p for p in command_for(stage).params if p.name in api]
        assert len(shared) >= 4, stage
        for p in shared:
            assert p.default == api[p.name].default, (stage, p.name)


def test_import_stays_light():
    code = ("import sys, fatescope as fs; fs.pp.qc; fs.pp.ambient; fs.tl.integrate; fs.tl.IntegrationModel; fs.tl.embed; "
            "fs.pl.umap; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
