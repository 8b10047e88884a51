"""``fs.tl.prune``: cisTarget motif enrichment of modules -> regulons (pySCENIC ``prune2df`` semantics)."""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from ..errors import InputError
from ..logs import get_logger
from ..regulons.annotations import filter_annotations, read_motif_annotations
from ..regulons.prune import PruneParams, module_gene_sets, prune as prune_modules, to_gmt
from ..regulons.rankdb import RankingDB, load_ranking_db

log = get_logger(__name__)
MODULE_COLUMNS = {"module", "tf", "target", "weight"}
REGULON_TABLE = ["regulon", "tf", "target", "weight", "database"]


@dataclass
class PruneResult:
    """Regulons (``regulon``, ``tf``, ``target``, ``weight``, ``database``; one row per target), the
    enriched motifs with their leading edges, and a report (modules skipped per database, counts, timings)."""
    regulons: pd.DataFrame
    enrichment: pd.DataFrame
    report: dict = field(default_factory=dict)

    def gmt(self) -> str:
        """The regulons as GMT text (name, description, targets per line), for gene set tools."""
        return to_gmt(self.regulons)


def check_modules(modules: pd.DataFrame, where: str = "modules") -> pd.DataFrame:
    """``modules`` if it has the module table's columns and rows; else an InputError naming ``where``."""
    missing = MODULE_COLUMNS - set(modules.columns)
    if missing:
        raise InputError(f"{where}: missing columns {sorted(missing)} (expected module, tf, target, weight)")
    if modules.empty:
        raise InputError(f"{where}: no modules")
    return modules


def _databases(dbs, rank_threshold: int) -> tuple[list[RankingDB], float]:
    """Ranking databases from objects or paths (read with ``load_ranking_db``), checked against the rank threshold."""
    items = [dbs] if isinstance(dbs, (RankingDB, str, os.PathLike)) else list(dbs)
    if not items:
        raise InputError("dbs: no ranking database given")
    t0 = time.perf_counter()
    opened = [(db.name, db) if isinstance(db, RankingDB) else (str(db), load_ranking_db(db)) for db in items]
    for where, db in opened:
        if rank_threshold >= db.n_genes:
            raise InputError(f"{where}: --pruning-rank-threshold {rank_threshold} must be below the database's "
                             f"{db.n_genes} genes (pruning_rank_threshold of fs.tl.prune)")
    return [db for _, db in opened], time.perf_counter() - t0


def prune(modules: pd.DataFrame, dbs: RankingDB | str | os.PathLike | Sequence[RankingDB | str | os.PathLike],
          annotations: pd.DataFrame | str | os.PathLike, *, pruning_rank_threshold: int = 5000,
          pruning_auc_threshold: float = 0.05, pruning_nes_threshold: float = 3.0, pruning_min_genes: int = 0,
          pruning_merge_strategy: Literal["union", "best"] = "union", pruning_weighted_recovery: bool = False,
          annotation_motif_similarity_fdr: float = 0.001, annotation_orthologous_identity: float = 0.0,
          pruning_device: Literal["auto", "cpu", "cuda"] = "auto") -> PruneResult:
    """Prune co-expression modules into regulons with cisTarget motif enrichment over ranking databases.

    Per module and database: recovery AUC and NES of every motif; motifs with NES at or above the
    threshold that are annotated to the module's TF keep their leading-edge targets. A TF's regulon
    ``TF(+)`` is the union of those over its modules; databases are merged by ``union`` or the
    ``best`` (highest NES) one per TF. Numbers follow pySCENIC 0.12.1 (see docs/regulons.md).

    Parameters
    ----------
    modules
        ``fs.tl.modules``'s table (``module``, ``tf``, ``target``, ``weight``).
    dbs
        Ranking databases: objects opened once with ``fatescope.regulons.rankdb.load_ranking_db(path)``
        (reuse them across calls; loading is the slow part) or paths to ``*.genes_vs_motifs.rankings.feather``.
    annotations
        Motif -> TF annotations as read by ``fatescope.regulons.annotations.read_motif_annotations(path)``
        (pySCENIC ``.tbl`` or RcisTarget TSV), or such a path; filtered here by the two ``annotation_*`` options.
    pruning_rank_threshold
        Ranks 0..N-1 form the recovery curve; must be below each database's gene count.
    pruning_auc_threshold, pruning_nes_threshold, pruning_min_genes
        Fraction of the genes under the AUC, NES needed for enrichment, minimum targets per regulon.
    pruning_merge_strategy, pruning_weighted_recovery
        Merge across databases; weight recovery curves by GRN importance (pySCENIC ``weighted_recovery``).
    annotation_motif_similarity_fdr, annotation_orthologous_identity
        Keep annotations with similarity q-value at or below / orthologous identity at or above these.
    pruning_device
        Where the AUCs are computed: ``"auto"`` = CUDA when present (torch, modules in batches), else numpy.

    Returns
    -------
    PruneResult
        ``.regulons``, ``.enrichment``, ``.report``; ``.gmt()`` gives the GMT text.

    Examples
    --------
    >>> import fatescope as fs
    >>> from fatescope.regulons.rankdb import load_ranking_db
    >>> db = load_ranking_db("hg38_500bp.genes_vs_motifs.rankings.feather")
    >>> res = fs.tl.prune(mods, [db], "motifs-v10nr_clust-nr.hgnc-m0.001-o0.0.tbl")
    >>> res.regulons.groupby("regulon").size()
    """
    from ..device import resolve_device

    check_modules(modules)
    table = annotations if isinstance(annotations, pd.DataFrame) else read_motif_annotations(annotations)
    ann = filter_annotations(table, annotation_motif_similarity_fdr, annotation_orthologous_identity)
    device = resolve_device(pruning_device)
    params = PruneParams(rank_threshold=pruning_rank_threshold, auc_threshold=pruning_auc_threshold,
                         nes_threshold=pruning_nes_threshold, min_genes=pruning_min_genes,
                         merge_strategy=pruning_merge_strategy, weighted_recovery=pruning_weighted_recovery,
                         device=str(device) if device.type == "cuda" else None)  # numpy is the fast CPU path
    databases, t_load = _databases(dbs, pruning_rank_threshold)
    t0 = time.perf_counter()
    enriched, regulons, report = prune_modules(module_gene_sets(modules), databases, ann, params)
    report.update(db_load_s=round(t_load, 3), prune_s=round(time.perf_counter() - t0, 3), device=str(device),
                  n_annotations_kept=int(len(ann)))
    log.info("prune: %d enriched motif rows, %d regulons", len(enriched), report["n_regulons"])
    return PruneResult(regulons[REGULON_TABLE], enriched, report)
