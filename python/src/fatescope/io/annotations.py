"""Per-cell annotations that travel with the counts: guide calls, fate probabilities, guide map."""
from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError

TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0", ""}


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if ".tsv" in path.suffixes else ","
    try:
        return pd.read_csv(path, sep=sep, dtype={"cell": str, "guide": str, "guide_name": str, "gene_name": str},
                           float_precision="round_trip")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: could not read table: {exc}") from exc


def _require_columns(df: pd.DataFrame, path: Path, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} ({what}; found: {', '.join(map(str, df.columns))})")


# gene names that denote non-targeting controls, not a gene (compared lower-case)
CONTROL_GENE_NAMES = {"ntc", "non-targeting", "nontargeting", "non_targeting", "non targeting", "negative_control"}


def read_guide_map(path: str | Path) -> pd.DataFrame:
    """Guide map CSV ``guide_name, gene_name, is_ntc`` -> DataFrame indexed by guide_name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: guide map not found (expected CSV with guide_name, gene_name, is_ntc)")
    df = _read_table(path)
    _require_columns(df, path, ["guide_name", "gene_name", "is_ntc"], "a guide map has one row per guide")
    flags = df["is_ntc"].astype(str).str.strip().str.lower()
    bad = ~flags.isin(TRUE_WORDS | FALSE_WORDS)
    problems = [f"row {i + 1}, field 'is_ntc': {df['is_ntc'].iloc[i]!r} is not true/false" for i in np.flatnonzero(bad)]
    dup = df["guide_name"].duplicated(keep="first")
    problems += [f"row {i + 1}, field 'guide_name': duplicate guide {df['guide_name'].iloc[i]!r}" for i in np.flatnonzero(dup)]
    is_ntc = flags.isin(TRUE_WORDS)
    no_gene = ~is_ntc & df["gene_name"].isna()
    problems += [f"row {i + 1}, field 'gene_name': targeting guide {df['guide_name'].iloc[i]!r} has no gene" for i in np.flatnonzero(no_gene)]
    if df["guide_name"].isna().any():
        problems += [f"row {i + 1}, field 'guide_name': empty" for i in np.flatnonzero(df["guide_name"].isna())]
    control_like = ~is_ntc & df["gene_name"].astype(str).str.strip().str.lower().isin(CONTROL_GENE_NAMES)
    problems += [f"row {i + 1}, field 'is_ntc': guide {df['guide_name'].iloc[i]!r} targets "
                 f"{df['gene_name'].iloc[i]!r}, a control name, but is_ntc is false" for i in np.flatnonzero(control_like)]
    if len(df) and not is_ntc.any() and not problems:
        problems.append("field 'is_ntc': no guide is a non-targeting control (is_ntc true); fate effects are "
                        "measured against the cells carrying only controls")
    if problems:
        raise InputError(f"{path}: guide map has {len(problems)} problem(s)", problems)
    out = pd.DataFrame({"gene_name": df["gene_name"].where(~is_ntc, "NTC").astype(str).values,
                        "is_ntc": is_ntc.values}, index=pd.Index(df["guide_name"].astype(str), name="guide_name"))
    return out


def read_guide_calls(path: str | Path, guide_names: pd.Index) -> tuple[pd.Index, sp.csr_matrix]:
    """Guide calls of one sample -> (barcodes, cells x guides matrix in ``guide_names`` order).

    Accepts a long table (``cell, guide[, umi]``), a wide table (``cell`` then one column per
    guide), or an .h5ad of cells x guides. Guides absent from the guide map are an error.
    """
    path = Path(path)
    if path.suffix == ".h5ad":
        g = ad.read_h5ad(path)
        barcodes, names, mat = g.obs_names.astype(str), g.var_names.astype(str), sp.csr_matrix(g.X)
    else:
        df = _read_table(path)
        if {"cell", "guide"} <= set(df.columns):
            umi = df["umi"].to_numpy(float) if "umi" in df.columns else np.ones(len(df))
            cells = pd.Index(pd.unique(df["cell"].astype(str)))
            names = pd.Index(pd.unique(df["guide"].astype(str)))
            mat = sp.csr_matrix((umi, (cells.get_indexer(df["cell"].astype(str)), names.get_indexer(df["guide"].astype(str)))),
                                shape=(len(cells), len(names)))
            barcodes = cells
        else:
            first = df.columns[0]
            barcodes = pd.Index(df[first].astype(str))
            names = pd.Index(df.columns[1:].astype(str))
            mat = sp.csr_matrix(df.iloc[:, 1:].to_numpy(float))
    unknown = names.difference(guide_names)
    if len(unknown):
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise InputError(f"{path}: {len(unknown)} guide(s) not in the guide map: {shown} "
                         "(every guide must have a row guide_name,gene_name,is_ntc in the guide map)")
    if mat.nnz and (np.any(mat.data < 0) or not np.all(np.isfinite(mat.data))):
        raise InputError(f"{path}: guide calls must be non-negative finite counts or 0/1")
    cols = guide_names.get_indexer(names)
    reorder = sp.csr_matrix((np.ones(len(cols)), (np.arange(len(cols)), cols)), shape=(len(cols), len(guide_names)))
    return pd.Index(barcodes), sp.csr_matrix(mat @ reorder)


def read_fate_probs(path: str | Path) -> pd.DataFrame:
    """Fate probabilities of one sample: ``cell`` then one column per fate -> DataFrame by cell."""
    path = Path(path)
    df = _read_table(path)
    _require_columns(df, path, ["cell"], "fate probabilities have a cell column and one column per fate")
    df = df.set_index(df["cell"].astype(str)).drop(columns="cell")
    if df.shape[1] < 2:
        raise InputError(f"{path}: need at least two fate columns besides 'cell' (found {list(df.columns)})")
    values = df.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() | (values < 0)
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise InputError(f"{path}: {int(bad.to_numpy().sum())} fate probabilit(ies) are NaN, non-numeric or negative; "
                         f"first at row {r + 1} (cell {df.index[r]!r}), column {df.columns[c]!r}: {df.iat[r, c]!r} "
                         "(expected probabilities in [0, 1])")
    if df.index.duplicated().any():
        raise InputError(f"{path}: duplicate cell {df.index[df.index.duplicated()][0]!r}")
    return values.astype(np.float64)
