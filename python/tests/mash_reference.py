"""Loaders for mashr's reference outputs: the 2,000 x 4 case of ../shared/reference/mashr, copied to
data/mashr_shared (CSVs gzipped, see its README.txt), and the 3,000 x 5 heteroskedastic case kept as fixtures
in data/mashr (made by data/mashr/make_ref.R).

Every number is read with a correctly rounded parser (``float_precision="round_trip"``): the files hold
the exact doubles mashr used, and pandas' default parser changes about half of them by an ulp."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data"
REF = DATA / "mashr_shared"
DAYS = ["d0", "d2", "d4", "d6"]
FIXTURES = DATA / "mashr"
HET_FITS = ("ee_conservative", "ee_enriched", "ez_conservative", "ez_enriched")


def read_numbers(path: Path, **kw) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip", **kw)


def shared_csv(name: str, **kw) -> pd.DataFrame:
    """A CSV of the shared reference case by its original name (stored gzipped)."""
    return read_numbers(REF / f"{name}.gz", **kw)


def matrix(name: str) -> np.ndarray:
    return shared_csv(name).to_numpy(np.float64)


def named(name: str, col: str) -> dict[str, float]:
    df = shared_csv(name, keep_default_na=False)
    return dict(zip(df["name"], df[col].astype(float)))


def ulist(name: str) -> dict[str, np.ndarray]:
    return _long_ulist(shared_csv(name))


def _long_ulist(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """covariances from the long format cov_name,i,j,value (1-based)."""
    out = {}
    for cov, g in df.groupby("cov_name", sort=False):
        R = int(g["i"].max())
        M = np.zeros((R, R))
        M[g["i"] - 1, g["j"] - 1] = g["value"]
        out[cov] = M
    return out


def loglik(tag: str) -> float:
    return float((REF / f"{tag}_loglik.txt").read_text())


def conditions() -> list[str]:
    return list(shared_csv("input_Bhat.csv", nrows=0).columns)


def strong_idx() -> np.ndarray:
    return np.loadtxt(REF / "ed_strong_idx.txt", dtype=int) - 1


def gene_table(path: Path) -> Path:
    """The reference input as a fate-stage gene table (days d0..d6)."""
    b, s = matrix("input_Bhat.csv"), matrix("input_Shat.csv")
    df = pd.DataFrame({"gene": [f"G{i:04d}" for i in range(len(b))]})
    for k, d in enumerate(DAYS):
        df[f"betahat_{d}"] = b[:, k]
    for k, d in enumerate(DAYS):
        df[f"se_{d}"] = s[:, k]
    df.to_csv(path, index=False, float_format="%.17g")
    return path


def guide_table(path: Path, gene: Path, seed: int, genes: range) -> Path:
    """A guide table made from the reference gene table: 3 guides for each gene of ``genes`` (row indices),
    each with its own standard errors (0.7-1.4) and noise around the gene's effect."""
    g = pd.read_csv(gene)
    rng = np.random.default_rng(seed)
    rows = []
    for i in genes:
        for k in range(3):
            se = rng.uniform(0.7, 1.4, size=len(DAYS))
            rows.append({"guide": f"{g.gene[i]}_sg{k}", "gene": g.gene[i],
                         **{f"betahat_{d}": g[f"betahat_{d}"][i] + se[j] * rng.normal() for j, d in enumerate(DAYS)},
                         **{f"se_{d}": se[j] for j, d in enumerate(DAYS)}})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def het_case() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(Bhat, Shat, condition names) of the heteroskedastic fixture case."""
    b = read_numbers(FIXTURES / "het_input_Bhat.csv.gz")
    return b.to_numpy(np.float64), het_matrix("het_input_Shat.csv.gz"), list(b.columns)


def het_matrix(name: str) -> np.ndarray:
    return read_numbers(FIXTURES / name).to_numpy(np.float64)


def het_named(name: str) -> dict[str, float]:
    df = read_numbers(FIXTURES / name, keep_default_na=False)
    return dict(zip(df["name"], df["value"].astype(float)))


def het_ulist(name: str) -> dict[str, np.ndarray]:
    return _long_ulist(read_numbers(FIXTURES / name))


def het_strong(model: str) -> np.ndarray:
    return np.loadtxt(FIXTURES / f"het_{model}_strong_idx.txt", dtype=int) - 1
