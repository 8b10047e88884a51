"""UMAP scatter coloured by a category (matplotlib only): the embed stage's PNGs and ``fs.pl.umap``."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd


def draw_umap(ax, coords: np.ndarray, values, title: str, seed: int = 0) -> None:
    """Scatter of the 2-d embedding on ``ax``, one colour per category (legend on the right), cells drawn
    in a seeded random order so no category is painted entirely on top."""
    cat = pd.Categorical(np.asarray(values).astype(str))
    order = np.random.default_rng(seed).permutation(len(coords))
    cmap = matplotlib.colormaps["tab20" if len(cat.categories) > 10 else "tab10"]
    size = max(1.0, min(20.0, 30000 / max(len(coords), 1)))
    colours = np.array([cmap(i % cmap.N) for i in range(len(cat.categories))])
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[cat.codes[order]], s=size, linewidths=0, rasterized=True)
    for i, name in enumerate(cat.categories):
        ax.scatter([], [], c=[colours[i]], s=20, label=name)
    ax.legend(title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8,
              ncol=1 if len(cat.categories) <= 20 else 2)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"UMAP by {title}")
