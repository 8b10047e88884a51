"""AUCell speed and memory: fatescope vs pySCENIC (ctxcore), rustscenic and flashscenic, same inputs, one run.

Speed: lognormal expression (default 20,000 cells x 6,000 genes, float32, seed 0), 100 regulons of
50 random targets + their TF, auc_threshold 0.05, tie seed 0. Each tool scores the same in-memory
matrix; wall and CPU seconds are reported, with the max |difference| to fatescope's numbers.
fatescope's numba kernels are compiled (and cached) before timing; the compile time is printed.
pySCENIC's algorithm is run from ctxcore (pandas shuffle + rank 'first', then ctxcore's
``enrichment4cells`` per regulon, one worker), as ``pyscenic.aucell`` does; peers are skipped
when not importable (install them with ``pip install --target DIR rustscenic ctxcore flashscenic``
and put DIR on PYTHONPATH).

Memory (``--memory N``): writes a sparse h5ad of N cells x 20,000 genes (3% non-zero counts, chunk
by chunk straight into anndata's on-disk CSR layout), scores 500 regulons with ``fatescope aucell`` streaming from disk in a child process, and prints
its peak RSS; the N-dependent part is the cells x regulons float64 result (8 x 500 bytes a cell).

Usage: python bench/aucell.py [--cells 20000 --genes 6000 --regulons 100] [--threads 2] [--memory 50000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_inputs(n_cells: int, n_genes: int, n_regs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.lognormal(0.0, 1.0, size=(n_cells, n_genes)).astype(np.float32)
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    rows = []
    for k in range(n_regs):
        members = rng.choice(n_genes, 51, replace=False)
        rows += [(f"R{k:03d}", genes[j]) for j in members]
    return X, genes, pd.DataFrame(rows, columns=["regulon", "gene"])


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def ours(X, genes, regs):
    from fatescope.regulons.aucell import auc_cutoff, aucell_batch, build_signatures, shuffle_positions
    sigs = build_signatures(regs, pd.Index(genes))
    perm, pos = shuffle_positions(len(genes), 0)
    cut = auc_cutoff(0.05, len(genes))
    _, compile_s, _ = timed(lambda: aucell_batch(X[:4], sigs, perm, pos, cut))
    print(f"fatescope: numba warm-up/compile {compile_s:.2f} s (not timed below)")
    out, wall, cpu = timed(lambda: aucell_batch(X, sigs, perm, pos, cut))
    return pd.DataFrame(out, columns=sigs.names), wall, cpu


def pyscenic(X, genes, regs):
    from ctxcore.genesig import GeneSignature
    from ctxcore.recovery import enrichment4cells
    ex = pd.DataFrame(X, columns=genes)
    sigs = [GeneSignature(name=n, gene2weight={g: 1.0 for g in grp["gene"]}) for n, grp in regs.groupby("regulon")]

    def run():
        rnk = ex.sample(frac=1.0, replace=False, axis=1, random_state=0).rank(
            axis=1, ascending=False, method="first", na_option="bottom").astype("uint32") - 1
        cols = {s.name: enrichment4cells(rnk, s, 0.05)["AUC"].to_numpy() for s in sigs}
        return pd.DataFrame(cols)
    return timed(run)


def rustscenic(X, genes, regs):
    import rustscenic.aucell as ra
    sets = {n: list(g["gene"]) for n, g in regs.groupby("regulon")}
    out, wall, cpu = timed(lambda: ra.score((X, list(genes)), sets, top_frac=0.05))
    return out.reset_index(drop=True), wall, cpu


def flashscenic(X, genes, regs):
    import flashscenic.aucell as fa
    names = sorted(regs["regulon"].unique())
    adj = np.zeros((len(names), len(genes)), dtype=np.float32)
    gpos = {g: i for i, g in enumerate(genes)}
    for i, n in enumerate(names):
        adj[i, [gpos[g] for g in regs.loc[regs["regulon"] == n, "gene"]]] = 1.0
    out, wall, cpu = timed(lambda: fa.get_aucell(X, adj, k=51, device="cpu", batch_size=1024, seed=0))
    return pd.DataFrame(out, columns=names), wall, cpu


def speed(args) -> None:
    X, genes, regs = make_inputs(args.cells, args.genes, args.regulons)
    print(f"inputs: {args.cells} cells x {args.genes} genes x {args.regulons} regulons; numba threads "
          f"{os.environ.get('NUMBA_NUM_THREADS', 'all')}; load average {os.getloadavg()[0]:.1f}")
    ref, wall, cpu = ours(X, genes, regs)
    print(f"{'tool':12s} {'wall_s':>8s} {'cpu_s':>8s} {'max|diff| vs fatescope':>24s}")
    print(f"{'fatescope':12s} {wall:8.3f} {cpu:8.3f} {0.0:24.2e}")
    for name, fn in (("pySCENIC", pyscenic), ("rustscenic", rustscenic), ("flashscenic", flashscenic)):
        if name.lower() in args.skip:
            continue
        try:
            out, wall, cpu = fn(X, genes, regs)
        except ImportError as exc:
            print(f"{name:12s} not importable ({exc})")
            continue
        diff = np.abs(out[ref.columns].to_numpy(np.float64) - ref.to_numpy()).max()
        print(f"{name:12s} {wall:8.3f} {cpu:8.3f} {diff:24.2e}")


def write_sparse_h5ad(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int, rng, chunk: int = 20000,
                      key: str = "X", obs: pd.DataFrame | None = None) -> None:
    """A cells x genes CSR h5ad written chunk by chunk (anndata's on-disk layout), so making a 1M-cell
    input needs no more memory than one chunk: ~nnz_per_cell random genes a cell, counts 1..10, as
    ``X`` or as a layer (``key="layers/counts"``)."""
    import anndata as ad
    import h5py

    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    obs = obs if obs is not None else pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    ad.AnnData(obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    with h5py.File(path, "a") as f:
        if key in f:
            del f[key]
        X = f.create_group(key)
        X.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = X.create_dataset("data", (0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 20,))
        indices = X.create_dataset("indices", (0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 20,))
        indptr = [np.zeros(1, dtype=np.int64)]
        for start in range(0, n_cells, chunk):
            n = min(chunk, n_cells - start)
            cols = np.sort(rng.integers(0, n_genes, size=(n, nnz_per_cell)), axis=1)
            keep = np.ones_like(cols, dtype=bool)
            keep[:, 1:] = cols[:, 1:] != cols[:, :-1]  # drop repeated genes within a cell
            row_nnz = keep.sum(1)
            vals = rng.integers(1, 11, size=int(row_nnz.sum())).astype(np.float32)
            old = data.shape[0]
            data.resize((old + len(vals),))
            indices.resize((old + len(vals),))
            data[old:] = vals
            indices[old:] = cols[keep].astype(np.int32)
            indptr.append(old + np.cumsum(row_nnz))
        X.create_dataset("indptr", data=np.concatenate(indptr))


def memory(n_cells: int, n_genes: int = 20000, n_regs: int = 500) -> None:
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="aucell_mem_"))
    t = time.perf_counter()
    write_sparse_h5ad(tmp / "cells.h5ad", n_cells, n_genes, int(0.03 * n_genes), rng)
    print(f"memory: input written in {time.perf_counter() - t:.0f} s ({(tmp / 'cells.h5ad').stat().st_size / 2**30:.1f} GiB)")
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    regs = [(f"R{k:03d}", "tf", genes[j], 1.0) for k in range(n_regs) for j in rng.choice(n_genes, 50, replace=False)]
    pd.DataFrame(regs, columns=["regulon", "tf", "target", "weight"]).assign(tf=lambda d: d["target"].where(
        d.groupby("regulon").cumcount() > 0).groupby(d["regulon"]).transform("last")).to_parquet(tmp / "regs.parquet")
    code = ("import resource, time; from fatescope.cli.aucell import run; t = time.perf_counter(); "
            f"run('{tmp}/cells.h5ad', '{tmp}/regs.parquet', outdir='{tmp}/out', device='cpu'); "
            "print(f'{time.perf_counter() - t:.1f} s; peak RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, 'MiB')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    print(f"memory: {n_cells} cells x {n_genes} genes x {n_regs} regulons (sparse h5ad, 3% non-zero, streamed):",
          res.stdout.strip(), res.stderr.strip().splitlines()[-1:] if res.returncode else "")
    print(f"  result matrix alone at 1M cells: {1e6 * n_regs * 8 / 2**30:.1f} GiB (float64)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=20000)
    p.add_argument("--genes", type=int, default=6000)
    p.add_argument("--regulons", type=int, default=100)
    p.add_argument("--skip", nargs="*", default=[], help="tools to skip: pyscenic rustscenic flashscenic")
    p.add_argument("--memory", type=int, default=0, help="also run the streaming memory test with this many cells")
    a = p.parse_args()
    speed(a)
    if a.memory:
        memory(a.memory)
