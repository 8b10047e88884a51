"""``fatescope eval-recovery``: score the fate model's estimates against a simulation's planted truth."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_anndata, read_npz, read_table
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("recovery_metrics.json", "recovery_table.csv")


def read_theta_summary(path: str) -> pd.DataFrame:
    """Long ``gene, fate, day, mean, sd`` from fate-fit's theta_posterior_summary.npz."""
    arrays = read_npz(path, "fate-fit's theta_posterior_summary.npz", ("mean", "sd", "genes", "fates", "days"))
    mean, sd, genes, fates, days = (arrays[k] for k in ("mean", "sd", "genes", "fates", "days"))
    L, F, D = mean.shape
    return pd.DataFrame({"gene": np.repeat(genes.astype(str), F * D), "fate": np.tile(np.repeat(fates.astype(str), D), L),
                         "day": np.tile(days.astype(str), L * F), "mean": mean.ravel(), "sd": sd.ravel()})


def integration_recovery(cells: str, cell_truth: str) -> dict:
    from ..cells.evaluate import fate_separation
    adata = read_anndata(cells, "the embed stage's cells.h5ad", backed="r")
    missing = [k for k in ("day", "batch") if k not in adata.obs] + [k for k in ("X_latent",) if k not in adata.obsm]
    if missing:
        raise InputError(f"{cells}: lacks {missing} (expected obs day, batch and obsm X_latent)")
    return fate_separation(np.asarray(adata.obsm["X_latent"]), adata.obs_names, adata.obs["day"], adata.obs["batch"],
                           read_table(cell_truth, "the simulator's truth/cells.parquet"), source=cell_truth)


def run(theta_summary: str, truth: str, outdir: str = "eval-recovery", hits: str | None = None, hits_fate: str = "MES",
        level: float = 0.9, regulons: str | None = None, regulon_truth: str | None = None, cells: str | None = None,
        cell_truth: str | None = None) -> Path:
    from ..fate.recovery import hit_metrics, join_truth, recovery_metrics
    truth_table = read_table(truth, "the simulator's truth/sim_recovery.csv")
    merged = join_truth(read_theta_summary(theta_summary), truth_table, source=truth)
    fates = sorted(merged["fate"].unique())
    metrics = {"all": recovery_metrics(merged, level), **{f: recovery_metrics(merged, level, f) for f in fates}}
    if hits:
        if "is_hit" not in truth_table:
            raise InputError(f"{truth}: missing column 'is_hit' (needed to score hit calls)")
        metrics["hits"] = hit_metrics(read_table(hits, "the rank stage's hits_ranked.csv"), truth_table, hits_fate,
                                      source=hits)
    if bool(regulons) != bool(regulon_truth):
        raise InputError("--regulons and --regulon-truth go together (the prune stage's regulons.parquet and the "
                         "simulator's truth/regulons_truth.csv)")
    if regulons:
        from ..regulons.evaluate import regulon_recovery
        metrics["regulons"] = regulon_recovery(read_table(regulons, "the prune stage's regulons.parquet"),
                                               read_table(regulon_truth, "the simulator's truth/regulons_truth.csv"),
                                               source=regulons)
    if bool(cells) != bool(cell_truth):
        raise InputError("--cells and --cell-truth go together (the embed stage's cells.h5ad and the simulator's "
                         "truth/cells.parquet)")
    if cells:
        metrics["integration"] = integration_recovery(cells, cell_truth)
    settings = dict(theta_summary=theta_summary, truth=truth, hits=hits, hits_fate=hits_fate, level=level,
                    regulons=regulons, regulon_truth=regulon_truth, cells=cells, cell_truth=cell_truth)
    with staged_output(outdir, "eval-recovery", settings, ["numpy", "pandas", "scipy"]) as tmp:
        (tmp / OUTPUTS[0]).write_text(json.dumps(metrics, indent=2))
        merged.to_csv(tmp / OUTPUTS[1], index=False)
    if regulons:
        r = metrics["regulons"]
        log.info("eval-recovery: regulons of %d/%d planted TFs, target precision %s, recall %s", r["planted_tfs_found"],
                 r["n_planted_tfs"], r["target_precision"], r["target_recall"])
    if cells:
        i = metrics["integration"]
        log.info("eval-recovery: iLISI %s; on %s, true-fate kNN purity %s (chance %s), ASW %s", i["ilisi"], i["last_day"],
                 i["fate_knn_purity_last_day"], i["chance_knn_purity_last_day"], i["fate_asw_last_day"])
    o = metrics["all"]["overall"]
    log.info("eval-recovery: r = %s (genes with effects %s), %.0f%% coverage nonzero %s, nulls %s", o["pearson_r"],
             o["pearson_r_effect_genes"], 100 * level, o["coverage_nonzero"], o["coverage_null"])
    return Path(outdir) / OUTPUTS[0]


@stage_command("eval-recovery", help="Score fate-fit's theta estimates against a simulation's truth: Pearson r per day "
                                     "(all and genes with effects), interval coverage of nonzero and null effects; with "
                                     "--hits, precision/recall/F1 and AUROC/AUPRC of the rank stage's calls; with "
                                     "--regulons, target precision/recall of the planted regulons; with --cells, batch "
                                     "mixing and fate separation of the embedding.")
@click.option("--theta-summary", required=True, type=click.Path(dir_okay=False),
              help="fate-fit's theta_posterior_summary.npz.")
@click.option("--truth", required=True, type=click.Path(dir_okay=False), help="The simulator's truth/sim_recovery.csv.")
@outdir_option("eval-recovery")
@click.option("--hits", default=None, type=click.Path(dir_okay=False),
              help="The rank stage's hits_ranked.csv: adds any-day / daywise precision, recall, FDR, F1 and per-day "
                   "AUROC/AUPRC of its calls [default: no hit metrics].")
@click.option("--hits-fate", default="MES", help="Fate of the contrast the hit table was called on (truth rows of that fate).")
@click.option("--regulons", default=None, type=click.Path(dir_okay=False),
              help="The prune stage's regulons.parquet: adds target precision/recall of the regulons [default: none].")
@click.option("--regulon-truth", default=None, type=click.Path(dir_okay=False),
              help="The simulator's truth/regulons_truth.csv (with --regulons) [default: none].")
@click.option("--cells", default=None, type=click.Path(dir_okay=False),
              help="The embed stage's cells.h5ad: adds iLISI and the separation of the true fates on the last day "
                   "[default: none].")
@click.option("--cell-truth", default=None, type=click.Path(dir_okay=False),
              help="The simulator's truth/cells.parquet (with --cells) [default: none].")
@click.option("--level", default=0.9, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Level of the central posterior intervals (normal approximation: mean +/- z sd).")
def command(**kwargs) -> None:
    run(**kwargs)
