"""QC of the three real 10x PBMC folders: fatescope's loader + filters vs scanpy, same run.

Both sides read the three MatrixMarket folders, concatenate with an inner gene join, filter
cells (min genes 200) and genes (min cells 3). Prints wall seconds, peak RSS and the cell and
gene counts (which must agree). Usage: python bench/qc.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

PBMC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pbmc_3batches"
FOLDERS = ("1k_PBMC_v2_filt", "1k_PBMC_v3_filt", "5prime_PBMC_filt_1kcells")


def run_fatescope() -> tuple[int, int]:
    from fatescope.cells.qc import QCParams, concat_samples, filter_cells_and_genes
    from fatescope.io.counts import read_counts
    samples = {}
    for name in FOLDERS:
        a = read_counts(PBMC / name)
        a.obs["sample"] = name
        samples[name] = a
    out = filter_cells_and_genes(concat_samples(samples, "inner"), QCParams(min_features=200, min_cells=3))
    return out.n_obs, out.n_vars


def run_scanpy() -> tuple[int, int]:
    import anndata as ad
    import pandas as pd
    import scanpy as sc
    parts = []
    for name in FOLDERS:
        a = sc.read_mtx(PBMC / name / "matrix.mtx.gz").T
        a.var_names = pd.read_csv(PBMC / name / "genes.tsv", header=None)[0].astype(str).values
        a.obs_names = pd.read_csv(PBMC / name / "barcodes.tsv", header=None)[0].astype(str).values
        a.var_names_make_unique()
        parts.append(a)
    adata = ad.concat(parts, join="inner", label="sample", keys=list(FOLDERS), index_unique="_")
    sc.pp.filter_cells(adata, min_genes=200)
    sc.pp.filter_genes(adata, min_cells=3)
    return adata.n_obs, adata.n_vars


def _child(name: str, queue) -> None:
    fn = {"fatescope": run_fatescope, "scanpy": run_scanpy}[name]
    t0 = time.perf_counter()
    shape = fn()
    queue.put((time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, shape))


def measure(name: str) -> tuple[float, float, tuple[int, int]]:
    """Run one side in a fresh process so imports and peak memory are its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    for name in ("fatescope", "scanpy"):
        runs = [measure(name) for _ in range(args.repeats)]
        best = min(r[0] for r in runs)
        rows[name] = (best, max(r[1] for r in runs), runs[0][2])
    print("| tool | best of %d (s) | peak RSS (MB) | cells x genes |" % args.repeats)
    print("|---|---|---|---|")
    for name, (secs, rss, shape) in rows.items():
        print(f"| {name} | {secs:.2f} | {rss:.0f} | {shape[0]} x {shape[1]} |")
    print(f"\nspeed ratio scanpy / fatescope: {rows['scanpy'][0] / rows['fatescope'][0]:.2f}x")
    assert rows["fatescope"][2] == rows["scanpy"][2], "the two pipelines disagree on the filtered shape"


if __name__ == "__main__":
    main()
