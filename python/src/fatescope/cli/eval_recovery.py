"""``fatescope eval-recovery``: score the fate model's estimates against a simulation's planted truth."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.outputs import staged_output
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("recovery_metrics.json", "recovery_table.csv")


def read_theta_summary(path: str) -> pd.DataFrame:
    """Long ``gene, fate, day, mean, sd`` from fate-fit's theta_posterior_summary.npz."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found (expected fate-fit's theta_posterior_summary.npz)")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in ("mean", "sd", "genes", "fates", "days") if k not in npz]
        if missing:
            raise InputError(f"{path}: missing arrays {missing}; expected mean, sd, genes, fates, days")
        mean, sd, genes, fates, days = (npz[k] for k in ("mean", "sd", "genes", "fates", "days"))
    L, F, D = mean.shape
    return pd.DataFrame({"gene": np.repeat(genes.astype(str), F * D), "fate": np.tile(np.repeat(fates.astype(str), D), L),
                         "day": np.tile(days.astype(str), L * F), "mean": mean.ravel(), "sd": sd.ravel()})


def run(theta_summary: str, truth: str, outdir: str = "eval-recovery", hits: str | None = None, hits_fate: str = "MES",
        level: float = 0.9) -> Path:
    from ..fate.recovery import hit_metrics, join_truth, recovery_metrics
    if not Path(truth).is_file():
        raise InputError(f"{truth}: file not found (expected the simulator's truth/sim_recovery.csv)")
    merged = join_truth(read_theta_summary(theta_summary), pd.read_csv(truth), source=truth)
    fates = sorted(merged["fate"].unique())
    metrics = {"all": recovery_metrics(merged, level), **{f: recovery_metrics(merged, level, f) for f in fates}}
    if hits:
        if not Path(hits).is_file():
            raise InputError(f"{hits}: file not found (expected the rank stage's hits_ranked.csv)")
        truth_table = pd.read_csv(truth)
        if "is_hit" not in truth_table:
            raise InputError(f"{truth}: missing column 'is_hit' (needed to score hit calls)")
        metrics["hits"] = hit_metrics(pd.read_csv(hits), truth_table, hits_fate, source=hits)
    settings = dict(theta_summary=theta_summary, truth=truth, hits=hits, hits_fate=hits_fate, level=level)
    with staged_output(outdir, "eval-recovery", settings, ["numpy", "pandas", "scipy"]) as tmp:
        (tmp / OUTPUTS[0]).write_text(json.dumps(metrics, indent=2))
        merged.to_csv(tmp / OUTPUTS[1], index=False)
    o = metrics["all"]["overall"]
    log.info("eval-recovery: r = %s (genes with effects %s), %.0f%% coverage nonzero %s, nulls %s", o["pearson_r"],
             o["pearson_r_effect_genes"], 100 * level, o["coverage_nonzero"], o["coverage_null"])
    return Path(outdir) / OUTPUTS[0]


@stage_command("eval-recovery", help="Score fate-fit's theta estimates against a simulation's truth: Pearson r per day "
                                     "(all and genes with effects), interval coverage of nonzero and null effects; with "
                                     "--hits, precision/recall/F1 and AUROC/AUPRC of the rank stage's calls.")
@click.option("--theta-summary", required=True, type=click.Path(dir_okay=False),
              help="fate-fit's theta_posterior_summary.npz.")
@click.option("--truth", required=True, type=click.Path(dir_okay=False), help="The simulator's truth/sim_recovery.csv.")
@outdir_option("eval-recovery")
@click.option("--hits", default=None, type=click.Path(dir_okay=False),
              help="The rank stage's hits_ranked.csv: adds any-day / daywise precision, recall, FDR, F1 and per-day "
                   "AUROC/AUPRC of its calls [default: no hit metrics].")
@click.option("--hits-fate", default="MES", help="Fate of the contrast the hit table was called on (truth rows of that fate).")
@click.option("--level", default=0.9, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Level of the central posterior intervals (normal approximation: mean +/- z sd).")
def command(**kwargs) -> None:
    run(**kwargs)
