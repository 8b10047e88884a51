"""QC in one task vs split as Nextflow runs it (one `qc --load-only` task per sample, then `qc --merge`).

Simulates ``--samples`` samples of ``--cells`` cells x ``--genes`` genes (Poisson counts with gene-specific
means, .h5ad), then runs, as subprocesses of the real CLI, (a) one `fatescope qc` over the whole
samplesheet and (b) the load tasks ``--workers`` at a time followed by the merge. Reports wall time,
CPU seconds and peak RSS per task, the split's wall with ``--workers`` parallel slots, and checks
that both runs wrote the same cells.h5ad and qc_per_sample.csv. Usage:

    python bench/qc_split.py --samples 8 --cells 25000 --genes 2000 --workers 2 [--format mtx] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def write_mtx(folder: Path, X: sp.csr_matrix, genes: list[str], barcodes: list[str]) -> Path:
    """A 10x MatrixMarket folder (genes x cells matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz)."""
    import gzip

    import scipy.io
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb", compresslevel=1) as fh:
        scipy.io.mmwrite(fh, X.T.tocoo().astype(np.int64), field="integer")
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ENSG{i:06d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in barcodes)
    return folder


def simulate(root: Path, n_samples: int, n_cells: int, n_genes: int, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    means = rng.gamma(0.6, 3.0, size=n_genes)
    rows = []
    for s in range(n_samples):
        depth = rng.gamma(5, 0.2, size=(n_cells, 1))
        X = sp.csr_matrix(rng.poisson(means[None, :] * depth).astype(np.float32))
        genes, barcodes = [f"G{j}" for j in range(n_genes)], [f"BC{i:06d}-1" for i in range(n_cells)]
        if fmt == "mtx":
            path = write_mtx(root / f"s{s}_mtx", X, genes, barcodes)
        else:
            path = root / f"s{s}.h5ad"
            ad.AnnData(X=X, obs=pd.DataFrame(index=barcodes), var=pd.DataFrame(index=genes)).write_h5ad(path)
        rows.append({"sample": f"s{s}", "counts": str(path), "batch": f"b{s % 2}", "day": f"d{s % 4}", "replicate": "r1"})
    sheet = root / "samplesheet.csv"
    pd.DataFrame(rows).to_csv(sheet, index=False)
    return sheet


def timed(args: list[str]) -> dict:
    """One `fatescope` task: wall seconds, CPU seconds and peak RSS (GiB) of the child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fatescope", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"fatescope {' '.join(args)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_gib": round(usage.ru_maxrss / 2**20, 2)}


def same_outputs(a: Path, b: Path) -> bool:
    x, y = ad.read_h5ad(a / "cells.h5ad"), ad.read_h5ad(b / "cells.h5ad")
    return (x.obs.equals(y.obs) and x.var.equals(y.var) and (x.X != y.X).nnz == 0
            and (a / "qc_per_sample.csv").read_text() == (b / "qc_per_sample.csv").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--cells", type=int, default=25000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-features", type=int, default=600)
    parser.add_argument("--format", choices=("h5ad", "mtx"), default="h5ad", help="counts files: h5ad or 10x MatrixMarket")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sheet = simulate(root, opts.samples, opts.cells, opts.genes, opts.format)
        filters = ["--min-features", str(opts.min_features)]
        one = timed(["qc", "--input", str(sheet), "--outdir", str(root / "one"), *filters])
        table = pd.read_csv(sheet, dtype=str)
        for i in range(len(table)):
            table.iloc[[i]].to_csv(root / f"row{i}.csv", index=False)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(opts.workers) as pool:
            loads = list(pool.map(lambda i: timed(["qc", "--input", str(root / f"row{i}.csv"), "--load-only",
                                                   "--outdir", str(root / f"load{i}"), *filters]), range(len(table))))
        loaded = [str(root / f"load{i}" / f"{table['sample'][i]}.h5ad") for i in range(len(table))]
        merge = timed(["qc", *(p for f in loaded for p in ("--merge", f)), "--outdir", str(root / "split"), *filters])
        split_wall = time.perf_counter() - t0
        result = {
            "experiment": {"samples": opts.samples, "cells_per_sample": opts.cells, "genes": opts.genes, "format": opts.format,
                           "workers": opts.workers, "min_features": opts.min_features},
            "one_task": one,
            "load_tasks": {"wall_s_max": max(t["wall_s"] for t in loads), "cpu_s_sum": round(sum(t["cpu_s"] for t in loads), 2),
                           "peak_gib_max": max(t["peak_gib"] for t in loads)},
            "merge_task": merge,
            "split_wall_s": round(split_wall, 2),
            "split_cpu_s": round(sum(t["cpu_s"] for t in loads) + merge["cpu_s"], 2),
            "identical_outputs": same_outputs(root / "one", root / "split"),
        }
    print(json.dumps(result, indent=1))
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
