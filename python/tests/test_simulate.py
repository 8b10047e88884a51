"""The simulate stage: files and layouts, determinism, and the planted truth measured in the outputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest
import yaml
from click.testing import CliRunner
from scipy.special import digamma, polygamma

from fatescope.cli.simulate import command, run
from fatescope.errors import InputError
from fatescope.simulate.guides import NO_GUIDE, assign_guides, truncated_poisson
from fatescope.simulate.params import FATES, MITO_GENES, SimParams, option_fields

SHEET_COLUMNS = ["sample", "counts", "batch", "day", "replicate", "guides", "fate_probs"]
TBL_COLUMNS = ["#motif_id", "motif_name", "motif_description", "source_name", "source_version", "gene_name",
               "motif_similarity_qvalue", "similar_motif_id", "similar_motif_description", "orthologous_identity",
               "orthologous_gene_name", "orthologous_species", "description"]
SMALL = dict(n_cells=400, n_genes=400, n_tfs=3, targets_per_tf=10, n_perturbed_genes=10, n_motifs=20, n_days=2)
OPTIONS = ["--outdir", "--seed", "--n-cells", "--n-genes", "--n-days", "--n-replicates", "--n-tfs", "--targets-per-tf",
           "--n-perturbed-genes", "--guides-per-gene", "--n-ntc-guides", "--moi", "--kmax", "--ntc-frac",
           "--frac-hit-genes", "--s-tau", "--s-time", "--s-guide", "--dirichlet-conc", "--fate-priming",
           "--library-size", "--batch-effect-sd", "--n-motifs"]
FLAGS = ["--fate-probs"]  # writing switches, not SimParams fields


def per_sample_table(sheet: pd.DataFrame, column: str) -> pd.DataFrame:
    """The per-sample CSVs of ``column`` stacked, with cells renamed ``<sample>_<barcode>``."""
    parts = [pd.read_csv(path).assign(cell=lambda d, s=sample: s + "_" + d["cell"])
             for sample, path in zip(sheet["sample"], sheet[column])]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> SimpleNamespace:
    """Default-size simulation (4,000 cells x 1,200 genes) loaded into tables once for all tests."""
    outdir = tmp_path_factory.mktemp("sim") / "simulate"
    sheet_path = run(outdir=str(outdir), seed=0)
    sheet = pd.read_csv(sheet_path)
    cells = pd.read_parquet(outdir / "truth" / "cells.parquet")
    parts = [ad.read_h5ad(p) for p in sheet["counts"]]
    for name, part in zip(sheet["sample"], parts):
        part.obs_names = name + "_" + part.obs_names
    adata = ad.concat(parts)
    guides, probs = (per_sample_table(sheet, column) for column in ("guides", "fate_probs"))
    counts = adata[cells["cell"]].X.toarray()
    return SimpleNamespace(
        outdir=outdir, sheet_path=sheet_path, sheet=sheet, cells=cells, counts=counts, genes=adata.var_names,
        lognorm=np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4),
        guides=guides, probs=probs.set_index("cell").loc[cells["cell"]],
        guide_map=pd.read_csv(outdir / "guide_map.csv", dtype=str),
        recovery=pd.read_csv(outdir / "truth" / "sim_recovery.csv"),
        guide_truth=pd.read_csv(outdir / "truth" / "guide_truth.csv"),
        nuisance=yaml.safe_load((outdir / "truth" / "nuisance.yaml").read_text()),
        regulons=pd.read_csv(outdir / "truth" / "regulons_truth.csv"),
        gene_roles=pd.read_csv(outdir / "truth" / "genes.csv", keep_default_na=False).set_index("gene"),
        metadata=yaml.safe_load((outdir / "sim_metadata.yaml").read_text()),
    )


def carriers(sim, gene: str) -> np.ndarray:
    """Cells (in sim.cells order) that carry any guide of ``gene``."""
    guide_names = sim.guide_map.loc[sim.guide_map["gene_name"] == gene, "guide_name"]
    return sim.cells["cell"].isin(sim.guides.loc[sim.guides["guide"].isin(guide_names), "cell"]).to_numpy()


def mes_log_ratio(sim) -> np.ndarray:
    return np.log(sim.probs["MES"] / sim.probs["EC"]).to_numpy()


def non_alpha_terms(sim, fate: str) -> np.ndarray:
    """b[f, r] + gamma[f] (k - mean k) + sum of the cell's guides' beta[g, f, day], from the truth files."""
    beta = sim.guide_truth[sim.guide_truth["fate"] == fate].set_index(["guide", "day"])["beta"]
    calls = sim.guides.merge(sim.cells[["cell", "day"]].astype(str), on="cell")
    calls["beta"] = beta.reindex(pd.MultiIndex.from_frame(calls[["guide", "day"]])).to_numpy()
    guide_sum = calls.groupby("cell")["beta"].sum().reindex(sim.cells["cell"]).fillna(0.0).to_numpy()
    nz = sim.nuisance
    burden = (sim.cells["n_guides"] - nz["mean_burden"]).to_numpy()
    return sim.cells["replicate"].astype(str).map(nz["b"][fate]).to_numpy() + nz["gamma"][fate] * burden + guide_sum


# --- files and layouts -----------------------------------------------------------------------------------------

def test_outputs_exist_and_samplesheet_is_complete(sim):
    sheet = sim.sheet
    assert list(sheet.columns) == SHEET_COLUMNS
    assert sheet["sample"].tolist() == [f"d{d}_r{r}" for d in range(4) for r in (1, 2)]
    assert (sheet["batch"] == sheet["replicate"].str.replace("r", "batch")).all()
    for column in ("counts", "guides", "fate_probs"):
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in sheet[column])
    for name in ("guide_map.csv", "sim_metadata.yaml", "resources/sim.genes_vs_motifs.rankings.feather", "resources/motifs.tbl",
                 "resources/tf_list.txt", "truth/sim_recovery.csv", "truth/guide_truth.csv", "truth/nuisance.yaml",
                 "truth/regulons_truth.csv", "truth/cells.parquet", "truth/batch_effects.parquet", "versions.yml"):
        assert (sim.outdir / name).is_file(), name
    assert list(sim.guide_map.columns) == ["guide_name", "gene_name", "is_ntc"]
    assert set(sim.guide_map["is_ntc"]) == {"true", "false"}
    assert (sim.guide_map.loc[sim.guide_map["is_ntc"] == "true", "gene_name"] == "NTC").all()
    assert len(sim.guide_map) == 40 * 4 + 8
    written = {str(p.relative_to(sim.outdir)) for p in sim.outdir.rglob("*") if p.is_file()}
    assert set(sim.metadata["files"]) <= written
    assert sim.metadata["inputs"] == {**SimParams().as_dict(), "fate_probs": True}
    assert sim.metadata["fatescope_version"] and sim.metadata["truth_threshold"] == sim.nuisance["truth_threshold"]


def test_counts_are_integers_with_barcodes_and_symbols(sim):
    one = ad.read_h5ad(sim.sheet["counts"].iloc[0])
    assert one.n_obs == 500 and one.n_vars == 1200
    assert one.obs_names.is_unique and one.obs_names.str.fullmatch(r"[ACGT]{16}-1").all()
    assert one.var_names.is_unique and set(MITO_GENES) <= set(one.var_names)
    assert one.var_names.str.fullmatch(r"(TF\d{2}|GENE\d{4}|MT-\w+)").all()
    assert np.array_equal(one.X.data, np.round(one.X.data)) and one.X.data.min() > 0
    assert sim.cells["cell"].is_unique and len(sim.cells) == 4000


def test_same_seed_same_files_other_seed_differs(tmp_path):
    first, second, other = (tmp_path / n for n in ("a", "b", "c"))
    run(outdir=str(first), seed=1, **SMALL)
    run(outdir=str(second), seed=1, **SMALL)
    run(outdir=str(other), seed=2, **SMALL)
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    for name in files:
        if name in ("samplesheet.csv", "command.txt"):  # absolute paths differ by design
            continue
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    sheets = [pd.read_csv(d / "samplesheet.csv") for d in (first, second)]
    assert sheets[0]["counts"].str.replace(str(first), "").equals(sheets[1]["counts"].str.replace(str(second), ""))
    for name in ("samples/d0_r1.h5ad", "truth/sim_recovery.csv", "resources/sim.genes_vs_motifs.rankings.feather"):
        assert (first / name).read_bytes() != (other / name).read_bytes(), name


def test_invalid_parameters_fail_cleanly(tmp_path):
    with pytest.raises(InputError, match="n_genes"):
        SimParams(n_genes=100)
    with pytest.raises(InputError, match="n_motifs"):
        SimParams(n_motifs=5)
    with pytest.raises(InputError, match="unknown parameter"):
        run(outdir=str(tmp_path / "x"), n_cell=10)
    result = CliRunner().invoke(command, ["--outdir", str(tmp_path / "y"), "--kmax", "500"])
    assert result.exit_code != 0 and "kmax" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_failure_mid_run_leaves_no_output(tmp_path, monkeypatch):
    import fatescope.datasets as cli

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cli, "_write_truth", broken)
    with pytest.raises(RuntimeError):
        run(outdir=str(tmp_path / "out"), **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_help_shows_every_option_with_default_and_help():
    text = CliRunner().invoke(command, ["--help"], terminal_width=200).output
    for option in OPTIONS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(option + " "))
        assert len(line.split(None, 2)) == 3, f"{option} has no help text"
    for flag in FLAGS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{flag} / --no-{flag[2:]} "))
        assert len(line.split(None, 4)) == 5, f"{flag} has no help text"
    assert text.count("[default:") == len(OPTIONS) + len(FLAGS)
    assert [f"--{f.name.replace('_', '-')}" for f in option_fields()] == OPTIONS[1:]


# --- guides and MOI --------------------------------------------------------------------------------------------

def test_guides_per_cell_follow_truncated_poisson_with_ntc_fraction(sim):
    per_cell = sim.guides.groupby("cell")["guide"].agg(["size", "nunique"])
    assert (per_cell["size"] == per_cell["nunique"]).all(), "a cell carries the same guide twice"
    k = per_cell["size"].reindex(sim.cells["cell"]).fillna(0).to_numpy()
    assert np.array_equal(k, sim.cells["n_guides"].to_numpy())
    assert k.max() <= 20 and abs(k.mean() - 3.0) < 0.1
    ntc = set(sim.guide_map.loc[sim.guide_map["is_ntc"] == "true", "guide_name"])
    assert abs(sim.guides["guide"].isin(ntc).mean() - 0.1) < 0.02
    targeting_use = sim.guides.loc[~sim.guides["guide"].isin(ntc), "guide"].value_counts()
    assert len(targeting_use) == 160 and targeting_use.min() > 30  # every guide is used, roughly uniformly


def test_truncation_at_kmax_is_a_conditional_poisson():
    rng = np.random.default_rng(3)
    k = truncated_poisson(rng, 5.0, 4, 200_000)
    support = np.arange(5)
    pmf = 5.0 ** support / np.array([1, 1, 2, 6, 24])
    assert k.max() == 4 and abs(k.mean() - (support * pmf).sum() / pmf.sum()) < 0.02
    params = SimParams(moi=5.0, kmax=4, ntc_frac=0.5, n_ntc_guides=2)
    guides = assign_guides(np.random.default_rng(4), 20_000, params)
    real = guides != NO_GUIDE
    assert real.sum(axis=1).max() == 4
    assert ((guides >= params.n_targeting_guides) & real).sum(axis=1).max() <= 2  # capped at the NTC pool
    rows = np.where(real, guides, -1 - np.arange(guides.shape[1]))
    assert all(len(set(r)) == len(r) for r in rows)


# --- fate model ------------------------------------------------------------------------------------------------

def test_fate_probs_are_probabilities_and_true_pi_follows_the_spec(sim):
    probs = sim.probs[list(FATES)].to_numpy()
    assert (probs > 0).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-8)
    pi = sim.cells[[f"pi_{f}" for f in FATES]].to_numpy()
    assert np.allclose(pi.sum(axis=1), 1.0)
    alpha = sim.cells["day"].astype(str)
    for fate in ("MES", "NEU"):
        eta = alpha.map(sim.nuisance["alpha"][fate]).to_numpy() + non_alpha_terms(sim, fate)
        assert np.allclose(np.log(sim.cells[f"pi_{fate}"] / sim.cells["pi_EC"]), eta, atol=1e-9)
    assert all(np.diff(list(sim.nuisance["alpha"][f].values())).min() > 0 for f in ("MES", "NEU"))
    assert all(abs(sum(sim.nuisance["b"][f].values())) < 1e-12 for f in ("MES", "NEU"))


def test_observed_mes_log_ratio_matches_alpha_per_day(sim):
    ratio = mes_log_ratio(sim)
    days = sim.cells["day"].astype(str).to_numpy()
    conc = sim.metadata["inputs"]["dirichlet_conc"]
    pi_mes, pi_ec = sim.cells["pi_MES"].to_numpy(), sim.cells["pi_EC"].to_numpy()
    # under Dirichlet(c pi): E[log p_MES - log p_EC] = digamma(c pi_MES) - digamma(c pi_EC), variance = trigamma sum
    dirichlet_bias = digamma(conc * pi_mes) - digamma(conc * pi_ec) - np.log(pi_mes / pi_ec)
    variance = polygamma(1, conc * pi_mes) + polygamma(1, conc * pi_ec)
    estimate = ratio - dirichlet_bias - non_alpha_terms(sim, "MES")
    alphas = sim.nuisance["alpha"]["MES"]
    for day, alpha in alphas.items():
        at_day = days == day
        standard_error = np.sqrt(variance[at_day].sum()) / at_day.sum()
        assert abs(estimate[at_day].mean() - alpha) < 4 * standard_error + 0.02, (day, estimate[at_day].mean(), alpha)
    assert min(np.diff(list(alphas.values()))) > 0.2  # the check can tell the days apart


def test_planted_hits_are_strong_and_nulls_exactly_zero(sim):
    rec = sim.recovery
    assert list(rec.columns[:5]) == ["gene", "fate", "day", "theta", "is_hit"]
    assert rec.groupby("gene")["hit_gene"].first().sum() == 10
    assert (rec.loc[~rec["hit_gene"], "theta"] == 0).all()
    assert (rec["is_hit"] == (rec["theta"].abs() >= sim.nuisance["truth_threshold"])).all()
    hits = rec[rec["hit_gene"]]
    assert (hits.loc[hits["day"].isin(["d0", "d3"]), "theta"].abs() >= sim.nuisance["tau"]["MES"] - 1e-12).all()
    assert (hits.loc[hits["day"].isin(["d2", "d3"]), "theta"].abs() > 0.3).mean() > 0.85
    gt = sim.guide_truth[sim.guide_truth["gene"] != "NTC"]
    assert gt.groupby(["gene", "fate", "day"])["delta"].mean().abs().max() < 1e-12
    mean_beta = gt.groupby(["gene", "fate", "day"])["beta"].mean()
    theta = rec.set_index(["gene", "fate", "day"])["theta"]
    assert np.allclose(mean_beta, theta.reindex(mean_beta.index))


def test_cells_carrying_hit_guides_shift_fate_as_planted(sim):
    ratio = mes_log_ratio(sim)
    last = (sim.cells["day"].astype(str) == "d3").to_numpy()
    truth = sim.recovery[(sim.recovery["fate"] == "MES") & (sim.recovery["day"] == "d3")].set_index("gene")
    shifts = pd.Series({g: ratio[last & carriers(sim, g)].mean() - ratio[last & ~carriers(sim, g)].mean() for g in truth.index})
    strongest = truth["theta"].abs().idxmax()
    assert np.sign(shifts[strongest]) == np.sign(truth.at[strongest, "theta"])
    assert abs(shifts[strongest]) > 0.5 * abs(truth.at[strongest, "theta"])
    assert np.corrcoef(shifts, truth["theta"])[0, 1] > 0.8
    assert shifts[~truth["hit_gene"]].abs().mean() < 0.25


# --- expression ------------------------------------------------------------------------------------------------

def test_detected_genes_per_cell_in_documented_range(sim):
    detected = (sim.counts > 0).sum(axis=1)
    assert 800 <= np.median(detected) <= 1000
    assert (detected >= 600).mean() > 0.95
    assert sim.metadata["summary"]["median_genes_detected"] == np.median(detected)
    mito = np.isin(sim.genes, MITO_GENES)
    assert 0.01 < np.median(sim.counts[:, mito].sum(axis=1) / sim.counts.sum(axis=1)) < 0.1


def test_tf_target_coexpression_exceeds_random_genes(sim):
    z = (sim.lognorm - sim.lognorm.mean(axis=0)) / (sim.lognorm.std(axis=0) + 1e-9)
    column = {g: i for i, g in enumerate(sim.genes)}
    background = sim.gene_roles.index[sim.gene_roles["role"] == "background"].to_numpy()
    rng = np.random.default_rng(0)
    planted, random = [], []
    for tf, edges in sim.regulons.groupby("tf"):
        planted += [(z[:, column[tf]] * z[:, column[t]]).mean() for t in edges["target"]]
        random += [(z[:, column[tf]] * z[:, column[g]]).mean() for g in rng.choice(background, len(edges))]
    assert np.mean(planted) > np.mean(random) + 0.2
    assert np.mean(np.array(planted) > np.quantile(random, 0.95)) > 0.8


def test_knockdown_lowers_the_target_gene_in_carrying_cells(sim):
    norm = sim.counts / sim.counts.sum(axis=1, keepdims=True)
    ratios = []
    for gene in sim.guide_map.loc[sim.guide_map["is_ntc"] == "false", "gene_name"].unique():
        j = sim.genes.get_loc(gene)
        carry = carriers(sim, gene)
        ratios.append(norm[carry, j].mean() / norm[~carry, j].mean())
    assert np.mean(np.array(ratios) < 0.6) > 0.9
    assert 0.1 < np.median(ratios) < 0.45  # efficiencies 0.6-0.9 leave 10-40% of expression


def test_batch_effects_show_in_gene_means(sim):
    effects = pd.read_parquet(sim.outdir / "truth" / "batch_effects.parquet")
    assert list(effects.columns) == ["batch", "gene", "log_fold"] and set(effects["batch"]) == {"batch1", "batch2"}
    folds = effects.pivot(index="gene", columns="batch", values="log_fold").loc[sim.genes]
    norm = sim.counts / sim.counts.sum(axis=1, keepdims=True)
    batch = sim.cells["batch"].astype(str).to_numpy()
    observed = np.log(norm[batch == "batch2"].mean(axis=0) + 1e-6) - np.log(norm[batch == "batch1"].mean(axis=0) + 1e-6)
    expressed = (sim.counts > 0).mean(axis=0) > 0.5
    planted = (folds["batch2"] - folds["batch1"]).to_numpy()
    assert np.corrcoef(observed[expressed], planted[expressed])[0, 1] > 0.8


# --- cisTarget resources ---------------------------------------------------------------------------------------

def test_ranking_db_layout_and_planted_motifs(sim):
    table = feather.read_table(sim.outdir / "resources" / "sim.genes_vs_motifs.rankings.feather")
    assert str(table.schema.field("motifs").type) == "string"
    db = table.to_pandas().set_index("motifs")
    n_genes = db.shape[1]
    assert all(str(t).startswith("int") for t in db.dtypes)
    assert (np.sort(db.to_numpy(), axis=1) == np.arange(n_genes)).all()
    assert not any(g.startswith("MT-") for g in db.columns) and n_genes == 1200 - len(MITO_GENES)
    motifs = pd.read_csv(sim.outdir / "truth" / "motifs.csv", keep_default_na=False)
    assert motifs["planted"].sum() == 24 and len(motifs) == 100 == len(db)
    top = 0.05 * n_genes
    for motif, tf in motifs[["motif", "tf"]].itertuples(index=False):
        targets = sim.regulons.loc[sim.regulons["tf"] == (tf or "TF01"), "target"]
        in_top = (db.loc[motif, targets] < top).mean()
        assert in_top >= 0.6 if tf else in_top <= 0.25, (motif, tf, in_top)


def test_motif_annotations_and_tf_list(sim):
    tbl = pd.read_csv(sim.outdir / "resources" / "motifs.tbl", sep="\t")
    assert list(tbl.columns) == TBL_COLUMNS
    motifs = pd.read_csv(sim.outdir / "truth" / "motifs.csv", keep_default_na=False)
    planted = motifs[motifs["planted"]].set_index("motif")["tf"]
    kept = tbl[(tbl["motif_similarity_qvalue"] <= 0.001) & (tbl["orthologous_identity"] >= 0.0)]
    assert (kept.set_index("#motif_id").reindex(planted.index)["gene_name"] == planted).all()
    decoy_rows = tbl[~tbl["#motif_id"].isin(planted.index)]
    assert (decoy_rows["motif_similarity_qvalue"] > 0.001).any() and (decoy_rows["motif_similarity_qvalue"] <= 0.001).any()
    tf_list = (sim.outdir / "resources" / "tf_list.txt").read_text().split()
    planted_tfs = set(sim.regulons["tf"])
    assert planted_tfs < set(tf_list) and set(tf_list) <= set(sim.genes)
    assert len(set(tf_list) - planted_tfs) >= 2


# --- downstream compatibility and scale --------------------------------------------------------------------------

def test_outputs_load_in_qc(sim, tmp_path):
    from fatescope.cli.qc import run as qc_run

    path = qc_run(input=str(sim.sheet_path), guide_map=str(sim.outdir / "guide_map.csv"), outdir=str(tmp_path / "qc"),
                  min_features=300)
    cells = ad.read_h5ad(path)
    assert cells.n_obs > 0.95 * len(sim.cells)
    assert cells.obsm["guides"].shape == (cells.n_obs, len(sim.guide_map))
    assert list(cells.uns["fate_names"]) == list(FATES)
    truth = sim.cells.set_index("cell").loc[cells.obs_names]
    assert np.array_equal(np.asarray(cells.obsm["guides"].sum(axis=1)).ravel(), truth["n_guides"].to_numpy())
    assert np.allclose(cells.obsm["fate_probs"], sim.probs.loc[cells.obs_names, list(FATES)].to_numpy())


MEMORY_SCRIPT = """
import json, resource, sys
from fatescope.cli.simulate import run
run(outdir=sys.argv[1], n_cells=int(sys.argv[2]), n_days=4, n_replicates=int(sys.argv[3]))
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def test_peak_memory_follows_sample_size_not_total(tmp_path):
    """4x the cells in 4x the samples (same cells per sample) must not cost 4x the counts in memory."""
    peaks, nnz = [], []
    for n_cells, n_reps in ((4000, 2), (16000, 8)):
        outdir = tmp_path / f"n{n_cells}"
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(outdir), str(n_cells), str(n_reps)],
                              capture_output=True, text=True, check=True)
        peaks.append(json.loads(done.stdout.strip().splitlines()[-1]) * 1024)
        nnz.append(int(pd.read_parquet(outdir / "truth" / "cells.parquet")["n_genes_detected"].sum()))
    extra_counts_bytes = 8 * (nnz[1] - nnz[0])  # float32 values + int32 indices of the extra cells
    assert peaks[1] - peaks[0] < 0.5 * extra_counts_bytes, (peaks, extra_counts_bytes)


# --- the independent fate-effect generator ---------------------------------------------------------------------------

def test_alt_effects_generator_is_seeded_and_consistent():
    from fatescope.fate.encoding import encode
    from fatescope.simulate.alt_effects import AltParams, alt_simulation
    p = AltParams(seed=3, n_cells=600, n_genes=20, n_ntc_guides=6)
    adata, truth = alt_simulation(p)
    again, truth2 = alt_simulation(p)
    assert (adata.obsm["guides"] != again.obsm["guides"]).nnz == 0 and truth.equals(truth2)
    probs = adata.obsm["fate_probs"]
    assert np.allclose(probs.sum(1), 1) and (probs > 0).all()
    assert adata.obsm["guides"].getnnz(axis=1).max() <= p.kmax
    per_gene = truth.groupby(["gene", "fate"])["theta"].apply(lambda t: (t != 0).any())
    assert per_gene.groupby(level="gene").any().sum() == round(p.frac_hit_genes * p.n_genes)
    assert (truth["is_hit"] == (truth["theta"].abs() >= 0.2)).all()
    enc = encode(adata, None)  # the fate model reads it as it is
    assert enc.n_genes == p.n_genes and enc.fates[0] == "EC"
