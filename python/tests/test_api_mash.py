"""fs.tl.mash / aggregate / rank_hits give the CLI's outputs, bit for bit as written, on the same tables."""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mash_reference import DAYS, gene_table, guide_table

import fatescope as fs
from fatescope.cli import aggregate as aggregate_cli
from fatescope.cli import main
from fatescope.cli import mash as mash_cli
from fatescope.cli import rank as rank_cli
from fatescope.errors import InputError


def invoke(*args):
    res = CliRunner().invoke(main, ["--log-level", "WARNING", *map(str, args)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def text(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def run_cli(tmp_path_factory):
    """The CLI chain on the reference gene table (2,000 x 4) and a 60 x 3-guide table made from it."""
    root = tmp_path_factory.mktemp("api_mash")
    gene = gene_table(root / "gene_daywise_for_mash.csv")
    guide = guide_table(root / "guide_daywise_for_mash.csv", gene, 1, range(0, 1800, 30))
    m, a, r = root / "mash", root / "aggregate", root / "rank"
    invoke("mash", "--input", gene, "--input", guide, "--outdir", m)
    invoke("aggregate", "--input", m / "mash_guide_conservative.csv", "--outdir", a)
    invoke("rank", "--conservative", m / "mash_gene_conservative.csv", "--enriched", m / "mash_gene_enriched.csv",
           "--outdir", r, "--hits-mode", "enriched")
    return root, gene, guide


@pytest.mark.parametrize("kind", ["gene", "guide"])
@pytest.mark.parametrize("mode", ["conservative", "enriched"])
def test_mash_equals_cli(run_cli, kind, mode):
    root, gene, guide = run_cli
    path = gene if kind == "gene" else guide
    res = fs.tl.mash(text(path), mode=mode)
    cli_csv = (root / "mash" / f"mash_{kind}_{mode}.csv").read_text()
    assert res.to_frame().to_csv(index=False, float_format="%.12g") == cli_csv
    # numeric columns read with a correctly rounded parser hold the same doubles: same result
    same = fs.tl.mash(pd.read_csv(path, float_precision="round_trip"), mode=mode)
    np.testing.assert_array_equal(same.posterior.lfsr, res.posterior.lfsr)
    assert list(res.lfsr.columns) == [f"lfsr_{d}" for d in DAYS] and res.lfsr.index.name == kind
    np.testing.assert_array_equal(res.postmean.to_numpy(), res.posterior.mean)


def test_mash_fixg_reuses_the_fit(run_cli):
    _, gene, _ = run_cli
    first = fs.tl.mash(text(gene))
    again = fs.tl.mash(text(gene).head(5), fixg_fit=first.fit)
    np.testing.assert_allclose(again.posterior.mean, first.posterior.mean[:5], atol=1e-9)


def test_aggregate_and_rank_equal_cli(run_cli):
    root = run_cli[0]
    m = root / "mash"
    agg = fs.tl.aggregate(text(m / "mash_guide_conservative.csv"))
    assert agg.to_csv(index=False, float_format="%.12g") == (root / "aggregate" / "gene_from_guide_mash_conservative.csv").read_text()
    hits, comparison = fs.tl.rank_hits(text(m / "mash_gene_conservative.csv"), text(m / "mash_gene_enriched.csv"),
                                       hits_mode="enriched")
    assert hits.to_csv(index=False, float_format="%.10g") == (root / "rank" / "hits_ranked.csv").read_text()
    assert comparison.to_csv(index=False, float_format="%.6g") == (root / "rank" / "mash_mode_comparison.csv").read_text()
    assert 20 < hits["hit_anyday"].sum() < 300


def test_cli_defaults_come_from_the_api():
    for cli, api in ((mash_cli, fs.tl.mash), (aggregate_cli, fs.tl.aggregate), (rank_cli, fs.tl.rank_hits)):
        sig = inspect.signature(api).parameters
        shared = [p for p in cli.command.params if p.name in sig and p.name != "mode"
                  and sig[p.name].default is not inspect.Parameter.empty]
        assert shared
        for p in shared:
            assert p.default == sig[p.name].default, (cli.__name__, p.name)
    assert next(p for p in mash_cli.command.params if p.name == "mode").default == "conservative,enriched"


def test_bad_arguments(run_cli):
    root, gene, _ = run_cli
    with pytest.raises(InputError, match="mode must be one of"):
        fs.tl.mash(text(gene), mode="lenient")
    with pytest.raises(InputError, match="DataFrame"):
        fs.tl.mash(np.zeros((3, 3)))
    with pytest.raises(InputError, match="MashFit"):
        fs.tl.mash(text(gene), fixg_fit="fit.json")
    with pytest.raises(InputError, match="se_d4"):
        fs.tl.mash(text(gene).assign(se_d4="0"))
    with pytest.raises(InputError, match="needs the enriched table"):
        fs.tl.rank_hits(text(root / "mash" / "mash_gene_conservative.csv"), hits_mode="enriched")
    with pytest.raises(InputError, match="no 'postmean_<day>' columns"):
        fs.tl.aggregate(text(gene).assign(guide="g"))


def test_fate_figures(run_cli):
    m = run_cli[0] / "mash"
    cons = pd.read_csv(m / "mash_gene_conservative.csv")
    hits, _ = fs.tl.rank_hits(cons)
    fig = fs.pl.fate_heatmap(cons, hits, top_hits=7)
    assert len(fig.axes[0].get_yticklabels()) == 7
    fig = fs.pl.volcano(cons, hits)
    titles = [ax.get_title() for ax in fig.axes[:len(DAYS)]]
    assert titles == [f"{d} ({int(hits[f'hit_{d}'].sum())} hits)" for d in DAYS]
    with pytest.raises(InputError, match="posterior DataFrame"):
        fs.pl.volcano(hits)
