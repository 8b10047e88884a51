"""Count loaders: the three formats give the same matrix; bad counts are refused."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import PBMC, counts_matrix, write_10x_h5, write_h5ad, write_mtx

from fatescope.errors import InputError
from fatescope.io.counts import read_counts


def test_formats_agree(tmp_path, rng):
    X = counts_matrix(rng, 12, 9)
    genes, bc = [f"G{i}" for i in range(9)], [f"C{i}" for i in range(12)]
    loaded = [read_counts(write_h5ad(tmp_path / "a.h5ad", X, genes, bc)),
              read_counts(write_mtx(tmp_path / "m", X, genes, bc)),
              read_counts(write_10x_h5(tmp_path / "a.h5", X, genes, bc))]
    for a in loaded:
        assert list(a.var_names) == genes and list(a.obs_names) == bc
        np.testing.assert_array_equal(a.X.toarray(), X.toarray())
    assert [a.uns["counts_format"] for a in loaded] == ["h5ad", "10x_mtx", "10x_h5"]


@pytest.mark.parametrize("value,needle", [(-1.0, "negative"), (0.5, "non-integer"), (np.nan, "NaN")])
def test_bad_counts_refused(tmp_path, rng, value, needle):
    X = counts_matrix(rng, 6, 5).toarray()
    X[2, 3] = value
    path = write_h5ad(tmp_path / "bad.h5ad", X, [f"G{i}" for i in range(5)], [f"C{i}" for i in range(6)])
    with pytest.raises(InputError, match=needle) as exc:
        read_counts(path)
    assert str(path) in str(exc.value)
    if needle != "NaN":
        assert "cell 3, gene 4" in str(exc.value)


def test_duplicate_genes_made_unique(tmp_path, rng):
    X = counts_matrix(rng, 4, 4)
    a = read_counts(write_mtx(tmp_path / "m", X, ["A", "B", "A", "A"], list("wxyz")))
    assert list(a.var_names) == ["A", "B", "A-1", "A-2"]


def test_pbmc_real_folders():
    if not PBMC.is_dir():
        pytest.skip(f"shared PBMC data not found at {PBMC}")
    shapes = {d: read_counts(PBMC / d).shape for d in ("1k_PBMC_v2_filt", "1k_PBMC_v3_filt", "5prime_PBMC_filt_1kcells")}
    assert shapes == {"1k_PBMC_v2_filt": (954, 12518), "1k_PBMC_v3_filt": (906, 14688),
                      "5prime_PBMC_filt_1kcells": (1000, 17890)}


def test_single_column_genes_file(tmp_path, rng):
    """Old exports (like the shared PBMC folders) have one symbol per line in genes.tsv."""
    folder = tmp_path / "old"
    folder.mkdir()
    X = counts_matrix(rng, 3, 2)
    import scipy.io
    scipy.io.mmwrite(folder / "matrix.mtx", sp.csr_matrix(X).T.tocoo().astype(np.int64), field="integer")
    (folder / "genes.tsv").write_text("CD3E\nMS4A1\n")
    (folder / "barcodes.tsv").write_text("a\nb\nc\n")
    assert list(read_counts(folder).var_names) == ["CD3E", "MS4A1"]
