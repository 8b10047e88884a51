"""Hit calls, ranking and guide -> gene aggregation on hand-made posteriors."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from fatescope.shrink.aggregate import aggregate_guides
from fatescope.shrink.rank import CallThresholds, compare_modes, corrected_lfsr, rank_hits, tail_prob


def test_tail_probability_and_bonferroni():
    np.testing.assert_allclose(tail_prob(np.array([0.5]), np.array([0.1]), 0.2), norm.sf(0.2, 0.5, 0.1) + norm.cdf(-0.2, 0.5, 0.1))
    assert tail_prob(np.array([0.3, 0.1]), np.array([0.0, 0.0]), 0.2).tolist() == [1.0, 0.0]
    lfsr = np.array([[0.01, 0.2, 0.5], [0.4, 0.5, 0.6]])
    np.testing.assert_allclose(corrected_lfsr(lfsr, "bonferroni"), [0.03, 1.0])
    np.testing.assert_allclose(corrected_lfsr(lfsr, "none"), [0.01, 0.4])


def test_aggregate_is_inverse_variance_meta_analysis():
    genes = pd.Series(["A", "A", "B"])
    pm = np.array([[1.0, 0.0], [3.0, 0.2], [-0.5, 0.1]])
    sd = np.array([[1.0, 0.5], [2.0, 0.5], [0.1, 1.0]])
    ids, f = aggregate_guides(genes, pm, sd, 0.05)
    assert ids["gene"].tolist() == ["A", "B"] and ids["n_guides"].tolist() == [2, 1]
    np.testing.assert_allclose(f["postmean"][0, 0], (1 * 1 + 3 * 0.25) / 1.25)
    np.testing.assert_allclose(f["postsd"][0, 0], np.sqrt(1 / 1.25))
    np.testing.assert_allclose(f["lfsr"], norm.cdf(-np.abs(f["postmean"]) / f["postsd"]))
    assert ids["active_days"].tolist() == [(f["lfsr"][0] < 0.05).sum(), (f["lfsr"][1] < 0.05).sum()]


def test_rank_orders_hits_first_and_applies_every_threshold():
    ids = pd.DataFrame({"gene": ["weak", "strong", "small", "late"]})
    fields = {"postmean": np.array([[0.1, 0.1], [1.0, 0.9], [0.15, 0.15], [0.0, -0.8]]),
              "postsd": np.array([[0.1, 0.1], [0.1, 0.1], [0.01, 0.01], [0.5, 0.1]]),
              "lfsr": np.array([[0.2, 0.3], [1e-6, 1e-5], [1e-9, 1e-9], [0.5, 1e-4]])}
    t = CallThresholds(min_active_days=1)
    hits = rank_hits(ids, ["d1", "d2"], fields, t)
    assert hits["gene"].tolist()[:3] == ["small", "strong", "late"]
    calls = dict(zip(hits["gene"], hits["hit_anyday"]))
    assert calls == {"small": True, "strong": True, "late": True, "weak": False}
    row = hits.set_index("gene")
    assert not row.loc["small", "hit_d1"]          # |effect| 0.15 < 0.2: fails the tail rule
    assert row.loc["late", "best_day"] == "d2" and row.loc["late", "hit_d2"] and not row.loc["late", "hit_d1"]
    strict = rank_hits(ids, ["d1", "d2"], fields, CallThresholds(min_active_days=2)).set_index("gene")
    assert not strict.loc["late", "hit_anyday"] and strict.loc["strong", "hit_anyday"]
    comp = compare_modes(["d1", "d2"], fields, fields, t)
    assert comp.loc[0, "overlap"] == comp.loc[0, "calls_conservative"] == 3 and comp.loc[0, "jaccard"] == 1
