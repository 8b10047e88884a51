"""fs.tl.fate_fit: equal to the fate-fit stage's files, independent model state (two fits in one process give
what two processes give), the caller's random streams and pyro's global store untouched, save/load."""
from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pyro
import pytest
import torch
from click.testing import CliRunner

import fatescope as fs
from fatescope.cli import main
from fatescope.fate.synthetic import simulated_cells

OPTS = dict(num_steps=300, min_steps=100, plateau_window=50, batch_size=512, num_draws=100, device="cpu")
CLI_OPTS = ["--num-steps", "300", "--min-steps", "100", "--plateau-window", "50", "--batch-size", "512",
            "--num-draws", "100", "--device", "cpu"]
SIM = dict(n_cells=1500, n_perturbed_genes=8, frac_hit_genes=0.25, moi=3, dirichlet_conc=50, ntc_frac=0.4)
# a fit of data A (seed 2) in a fresh process: its theta means and sds
FRESH = """
import sys, numpy as np, fatescope as fs
from fatescope.fate.synthetic import simulated_cells
adata = simulated_cells(seed=2, {sim})[0]
fit = fs.tl.fate_fit(adata, {opts})
np.savez(sys.argv[1], mean=fit.posterior.theta_mean, sd=fit.posterior.theta_sd, beta=fit.posterior.beta_sd)
"""


@pytest.fixture(scope="module")
def cells():
    return simulated_cells(seed=2, **SIM)[0], simulated_cells(seed=3, **SIM)[0]


@pytest.fixture(scope="module")
def fit_a(cells):
    return fs.tl.fate_fit(cells[0], **OPTS)


def test_api_equals_the_cli(cells, fit_a, tmp_path):
    cells[0].write_h5ad(tmp_path / "cells.h5ad")
    res = CliRunner().invoke(main, ["fate-fit", "--input", str(tmp_path / "cells.h5ad"), "--outdir", str(tmp_path / "fit"),
                                    "--threads", "0", *CLI_OPTS])
    assert res.exit_code == 0, res.output
    out = tmp_path / "fit"
    for name, table in (("gene_daywise_for_mash.csv", fit_a.gene_daywise()), ("guide_daywise_for_mash.csv", fit_a.guide_daywise()),
                        ("gene_daywise_for_mash_NEU.csv", fit_a.gene_daywise("NEU")), ("loss_curve.csv", fit_a.loss_curve)):
        pd.testing.assert_frame_equal(table, pd.read_csv(out / name, float_precision="round_trip"), check_exact=True)
    with np.load(out / "theta_posterior_summary.npz") as npz:
        assert np.array_equal(npz["mean"], fit_a.posterior.theta_mean) and np.array_equal(npz["sd"], fit_a.posterior.theta_sd)
    theta = fit_a.theta
    assert list(theta.columns) == ["gene", "fate", "day", "mean", "sd"] and len(theta) == 8 * 2 * 4
    beta = fit_a.beta
    assert len(beta) == fit_a.posterior.beta_mean.size and np.array_equal(
        beta["sd"].to_numpy(), fit_a.posterior.beta_sd.ravel())


def test_two_fits_in_one_process_equal_fits_in_fresh_processes(cells, fit_a, tmp_path):
    """Fit B after A; A's parameters are still its own: redrawn summaries are unchanged, and equal to a fit of
    A in a new process, bit for bit."""
    from fatescope.fate.export import summarise
    fit_b = fs.tl.fate_fit(cells[1], **{**OPTS, "seed": 1})
    assert not np.array_equal(fit_b.posterior.theta_mean, fit_a.posterior.theta_mean)
    again = summarise(fit_a.result.guide, fit_a.result.model.data, fit_a.encoding, num_draws=100, seed=0)
    assert np.array_equal(again.theta_mean, fit_a.posterior.theta_mean) and np.array_equal(again.beta_sd, fit_a.posterior.beta_sd)
    script = FRESH.format(sim=", ".join(f"{k}={v!r}" for k, v in SIM.items()),
                          opts=", ".join(f"{k}={v!r}" for k, v in OPTS.items()))
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "fresh.npz")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    with np.load(tmp_path / "fresh.npz") as npz:
        assert np.array_equal(npz["mean"], fit_a.posterior.theta_mean)
        assert np.array_equal(npz["sd"], fit_a.posterior.theta_sd) and np.array_equal(npz["beta"], fit_a.posterior.beta_sd)


def test_fit_and_summary_leave_the_callers_rng_and_param_store_alone(cells):
    def draws():
        return torch.rand(4), np.random.rand(4), random.random()

    pyro.clear_param_store()
    pyro.param("caller.x", torch.ones(2))
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    fs.tl.fate_fit(cells[1], **{**OPTS, "num_draws": 20, "guide": "meanfield", "posterior": "guide"})
    after = draws()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    without = draws()
    assert torch.equal(after[0], without[0]) and np.array_equal(after[1], without[1]) and after[2] == without[2]
    assert list(pyro.get_param_store().keys()) == ["caller.x"] and torch.equal(pyro.param("caller.x"), torch.ones(2))
    pyro.clear_param_store()


def test_save_and_load(fit_a, tmp_path):
    from fatescope.fate.export import summarise
    fit_a.save(tmp_path / "fate_model.pt")
    back = fs.tl.FateFit.load(tmp_path / "fate_model.pt")
    pd.testing.assert_frame_equal(back.theta, fit_a.theta, check_exact=True)
    pd.testing.assert_frame_equal(back.guide_daywise(), fit_a.guide_daywise(), check_exact=True)
    pd.testing.assert_frame_equal(back.loss_curve, fit_a.loss_curve, check_exact=True)
    assert back.summary == fit_a.summary and back.primary_fate == "MES"
    redrawn = summarise(back.result.guide, back.result.model.data, back.encoding, num_draws=100, seed=0)
    assert np.array_equal(redrawn.theta_mean, fit_a.posterior.theta_mean)


def test_bad_arguments_are_input_errors(cells, fit_a):
    with pytest.raises(fs.errors.InputError, match="adata: primary fate 'XX'"):
        fs.tl.fate_fit(cells[0], **{**OPTS, "primary_fate": "XX"})
    with pytest.raises(fs.errors.InputError, match="fate 'EC' is not a non-reference fate"):
        fit_a.gene_daywise("EC")
