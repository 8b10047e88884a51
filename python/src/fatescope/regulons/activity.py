"""Regulon activity per cell group: mean AUCell per cluster, z-scored across clusters (the report's heatmap)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def cluster_means(auc: pd.DataFrame, clusters: pd.Series) -> pd.DataFrame:
    """Mean AUCell per cluster (regulons x clusters), clusters in natural order (2 before 10)."""
    means = auc.groupby(clusters.astype(str)).mean().T
    order = sorted(means.columns, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
    return means[order]


def zscore_rows(m: pd.DataFrame) -> pd.DataFrame:
    """Each row centred and scaled across columns (constant rows: 0)."""
    sd = m.std(axis=1, ddof=0).replace(0, np.nan)
    return m.sub(m.mean(axis=1), axis=0).div(sd, axis=0).fillna(0.0)


def most_varying(means: pd.DataFrame, n: int) -> pd.DataFrame:
    """z-scores of the ``n`` regulons whose cluster means span the widest range, widest first."""
    spread = means.max(axis=1) - means.min(axis=1)
    return zscore_rows(means).loc[spread.sort_values(ascending=False).index[:n]]
