"""Recovery curves, AUC, NES and leading edges with ctxcore's conventions, vectorised over motifs.

For a gene set with weights w (ones unless weighted) and 0-based ranks r[g, m] in a database of
N genes:
- rank cutoff c = round(auc_threshold x N) - 1 (Python's round, as ctxcore);
- AUC[m] = sum_g w_g max(c - r[g, m], 0) / ((c + 1) sum_g w_g)   (ctxcore's ``aucs``: the area of
  the recovery curve over ranks 0..c-1, normalised by (c + 1) x sum of weights);
- NES[m] = (AUC[m] - mean AUC) / std AUC, population std over every motif of the database;
- recovery curve rcc[m, k] = sum_g w_g [r[g, m] <= k], k < rank_threshold; the leading edge of
  motif m is argmax_k(rcc[m, k] - (mean_m rcc + 2 std_m rcc)) (first maximum) and its targets are
  the genes with rank <= that RankAtMax.
The mean and std curves over all motifs come from two weighted histograms of the sorted ranks
(the jumps of rcc and of rcc^2), so no motifs x rank_threshold matrix is ever built.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def rank_cutoff(auc_threshold: float, total_genes: int, rank_threshold: int | None = None) -> int:
    """ctxcore's ``derive_rank_cutoff``: round(auc_threshold x total_genes) - 1, validated."""
    if not rank_threshold:
        rank_threshold = total_genes - 1
    if not 0 < rank_threshold < total_genes:
        raise InputError(f"rank threshold {rank_threshold} must be between 1 and {total_genes - 1} (the database "
                         f"ranks {total_genes} genes); lower --rank-threshold")
    if not 0.0 < auc_threshold <= 1.0:
        raise InputError(f"AUC threshold {auc_threshold} must be a fraction in (0, 1]")
    cutoff = round(auc_threshold * total_genes)
    if not 0 < cutoff <= rank_threshold:
        raise InputError(f"an AUC threshold of {auc_threshold} is {cutoff} top-ranked genes of {total_genes}, outside "
                         f"1..rank threshold {rank_threshold}; raise the rank threshold or lower the AUC threshold")
    return cutoff - 1


def aucs(ranks: np.ndarray, weights: np.ndarray, cutoff: int) -> np.ndarray:
    """AUC per column of ``ranks`` (genes x motifs) for a gene set with ``weights``."""
    depth = cutoff - ranks.astype(np.int32)
    np.maximum(depth, 0, out=depth)
    w = np.asarray(weights, dtype=np.float64)
    return (w @ depth) / ((cutoff + 1) * w.sum())


def nes(auc: np.ndarray) -> np.ndarray:
    """Normalised enrichment scores (population std); NaN where every AUC is equal."""
    sd = auc.std()
    if not sd > 0:
        return np.full_like(auc, np.nan)
    return (auc - auc.mean()) / sd


def avg2std_curve(ranks: np.ndarray, weights: np.ndarray, rank_threshold: int) -> np.ndarray:
    """mean + 2 std over motifs of the recovery curves, for ranks 0..rank_threshold-1."""
    n_motifs = ranks.shape[1]
    per_motif = np.ascontiguousarray(ranks.T, dtype=np.int32)  # motifs x genes; int32 sorts fast (SIMD)
    w = np.asarray(weights, dtype=np.float64)
    if np.all(w == w[0]):
        sranks = np.sort(per_motif, axis=1)
        after = np.broadcast_to(w[0] * np.arange(1, ranks.shape[0] + 1), sranks.shape)
        sw = np.broadcast_to(w[:1], sranks.shape)
    else:
        order = np.argsort(per_motif, axis=1, kind="stable")
        sranks = np.take_along_axis(per_motif, order, axis=1)
        sw = w[order]
        after = np.cumsum(sw, axis=1)
    jump2 = after * after - (after - sw) ** 2   # rcc^2 rises by this at each gene's rank
    keep = sranks < rank_threshold
    r = sranks[keep].astype(np.intp)
    s1 = np.cumsum(np.bincount(r, weights=sw[keep], minlength=rank_threshold)[:rank_threshold])
    s2 = np.cumsum(np.bincount(r, weights=jump2[keep], minlength=rank_threshold)[:rank_threshold])
    mean = s1 / n_motifs
    var = np.maximum(s2 / n_motifs - mean * mean, 0.0)
    return mean + 2.0 * np.sqrt(var)


def recovery_curve(ranks: np.ndarray, weights: np.ndarray, rank_threshold: int) -> np.ndarray:
    """Recovery curve of one motif (``ranks`` of the gene set for that motif)."""
    keep = ranks < rank_threshold
    hist = np.bincount(ranks[keep].astype(np.intp), weights=np.asarray(weights, dtype=np.float64)[keep],
                       minlength=rank_threshold)
    return np.cumsum(hist[:rank_threshold])


def leading_edge(ranks: np.ndarray, weights: np.ndarray, avg2std: np.ndarray) -> tuple[int, np.ndarray]:
    """(RankAtMax, boolean mask of genes in the leading edge) for one motif."""
    rcc = recovery_curve(ranks, weights, len(avg2std))
    rank_at_max = int(np.argmax(rcc - avg2std))
    return rank_at_max, ranks <= rank_at_max
