"""Parity of the fate-probs math with CellRank 2.x and scanpy on the real pancreas data: the fixture holds
scanpy's kNN graph and DPT and CellRank's outputs (made by data/cellrank/make_ref.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fatescope.trajectory import (absorption_probabilities, diffusion_pseudotime, find_terminal_states,
                                  terminal_cells, transition_matrix)

FIXTURE = Path(__file__).parent / "data" / "cellrank" / "pancreas_cellrank.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    n = data["clusters"].size
    data["conn"] = sp.csr_matrix((data["conn_data"], data["conn_indices"], data["conn_indptr"]), shape=(n, n))
    data["terminal_cells"] = terminal_cells(data["clusters"], list(data["terminal"]))
    return data


def test_fixture_records_versions(ref):
    versions = json.loads(str(ref["versions"]))
    assert versions["cellrank"].startswith("2.") and "scanpy" in versions


@pytest.mark.parametrize(("weight", "key"), [(0.0, "t_pk"), (0.2, "t_mix")])
def test_transition_matrix_equals_cellrank(ref, weight, key):
    T = transition_matrix(ref["conn"], ref["dpt"], connectivity_weight=weight)
    assert np.array_equal(T.indptr, ref["conn"].indptr) and np.array_equal(T.indices, ref["conn"].indices)
    np.testing.assert_allclose(T.data, ref[key], rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, atol=1e-12)


@pytest.mark.parametrize("kernel", ["pk", "mix"])
@pytest.mark.parametrize("solver", ["direct", "gmres"])
def test_absorption_equals_cellrank(ref, kernel, solver):
    T = transition_matrix(ref["conn"], ref["dpt"], connectivity_weight=0.2 if kernel == "mix" else 0.0)
    probs = absorption_probabilities(T, ref["terminal_cells"], solver=solver, order=ref["dpt"])
    np.testing.assert_allclose(probs, ref[f"fate_{kernel}_direct"], rtol=0, atol=1e-6)
    # CellRank's default gmres stops at a relative residual of 1e-6
    np.testing.assert_allclose(probs, ref[f"fate_{kernel}_gmres"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-8)
    for column, cells in enumerate(ref["terminal_cells"].values()):
        expected = np.zeros(probs.shape[1])
        expected[column] = 1.0
        np.testing.assert_array_equal(probs[cells], np.broadcast_to(expected, (cells.size, expected.size)))
    assert probs.min() >= -1e-12


def test_diffusion_pseudotime_matches_scanpy_dpt(ref):
    ductal = np.flatnonzero(ref["clusters"] == "Ductal")
    pseudotime, root = diffusion_pseudotime(ref["conn"], ductal)
    exact, exact_root = diffusion_pseudotime(ref["conn"], ductal, stationary=0.9994)  # scanpy's threshold
    np.testing.assert_array_equal(pseudotime, exact)
    assert root == exact_root == int(ref["root"])  # same documented root rule applied to scanpy's diffusion map
    # scanpy keeps the eigenvectors in float32: agreement to ~1e-6, correlation 1 - 1e-12 measured
    np.testing.assert_allclose(pseudotime, ref["dpt"], rtol=0, atol=1e-5)
    assert np.corrcoef(pseudotime, ref["dpt"])[0, 1] > 0.99999
    assert pseudotime[root] == 0.0 and pseudotime.max() == 1.0


def test_terminal_rule_finds_endocrine_ends(ref):
    T = transition_matrix(ref["conn"], ref["dpt"])
    found = find_terminal_states(T, ref["clusters"], ref["dpt"])
    assert found == ["Delta", "Beta", "Alpha"]
