"""QC stage: joins, filters, per-sample table, annotations, refusals, no partial output."""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import PBMC, counts_matrix, write_h5ad, write_sheet

from fatescope.cli.qc import run as qc_run
from fatescope.errors import InputError


def _sheet(tmp_path, paths, **extra):
    rows = [{"sample": s, "counts": str(paths[s]), "batch": f"b{i}", "day": f"d{i}", "replicate": "r1",
             **{k: str(v[s]) for k, v in extra.items() if s in v}} for i, s in enumerate(("s1", "s2", "s3"))]
    return write_sheet(tmp_path / "sheet.csv", rows)


@pytest.mark.parametrize("join,n_genes", [("inner", 45 + 2), ("outer", 62)])
def test_join_and_barcodes(three_samples, join, n_genes):
    tmp_path, paths, specs = three_samples
    out = tmp_path / f"qc_{join}"
    qc_run(input=str(_sheet(tmp_path, paths)), outdir=str(out), min_features=0, min_cells=0, gene_join=join)
    a = ad.read_h5ad(out / "cells.h5ad")
    assert a.n_vars == n_genes and a.n_obs == 90
    assert a.obs_names[0] == "s1_S1BC0000-1" and a.obs_names.is_unique
    assert list(a.obs["sample"].cat.categories) == ["s1", "s2", "s3"]
    assert set(a.obs.columns) >= {"sample", "batch", "day", "replicate", "barcode", "n_genes_by_counts", "total_counts"}
    np.testing.assert_array_equal(a.layers["counts"].toarray(), a.X.toarray())
    table = pd.read_csv(out / "qc_per_sample.csv")
    assert table["cells_before"].tolist() == [40, 30, 20]
    assert table["genes_before"].tolist() == [62, 57, 52]
    if join == "outer":  # genes absent from a sample are zero-filled, not invented
        s2 = a[a.obs["sample"] == "s2"]
        assert s2[:, [f"G{i:03d}" for i in range(5)]].X.sum() == 0


def test_filters_match_planted_depths(tmp_path, rng):
    """Cells with known detected-gene counts: exactly those >= min_features survive."""
    n_genes = 50
    X = np.zeros((10, n_genes))
    detected = np.array([5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
    for i, k in enumerate(detected):
        X[i, :k] = 1
    X[:, 49] = 0
    genes = [f"G{i}" for i in range(n_genes - 1)] + ["MT-CO1"]
    X[9, 49] = 1000  # one cell mostly mitochondrial
    p = write_h5ad(tmp_path / "a.h5ad", X, genes, [f"c{i}" for i in range(10)])
    sheet = write_sheet(tmp_path / "s.csv", [{"sample": "a", "counts": str(p), "batch": "b", "day": "0", "replicate": "1"}])
    qc_run(input=str(sheet), outdir=str(tmp_path / "o"), min_features=20, min_cells=3, max_pct_mito=50)
    a = ad.read_h5ad(tmp_path / "o" / "cells.h5ad")
    assert list(a.obs["barcode"]) == ["c3", "c4", "c5", "c6", "c7", "c8"]  # c9 dropped for mito
    # gene j is detected in the kept cells with more than j genes: G34 in 3 of them, G35 in 2
    assert list(a.var_names) == [f"G{j}" for j in range(35)]


def test_guides_and_fate_probs_attached(three_samples, guide_map):
    tmp_path, paths, _ = three_samples
    bc = paths["s1_barcodes"]
    long = pd.DataFrame({"cell": [bc[0], bc[0], bc[1], bc[2]], "guide": ["gA1", "ntc1", "gB1", "gA2"]})
    long.to_csv(tmp_path / "g1.csv", index=False)
    probs = pd.DataFrame({"cell": bc, "EC": 0.5, "MES": 0.3, "NEU": 0.2})
    probs.to_csv(tmp_path / "f1.csv", index=False)
    sheet = _sheet(tmp_path, paths, guides={"s1": tmp_path / "g1.csv"}, fate_probs={"s1": tmp_path / "f1.csv"})
    qc_run(input=str(sheet), outdir=str(tmp_path / "o"), guide_map=str(guide_map), min_features=0, min_cells=0)
    a = ad.read_h5ad(tmp_path / "o" / "cells.h5ad")
    assert list(a.uns["guide_names"]) == ["gA1", "gA2", "gB1", "ntc1"]
    assert list(a.uns["fate_names"]) == ["EC", "MES", "NEU"]
    G = sp.csr_matrix(a.obsm["guides"]).toarray()
    first = a.obs_names.get_loc(f"s1_{bc[0]}")
    assert G[first].tolist() == [1, 0, 0, 1]
    assert a.obs["n_guides"].sum() == 4
    assert a.obs["has_fate_probs"].sum() == 40
    np.testing.assert_allclose(a.obsm["fate_probs"][first], [0.5, 0.3, 0.2])
    assert np.isnan(a.obsm["fate_probs"][~a.obs["has_fate_probs"].to_numpy()]).all()


def test_unknown_guide_is_an_error_and_nothing_written(three_samples, guide_map):
    tmp_path, paths, _ = three_samples
    pd.DataFrame({"cell": [paths["s1_barcodes"][0]], "guide": ["gZZ9"]}).to_csv(tmp_path / "g.csv", index=False)
    sheet = _sheet(tmp_path, paths, guides={"s1": tmp_path / "g.csv"})
    with pytest.raises(InputError, match=r"g\.csv: 1 guide\(s\) not in the guide map: 'gZZ9'"):
        qc_run(input=str(sheet), outdir=str(tmp_path / "o"), guide_map=str(guide_map), min_features=0)
    assert not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_nan_fate_probs_refused(three_samples):
    tmp_path, paths, _ = three_samples
    probs = pd.DataFrame({"cell": paths["s1_barcodes"], "EC": 0.5, "MES": 0.5})
    probs.loc[3, "MES"] = np.nan
    probs.to_csv(tmp_path / "f.csv", index=False)
    sheet = _sheet(tmp_path, paths, fate_probs={"s1": tmp_path / "f.csv"})
    with pytest.raises(InputError, match=r"f\.csv: 1 fate probabilit\(ies\) are NaN.*row 4.*'MES'"):
        qc_run(input=str(sheet), outdir=str(tmp_path / "o"))


def test_guides_without_guide_map(three_samples):
    tmp_path, paths, _ = three_samples
    pd.DataFrame({"cell": [paths["s1_barcodes"][0]], "guide": ["gA1"]}).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(InputError, match="no guide map was given"):
        qc_run(input=str(_sheet(tmp_path, paths, guides={"s1": tmp_path / "g.csv"})), outdir=str(tmp_path / "o"))


def test_sample_emptied_by_filters_is_named(three_samples):
    tmp_path, paths, _ = three_samples
    with pytest.raises(InputError, match=r"no cells left after filtering in sample\(s\) s1, s2, s3"):
        qc_run(input=str(_sheet(tmp_path, paths)), outdir=str(tmp_path / "o"), min_features=10_000)


def test_empty_sample_refused(tmp_path):
    p = write_h5ad(tmp_path / "e.h5ad", np.zeros((0, 3)), ["a", "b", "c"], [])
    sheet = write_sheet(tmp_path / "s.csv", [{"sample": "e", "counts": str(p), "batch": "b", "day": "0", "replicate": "1"}])
    with pytest.raises(InputError, match="sample 'e' is empty"):
        qc_run(input=str(sheet), outdir=str(tmp_path / "o"))


def test_pbmc_three_real_samples(tmp_path):
    """The three real 10x PBMC folders as three samples: counts before filtering as in the matrices."""
    if not PBMC.is_dir():
        pytest.skip(f"shared PBMC data not found at {PBMC}")
    rows = [{"sample": n, "counts": str(PBMC / d), "batch": n, "day": "d0", "replicate": "r1"}
            for n, d in (("v2", "1k_PBMC_v2_filt"), ("v3", "1k_PBMC_v3_filt"), ("5p", "5prime_PBMC_filt_1kcells"))]
    qc_run(input=str(write_sheet(tmp_path / "s.csv", rows)), outdir=str(tmp_path / "o"), min_features=200)
    table = pd.read_csv(tmp_path / "o" / "qc_per_sample.csv").set_index("sample")
    assert table["cells_before"].to_dict() == {"v2": 954, "v3": 906, "5p": 1000}
    assert table["genes_before"].to_dict() == {"v2": 12518, "v3": 14688, "5p": 17890}
    assert (table["cells_after"] <= table["cells_before"]).all() and table["cells_after"].sum() > 2800
    a = ad.read_h5ad(tmp_path / "o" / "cells.h5ad", backed="r")
    assert a.n_obs == table["cells_after"].sum() and a.n_vars < 12518


def test_empty_guide_file_means_no_guides(three_samples, guide_map):
    tmp_path, paths, _ = three_samples
    (tmp_path / "g.csv").write_text("cell,guide\n")
    sheet = _sheet(tmp_path, paths, guides={"s1": tmp_path / "g.csv"})
    qc_run(input=str(sheet), outdir=str(tmp_path / "o"), guide_map=str(guide_map), min_features=0)
    a = ad.read_h5ad(tmp_path / "o" / "cells.h5ad")
    assert a.obs["n_guides"].sum() == 0 and a.obsm["guides"].shape == (90, 4)
