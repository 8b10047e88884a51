"""Load one sample's count matrix (h5ad, 10x HDF5, 10x MatrixMarket folder) as cells x genes.

Whatever the format, the result is an AnnData with raw integer counts in ``X`` (CSR, float32),
barcodes as ``obs_names`` and gene symbols as ``var_names``.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)

MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def detect_counts_format(path: Path) -> str:
    """'h5ad', '10x_h5' or '10x_mtx'; InputError naming what is missing otherwise."""
    if path.is_dir():
        missing = [kind for kind, names in (("matrix.mtx[.gz]", MTX_NAMES), ("features.tsv or genes.tsv", FEATURE_NAMES),
                                            ("barcodes.tsv[.gz]", BARCODE_NAMES)) if _first(path, names) is None]
        if missing:
            raise InputError(f"{path}: 10x MatrixMarket folder lacks {', '.join(missing)}")
        return "10x_mtx"
    if path.suffix == ".h5ad":
        return "h5ad"
    if path.suffix == ".h5":
        return "10x_h5"
    raise InputError(f"{path}: unknown counts format (expected .h5ad, 10x .h5, or a 10x MatrixMarket folder)")


def _read_lines(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.rstrip("\n").split("\t") for line in fh if line.strip()]


def _read_mtx_folder(folder: Path) -> ad.AnnData:
    matrix = scipy.io.mmread(_first(folder, MTX_NAMES))
    features = _read_lines(_first(folder, FEATURE_NAMES))
    barcodes = [r[0] for r in _read_lines(_first(folder, BARCODE_NAMES))]
    # 10x features: id, symbol[, type]; old genes.tsv: id, symbol; some exports: symbol only
    symbols = [r[1] if len(r) > 1 else r[0] for r in features]
    ids = [r[0] for r in features]
    if matrix.shape != (len(symbols), len(barcodes)):
        raise InputError(f"{folder}: matrix is {matrix.shape[0]} x {matrix.shape[1]} (genes x cells) but there are "
                         f"{len(symbols)} features and {len(barcodes)} barcodes")
    var = pd.DataFrame({"gene_ids": ids}, index=unique_names(symbols, str(folder)))
    return ad.AnnData(X=sp.csr_matrix(matrix.T), obs=pd.DataFrame(index=pd.Index(barcodes, dtype=str)), var=var)


def _read_10x_h5(path: Path) -> ad.AnnData:
    with h5py.File(path, "r") as fh:
        if "matrix" in fh:  # Cell Ranger >= 3
            grp = fh["matrix"]
            names = grp["features/name"][:].astype(str)
            ids = grp["features/id"][:].astype(str)
        else:  # Cell Ranger 2: one group per genome
            grp = fh[next(iter(fh.keys()))]
            names = grp["gene_names"][:].astype(str)
            ids = grp["genes"][:].astype(str)
        n_genes, n_cells = grp["shape"][:]
        mat = sp.csc_matrix((grp["data"][:], grp["indices"][:], grp["indptr"][:]), shape=(n_genes, n_cells))
        barcodes = grp["barcodes"][:].astype(str)
    var = pd.DataFrame({"gene_ids": ids}, index=unique_names(names, str(path)))
    return ad.AnnData(X=mat.T.tocsr(), obs=pd.DataFrame(index=pd.Index(barcodes, dtype=str)), var=var)


def _read_h5ad(path: Path) -> ad.AnnData:
    adata = ad.read_h5ad(path)
    counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
    out = ad.AnnData(X=sp.csr_matrix(counts), obs=pd.DataFrame(index=adata.obs_names.astype(str)),
                     var=pd.DataFrame(index=unique_names(adata.var_names, str(path))))
    return out


def unique_names(names: list[str] | np.ndarray, where: str) -> pd.Index:
    """Gene symbols made unique the anndata way (``X``, ``X-1``, ``X-2``), saying how many changed."""
    index = pd.Index(np.asarray(names, dtype=str))
    if index.is_unique:
        return index
    seen: dict[str, int] = {}
    taken = set(index)
    out = []
    for name in index:
        if name in seen:
            k = seen[name]
            while f"{name}-{k}" in taken:
                k += 1
            seen[name] = k + 1
            taken.add(f"{name}-{k}")
            out.append(f"{name}-{k}")
        else:
            seen[name] = 1
            out.append(name)
    log.warning("%s: %d duplicate gene names made unique (suffixes -1, -2, ...)", where, int(index.duplicated().sum()))
    return pd.Index(out)


def check_counts(X: sp.csr_matrix, where: str) -> None:
    """Raw counts must be finite, non-negative integers."""
    data = X.data
    bad = ~np.isfinite(data)
    if bad.any():
        raise InputError(f"{where}: counts contain {int(bad.sum())} NaN/inf value(s) (expected raw integer UMI counts)")
    neg = data < 0
    frac = data != np.round(data)
    for mask, what in ((neg, "negative"), (frac, "non-integer")):
        if mask.any():
            k = int(np.flatnonzero(mask)[0])
            row = int(np.searchsorted(X.indptr, k, side="right") - 1)
            raise InputError(f"{where}: counts contain {int(mask.sum())} {what} value(s), first {data[k]!r} at cell "
                             f"{row + 1}, gene {int(X.indices[k]) + 1} (expected raw integer UMI counts, not normalised data)")


def read_counts(path: str | Path) -> ad.AnnData:
    """Read one sample's counts as cells x genes; validate they are raw integer counts."""
    path = Path(path)
    fmt = detect_counts_format(path)
    try:
        adata = {"h5ad": _read_h5ad, "10x_h5": _read_10x_h5, "10x_mtx": _read_mtx_folder}[fmt](path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: could not read as {fmt}: {exc}") from exc
    counts = sp.csr_matrix(adata.X)
    check_counts(counts, str(path))
    adata.X = counts.astype(np.float32)
    adata.uns["counts_format"] = fmt
    return adata
