"""modules -> prune -> aucell on a small simulation with planted regulons; grn smoke run; CLI round trip;
bad input."""
from __future__ import annotations

import json
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fatescope.cli import main
from fatescope.errors import InputError
from fatescope.regulons.modules import ModuleParams, build_modules
from fatescope.regulons.rankdb import load_ranking_db
from fatescope.regulons.tfs import read_tf_list, tfs_in_data

SIZES = dict(n_cells=600, n_genes=400, n_tfs=4, targets_per_tf=20, n_perturbed_genes=8, guides_per_gene=2,
             n_ntc_guides=2, kmax=4, n_days=2, n_replicates=1, n_motifs=60)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from fatescope.cli.qc import run as qc_run
    from fatescope.cli.simulate import run as sim_run

    root = tmp_path_factory.mktemp("regsim")
    sheet = sim_run(outdir=str(root / "simulate"), seed=3, **SIZES)
    qc_run(str(sheet), outdir=str(root / "qc"), guide_map=str(root / "simulate" / "guide_map.csv"), min_features=50)
    return root


def synthetic_adjacency(sim, seed=0) -> pd.DataFrame:
    """A GRN as a good inference would give it: planted edges strong, 25 random decoy edges per TF weaker."""
    truth = pd.read_csv(sim / "simulate" / "truth" / "regulons_truth.csv")
    genes = pd.read_csv(sim / "simulate" / "truth" / "genes.csv")["gene"].to_numpy()
    rng = np.random.default_rng(seed)
    rows = [(r.tf, r.target, 3.0 + 3.0 * r.weight) for r in truth.itertuples()]
    for tf in read_tf_list(str(sim / "simulate" / "resources" / "tf_list.txt")):
        rows += [(tf, g, float(rng.uniform(1.5, 4.0))) for g in rng.choice(genes, 25, replace=False) if g != tf]
    return pd.DataFrame(rows, columns=["tf", "target", "importance"]).drop_duplicates(["tf", "target"])


def test_planted_regulons_recovered_cli_round_trip(sim, tmp_path):
    adj = tmp_path / "adjacency.parquet"
    synthetic_adjacency(sim).to_parquet(adj, index=False)
    res = sim / "simulate" / "resources"
    run = CliRunner().invoke
    r = run(main, ["modules", "--adjacency", str(adj), "--outdir", str(tmp_path / "modules"), "--min-targets", "10"])
    assert r.exit_code == 0, r.output
    mods = pd.read_parquet(tmp_path / "modules" / "modules.parquet")
    assert {"module", "tf", "kind", "target", "weight"} <= set(mods.columns)
    n_db = load_ranking_db(res / "sim.genes_vs_motifs.rankings.feather").n_genes
    r = run(main, ["prune", "--modules", str(tmp_path / "modules" / "modules.parquet"),
                   "--ranking-dbs", str(res / "sim.genes_vs_motifs.rankings.feather"),
                   "--motif-annotations", str(res / "motifs.tbl"), "--outdir", str(tmp_path / "prune"),
                   "--pruning-rank-threshold", str(n_db // 2)])
    assert r.exit_code == 0, r.output
    regulons = pd.read_parquet(tmp_path / "prune" / "regulons.parquet")
    truth = pd.read_csv(sim / "simulate" / "truth" / "regulons_truth.csv")
    hit = regulons.merge(truth, on=["tf", "target"], how="left", indicator=True)["_merge"] == "both"
    precision, recall = hit.mean(), hit.sum() / len(truth)
    assert regulons["tf"].nunique() == truth["tf"].nunique()
    print(f"planted regulons: target precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.8 and recall >= 0.6, (precision, recall)
    assert (tmp_path / "prune" / "regulons.gmt").read_text().count("\n") == regulons["regulon"].nunique()
    enr = pd.read_parquet(tmp_path / "prune" / "motif_enrichment.parquet")
    planted = pd.read_csv(sim / "simulate" / "truth" / "motifs.csv")
    planted = planted[planted["planted"]]
    assert set(enr["motif"]) <= set(planted["motif"]) | set(enr["motif"][enr["annotation"] != "gene is directly annotated"])
    r = run(main, ["aucell", "--cells", str(sim / "qc" / "cells.h5ad"), "--regulons", str(tmp_path / "prune" / "regulons.parquet"),
                   "--outdir", str(tmp_path / "aucell"), "--device", "cpu", "--binarize-auc"])
    assert r.exit_code == 0, r.output
    a = ad.read_h5ad(tmp_path / "aucell" / "cells.h5ad")
    table = pd.read_parquet(tmp_path / "aucell" / "aucell.parquet")
    assert a.obsm["X_aucell"].shape == (a.n_obs, regulons["regulon"].nunique())
    assert list(a.uns["aucell_regulons"]) == list(table.columns[1:])
    assert np.allclose(table.iloc[:, 1:].to_numpy(), a.obsm["X_aucell"], atol=1e-6)
    assert (tmp_path / "aucell" / "aucell_binary.parquet").is_file()
    for stage in ("modules", "prune", "aucell"):
        assert (tmp_path / stage / "versions.yml").is_file() and (tmp_path / stage / "params.yaml").is_file()


def test_grn_smoke_keeps_logs_in_outdir(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["grn", "--cells", str(sim / "qc" / "cells.h5ad"), "--outdir", "grn", "--tf-list",
                                  str(sim / "simulate" / "resources" / "tf_list.txt"), "--n-steps", "3",
                                  "--sparsity-threshold", "0", "--n-runs", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    edges = pd.read_parquet(tmp_path / "grn" / "adjacency.parquet")
    assert list(edges.columns) == ["tf", "target", "importance", "stability"] and len(edges)
    tfs = set(read_tf_list(str(sim / "simulate" / "resources" / "tf_list.txt")))
    assert set(edges["tf"]) <= tfs
    report = json.loads((tmp_path / "grn" / "grn_report.json").read_text())
    assert report["n_runs"] == 2 and "edge_stability" in report and report["n_tfs_in_data"] > 0
    assert (tmp_path / "grn" / "model" / "run1.pt").is_file()
    assert sorted(os.listdir(tmp_path)) == ["grn"]  # nothing (e.g. regdiffusion's result_logs) in the cwd


def test_modules_kinds_and_filters():
    rng = np.random.default_rng(0)
    edges = pd.DataFrame([(f"TF{t}", f"G{g}", float(rng.uniform(1, 5))) for t in range(3) for g in range(100)],
                         columns=["tf", "target", "importance"])
    mods, report = build_modules(edges, ModuleParams())
    kinds = set(mods["kind"])
    assert {"top50", "pct75", "top5perTarget", "top10perTarget", "top50perTarget"} >= kinds >= {"top50", "pct75"}
    top = mods[mods["module"] == "TF0_top50"]
    assert len(top) == 51 and "TF0" in set(top["target"])  # 50 targets + the TF
    best = edges[edges["tf"] == "TF0"].nlargest(50, "importance")["target"]
    assert set(best) <= set(top["target"])
    pct = mods[(mods["module"] == "TF0_pct75") & (mods["target"] != "TF0")]
    assert len(pct) == 25
    # top-5-per-target with 3 TFs: every TF regulates every target -> 100 targets each
    assert (mods[mods["kind"] == "top5perTarget"].groupby("tf").size() == 101).all()
    none, _ = build_modules(edges, ModuleParams(min_targets=200))
    assert none.empty
    frac, _ = build_modules(edges, ModuleParams(min_fraction=0.6, include_tf=False))
    assert set(frac["kind"]) == {"top5perTarget", "top10perTarget", "top50perTarget"}


def test_bundled_tf_lists_and_bad_inputs(tmp_path):
    human, mouse = read_tf_list("human"), read_tf_list("mouse")
    assert len(human) > 1500 and "SOX2" in human and "Sox2" in mouse
    with pytest.raises(InputError, match="TF list not found"):
        read_tf_list(str(tmp_path / "nope.txt"))
    with pytest.raises(InputError, match="none of the"):
        tfs_in_data(["SOX2"], pd.Index(["A", "B"]))
    bad = tmp_path / "bad.feather"
    pd.DataFrame({"x": [1.5]}).to_feather(bad)
    with pytest.raises(InputError, match="no index column"):
        load_ranking_db(bad)
    r = CliRunner().invoke(main, ["modules", "--adjacency", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 1 and "file not found (expected the grn stage's adjacency.parquet)" in r.output
    pd.DataFrame({"tf": ["A"], "gene": ["B"]}).to_parquet(tmp_path / "adj.parquet")
    r = CliRunner().invoke(main, ["modules", "--adjacency", str(tmp_path / "adj.parquet")])
    assert r.exit_code == 1 and "lacks columns" in r.output and not (tmp_path / "modules").exists()


def test_prune_and_aucell_refuse_bad_input(sim, tmp_path):
    adj = tmp_path / "adjacency.parquet"
    synthetic_adjacency(sim).to_parquet(adj, index=False)
    res = sim / "simulate" / "resources"
    run = CliRunner().invoke
    assert run(main, ["modules", "--adjacency", str(adj), "--outdir", str(tmp_path / "modules"),
                      "--min-targets", "10"]).exit_code == 0
    args = ["prune", "--modules", str(tmp_path / "modules" / "modules.parquet"), "--ranking-dbs",
            str(res / "sim.genes_vs_motifs.rankings.feather"), "--motif-annotations", str(res / "motifs.tbl"),
            "--outdir", str(tmp_path / "prune")]
    r = run(main, args)  # default rank threshold 5000 > the simulated DB's genes
    assert r.exit_code == 1 and "must be below the database's" in r.output and not (tmp_path / "prune").exists()
    r = run(main, args[:-4] + ["--motif-annotations", str(adj), "--outdir", str(tmp_path / "prune")])
    assert r.exit_code == 1 and "motif annotation" in r.output
    r = run(main, ["aucell", "--cells", str(sim / "qc" / "cells.h5ad"), "--regulons", str(adj), "--outdir",
                   str(tmp_path / "aucell")])
    assert r.exit_code == 1 and "lacks columns" in r.output and not (tmp_path / "aucell").exists()
