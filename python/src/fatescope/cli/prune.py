"""``fatescope prune``: cisTarget motif enrichment of the modules -> regulons (pySCENIC prune2df semantics).

Options carry their full pipeline param names (``--pruning-*``, ``--annotation-*``) so the stage
maps to params with an empty prefix.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_table
from ..logs import get_logger
from ..tl._prune import check_modules, prune
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("regulons.parquet", "motif_enrichment.parquet", "regulons.gmt", "prune_report.json")
def split_paths(text: str | list | tuple) -> list[str]:
    items = text if isinstance(text, (list, tuple)) else str(text).replace(",", " ").split()
    return [str(p) for p in items if str(p)]


def run(modules: str, ranking_dbs: str, motif_annotations: str, outdir: str = "prune",
        pruning_rank_threshold: int = api_default(prune, "pruning_rank_threshold"),
        pruning_auc_threshold: float = api_default(prune, "pruning_auc_threshold"),
        pruning_nes_threshold: float = api_default(prune, "pruning_nes_threshold"),
        pruning_min_genes: int = api_default(prune, "pruning_min_genes"),
        pruning_merge_strategy: str = api_default(prune, "pruning_merge_strategy"),
        pruning_weighted_recovery: bool = api_default(prune, "pruning_weighted_recovery"),
        annotation_motif_similarity_fdr: float = api_default(prune, "annotation_motif_similarity_fdr"),
        annotation_orthologous_identity: float = api_default(prune, "annotation_orthologous_identity"),
        pruning_device: str = api_default(prune, "pruning_device")) -> Path:
    mods = check_modules(read_table(modules, "the modules stage's modules.parquet"), modules)
    paths = split_paths(ranking_dbs)
    if not paths:
        raise InputError("no ranking database given (--ranking-dbs)")
    options = dict(pruning_rank_threshold=pruning_rank_threshold, pruning_auc_threshold=pruning_auc_threshold,
                   pruning_nes_threshold=pruning_nes_threshold, pruning_min_genes=pruning_min_genes,
                   pruning_merge_strategy=pruning_merge_strategy, pruning_weighted_recovery=pruning_weighted_recovery,
                   annotation_motif_similarity_fdr=annotation_motif_similarity_fdr,
                   annotation_orthologous_identity=annotation_orthologous_identity, pruning_device=pruning_device)
    result = prune(mods, paths, motif_annotations, **options)
    settings = dict(modules=modules, ranking_dbs=paths, motif_annotations=motif_annotations,
                    **options | {"pruning_device": result.report["device"]})
    with staged_output(outdir, "prune", settings, ["numpy", "pandas", "pyarrow"]) as tmp:
        result.regulons.to_parquet(tmp / OUTPUTS[0], index=False)
        result.enrichment.to_parquet(tmp / OUTPUTS[1], index=False)
        (tmp / OUTPUTS[2]).write_text(result.gmt())
        (tmp / OUTPUTS[3]).write_text(json.dumps(result.report, indent=1))
    log.info("prune: %d enriched motif rows, %d regulons written to %s", len(result.enrichment),
             result.report["n_regulons"], outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("prune", help="Prune modules with cisTarget motif enrichment (recovery AUC, NES, leading edges, "
                             "TF annotation) into regulons, over one or more ranking databases.")
@click.option("--modules", required=True, type=click.Path(dir_okay=False), help="modules/modules.parquet.")
@click.option("--ranking-dbs", required=True,
              help="Ranking databases (*.genes_vs_motifs.rankings.feather), separated by commas or spaces.")
@click.option("--motif-annotations", required=True, type=click.Path(dir_okay=False),
              help="Motif annotations: pySCENIC .tbl or RcisTarget TSV (gzip allowed).")
@outdir_option("prune")
@click.option("--pruning-rank-threshold", default=api_default(prune, "pruning_rank_threshold"),
              type=click.IntRange(min=1),
              help="Ranks 0..N-1 form the recovery curve; must be below the database's gene count.")
@click.option("--pruning-auc-threshold", default=api_default(prune, "pruning_auc_threshold"),
              type=click.FloatRange(0, 1, min_open=True), help="Fraction of the database's genes under the AUC.")
@click.option("--pruning-nes-threshold", default=api_default(prune, "pruning_nes_threshold"), type=float,
              help="NES needed for a motif to be enriched.")
@click.option("--pruning-min-genes", default=api_default(prune, "pruning_min_genes"), type=click.IntRange(min=0),
              help="Minimum targets per regulon.")
@click.option("--pruning-merge-strategy", default=api_default(prune, "pruning_merge_strategy"),
              type=click.Choice(["union", "best"]),
              help="Across databases: union of regulons, or the highest-NES database's regulon per TF.")
@click.option("--pruning-weighted-recovery/--no-pruning-weighted-recovery",
              default=api_default(prune, "pruning_weighted_recovery"),
              help="Weight recovery curves by GRN importance (pySCENIC weighted_recovery).")
@click.option("--annotation-motif-similarity-fdr", default=api_default(prune, "annotation_motif_similarity_fdr"),
              type=float, help="Keep motif annotations with similarity q-value at or below this.")
@click.option("--annotation-orthologous-identity", default=api_default(prune, "annotation_orthologous_identity"),
              type=float, help="Keep motif annotations with orthologous identity at or above this.")
@click.option("--pruning-device", default=api_default(prune, "pruning_device"),
              type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the AUCs of all modules are computed: auto = CUDA when present (torch, modules in "
                   "batches), else the CPU (numpy).")
def command(**kwargs) -> None:
    run(**kwargs)
