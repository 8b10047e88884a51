"""Interval calibration of the fate model on two simulations: the model's own generator and an independent one.

12,000 cells, 50 genes x 4 guides, 21% with effects, MOI 5, default fit (bench/fate_calibration.py
--seeds 11 --cells 12000 --genes 50 gives the same numbers). 90% intervals cover, of the nonzero effects:
with the defaults before issue 14 (Normal priors, the guide's own sds) 0.900 (own) and 0.787
(independent); with the one-group t priors and the Laplace posterior 0.938 and 0.869; with the
two-group prior (--null-sd 0.1) 0.925 and 0.951, nulls 0.969 and 0.982; with guide efficiencies (the
default, --s-eff 0.3) 0.938 and 0.918, nulls 0.969 and 0.985; with the Laplace-EM scales and their
uncertainty in the draws (session 16) 0.975 and 0.967, nulls 0.994 and 0.997. The learned null
fraction is the planted one (own: 40 of 50 genes have no effect on either fate; 0.800 and 0.800), so
is the efficiency spread (none planted on the own generator: sigma_eff ~0; Beta(5, 1.5) efficiencies
on the independent one, relative sd 0.20), and the own generator's day-0 scale tau is the planted
level's size (rms 0.8; Laplace-EM 0.90 and 0.84, the SVI fit's MAP ~0.3). Coverage is held at the
issue's bar, >= 0.9. The pools over 24 25,000-cell seeds are in docs/fate.md (Calibration). Two fits
of ~30 s CPU each: marked slow.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fatescope.fate.encoding import encode
from fatescope.fate.export import gene_table, long_theta, summarise
from fatescope.fate.fit import FitConfig, fit
from fatescope.fate.recovery import hit_metrics, join_truth, recovery_metrics
from fatescope.fate.synthetic import simulated_cells
from fatescope.simulate.alt_effects import AltParams, alt_simulation

N_CELLS, N_GENES = 12000, 50
CONFIG = FitConfig(device="cpu", seed=0)


def simulation(kind: str):
    if kind == "own":
        adata, truth, _ = simulated_cells(seed=11, n_cells=N_CELLS, n_perturbed_genes=N_GENES, guides_per_gene=4,
                                          n_ntc_guides=20, moi=5, frac_hit_genes=0.21, dirichlet_conc=50)
        return adata, truth
    return alt_simulation(AltParams(seed=11, n_cells=N_CELLS, n_genes=N_GENES, n_ntc_guides=20))


def daywise_recall(post, truth, tmp_path) -> dict[str, float]:
    """Day-wise recall of mash (conservative) + rank calls, pooled over the non-reference fates."""
    from fatescope.cli import mash, rank
    tp, fn = {}, {}
    for fate in post.fates:
        folder = tmp_path / fate
        gene_table(post, fate).to_csv(tmp_path / f"gene_{fate}.csv", index=False)
        mash.run([str(tmp_path / f"gene_{fate}.csv")], outdir=str(folder / "mash"), mode="conservative", device="cpu")
        rank.run(str(folder / "mash" / "mash_gene_conservative.csv"), outdir=str(folder / "rank"))
        calls = hit_metrics(pd.read_csv(folder / "rank" / "hits_ranked.csv"), truth, fate)
        for day, m in calls["by_day"].items():
            tp[day], fn[day] = tp.get(day, 0) + m["tp"], fn.get(day, 0) + m["fn"]
    return {day: tp[day] / (tp[day] + fn[day]) for day in tp}


@pytest.fixture(scope="module", params=["own", "independent"])
def calibration(request, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adata, truth = simulation(request.param)
        enc = encode(adata, None)
        result = fit(enc, config=CONFIG)
        post = summarise(result.guide, result.model.data, enc, num_draws=300, seed=0)
    finally:
        torch.set_num_threads(before)
    metrics = recovery_metrics(join_truth(long_theta(post), truth), 0.9)
    return request.param, metrics, daywise_recall(post, truth, tmp_path_factory.mktemp(request.param)), result


@pytest.mark.slow
def test_intervals_cover_true_effects_and_nulls(calibration):
    kind, metrics, _, result = calibration
    overall = metrics["overall"]
    assert result.notes["posterior"] == "laplace"
    assert overall["coverage_nonzero"] >= 0.9, (kind, metrics["by_day"])
    assert overall["coverage_null"] >= 0.9, (kind, metrics["by_day"])
    assert overall["pearson_r"] > 0.95
    point = result.guide.point()
    if kind == "own":  # the two-group prior's null fraction, against the planted 40 null genes of 50
        np.testing.assert_allclose(point["null_frac"].numpy(), 0.8, atol=0.03)
        assert float(point["sigma_eff"]) < 0.02  # no efficiency differences planted
        assert 0.6 < float(point["tau"].min()) and float(point["tau"].max()) < 1.1  # planted day-0 levels: rms 0.8
    else:  # efficiencies ~ Beta(5, 1.5): relative spread sd / mean 0.20
        assert 0.1 < float(point["sigma_eff"]) < 0.3


@pytest.mark.slow
def test_day0_daywise_recall(calibration):
    """Own generator: every day >= 0.9. The independent one has 3 day-0 hits here, so only the mean of the
    day-wise recalls is held: 0.86 measured with guide efficiencies (0.78 without), 0.76 since the draws
    carry the scales' uncertainty (wider intervals: the hits just above the calling threshold |theta| 0.2
    are called less often; every day-wise call here is still a true one)."""
    kind, _, recall, _ = calibration
    if kind == "own":
        assert recall["d0"] >= 0.9 and min(recall.values()) >= 0.9, recall
    else:
        assert np.mean(list(recall.values())) >= 0.72, recall
