"""Numbers behind the pytest-workflow runs, checked against the simulated truth."""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml


@pytest.mark.workflow("run test profile")
def test_qc_matches_simulated_truth(workflow_dir):
    res = workflow_dir / "results"
    meta = yaml.safe_load((res / "simulate" / "sim_metadata.yaml").read_text())
    truth = pd.read_parquet(res / "simulate" / "truth" / "cells.parquet").set_index("cell")
    table = pd.read_csv(res / "qc" / "qc_per_sample.csv")
    a = ad.read_h5ad(res / "qc" / "cells.h5ad")

    n_cells = meta["inputs"]["n_cells"]
    assert table["cells_before"].sum() == n_cells == len(truth)
    assert table["cells_after"].sum() == a.n_obs >= 0.95 * n_cells
    assert len(table) == 8 and set(a.obs["day"].cat.categories) == {"d0", "d1", "d2", "d3"}
    # guide calls: attached per cell exactly as simulated
    assert a.obs_names.isin(truth.index).all()
    np.testing.assert_array_equal(a.obs["n_guides"].to_numpy(), truth.loc[a.obs_names, "n_guides"].to_numpy())
    gmap = pd.read_csv(res / "simulate" / "guide_map.csv")
    assert list(a.uns["guide_names"]) == gmap["guide_name"].tolist()
    # fate probabilities: present for every cell, rows sum to 1
    assert a.obs["has_fate_probs"].all() and list(a.uns["fate_names"]) == ["EC", "MES", "NEU"]
    np.testing.assert_allclose(a.obsm["fate_probs"].sum(axis=1), 1.0, atol=1e-6)
    # raw integer counts kept
    counts = sp.csr_matrix(a.layers["counts"])
    assert np.array_equal(counts.data, np.round(counts.data)) and counts.data.min() > 0


@pytest.mark.workflow("stages one by one")
def test_stage_outputs_consistent(workflow_dir):
    valid = pd.read_csv(workflow_dir / "validate" / "samplesheet.valid.csv")
    assert valid["counts"].map(lambda p: p.startswith("/")).all()
    a = ad.read_h5ad(workflow_dir / "qc" / "cells.h5ad", backed="r")
    table = pd.read_csv(workflow_dir / "qc" / "qc_per_sample.csv")
    assert table["cells_before"].sum() == 1200 and a.n_obs == table["cells_after"].sum()
