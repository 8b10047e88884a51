"""fate-fit, eval-recovery and diagnostics end to end on a small simulation (one short fit)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from fatescope.cli import main
from fatescope.fate import checkpoint
from fatescope.fate.export import summarise
from fatescope.fate.synthetic import simulated_cells

FIT_ARGS = ["--num-steps", "2500", "--min-steps", "400", "--plateau-window", "100", "--batch-size", "1024",
            "--num-draws", "200", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fate")
    # enough NTC guides that the common shift of all gene effects is identified (see docs/fate.md)
    adata, truth, sim = simulated_cells(seed=2, n_cells=4000, n_perturbed_genes=16, frac_hit_genes=0.25, moi=3,
                                        dirichlet_conc=50, ntc_frac=0.4)
    adata.write_h5ad(root / "cells.h5ad")
    truth.to_csv(root / "sim_recovery.csv", index=False)
    result = CliRunner().invoke(main, ["fate-fit", "--input", str(root / "cells.h5ad"), "--outdir", str(root / "fit"), *FIT_ARGS])
    assert result.exit_code == 0, result.output
    return root, adata, truth


def test_outputs(fitted):
    root, adata, truth = fitted
    fit = root / "fit"
    gene = pd.read_csv(fit / "gene_daywise_for_mash.csv")
    assert list(gene.columns) == ["gene"] + [f"betahat_d{d}" for d in range(4)] + [f"se_d{d}" for d in range(4)]
    assert len(gene) == 16 and (gene.filter(like="se_") > 0).all().all()
    guide = pd.read_csv(fit / "guide_daywise_for_mash.csv")
    assert list(guide.columns[:2]) == ["guide", "gene"] and len(guide) == 64
    pd.testing.assert_frame_equal(gene, pd.read_csv(fit / "gene_daywise_for_mash_MES.csv"))
    assert (fit / "gene_daywise_for_mash_NEU.csv").is_file() and (fit / "guide_daywise_for_mash_NEU.csv").is_file()
    with np.load(fit / "theta_posterior_summary.npz") as npz:
        assert npz["mean"].shape == (16, 2, 4) and list(npz["fates"]) == ["MES", "NEU"]
    with np.load(fit / "delta_posterior_summary.npz") as npz:
        assert npz["mean"].shape == (64, 2)
    qc_delta = pd.read_csv(fit / "qc_delta_mean_by_gene.csv")
    qc_offset = pd.read_csv(fit / "qc_theta_beta_offset_by_gene.csv")
    assert abs(qc_delta.iloc[:, 1:].to_numpy().mean()) < 1e-6 and qc_delta.iloc[:, 1:].abs().to_numpy().max() < 1e-5
    assert abs(qc_offset.iloc[:, 1:].to_numpy().mean()) < 1e-6 and qc_offset.iloc[:, 1:].abs().to_numpy().max() < 1e-5
    summary = json.loads((fit / "fit_summary.json").read_text())
    assert summary["converged"] and summary["plateau_step"] <= 2500 and summary["likelihood_weight"] > 10
    curve = pd.read_csv(fit / "loss_curve.csv")
    assert len(curve) == summary["steps"] and set(curve["phase"]) == {1, 2, 3}  # w from nuisance fit, refined w, low lr
    first = curve[curve["phase"] == 1]["loss_per_cell"]
    assert first.iloc[-100:].mean() < first.iloc[:100].mean() - 0.1  # training lowers the loss (here 15.0 -> 14.7)
    later = curve[curve["phase"] > 1]["loss_per_cell"]  # the same weight from phase 2 on: the loss stays at the plateau
    assert abs(later.iloc[-100:].mean() - later.iloc[:100].mean()) < 1e-3 * later.iloc[:100].mean()
    for name in ("versions.yml", "params.yaml", "command.txt", "fate_model.pt"):
        assert (fit / name).is_file()


def test_checkpoint_redraws_without_refit(fitted):
    """The checkpoint holds the Laplace factor with the Laplace-EM's scales (they differ from the guide's MAP) and
    redraws the fit's posterior."""
    root = fitted[0]
    model, guide, enc = checkpoint.load(root / "fit" / "fate_model.pt")
    summary = json.loads((root / "fit" / "fit_summary.json").read_text())
    assert summary["notes"]["laplace_em_steps"] >= 1
    for site in ("tau", "sigma_time", "null_frac"):
        np.testing.assert_allclose(guide.point()[site].numpy(), summary["point_estimates"][site], rtol=1e-6)
    assert not np.allclose(guide.base.point()["tau"].numpy(), summary["point_estimates"]["tau"], rtol=0.02)
    post = summarise(guide, model.data, enc, num_draws=200, seed=0)
    with np.load(root / "fit" / "theta_posterior_summary.npz") as npz:
        np.testing.assert_allclose(post.theta_mean, npz["mean"], atol=1e-6)
        np.testing.assert_allclose(post.theta_sd, npz["sd"], atol=1e-6)


def test_checkpoint_from_before_the_two_group_prior_loads_as_one_group(fitted, tmp_path):
    """A /3 checkpoint written before ``null_sd`` existed (no such prior, no null fraction) loads as the
    one-group fit it was and redraws the same posterior; today's checkpoint keeps its null fraction."""
    root = fitted[0]
    ck = torch.load(root / "fit" / "fate_model.pt", weights_only=True)
    meta = json.loads(ck["meta"])
    assert meta["priors"]["null_sd"] == 0.1 and "null_frac.map" in ck["params"]
    summary = json.loads((root / "fit" / "fit_summary.json").read_text())
    assert all(0 < f < 1 for f in summary["point_estimates"]["null_frac"])
    del meta["priors"]["null_sd"]
    for key in ("params", "constraints"):
        for name in ("null_frac.map", "laplace.null_frac", "laplace.null_width"):
            del ck[key][name]
    ck["meta"] = json.dumps(meta)
    torch.save(ck, tmp_path / "old.pt")
    model, guide, enc = checkpoint.load(tmp_path / "old.pt")
    assert model.priors.null_sd == 0.0 and "null_frac" not in guide.point()
    post = summarise(guide, model.data, enc, num_draws=200, seed=0)
    with np.load(root / "fit" / "theta_posterior_summary.npz") as npz:
        np.testing.assert_allclose(post.theta_mean, npz["mean"], atol=1e-6)
        np.testing.assert_allclose(post.theta_sd, npz["sd"], atol=1e-6)


def test_checkpoint_from_before_guide_efficiencies_loads_without_them(fitted, tmp_path):
    """A checkpoint written before ``s_eff`` existed (a fit without efficiencies; its priors lack the key)
    loads with s_eff 0 and redraws the same posterior; today's default fit carries sigma_eff and v."""
    import fatescope as fs
    root, adata, _ = fitted
    ck = torch.load(root / "fit" / "fate_model.pt", weights_only=True)
    assert json.loads(ck["meta"])["priors"]["s_eff"] == 0.3 and {"sigma_eff.map", "v.loc", "v.scale"} <= set(ck["params"])
    small = fs.tl.fate_fit(adata, s_eff=0.0, num_steps=300, min_steps=300, plateau_window=100, num_draws=100, device="cpu")
    small.save(tmp_path / "new.pt")
    ck = torch.load(tmp_path / "new.pt", weights_only=True)
    meta = json.loads(ck["meta"])
    assert "sigma_eff.map" not in ck["params"] and "sigma_eff" not in small.summary["point_estimates"]
    del meta["priors"]["s_eff"]
    ck["meta"] = json.dumps(meta)
    torch.save(ck, tmp_path / "old.pt")
    model, guide, enc = checkpoint.load(tmp_path / "old.pt")
    assert model.priors.s_eff == 0.0 and "v" not in guide.point()
    post = summarise(guide, model.data, enc, num_draws=100, seed=0)
    np.testing.assert_allclose(post.theta_mean, small.posterior.theta_mean, atol=1e-6)
    np.testing.assert_allclose(post.theta_sd, small.posterior.theta_sd, atol=1e-6)


def test_recovery(fitted, tmp_path):
    root = fitted[0]
    result = CliRunner().invoke(main, ["eval-recovery", "--theta-summary", str(root / "fit" / "theta_posterior_summary.npz"),
                                       "--truth", str(root / "sim_recovery.csv"), "--outdir", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "recovery_metrics.json").read_text())
    overall = metrics["all"]["overall"]
    assert overall["pearson_r_effect_genes"] > 0.9
    assert overall["coverage_null"] >= 0.8
    assert set(metrics["all"]["by_day"]) == {"d0", "d1", "d2", "d3"}
    table = pd.read_csv(tmp_path / "ev" / "recovery_table.csv")
    assert len(table) == 16 * 2 * 4


def test_bad_input_is_reported(fitted, tmp_path):
    root = fitted[0]
    result = CliRunner().invoke(main, ["fate-fit", "--input", str(root / "cells.h5ad"), "--outdir", str(tmp_path / "x"),
                                       "--reference-fate", "XX", *FIT_ARGS])
    assert result.exit_code != 0 and "reference fate 'XX'" in result.output and not (tmp_path / "x").exists()


def test_diagnostics(fitted, tmp_path):
    root = fitted[0]
    known = tmp_path / "known.csv"
    truth = fitted[2]
    strong = truth[(truth["fate"] == "MES") & truth["hit_gene"]].groupby("gene")["theta"].mean()
    pd.DataFrame({"gene": list(strong.index) + ["NOT_A_GENE"], "expected_sign": list(np.sign(strong).astype(int)) + [1]}).to_csv(known, index=False)
    result = CliRunner().invoke(main, ["diagnostics", "--input", str(root / "cells.h5ad"), "--model", str(root / "fit" / "fate_model.pt"),
                                       "--theta-summary", str(root / "fit" / "theta_posterior_summary.npz"),
                                       "--known-regulators", str(known), "--outdir", str(tmp_path / "dg"),
                                       "--refit-steps", "0", "--threads", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "dg" / "diagnostics.json").read_text())
    ho = report["held_out"]
    assert ho["min_test_cells_per_stratum"] >= 1 and ho["cross_entropy_full"] < ho["cross_entropy_nuisance_only"]
    assert report["hits"]["real"] >= 1 and report["hits"]["permuted"] <= 1
    counts = pd.read_csv(tmp_path / "dg" / "split_counts.csv")
    assert len(counts) == 8 and (counts["n_test"] > 0).all() and (counts["n_train"] > 0).all()
    sanity = pd.read_csv(tmp_path / "dg" / "sanity.csv")
    assert report["sanity"]["n_in_model"] == len(strong) and report["sanity"]["n_agree"] == len(strong)
    assert not sanity.loc[sanity["gene"] == "NOT_A_GENE", "in_model"].iloc[0]


def test_recovery_of_mash_calls(fitted, tmp_path):
    """eval-recovery --hits scores the rank stage's calls (mash on the fit's gene table)."""
    root = fitted[0]
    runner = CliRunner()
    r = runner.invoke(main, ["mash", "--input", str(root / "fit" / "gene_daywise_for_mash.csv"), "--mode", "conservative",
                             "--outdir", str(tmp_path / "mash"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["rank", "--conservative", str(tmp_path / "mash" / "mash_gene_conservative.csv"),
                             "--outdir", str(tmp_path / "rank")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["eval-recovery", "--theta-summary", str(root / "fit" / "theta_posterior_summary.npz"),
                             "--truth", str(root / "sim_recovery.csv"), "--hits", str(tmp_path / "rank" / "hits_ranked.csv"),
                             "--outdir", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    hits = json.loads((tmp_path / "ev" / "recovery_metrics.json").read_text())["hits"]
    assert hits["anyday"]["precision"] >= 0.75 and hits["anyday"]["recall"] >= 0.75
    assert set(hits["by_day"]) == {"d0", "d1", "d2", "d3"}
