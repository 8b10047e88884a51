"""Stream dense blocks of cells from an AnnData opened in backed mode (h5ad, dense or CSR/CSC X or layer)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

READ_BLOCK_VALUES = 2 ** 25  # cells x genes values per read (128 MiB of float32), whatever the batch size


def block_rows(n_genes: int, batch_size: int) -> int:
    """Cells per read: a multiple of the batch size holding about READ_BLOCK_VALUES values."""
    per_block = max(1, READ_BLOCK_VALUES // max(n_genes, 1) // batch_size)
    return per_block * batch_size


def dense_rows(matrix, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of ``matrix`` (array, sparse or backed dataset) as a dense float array."""
    block = matrix[start:stop]
    if sp.issparse(block) or hasattr(block, "to_memory"):
        block = block.to_memory() if hasattr(block, "to_memory") else block
        block = block.toarray()
    block = np.asarray(block)
    if block.dtype.kind not in "f":
        block = block.astype(np.float32)
    return block


def block_grid(n_obs: int, rows: int, step: int, start: int = 0, stop: int | None = None
               ) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """The reads and batches of a pass over rows 0..n_obs-1 (blocks of ``rows``, each in batches of ``step``) that
    overlap rows [start, stop): (read start, read stop, [(batch start, batch stop), ...]) per block. The batches
    are the whole pass's, so a part of the rows is scored in the very batches the whole pass uses."""
    stop = n_obs if stop is None else stop
    out = []
    for lo in range(start // rows * rows, stop, rows):
        hi = min(lo + rows, n_obs)
        batches = [(b, min(b + step, hi)) for b in range(lo, hi, step) if b < stop and min(b + step, hi) > start]
        out.append((batches[0][0], batches[-1][1], batches))
    return out
