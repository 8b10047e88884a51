"""Reference scores of harmonypy on a real case, for ``test_cells_harmony.py``.

Case: 2,000 cells drawn (seed 0) from Kang 2018 PBMC controls (../shared/data/kang_5donors: 5
donors = batches, 4 cell types = labels), the 2,000 batch-aware HVGs, log-normalised, z-scored
(clip 10), 50 PCs (fatescope.cells.preprocess, as bench/integrate.py). Writes reference.json: the
scib-style total (fatescope.cells.metrics.assess) of the uncorrected PCs and of harmonypy on them
with random_state 0, 1, 2 (harmonypy 2.x, its defaults; its k-means start is its own, so runs
are compared by score, not coordinate by coordinate).

    PYTHONPATH=/tmp/integ/site .venv/bin/python python/tests/data/harmony/make_reference.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
KANG = HERE.parents[4] / "shared" / "data" / "kang_5donors"
SEEDS = (0, 1, 2)


def kang_case(n_cells: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(50 PCs, batches, labels) of the seeded subsample."""
    from scipy.io import mmread

    from fatescope.cells.preprocess import highly_variable_genes, log_normalize, pca

    counts = sp.csr_matrix(mmread(KANG / "counts.mtx.gz").T.astype(np.float32))
    obs = pd.read_csv(KANG / "obs.csv", index_col=0)
    rows = np.sort(np.random.default_rng(seed).choice(counts.shape[0], n_cells, replace=False))
    counts, obs = counts[rows], obs.iloc[rows]
    batches, labels = obs["sample_id"].astype(str).to_numpy(), obs["cluster_id"].astype(str).to_numpy()
    logX = log_normalize(counts)
    X = logX[:, highly_variable_genes(logX, batches, 2000)].toarray()
    X = np.clip((X - X.mean(0)) / np.maximum(X.std(0), 1e-8), -10, 10)
    return pca(X, 50), batches, labels


def main() -> None:
    import harmonypy

    from fatescope.cells.metrics import assess

    Z, batches, labels = kang_case()
    meta = pd.DataFrame({"batch": batches})
    out = {"case": "kang_5donors, 2,000 cells (seed 0), 2,000 HVGs, 50 PCs", "harmonypy": harmonypy.__version__,
           "pca_total": assess(Z, batches, labels)["total"], "harmonypy_total": {}}
    for seed in SEEDS:
        emb = np.asarray(harmonypy.run_harmony(Z, meta, "batch", random_state=seed, verbose=False).Z_corr)
        out["harmonypy_total"][str(seed)] = assess(emb, batches, labels)["total"]
    out["harmonypy_total_mean"] = float(np.mean(list(out["harmonypy_total"].values())))
    (HERE / "reference.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
