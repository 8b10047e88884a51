"""Integration on a small simulation: batches mix, planted fate branches stay apart; projection;
Harmony; chunked transform; checkpoint; CLI round trip and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from fatescope.cells import metrics as M
from fatescope.cells.harmony import harmonize
from fatescope.cells.integrate import ScalexParams, prepare, train, transform
from fatescope.cells.preprocess import highly_variable_genes, log_normalize, pca
from fatescope.cli import main

ITER = 700  # enough for a clear effect on 1,000 cells; the full default is 30,000 with early stopping


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """fatescope simulate (2 days x 2 replicates = 2 batches, strong batch effect) -> qc."""
    from fatescope.cli.qc import run as qc_run
    from fatescope.cli.simulate import run as sim_run

    root = tmp_path_factory.mktemp("sim")
    sheet = sim_run(outdir=str(root / "simulate"), seed=3, n_cells=1000, n_genes=600, n_days=2, n_replicates=2,
                    batch_effect_sd=0.8, n_tfs=4, targets_per_tf=10, n_perturbed_genes=8, n_motifs=20, kmax=6, moi=2.0)
    qc = qc_run(input=str(sheet), guide_map=str(root / "simulate" / "guide_map.csv"), outdir=str(root / "qc"), min_features=200)
    truth = pd.read_parquet(root / "simulate" / "truth" / "cells.parquet").set_index("cell")
    return root, qc, truth


def _scores(X, adata, truth):
    """Batch mixing over all cells; fate separation among late cells (early ones are progenitors)."""
    late = truth.loc[adata.obs_names, "pseudotime"].to_numpy() > 0.6
    fate = truth.loc[adata.obs_names, "true_fate"].astype(str).to_numpy()
    nb = M.knn(X, 90)
    batches = adata.obs["batch"].astype(str).to_numpy()
    return {"ilisi": M.ilisi(X, batches, neighbors=nb), "mixing": M.batch_entropy_mixing(batches, nb),
            "fate_purity": M.knn_purity(fate[late], M.knn(X[late], 15)), "fate_asw": M.label_asw(X[late], fate[late])}


def _uncorrected(adata):
    logX = log_normalize(adata.layers["counts"])
    hv = highly_variable_genes(logX, adata.obs["batch"].to_numpy(), 400)
    X = logX[:, hv].toarray()
    return pca((X - X.mean(0)) / np.maximum(X.std(0), 1e-8), 20)


@pytest.fixture(scope="module")
def trained(sim):
    root, qc, truth = sim
    adata = ad.read_h5ad(qc)
    params = ScalexParams(n_top_features=400, max_iteration=ITER, seed=1)
    data = prepare(adata.layers["counts"], adata.var_names, adata.obs["batch"].to_numpy(), params)
    model, info = train(data, sorted(np.unique(data.batches)), params, torch.device("cpu"))
    return adata, data, model, info, params


def test_scalex_mixes_batches_and_keeps_fates_apart(sim, trained):
    _, _, truth = sim
    adata, data, model, info, params = trained
    base = _scores(_uncorrected(adata), adata, truth)
    latent = transform(model, data, params, torch.device("cpu"))
    ours = _scores(latent, adata, truth)
    assert latent.shape == (adata.n_obs, 10) and np.isfinite(latent).all()
    assert base["ilisi"] < 0.3, base  # the planted batch effect separates batches before integration
    assert ours["ilisi"] > 0.6 and ours["ilisi"] > base["ilisi"] + 0.3, (base, ours)
    assert ours["mixing"] > 0.8, ours
    assert ours["fate_purity"] > 0.8, ours  # late cells keep their planted branch
    assert info["loss_history"][-1] < info["loss_history"][0]


def test_kl_weight_trades_reconstruction_for_a_tighter_posterior(trained):
    """A heavier KL term must give a smaller KL and a worse reconstruction (same data, seed, steps)."""
    _, data, _, _, params = trained
    domains = sorted(np.unique(data.batches))
    x = torch.from_numpy(data.X.toarray())
    y = torch.from_numpy(pd.Categorical(data.batches, categories=domains).codes.astype(np.int64))
    terms = {}
    for beta in (0.25, 2.0):
        p = ScalexParams(n_top_features=400, max_iteration=300, seed=1, beta=beta)
        model, _ = train(data, domains, p, torch.device("cpu"))
        model.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            _, recon, kl = model.loss(x, y, beta)
        terms[beta] = (float(recon), float(kl))
    assert terms[2.0][1] < 0.8 * terms[0.25][1]
    assert terms[2.0][0] > terms[0.25][0]


def test_transform_is_chunk_invariant(trained):
    adata, data, model, info, params = trained
    a = transform(model, data, params, torch.device("cpu"))
    b = transform(model, data, ScalexParams(**{**params.__dict__, "chunk_size": 97}), torch.device("cpu"))
    assert np.allclose(a, b, atol=1e-4)


def test_harmony_mixes_batches_keeps_groups(rng):
    """Three cell groups in two batches with a batch shift (the simulation's gene-wise batch effect
    separates batches completely in PCA, where Harmony, like harmonypy, cannot mix them)."""
    centres = rng.normal(scale=4, size=(3, 10))
    groups = np.repeat(np.arange(3), 200)
    batches = np.tile(["b1", "b2"], 300)
    Z = centres[groups] + rng.normal(size=(600, 10)) + np.where(batches == "b2", 5.0, 0.0)[:, None] * np.eye(10)[0]
    H = harmonize(Z, batches, seed=0)
    nb0, nb1 = M.knn(Z, 90), M.knn(H, 90)
    assert M.ilisi(Z, batches, neighbors=nb0) < 0.2
    assert M.ilisi(H, batches, neighbors=nb1) > 0.7
    assert M.knn_purity(groups, M.knn(H, 15)) > 0.99
    assert np.allclose(H, harmonize(Z, batches, seed=0))  # seeded


def test_harmony_single_batch_unchanged(rng):
    Z = rng.normal(size=(50, 4))
    assert np.allclose(harmonize(Z, ["a"] * 50), Z, atol=1e-6)


def test_cli_round_trip_projection_and_errors(sim, tmp_path):
    root, qc, truth = sim
    adata = ad.read_h5ad(qc)
    ref = adata[adata.obs["batch"] == "batch1"].copy()
    query = adata[adata.obs["batch"] == "batch2"].copy()
    ref.write_h5ad(tmp_path / "ref.h5ad")
    query.write_h5ad(tmp_path / "query.h5ad")
    runner = CliRunner()
    common = ["--n-top-features", "400", "--max-iteration", "300", "--seed", "1", "--threads", "1", "--kl-weight", "1.0"]
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "ref.h5ad"), "--outdir", str(tmp_path / "int"), *common])
    assert res.exit_code == 0, res.output
    for f in ("cells.h5ad", "checkpoint/model.pt", "checkpoint/config.json", "versions.yml", "params.yaml", "command.txt"):
        assert (tmp_path / "int" / f).exists(), f
    assert json.loads((tmp_path / "int" / "checkpoint" / "config.json").read_text())["params"]["beta"] == 1.0
    out = ad.read_h5ad(tmp_path / "int" / "cells.h5ad")
    assert out.obsm["X_latent"].shape == (ref.n_obs, 10) and "counts" in out.layers
    assert out.obsm["X_scalex"].shape == (ref.n_obs, 10)  # the default: Harmony on the VAE's latent
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "query.h5ad"), "--outdir", str(tmp_path / "proj"),
                               "--projection", str(tmp_path / "int"), "--impute-batch", "batch1"])
    assert res.exit_code == 0, res.output
    both = ad.read_h5ad(tmp_path / "proj" / "cells.h5ad")
    assert both.n_obs == adata.n_obs and set(both.obs["projection"]) == {"reference", "query"}
    assert both.obsm["X_impute"].shape[1] == 400
    cfg = json.loads((tmp_path / "proj" / "checkpoint" / "config.json").read_text())
    assert cfg["domains"] == ["batch1", "batch2"]
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "query.h5ad"), "--outdir", str(tmp_path / "rep"),
                               "--projection", str(tmp_path / "int"), "--repeat"])
    assert res.exit_code == 0 and ad.read_h5ad(tmp_path / "rep" / "cells.h5ad").n_obs == query.n_obs
    # bad input: named file and key, nothing written
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "ref.h5ad"), "--outdir", str(tmp_path / "bad"),
                               "--batch-key", "plate", *common])
    assert res.exit_code == 1 and "'plate'" in res.output and "ref.h5ad" in res.output
    assert not (tmp_path / "bad").exists()
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "query.h5ad"), "--outdir", str(tmp_path / "bad"),
                               "--projection", str(tmp_path)])
    assert res.exit_code == 1 and "checkpoint" in res.output
    # a checkpoint that is not ours (another torch file, a pickled object) is refused by name, without a traceback
    (tmp_path / "foreign" / "checkpoint").mkdir(parents=True)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign" / "checkpoint" / "model.pt")
    (tmp_path / "pickled" / "checkpoint").mkdir(parents=True)
    torch.save({"config": Path("x")}, tmp_path / "pickled" / "checkpoint" / "model.pt")
    for folder in ("foreign", "pickled"):
        res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "query.h5ad"), "--outdir", str(tmp_path / "bad"),
                                   "--projection", str(tmp_path / folder)])
        assert res.exit_code == 1 and f"{folder}/checkpoint/model.pt: not a checkpoint of fatescope integrate" in res.output
        assert "Traceback" not in res.output and not (tmp_path / "bad").exists()
    res = runner.invoke(main, ["integrate", "--input", str(tmp_path / "ref.h5ad"), "--outdir", str(tmp_path / "h"),
                               "--harmony-on", "pca", "--n-top-features", "400", "--n-pcs", "20"])
    assert res.exit_code == 0, res.output
    assert ad.read_h5ad(tmp_path / "h" / "cells.h5ad").obsm["X_latent"].shape == (ref.n_obs, 20)
