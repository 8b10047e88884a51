"""Fate probabilities (issue 16): fatescope's pseudotime kernel + absorption solver vs CellRank 2.x, and scale.

pancreas: the real 739-cell pancreas data as stored in the parity fixture (scanpy kNN graph, 30 neighbours,
and scanpy DPT from a Ductal cell; python/tests/data/cellrank/make_ref.py). Terminal states: for each of
Alpha, Beta, Delta, Epsilon its 30 latest cells in pseudotime (CellRank's default macrostate size), so the
rest of each cluster is transient; reported per fate: the median of the cluster's own-fate probability over
all its cells (bar >= 0.9) and the Pearson correlation of ours with CellRank over all cells (bar >= 0.99),
for the soft pseudotime kernel alone and mixed 0.8 pk + 0.2 ck. Wall/CPU seconds of transition matrix +
fate probabilities, imports excluded, both sides one process; CellRank runs in a Python that has it
(--cellrank-python, default /tmp/cellrank-venv/bin/python) with its default solver (scipy gmres, tol 1e-6)
and use_petsc=False, n_jobs=1; ours with solver='auto' (direct here). Each side twice, the second timed.

scale: a synthetic branching trajectory (trunk + 3 branches in 2-D, noise 0.03; kNN graph of --neighbors
neighbours as a fuzzy union; seed 0) of --cells cells; planted pseudotime + N(0, 0.01) noise, or our
diffusion pseudotime with --dpt; terminal states: the cells past 90% of each branch. Reports wall/CPU seconds
of each step and the process peak RSS (graph building included); with --cellrank-python, CellRank's
time (kernel + default gmres fate probabilities, one run) on the same graph, pseudotime and terminal cells.

Usage: python bench/fate_probs.py pancreas [--out bench/fate_probs_pancreas.json]
       python bench/fate_probs.py scale --cells 1000000 --neighbors 30 [--dpt] [--cellrank-python PY] [--out F]
Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to the cores to use (the numbers in docs/benchmarks.md: 2).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "python" / "tests" / "data" / "cellrank" / "pancreas_cellrank.npz"
FATES = ["Alpha", "Beta", "Delta", "Epsilon"]
CORE = 30
CELLRANK = """
import sys, time, numpy as np, scipy.sparse as sp, anndata as ad, pandas as pd, cellrank as cr
z = np.load(sys.argv[1], allow_pickle=False)
n = z["pseudotime"].size
conn = sp.csr_matrix((z["conn_data"], z["conn_indices"], z["conn_indptr"]), shape=(n, n))
names = np.array([f"c{i}" for i in range(n)])
adata = ad.AnnData(X=sp.csr_matrix((n, 1)), obs=pd.DataFrame({"pt": z["pseudotime"]}, index=names),
                   obsp={"connectivities": conn},
                   uns={"neighbors": {"connectivities_key": "connectivities", "params": {"n_neighbors": 30}}})
states = {str(k): names[z["core_" + str(k)]].tolist() for k in z["fates"]}
out = {}
for w in map(float, sys.argv[3].split(",")):
  for _ in range(int(sys.argv[4])):  # the last run is timed: the first also loads lazily imported code
    wall, cpu = time.perf_counter(), time.process_time()
    k = cr.kernels.PseudotimeKernel(adata, time_key="pt").compute_transition_matrix(
        threshold_scheme="soft", show_progress_bar=False, n_jobs=1)
    if w:
        k = (1 - w) * k + w * cr.kernels.ConnectivityKernel(adata).compute_transition_matrix()
        k.compute_transition_matrix()
    g = cr.estimators.GPCCA(k)
    g.set_terminal_states(states)
    try:  # CellRank's default: scipy gmres, tol 1e-6, no preconditioner
        g.compute_fate_probabilities(use_petsc=False, show_progress_bar=False, n_jobs=1)
        out[f"solver_{w}"] = np.array("gmres")
    except ValueError as err:  # its check of the result failed: it advises the direct solver
        out[f"gmres_error_{w}"] = np.array(str(err))
        out[f"gmres_failed_after_s_{w}"] = np.array(time.perf_counter() - wall)
        if n > 20_000:  # without PETSc its direct solver densifies I - Q: 8 n^2 bytes (20 GB at 50k cells)
            out[f"solver_{w}"] = np.array("gmres failed; direct skipped (dense)")
            out[f"fate_{w}"] = np.full((n, len(states)), np.nan)
            out[f"time_{w}"] = np.array([time.perf_counter() - wall, time.process_time() - cpu])
            continue
        g.compute_fate_probabilities(solver="direct", use_petsc=False, show_progress_bar=False, n_jobs=1)
        out[f"solver_{w}"] = np.array("gmres failed, then direct")
    out[f"fate_{w}"] = np.asarray(g.fate_probabilities[list(states)].X, dtype=np.float64)
    out[f"time_{w}"] = np.array([time.perf_counter() - wall, time.process_time() - cpu])
np.savez(sys.argv[2], **out)
"""


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_cellrank(python: str, conn: sp.csr_matrix, pseudotime: np.ndarray, states: dict, weights: str,
                 repeats: int) -> dict:
    """CellRank's fate probabilities on the same graph, pseudotime and terminal cells, in its own Python."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inputs, conn_data=conn.data, conn_indices=conn.indices, conn_indptr=conn.indptr,
                 pseudotime=pseudotime, fates=np.array(list(states)),
                 **{f"core_{k}": v for k, v in states.items()})
        subprocess.run([python, "-c", CELLRANK, str(inputs), str(outputs), weights, str(repeats)], check=True)
        with np.load(outputs) as z:
            return {k: z[k] for k in z.files}


def pancreas(args) -> dict:
    from fatescope.trajectory import absorption_probabilities, transition_matrix

    with np.load(FIXTURE, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    n = data["clusters"].size
    conn = sp.csr_matrix((data["conn_data"], data["conn_indices"], data["conn_indptr"]), shape=(n, n))
    t = data["dpt"]
    cores = {}
    for fate in FATES:
        members = np.flatnonzero(data["clusters"] == fate)
        cores[fate] = np.sort(members[np.argsort(-t[members], kind="stable")[:CORE]])
    theirs = run_cellrank(args.cellrank_python, conn, t, cores, "0,0.2", 2)
    result = {"cells": n, "terminal_cells_per_fate": CORE, "kernels": {}}
    for w in (0.0, 0.2):
        def run():
            T = transition_matrix(conn, t, connectivity_weight=w)
            return absorption_probabilities(T, cores, order=t)
        for _ in range(2):  # the first call also loads lazily imported scipy parts
            probs, wall, cpu = timed(run)
        ref = theirs[f"fate_{w}"]
        result["kernels"][f"{1 - w:g} pk + {w:g} ck"] = {
            "own_fate_median": {f: float(np.median(probs[data["clusters"] == f, i])) for i, f in enumerate(FATES)},
            "own_fate_median_cellrank": {f: float(np.median(ref[data["clusters"] == f, i]))
                                         for i, f in enumerate(FATES)},
            "pearson_vs_cellrank": {f: float(np.corrcoef(probs[:, i], ref[:, i])[0, 1]) for i, f in enumerate(FATES)},
            "max_abs_diff_vs_cellrank": float(np.abs(probs - ref).max()),
            "ours_wall_s": wall, "ours_cpu_s": cpu,
            "cellrank_wall_s": float(theirs[f"time_{w}"][0]), "cellrank_cpu_s": float(theirs[f"time_{w}"][1]),
            "speedup_wall": float(theirs[f"time_{w}"][0] / wall), "cellrank_solver": str(theirs[f"solver_{w}"])}
    return result


def branching(n: int, k: int, seed: int = 0):
    """Trunk + 3 branches in 2-D (as tests/test_trajectory_solver.py): fuzzy-union kNN graph, planted time."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, n)
    s = rng.random(n)
    angles = np.deg2rad([50.0, 0.0, -50.0])
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    xy = np.where(segment[:, None] == 0, np.c_[s, np.zeros(n)],
                  np.array([1.0, 0.0]) + s[:, None] * direction[np.maximum(segment - 1, 0)])
    xy += rng.normal(0, 0.03, xy.shape)
    dist, idx = NearestNeighbors(n_neighbors=k + 1, algorithm="kd_tree").fit(xy).kneighbors(xy)
    dist, idx = dist[:, 1:], idx[:, 1:].astype(np.int32)
    w = np.exp(-(dist / dist[:, -1:]) ** 2)
    del dist
    W = sp.csr_matrix((w.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    del w, idx
    C = (W + W.T - W.multiply(W.T)).tocsr()
    truth = np.where(segment == 0, s / 2, 0.5 + s / 2)
    return C, truth, segment, s


def scale(args) -> dict:
    from fatescope.trajectory import absorption_probabilities, diffusion_pseudotime, transition_matrix

    steps = {}
    (C, truth, segment, s), *steps["graph"] = timed(lambda: branching(args.cells, args.neighbors))
    if args.dpt:
        start = np.flatnonzero((segment == 0) & (s < 0.05))
        (pseudotime, _), *steps["diffusion_pseudotime"] = timed(lambda: diffusion_pseudotime(C, start))
        corr = float(np.corrcoef(pseudotime, truth)[0, 1])
    else:
        pseudotime, corr = truth + np.random.default_rng(1).normal(0, 0.01, truth.size), None
    T, *steps["transition_matrix"] = timed(lambda: transition_matrix(C, pseudotime,
                                                                    connectivity_weight=args.connectivity_weight))
    nnz = C.nnz
    fates = {f"end{b}": np.flatnonzero((segment == b) & (s > 0.9)) for b in (1, 2, 3)}
    probs, *steps["absorption"] = timed(lambda: absorption_probabilities(T, fates, solver=args.solver,
                                                                          order=pseudotime))
    late = [float(np.median(probs[(segment == b) & (s > 0.5), b - 1])) for b in (1, 2, 3)]
    peer = {}
    if args.cellrank_python:
        theirs = run_cellrank(args.cellrank_python, C, pseudotime, fates, "0", 1)
        wall, cpu = (float(v) for v in theirs["time_0.0"])
        peer = {"cellrank_wall_s": wall, "cellrank_cpu_s": cpu, "cellrank_solver": str(theirs["solver_0.0"]),
                "cellrank_gmres_error": str(theirs.get("gmres_error_0.0", "")),
                "cellrank_gmres_failed_after_s": float(theirs.get("gmres_failed_after_s_0.0", np.nan)),
                "speedup_wall": wall / (steps["transition_matrix"][0] + steps["absorption"][0]),
                "max_abs_diff_vs_cellrank": float(np.abs(probs - theirs["fate_0.0"]).max()),
                "pearson_vs_cellrank": [float(np.corrcoef(probs[:, i], theirs["fate_0.0"][:, i])[0, 1])
                                        for i in range(3)]}
    return {**peer, "cells": args.cells, "neighbors": args.neighbors, "graph_nnz": nnz, "transition_nnz": T.nnz,
            "dpt": bool(args.dpt), "dpt_pearson_vs_planted": corr, "solver": args.solver,
            "connectivity_weight": args.connectivity_weight,
            "steps": {k: {"wall_s": v[0], "cpu_s": v[1]} for k, v in steps.items()},
            "fate_wall_s": sum(v[0] for k, v in steps.items() if k != "graph"),
            "late_branch_own_fate_median": late, "max_abs_row_sum_error": float(np.abs(probs.sum(1) - 1).max()),
            "peak_rss_gib": peak_rss_gib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("pancreas", help="parity and speed vs CellRank on the real pancreas data")
    p.add_argument("--cellrank-python", default="/tmp/cellrank-venv/bin/python")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "fate_probs_pancreas.json")
    q = sub.add_parser("scale", help="synthetic branching trajectory at scale")
    q.add_argument("--cells", type=int, default=1_000_000)
    q.add_argument("--neighbors", type=int, default=30)
    q.add_argument("--connectivity-weight", type=float, default=0.0)
    q.add_argument("--solver", default="auto")
    q.add_argument("--dpt", action="store_true", help="also compute the diffusion pseudotime and use it")
    q.add_argument("--cellrank-python", default=None, help="also run CellRank (its gmres) on the same inputs")
    q.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from fatescope.logs import configure

    configure("INFO")
    result = pancreas(args) if args.mode == "pancreas" else scale(args)
    text = json.dumps(result, indent=2)
    out = args.out or ROOT / "bench" / f"fate_probs_scale_{args.cells}.json"
    out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
