"""Ambient removal on simulated contamination with known truth (error vs truth), profiles, CLI."""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

from fatescope.cells.ambient import AmbientParams, decontaminate, profile_from_empties, profile_from_low_umi
from fatescope.cli import main


def contaminated(seed=0, n=400, g=200, types=3):
    """Cell types with distinct markers; each cell gets ambient RNA (the cells' mean profile) at a
    known fraction f ~ U(0.02, 0.3); plus 300 empty droplets of pure ambient RNA."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.5, 1, size=g)
    profiles = []
    for _ in range(types):
        w = base.copy()
        m = rng.choice(g, 30, replace=False)
        w[m] *= rng.uniform(5, 20, 30)
        profiles.append(w / w.sum())
    profiles = np.array(profiles)
    lab = rng.integers(0, types, n)
    lib = rng.lognormal(np.log(3000), 0.3, n)
    f = rng.uniform(0.02, 0.3, n)
    amb = profiles[lab].mean(0)
    amb /= amb.sum()
    true = rng.poisson(rng.gamma(5, lib[:, None] * (1 - f[:, None]) * profiles[lab] / 5))
    obs = true + rng.poisson(lib[:, None] * f[:, None] * amb)
    empties = rng.poisson(rng.uniform(20, 80, (300, 1)) * amb)
    return obs, true, f, amb, empties


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    obs, true, f, amb, empties = contaminated()
    genes = [f"G{i}" for i in range(obs.shape[1])]
    raw = np.vstack([obs, empties])
    prof = profile_from_empties(raw, genes, genes, [f"c{i}" for i in range(len(obs))],
                                [f"c{i}" for i in range(len(raw))], 100)
    dec, frac, info = decontaminate(obs, np.zeros(len(obs), int), {"0": prof}, AmbientParams(epochs=200, lr=3e-3, seed=0))
    return obs, true, f, amb, prof, dec, frac


def test_profile_from_empties_matches_truth(fitted):
    obs, true, f, amb, prof, dec, frac = fitted
    assert np.abs(prof - amb).sum() < 0.1  # L1 distance of two probability vectors


def test_decontamination_error_vs_truth(fitted):
    obs, true, f, amb, prof, dec, frac = fitted
    dec = dec.toarray()
    err_raw = np.abs(obs - true).sum() / true.sum()
    err = np.abs(dec - true).sum() / true.sum()
    assert err < 0.9 * err_raw, (err, err_raw)  # measured: 0.181 -> 0.145 at 300 epochs
    assert (dec <= obs + 1e-4).all() and (dec >= 0).all()  # only removes, never adds
    assert np.corrcoef(frac, f)[0, 1] > 0.6  # per-cell fraction follows the truth


def test_low_umi_profile_per_sample():
    counts = sp.csr_matrix(np.array([[10, 0], [1, 1], [0, 10], [2, 0]], dtype=float))
    out = profile_from_low_umi(counts, ["a", "a", "b", "b"], 0.5)
    assert set(out) == {"a", "b"} and all(np.isclose(v.sum(), 1) for v in out.values())


def test_cli_round_trip_and_bad_input(tmp_path):
    obs, true, f, amb, empties = contaminated(n=120, g=60)
    a = ad.AnnData(sp.csr_matrix(obs.astype(np.float32)), obs=pd.DataFrame({"sample": ["s1"] * 60 + ["s2"] * 60},
                                                                           index=[f"c{i}" for i in range(120)]),
                   var=pd.DataFrame(index=[f"G{i}" for i in range(60)]))
    a.layers["counts"] = a.X.copy()
    a.write_h5ad(tmp_path / "cells.h5ad")
    res = CliRunner().invoke(main, ["ambient", "--input", str(tmp_path / "cells.h5ad"), "--outdir", str(tmp_path / "amb"),
                                    "--epochs", "3"])
    assert res.exit_code == 0, res.output
    out = ad.read_h5ad(tmp_path / "amb" / "cells.h5ad")
    assert out.layers["decontaminated"].shape == out.shape and "ambient_fraction" in out.obs
    assert (tmp_path / "amb" / "ambient.json").exists()
    del a.layers["counts"]
    a.write_h5ad(tmp_path / "nocounts.h5ad")
    res = CliRunner().invoke(main, ["ambient", "--input", str(tmp_path / "nocounts.h5ad"), "--outdir", str(tmp_path / "bad")])
    assert res.exit_code == 1 and "nocounts.h5ad" in res.output and "'counts'" in res.output
    assert not (tmp_path / "bad").exists()
