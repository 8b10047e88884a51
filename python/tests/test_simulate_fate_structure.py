"""The simulated cells carry their fate in expression: fate probabilities computed from the kNN graph
(fs.tl.fate_probs, terminal states named by the truth's cell_type) recover the true fates, and with
lineage priming (--fate-priming) early cells' computed probabilities follow their planted pi.

A small simulation without observed fate probabilities (--no-fate-probs), a PCA kNN graph (no
integration: the test is about the simulator, not the batch correction), then the fate-probs API.
"""
from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

import fatescope as fs
from fatescope.cells.embed import neighbor_graph
from fatescope.simulate.cells import MATURE_PSEUDOTIME, PROGENITOR, TRANSITIONAL
from fatescope.simulate.expression import program_activity
from fatescope.simulate.params import FATES

SIZES = dict(seed=1, n_cells=1200, n_genes=400, n_tfs=4, targets_per_tf=10, n_perturbed_genes=12, n_motifs=20)


def _computed_fate_probs(outdir, **params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(samplesheet, truth cells, computed probabilities in truth order) of one small simulation."""
    sheet = pd.read_csv(fs.datasets.simulate(outdir, fate_probs=False, **SIZES, **params))
    truth = pd.read_parquet(outdir / "truth" / "cells.parquet")
    X = sp.vstack([ad.read_h5ad(path).X for path in sheet["counts"]]).toarray()
    X = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4)
    U, S, _ = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    adata = ad.AnnData(obs=pd.DataFrame({"day": truth["day"].astype(str).to_numpy()}, index=truth["cell"].to_numpy()))
    adata.obsp["connectivities"] = neighbor_graph(U[:, :20] * S[:20], n_neighbors=15)
    result = fs.tl.fate_probs(adata, terminal_key="cell_type", terminal_states=",".join(FATES),
                              labels=truth["cell_type"].astype(str).to_numpy())
    return sheet, truth, result.probs[list(FATES)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {priming: _computed_fate_probs(tmp_path_factory.mktemp(f"priming{priming}"), fate_priming=priming)
            for priming in (0.0, 2.0)}


def test_no_fate_probs_leaves_them_out_and_cell_type_names_mature_cells(runs, tmp_path):
    sheet, truth, _ = runs[0.0]
    outdir = tmp_path / "with"
    with_probs = pd.read_csv(fs.datasets.simulate(outdir, fate_probs=True, fate_priming=0.0, **SIZES))
    assert "fate_probs" not in sheet.columns and "fate_probs" in with_probs.columns
    simdir = Path(sheet["counts"].iloc[0]).parent.parent
    assert not (simdir / "fate_probs").exists() and (outdir / "fate_probs").is_dir()
    assert yaml.safe_load((simdir / "sim_metadata.yaml").read_text())["inputs"]["fate_probs"] is False
    # the switch changes what is written, not what is drawn
    assert open(sheet["counts"].iloc[3], "rb").read() == open(with_probs["counts"].iloc[3], "rb").read()
    t, fate, kind = truth["pseudotime"].to_numpy(), truth["true_fate"].astype(str), truth["cell_type"].astype(str)
    assert set(kind) == {PROGENITOR, TRANSITIONAL, *FATES}
    assert (kind[t < 0.5] == PROGENITOR).all() and (kind[(t >= 0.5) & (t < MATURE_PSEUDOTIME)] == TRANSITIONAL).all()
    assert (kind[t >= MATURE_PSEUDOTIME] == fate[t >= MATURE_PSEUDOTIME]).all()
    last = truth["day"].astype(str) == "d3"
    assert 0.2 < kind[last].isin(FATES).mean() < 0.6  # mature cells are a minority of the last day: terminal states


@pytest.mark.parametrize("priming", [0.0, 2.0])
def test_computed_fate_probs_recover_the_true_fate_of_last_day_cells(runs, priming):
    _, truth, probs = runs[priming]
    fate = truth["true_fate"].astype(str).to_numpy()
    best = np.asarray(FATES)[probs.to_numpy().argmax(axis=1)]
    last = (truth["day"].astype(str) == "d3").to_numpy()
    terminal = truth["cell_type"].isin(FATES).to_numpy()
    assert terminal[last].sum() >= 60 and (~terminal & last).sum() >= 150
    assert (best == fate)[last & ~terminal].mean() >= 0.85  # measured 1.0 (priming 0) and 0.99 (priming 2)
    assert np.allclose(probs.to_numpy()[terminal], np.eye(len(FATES))[[FATES.index(f) for f in fate[terminal]]])


def test_priming_makes_early_computed_fate_probs_follow_the_planted_pi(runs):
    """Day-0 cells are uncommitted: only priming puts their fate bias pi, which the guides shift, into
    expression (r of computed p_MES with the true pi_MES: 0.85 with priming 2, 0.22 without)."""
    r = {}
    for priming, (_, truth, probs) in runs.items():
        first = (truth["day"].astype(str) == "d0").to_numpy()
        r[priming] = np.corrcoef(probs["MES"].to_numpy()[first], truth["pi_MES"].to_numpy()[first])[0, 1]
    assert r[2.0] >= 0.6 and r[0.0] < 0.45 and r[2.0] - r[0.0] >= 0.3


def test_program_activity_adds_priming_by_pi_and_is_unchanged_without():
    fate = np.array(["EC", "MES", "NEU"], dtype=object)
    t = np.array([0.0, 0.5, 1.0])
    pi = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    plain = program_activity(fate, t, pi, 0.0)
    assert np.array_equal(plain, np.column_stack([1 - t, np.diag(t)]))
    primed = program_activity(fate, t, pi, 2.0)
    assert np.allclose(primed[:, 1:] - plain[:, 1:], 2.0 * (1 - t)[:, None] * pi)
    assert np.array_equal(primed[:, 0], plain[:, 0])
