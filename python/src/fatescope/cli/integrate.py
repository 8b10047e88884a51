"""``fatescope integrate``: SCALEX-style VAE, Harmony on its latent (default) or on PCA; online projection into a saved model."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..cells.integrate import writes_checkpoint
from ..device import set_threads
from ..io.outputs import staged_output
from ..io.readers import read_anndata, read_cells
from ..logs import get_logger
from ..tl._integrate import IntegrationModel, integrate, with_reference
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "checkpoint/model.pt", "checkpoint/config.json", "integrate.json")
PACKAGES = ["torch", "anndata", "numpy", "scipy", "pandas"]


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(integrate, name)


def run(input: str, outdir: str = "integrate", method: str = _d("method"), batch_key: str = _d("batch_key"),
        layer: str = _d("layer"), n_top_features: int = _d("n_top_features"), target_sum: float = _d("target_sum"),
        scale: str = _d("scale"), hidden: int = _d("hidden"), latent_dim: int = _d("latent_dim"),
        batch_size: int = _d("batch_size"), lr: float = _d("lr"), weight_decay: float = _d("weight_decay"),
        kl_weight: float = _d("kl_weight"), max_iteration: int = _d("max_iteration"), max_epochs: int = _d("max_epochs"),
        patience: int = _d("patience"), transform_norm: str = _d("transform_norm"), chunk_size: int = _d("chunk_size"),
        seed: int = _d("seed"), device: str = _d("device"), projection: str | None = None, repeat: bool = False,
        impute_batch: str | None = _d("impute_batch"), harmony_on: str = _d("harmony_on"), n_pcs: int = _d("n_pcs"),
        harmony_theta: float = _d("harmony_theta"), threads: int = 0) -> Path:
    set_threads(threads)
    adata = read_cells(input, what="the cells.h5ad of the qc or ambient stage", batch_key=batch_key, layer=layer,
                       min_cells=2, min_genes=2)
    if projection:
        model = IntegrationModel.load(Path(projection) / "checkpoint", device=device)
        model.project(adata, batch_key=batch_key, layer=layer, impute_batch=impute_batch, chunk_size=chunk_size)
        model.info = {"method": method, **model.info}  # integrate.json and config.json record the option too
        if not repeat:
            ref = read_anndata(Path(projection) / "cells.h5ad", "the cells.h5ad of the integrate run projected into")
            adata = with_reference(ref, adata)
    else:
        model = integrate(adata, method=method, batch_key=batch_key, layer=layer, n_top_features=n_top_features,
                          target_sum=target_sum, scale=scale, hidden=hidden, latent_dim=latent_dim, batch_size=batch_size,
                          lr=lr, weight_decay=weight_decay, kl_weight=kl_weight, max_iteration=max_iteration,
                          max_epochs=max_epochs, patience=patience, transform_norm=transform_norm, chunk_size=chunk_size,
                          seed=seed, device=device, impute_batch=impute_batch, harmony_on=harmony_on, n_pcs=n_pcs,
                          harmony_theta=harmony_theta)
    settings = dict(input=input, method=method, batch_key=batch_key, layer=model.info["layer"], projection=projection,
                    repeat=repeat, impute_batch=impute_batch, harmony_on=harmony_on, n_pcs=n_pcs,
                    harmony_theta=harmony_theta, device=device, **model.params.__dict__)
    with staged_output(outdir, "integrate", settings, PACKAGES) as tmp:
        if writes_checkpoint(method, harmony_on, projection):
            model.save(tmp / "checkpoint")
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        (tmp / "integrate.json").write_text(json.dumps(model.info, indent=1, default=float))
    log.info("integrate (%s): %d cells, latent %s written to %s", method, adata.n_obs, adata.obsm["X_latent"].shape, outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("integrate", help="Integrate batches: SCALEX-style VAE (batch-free encoder, domain-specific batch norm "
                                 "decoder), by default followed by Harmony on its latent, or Harmony on PCA; latent in "
                                 "obsm['X_latent'], checkpoint in checkpoint/. With --projection, new batches are mapped "
                                 "into a saved model without retraining.")
@click.option("--input", required=True, type=click.Path(dir_okay=False),
              help="cells.h5ad of the qc or ambient stage (raw counts in layers).")
@outdir_option("integrate")
@click.option("--method", default=_d("method"), type=click.Choice(["scalex", "harmony"]),
              help="harmony: Harmony on the VAE's latent (--harmony-on latent, the best on every benchmark task) or on "
                   "PCA; scalex: the VAE's latent alone.")
@click.option("--batch-key", default=_d("batch_key"), help="obs column holding the batch of each cell.")
@click.option("--layer", default=_d("layer"), help="Counts layer; auto = 'decontaminated' when present, else 'counts'.")
@click.option("--n-top-features", default=_d("n_top_features"), type=click.IntRange(min=10),
              help="Highly variable genes (batch-aware Seurat rule).")
@click.option("--target-sum", default=_d("target_sum"), type=click.FloatRange(min=0, min_open=True),
              help="Counts per cell after normalisation.")
@click.option("--scale", default=_d("scale"), type=click.Choice(["batch", "global"]),
              help="Max-abs scaling per batch or over all cells.")
@click.option("--hidden", default=_d("hidden"), type=click.IntRange(min=1), help="Encoder hidden units.")
@click.option("--latent-dim", default=_d("latent_dim"), type=click.IntRange(min=1), help="Latent dimensions.")
@click.option("--batch-size", default=_d("batch_size"), type=click.IntRange(min=2), help="Cells per minibatch.")
@click.option("--lr", default=_d("lr"), type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@click.option("--weight-decay", default=_d("weight_decay"), type=click.FloatRange(min=0), help="Adam weight decay.")
@click.option("--kl-weight", default=_d("kl_weight"), type=click.FloatRange(min=0),
              help="Weight of the KL term in the loss (SCALEX: 0.5; 1.0 = the standard ELBO).")
@click.option("--max-iteration", default=_d("max_iteration"), type=click.IntRange(min=1),
              help="Maximum minibatch iterations.")
@click.option("--max-epochs", default=_d("max_epochs"), type=click.IntRange(min=1),
              help="Maximum passes over the cells, whichever limit comes first (small data sets overfit over thousands).")
@click.option("--patience", default=_d("patience"), type=click.IntRange(min=1),
              help="Early stopping: epochs without a lower loss.")
@click.option("--transform-norm", default=_d("transform_norm"), type=click.Choice(["batch", "running"]),
              help="Encoder batch norm at transform: each batch's own statistics (SCALEX) or the running averages.")
@click.option("--chunk-size", default=_d("chunk_size"), type=click.IntRange(min=1),
              help="Cells per chunk in the transform (bounds memory).")
@click.option("--seed", default=_d("seed"), type=int, help="Random seed (SCALEX's default).")
@click.option("--device", default=_d("device"), type=click.Choice(["auto", "cpu", "cuda"]),
              help="Torch device; auto picks CUDA when present.")
@click.option("--projection", default=None, type=click.Path(file_okay=False),
              help="Folder of an earlier integrate run: project these cells into its model [default: none, train].")
@click.option("--repeat/--no-repeat", default=False,
              help="With --projection: keep only the projected cells (else reference + query are concatenated).")
@click.option("--impute-batch", "impute_batch", default=_d("impute_batch"),
              help="Write obsm['X_impute'] (HVGs in uns['impute_genes']): expression decoded through this batch's "
                   "decoder [default: none].")
@click.option("--harmony-on", default=_d("harmony_on"), type=click.Choice(["pca", "latent"]),
              help="--method harmony: correct the PCA of the HVGs, or the latent of the VAE this run trains first "
                   "(kept in obsm['X_scalex']; its checkpoint is saved).")
@click.option("--n-pcs", default=_d("n_pcs"), type=click.IntRange(min=2),
              help="PCs for --method harmony --harmony-on pca.")
@click.option("--harmony-theta", default=_d("harmony_theta"), type=click.FloatRange(min=0),
              help="Harmony diversity penalty.")
@click.option("--threads", default=0, type=click.IntRange(min=0), help="Torch CPU threads (0 = torch's default).")
def command(**kwargs) -> None:
    run(**kwargs)
