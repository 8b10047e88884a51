"""mash split into a fit task, posterior tasks over effect chunks and a gather task (issue 17): the outputs are the
one-task run's to the bit. First the ground it stands on: the fixg posteriors of a saved fit are the fitting
run's posteriors, and the posteriors of any span of rows are those rows of the whole run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mash_reference import gene_table, guide_table

from fatescope.cli import main
from fatescope.cli import mash as mash_cli
from fatescope.errors import InputError
from fatescope.shrink.data import set_data, with_V
from fatescope.shrink.modes import MashSettings, run_mash
from fatescope.shrink.posterior import FIELDS, fixg_posterior

OUTPUTS = [f"mash_{k}_{m}{s}" for k in ("gene", "guide") for m in ("conservative", "enriched") for s in (".csv", "_fit.json")]


def invoke(*args):
    res = CliRunner().invoke(main, ["--log-level", "WARNING", *map(str, args)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The mashr reference case as the gene table (2,000 effects, one se per day) and a guide table with an se
    per effect (240 effects): both posterior code paths (one covariance for all, one per effect)."""
    root = tmp_path_factory.mktemp("mash_chunks")
    gene = gene_table(root / "gene_daywise_for_mash.csv")
    guide = guide_table(root / "guide_daywise_for_mash.csv", gene, 3, range(0, 2000, 25))
    return root, gene, guide


def split_run(root, inputs, size, *extra):
    """fit task, one posterior task per row of the plan, gather (chunk folders given in reverse order)."""
    args = [a for path in inputs for a in ("--input", path)]
    invoke("mash", *args, *extra, "--fit-only", "--effect-chunk-size", size, "--outdir", root / "fit")
    plan = pd.read_csv(root / "fit" / "mash_chunks.csv")
    by_name = {p.name: p for p in inputs}
    folders = []
    for r in plan.itertuples():
        folder = root / f"chunk_{r.kind}_{r.mode}_{r.chunk}"
        invoke("mash", "--input", by_name[r.input], "--fixg-fit", root / "fit" / r.fit, *extra,
               "--effect-chunk-size", size, "--effect-chunk", r.chunk, "--outdir", folder)
        folders.append(folder)
    invoke("mash", "--gather", root / "fit", *[a for f in folders[::-1] for a in ("--gather", f)], "--outdir", root / "mash")
    return plan, folders


@pytest.mark.parametrize("estimate_v", [True, False])
def test_fixg_of_the_saved_fit_is_the_fitting_runs_posterior(tables, tmp_path, estimate_v):
    root, gene, guide = tables
    flag = "--estimate-v" if estimate_v else "--no-estimate-v"
    invoke("mash", "--input", gene, "--input", guide, flag, "--outdir", tmp_path / "fit")
    for kind, table in (("gene", gene), ("guide", guide)):
        for mode in ("conservative", "enriched"):
            out = tmp_path / f"fixg_{kind}_{mode}"
            invoke("mash", "--input", table, flag, "--fixg-fit", tmp_path / "fit" / f"mash_{kind}_{mode}_fit.json",
                   "--outdir", out)
            fitted = (tmp_path / "fit" / f"mash_{kind}_{mode}.csv").read_text()
            assert (out / f"mash_{kind}_{mode}.csv").read_text() == fitted
            post = pd.read_csv(out / f"mash_{kind}_{mode}.csv")
            assert len(post) == (2000 if kind == "gene" else 240)
    fit = json.loads((tmp_path / "fit" / "mash_gene_conservative_fit.json").read_text())
    assert fit["info"]["V"] == ("estimate_null_correlation_simple" if estimate_v else "identity")
    gene_post = pd.read_csv(tmp_path / "fit" / "mash_gene_conservative.csv")
    assert 100 < int((gene_post.filter(like="lfsr_").min(axis=1) < 0.05).sum()) < 2000


def test_posterior_rows_are_computed_in_the_whole_tables_batches():
    """Spans of any size give the whole run's bits, also when the table takes many batches (a small budget):
    each span computes the whole table's batches it overlaps."""
    rng = np.random.default_rng(0)
    J = 600
    for shat in (rng.uniform(0.7, 1.4, size=(J, 4)), np.ones((J, 4))):
        bhat = rng.normal(size=(J, 4)) * shat
        bhat[:60] += 3 * rng.normal(size=(60, 1))
        fit = run_mash(bhat, shat, list("abcd"), MashSettings(device="cpu"), posterior=False).fit
        keep = fit.pi > 1e-10
        data, xU, pi = with_V(set_data(bhat, shat), fit.V), fit.expanded()[keep], fit.pi[keep]
        budget = 37 * len(xU) * 25       # batches of 37 (one se per effect) or 925 rows (one se for all)
        whole, loglik = fixg_posterior(data, xU, pi, "cpu", budget=budget)
        assert np.isfinite(loglik).all() and whole.lfsr.min() < 0.01
        for n in (1, 7, 50, 599):
            parts = [fixg_posterior(data, xU, pi, "cpu", (i, min(i + n, J)), budget=budget) for i in range(0, J, n)]
            for f in FIELDS:
                assert np.array_equal(np.concatenate([getattr(p, f) for p, _ in parts]), getattr(whole, f)), (n, f)
            assert np.array_equal(np.concatenate([ll for _, ll in parts]), loglik)


@pytest.mark.parametrize("size", [450, 2000])
def test_chunked_posteriors_equal_the_one_task_run(tables, tmp_path, size):
    """450: the gene table in 5 chunks (the last of 200), the guide table in one smaller than the size;
    2000: one chunk each (the gene table exactly)."""
    root, gene, guide = tables
    invoke("mash", "--input", gene, "--input", guide, "--outdir", tmp_path / "one")
    invoke("mash", "--input", gene, "--input", guide, "--effect-chunk-size", size, "--outdir", tmp_path / "local")
    plan, _ = split_run(tmp_path, [gene, guide], size)
    n_gene = -(-2000 // size)
    assert len(plan) == 2 * n_gene + 2
    assert plan.query("kind == 'gene'")["stop"].max() == 2000 and plan.query("kind == 'guide'")["stop"].max() == 240
    for name in OUTPUTS:
        one = (tmp_path / "one" / name).read_text()
        assert (tmp_path / "mash" / name).read_text() == one, name
        assert (tmp_path / "local" / name).read_text() == one, name
    post = pd.read_csv(tmp_path / "mash" / "mash_gene_enriched.csv", float_precision="round_trip")
    assert post.shape == (2000, 13) and list(post["gene"][:2]) == ["G0000", "G0001"]
    assert 100 < int((post.filter(like="lfsr_").min(axis=1) < 0.05).sum()) < 2000


def test_fit_on_a_subset_then_chunks(tables, tmp_path):
    """--fit-max-effects: the fit task fits on the seeded subset; the chunks' per-effect log-likelihoods add up to
    the one-task run's log-likelihood of every effect (an exactly rounded sum)."""
    root, gene, _ = tables
    extra = ("--fit-max-effects", 1500, "--mode", "conservative")
    invoke("mash", "--input", gene, *extra, "--outdir", tmp_path / "one")
    split_run(tmp_path, [gene], 700, *extra)
    for name in ("mash_gene_conservative.csv", "mash_gene_conservative_fit.json"):
        assert (tmp_path / "mash" / name).read_text() == (tmp_path / "one" / name).read_text(), name
    one = json.loads((tmp_path / "one" / "mash_gene_conservative_fit.json").read_text())
    fit_task = json.loads((tmp_path / "fit" / "mash_gene_conservative_fit.json").read_text())
    assert "random subset of 1500" in one["info"]["fit_on"]
    assert one["loglik"] < fit_task["loglik"] - 1000   # 2,000 effects vs the 1,500 of the fit
    assert abs(one["loglik"] / 2000 - fit_task["loglik"] / 1500) < 0.5


def test_bad_splits_are_input_errors(tables, tmp_path):
    root, gene, guide = tables
    _, folders = split_run(tmp_path, [gene], 700, "--mode", "conservative")
    fit = tmp_path / "fit"

    def gather(*paths):
        return mash_cli.run(gather=[str(fit), *map(str, paths)], outdir=str(tmp_path / "out"))

    with pytest.raises(InputError, match=r"missing chunk\(s\) 1 \(effects 700..1399\)"):
        gather(folders[0], folders[2])
    with pytest.raises(InputError, match="chunk 0 .* is given 2 times"):
        gather(folders[0], folders[0], folders[1], folders[2])
    with pytest.raises(InputError, match="exactly one mash --fit-only folder, got 0"):
        mash_cli.run(gather=[str(f) for f in folders], outdir=str(tmp_path / "out"))
    with pytest.raises(InputError, match="chunk 3 of 700 effects would start at 2100, past the 2000 effects"):
        mash_cli.run(input=[str(gene)], fixg_fit=str(fit / "mash_gene_conservative_fit.json"), effect_chunk_size=700,
                     effect_chunk=3, outdir=str(tmp_path / "c3"))
    # a chunk of another table under the same fit: a different input
    other = tmp_path / "other.csv"
    pd.read_csv(gene, dtype=str).assign(betahat_d0=lambda d: d["betahat_d0"].where(d.index != 5, "0.5")).to_csv(other, index=False)
    mash_cli.run(input=[str(other)], fixg_fit=str(fit / "mash_gene_conservative_fit.json"), effect_chunk_size=700,
                 effect_chunk=1, outdir=str(tmp_path / "other1"))
    with pytest.raises(InputError, match="different input table"):
        gather(folders[0], tmp_path / "other1", folders[2])
    # a chunk under another fit (V = I), and a chunk of a table the fit folder has no fit for
    mash_cli.run(input=[str(gene)], mode="conservative", estimate_v=False, effect_chunk_size=700, fit_only=True,
                 outdir=str(tmp_path / "fit2"))
    mash_cli.run(input=[str(gene)], fixg_fit=str(tmp_path / "fit2" / "mash_gene_conservative_fit.json"),
                 effect_chunk_size=700, effect_chunk=1, outdir=str(tmp_path / "v1"))
    with pytest.raises(InputError, match="under a different fit than mash_gene_conservative_fit.json"):
        gather(folders[0], tmp_path / "v1", folders[2])
    mash_cli.run(input=[str(guide)], fixg_fit=str(fit / "mash_gene_conservative_fit.json"), effect_chunk_size=700,
                 effect_chunk=0, outdir=str(tmp_path / "guide0"))
    with pytest.raises(InputError, match="a chunk of guide/conservative, which .* has no fit for"):
        gather(*folders, tmp_path / "guide0")
    with pytest.raises(InputError, match="--effect-chunk-size and --fixg-fit"):
        mash_cli.run(input=[str(gene)], effect_chunk_size=700, effect_chunk=0, outdir=str(tmp_path / "x"))
    with pytest.raises(InputError, match="--engine python"):
        mash_cli.run(input=[str(gene)], engine="r", effect_chunk_size=700, fit_only=True, outdir=str(tmp_path / "x"))
    with pytest.raises(InputError, match="without --fit-only and --effect-chunk"):
        mash_cli.run(gather=[str(fit)], fit_only=True, outdir=str(tmp_path / "x"))
    res = CliRunner().invoke(main, ["mash", "--outdir", str(tmp_path / "x")])
    assert res.exit_code == 1 and "no input table given (--input)" in res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists() and not (tmp_path / "c3").exists()
