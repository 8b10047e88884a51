"""``fs.pl.fate_probs``: fate probabilities on the UMAP, one panel per day and fate, terminal cells marked."""
from __future__ import annotations

import numpy as np
from anndata import AnnData

from ..errors import InputError

PANEL_INCHES = 2.6


def fate_probs(adata: AnnData, *, day_key: str | None = "day", basis: str = "X_umap", key: str = "fate_probs",
               max_points: int = 50_000, seed: int = 0):
    """A grid of UMAPs: rows are days (all cells when ``day_key`` is None or absent), columns are fates;
    each panel colours that day's cells by their probability of the fate over the other cells in grey,
    and rings the fate's terminal cells (``obs["terminal_state"]``).

    Parameters
    ----------
    adata
        Cells with ``obsm[key]`` and ``uns["fate_names"]`` (``fs.tl.fate_probs``) and ``obsm[basis]``.
    day_key
        obs column of the day (rows of the grid, ordered by their number).
    basis, key
        obsm keys of the 2-d embedding and of the fate probabilities.
    max_points
        Cells drawn per panel at most (a seeded subsample beyond).
    seed
        Seed of that subsample.

    Returns
    -------
    A ``matplotlib.figure.Figure``.

    Examples
    --------
    >>> import fatescope as fs
    >>> fs.tl.fate_probs(adata)
    >>> fs.pl.fate_probs(adata).savefig("fate_probs_umap.png")
    """
    from matplotlib.figure import Figure

    from ..fate.encoding import order_days

    for store, name in ((adata.obsm, basis), (adata.obsm, key)):
        if name not in store:
            raise InputError(f"adata: obsm has no {name!r}; run fs.tl.embed and fs.tl.fate_probs first")
    names = [str(n) for n in adata.uns.get("fate_names", [])]
    probs = np.asarray(adata.obsm[key], dtype=np.float64)
    if len(names) != probs.shape[1]:
        raise InputError(f"adata: uns['fate_names'] has {len(names)} names for {probs.shape[1]} columns of obsm[{key!r}]")
    xy = np.asarray(adata.obsm[basis])[:, :2]
    days = adata.obs[day_key].astype(str).to_numpy() if day_key and day_key in adata.obs else None
    rows = order_days(days, None, "adata", day_key) if days is not None else ["all cells"]
    terminal = adata.obs["terminal_state"].astype(object).to_numpy() if "terminal_state" in adata.obs else None
    shown = np.random.default_rng(seed).permutation(adata.n_obs)[:max_points]
    fig = Figure(figsize=(PANEL_INCHES * len(names) + 0.8, PANEL_INCHES * len(rows)), dpi=110)
    axes = np.asarray(fig.subplots(len(rows), len(names), squeeze=False))
    for r, day in enumerate(rows):
        in_row = shown if days is None else shown[days[shown] == day]
        for c, fate in enumerate(names):
            ax = axes[r, c]
            ax.scatter(xy[shown, 0], xy[shown, 1], s=2, c="#dddddd", linewidths=0, rasterized=True)
            points = ax.scatter(xy[in_row, 0], xy[in_row, 1], s=3, c=probs[in_row, c], cmap="viridis", vmin=0, vmax=1,
                                linewidths=0, rasterized=True)
            if terminal is not None:
                ends = shown[terminal[shown] == fate]
                ax.scatter(xy[ends, 0], xy[ends, 1], s=8, facecolors="none", edgecolors="#d62728", linewidths=0.4)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(fate, fontsize=9)
            if c == 0:
                ax.set_ylabel(day, fontsize=9)
    fig.colorbar(points, ax=axes.ravel().tolist(), shrink=0.6, label="fate probability")
    return fig
