"""What the cell stages need of an AnnData, checked in one place for files and objects alike.

``io.readers.read_cells`` checks a file with these (``source`` = the path) and the ``fs.pp`` /
``fs.tl`` functions check the AnnData they are given (``source`` = "adata"), so both say the same.
"""
from __future__ import annotations

from anndata import AnnData

from ..errors import InputError


def counts_layer(adata: AnnData, layer: str, source: str = "adata") -> str:
    """The layer holding the raw counts: ``"auto"`` is ``"decontaminated"`` when the ambient stage
    wrote it, else ``"counts"``; the layer must exist."""
    if layer == "auto":
        layer = "decontaminated" if "decontaminated" in adata.layers else "counts"
    if layer not in adata.layers:
        raise InputError(f"{source}: layers has no {layer!r} (layers: {', '.join(adata.layers) or 'none'}); "
                         f"expected the raw counts there (the qc stage writes layers['counts'])")
    return layer


def check_cells(adata: AnnData, source: str = "adata", *, batch_key: str | None = None, layer: str | None = None,
                obsm: str | None = None, min_cells: int = 0, min_genes: int = 0) -> str | None:
    """Refuse an AnnData without the obs column ``batch_key``, the counts ``layer`` (see
    ``counts_layer``), the embedding ``obsm`` or the least size; returns the resolved layer."""
    if batch_key is not None and batch_key not in adata.obs:
        raise InputError(f"{source}: obs has no column {batch_key!r} (columns: {', '.join(map(str, adata.obs.columns))})")
    if obsm is not None and obsm not in adata.obsm:
        raise InputError(f"{source}: obsm has no {obsm!r} (obsm: {', '.join(adata.obsm) or 'none'}); "
                         f"run integrate first, or name another embedding")
    if adata.n_obs < min_cells or adata.n_vars < min_genes:
        least = f"{min_cells} cells" + (f" and {min_genes} genes" if min_genes else "")
        raise InputError(f"{source}: {adata.n_obs} cells x {adata.n_vars} genes; expected at least {least}")
    return counts_layer(adata, layer, source) if layer is not None else None
