"""AUCell with ctxcore's semantics, batched over cells so memory follows the batch.

ctxcore ranks each cell's genes by expression, descending, 0-based, after shuffling the gene
columns with ``numpy.random.RandomState(seed).permutation`` (pandas ``sample(frac=1, axis=1,
random_state=seed)``) and ranking with method 'first': tied genes take ranks in shuffled order.
The AUC of a regulon in a cell is sum_g w_g max(c - rank_g, 0) / ((c + 1) sum_g w_g) with
c = round(auc_threshold x n_genes) - 1, over the regulon genes present in the data; a regulon
with fewer than 80% of its genes in the data scores 0.

Only ranks below c matter, so per cell the CPU kernel (numba, parallel over cells) never ranks the
whole cell: it guesses a threshold from every 8th gene, sorts only the genes above it (by value
bits, then shuffled position) and gives the remaining top ranks to genes equal to the threshold in
shuffled order. CUDA uses torch (stable sort of the shuffled columns, then a matrix product).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ..errors import InputError
from ..logs import get_logger, progress
from .stream import block_grid, block_rows, dense_rows

log = get_logger(__name__)
MIN_PRESENT_FRACTION = 0.8


@dataclass(frozen=True)
class Signatures:
    """Regulons as a gene -> regulon CSR over the data's genes, ready for the kernels."""
    names: list[str]
    gene_ptr: np.ndarray      # (n_genes + 1,) int64
    reg_idx: np.ndarray       # (nnz,) int32 regulon of each entry
    weight: np.ndarray        # (nnz,) float64
    max_auc_denom: np.ndarray  # (n_regulons,) sum of weights of present genes (0 = regulon scores 0)
    n_present: np.ndarray
    n_genes: np.ndarray


def check_regulons(regulons: pd.DataFrame) -> pd.DataFrame:
    """``regulons`` if it has the regulon table's columns and rows, else an InputError."""
    missing = {"regulon", "tf", "target", "weight"} - set(regulons.columns)
    if missing:
        raise InputError(f"regulon table lacks columns {sorted(missing)} (expected regulon, tf, target, weight)")
    if regulons.empty:
        raise InputError("no regulons")
    return regulons


def scoring_genes(regulons: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """Per regulon its top ``k`` targets by weight (all for ``None``) plus the TF: (regulon, tf, gene, weight)."""
    check_regulons(regulons)
    r = regulons.sort_values(["regulon", "weight", "target"], ascending=[True, False, True], kind="stable")
    r = r[r["target"] != r["tf"]]
    if k is not None:
        r = r.groupby("regulon", sort=False).head(k)
    tf_rows = regulons.drop_duplicates("regulon")[["regulon", "tf"]].assign(target=lambda d: d["tf"], weight=1.0)
    out = pd.concat([r[["regulon", "tf", "target", "weight"]], tf_rows], ignore_index=True)
    return out.rename(columns={"target": "gene"}).sort_values(["regulon"], kind="stable").reset_index(drop=True)


def auc_cutoff(auc_threshold: float, n_genes: int) -> int:
    """round(auc_threshold x n_genes) - 1, as ctxcore (Python's round)."""
    cutoff = round(auc_threshold * n_genes) - 1
    if not 1 <= cutoff < n_genes - 1 or not 0 < auc_threshold <= 1:
        raise InputError(f"AUC threshold {auc_threshold} over {n_genes} genes gives rank cutoff {cutoff}; "
                         "expected 1 <= cutoff < n_genes - 1")
    return cutoff


def build_signatures(regulons: pd.DataFrame, genes: pd.Index, weighted: bool = False) -> Signatures:
    """``regulons`` has columns regulon, gene[, weight]; genes not in ``genes`` are ignored."""
    table = regulons.drop_duplicates(["regulon", "gene"])
    names = list(pd.unique(table["regulon"]))
    reg_of = {n: i for i, n in enumerate(names)}
    pos = pd.Index(genes).get_indexer(table["gene"])
    w = table["weight"].to_numpy(np.float64) if weighted and "weight" in table else np.ones(len(table))
    reg = table["regulon"].map(reg_of).to_numpy(np.int32)
    n_genes = np.bincount(reg, minlength=len(names))
    present = pos >= 0
    n_present = np.bincount(reg[present], minlength=len(names))
    denom = np.bincount(reg[present], weights=w[present], minlength=len(names))
    ok = (n_present > 0) & (n_present / np.maximum(n_genes, 1) >= MIN_PRESENT_FRACTION)
    denom[~ok] = 0.0
    for name in np.asarray(names)[~ok]:
        log.warning("regulon %s: fewer than 80%% of its genes are in the data; it scores 0", name)
    keep = present & ok[reg]
    order = np.argsort(pos[keep], kind="stable")
    gpos, greg, gw = pos[keep][order], reg[keep][order], w[keep][order]
    ptr = np.zeros(len(genes) + 1, dtype=np.int64)
    np.cumsum(np.bincount(gpos, minlength=len(genes)), out=ptr[1:])
    return Signatures(names, ptr, greg.astype(np.int32), gw, denom, n_present, n_genes)


def shuffle_positions(n_genes: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(perm, pos): ctxcore's column shuffle and each gene's position in it (ties break by position)."""
    perm = np.random.RandomState(seed).permutation(n_genes)
    pos = np.empty(n_genes, dtype=np.int64)
    pos[perm] = np.arange(n_genes)
    return perm.astype(np.int64), pos


SAMPLE_STEP = 8  # the threshold guess is read from every 8th gene of the cell


@numba.njit(cache=True, nogil=True)
def _select_desc(a, k):  # pragma: no cover - compiled
    """The (k+1)-th largest value of ``a`` (reordered in place): Hoare quickselect, median-of-3 pivot."""
    lo, hi = 0, len(a) - 1
    while hi > lo:
        mid = (lo + hi) // 2
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i, j = lo, hi
        while i <= j:
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@numba.njit(parallel=True, cache=True, nogil=True)
def _auc_kernel_f32(X, pos, perm, cutoff, gene_ptr, reg_idx, weight, denom, out):  # pragma: no cover
    """float32 cells: genes above a guessed threshold sorted by 64-bit keys (value bits descending, then
    shuffled position); ranks left below the cutoff go to genes equal to the threshold in shuffled order."""
    n_cells, n_genes = X.shape
    n_reg = out.shape[1]
    n_sample = (n_genes + SAMPLE_STEP - 1) // SAMPLE_STEP
    q = min(n_sample, (cutoff * 13) // (10 * SAMPLE_STEP) + 8)  # aim at ~1.3 x cutoff candidates
    n_chunks = min(n_cells, 256)
    for chunk in numba.prange(n_chunks):
        cand = np.empty(n_genes, dtype=np.int64)
        keys = np.empty(n_genes, dtype=np.uint64)
        vals = np.empty(n_genes, dtype=np.float32)
        acc = np.empty(n_reg, dtype=np.float64)
        sample = np.empty(n_sample, dtype=np.float32)
        for c in range(chunk * n_cells // n_chunks, (chunk + 1) * n_cells // n_chunks):
            row = X[c]
            for i in range(n_sample):
                v = row[i * SAMPLE_STEP]
                sample[i] = -np.inf if np.isnan(v) else v
            t = _select_desc(sample, q - 1)  # the q-th largest of the sample
            n_cand = 0
            n_tied = 0
            for g in range(n_genes):  # branch-free scan: genes above the guess, and a count of those equal to it
                v = row[g]
                cand[n_cand] = g
                n_cand += v > t
                n_tied += v == t
            everything = n_cand + n_tied < cutoff  # guess too high (or NaNs): rank every gene
            if everything:
                for g in range(n_genes):
                    cand[g] = g
                n_cand = n_genes
            for i in range(n_cand):
                v = row[cand[i]]
                vals[i] = -np.inf if np.isnan(v) else v + np.float32(0.0)  # -0.0 ties with 0.0, as in pandas
            bits = vals.view(np.uint32)
            for i in range(n_cand):
                b = bits[i]
                asc = ~b if b >> np.uint32(31) else b | np.uint32(0x80000000)  # order-preserving bits
                keys[i] = (np.uint64(~asc) << np.uint64(32)) | np.uint64(pos[cand[i]])
            top = np.sort(keys[:n_cand])
            acc[:] = 0.0
            for r in range(min(cutoff, n_cand)):
                g = perm[np.int64(top[r] & np.uint64(0xFFFFFFFF))]
                depth = cutoff - r
                for e in range(gene_ptr[g], gene_ptr[g + 1]):
                    acc[reg_idx[e]] += weight[e] * depth
            if not everything and n_cand < cutoff:
                # the remaining ranks go to genes equal to the guess, in shuffled order (ctxcore's tie-break);
                # with sparse data these are zeros, found after a short walk along the shuffle
                r = n_cand
                for j in range(n_genes):
                    g = perm[j]
                    if row[g] == t:
                        depth = cutoff - r
                        for e in range(gene_ptr[g], gene_ptr[g + 1]):
                            acc[reg_idx[e]] += weight[e] * depth
                        r += 1
                        if r == cutoff:
                            break
            for k in range(n_reg):
                out[c, k] = acc[k] / ((cutoff + 1) * denom[k]) if denom[k] > 0 else 0.0


@numba.njit(parallel=True, cache=True, nogil=True)
def _auc_kernel_generic(X, pos, cutoff, gene_ptr, reg_idx, weight, denom, out):  # pragma: no cover - compiled
    n_cells, n_genes = X.shape
    n_reg = out.shape[1]
    n_sample = (n_genes + SAMPLE_STEP - 1) // SAMPLE_STEP
    q = min(n_sample, (cutoff * 13) // (10 * SAMPLE_STEP) + 8)  # aim at ~1.3 x cutoff candidates
    for c in numba.prange(n_cells):
        row = X[c]
        # 1. a threshold that keeps a few more genes than the cutoff, guessed from a sample of the cell
        sample = np.empty(n_sample, dtype=np.float64)
        for i in range(n_sample):
            v = row[i * SAMPLE_STEP]
            sample[i] = np.inf if np.isnan(v) else -v
        guess = -np.partition(sample, q - 1)[q - 1]
        # 2. candidates: every gene at or above the guess (all tied genes at the boundary included)
        cand = np.empty(n_genes, dtype=np.int64)
        n_cand = 0
        for g in range(n_genes):
            if row[g] >= guess:
                cand[n_cand] = g
                n_cand += 1
        if n_cand < cutoff:  # guess too high (or NaNs): take every gene
            for g in range(n_genes):
                cand[g] = g
            n_cand = n_genes
        cand = cand[:n_cand]
        # 3. exact order of the candidates: value descending, ties by shuffled position (ctxcore)
        key = np.empty(n_cand, dtype=np.float64)
        cpos = np.empty(n_cand, dtype=np.int64)
        for i in range(n_cand):
            v = row[cand[i]]
            key[i] = np.inf if np.isnan(v) else -v
            cpos[i] = pos[cand[i]]
        by_pos = np.argsort(cpos)
        ranked = by_pos[np.argsort(key[by_pos], kind="mergesort")]
        # 4. each of the top cutoff genes adds (cutoff - rank) x weight to the regulons it belongs to
        acc = np.zeros(n_reg, dtype=np.float64)
        for r in range(cutoff):
            g = cand[ranked[r]]
            depth = cutoff - r
            for e in range(gene_ptr[g], gene_ptr[g + 1]):
                acc[reg_idx[e]] += weight[e] * depth
        for k in range(n_reg):
            out[c, k] = acc[k] / ((cutoff + 1) * denom[k]) if denom[k] > 0 else 0.0


def aucell_batch(X: np.ndarray, sigs: Signatures, perm: np.ndarray, pos: np.ndarray, cutoff: int) -> np.ndarray:
    """AUC matrix (cells x regulons) of a dense batch on CPU; ``perm, pos`` from ``shuffle_positions``."""
    X = np.asarray(X)
    if X.dtype != np.float32 and not (X.dtype == np.float64 or X.dtype.kind in "iu"):
        X = X.astype(np.float64)
    if X.dtype != np.float32 and (X.dtype.kind in "iu" or np.array_equal(X.astype(np.float32), X, equal_nan=True)):
        X = X.astype(np.float32)  # lossless: same ties, same order
    X = np.ascontiguousarray(X)
    out = np.empty((X.shape[0], len(sigs.names)), dtype=np.float64)
    if not X.shape[0]:
        return out
    if X.dtype == np.float32:
        _auc_kernel_f32(X, pos, perm, cutoff, sigs.gene_ptr, sigs.reg_idx, sigs.weight,
                        sigs.max_auc_denom, out)
    else:
        _auc_kernel_generic(X, pos, cutoff, sigs.gene_ptr, sigs.reg_idx, sigs.weight, sigs.max_auc_denom, out)
    return out


def aucell_batch_torch(X, sigs: Signatures, perm: np.ndarray, cutoff: int, device: str = "cuda") -> np.ndarray:
    """The same numbers with torch (for CUDA): stable descending sort of the shuffled columns."""
    import torch

    n_genes = X.shape[1]
    xt = torch.as_tensor(np.ascontiguousarray(X), device=device)
    if not xt.is_floating_point():
        xt = xt.float()
    permt = torch.as_tensor(perm, device=device)
    xs = torch.nan_to_num(xt[:, permt], nan=-torch.inf)
    order = torch.sort(xs, dim=1, descending=True, stable=True).indices[:, :cutoff]
    genes = permt[order]  # (cells, cutoff) gene ids at ranks 0..cutoff-1
    depth = torch.arange(cutoff, 0, -1, device=device, dtype=torch.float64).expand(genes.shape[0], -1)
    member = torch.zeros((n_genes, len(sigs.names)), dtype=torch.float64, device=device)
    rows = np.repeat(np.arange(n_genes), np.diff(sigs.gene_ptr))
    member[torch.as_tensor(rows, device=device), torch.as_tensor(sigs.reg_idx.astype(np.int64), device=device)] = \
        torch.as_tensor(sigs.weight, device=device)
    score = torch.zeros((genes.shape[0], n_genes), dtype=torch.float64, device=device)
    score.scatter_(1, genes, depth)
    denom = torch.as_tensor(sigs.max_auc_denom, device=device) * (cutoff + 1)
    auc = (score @ member) / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, auc, torch.zeros_like(auc)).cpu().numpy()


def score_cells(matrix, n_obs: int, sigs: Signatures, cutoff: int, seed: int | None, batch_size: int,
                device: str, cells: tuple[int, int] | None = None) -> np.ndarray:
    """AUC matrix (cells x regulons, float64, Fortran order so columns are contiguous) of ``matrix``
    (array, sparse or a backed h5ad dataset), read in blocks of about 128 MiB and scored in batches:
    numba on ``device="cpu"``, torch elsewhere (``batch_size`` x 64 cells at a time).

    ``cells`` = (start, stop) scores those cells only, reading only the blocks that hold them, in the batches of
    the whole pass (at most two partial batches are scored in excess): the same bits as those rows of the whole
    matrix's scores, whatever the backend does with a batch's shape."""
    start, stop = (0, n_obs) if cells is None else cells
    perm, pos = shuffle_positions(len(sigs.gene_ptr) - 1, seed)  # signatures span the data's genes
    auc = np.empty((stop - start, len(sigs.names)), dtype=np.float64, order="F")
    rows = block_rows(len(pos), batch_size)
    step = rows if device == "cpu" else batch_size * 64
    grid = block_grid(n_obs, rows, step, start, stop) if stop > start else []
    for lo, hi, batches in progress(grid, desc="aucell", total=len(grid)):
        block = dense_rows(matrix, lo, hi)
        for b0, b1 in batches:
            part = block[b0 - lo:b1 - lo]
            scores = aucell_batch(part, sigs, perm, pos, cutoff) if device == "cpu" \
                else aucell_batch_torch(part, sigs, perm, cutoff, device=device)
            keep0, keep1 = max(b0, start), min(b1, stop)
            auc[keep0 - start:keep1 - start] = scores[keep0 - b0:keep1 - b0]
    return auc


def binarize(auc: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-regulon threshold on the AUC distribution (Otsu's method on a 256-bin histogram).

    Returns (thresholds (n_regulons,), binary matrix cells x regulons).
    """
    thresholds = np.array([_otsu(auc[:, k]) for k in range(auc.shape[1])])
    return thresholds, (auc > thresholds).astype(np.uint8)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut maximising between-class variance of the histogram."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if not hi > lo:
        return hi
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between))])
