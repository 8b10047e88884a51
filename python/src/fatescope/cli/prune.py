"""``fatescope prune``: cisTarget motif enrichment of the modules -> regulons (pySCENIC prune2df semantics).

Options carry their full pipeline param names (``--pruning-*``, ``--annotation-*``) so the stage
maps to params with an empty prefix.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pandas as pd

from ..device import resolve_device
from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_table
from ..logs import get_logger
from ..regulons.annotations import filter_annotations, read_motif_annotations
from ..regulons.prune import PruneParams, module_gene_sets, prune, to_gmt
from ..regulons.rankdb import load_ranking_db
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("regulons.parquet", "motif_enrichment.parquet", "regulons.gmt", "prune_report.json")
MODULE_COLUMNS = {"module", "tf", "target", "weight"}


def split_paths(text: str | list | tuple) -> list[str]:
    items = text if isinstance(text, (list, tuple)) else str(text).replace(",", " ").split()
    return [str(p) for p in items if str(p)]


def read_modules(path: str) -> pd.DataFrame:
    mods = read_table(path, "the modules stage's modules.parquet")
    missing = MODULE_COLUMNS - set(mods.columns)
    if missing:
        raise InputError(f"{path}: missing columns {sorted(missing)} (expected module, tf, target, weight)")
    if mods.empty:
        raise InputError(f"{path}: no modules")
    return mods


def run(modules: str, ranking_dbs: str, motif_annotations: str, outdir: str = "prune",
        pruning_rank_threshold: int = 5000, pruning_auc_threshold: float = 0.05, pruning_nes_threshold: float = 3.0,
        pruning_min_genes: int = 0, pruning_merge_strategy: str = "union", pruning_weighted_recovery: bool = False,
        annotation_motif_similarity_fdr: float = 0.001, annotation_orthologous_identity: float = 0.0,
        pruning_device: str = "auto") -> Path:
    mods = read_modules(modules)
    paths = split_paths(ranking_dbs)
    if not paths:
        raise InputError("no ranking database given (--ranking-dbs)")
    ann = filter_annotations(read_motif_annotations(motif_annotations), annotation_motif_similarity_fdr,
                             annotation_orthologous_identity)
    device = resolve_device(pruning_device)
    params = PruneParams(rank_threshold=pruning_rank_threshold, auc_threshold=pruning_auc_threshold,
                         nes_threshold=pruning_nes_threshold, min_genes=pruning_min_genes,
                         merge_strategy=pruning_merge_strategy, weighted_recovery=pruning_weighted_recovery,
                         device=str(device) if device.type == "cuda" else None)  # numpy is the fast CPU path
    t0 = time.perf_counter()
    dbs = [load_ranking_db(p) for p in paths]
    t_load = time.perf_counter() - t0
    for p, db in zip(paths, dbs):
        if pruning_rank_threshold >= db.n_genes:
            raise InputError(f"{p}: --pruning-rank-threshold {pruning_rank_threshold} must be below the database's "
                             f"{db.n_genes} genes")
    t0 = time.perf_counter()
    enriched, regulons, report = prune(module_gene_sets(mods), dbs, ann, params)
    report.update(db_load_s=round(t_load, 3), prune_s=round(time.perf_counter() - t0, 3), device=str(device),
                  n_annotations_kept=int(len(ann)))
    settings = dict(modules=modules, ranking_dbs=paths, motif_annotations=motif_annotations,
                    pruning_rank_threshold=pruning_rank_threshold, pruning_auc_threshold=pruning_auc_threshold,
                    pruning_nes_threshold=pruning_nes_threshold, pruning_min_genes=pruning_min_genes,
                    pruning_merge_strategy=pruning_merge_strategy, pruning_weighted_recovery=pruning_weighted_recovery,
                    annotation_motif_similarity_fdr=annotation_motif_similarity_fdr,
                    annotation_orthologous_identity=annotation_orthologous_identity, pruning_device=str(device))
    with staged_output(outdir, "prune", settings, ["numpy", "pandas", "pyarrow"]) as tmp:
        regulons[["regulon", "tf", "target", "weight", "database"]].to_parquet(tmp / OUTPUTS[0], index=False)
        enriched.to_parquet(tmp / OUTPUTS[1], index=False)
        (tmp / OUTPUTS[2]).write_text(to_gmt(regulons))
        (tmp / OUTPUTS[3]).write_text(json.dumps(report, indent=1))
    log.info("prune: %d enriched motif rows, %d regulons written to %s", len(enriched), report["n_regulons"], outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("prune", help="Prune modules with cisTarget motif enrichment (recovery AUC, NES, leading edges, "
                             "TF annotation) into regulons, over one or more ranking databases.")
@click.option("--modules", required=True, type=click.Path(dir_okay=False), help="modules/modules.parquet.")
@click.option("--ranking-dbs", required=True,
              help="Ranking databases (*.genes_vs_motifs.rankings.feather), separated by commas or spaces.")
@click.option("--motif-annotations", required=True, type=click.Path(dir_okay=False),
              help="Motif annotations: pySCENIC .tbl or RcisTarget TSV (gzip allowed).")
@outdir_option("prune")
@click.option("--pruning-rank-threshold", default=5000, type=click.IntRange(min=1),
              help="Ranks 0..N-1 form the recovery curve; must be below the database's gene count.")
@click.option("--pruning-auc-threshold", default=0.05, type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of the database's genes under the AUC.")
@click.option("--pruning-nes-threshold", default=3.0, type=float, help="NES needed for a motif to be enriched.")
@click.option("--pruning-min-genes", default=0, type=click.IntRange(min=0), help="Minimum targets per regulon.")
@click.option("--pruning-merge-strategy", default="union", type=click.Choice(["union", "best"]),
              help="Across databases: union of regulons, or the highest-NES database's regulon per TF.")
@click.option("--pruning-weighted-recovery/--no-pruning-weighted-recovery", default=False,
              help="Weight recovery curves by GRN importance (pySCENIC weighted_recovery).")
@click.option("--annotation-motif-similarity-fdr", default=0.001, type=float,
              help="Keep motif annotations with similarity q-value at or below this.")
@click.option("--annotation-orthologous-identity", default=0.0, type=float,
              help="Keep motif annotations with orthologous identity at or above this.")
@click.option("--pruning-device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the AUCs of all modules are computed: auto = CUDA when present (torch, modules in "
                   "batches), else the CPU (numpy).")
def command(**kwargs) -> None:
    run(**kwargs)
