"""SCALEX preprocessing on sparse counts: normalise, log1p, batch-aware HVGs, max-abs scaling, PCA.

Pure functions on arrays; the same numbers as scanpy's ``normalize_total`` / ``log1p`` /
``highly_variable_genes(flavor="seurat", batch_key=...)`` without depending on scanpy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError


def log_normalize(counts, target_sum: float = 1e4) -> sp.csr_matrix:
    """Counts -> log1p(counts / total x target_sum), CSR float32; all-zero cells stay zero."""
    X = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    totals = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    X.data *= np.repeat(scale, np.diff(X.indptr)).astype(np.float32)
    np.log1p(X.data, out=X.data)
    return X


def _mean_var(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    n = X.shape[0]
    mean = np.asarray(X.mean(axis=0)).ravel().astype(np.float64)
    sq = np.asarray(X.multiply(X).mean(axis=0)).ravel().astype(np.float64)
    var = (sq - mean ** 2) * n / max(n - 1, 1)
    return mean, var


def _seurat_dispersion(logX: sp.csr_matrix, n_bins: int = 20) -> pd.DataFrame:
    """Seurat-flavour normalised dispersion of each gene (scanpy's recipe)."""
    X = logX.copy()
    np.expm1(X.data, out=X.data)
    mean, var = _mean_var(X)
    mean[mean == 0] = 1e-12
    disp = var / mean
    disp[disp == 0] = np.nan
    df = pd.DataFrame({"means": np.log1p(mean), "dispersions": np.log(disp)})
    df["bin"] = pd.cut(df["means"], bins=n_bins)
    grouped = df.groupby("bin", observed=False)["dispersions"]
    bin_mean, bin_std = grouped.mean(), grouped.std(ddof=1)
    single = bin_std.isnull()
    bin_std[single], bin_mean[single] = bin_mean[single], 0
    df["dispersions_norm"] = ((df["dispersions"].to_numpy() - bin_mean.loc[df["bin"]].to_numpy())
                              / bin_std.loc[df["bin"]].to_numpy())
    return df


def highly_variable_genes(logX: sp.csr_matrix, batches: np.ndarray, n_top: int = 2000) -> np.ndarray:
    """Indices of the ``n_top`` HVGs: per-batch Seurat HVGs ranked by the number of batches in which
    a gene is variable, then by mean normalised dispersion (scanpy's ``batch_key`` rule)."""
    logX = sp.csr_matrix(logX)
    if n_top >= logX.shape[1]:
        return np.arange(logX.shape[1])
    nbatches = np.zeros(logX.shape[1])
    disp_sum = np.zeros(logX.shape[1])
    groups = pd.unique(np.asarray(batches))
    for b in groups:
        sub = logX[np.flatnonzero(np.asarray(batches) == b)]
        df = _seurat_dispersion(sub)
        dn = df["dispersions_norm"].to_numpy()
        dn = np.where(np.isfinite(dn), dn, np.nan)
        expressed = np.diff(sub.tocsc().indptr) > 0
        order = np.argsort(-np.nan_to_num(dn, nan=-np.inf), kind="stable")
        top = order[:n_top]
        top = top[np.isfinite(dn[top]) & expressed[top]]
        nbatches[top] += 1
        disp_sum += np.nan_to_num(dn, nan=0.0)
    score = pd.DataFrame({"n": nbatches, "d": disp_sum / len(groups)})
    order = score.sort_values(["n", "d"], ascending=False, kind="stable").index.to_numpy()
    return np.sort(order[:n_top])


def maxabs_by_batch(X: sp.csr_matrix, batches: np.ndarray, scale: str = "batch") -> dict[str, np.ndarray]:
    """Per-gene max |x| per batch (``scale="batch"``) or over all cells (``"global"``, key ``"*"``)."""
    X = sp.csr_matrix(X)
    if scale == "global":
        return {"*": np.asarray(abs(X).max(axis=0).todense()).ravel().astype(np.float32)}
    out = {}
    for b in pd.unique(np.asarray(batches)):
        rows = np.flatnonzero(np.asarray(batches) == b)
        out[str(b)] = np.asarray(abs(X[rows]).max(axis=0).todense()).ravel().astype(np.float32)
    return out


def apply_maxabs(X: sp.csr_matrix, batches: np.ndarray, maxabs: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Divide each cell's genes by its batch's max-abs (genes with max 0 are left at 0); O(nnz)."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    batches = np.asarray(batches).astype(str)
    names = np.unique(batches)
    inv = np.empty((len(names), X.shape[1]), dtype=np.float32)
    for i, b in enumerate(names):
        m = maxabs["*"] if "*" in maxabs else maxabs.get(b)
        if m is None:
            raise InputError(f"batch {b!r} has no max-abs scale in the checkpoint")
        inv[i] = np.divide(1.0, m, out=np.zeros_like(m, dtype=np.float32), where=m > 0)
    codes = np.searchsorted(names, batches)
    rows = np.repeat(codes, np.diff(X.indptr))
    X.data *= inv[rows, X.indices]
    X.eliminate_zeros()
    return X


def pca(X, n_comps: int = 50, chunk_size: int = 20000) -> np.ndarray:
    """PCA scores of the gene-centred matrix, exact, from the genes x genes covariance built chunk by
    chunk (memory: genes^2 plus one chunk; deterministic up to the sign, fixed so each loading's
    largest entry is positive)."""
    X = sp.csr_matrix(X)
    n, g = X.shape
    n_comps = int(min(n_comps, n - 1, g))
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    if n < g:  # fewer cells than genes: SVD of the centred data is cheaper than the covariance
        U, S, Vt = np.linalg.svd(X.toarray().astype(np.float64) - mean, full_matrices=False)
        V = Vt[:n_comps].T
        sign = np.sign(V[np.abs(V).argmax(axis=0), np.arange(n_comps)])
        return (U[:, :n_comps] * S[:n_comps] * sign).astype(np.float32)
    gram = np.zeros((g, g))
    for start in range(0, n, chunk_size):
        block = X[start:start + chunk_size].toarray().astype(np.float64)
        gram += block.T @ block
    cov = (gram - n * np.outer(mean, mean)) / max(n - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    V = vecs[:, ::-1][:, :n_comps]
    V *= np.sign(V[np.abs(V).argmax(axis=0), np.arange(n_comps)])
    out = np.empty((n, n_comps), dtype=np.float32)
    for start in range(0, n, chunk_size):
        block = X[start:start + chunk_size].toarray().astype(np.float64) - mean
        out[start:start + chunk_size] = block @ V
    return out


def hvg_pca(counts, batches, n_top: int = 2000, target_sum: float = 1e4, n_comps: int = 50,
            chunk_size: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Harmony's input without a VAE: PCA of the batch-aware HVGs of the log-normalised counts, each gene
    standardised and clipped to +-10 (scanpy's ``scale(max_value=10)``); returns (PCs, HVG indices)."""
    logX = log_normalize(counts, target_sum)
    keep = highly_variable_genes(logX, np.asarray(batches).astype(str), n_top)
    X = logX[:, keep].toarray()
    X = np.clip((X - X.mean(0)) / np.maximum(X.std(0), 1e-8), -10, 10)
    return pca(X, n_comps, chunk_size=chunk_size), keep
