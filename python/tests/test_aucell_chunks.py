"""aucell split into chunk tasks over cells and a gather task (issue 17): the outputs are the one-task run's to the
bit, on the numba (CPU) path and on the torch path (run on the CPU here) with weights, in several batches."""
from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import counts_matrix, write_h5ad

from fatescope.cli import main
from fatescope.cli.aucell import run
from fatescope.errors import InputError

N_CELLS, N_GENES = 503, 300


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """503 cells x 300 Poisson genes (many tied counts), 6 regulons of a TF and 25 weighted targets, one of them
    with three genes not in the data."""
    root = tmp_path_factory.mktemp("aucell_chunks")
    rng = np.random.default_rng(5)
    genes = [f"G{i:03d}" for i in range(N_GENES)]
    cells = write_h5ad(root / "cells.h5ad", counts_matrix(rng, N_CELLS, N_GENES), genes,
                       [f"C{i:04d}" for i in range(N_CELLS)])
    rows = [(f"{tf}(+)", tf, g, float(rng.uniform(0.5, 3.0)))
            for tf in rng.choice(genes, 6, replace=False) for g in rng.choice(genes, 25, replace=False)]
    rows += [(rows[0][0], rows[0][1], f"ABSENT{i}", 1.0) for i in range(3)]
    regulons = root / "regulons.parquet"
    pd.DataFrame(rows, columns=["regulon", "tf", "target", "weight"]).drop_duplicates(["regulon", "target"]).to_parquet(regulons)
    return root, str(cells), str(regulons)


def split_run(root, cells, regulons, size, **kw) -> list[str]:
    folders = []
    for k in range(-(-N_CELLS // size)):
        folders.append(str(root / f"chunk{k}"))
        run(cells, regulons, outdir=folders[-1], chunk_size=size, chunk=k, **kw)
    run(cells, regulons, outdir=str(root / "gathered"), gather=folders[::-1], **kw)
    return folders


def assert_same_outputs(one, other, binarize=True):
    a, b = pd.read_parquet(one / "aucell.parquet"), pd.read_parquet(other / "aucell.parquet")
    assert a.equals(b) and list(a.dtypes) == list(b.dtypes) and a.dtypes.iloc[1] == np.float64
    x, y = ad.read_h5ad(one / "cells.h5ad"), ad.read_h5ad(other / "cells.h5ad")
    assert np.array_equal(x.obsm["X_aucell"], y.obsm["X_aucell"]) and x.obsm["X_aucell"].dtype == np.float32
    assert list(x.uns["aucell_regulons"]) == list(y.uns["aucell_regulons"]) == list(a.columns[1:])
    assert (one / "aucell_regulons.csv").read_text() == (other / "aucell_regulons.csv").read_text()
    if binarize:
        assert pd.read_parquet(one / "aucell_binary.parquet").equals(pd.read_parquet(other / "aucell_binary.parquet"))
    ra, rb = (json.loads((d / "aucell_report.json").read_text()) for d in (one, other))
    assert ra.pop("seconds") >= 0 and rb.pop("seconds") >= 0 and ra == rb
    return a, ra


@pytest.mark.parametrize("size", [90, N_CELLS, 1000])
def test_chunks_equal_the_one_task_run(data, tmp_path, size):
    """90: six chunks, the last of 53 cells; 503: one chunk; 1000: one chunk larger than the data."""
    _, cells, regulons = data
    kw = dict(device="cpu", binarize_auc=True, seed=3)
    run(cells, regulons, outdir=str(tmp_path / "one"), **kw)
    run(cells, regulons, outdir=str(tmp_path / "local"), chunk_size=size, **kw)  # one task: chunk size ignored
    split_run(tmp_path, cells, regulons, size, **kw)
    auc, report = assert_same_outputs(tmp_path / "one", tmp_path / "gathered")
    assert_same_outputs(tmp_path / "one", tmp_path / "local")
    assert auc.shape == (N_CELLS, 7) and report["n_cells"] == N_CELLS and report["device"] == "cpu"
    assert 0.05 < auc.iloc[:, 1:].to_numpy().max() < 1 and auc.iloc[:, 1:].std().min() > 0.005
    binary = pd.read_parquet(tmp_path / "gathered" / "aucell_binary.parquet").iloc[:, 1:].to_numpy()
    assert 0 < binary.mean() < 1                       # Otsu over every cell, in the gather
    chunk = pd.read_parquet(tmp_path / "chunk0" / "aucell_chunk.parquet")
    assert chunk.equals(auc.iloc[:min(size, N_CELLS)]) and len(chunk) == min(size, N_CELLS)


def test_seeded_tie_break_is_drawn_once_per_run(data, tmp_path):
    """The gene shuffle that breaks ties comes from the seed alone (not the batch or chunk): another seed moves the
    scores of tied cells, the same seed in chunks gives the same bits."""
    _, cells, regulons = data
    run(cells, regulons, outdir=str(tmp_path / "seed0"), device="cpu", seed=0)
    run(cells, regulons, outdir=str(tmp_path / "one"), device="cpu", seed=11)
    split_run(tmp_path, cells, regulons, 128, device="cpu", seed=11)
    assert_same_outputs(tmp_path / "one", tmp_path / "gathered", binarize=False)
    a, b = (pd.read_parquet(tmp_path / d / "aucell.parquet").iloc[:, 1:].to_numpy() for d in ("seed0", "one"))
    assert (a != b).any(axis=1).mean() > 0.5


def test_torch_path_in_batches_with_weights(data, tmp_path):
    """The torch (CUDA) scorer on the CPU in batches of 2 x 64 cells, weighted (sums of weights in a matrix
    product): chunks of 100 cells (not a multiple of the batches) are scored in the whole run's batches."""
    _, cells, regulons = data
    kw = dict(device="cpu:0", batch_size=2, weighted=True)
    run(cells, regulons, outdir=str(tmp_path / "one"), **kw)
    split_run(tmp_path, cells, regulons, 100, **kw)
    auc, report = assert_same_outputs(tmp_path / "one", tmp_path / "gathered", binarize=False)
    assert report["device"] == "cpu:0" and auc.iloc[:, 1:].to_numpy().max() > 0.05


def test_bad_chunks_are_input_errors(data, tmp_path):
    root, cells, regulons = data
    folders = split_run(tmp_path, cells, regulons, 200, device="cpu")
    out = str(tmp_path / "out")
    with pytest.raises(InputError, match=r"missing chunk\(s\) 1 \(cells 200..399\)"):
        run(cells, regulons, outdir=out, gather=[folders[0], folders[2]])
    with pytest.raises(InputError, match="chunk 2 .* is given 2 times"):
        run(cells, regulons, outdir=out, gather=[*folders, folders[2]])
    with pytest.raises(InputError, match="chunk 3 of 200 cells would start at 600, past the 503 cells"):
        run(cells, regulons, outdir=out, chunk_size=200, chunk=3)
    with pytest.raises(InputError, match="other settings than given here: seed 0 .chunk. vs 1"):
        run(cells, regulons, outdir=out, gather=folders, seed=1)
    # chunks of a different input: fewer cells; the same number of cells under other names
    small = ad.read_h5ad(cells)[:400].copy()
    small.write_h5ad(tmp_path / "small.h5ad")
    run(str(tmp_path / "small.h5ad"), regulons, outdir=str(tmp_path / "small1"), chunk_size=200, chunk=1, device="cpu")
    with pytest.raises(InputError, match="chunk 1 was scored on a different input .400 cells.; --cells has 503"):
        run(cells, regulons, outdir=out, gather=[folders[0], str(tmp_path / "small1"), folders[2]])
    renamed = ad.read_h5ad(cells)
    renamed.obs_names = [f"X{i}" for i in range(N_CELLS)]
    renamed.write_h5ad(tmp_path / "renamed.h5ad")
    run(str(tmp_path / "renamed.h5ad"), regulons, outdir=str(tmp_path / "renamed1"), chunk_size=200, chunk=1, device="cpu")
    with pytest.raises(InputError, match="holds other cells than .* at 200..399: a chunk of a different input"):
        run(cells, regulons, outdir=out, gather=[folders[0], str(tmp_path / "renamed1"), folders[2]])
    with pytest.raises(InputError, match="not a chunk folder .expected a chunk folder holding aucell_chunk.json"):
        run(cells, regulons, outdir=out, gather=[str(root)])
    res = CliRunner().invoke(main, ["aucell", "--cells", cells, "--regulons", regulons, "--chunk", "0", "--outdir", out])
    assert res.exit_code == 1 and "give it with --chunk-size" in res.output
    res = CliRunner().invoke(main, ["aucell", "--cells", cells, "--regulons", regulons, "--chunk-size", "0", "--outdir", out])
    assert res.exit_code == 2 and "--chunk-size" in res.output
    assert not (tmp_path / "out").exists()
