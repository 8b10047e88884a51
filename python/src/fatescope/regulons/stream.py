"""Stream dense blocks of cells from an AnnData opened in backed mode (h5ad, dense or CSR/CSC X or layer)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

READ_BLOCK_VALUES = 2 ** 25  # cells x genes values per read (128 MiB of float32), whatever the batch size


def block_rows(n_genes: int, batch_size: int) -> int:
    """Cells per read: a multiple of the batch size holding about READ_BLOCK_VALUES values."""
    per_block = max(1, READ_BLOCK_VALUES // max(n_genes, 1) // batch_size)
    return per_block * batch_size


def iter_blocks(matrix, n_obs: int, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, dense float block) for consecutive row blocks of ``matrix`` (array, sparse or backed dataset)."""
    for start in range(0, n_obs, rows):
        block = matrix[start:min(start + rows, n_obs)]
        if sp.issparse(block) or hasattr(block, "to_memory"):
            block = block.to_memory() if hasattr(block, "to_memory") else block
            block = block.toarray()
        block = np.asarray(block)
        if block.dtype.kind not in "f":
            block = block.astype(np.float32)
        yield start, block
