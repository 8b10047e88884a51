"""``fatescope grn``: RegDiffusion GRN on log-normalised expression of the QC'd cells, TF rows only."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..device import resolve_device
from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_cells
from ..logs import get_logger
from ..tl._grn import grn
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("adjacency.parquet", "grn_report.json", "model")
PACKAGES = ["regdiffusion", "torch", "numpy", "pandas", "anndata"]


def run(cells: str, outdir: str = "grn", tf_list: str = api_default(grn, "tfs"),
        layer: str | None = api_default(grn, "layer"), n_steps: int = api_default(grn, "n_steps"),
        sparsity_threshold: float = api_default(grn, "sparsity_threshold"), n_runs: int = api_default(grn, "n_runs"),
        seed: int = api_default(grn, "seed"), max_cells: int | None = api_default(grn, "max_cells"),
        device: str = api_default(grn, "device")) -> Path:
    import torch

    adata = read_cells(cells, what="the qc stage's cells.h5ad", layer=layer)
    settings = dict(cells=cells, tf_list=tf_list, layer=layer, n_steps=n_steps, sparsity_threshold=sparsity_threshold,
                    n_runs=n_runs, seed=seed, max_cells=max_cells, device=str(resolve_device(device)))
    with staged_output(outdir, "grn", settings, PACKAGES) as tmp:
        edges, models = grn(adata, tfs=tf_list, layer=layer, n_steps=n_steps, sparsity_threshold=sparsity_threshold,
                            n_runs=n_runs, seed=seed, max_cells=max_cells, device=device,
                            log_dir=tmp / "regdiffusion_logs",
                            return_models=True)
        if edges.empty:
            raise InputError(f"no TF edge reached --sparsity-threshold {sparsity_threshold}; lower it or train longer")
        edges.to_parquet(tmp / OUTPUTS[0], index=False)
        (tmp / OUTPUTS[2]).mkdir()
        for i, state in enumerate(models):
            torch.save(state, tmp / OUTPUTS[2] / f"run{i}.pt")
        (tmp / OUTPUTS[1]).write_text(json.dumps(adata.uns["grn"], indent=1))
    log.info("grn: %d edges from %d TFs written to %s", len(edges), edges["tf"].nunique(), outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("grn", help="Infer a TF -> target network with RegDiffusion on log-normalised expression "
                           "(library size 1e4, log1p) of the QC'd cells; keep TF rows and edges above the threshold.")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="QC'd AnnData (qc/cells.h5ad).")
@outdir_option("grn")
@click.option("--tf-list", default=api_default(grn, "tfs"),
              help="TF list: 'human' (bundled Lambert 2018), 'mouse' (bundled MGI) or a file with one gene symbol per "
                   "line.")
@click.option("--layer", default=api_default(grn, "layer"), help="Layer with raw counts ('' = X).")
@click.option("--n-steps", default=api_default(grn, "n_steps"), type=click.IntRange(min=1),
              help="RegDiffusion training iterations.")
@click.option("--sparsity-threshold", default=api_default(grn, "sparsity_threshold"), type=float,
              help="Edges with weight below this are zeroed.")
@click.option("--n-runs", default=api_default(grn, "n_runs"), type=click.IntRange(min=1),
              help="Ensemble of runs (seeds seed..seed+n-1) combined by mean weight; reports edge stability.")
@click.option("--seed", default=api_default(grn, "seed"), type=int,
              help="Random seed of the first run (and of the cell sample of --max-cells).")
@click.option("--max-cells", default=api_default(grn, "max_cells"), type=click.IntRange(min=1),
              help="Train on a seeded uniform sample of this many cells when there are more (RegDiffusion holds the "
                   "dense cells x genes matrix: ~30 GiB at 50,000 x 20,000).")
@click.option("--device", default=api_default(grn, "device"), type=click.Choice(["auto", "cpu", "cuda"]),
              help="Training device.")
def command(**kwargs) -> None:
    kwargs["layer"] = kwargs["layer"] or None
    run(**kwargs)
