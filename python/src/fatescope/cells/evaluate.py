"""The integrated embedding scored against a simulation's truth: batches mixed, fate branches apart.

Fates are judged on the last day only: earlier cells are progenitors whose fate the simulation has
drawn but not yet expressed, so no embedding can (or should) separate them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from . import metrics as M


def fate_separation(latent: np.ndarray, cells: pd.Index, day: pd.Series, batch: pd.Series, truth: pd.DataFrame,
                    label_key: str = "true_fate", n_neighbors: int = 15, source: str = "truth") -> dict:
    """iLISI of batches over all cells; kNN purity and label ASW of the true fates on the last day."""
    if "cell" not in truth.columns or label_key not in truth.columns:
        raise InputError(f"{source}: needs columns 'cell' and {label_key!r}")
    fates = truth.set_index("cell")[label_key].reindex(cells)
    if fates.isna().all():
        raise InputError(f"{source}: none of its cells are in the embedding (e.g. {truth['cell'].iloc[0]!r} vs {cells[0]!r})")
    last = sorted(day.astype(str).unique(), key=lambda d: (len(d), d))[-1]
    keep = (day.astype(str).to_numpy() == last) & fates.notna().to_numpy()
    X_last, fates_last = latent[keep], fates.to_numpy()[keep].astype(str)
    neighbors = M.knn(X_last, n_neighbors)
    return {
        "ilisi": round(M.ilisi(latent, batch.astype(str).to_numpy()), 4),
        "last_day": last,
        "n_cells_last_day": int(keep.sum()),
        "fate_knn_purity_last_day": round(M.knn_purity(fates_last, neighbors), 4),
        "fate_asw_last_day": round(M.label_asw(X_last, fates_last), 4),
        "chance_knn_purity_last_day": round(float((pd.Series(fates_last).value_counts(normalize=True) ** 2).sum()), 4),
    }
