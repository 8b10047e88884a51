"""Embedding-sum encoding of a QC'd AnnData for the fate model (spec: design/fate-model.md).

Guides g = 1..G are the non-NTC guides, genes l = 1..L; id 0 is shared by NTC guides (mask 1)
and padding (mask 0), and ``gene_of_guide[0] = 0``, so both contribute nothing to the logits.
Cells with more than ``k_max`` detected guides are dropped (the count is reported).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)
SUM_TOLERANCE = 1e-4
_DAY_NUMBER = re.compile(r"^\D*?(\d+(?:\.\d+)?)\D*$")


@dataclass(frozen=True)
class Encoding:
    guide_ids: np.ndarray      # (N, K_max) int32; 0 = NTC or padding
    mask: np.ndarray           # (N, K_max) float32; 1 = detected guide (NTC included), 0 = padding
    gene_of_guide: np.ndarray  # (G + 1,) int64; gene id of each guide id, 0 for id 0
    day: np.ndarray            # (N,) int64 in 0..D-1
    replicate: np.ndarray      # (N,) int64 in 0..R-1
    burden: np.ndarray         # (N,) int64 k_i (NTC included)
    burden_centered: np.ndarray  # (N,) float32 k_i - mean(k)
    probs: np.ndarray          # (N, F) float32, columns [reference, *other fates]
    fates: list[str]           # column order of probs; fates[0] is the reference
    days: list[str]
    replicates: list[str]
    guide_names: list[str]     # non-NTC guides, id g -> guide_names[g - 1]
    gene_names: list[str]      # genes, id l -> gene_names[l - 1]
    cell_names: list[str]
    k_max: int
    n_dropped_kmax: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return len(self.day)

    @property
    def n_guides(self) -> int:
        return len(self.guide_names)

    @property
    def n_genes(self) -> int:
        return len(self.gene_names)

    @property
    def mean_burden(self) -> float:
        return float(self.burden.mean()) if len(self.burden) else 0.0

    @property
    def guide_gene_names(self) -> list[str]:
        return [self.gene_names[l - 1] for l in self.gene_of_guide[1:]]

    def subset(self, rows: np.ndarray) -> "Encoding":
        """The same encoding restricted to ``rows`` (burden kept centred on the full data's mean)."""
        return Encoding(self.guide_ids[rows], self.mask[rows], self.gene_of_guide, self.day[rows], self.replicate[rows],
                        self.burden[rows], self.burden_centered[rows], self.probs[rows], self.fates, self.days, self.replicates,
                        self.guide_names, self.gene_names, [self.cell_names[i] for i in rows], self.k_max, 0, dict(self.notes))


def order_days(labels, day_order: list[str] | None, source: str, key: str) -> list[str]:
    """Distinct day labels in time order: ``day_order`` when given, else by their number (d2 < d10)."""
    distinct = sorted({str(v) for v in labels})
    if day_order:
        missing = [d for d in distinct if d not in day_order]
        if missing:
            raise InputError(f"{source}: obs[{key!r}] has days {missing} that are not in day_order {list(day_order)}")
        return [d for d in day_order if d in distinct]
    numbers = {}
    for d in distinct:
        m = _DAY_NUMBER.match(d)
        if m is None:
            raise InputError(f"{source}: obs[{key!r}] value {d!r} cannot be parsed as a day (expected a label with one "
                             "number such as 'd3', 'day3' or '3'); pass day_order to give the order explicitly")
        numbers[d] = float(m.group(1))
    if len(set(numbers.values())) < len(numbers):
        raise InputError(f"{source}: obs[{key!r}] labels {distinct} map to repeated day numbers; pass day_order")
    return sorted(distinct, key=numbers.get)


def _natural_key(label: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label)]


def _labels(obs: pd.DataFrame, key: str, source: str, what: str) -> np.ndarray:
    if key not in obs:
        raise InputError(f"{source}: obs has no column {key!r} ({what}); columns are {list(obs.columns)}")
    values = obs[key]
    bad = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if bad.any():
        raise InputError(f"{source}: obs[{key!r}] ({what}) is missing for {int(bad.sum())} cells "
                         f"(e.g. cell {obs.index[np.flatnonzero(bad)[0]]!r}); expected a label for every cell")
    return values.astype(str).to_numpy()


def check_fate_probs(probs: np.ndarray, names: list[str], reference: str, source: str, key: str,
                     cells, renormalize: bool) -> np.ndarray:
    """Validated copy of ``probs`` (N x F): no NaN, no negatives, rows sum to 1 (or renormalised)."""
    if reference not in names:
        raise InputError(f"{source}: reference fate {reference!r} is not among the fates {names} of obsm[{key!r}]")
    if len(names) < 2:
        raise InputError(f"{source}: obsm[{key!r}] has {len(names)} fate(s) {names}; the model needs at least 2")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise InputError(f"{source}: obsm[{key!r}] has shape {probs.shape}; expected (cells, {len(names)}) for fates {names}")
    nan_rows = np.isnan(probs).any(axis=1)
    if nan_rows.any():
        raise InputError(f"{source}: obsm[{key!r}] has NaN fate probabilities in {int(nan_rows.sum())} cells "
                         f"(e.g. {cells[np.flatnonzero(nan_rows)[0]]!r}); expected finite probabilities for every cell "
                         "(fate-fit --missing-fate-probs drop leaves them out)")
    negative = (probs < 0).any(axis=1)
    if negative.any():
        raise InputError(f"{source}: obsm[{key!r}] has negative fate probabilities in {int(negative.sum())} cells "
                         f"(e.g. {cells[np.flatnonzero(negative)[0]]!r}); expected values in [0, 1]")
    total = probs.sum(axis=1)
    off = np.abs(total - 1.0) > SUM_TOLERANCE
    if off.any():
        if not renormalize:
            i = np.flatnonzero(off)[0]
            raise InputError(f"{source}: obsm[{key!r}] rows must sum to 1 (tolerance {SUM_TOLERANCE}); "
                             f"{int(off.sum())} cells do not (e.g. {cells[i]!r} sums to {total[i]:.6g}); "
                             "use the renormalise option to rescale them")
        if (total <= 0).any():
            raise InputError(f"{source}: obsm[{key!r}] has rows summing to 0; they cannot be renormalised")
        log.warning("%s: renormalised %d cells whose fate probabilities did not sum to 1", source, int(off.sum()))
    return probs / total[:, None]


def guide_table(adata, guide_map: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """Per column of obsm[guide_key]: guide name, gene, is_ntc (from ``guide_map`` or the AnnData's uns)."""
    if "guide_names" not in adata.uns:
        raise InputError(f"{source}: uns has no 'guide_names' (the guide columns); run qc with a guide map")
    names = np.asarray(adata.uns["guide_names"]).astype(str)
    if guide_map is not None:
        gm = guide_map.copy()
        if "guide_name" in gm.columns:
            gm = gm.set_index("guide_name")
        unknown = [g for g in names if g not in gm.index]
        if unknown:
            raise InputError(f"{source}: {len(unknown)} guides of uns['guide_names'] are not in the guide map "
                             f"(e.g. {unknown[:5]}); expected every guide to have a gene_name and is_ntc row")
        rows = gm.loc[names]
        genes = rows["gene_name"].astype(str).to_numpy()
        is_ntc = rows["is_ntc"].astype(str).str.lower().isin(["true", "1", "yes"]).to_numpy()
    else:
        for key in ("guide_genes", "guide_is_ntc"):
            if key not in adata.uns:
                raise InputError(f"{source}: uns has no {key!r}; give a guide map (guide_name, gene_name, is_ntc)")
        genes = np.asarray(adata.uns["guide_genes"]).astype(str)
        is_ntc = np.asarray(adata.uns["guide_is_ntc"]).astype(bool)
        if len(genes) != len(names) or len(is_ntc) != len(names):
            raise InputError(f"{source}: uns['guide_genes'] / uns['guide_is_ntc'] do not match uns['guide_names'] in length")
    if len(set(names)) < len(names):
        raise InputError(f"{source}: uns['guide_names'] has duplicated guide names")
    return pd.DataFrame({"guide": names, "gene": genes, "is_ntc": is_ntc})


def encode(adata, guide_map: pd.DataFrame | None = None, *, guide_key: str = "guides", fate_prob_key: str = "fate_probs",
           day_key: str = "day", rep_key: str = "replicate", fate_names: list[str] | None = None,
           reference_fate: str = "EC", k_max: int = 20, renormalize: bool = False, day_order: list[str] | None = None,
           missing_fate_probs: str = "error", source: str = "cells.h5ad") -> Encoding:
    """Encode cells for the fate model; every problem with the input raises InputError naming the key.

    ``missing_fate_probs``: cells without fate probabilities (NaN rows, e.g. samples whose fate table covers part of
    their barcodes) are an error ("error") or left out with their count logged ("drop")."""
    if guide_key not in adata.obsm:
        raise InputError(f"{source}: obsm has no {guide_key!r} (cells x guides matrix); keys are {list(adata.obsm)}")
    if fate_prob_key not in adata.obsm:
        raise InputError(f"{source}: obsm has no {fate_prob_key!r} (fate probabilities); keys are {list(adata.obsm)}")
    if missing_fate_probs not in ("error", "drop"):
        raise InputError(f"missing_fate_probs {missing_fate_probs!r}: expected 'error' or 'drop'")
    missing = np.isnan(np.asarray(adata.obsm[fate_prob_key], dtype=np.float64)).any(axis=1)
    if missing.any() and missing_fate_probs == "drop":
        if missing.all():
            raise InputError(f"{source}: no cell has fate probabilities in obsm[{fate_prob_key!r}]")
        log.warning("%s: left out %d of %d cells without fate probabilities (missing_fate_probs = drop)", source,
                    int(missing.sum()), len(missing))
        adata = adata[~missing]
    names = [str(f) for f in (fate_names if fate_names else np.asarray(adata.uns.get("fate_names", [])).astype(str))]
    if not names:
        raise InputError(f"{source}: uns has no 'fate_names' and no fate names were given")
    cells = np.asarray(adata.obs_names).astype(str)
    probs = check_fate_probs(np.asarray(adata.obsm[fate_prob_key]), names, reference_fate, source, fate_prob_key,
                             cells, renormalize)
    table = guide_table(adata, guide_map, source)
    calls = sp.csr_matrix(adata.obsm[guide_key], dtype=np.float32)
    if calls.shape != (adata.n_obs, len(table)):
        raise InputError(f"{source}: obsm[{guide_key!r}] has shape {calls.shape}; expected ({adata.n_obs}, {len(table)}) "
                         "(cells x uns['guide_names'])")
    calls.eliminate_zeros()
    if calls.nnz and calls.data.min() < 0:
        raise InputError(f"{source}: obsm[{guide_key!r}] has negative guide counts; expected 0/1 calls or UMI counts")
    day_labels = _labels(adata.obs, day_key, source, "day")
    rep_labels = _labels(adata.obs, rep_key, source, "replicate")
    days = order_days(day_labels, day_order, source, day_key)
    replicates = sorted(set(rep_labels), key=_natural_key)

    if not table["is_ntc"].any():
        raise InputError(f"{source}: none of the {len(table)} guides is a non-targeting control (is_ntc); fate "
                         "effects are measured against the cells carrying only controls")
    # guide and gene ids: targeting guides 1..G in guide-map order, genes 1..L by first appearance
    targeting = ~table["is_ntc"].to_numpy()
    column_id = np.zeros(len(table), dtype=np.int32)
    column_id[targeting] = np.arange(1, targeting.sum() + 1)
    genes = list(dict.fromkeys(table.loc[targeting, "gene"]))
    gene_id = {g: i + 1 for i, g in enumerate(genes)}
    gene_of_guide = np.concatenate([[0], [gene_id[g] for g in table.loc[targeting, "gene"]]]).astype(np.int64)

    k = np.diff(calls.indptr)
    keep = k <= k_max
    n_dropped = int((~keep).sum())
    if n_dropped:
        log.info("%s: dropped %d of %d cells with more than K_max = %d guides", source, n_dropped, len(k), k_max)
    if not keep.any():
        raise InputError(f"{source}: every cell has more than K_max = {k_max} guides")
    rows = np.flatnonzero(keep)
    kept = calls[rows]
    carried = np.bincount(kept.indices, minlength=len(table)) > 0
    if not (carried & targeting).any():
        raise InputError(f"{source}: no cell carries a targeting guide (obsm[{guide_key!r}] has "
                         f"{'no calls' if not kept.nnz else 'only non-targeting controls'}); fate effects need "
                         "cells with guide calls (the samplesheet's guides column)")
    absent = sorted(set(table.loc[targeting & ~carried, "gene"]) - set(table.loc[targeting & carried, "gene"]))
    if absent:
        log.warning("%s: %d of %d genes have no cell with one of their guides; their effects are the prior's "
                    "(e.g. %s)", source, len(absent), len(set(table.loc[targeting, "gene"])), ", ".join(absent[:5]))
    kk = np.diff(kept.indptr)
    position = np.arange(kept.nnz) - np.repeat(kept.indptr[:-1], kk)
    row_of = np.repeat(np.arange(len(rows)), kk)
    guide_ids = np.zeros((len(rows), k_max), dtype=np.int32)
    mask = np.zeros((len(rows), k_max), dtype=np.float32)
    guide_ids[row_of, position] = column_id[kept.indices]
    mask[row_of, position] = 1.0
    fates = [reference_fate] + [f for f in names if f != reference_fate]
    order = [names.index(f) for f in fates]
    day_index = {d: i for i, d in enumerate(days)}
    rep_index = {r: i for i, r in enumerate(replicates)}
    return Encoding(
        guide_ids=guide_ids, mask=mask, gene_of_guide=gene_of_guide,
        day=np.array([day_index[d] for d in day_labels[rows]], dtype=np.int64),
        replicate=np.array([rep_index[r] for r in rep_labels[rows]], dtype=np.int64),
        burden=kk.astype(np.int64), burden_centered=(kk - kk.mean()).astype(np.float32),
        probs=probs[rows][:, order].astype(np.float32), fates=fates, days=days, replicates=replicates,
        guide_names=table.loc[targeting, "guide"].tolist(), gene_names=genes, cell_names=cells[rows].tolist(),
        k_max=k_max, n_dropped_kmax=n_dropped,
        notes=dict(guide_key=guide_key, fate_prob_key=fate_prob_key, day_key=day_key, rep_key=rep_key, fate_names=names,
                   reference_fate=reference_fate, k_max=k_max, renormalize=renormalize, day_order=day_order,
                   missing_fate_probs=missing_fate_probs))
