"""Encoding of the QC'd AnnData for the fate model: conventions and every input error."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fatescope.errors import InputError
from fatescope.fate.encoding import encode, order_days
from fatescope.fate.synthetic import simulated_cells


@pytest.fixture(scope="module")
def small():
    adata, truth, sim = simulated_cells(seed=5, n_cells=600, n_perturbed_genes=10, guides_per_gene=3, n_ntc_guides=4,
                                        moi=4, kmax=12, ntc_frac=0.2)
    return adata, sim


def test_conventions(small):
    adata, sim = small
    enc = encode(adata, k_max=12)
    lib = sim.library
    n_target = int((~lib["is_ntc"]).sum())
    assert enc.n_guides == n_target and enc.n_genes == 10 and enc.fates == ["EC", "MES", "NEU"]
    assert enc.days == ["d0", "d1", "d2", "d3"] and enc.replicates == ["r1", "r2"]
    assert enc.guide_ids.shape == (600, 12) and enc.mask.shape == (600, 12)
    assert enc.gene_of_guide[0] == 0 and set(enc.gene_of_guide[1:]) == set(range(1, 11))
    # per cell: targeting guides -> ids 1..G, NTC -> id 0 with mask 1, padding id 0 with mask 0
    for i in range(50):
        row = sim.guides[i][sim.guides[i] >= 0]
        n_ntc = int((row >= n_target).sum())
        ids = enc.guide_ids[i][enc.mask[i] == 1]
        assert sorted(ids[ids > 0] - 1) == sorted(row[row < n_target])
        assert int((ids == 0).sum()) == n_ntc
        assert np.all(enc.guide_ids[i][enc.mask[i] == 0] == 0)
    assert np.array_equal(enc.burden, (sim.guides >= 0).sum(1))
    assert abs(enc.burden_centered.mean()) < 1e-5
    np.testing.assert_allclose(enc.probs.sum(1), 1, atol=1e-5)
    assert np.array_equal(enc.day, sim.cells["day_index"].to_numpy())
    assert enc.guide_gene_names[0] == lib["gene_name"].iloc[0]


def test_kmax_drop_is_counted(small):
    adata, sim = small
    k = (sim.guides >= 0).sum(1)
    enc = encode(adata, k_max=5)
    assert enc.n_dropped_kmax == int((k > 5).sum()) > 0 and enc.n_cells == int((k <= 5).sum())
    assert enc.guide_ids.shape[1] == 5


def _copy(adata):
    a = adata.copy()
    a.obsm["fate_probs"] = np.array(a.obsm["fate_probs"])
    return a


def test_unknown_guide(small):
    adata, _ = small
    gmap = pd.DataFrame({"guide_name": adata.uns["guide_names"][1:], "gene_name": adata.uns["guide_genes"][1:],
                         "is_ntc": adata.uns["guide_is_ntc"][1:]})
    with pytest.raises(InputError, match="not in the guide map"):
        encode(adata, gmap, k_max=12)


@pytest.mark.parametrize("value, match", [(np.nan, "NaN"), (-0.1, "negative")])
def test_bad_probabilities(small, value, match):
    a = _copy(small[0])
    a.obsm["fate_probs"][3, 1] = value
    with pytest.raises(InputError, match=match):
        encode(a, k_max=12)


def test_rows_must_sum_to_one_unless_renormalised(small):
    a = _copy(small[0])
    a.obsm["fate_probs"][7] *= 1.01
    with pytest.raises(InputError, match="sum to 1"):
        encode(a, k_max=12)
    enc = encode(a, k_max=12, renormalize=True)
    np.testing.assert_allclose(enc.probs.sum(1), 1, atol=1e-6)
    a.obsm["fate_probs"][7] = small[0].obsm["fate_probs"][7] * (1 + 5e-5)  # within tolerance
    encode(a, k_max=12)


def test_missing_reference_fate(small):
    with pytest.raises(InputError, match="reference fate 'XX'"):
        encode(small[0], reference_fate="XX", k_max=12)


def test_days_and_replicates(small):
    a = small[0].copy()
    a.obs["day"] = a.obs["day"].astype(str).replace({"d0": "early"})
    with pytest.raises(InputError, match="cannot be parsed as a day"):
        encode(a, k_max=12)
    enc = encode(a, k_max=12, day_order=["early", "d1", "d2", "d3"])
    assert enc.days[0] == "early"
    with pytest.raises(InputError, match="not in day_order"):
        encode(a, k_max=12, day_order=["d1", "d2", "d3"])
    a.obs["replicate"] = a.obs["replicate"].astype(object)
    a.obs.iloc[0, a.obs.columns.get_loc("replicate")] = None
    with pytest.raises(InputError, match="replicate"):
        encode(a, k_max=12)
    assert order_days(["d10", "d2", "d0"], None, "x", "day") == ["d0", "d2", "d10"]
    with pytest.raises(InputError, match="obs has no column 'time'"):
        encode(small[0], day_key="time", k_max=12)


def test_missing_keys(small):
    a = small[0].copy()
    del a.obsm["guides"]
    with pytest.raises(InputError, match="obsm has no 'guides'"):
        encode(a)
    b = small[0].copy()
    b.obsm["guides"] = sp.csr_matrix(b.obsm["guides"])[:, :3]
    with pytest.raises(InputError, match="shape"):
        encode(b)
