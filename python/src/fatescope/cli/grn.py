"""``fatescope grn``: RegDiffusion GRN on log-normalised expression of the QC'd cells, TF rows only."""
from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import click

from ..device import resolve_device, set_threads
from ..errors import InputError
from ..logs import get_logger
from ..io.outputs import staged_output
from ..io.readers import read_anndata
from ..regulons.grn import GRNParams, infer_grn, log_normalise
from ..regulons.tfs import read_tf_list, tfs_in_data
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("adjacency.parquet", "grn_report.json", "model")
PACKAGES = ["regdiffusion", "torch", "numpy", "pandas", "anndata"]


def read_cells(path: str, layer: str | None) -> ad.AnnData:
    adata = read_anndata(path, "the qc stage's cells.h5ad")
    if layer and layer not in adata.layers:
        raise InputError(f"{path}: layer {layer!r} not found (layers: {sorted(adata.layers)})")
    return adata


def run(cells: str, outdir: str = "grn", tf_list: str = "human", layer: str | None = "counts", n_steps: int = 1000,
        sparsity_threshold: float = 1.5, n_runs: int = 1, seed: int = 0, device: str = "auto") -> Path:
    import torch

    adata = read_cells(cells, layer)
    counts = adata.layers[layer] if layer else adata.X
    tfs = read_tf_list(tf_list)
    present, tf_report = tfs_in_data(tfs, adata.var_names)
    set_threads(0)  # deterministic kernels: the same seed gives the same network
    dev = str(resolve_device(device))
    params = GRNParams(n_steps=n_steps, sparsity_threshold=sparsity_threshold, n_runs=n_runs, seed=seed)
    settings = dict(cells=cells, tf_list=tf_list, layer=layer, n_steps=n_steps, sparsity_threshold=sparsity_threshold,
                    n_runs=n_runs, seed=seed, device=dev)
    with staged_output(outdir, "grn", settings, PACKAGES) as tmp:
        X = log_normalise(counts)
        edges, states, report = infer_grn(X, adata.var_names, present, params, dev, tmp / "regdiffusion_logs")
        if edges.empty:
            raise InputError(f"no TF edge reached --sparsity-threshold {sparsity_threshold}; lower it or train longer")
        edges.to_parquet(tmp / OUTPUTS[0], index=False)
        (tmp / OUTPUTS[2]).mkdir()
        for i, state in enumerate(states):
            torch.save(state, tmp / OUTPUTS[2] / f"run{i}.pt")
        (tmp / OUTPUTS[1]).write_text(json.dumps({**tf_report, **report, "device": dev}, indent=1))
    log.info("grn: %d edges from %d TFs written to %s", len(edges), edges["tf"].nunique(), outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("grn", help="Infer a TF -> target network with RegDiffusion on log-normalised expression "
                           "(library size 1e4, log1p) of the QC'd cells; keep TF rows and edges above the threshold.")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="QC'd AnnData (qc/cells.h5ad).")
@outdir_option("grn")
@click.option("--tf-list", default="human", help="TF list: 'human' (bundled Lambert 2018), 'mouse' (bundled MGI) "
                                                 "or a file with one gene symbol per line.")
@click.option("--layer", default="counts", help="Layer with raw counts ('' = X).")
@click.option("--n-steps", default=1000, type=click.IntRange(min=1), help="RegDiffusion training iterations.")
@click.option("--sparsity-threshold", default=1.5, type=float, help="Edges with weight below this are zeroed.")
@click.option("--n-runs", default=1, type=click.IntRange(min=1),
              help="Ensemble of runs (seeds seed..seed+n-1) combined by mean weight; reports edge stability.")
@click.option("--seed", default=0, type=int, help="Random seed of the first run.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Training device.")
def command(**kwargs) -> None:
    kwargs["layer"] = kwargs["layer"] or None
    run(**kwargs)
