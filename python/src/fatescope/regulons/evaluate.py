"""Regulons scored against planted ones: which TFs were found, and how pure and complete their targets are."""
from __future__ import annotations

import pandas as pd

from ..errors import InputError

REGULON_COLUMNS = {"tf", "target"}


def regulon_recovery(regulons: pd.DataFrame, truth: pd.DataFrame, source: str = "regulons") -> dict:
    """Target precision and recall of inferred regulons against planted (tf, target) pairs.

    A regulon's row naming the TF itself (pySCENIC adds the TF to its modules) claims no target
    and is not scored. Precision is over all claimed (tf, target) pairs; recall over planted pairs.
    """
    for name, table in ((source, regulons), ("truth", truth)):
        missing = REGULON_COLUMNS - set(table.columns)
        if missing:
            raise InputError(f"{name}: lacks columns {sorted(missing)} (expected tf, target)")
    claimed = regulons.loc[regulons["tf"] != regulons["target"], ["tf", "target"]].drop_duplicates()
    planted = truth[["tf", "target"]].drop_duplicates()
    hit = claimed.merge(planted, on=["tf", "target"], how="left", indicator=True)["_merge"].eq("both").to_numpy()
    per_tf = (claimed.assign(hit=hit).groupby("tf")["hit"].agg(["size", "mean"])
              .rename(columns={"size": "n_targets", "mean": "precision"}))
    found = sorted(set(claimed["tf"]) & set(planted["tf"]))
    return {
        "n_regulons": int(claimed["tf"].nunique()),
        "n_planted_tfs": int(planted["tf"].nunique()),
        "planted_tfs_found": len(found),
        "spurious_tfs": sorted(set(claimed["tf"]) - set(planted["tf"])),
        "n_targets_claimed": int(len(claimed)),
        "target_precision": round(float(hit.mean()), 4) if len(claimed) else None,
        "target_recall": round(float(hit.sum() / len(planted)), 4) if len(planted) else None,
        "per_tf": {tf: {"n_targets": int(r.n_targets), "precision": round(float(r.precision), 4)}
                   for tf, r in per_tf.iterrows()},
    }
