"""Input checks shared by the trajectory modules, so every stage entry fails with the same clear message."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError


def square_nonnegative(matrix, what: str) -> sp.csr_matrix:
    """``matrix`` as a float64 CSR copy-free where possible; InputError unless square, finite, >= 0."""
    if not sp.issparse(matrix):
        matrix = sp.csr_matrix(np.asarray(matrix, dtype=np.float64))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"{what}: expected a square cell x cell matrix, got shape {matrix.shape}")
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        raise InputError(f"{what}: {int((~np.isfinite(matrix.data)).sum())} non-finite entries (NaN or inf)")
    if matrix.nnz and matrix.data.min() < 0:
        raise InputError(f"{what}: {int((matrix.data < 0).sum())} negative entries; weights must be >= 0")
    return matrix


def per_cell(values, n_cells: int, what: str) -> np.ndarray:
    """``values`` as a finite float64 vector of one value per cell, else InputError."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.shape != (n_cells,):
        raise InputError(f"{what}: {values.shape[0]} values for {n_cells} cells; expected one per cell")
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(f"{what}: {int(bad.sum())} cells have a non-finite value (NaN or inf), "
                         f"e.g. cell index {int(np.flatnonzero(bad)[0])}")
    return values
