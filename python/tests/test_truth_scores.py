"""Scores against planted truth used by eval-recovery: regulon targets, batch mixing and fate separation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fatescope.cells.evaluate import fate_separation
from fatescope.errors import InputError
from fatescope.regulons.evaluate import regulon_recovery


def test_regulon_recovery_counts_pairs_not_the_tf_itself():
    truth = pd.DataFrame({"tf": ["A"] * 4 + ["B"] * 2, "target": ["a1", "a2", "a3", "a4", "b1", "b2"]})
    regulons = pd.DataFrame({"regulon": ["A(+)"] * 4 + ["C(+)"] * 2,
                             "tf": ["A", "A", "A", "A", "C", "C"], "target": ["A", "a1", "a2", "x", "C", "c1"]})
    r = regulon_recovery(regulons, truth)
    # claimed pairs: (A,a1) (A,a2) (A,x) (C,c1) -> 2 of 4 right; planted 6 -> recall 2/6
    assert r["n_targets_claimed"] == 4 and r["target_precision"] == 0.5 and r["target_recall"] == round(2 / 6, 4)
    assert r["planted_tfs_found"] == 1 and r["n_planted_tfs"] == 2 and r["spurious_tfs"] == ["C"]
    assert r["per_tf"]["A"] == {"n_targets": 3, "precision": round(2 / 3, 4)}
    with pytest.raises(InputError, match="lacks columns"):
        regulon_recovery(regulons.rename(columns={"target": "gene"}), truth, source="r.parquet")


def _cells(separated: bool, seed=0):
    rng = np.random.default_rng(seed)
    n = 600
    day = np.repeat(["d0", "d1", "d2"], n // 3)
    fate = rng.choice(["EC", "MES", "NEU"], n)
    batch = rng.choice(["b1", "b2"], n)
    centres = {"EC": [0, 0], "MES": [6, 0], "NEU": [0, 6]}
    X = rng.normal(size=(n, 2)) + (np.array([centres[f] for f in fate]) if separated else 0)
    cells = pd.Index([f"c{i}" for i in range(n)])
    truth = pd.DataFrame({"cell": cells, "true_fate": fate})
    return X.astype(np.float32), cells, pd.Series(day), pd.Series(batch), truth


def test_fate_separation_tells_apart_separated_and_mixed_fates():
    good = fate_separation(*_cells(True))
    bad = fate_separation(*_cells(False))
    assert good["last_day"] == "d2" and good["n_cells_last_day"] == 200
    assert good["fate_knn_purity_last_day"] > 0.95 and bad["fate_knn_purity_last_day"] < 0.5
    assert abs(bad["chance_knn_purity_last_day"] - 1 / 3) < 0.05
    assert good["fate_asw_last_day"] > 0.8 > 0.55 > bad["fate_asw_last_day"]
    # batches drawn at random: well mixed in both
    assert good["ilisi"] > 0.9 and bad["ilisi"] > 0.9
    X, cells, day, batch, truth = _cells(True)
    with pytest.raises(InputError, match="none of its cells"):
        fate_separation(X, cells, day, batch, truth.assign(cell=truth["cell"] + "_x"))
