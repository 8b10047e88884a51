"""Make the CellRank parity fixture ``pancreas_cellrank.npz`` (run with a Python that has cellrank 2.x and
scanpy, outside the project venv -- e.g. /tmp/cellrank-venv/bin/python make_ref.py /work/shared/data/pancreas).

Real data: the 739-cell mouse pancreas subset (shared/data/pancreas: 50 PCs, cluster labels). The graph is
scanpy's kNN graph (30 neighbours, the CellRank tutorial value) on the PCs, the pseudotime scanpy's DPT from
the Ductal cell at the Ductal end of the first diffusion component; CellRank then gives the soft
PseudotimeKernel (b=10, nu=0.5), 0.8 * pk + 0.2 * ck, and fate probabilities into Alpha, Beta, Delta and
Epsilon (all cells of those clusters) with the direct and the default (gmres, tol 1e-6) solvers.
Transition matrices are stored as the data arrays over the connectivities' sparsity pattern (checked equal).
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

TERMINAL = ["Alpha", "Beta", "Delta", "Epsilon"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pancreas", type=Path, help="folder with obs.csv and pcs.csv")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("pancreas_cellrank.npz"))
    args = parser.parse_args()

    import anndata as ad
    import cellrank as cr
    import scanpy as sc

    obs = pd.read_csv(args.pancreas / "obs.csv", index_col=0)
    pcs = pd.read_csv(args.pancreas / "pcs.csv", index_col=0).loc[obs.index]
    adata = ad.AnnData(X=sp.csr_matrix((len(obs), 1)), obs=obs.astype({"clusters": "category"}),
                       obsm={"X_pca": pcs.to_numpy(np.float64)})  # CellRank estimators need an X
    sc.pp.neighbors(adata, n_neighbors=30, use_rep="X_pca", random_state=0)
    sc.tl.diffmap(adata)  # n_comps=15
    evals, dc = adata.uns["diffmap_evals"], adata.obsm["X_diffmap"]
    ductal = np.flatnonzero(adata.obs["clusters"].to_numpy() == "Ductal")
    first = dc[:, np.flatnonzero(evals < 0.9994)[0]]
    side = np.sign(first[ductal].mean() - first.mean()) or 1.0
    root = int(ductal[np.argmax(side * first[ductal])])
    adata.uns["iroot"] = root
    sc.tl.dpt(adata)  # n_dcs=10

    conn = adata.obsp["connectivities"].tocsr().astype(np.float64)
    conn.sort_indices()
    pk = cr.kernels.PseudotimeKernel(adata, time_key="dpt_pseudotime")
    pk.compute_transition_matrix(threshold_scheme="soft", b=10.0, nu=0.5, show_progress_bar=False)
    ck = cr.kernels.ConnectivityKernel(adata).compute_transition_matrix()
    mix = 0.8 * pk + 0.2 * ck
    mix.compute_transition_matrix()

    def on_pattern(matrix) -> np.ndarray:
        matrix = sp.csr_matrix(matrix)
        matrix.sort_indices()
        if not (np.array_equal(matrix.indptr, conn.indptr) and np.array_equal(matrix.indices, conn.indices)):
            raise SystemExit("transition matrix sparsity differs from the connectivities'")
        return matrix.data

    labels = adata.obs["clusters"].astype(str).to_numpy()
    states = {s: adata.obs_names[labels == s].tolist() for s in TERMINAL}
    fates = {}
    for name, kernel in (("pk", pk), ("mix", mix)):
        for solver in ("direct", "gmres"):
            g = cr.estimators.GPCCA(kernel)
            g.set_terminal_states(states)
            g.compute_fate_probabilities(solver=solver, use_petsc=False, show_progress_bar=False)
            fp = g.fate_probabilities
            fates[f"fate_{name}_{solver}"] = np.asarray(fp[TERMINAL].X, dtype=np.float64)

    versions = {p: md.version(p) for p in ("cellrank", "scanpy", "anndata", "numpy", "scipy", "umap-learn")}
    versions["python"] = sys.version.split()[0]
    np.savez_compressed(
        args.out, conn_data=conn.data, conn_indices=conn.indices.astype(np.int32),
        conn_indptr=conn.indptr.astype(np.int32), clusters=labels.astype("U16"),
        dpt=adata.obs["dpt_pseudotime"].to_numpy(np.float64), root=np.int64(root),
        diffmap_evals=np.asarray(evals, np.float64), t_pk=on_pattern(pk.transition_matrix),
        t_mix=on_pattern(mix.transition_matrix), terminal=np.array(TERMINAL, dtype="U16"),
        versions=np.array(json.dumps(versions)), **fates)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {versions}")


if __name__ == "__main__":
    main()
