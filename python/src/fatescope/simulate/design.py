"""Experimental design: samples = days x replicates, batches, cells per sample, barcodes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .params import SimParams

BARCODE_LENGTH = 16
_BASES = np.array(list("ACGT"))


def sample_table(params: SimParams) -> pd.DataFrame:
    """One row per sample ``d<day>_r<rep>``; replicate r is library-prep batch ``batch<r>``.

    Batch is crossed with day (every day has every batch), so batch and time are separable.
    Cells are split evenly; the first ``n_cells % n_samples`` samples get one cell more.
    """
    rows = [(f"d{d}_r{r + 1}", f"d{d}", d, f"r{r + 1}", r, f"batch{r + 1}")
            for d in range(params.n_days) for r in range(params.n_replicates)]
    table = pd.DataFrame(rows, columns=["sample", "day", "day_index", "replicate", "replicate_index", "batch"])
    base, extra = divmod(params.n_cells, params.n_samples)
    table["n_cells"] = base + (np.arange(params.n_samples) < extra)
    return table


def cell_barcodes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct 10x-style barcodes (16 bases + ``-1``)."""
    codes = rng.choice(4 ** BARCODE_LENGTH, size=n, replace=False)
    digits = (codes[:, None] >> (2 * np.arange(BARCODE_LENGTH - 1, -1, -1))) & 3
    letters = _BASES[digits]
    return np.array(["".join(row) + "-1" for row in letters], dtype=object)
