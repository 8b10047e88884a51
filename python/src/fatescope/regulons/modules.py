"""Co-expression modules from TF -> target edges; one TF gives several modules.

Kinds (pySCENIC's strategy, parameters as flashSCENIC):
- ``top{k}``: the k strongest targets of the TF;
- ``pct{p}``: targets whose importance is above the p-th percentile of the TF's edge weights;
- ``top{n}perTarget``: for each target its n strongest regulators, regrouped by TF.
A module with fewer than ``min_targets`` targets, or (if set) fewer than ``min_fraction`` of the
TF's targets, is dropped; ``include_tf`` then adds the TF itself with weight 1.0 (as pySCENIC).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

COLUMNS = ["module", "tf", "kind", "target", "weight"]


@dataclass(frozen=True)
class ModuleParams:
    k: int = 50
    percentile_thresholds: tuple[float, ...] = (75.0,)
    top_n_per_target: tuple[int, ...] = (5, 10, 50)
    min_targets: int = 20
    min_fraction: float | None = None
    include_tf: bool = True


def _fmt(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else str(p).replace(".", "p")


def build_modules(edges: pd.DataFrame, params: ModuleParams) -> tuple[pd.DataFrame, dict]:
    """``edges`` (tf, target, importance) -> modules table (module, tf, kind, target, weight) and a report."""
    missing = {"tf", "target", "importance"} - set(edges.columns)
    if missing:
        raise InputError(f"adjacency table lacks columns {sorted(missing)} (expected tf, target, importance)")
    e = edges.loc[edges["tf"] != edges["target"], ["tf", "target", "importance"]]
    e = e.sort_values(["tf", "importance", "target"], ascending=[True, False, True], kind="stable")
    parts = []
    if params.k > 0:
        top = e.groupby("tf", sort=False).head(params.k)
        parts.append(top.assign(kind=f"top{params.k}"))
    for p in params.percentile_thresholds:
        cut = e.groupby("tf")["importance"].transform(lambda w, p=p: np.percentile(w, p))
        parts.append(e[e["importance"] > cut].assign(kind=f"pct{_fmt(p)}"))
    by_target = e.sort_values(["target", "importance", "tf"], ascending=[True, False, True], kind="stable")
    for n in params.top_n_per_target:
        parts.append(by_target.groupby("target", sort=False).head(n).assign(kind=f"top{n}perTarget"))
    if not parts:
        return pd.DataFrame(columns=COLUMNS), {"n_modules": 0}
    mods = pd.concat(parts, ignore_index=True).rename(columns={"importance": "weight"})
    mods["module"] = mods["tf"] + "_" + mods["kind"]
    n_tf_targets = e.groupby("tf").size()
    size = mods.groupby("module")["target"].transform("size")
    keep = size >= params.min_targets
    if params.min_fraction is not None:
        keep &= size >= params.min_fraction * mods["tf"].map(n_tf_targets)
    dropped = int(mods.loc[~keep, "module"].nunique())
    mods = mods[keep]
    if params.include_tf and len(mods):
        tf_rows = mods.drop_duplicates("module")[["module", "tf", "kind"]].assign(target=lambda d: d["tf"], weight=1.0)
        mods = pd.concat([mods, tf_rows], ignore_index=True)
    mods = mods[COLUMNS].sort_values(["module", "weight", "target"], ascending=[True, False, True], kind="stable")
    mods = mods.reset_index(drop=True)
    report = {"n_modules": int(mods["module"].nunique()), "n_modules_dropped_small": dropped,
              "n_tfs_with_modules": int(mods["tf"].nunique()),
              "modules_per_kind": {k: int(v) for k, v in mods.drop_duplicates("module")["kind"].value_counts().items()}}
    return mods, report
