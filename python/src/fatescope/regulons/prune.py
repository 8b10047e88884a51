"""cisTarget pruning of co-expression modules into regulons (pySCENIC ``prune2df`` + ``df2regulons``).

Per database and module: genes absent from the database are dropped and the module is skipped when
20% or more are absent; AUC and NES over every motif (``recovery``); motifs with NES >= threshold
that are annotated to the module's TF (after the q-value / identity filter) are kept, each with its
RankAtMax and leading-edge targets (weights = the module's GRN importances), paired with recovery
curves as pySCENIC 0.12.1 pairs them (``pyscenic_row_pairs``). A TF's regulon is the
union of the leading edges of its enriched motifs over its modules (maximum weight per gene);
across databases 'union' merges them the same way, 'best' keeps the database whose best motif has
the highest NES.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..logs import get_logger
from . import recovery as rc
from .rankdb import RankingDB

log = get_logger(__name__)
ENRICHMENT_COLUMNS = ["module", "tf", "motif", "database", "auc", "nes", "qvalue", "identity", "annotation",
                      "rank_at_max", "n_targets", "targets", "target_weights"]
REGULON_COLUMNS = ["regulon", "tf", "target", "weight"]


@dataclass(frozen=True)
class PruneParams:
    rank_threshold: int = 5000
    auc_threshold: float = 0.05
    nes_threshold: float = 3.0
    min_genes: int = 0
    merge_strategy: str = "union"
    weighted_recovery: bool = False
    max_missing_fraction: float = 0.2
    device: str | None = None  # a torch device: AUCs of all modules in batches there (GPU path); None = numpy


def module_gene_sets(modules: pd.DataFrame) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(module, tf, genes, weights) per module; a gene listed twice keeps its largest weight."""
    dedup = modules.groupby(["module", "tf", "target"], sort=False, observed=True)["weight"].max().reset_index()
    return [(name, grp["tf"].iloc[0], grp["target"].to_numpy(str), grp["weight"].to_numpy(np.float64))
            for name, grp in dedup.groupby("module", sort=True, observed=True)]


def module_aucs(db: RankingDB, present_rows: list[np.ndarray], rec_weights: list[np.ndarray], params: PruneParams,
                cutoff: int) -> list[np.ndarray]:
    """AUC of every motif per gene set (rows of the database), with numpy or in batches on ``params.device``."""
    if params.device is not None and present_rows:
        from .recovery_torch import batched_aucs
        return list(batched_aucs(db.ranks, present_rows, rec_weights, cutoff, params.device))
    return [rc.aucs(db.ranks[rows], w, cutoff) for rows, w in zip(present_rows, rec_weights)]


def annotation_lookup(annotations: pd.DataFrame) -> dict[str, dict[str, tuple]]:
    """tf -> motif -> (qvalue, identity, annotation)."""
    out: dict[str, dict[str, tuple]] = {}
    for tf, motif, q, ident, text in annotations[["tf", "motif", "qvalue", "identity", "annotation"]].itertuples(index=False):
        out.setdefault(tf, {})[motif] = (float(q), float(ident), text)
    return out


def pyscenic_row_pairs(enriched: np.ndarray, motifs: np.ndarray, tf_ann: dict, by_name: bool) -> list[tuple[int, int]]:
    """(motif reported, motif whose recovery curve and ranks give its leading edge), as pySCENIC 0.12.1 pairs them.

    pySCENIC merges the enriched motifs (database order) with the annotations; pandas 1.5 returns the
    merge sorted by motif name instead when the annotation table lists some (TF, motif) pair twice
    (``by_name``). It then sorts the rows by q-value descending, identity ascending (stable; unannotated
    last) but takes the curves of the first k enriched motifs in database order (k = number annotated)
    and assigns them to the sorted rows by position. See docs/regulons.md.
    """
    annotated = [m for m in enriched if motifs[m] in tf_ann]
    if by_name:
        annotated.sort(key=lambda m: motifs[m])
    ranked = sorted(annotated, key=lambda m: (-tf_ann[motifs[m]][0], tf_ann[motifs[m]][1]))
    return list(zip(ranked, enriched[:len(ranked)].tolist()))


def prune_database(db: RankingDB, gene_sets, annotations: pd.DataFrame, params: PruneParams) -> tuple[pd.DataFrame, list[str]]:
    """Enriched, annotated motifs with leading edges for every module on one database (``annotations``:
    the output of ``annotations.filter_annotations``)."""
    cutoff = rc.rank_cutoff(params.auc_threshold, db.n_genes, params.rank_threshold)
    ann = annotation_lookup(annotations)
    by_name = bool((annotations["listed"] > 1).any())
    all_rows = db.gene_index(np.concatenate([g for _, _, g, _ in gene_sets])) if gene_sets else np.empty(0, int)
    bounds = np.cumsum([0] + [len(g) for _, _, g, _ in gene_sets])
    skipped, scored = [], []
    for i, (name, tf, genes, weights) in enumerate(gene_sets):
        rows = all_rows[bounds[i]:bounds[i + 1]]
        n_present = int((rows >= 0).sum())
        if n_present == 0 or 1.0 - n_present / len(genes) >= params.max_missing_fraction:
            skipped.append(name)
        elif ann.get(tf):
            present = rows >= 0
            rec_w = weights[present] if params.weighted_recovery else np.ones(n_present)
            scored.append((name, tf, genes, weights, present, rows[present], rec_w))
    auc_rows = module_aucs(db, [s[5] for s in scored], [s[6] for s in scored], params, cutoff)
    out = []
    for (name, tf, genes, weights, present, rows, rec_w), auc in zip(scored, auc_rows):
        tf_ann, nes = ann[tf], rc.nes(auc)
        pairs = pyscenic_row_pairs(np.flatnonzero(nes >= params.nes_threshold), db.motifs, tf_ann, by_name)
        if not pairs:
            continue
        ranks = db.ranks[rows]
        avg2std = rc.avg2std_curve(ranks, rec_w, params.rank_threshold)
        kept_genes, kept_w = genes[present], weights[present]
        for m, src in pairs:
            rank_at_max, mask = rc.leading_edge(ranks[:, src], rec_w, avg2std)
            order = np.argsort(ranks[mask, src], kind="stable")
            q, ident, text = tf_ann[db.motifs[m]]
            out.append((name, tf, db.motifs[m], db.name, float(auc[m]), float(nes[m]), q, ident, text, rank_at_max,
                        int(mask.sum()), kept_genes[mask][order].tolist(), kept_w[mask][order].tolist()))
    if skipped:
        log.warning("%s: %d modules skipped (>= %d%% of their genes absent from the database), e.g. %s", db.name,
                    len(skipped), round(100 * params.max_missing_fraction), ", ".join(skipped[:5]))
    return pd.DataFrame(out, columns=ENRICHMENT_COLUMNS), skipped


def regulons_from_enrichment(enriched: pd.DataFrame, params: PruneParams) -> pd.DataFrame:
    """TF regulons (``TF(+)``): union of leading edges per TF and database, then merged across databases."""
    if enriched.empty:
        return pd.DataFrame(columns=REGULON_COLUMNS + ["database"])
    long = enriched[["tf", "database", "targets", "target_weights"]].explode(["targets", "target_weights"])
    long = long.rename(columns={"targets": "target", "target_weights": "weight"}).astype({"weight": float})
    per_db = long.groupby(["tf", "database", "target"], sort=True)["weight"].max().reset_index()
    if params.merge_strategy == "best":
        best = enriched.sort_values("nes", ascending=False, kind="stable").drop_duplicates("tf")[["tf", "database"]]
        per_db = per_db.merge(best, on=["tf", "database"])
    merged = per_db.groupby(["tf", "target"], sort=True)["weight"].max().reset_index()
    if per_db["database"].nunique() == 1:
        merged["database"] = per_db["database"].iloc[0]
    else:
        names = per_db.sort_values("database", kind="stable").groupby(["tf", "target"], sort=True)["database"].agg(";".join)
        merged["database"] = names.to_numpy()
    merged.insert(0, "regulon", merged["tf"] + "(+)")
    sizes = merged.groupby("regulon")["target"].transform("size")
    return merged[sizes >= params.min_genes].reset_index(drop=True)


def prune(gene_sets, dbs: list[RankingDB], annotations: pd.DataFrame, params: PruneParams) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Enrichment table, regulon table and a small report over several databases."""
    tables, report = [], {"skipped_modules": {}}
    for db in dbs:
        table, skipped = prune_database(db, gene_sets, annotations, params)
        tables.append(table)
        report["skipped_modules"][db.name] = skipped
    enriched = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=ENRICHMENT_COLUMNS)
    regulons = regulons_from_enrichment(enriched, params)
    report.update(n_modules=len(gene_sets), n_enriched_rows=len(enriched), n_regulons=int(regulons["regulon"].nunique()),
                  databases=[db.name for db in dbs])
    return enriched, regulons, report


def to_gmt(regulons: pd.DataFrame) -> str:
    """GMT text: one line per regulon (name, description, targets)."""
    lines = []
    for name, grp in regulons.groupby("regulon", sort=True):
        lines.append("\t".join([name, f"{grp['tf'].iloc[0]} regulon, {len(grp)} targets", *grp["target"]]))
    return "\n".join(lines) + ("\n" if lines else "")
