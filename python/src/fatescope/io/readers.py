"""Readers of the files one stage hands the next (h5ad, Parquet/CSV tables, npz), for the stage commands.

A missing file, a folder, or a file that is not of the expected kind is an InputError naming the file
and what was expected, never a reader's traceback. Nothing here unpickles (NumPy with allow_pickle=False).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..cells.checks import check_cells
from ..errors import InputError


def _existing(path: str | os.PathLike, expected: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected {expected})")
    if not p.is_file():
        raise InputError(f"{p}: is a folder, not a file (expected {expected})")
    return p


def _unreadable(path: Path, kind: str, expected: str, exc: Exception) -> InputError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InputError(f"{path}: cannot be read as {kind} (expected {expected}; {type(exc).__name__}: {first[:160]})")


def read_annotations(path: str | os.PathLike, expected: str) -> ad.AnnData:
    """An .h5ad file without its count matrices (X, layers, obsp): obs, var, obsm and uns, all the fate
    stages use. At 200,000 cells x 2,000 genes the counts were 4 of fate-fit's 4.9 GiB peak."""
    import h5py
    from anndata.io import read_elem

    p = _existing(path, expected)
    try:
        with h5py.File(p, "r") as f:
            parts = {key: read_elem(f[key]) for key in ("obs", "var", "obsm", "uns") if key in f}
        return ad.AnnData(obs=parts["obs"], var=parts.get("var"), obsm=parts.get("obsm"), uns=parts.get("uns"))
    except Exception as exc:  # noqa: BLE001 - h5py/anndata raise many types for a file that is not h5ad
        raise _unreadable(p, "h5ad", expected, exc) from None


def read_anndata(path: str | os.PathLike, expected: str, backed: str | None = None) -> ad.AnnData:
    """An .h5ad file (``backed="r"`` keeps X on disk)."""
    p = _existing(path, expected)
    try:
        return ad.read_h5ad(p, backed=backed)
    except Exception as exc:  # noqa: BLE001 - h5py/anndata raise many types for a file that is not h5ad
        raise _unreadable(p, "h5ad", expected, exc) from None


def read_table(path: str | os.PathLike, expected: str, **csv_options) -> pd.DataFrame:
    """A Parquet (``.parquet``) or CSV/TSV (``.tsv``: tab-separated) table with a header row."""
    p = _existing(path, expected)
    kind = "Parquet" if p.suffix == ".parquet" else "a CSV table"
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        # correctly rounded numbers: pandas' default parser is off by an ulp on about half of all 17-digit values
        csv_options.setdefault("float_precision", "round_trip")
        return pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",", **csv_options)
    except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many types for a malformed file
        raise _unreadable(p, kind, expected, exc) from None


def read_npz(path: str | os.PathLike, expected: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an .npz file (no pickled objects)."""
    p = _existing(path, expected)
    if not zipfile.is_zipfile(p):
        raise InputError(f"{p}: not an npz archive (expected {expected})")
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz]
            if missing:
                raise InputError(f"{p}: missing arrays {missing}; expected {', '.join(keys)} ({expected})")
            return {k: npz[k] for k in keys}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy errors for a file that is not a plain npz
        raise _unreadable(p, "npz", expected, exc) from None


def read_cells(path: str | os.PathLike, *, what: str, batch_key: str | None = None, layer: str | None = None,
               obsm: str | None = None, min_cells: int = 0, min_genes: int = 0) -> ad.AnnData:
    """A cells.h5ad that a cell stage reads (``what``: which one, for the error), holding the obs
    column ``batch_key``, the counts ``layer`` (``"auto"``: 'decontaminated' when present, else
    'counts') and the embedding ``obsm`` when these are given, and at least ``min_cells`` x ``min_genes``."""
    adata = read_anndata(path, what)
    check_cells(adata, str(path), batch_key=batch_key, layer=layer, obsm=obsm, min_cells=min_cells, min_genes=min_genes)
    return adata
