"""The report's figures: data in, base64 PNG out (matplotlib, readable at page width); the Figure-returning
halves serve fs.pl."""
from __future__ import annotations

import base64
import io
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

WIDTH = 9.0         # inches; the page's content column
DPI = 110
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.spines.top": False, "axes.spines.right": False}
LFSR_FLOOR = 1e-20  # -log10 lfsr is capped here so a few near-zero lfsr do not flatten the volcano
HIT, OTHER = "#c0392b", "#9aa5b1"


def _png(draw: Callable[[], plt.Figure]) -> str:
    """Run ``draw`` under the report style and return its figure as a base64 PNG."""
    with plt.rc_context(STYLE):
        fig = draw()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def qc_bars(qc: pd.DataFrame) -> str:
    """Cells per sample before/after the filters, and median genes per cell."""
    def draw():
        fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 3.6), gridspec_kw={"width_ratios": [3, 2]})
        x = np.arange(len(qc))
        for off, col, label in ((-0.2, "cells_before", "before"), (0.2, "cells_after", "after")):
            if col in qc:
                a.bar(x + off, qc[col], width=0.4, label=label)
        a.set_xticks(x, qc["sample"], rotation=45, ha="right")
        a.set_ylabel("cells")
        a.set_title("Cells per sample")
        a.margins(y=0.2)  # room for the legend above the bars
        a.legend(frameon=False, loc="upper center", ncol=2)
        if "median_genes_per_cell" in qc:
            b.bar(x, qc["median_genes_per_cell"], color="#4c72b0")
            b.set_xticks(x, qc["sample"], rotation=45, ha="right")
            b.set_title("Median genes per cell")
        else:
            b.axis("off")
        fig.tight_layout()
        return fig
    return _png(draw)


def _scatter_by(ax, xy: np.ndarray, values: pd.Series, title: str, label_centres: bool) -> None:
    cats = pd.Categorical(values.astype(str))
    cmap = plt.get_cmap("tab20" if len(cats.categories) > 10 else "tab10")
    order = np.random.default_rng(0).permutation(len(xy))  # no category painted entirely on top
    colours = np.array([cmap(i % cmap.N) for i in range(len(cats.categories))])
    ax.scatter(xy[order, 0], xy[order, 1], c=colours[cats.codes[order]], s=3, linewidths=0, rasterized=True)
    if label_centres:
        for i, cat in enumerate(cats.categories):
            cx, cy = np.median(xy[cats.codes == i], axis=0)
            ax.text(cx, cy, cat, ha="center", va="center", fontsize=10, weight="bold",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
    else:
        for i, cat in enumerate(cats.categories):
            ax.scatter([], [], color=colours[i], s=20, label=cat)
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(4, len(cats.categories)),
                  handletextpad=0.1, columnspacing=0.8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def umap_panels(umap: np.ndarray, obs: pd.DataFrame) -> str:
    """One UMAP panel per obs column (batch, day, leiden); clusters labelled at their centres."""
    def draw():
        keys = list(obs.columns)
        fig, axes = plt.subplots(1, len(keys), figsize=(WIDTH, WIDTH / len(keys) + 0.8), squeeze=False)
        for ax, key in zip(axes[0], keys):
            _scatter_by(ax, umap, obs[key], f"UMAP by {key}", label_centres=obs[key].nunique() > 8)
        fig.tight_layout()
        return fig
    return _png(draw)


def fate_probs_grid(umap: np.ndarray, obs: pd.DataFrame, probs: pd.DataFrame, terminal: pd.Series) -> str:
    """fs.pl.fate_probs on the embedding's cells (those without probabilities left grey)."""
    import anndata as ad

    from ..pl._fate_probs import fate_probs

    cells = ad.AnnData(obs=obs.copy())
    cells.obsm["X_umap"] = umap
    cells.obsm["fate_probs"] = probs.reindex(obs.index).fillna(0.0).to_numpy()
    cells.uns["fate_names"] = list(probs.columns)
    cells.obs["terminal_state"] = terminal.reindex(obs.index).astype(object).to_numpy()
    return _png(lambda: fate_probs(cells))


def heatmap_figure(matrix: pd.DataFrame, title: str, cbar_label: str, xlabel: str, centre: bool = True,
                   annotate: bool = False) -> plt.Figure:
    """Rows x columns heatmap with a diverging colour scale centred on 0 (or a sequential one), in the report style."""
    with plt.rc_context(STYLE):
        n_rows, n_cols = matrix.shape
        height = min(0.28 * n_rows + 1.6, 14)
        fig, ax = plt.subplots(figsize=(min(WIDTH, 2.5 + 0.6 * n_cols), height))
        values = matrix.to_numpy(dtype=float)
        lim = np.nanmax(np.abs(values)) if values.size and np.isfinite(values).any() else 1.0
        kw = dict(cmap="RdBu_r", vmin=-lim, vmax=lim) if centre else dict(cmap="viridis")
        im = ax.imshow(values, aspect="auto", interpolation="nearest", **kw)
        ax.set_xticks(range(n_cols), matrix.columns, rotation=45 if n_cols > 6 else 0, ha="right" if n_cols > 6 else "center")
        ax.set_yticks(range(n_rows), matrix.index)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        if annotate:
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=10,
                            color="white" if abs(v) > 0.6 * lim else "black")
        fig.colorbar(im, ax=ax, label=cbar_label, fraction=0.05, pad=0.02)
        fig.tight_layout()
    return fig


def heatmap(matrix: pd.DataFrame, title: str, cbar_label: str, xlabel: str, centre: bool = True,
            annotate: bool = False) -> str:
    """``heatmap_figure`` as a base64 PNG."""
    return _png(lambda: heatmap_figure(matrix, title, cbar_label, xlabel, centre, annotate))


def volcano_figure(table: pd.DataFrame, hits: dict[str, set[str]], days: list[str], lfsr_thresh: float,
                   fate: str) -> plt.Figure:
    """Posterior mean vs -log10 lfsr, one panel per day; the day's hits in colour; lfsr threshold dashed."""
    with plt.rc_context(STYLE):
        n = len(days)
        cols = min(n, 4)
        rows = int(np.ceil(n / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 2.9 * rows + 0.4), squeeze=False, sharey=True)
        for ax, day in zip(axes.flat, days):
            y = -np.log10(np.clip(table[f"lfsr_{day}"].to_numpy(dtype=float), LFSR_FLOOR, 1))
            x = table[f"postmean_{day}"].to_numpy(dtype=float)
            is_hit = table["gene"].isin(hits.get(day, set())).to_numpy()
            ax.scatter(x[~is_hit], y[~is_hit], s=12, color=OTHER, label="not a hit")
            ax.scatter(x[is_hit], y[is_hit], s=16, color=HIT, label="hit")
            ax.axhline(-np.log10(lfsr_thresh), color="black", ls="--", lw=1)
            ax.axvline(0, color="#cccccc", lw=0.8, zorder=0)
            ax.set_title(f"{day} ({int(is_hit.sum())} hits)")
            ax.set_xlabel("posterior mean")
        for ax in axes[:, 0]:
            ax.set_ylabel("-log10 lfsr")
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.suptitle(f"{fate}: shrunken effects (lfsr capped at {LFSR_FLOOR:g}; dashed line lfsr = {lfsr_thresh:g})")
        fig.tight_layout()
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2)
    return fig


def volcano(table: pd.DataFrame, hits: dict[str, set[str]], days: list[str], lfsr_thresh: float, fate: str) -> str:
    """``volcano_figure`` as a base64 PNG."""
    return _png(lambda: volcano_figure(table, hits, days, lfsr_thresh, fate))


def mode_bars(comparison: pd.DataFrame) -> str:
    """Hit calls per scope in the two mash modes, with their Jaccard overlap."""
    def draw():
        fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.2))
        x = np.arange(len(comparison))
        ax.bar(x - 0.2, comparison["calls_conservative"], width=0.4, label="conservative")
        if comparison["calls_enriched"].notna().any():
            ax.bar(x + 0.2, comparison["calls_enriched"], width=0.4, label="enriched")
            for xi, top, j in zip(x, comparison[["calls_conservative", "calls_enriched"]].max(axis=1), comparison["jaccard"]):
                if np.isfinite(j):
                    ax.text(xi, top, f"J={j:.2f}", ha="center", va="bottom", fontsize=10)
        ax.set_xticks(x, comparison["scope"])
        ax.set_ylabel("hit calls")
        ax.set_title("Calls per mash mode (J = Jaccard overlap)")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
        ax.margins(y=0.15)
        fig.tight_layout()
        return fig
    return _png(draw)
