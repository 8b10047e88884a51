"""Small real-format fixtures written on the fly (h5ad, 10x MatrixMarket, 10x HDF5)."""
from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PBMC = SHARED / "data" / "pbmc_3batches"


def counts_matrix(rng: np.random.Generator, n_cells: int, n_genes: int, depth: float = 2.0) -> sp.csr_matrix:
    """Poisson counts with gene-specific means: a realistic sparse integer matrix."""
    means = rng.gamma(0.6, depth, size=n_genes)
    return sp.csr_matrix(rng.poisson(means[None, :] * rng.gamma(5, 0.2, size=(n_cells, 1))).astype(np.float32))


def write_h5ad(path: Path, X, genes, barcodes) -> Path:
    ad.AnnData(X=sp.csr_matrix(X), obs=pd.DataFrame(index=list(barcodes)), var=pd.DataFrame(index=list(genes))).write_h5ad(path)
    return path


def write_mtx(folder: Path, X, genes, barcodes, features_name: str = "features.tsv.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.csr_matrix(X).T.tocoo().astype(np.int64), field="integer")
    with gzip.open(folder / features_name, "wt") as fh:
        fh.writelines(f"ENSG{i:06d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in barcodes)
    return folder


def write_10x_h5(path: Path, X, genes, barcodes) -> Path:
    """Cell Ranger >= 3 HDF5 layout: /matrix with CSC genes x cells and a features group."""
    csc = sp.csc_matrix(sp.csr_matrix(X).T.astype(np.int32))
    with h5py.File(path, "w") as fh:
        m = fh.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape)
        m["barcodes"] = np.array(list(barcodes), dtype="S")
        f = m.create_group("features")
        f["name"] = np.array(list(genes), dtype="S")
        f["id"] = np.array([f"ENSG{i:06d}" for i in range(len(genes))], dtype="S")
        f["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def three_samples(tmp_path, rng):
    """Three samples in the three formats with overlapping gene sets, plus guides and fate probs."""
    genes = [f"G{i:03d}" for i in range(60)] + ["MT-CO1", "MT-ND1"]
    specs = {"s1": (genes, 40), "s2": (genes[5:], 30), "s3": (genes[:50] + genes[-2:], 20)}
    paths = {}
    for name, (g, n) in specs.items():
        X = counts_matrix(rng, n, len(g))
        bc = [f"{name.upper()}BC{i:04d}-1" for i in range(n)]
        if name == "s1":
            paths[name] = write_h5ad(tmp_path / "s1.h5ad", X, g, bc)
        elif name == "s2":
            paths[name] = write_mtx(tmp_path / "s2_mtx", X, g, bc)
        else:
            paths[name] = write_10x_h5(tmp_path / "s3.h5", X, g, bc)
        paths[name + "_barcodes"] = bc
    return tmp_path, paths, specs


@pytest.fixture
def guide_map(tmp_path):
    rows = [("gA1", "GENEA", "false"), ("gA2", "GENEA", "false"), ("gB1", "GENEB", "false"), ("ntc1", "", "true")]
    path = tmp_path / "guide_map.csv"
    pd.DataFrame(rows, columns=["guide_name", "gene_name", "is_ntc"]).to_csv(path, index=False)
    return path


def write_sheet(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
