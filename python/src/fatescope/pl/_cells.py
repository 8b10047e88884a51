"""``fs.pl.umap``: the UMAP coloured by a cell annotation, as the embed stage draws it."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from ..errors import InputError


def umap(adata: AnnData, *, color: str, values: Sequence | np.ndarray | None = None, basis: str = "X_umap",
         seed: int = 0):
    """Scatter of the 2-d UMAP, one colour per category of ``obs[color]``, legend on the right.

    Parameters
    ----------
    adata
        Cells with the embedding in ``obsm[basis]`` (``fs.tl.embed`` writes ``X_umap``).
    color
        obs column to colour by (its values are shown as categories), or the name of ``values``.
    values
        Per-cell values in obs order, used instead of ``obs[color]``.
    basis
        obsm key of the 2-d embedding.
    seed
        Seed of the drawing order (cells in random order, so no category hides the others).

    Returns
    -------
    A ``matplotlib.figure.Figure`` (not attached to pyplot; ``fig.savefig(path)`` writes it).

    Examples
    --------
    >>> import fatescope as fs
    >>> fig = fs.pl.umap(adata, color="leiden")
    >>> fig.savefig("umap_leiden.png")
    """
    from matplotlib.figure import Figure

    from ..cells.plots import draw_umap

    if basis not in adata.obsm:
        raise InputError(f"adata: obsm has no {basis!r} (obsm: {', '.join(adata.obsm) or 'none'}); run fs.tl.embed first")
    if values is None:
        if color not in adata.obs:
            raise InputError(f"adata: obs has no column {color!r} (columns: {', '.join(map(str, adata.obs.columns))})")
        values = adata.obs[color]
    elif len(values) != adata.n_obs:
        raise InputError(f"values: {len(values)} values for {adata.n_obs} cells; expected one per cell")
    fig = Figure(figsize=(6.5, 5), dpi=120)
    draw_umap(fig.subplots(), np.asarray(adata.obsm[basis]), values, color, seed=seed)
    fig.tight_layout()
    return fig
