"""qc split in two as Nextflow runs it (`--load-only` per sample, then `--merge`) gives the one-task run's
outputs: the same cells.h5ad (matrix, annotations, guides, fate probabilities) and qc_per_sample.csv."""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import PBMC, write_sheet

from fatescope.cli import main
from fatescope.cli.qc import run as qc_run
from fatescope.errors import InputError


def _sheet(tmp_path, paths, name="sheet.csv", samples=("s1", "s2", "s3"), **extra):
    rows = [{"sample": s, "counts": str(paths[s]), "batch": f"b{i % 2}", "day": f"d{i}", "replicate": "r1",
             **{k: str(v[s]) for k, v in extra.items() if s in v}} for i, s in enumerate(samples)]
    return write_sheet(tmp_path / name, rows)


def _split(tmp_path, paths, out, guide_map=None, samples=("s1", "s2", "s3"), **options):
    """One --load-only run per row of the samplesheet (a one-row sheet each), then --merge in sheet order."""
    extra = {k: options.pop(k) for k in ("guides", "fate_probs") if k in options}
    whole = pd.read_csv(_sheet(tmp_path, paths, "whole.csv", samples=samples, **extra), dtype=str)
    merged = []
    for i, s in enumerate(whole["sample"]):
        whole.iloc[[i]].to_csv(tmp_path / f"{s}.csv", index=False)
        merged.append(str(qc_run(input=str(tmp_path / f"{s}.csv"), outdir=str(tmp_path / f"load_{s}"),
                                 guide_map=guide_map, load_only=True, min_features=options.get("min_features", 600))))
    qc_run(merge=merged, outdir=str(out), guide_map=guide_map, **options)
    return merged


def assert_same_qc(a_dir, b_dir):
    a, b = ad.read_h5ad(a_dir / "cells.h5ad"), ad.read_h5ad(b_dir / "cells.h5ad")
    assert (a.obs_names == b.obs_names).all() and (a.var_names == b.var_names).all()
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    for key in ("X", "counts"):
        x, y = (a.X, b.X) if key == "X" else (a.layers[key], b.layers[key])
        assert x.dtype == y.dtype and (sp.csr_matrix(x) != sp.csr_matrix(y)).nnz == 0
    assert set(a.obsm) == set(b.obsm)
    for key in a.obsm:
        x, y = a.obsm[key], b.obsm[key]
        if sp.issparse(x):
            assert x.dtype == y.dtype and (x != y).nnz == 0
        else:
            np.testing.assert_array_equal(x, y)
    assert set(a.uns) == set(b.uns)
    for key in a.uns:
        np.testing.assert_array_equal(a.uns[key], b.uns[key])
    assert (a_dir / "qc_per_sample.csv").read_text() == (b_dir / "qc_per_sample.csv").read_text()


@pytest.mark.parametrize("join, min_features, max_pct_mito", [("inner", 20, None), ("outer", 28, 40.0), ("inner", 0, None)])
def test_split_qc_equals_one_task(three_samples, guide_map, join, min_features, max_pct_mito):
    """Three formats, guides on two samples, fate probabilities on one: the prefilter drops cells in each
    sample, yet the merged output is the one-task output."""
    tmp_path, paths, _ = three_samples
    bc1, bc2 = paths["s1_barcodes"], paths["s2_barcodes"]
    pd.DataFrame({"cell": [bc1[0], bc1[0], bc1[3], bc1[5]], "guide": ["gA1", "ntc1", "gB1", "gA2"]}).to_csv(tmp_path / "g1.csv", index=False)
    pd.DataFrame({"cell": bc2[:7], "guide": "gB1"}).to_csv(tmp_path / "g2.csv", index=False)
    pd.DataFrame({"cell": bc2, "EC": 0.6, "MES": 0.4}).to_csv(tmp_path / "f2.csv", index=False)
    extra = dict(guides={"s1": tmp_path / "g1.csv", "s2": tmp_path / "g2.csv"}, fate_probs={"s2": tmp_path / "f2.csv"})
    options = dict(min_features=min_features, min_cells=2, max_pct_mito=max_pct_mito, gene_join=join)
    qc_run(input=str(_sheet(tmp_path, paths, **extra)), outdir=str(tmp_path / "one"), guide_map=str(guide_map), **options)
    files = _split(tmp_path, paths, tmp_path / "split", guide_map=str(guide_map), **extra, **options)
    assert_same_qc(tmp_path / "one", tmp_path / "split")
    table = pd.read_csv(tmp_path / "split" / "qc_per_sample.csv")
    assert table["cells_before"].tolist() == [40, 30, 20]  # as loaded, before the per-sample prefilter
    prefiltered = sum(ad.read_h5ad(f).n_obs for f in files)
    assert (prefiltered < 90) == (min_features > 0)  # the prefilter did shrink the samples it could


def test_split_qc_equals_one_task_on_real_pbmc(tmp_path):
    """Three real 10x PBMC batches (v2, v3, 5') with the real-data filters."""
    if not PBMC.is_dir():
        pytest.skip(f"shared PBMC data not found at {PBMC}")
    paths = {"v2": PBMC / "1k_PBMC_v2_filt", "v3": PBMC / "1k_PBMC_v3_filt", "p5": PBMC / "5prime_PBMC_filt_1kcells"}
    samples = tuple(paths)
    qc_run(input=str(_sheet(tmp_path, paths, samples=samples)), outdir=str(tmp_path / "one"), min_features=200)
    _split(tmp_path, paths, tmp_path / "split", samples=samples, min_features=200)
    assert_same_qc(tmp_path / "one", tmp_path / "split")


def test_merge_refuses_mixed_or_foreign_files(three_samples, guide_map, tmp_path):
    tmp, paths, _ = three_samples
    files = _split(tmp, paths, tmp / "split", guide_map=str(guide_map), min_features=0, min_cells=0)
    with pytest.raises(InputError, match="given twice"):
        qc_run(merge=[files[0], files[0]], outdir=str(tmp / "twice"), guide_map=str(guide_map))
    with pytest.raises(InputError, match="were loaded with guides"):
        qc_run(merge=files, outdir=str(tmp / "nomap"))
    with pytest.raises(InputError, match="not a per-sample file"):
        qc_run(merge=[str(paths["s1"])], outdir=str(tmp / "foreign"))
    assert not (tmp / "twice").exists() and not (tmp / "nomap").exists() and not (tmp / "foreign").exists()


def test_load_only_names_a_sample_emptied_by_min_features(three_samples):
    tmp_path, paths, _ = three_samples
    sheet = _sheet(tmp_path, paths, "one.csv", samples=("s3",))
    with pytest.raises(InputError, match="no cells left after filtering in sample.*s3"):
        qc_run(input=str(sheet), outdir=str(tmp_path / "l"), load_only=True, min_features=10_000)
    assert not (tmp_path / "l").exists()


def test_cli_needs_input_or_merge(tmp_path):
    res = CliRunner().invoke(main, ["qc", "--outdir", str(tmp_path / "q")])
    assert res.exit_code != 0 and "give --input" in res.output
