"""The fate-probs stage on a small simulation: CLI outputs, API = CLI, fate-fit's --fate-probs, the
engines' decision to run it, and bad input leaving nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from report_results import SIZES, terminal_labels

from fatescope.cli import main
from fatescope.engine.local import preflight
from fatescope.engine.stages import STAGES, RunPaths, samples_lack_fate_probs
from fatescope.errors import InputError

FATES = ["EC", "MES", "NEU"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    """simulate -> qc -> integrate (harmony on PCA) -> embed, and a table naming late cells by their true fate."""
    from fatescope.cli import embed, integrate, qc, simulate

    root = tmp_path_factory.mktemp("fp")
    sheet = simulate.run(outdir=str(root / "simulate"), seed=5, **{**SIZES, "n_days": 3, "n_cells": 900})
    qc.run(str(sheet), outdir=str(root / "qc"), guide_map=str(root / "simulate" / "guide_map.csv"), min_features=50)
    integrate.run(str(root / "qc" / "cells.h5ad"), outdir=str(root / "integrate"), method="harmony", harmony_on="pca",
                  n_top_features=200)
    embed.run(str(root / "integrate" / "cells.h5ad"), outdir=str(root / "embed"))
    terminal_labels(root / "simulate" / "truth" / "cells.parquet").to_csv(root / "terminal.csv", index=False)
    return root


def _run_stage(root: Path, outdir: Path, *extra: str):
    return CliRunner().invoke(main, ["fate-probs", "--input", str(root / "embed" / "cells.h5ad"), "--outdir", str(outdir),
                                     "--labels", str(root / "terminal.csv"), "--terminal-key", "terminal",
                                     "--terminal-states", ",".join(FATES), *extra])


@pytest.fixture(scope="module")
def stage_out(embedded) -> Path:
    out = embedded / "fate_probs"
    result = _run_stage(embedded, out)
    assert result.exit_code == 0, result.output
    return out


def test_outputs_are_probabilities_with_terminal_cells_one_hot(embedded, stage_out):
    probs = pd.read_csv(stage_out / "fate_probs.csv", float_precision="round_trip").set_index("cell")
    assert list(probs.columns) == FATES
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs.to_numpy() >= -1e-12).all()
    terminal = pd.read_csv(stage_out / "terminal_states.csv")
    labels = pd.read_csv(embedded / "terminal.csv").set_index("cell")["terminal"]
    assert set(terminal["cell"]) == set(labels.index[labels.isin(FATES)].intersection(probs.index))
    own = probs.to_numpy()[probs.index.get_indexer(terminal["cell"]), [FATES.index(f) for f in terminal["terminal_state"]]]
    np.testing.assert_allclose(own, 1.0)
    T = sp.load_npz(stage_out / "transition_matrix.npz")
    np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    info = json.loads((stage_out / "fate_probs.json").read_text())
    assert info["fates"] == FATES and sum(info["terminal_cells"].values()) == len(terminal)
    cells = ad.read_h5ad(stage_out / "cells.h5ad")
    assert list(cells.uns["fate_names"]) == FATES and "dpt_pseudotime" in cells.obs
    np.testing.assert_array_equal(cells.obsm["fate_probs"], probs.loc[cells.obs_names].to_numpy())
    assert (stage_out / "fate_probs_umap.png").read_bytes().startswith(b"\x89PNG")


def test_planted_fates_are_recovered_on_the_last_day(embedded, stage_out):
    """Non-terminal last-day cells: their true fate gets the highest computed probability for most of them."""
    truth = pd.read_parquet(embedded / "simulate" / "truth" / "cells.parquet").set_index("cell")
    probs = pd.read_csv(stage_out / "fate_probs.csv", float_precision="round_trip").set_index("cell")
    terminal = set(pd.read_csv(stage_out / "terminal_states.csv")["cell"])
    last = truth.index[(truth["day_index"] == truth["day_index"].max()) & ~truth.index.isin(terminal)]
    last = last.intersection(probs.index)
    share = float((probs.loc[last].idxmax(axis=1) == truth.loc[last, "true_fate"].astype(str)).mean())
    assert share >= 0.6, share


def test_api_equals_cli(embedded, stage_out):
    import fatescope as fs

    adata = ad.read_h5ad(embedded / "embed" / "cells.h5ad")
    labels = pd.read_csv(embedded / "terminal.csv").set_index("cell")["terminal"].reindex(adata.obs_names)
    result = fs.tl.fate_probs(adata, terminal_key="terminal", terminal_states=FATES, labels=labels.to_numpy())
    cli = pd.read_csv(stage_out / "fate_probs.csv", float_precision="round_trip").set_index("cell")
    np.testing.assert_allclose(result.probs.to_numpy(), cli.loc[result.probs.index].to_numpy(), rtol=0, atol=1e-15)
    assert adata.obs["terminal_state"].notna().sum() == len(result.terminal)


def test_given_pseudotime_and_solvers_agree(embedded, stage_out):
    """A given pseudotime column is used as is; gmres and bicgstab equal the direct solve."""
    import fatescope as fs

    adata = ad.read_h5ad(stage_out / "cells.h5ad")
    direct = fs.tl.fate_probs(adata.copy(), pseudotime_key="dpt_pseudotime", terminal_key="terminal_state",
                              terminal_states=FATES, solver="direct")
    np.testing.assert_allclose(direct.probs.to_numpy(), adata.obsm["fate_probs"], atol=1e-10)
    for solver in ("gmres", "bicgstab"):
        other = fs.tl.fate_probs(adata.copy(), pseudotime_key="dpt_pseudotime", terminal_key="terminal_state",
                                 terminal_states=FATES, solver=solver, tol=1e-12)
        np.testing.assert_allclose(other.probs.to_numpy(), direct.probs.to_numpy(), atol=1e-8)
    mixed = fs.tl.fate_probs(adata.copy(), pseudotime_key="dpt_pseudotime", terminal_key="terminal_state",
                             terminal_states=FATES, connectivity_weight=0.2)
    assert np.abs(mixed.probs.to_numpy() - direct.probs.to_numpy()).max() > 1e-3  # the mix changes the chain


def test_fate_fit_takes_the_computed_probabilities(embedded, stage_out):
    from fatescope.cli.fate_fit import read_fate_cells

    cells = read_fate_cells(str(embedded / "qc" / "cells.h5ad"), str(stage_out / "fate_probs.csv"), "fate_probs")
    probs = pd.read_csv(stage_out / "fate_probs.csv", float_precision="round_trip").set_index("cell")
    assert list(cells.uns["fate_names"]) == FATES
    np.testing.assert_array_equal(cells.obsm["fate_probs"], probs.loc[cells.obs_names].to_numpy())


def test_bad_terminal_state_is_refused_and_writes_nothing(embedded, tmp_path):
    out = tmp_path / "fp"
    result = _run_stage(embedded, out, "--terminal-states", "EC,XYZ")
    assert result.exit_code == 1 and "XYZ" in result.output and "Traceback" not in result.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["fate-probs", "--input", str(embedded / "qc" / "cells.h5ad"), "--outdir", str(out)])
    assert result.exit_code == 1 and "connectivities" in result.output and not out.exists()


def test_the_engine_runs_fate_probs_when_a_sample_has_none(tmp_path):
    full = tmp_path / "full.csv"
    full.write_text("sample,counts,batch,day,replicate,fate_probs\na,a.h5ad,b1,d0,r1,a.csv\nb,b.h5ad,b1,d1,r1,b.csv\n")
    part = tmp_path / "part.csv"
    part.write_text("sample,counts,batch,day,replicate,fate_probs\na,a.h5ad,b1,d0,r1,a.csv\nb,b.h5ad,b1,d1,r1,\n")
    none = tmp_path / "none.csv"
    none.write_text("sample,counts,batch,day,replicate\na,a.h5ad,b1,d0,r1\n")
    assert [samples_lack_fate_probs(str(p)) for p in (full, part, none)] == [False, True, True]
    fate_probs = next(s for s in STAGES if s.name == "fate-probs")
    fate_fit = next(s for s in STAGES if s.name == "fate-fit")
    for params, runs in (({"input": str(part)}, True), ({"input": str(full)}, False),
                         ({"input": str(full), "compute_fate_probs": "always"}, True),
                         ({"input": str(part), "compute_fate_probs": "never"}, False),
                         ({"input": None, "sim_fate_probs": False}, True), ({"input": None}, False)):
        paths = RunPaths(tmp_path / "out", params)
        assert fate_probs.enabled(paths) is runs, params
        assert (fate_fit.kwargs(paths)["fate_probs"] is not None) is runs, params


def test_the_engine_refuses_computed_fate_probs_without_embed(tmp_path):
    from fatescope.engine.stages import default_params

    params = {**default_params(), "compute_fate_probs": "always", "skip_integration": True, "outdir": str(tmp_path / "o")}
    stages = [s for s in STAGES if s.enabled(RunPaths(tmp_path / "o", params))]
    with pytest.raises(InputError, match="skip_integration"):
        preflight(params, stages)
    with pytest.raises(InputError, match="compute_fate_probs"):
        preflight({**default_params(), "compute_fate_probs": "sometimes", "outdir": str(tmp_path / "o")}, [])


def test_the_engine_refuses_never_when_a_sample_has_no_fate_probs(tmp_path):
    """--compute_fate_probs never with a sample lacking fate_probs: refused before any stage, unless
    --fate_missing_fate_probs drop fits on the other samples' cells."""
    from fatescope.engine.stages import default_params

    base = {**default_params(), "compute_fate_probs": "never", "sim_fate_probs": False, "outdir": str(tmp_path / "o")}
    stages = [s for s in STAGES if s.enabled(RunPaths(tmp_path / "o", base))]
    assert "fate-fit" in {s.name for s in stages} and "fate-probs" not in {s.name for s in stages}
    with pytest.raises(InputError, match="--compute_fate_probs never: some sample"):
        preflight(base, stages)
    preflight({**base, "fate_missing_fate_probs": "drop"}, stages)
    preflight({**base, "sim_fate_probs": True}, stages)
