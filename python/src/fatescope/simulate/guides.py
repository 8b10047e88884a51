"""Guide library and guide assignment (MOI) per cell."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .genes import GeneCatalog
from .params import SimParams

NO_GUIDE = -1  # padding in the cells x kmax guide matrix


def choose_perturbed_genes(rng: np.random.Generator, catalog: GeneCatalog, n: int) -> pd.Index:
    """``n`` genes targeted by CRISPRi, drawn from the non-TF, non-mitochondrial genes.

    TFs are left out so a knockdown never rewires the planted regulons.
    """
    pool = catalog.names[~catalog.table["role"].isin(["tf", "tf_no_targets", "mito"]).to_numpy()]
    return pd.Index(np.sort(rng.choice(pool.to_numpy(), size=n, replace=False)))


def guide_library(perturbed_genes: pd.Index, guides_per_gene: int, n_ntc_guides: int) -> pd.DataFrame:
    """Guide map rows ``guide_name, gene_name, is_ntc``: targeting guides by gene, then NTCs.

    Row position is the guide's library index used throughout the simulation.
    """
    targeting = [(f"{gene}_g{j + 1}", gene, False) for gene in perturbed_genes for j in range(guides_per_gene)]
    width = max(2, len(str(n_ntc_guides)))
    ntc = [(f"NTC_{i + 1:0{width}d}", "NTC", True) for i in range(n_ntc_guides)]
    return pd.DataFrame(targeting + ntc, columns=["guide_name", "gene_name", "is_ntc"])


def truncated_poisson(rng: np.random.Generator, rate: float, upper: int, n: int) -> np.ndarray:
    """Poisson(rate) conditioned on k <= upper (values above are redrawn)."""
    k = rng.poisson(rate, size=n)
    while (over := k > upper).any():
        k[over] = rng.poisson(rate, size=int(over.sum()))
    return k


def _duplicates(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mask of valid entries that repeat an earlier valid entry of the same row."""
    keyed = np.where(valid, values, -1 - np.arange(values.shape[1]))  # padding never collides
    order = np.argsort(keyed, axis=1, kind="stable")
    ordered = np.take_along_axis(keyed, order, axis=1)
    repeat = ordered[:, 1:] == ordered[:, :-1]
    dup = np.zeros_like(valid)
    rows = np.nonzero(repeat)[0]
    dup[rows, order[:, 1:][repeat]] = True
    return dup


def sample_distinct(rng: np.random.Generator, sizes: np.ndarray, pool: int, width: int) -> np.ndarray:
    """Row i holds ``sizes[i]`` distinct draws from ``range(pool)``, then NO_GUIDE padding."""
    valid = np.arange(width)[None, :] < sizes[:, None]
    if pool == 0:  # only reached with sizes all 0 (no NTC guides)
        return np.full((len(sizes), width), NO_GUIDE)
    out = np.where(valid, rng.integers(pool, size=(len(sizes), width)), NO_GUIDE)
    while (dup := _duplicates(out, valid)).any():
        out[dup] = rng.integers(pool, size=int(dup.sum()))
    return out


def assign_guides(rng: np.random.Generator, n_cells: int, params: SimParams) -> np.ndarray:
    """cells x kmax matrix of library indices (NO_GUIDE padded, sorted per row).

    k_i ~ Poisson(moi) truncated at kmax; each of a cell's k_i guides is an NTC with
    probability ntc_frac (capped at the number of NTC guides, the rest become targeting),
    otherwise a uniformly drawn targeting guide; no guide appears twice in a cell.
    """
    k = truncated_poisson(rng, params.moi, params.kmax, n_cells)
    n_ntc = np.minimum(rng.binomial(k, params.ntc_frac), params.n_ntc_guides)
    targeting = sample_distinct(rng, k - n_ntc, params.n_targeting_guides, params.kmax)
    ntc = sample_distinct(rng, n_ntc, params.n_ntc_guides, params.kmax)
    ntc = np.where(ntc == NO_GUIDE, NO_GUIDE, ntc + params.n_targeting_guides)
    both = np.concatenate([targeting, ntc], axis=1)
    both = np.sort(np.where(both == NO_GUIDE, np.iinfo(np.int32).max, both), axis=1)[:, : params.kmax]
    return np.where(both == np.iinfo(np.int32).max, NO_GUIDE, both).astype(np.int32)
