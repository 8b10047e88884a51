"""fs.tl.grn / modules / prune / aucell and fs.pl.regulon_heatmap equal the stage commands' outputs on the same
input and seed (bitwise where the command writes the same dtype); defaults have one source; bad arguments."""
from __future__ import annotations

import json

import anndata as ad
import click
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from test_regulons_pipeline import sim, synthetic_adjacency  # noqa: F401 - sim is a module fixture

import fatescope as fs
from fatescope.cli import main
from fatescope.errors import InputError
from fatescope.regulons.grn import expression_matrix
from fatescope.regulons.modules import ModuleParams
from fatescope.regulons.prune import PruneParams
from fatescope.regulons.rankdb import load_ranking_db


def invoke(args: list[str]) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def stages(sim, tmp_path_factory):  # noqa: F811
    """modules -> prune -> aucell through the CLI on the synthetic GRN (what the API results are compared with)."""
    out = tmp_path_factory.mktemp("api_regulons")
    synthetic_adjacency(sim).to_parquet(out / "adjacency.parquet", index=False)
    res = sim / "simulate" / "resources"
    db = res / "sim.genes_vs_motifs.rankings.feather"
    rank = load_ranking_db(db).n_genes // 2
    invoke(["modules", "--adjacency", str(out / "adjacency.parquet"), "--outdir", str(out / "modules"),
            "--min-targets", "10", "--top-n-per-target", "5,10"])
    invoke(["prune", "--modules", str(out / "modules" / "modules.parquet"), "--ranking-dbs", str(db),
            "--motif-annotations", str(res / "motifs.tbl"), "--outdir", str(out / "prune"),
            "--pruning-rank-threshold", str(rank), "--pruning-device", "cpu"])
    invoke(["aucell", "--cells", str(sim / "qc" / "cells.h5ad"), "--regulons", str(out / "prune" / "regulons.parquet"),
            "--outdir", str(out / "aucell"), "--device", "cpu", "--binarize-auc", "--seed", "7"])
    return {"out": out, "db": db, "annotations": res / "motifs.tbl", "rank": rank}


def test_grn_equals_cli_and_counts_normalisation_kept(sim, tmp_path):  # noqa: F811
    cells, tf_file = sim / "qc" / "cells.h5ad", sim / "simulate" / "resources" / "tf_list.txt"
    options = dict(n_steps=3, sparsity_threshold=0.0, n_runs=2, seed=5, device="cpu")
    invoke(["grn", "--cells", str(cells), "--outdir", str(tmp_path / "grn"), "--tf-list", str(tf_file),
            "--n-steps", "3", "--sparsity-threshold", "0", "--n-runs", "2", "--seed", "5", "--device", "cpu"])
    adata = ad.read_h5ad(cells)
    tfs = [line.strip() for line in tf_file.read_text().splitlines() if line.strip()]
    edges, models = fs.tl.grn(adata, tfs=tfs, **options, return_models=True)
    cli = pd.read_parquet(tmp_path / "grn" / "adjacency.parquet")
    pd.testing.assert_frame_equal(edges, cli, check_exact=True)
    assert adata.uns["grn"] == json.loads((tmp_path / "grn" / "grn_report.json").read_text())
    saved = torch.load(tmp_path / "grn" / "model" / "run1.pt", weights_only=True)
    assert saved["genes"] == models[1]["genes"]
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in models[1]["state_dict"].items())
    pd.testing.assert_frame_equal(fs.tl.grn(ad.read_h5ad(cells), tfs=str(tf_file), **options), cli, check_exact=True)
    # RegDiffusion's input is cells.preprocess.log_normalize densified: the numbers of the former own normalisation
    counts = adata.layers["counts"]
    X = counts.toarray().astype(np.float32)
    X *= 1e4 / X.sum(axis=1, keepdims=True)
    assert np.array_equal(expression_matrix(counts), np.log1p(X))
    with pytest.raises(InputError, match="cells have no counts"):
        expression_matrix(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 0.0]])))
    with pytest.raises(InputError, match="layers has no 'raw'"):
        fs.tl.grn(adata, tfs=tfs, layer="raw")
    with pytest.raises(InputError, match="TF list is empty"):
        fs.tl.grn(adata, tfs=[])


def test_modules_equals_cli(stages):
    adjacency = pd.read_parquet(stages["out"] / "adjacency.parquet")
    cli = pd.read_parquet(stages["out"] / "modules" / "modules.parquet")
    mods, report = fs.tl.modules(adjacency, min_targets=10, top_n_per_target=[5, 10], return_report=True)
    pd.testing.assert_frame_equal(mods, cli, check_exact=True)
    assert report == json.loads((stages["out"] / "modules" / "modules_report.json").read_text())
    pd.testing.assert_frame_equal(fs.tl.modules(adjacency, min_targets=10, top_n_per_target="5, 10"), cli)
    assert set(mods["kind"]) == {"top50", "pct75", "top5perTarget", "top10perTarget"}
    assert fs.tl.modules(adjacency, min_targets=10_000).empty
    with pytest.raises(InputError, match="top_n_per_target: expected numbers"):
        fs.tl.modules(adjacency, top_n_per_target="5,x")


def _lists(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet gives list columns back as arrays: compare them as lists."""
    return frame.assign(**{c: frame[c].map(list) for c in ("targets", "target_weights")})


def test_prune_equals_cli_with_objects_or_paths(stages):
    mods = pd.read_parquet(stages["out"] / "modules" / "modules.parquet")
    db = load_ranking_db(stages["db"])
    res = fs.tl.prune(mods, [db], stages["annotations"], pruning_rank_threshold=stages["rank"], pruning_device="cpu")
    cli = stages["out"] / "prune"
    pd.testing.assert_frame_equal(res.regulons, pd.read_parquet(cli / "regulons.parquet"), check_exact=True)
    pd.testing.assert_frame_equal(_lists(res.enrichment), _lists(pd.read_parquet(cli / "motif_enrichment.parquet")),
                                  check_exact=True)
    assert res.gmt() == (cli / "regulons.gmt").read_text()
    report = json.loads((cli / "prune_report.json").read_text())
    timings = ("db_load_s", "prune_s")
    assert {k: v for k, v in res.report.items() if k not in timings} == {k: v for k, v in report.items() if k not in timings}
    assert res.regulons["regulon"].nunique() == 4  # the simulation's four planted TFs
    by_path = fs.tl.prune(mods, stages["db"], stages["annotations"], pruning_rank_threshold=stages["rank"],
                          pruning_device="cpu")
    pd.testing.assert_frame_equal(by_path.regulons, res.regulons)
    with pytest.raises(InputError, match="--pruning-rank-threshold 5000 must be below the database's"):
        fs.tl.prune(mods, [db], stages["annotations"])
    with pytest.raises(InputError, match="no ranking database"):
        fs.tl.prune(mods, [], stages["annotations"])
    with pytest.raises(InputError, match="modules: missing columns"):
        fs.tl.prune(mods.drop(columns="weight"), [db], stages["annotations"])


@pytest.mark.parametrize("backed", [False, True], ids=["memory", "backed"])
def test_aucell_equals_cli(sim, stages, backed):  # noqa: F811
    regulons = pd.read_parquet(stages["out"] / "prune" / "regulons.parquet")
    adata = ad.read_h5ad(sim / "qc" / "cells.h5ad", backed="r" if backed else None)
    auc = fs.tl.aucell(adata, regulons, seed=7, binarize_auc=True, device="cpu")
    cli = stages["out"] / "aucell"
    table = pd.read_parquet(cli / "aucell.parquet").set_index("cell")
    table.index.name = None
    pd.testing.assert_frame_equal(auc, table, check_exact=True, check_index_type=False, check_column_type=False)
    scored = ad.read_h5ad(cli / "cells.h5ad")
    assert np.array_equal(adata.obsm["X_aucell"], scored.obsm["X_aucell"])
    assert list(adata.uns["aucell_regulons"]) == list(scored.uns["aucell_regulons"]) == list(auc.columns)
    binary = pd.read_parquet(cli / "aucell_binary.parquet")
    assert np.array_equal(adata.obsm["X_aucell_binary"], binary.drop(columns="cell").to_numpy())
    info = pd.read_csv(cli / "aucell_regulons.csv", float_precision="round_trip")
    pd.testing.assert_frame_equal(adata.uns["aucell"]["regulons"], info, check_exact=True)
    assert auc.to_numpy().max() > 0.05 and auc.shape == (adata.n_obs, 4)
    if backed:
        adata.file.close()


def test_aucell_bad_arguments(sim):  # noqa: F811
    adata = ad.read_h5ad(sim / "qc" / "cells.h5ad")
    regulons = pd.DataFrame({"regulon": ["TF0(+)"], "tf": ["TF0"], "target": ["G1"], "weight": [1.0]})
    with pytest.raises(InputError, match="layer 'nope' not found"):
        fs.tl.aucell(adata, regulons, layer="nope", device="cpu")
    with pytest.raises(InputError, match="lacks columns"):
        fs.tl.aucell(adata, regulons.drop(columns="tf"), device="cpu")
    with pytest.raises(InputError, match="no regulons"):
        fs.tl.aucell(adata, regulons.iloc[:0], device="cpu")


def test_aucell_torch_batches_equal_numba(sim, stages):  # noqa: F811
    """The torch (CUDA) branch of the batch loop, run on the CPU ("cpu:0"): 600 cells in batches of 4 x 64."""
    from fatescope.regulons.aucell import auc_cutoff, build_signatures, score_cells, scoring_genes

    adata = ad.read_h5ad(sim / "qc" / "cells.h5ad")
    regulons = pd.read_parquet(stages["out"] / "prune" / "regulons.parquet")
    sigs = build_signatures(scoring_genes(regulons, 50), adata.var_names)
    cutoff = auc_cutoff(0.05, adata.n_vars)
    numba_auc = score_cells(adata.X, adata.n_obs, sigs, cutoff, 3, 32, "cpu")
    torch_auc = score_cells(adata.X, adata.n_obs, sigs, cutoff, 3, 4, "cpu:0")
    assert adata.n_obs > 4 * 64 * 2 and numba_auc.max() > 0.05
    np.testing.assert_allclose(torch_auc, numba_auc, rtol=0, atol=1e-12)


def test_regulon_heatmap_is_the_reports(stages):
    adata = ad.read_h5ad(stages["out"] / "aucell" / "cells.h5ad")
    auc = pd.DataFrame(adata.obsm["X_aucell"], columns=list(adata.uns["aucell_regulons"]))
    adata.obs["group"] = np.asarray(["a", "b", "c"])[np.arange(adata.n_obs) % 3]
    adata.obs.loc[auc.iloc[:, 0].to_numpy() > auc.iloc[:, 0].median(), "group"] = "hi"
    means = auc.groupby(adata.obs["group"].to_numpy()).mean().T  # regulons x groups a, b, c, hi
    spread = (means.max(axis=1) - means.min(axis=1)).sort_values(ascending=False)
    fig = fs.pl.regulon_heatmap(adata, groupby="group", n_regulons=2)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(spread.index[:2])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "hi"] and ax.get_xlabel() == "group"
    rows = means.loc[spread.index[:2]]
    expected = rows.sub(rows.mean(axis=1), axis=0).div(rows.std(axis=1, ddof=0), axis=0)
    assert np.allclose(ax.images[0].get_array(), expected.to_numpy())
    assert ax.get_title() == "Mean AUCell per group (2 of 4 regulons)"
    plt.close(fig)
    with pytest.raises(InputError, match="obs\\['leiden'\\] not found"):
        fs.pl.regulon_heatmap(adata)
    with pytest.raises(InputError, match="run fs.tl.aucell first"):
        fs.pl.regulon_heatmap(ad.AnnData(np.zeros((2, 2))), groupby="x")


def test_one_source_of_defaults():
    """The click options take the API's defaults; the science parameter classes agree with them."""
    from fatescope.cli import aucell as cli_aucell, grn as cli_grn, modules as cli_modules, prune as cli_prune
    from fatescope.cli.common import api_default

    cli_names = {"tf_list": "tfs"}
    for module, api in ((cli_grn, fs.tl.grn), (cli_modules, fs.tl.modules), (cli_prune, fs.tl.prune),
                        (cli_aucell, fs.tl.aucell)):
        for p in module.command.params:
            if isinstance(p, click.Option) and not p.required and \
                    p.name not in ("outdir", "layer", *cli_aucell.TASK_SPLIT_OPTIONS):
                assert p.default == api_default(api, cli_names.get(p.name, p.name)), (module.__name__, p.name)
    assert fs.tl.grn.__kwdefaults__["layer"] == "counts" and fs.tl.aucell.__kwdefaults__["layer"] is None
    m = ModuleParams()
    assert (m.k, m.min_targets, m.min_fraction, m.include_tf) == tuple(
        api_default(fs.tl.modules, n) for n in ("k", "min_targets", "min_fraction", "include_tf"))
    p, d = PruneParams(), fs.tl.prune.__kwdefaults__
    assert (p.rank_threshold, p.auc_threshold, p.nes_threshold, p.min_genes, p.merge_strategy, p.weighted_recovery) == (
        d["pruning_rank_threshold"], d["pruning_auc_threshold"], d["pruning_nes_threshold"], d["pruning_min_genes"],
        d["pruning_merge_strategy"], d["pruning_weighted_recovery"])


def test_grn_max_cells_trains_on_a_seeded_sample_of_cells(sim):  # noqa: F811
    """max_cells: RegDiffusion sees exactly the seeded sample (the same network as on those cells alone), the
    report says how many cells it used, and a sample as large as the data changes nothing."""
    from fatescope.regulons.grn import subsample_cells

    adata = ad.read_h5ad(sim / "qc" / "cells.h5ad")
    tfs = str(sim / "simulate" / "resources" / "tf_list.txt")
    options = dict(n_steps=3, sparsity_threshold=0.0, seed=4, device="cpu")
    rows = subsample_cells(adata.n_obs, 250, seed=4)
    assert len(rows) == len(set(rows)) == 250 and (np.diff(rows) > 0).all()
    assert np.array_equal(rows, subsample_cells(adata.n_obs, 250, seed=4))
    assert not np.array_equal(rows, subsample_cells(adata.n_obs, 250, seed=5))
    sampled = fs.tl.grn(adata, tfs=tfs, max_cells=250, **options)
    assert adata.uns["grn"]["n_cells_used"] == 250 and adata.uns["grn"]["n_cells"] == adata.n_obs
    alone = fs.tl.grn(adata[rows].copy(), tfs=tfs, max_cells=None, **options)
    pd.testing.assert_frame_equal(sampled, alone, check_exact=True)
    everything = fs.tl.grn(adata, tfs=tfs, max_cells=None, **options)
    pd.testing.assert_frame_equal(fs.tl.grn(adata, tfs=tfs, max_cells=adata.n_obs, **options), everything, check_exact=True)
    assert adata.uns["grn"]["n_cells_used"] == adata.n_obs
    assert not sampled.equals(everything)
    assert subsample_cells(100, None, 0) is None and subsample_cells(100, 100, 0) is None
