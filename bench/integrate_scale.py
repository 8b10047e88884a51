"""Memory of `fatescope integrate` at 1M cells: the whole stage (read, HVGs, a short training, the
chunked transform, write) on a sparse h5ad of N cells x 20,000 genes (3% non-zero counts in
layers["counts"], 4 batches), in a child process whose peak RSS is reported.

The transform's memory is bounded by --chunk-size cells; what grows with N is the sparse input
(and its log-normalised copy) and the n x 10 latent. Training is capped (--max-iteration) because
the point is memory: iterations do not grow it.

    .venv/bin/python bench/integrate_scale.py --cells 1000000 --max-iteration 200
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from aucell import write_sparse_h5ad  # noqa: E402  (bench scripts are run from a checkout)


def main(n_cells: int, n_genes: int, max_iteration: int, chunk_size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="integrate_scale_"))
    obs = pd.DataFrame({"batch": pd.Categorical([f"b{i % 4}" for i in range(n_cells)])},
                       index=[f"c{i}" for i in range(n_cells)])
    t = time.perf_counter()
    write_sparse_h5ad(tmp / "cells.h5ad", n_cells, n_genes, int(0.03 * n_genes), np.random.default_rng(0),
                      key="layers/counts", obs=obs)
    print(f"input: {n_cells} cells x {n_genes} genes written in {time.perf_counter() - t:.0f} s "
          f"({(tmp / 'cells.h5ad').stat().st_size / 2**30:.1f} GiB)", flush=True)
    cmd = [sys.executable, "-m", "fatescope", "integrate", "--input", str(tmp / "cells.h5ad"), "--outdir",
           str(tmp / "out"), "--max-iteration", str(max_iteration), "--chunk-size", str(chunk_size), "--device", "cpu"]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"integrate: exit {res.returncode}, {wall:.0f} s, peak RSS {peak:.1f} GiB (chunk {chunk_size} cells, "
          f"{max_iteration} iterations)")
    if res.returncode:
        print(res.stderr[-2000:])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--max-iteration", type=int, default=200)
    p.add_argument("--chunk-size", type=int, default=20000)
    a = p.parse_args()
    main(a.cells, a.genes, a.max_iteration, a.chunk_size)
