"""``fs.pp.qc``: the qc stage's cell and gene filters on an already loaded (concatenated) AnnData."""
from __future__ import annotations

from anndata import AnnData

from ..cells.qc import QCParams, check_samples_kept, filter_cells_and_genes
from ..errors import InputError


def qc(adata: AnnData, *, min_features: int = 600, min_cells: int = 3, max_pct_mito: float | None = None,
       mito_prefix: str = "MT-", sample_key: str = "sample") -> None:
    """Filter cells and genes in place, as ``fatescope qc`` does after loading the samples.

    Cells with fewer than ``min_features`` detected genes (or more than ``max_pct_mito`` percent of
    their counts on mitochondrial genes) go first, then genes detected in fewer than ``min_cells``
    of the cells left. Loading a samplesheet's files (counts, guide calls, fate probabilities) is
    the command's job (``fatescope.cli.qc``).

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``X``; modified in place.
    min_features
        Least genes detected in a cell.
    min_cells
        Least cells in which a gene is detected.
    max_pct_mito
        Most percent of a cell's counts on mitochondrial genes; ``None``: no filter.
    mito_prefix
        Prefix of mitochondrial gene symbols (case-insensitive).
    sample_key
        obs column of the sample: every sample must keep a cell (an InputError names those that
        lose all); no check when the column is absent.

    Returns
    -------
    None. Writes ``obs``: ``n_genes_by_counts``, ``total_counts``, ``pct_counts_mt``; ``var``:
    ``mt``, ``n_cells_by_counts``; ``layers["counts"]``: a copy of the filtered ``X``.

    Examples
    --------
    >>> import fatescope as fs
    >>> fs.pp.qc(adata, min_features=200, max_pct_mito=20)
    >>> adata.obs["pct_counts_mt"].describe()
    """
    if min_features < 0 or min_cells < 0:
        raise InputError(f"min_features={min_features}, min_cells={min_cells}: expected numbers >= 0")
    if max_pct_mito is not None and not 0 <= max_pct_mito <= 100:
        raise InputError(f"max_pct_mito={max_pct_mito}: expected a percent in [0, 100] or None")
    params = QCParams(min_features=min_features, min_cells=min_cells, max_pct_mito=max_pct_mito, mito_prefix=mito_prefix)
    samples = adata.obs[sample_key].to_numpy() if sample_key in adata.obs else None
    filter_cells_and_genes(adata, params)
    if samples is not None:
        check_samples_kept(samples, adata.obs[sample_key].to_numpy(), params)
    adata.layers["counts"] = adata.X.copy()
