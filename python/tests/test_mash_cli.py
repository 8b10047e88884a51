"""CLI round trips of mash -> aggregate -> rank on tables made from the mashr reference input, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mash_reference import DAYS, gene_table, guide_table, matrix

from fatescope.cli import main
from fatescope.cli import mash as mash_cli


def invoke(*args):
    return CliRunner().invoke(main, ["--log-level", "WARNING", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("mash")
    gene = gene_table(root / "gene_daywise_for_mash.csv")
    guide = guide_table(root / "guide_daywise_for_mash.csv", gene, 0, range(0, 2000, 25))  # 80 genes x 3 guides
    return root, gene, guide


def test_mash_cli_reproduces_mashr_in_both_modes(tables):
    """With V = I, the nullbiased prior and npc = 3, enriched = make_ref.R's canonical + ED fit."""
    root, gene, _ = tables
    out = root / "ref_run"
    res = invoke("mash", "--input", gene, "--outdir", out, "--no-estimate-v", "--npc", 3, "--prior", "nullbiased")
    assert res.exit_code == 0, res.output
    for mode, tag in (("conservative", "canon"), ("enriched", "canon_ed")):
        table = pd.read_csv(out / f"mash_gene_{mode}.csv")
        assert list(table.columns) == ["gene"] + [f"{f}_{d}" for f in ("postmean", "postsd", "lfsr") for d in DAYS]
        for field, ref in (("postmean", "pm"), ("postsd", "psd"), ("lfsr", "lfsr")):
            np.testing.assert_allclose(table.filter(like=f"{field}_").to_numpy(), matrix(f"{tag}_{ref}.csv"), atol=1e-4)
        fit = json.loads((out / f"mash_gene_{mode}_fit.json").read_text())
        assert {"pi", "grid", "ulist", "V", "loglik"} <= set(fit)
    for name in ("versions.yml", "params.yaml", "command.txt"):
        assert (out / name).exists()


def test_fixg_fit_reuse(tables):
    root, gene, _ = tables
    first = root / "ref_run"
    res = invoke("mash", "--input", gene, "--outdir", root / "fixg", "--fixg-fit", first / "mash_gene_conservative_fit.json")
    assert res.exit_code == 0, res.output
    a = pd.read_csv(first / "mash_gene_conservative.csv")
    b = pd.read_csv(root / "fixg" / "mash_gene_conservative.csv")
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-9)


def test_mash_aggregate_rank_round_trip(tables):
    root, gene, guide = tables
    m, a, r = root / "mash", root / "aggregate", root / "rank"
    assert invoke("mash", "--input", gene, "--input", guide, "--outdir", m).exit_code == 0
    for kind in ("gene", "guide"):
        for mode in ("conservative", "enriched"):
            assert (m / f"mash_{kind}_{mode}.csv").exists()
    assert list(pd.read_csv(m / "mash_guide_enriched.csv").columns[:2]) == ["guide", "gene"]
    res = invoke("aggregate", "--input", m / "mash_guide_conservative.csv", "--input", m / "mash_guide_enriched.csv",
                 "--outdir", a)
    assert res.exit_code == 0, res.output
    agg = pd.read_csv(a / "gene_from_guide_mash_conservative.csv")
    assert len(agg) == 80 and (agg["n_guides"] == 3).all()
    assert {"active_days", "postmean_d0", "postsd_d6", "lfsr_d4"} <= set(agg.columns)
    res = invoke("rank", "--conservative", m / "mash_gene_conservative.csv", "--enriched", m / "mash_gene_enriched.csv",
                 "--outdir", r)
    assert res.exit_code == 0, res.output
    hits = pd.read_csv(r / "hits_ranked.csv")
    assert len(hits) == 2000 and hits["rank"].tolist() == list(range(1, 2001))
    n = int(hits["hit_anyday"].sum())
    assert 20 < n < 300 and hits["hit_anyday"].iloc[:n].all()
    # the planted null block (rows 1-500) gives almost no hits
    assert hits.loc[hits["hit_anyday"], "gene"].str[1:].astype(int).lt(500).sum() <= 2
    comp = pd.read_csv(r / "mash_mode_comparison.csv")
    assert comp["scope"].tolist() == ["anyday", *DAYS]
    assert (comp["sign_concordance"].dropna() == 1).all() and (comp["postmean_correlation"] > 0.95).all()


def _bad(tmp_path, name, edit):
    df = pd.read_csv(gene_table(tmp_path / "ok.csv")).head(50)
    df = edit(df)
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name, edit, expected", [
    ("nan_beta.csv", lambda d: d.assign(betahat_d2=d["betahat_d2"].where(d.index != 6)),
     ["nan_beta.csv", "row 7", "'G0006'", "betahat_d2"]),
    ("zero_se.csv", lambda d: d.assign(se_d4=d["se_d4"].where(d.index != 3, 0.0)),
     ["zero_se.csv", "row 4", "'G0003'", "se_d4", "not positive"]),
    ("neg_se.csv", lambda d: d.assign(se_d0=-1.0), ["neg_se.csv", "row 1", "se_d0"]),
    ("nan_se.csv", lambda d: d.assign(se_d6=d["se_d6"].where(d.index != 0)), ["nan_se.csv", "row 1", "se_d6"]),
    ("days.csv", lambda d: d.rename(columns={"se_d6": "se_d8"}), ["days.csv", "do not match", "d6", "d8"]),
    ("dup.csv", lambda d: d.assign(gene=d["gene"].where(d.index != 9, "G0002")), ["dup.csv", "duplicated", "'G0002'", "row 10"]),
    ("first.csv", lambda d: d.rename(columns={"gene": "name"}), ["first.csv", "'gene' or 'guide'"]),
])
def test_bad_input_names_file_row_column(tmp_path, name, edit, expected):
    path = _bad(tmp_path, name, edit)
    res = CliRunner().invoke(main, ["mash", "--input", str(path), "--outdir", str(tmp_path / "out")])
    assert res.exit_code == 1
    for text in expected:
        assert text in res.output, (text, res.output)
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_fit(tmp_path):
    res = CliRunner().invoke(main, ["mash", "--input", str(tmp_path / "nope.csv"), "--outdir", str(tmp_path / "o")])
    assert res.exit_code == 1 and "not found" in res.output
    bad = tmp_path / "fit.json"
    bad.write_text("{}")
    with pytest.raises(Exception, match="not a fatescope mash fit"):
        mash_cli.run(input=[str(gene_table(tmp_path / "g.csv"))], outdir=str(tmp_path / "o"), fixg_fit=str(bad))


def test_rank_and_aggregate_reject_bad_tables(tmp_path):
    bad = tmp_path / "mash_guide_x.csv"
    pd.DataFrame({"guide": ["a"], "gene": ["g"], "postmean_d0": [0.1], "postsd_d0": [0.1], "lfsr_d1": [0.5]}).to_csv(bad, index=False)
    res = CliRunner().invoke(main, ["aggregate", "--input", str(bad), "--outdir", str(tmp_path / "a")])
    assert res.exit_code == 1 and "lfsr_" in res.output
    res = CliRunner().invoke(main, ["rank", "--conservative", str(bad), "--outdir", str(tmp_path / "r")])
    assert res.exit_code == 1 and "lfsr_" in res.output


def test_bad_device_is_an_input_error(tmp_path):
    gene = str(gene_table(tmp_path / "g.csv"))
    res = CliRunner().invoke(main, ["mash", "--input", gene, "--device", "gpu0", "--outdir", str(tmp_path / "o")])
    assert res.exit_code == 1 and "not a valid torch device" in res.output


def test_mode_is_one_comma_separated_option(tmp_path):
    """--mode is a single string (one Nextflow param, mash_mode): comma-separated, validated, deduplicated."""
    opt = next(p for p in mash_cli.command.params if p.name == "mode")
    assert opt.default == "conservative,enriched" and not opt.multiple
    gene = str(gene_table(tmp_path / "g.csv"))
    res = invoke("mash", "--input", gene, "--mode", "conservative,conservative", "--outdir", tmp_path / "one")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "one").glob("mash_*.csv")) == ["mash_gene_conservative.csv"]
    for bad in ("conservative,lenient", "", ","):
        res = CliRunner().invoke(main, ["mash", "--input", gene, "--mode", bad, "--outdir", str(tmp_path / "bad")])
        assert res.exit_code == 2 and "comma-separated subset" in res.output, (bad, res.output)
    assert not (tmp_path / "bad").exists()
