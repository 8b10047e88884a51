"""``fs.pl.regulon_heatmap``: the report's regulon heatmap (mean AUCell per cluster, z-scored per regulon)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from ..errors import InputError
from ..regulons.activity import cluster_means, most_varying
from ..report.figures import heatmap_figure
from ..report.sections_cells import MAX_REGULONS_SHOWN


def regulon_heatmap(adata: AnnData, *, groupby: str = "leiden", n_regulons: int = MAX_REGULONS_SHOWN,
                    key: str = "X_aucell", names_key: str = "aucell_regulons") -> Figure:
    """Heatmap of mean AUCell per group of cells, z-scored per regulon across groups; the ``n_regulons``
    regulons whose group means span the widest range, widest first (the report's "Regulon activity").

    Parameters
    ----------
    adata
        Cells with AUCell scores in ``obsm[key]`` and their regulon names in ``uns[names_key]``
        (``fs.tl.aucell``, or the aucell stage's ``cells.h5ad``) and the groups in ``obs[groupby]``.
    groupby
        Column of ``adata.obs`` with the groups (clusters).
    n_regulons
        Rows shown.
    key, names_key
        Where the scores and their names are.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import fatescope as fs
    >>> fs.tl.aucell(adata, regulons)
    >>> fig = fs.pl.regulon_heatmap(adata, groupby="leiden")
    >>> fig.savefig("regulons.png")
    """
    if key not in adata.obsm or names_key not in adata.uns:
        raise InputError(f"adata.obsm[{key!r}] or adata.uns[{names_key!r}] not found; run fs.tl.aucell first")
    if groupby not in adata.obs:
        raise InputError(f"adata.obs[{groupby!r}] not found (expected the cell groups, e.g. Leiden clusters)")
    names = [str(n) for n in np.asarray(adata.uns[names_key])]
    scores = np.asarray(adata.obsm[key])
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise InputError(f"adata.obsm[{key!r}] has shape {scores.shape}; expected cells x {len(names)} regulons "
                         f"(uns[{names_key!r}])")
    if n_regulons < 1:
        raise InputError(f"n_regulons: expected 1 or more, got {n_regulons}")
    means = cluster_means(pd.DataFrame(scores, index=adata.obs_names, columns=names), adata.obs[groupby])
    shown = most_varying(means, n_regulons)
    return heatmap_figure(shown, f"Mean AUCell per {groupby} ({len(shown)} of {len(means)} regulons)",
                          "z-score across clusters", groupby)
