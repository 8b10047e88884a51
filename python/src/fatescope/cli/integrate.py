"""``fatescope integrate``: SCALEX-style VAE, Harmony on its latent (default) or on PCA; online projection into a saved model."""
from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import click
import numpy as np
import pandas as pd

from ..cells.harmony import HarmonyParams, harmonize
from ..cells.integrate import (ScalexParams, fit_new_decoder_norms, impute, load_checkpoint, prepare, save_checkpoint,
                               train, transform, writes_checkpoint)
from ..cells.preprocess import log_normalize, pca
from ..device import resolve_device, set_threads
from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_anndata
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "checkpoint/model.pt", "checkpoint/config.json", "integrate.json")
PACKAGES = ["torch", "anndata", "numpy", "scipy", "pandas"]


def read_cells(path: str, batch_key: str, layer: str) -> tuple[ad.AnnData, str]:
    """The stage input: cells.h5ad with raw counts and the batch column."""
    adata = read_anndata(path, "the cells.h5ad of the qc or ambient stage")
    if batch_key not in adata.obs:
        raise InputError(f"{path}: obs has no column {batch_key!r} (columns: {', '.join(map(str, adata.obs.columns))})")
    if layer == "auto":
        layer = "decontaminated" if "decontaminated" in adata.layers else "counts"
    if layer not in adata.layers:
        raise InputError(f"{path}: layers has no {layer!r} (layers: {', '.join(adata.layers) or 'none'}); "
                         f"integrate expects raw counts in layers['counts']")
    if adata.n_obs < 2 or adata.n_vars < 2:
        raise InputError(f"{path}: {adata.n_obs} cells x {adata.n_vars} genes; integration needs at least 2 of each")
    return adata, layer


def _scalex(adata, layer, batch_key, params, device, impute_batch):
    batches = adata.obs[batch_key].astype(str).to_numpy()
    data = prepare(adata.layers[layer], adata.var_names, batches, params)
    domains = sorted(np.unique(batches))
    model, info = train(data, domains, params, device)
    latent = transform(model, data, params, device)
    imputed = None
    if impute_batch:
        if impute_batch not in domains:
            raise InputError(f"--impute {impute_batch!r}: not a batch of the data (batches: {', '.join(domains)})")
        imputed = (data.genes, impute(model, latent, domains.index(impute_batch), params.chunk_size, device))
    return latent, model, data, domains, info, imputed


def _project(adata, layer, batch_key, projection, device, chunk_size, impute_batch):
    model, state = load_checkpoint(Path(projection) / "checkpoint", device)
    params = ScalexParams(**{**state["params"], "chunk_size": chunk_size})
    batches = adata.obs[batch_key].astype(str).to_numpy()
    domains = list(state["domains"])
    data = prepare(adata.layers[layer], adata.var_names, batches, params, hvg=state["genes"],
                   maxabs={k: v for k, v in state["maxabs"].items() if k == "*"})
    latent = transform(model, data, params, device)
    new = [b for b in sorted(np.unique(batches)) if b not in domains]
    domains += new
    fit_new_decoder_norms(model, data, latent, domains, new, chunk_size, device)
    imputed = None
    if impute_batch:
        if impute_batch not in domains:
            raise InputError(f"--impute {impute_batch!r}: not a batch of the model or the data (batches: {', '.join(domains)})")
        imputed = (data.genes, impute(model, latent, domains.index(impute_batch), chunk_size, device))
    info = {"projected_batches": new, "reference_batches": list(state["domains"])}
    return latent, model, data, domains, info, imputed, params


def run(input: str, outdir: str = "integrate", method: str = "harmony", batch_key: str = "batch", layer: str = "auto",
        n_top_features: int = 2000, target_sum: float = 1e4, scale: str = "batch", hidden: int = 1024, latent_dim: int = 10,
        batch_size: int = 64, lr: float = 2e-4, weight_decay: float = 5e-4, kl_weight: float = 0.5,
        max_iteration: int = 30000, max_epochs: int = 400,
        patience: int = 10, transform_norm: str = "batch", chunk_size: int = 20000, seed: int = 124,
        device: str = "auto", projection: str | None = None, repeat: bool = False, impute_batch: str | None = None,
        harmony_on: str = "latent", n_pcs: int = 50, harmony_theta: float = 2.0, threads: int = 0) -> Path:
    set_threads(threads)
    dev = resolve_device(device)
    adata, layer = read_cells(input, batch_key, layer)
    params = ScalexParams(n_top_features=n_top_features, target_sum=target_sum, scale=scale, n_hidden=hidden,
                          n_latent=latent_dim, batch_size=batch_size, lr=lr, weight_decay=weight_decay, beta=kl_weight,
                          max_iteration=max_iteration, max_epochs=max_epochs, patience=patience, transform_norm=transform_norm,
                          chunk_size=chunk_size, seed=seed)
    model = data = imputed = None
    info: dict = {"method": method, "layer": layer, "device": str(dev)}
    if projection:
        latent, model, data, domains, extra, imputed, params = _project(adata, layer, batch_key, projection, dev, chunk_size, impute_batch)
        info.update(extra)
        adata.obsm["X_latent"] = latent
        if not repeat:
            ref = read_anndata(Path(projection) / "cells.h5ad", "the cells.h5ad of the integrate run projected into")
            adata.obs["projection"] = "query"
            ref.obs["projection"] = "reference"
            adata = ad.concat([ref, adata], join="inner", merge="same", uns_merge="first")
            adata.obs["projection"] = pd.Categorical(adata.obs["projection"])
    elif method == "scalex":
        latent, model, data, domains, extra, imputed = _scalex(adata, layer, batch_key, params, dev, impute_batch)
        info.update({k: v for k, v in extra.items() if k != "loss_history"}, loss_history=extra["loss_history"])
        adata.obsm["X_latent"] = latent
    elif method == "harmony":
        batches = adata.obs[batch_key].astype(str).to_numpy()
        if harmony_on == "latent":  # the VAE first (its checkpoint is saved), then Harmony on its latent
            base, model, data, domains, extra, imputed = _scalex(adata, layer, batch_key, params, dev, impute_batch)
            info.update({k: v for k, v in extra.items() if k != "loss_history"}, loss_history=extra["loss_history"])
            adata.obsm["X_scalex"] = base
        else:
            data = prepare(adata.layers[layer], adata.var_names, batches, params)
            logX = log_normalize(adata.layers[layer], target_sum)[:, adata.var_names.get_indexer(data.genes)].toarray()
            logX = np.clip((logX - logX.mean(0)) / np.maximum(logX.std(0), 1e-8), -10, 10)
            base = pca(logX, n_pcs, chunk_size=chunk_size)
            adata.obsm["X_pca"] = base
            data = None
        adata.obsm["X_latent"] = harmonize(base, batches, HarmonyParams(theta=harmony_theta), seed=seed, device=dev)
    else:
        raise InputError(f"--method {method!r}: expected scalex or harmony")
    if imputed is not None:  # HVGs only, so kept beside the full gene matrix rather than as a layer
        genes, values = imputed
        rows = np.arange(adata.n_obs - len(values), adata.n_obs)  # projected cells come last after a concat
        full = np.full((adata.n_obs, len(genes)), np.nan, dtype=np.float32)
        full[rows] = values
        adata.obsm["X_impute"] = full
        adata.uns["impute_genes"] = np.asarray(genes, dtype=str)
        adata.uns["impute_batch"] = impute_batch
    settings = dict(input=input, method=method, batch_key=batch_key, layer=layer, projection=projection, repeat=repeat,
                    impute_batch=impute_batch, harmony_on=harmony_on, n_pcs=n_pcs, harmony_theta=harmony_theta,
                    device=device, **params.__dict__)
    with staged_output(outdir, "integrate", settings, PACKAGES) as tmp:
        if writes_checkpoint(method, harmony_on, projection):
            save_checkpoint(tmp / "checkpoint", model, data, domains, params, info)
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        (tmp / "integrate.json").write_text(json.dumps(info, indent=1, default=float))
    log.info("integrate (%s): %d cells, latent %s written to %s", method, adata.n_obs, adata.obsm["X_latent"].shape, outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("integrate", help="Integrate batches: SCALEX-style VAE (batch-free encoder, domain-specific batch norm "
                                 "decoder), by default followed by Harmony on its latent, or Harmony on PCA; latent in "
                                 "obsm['X_latent'], checkpoint in checkpoint/. With --projection, new batches are mapped "
                                 "into a saved model without retraining.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="cells.h5ad of the qc or ambient stage (raw counts in layers).")
@outdir_option("integrate")
@click.option("--method", default="harmony", type=click.Choice(["scalex", "harmony"]),
              help="harmony: Harmony on the VAE's latent (--harmony-on latent, the best on every benchmark task) or on "
                   "PCA; scalex: the VAE's latent alone.")
@click.option("--batch-key", default="batch", help="obs column holding the batch of each cell.")
@click.option("--layer", default="auto", help="Counts layer; auto = 'decontaminated' when present, else 'counts'.")
@click.option("--n-top-features", default=2000, type=click.IntRange(min=10), help="Highly variable genes (batch-aware Seurat rule).")
@click.option("--target-sum", default=1e4, type=click.FloatRange(min=0, min_open=True), help="Counts per cell after normalisation.")
@click.option("--scale", default="batch", type=click.Choice(["batch", "global"]), help="Max-abs scaling per batch or over all cells.")
@click.option("--hidden", default=1024, type=click.IntRange(min=1), help="Encoder hidden units.")
@click.option("--latent-dim", default=10, type=click.IntRange(min=1), help="Latent dimensions.")
@click.option("--batch-size", default=64, type=click.IntRange(min=2), help="Cells per minibatch.")
@click.option("--lr", default=2e-4, type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@click.option("--weight-decay", default=5e-4, type=click.FloatRange(min=0), help="Adam weight decay.")
@click.option("--kl-weight", default=0.5, type=click.FloatRange(min=0),
              help="Weight of the KL term in the loss (SCALEX: 0.5; 1.0 = the standard ELBO).")
@click.option("--max-iteration", default=30000, type=click.IntRange(min=1), help="Maximum minibatch iterations.")
@click.option("--max-epochs", default=400, type=click.IntRange(min=1),
              help="Maximum passes over the cells, whichever limit comes first (small data sets overfit over thousands).")
@click.option("--patience", default=10, type=click.IntRange(min=1), help="Early stopping: epochs without a lower loss.")
@click.option("--transform-norm", default="batch", type=click.Choice(["batch", "running"]),
              help="Encoder batch norm at transform: each batch's own statistics (SCALEX) or the running averages.")
@click.option("--chunk-size", default=20000, type=click.IntRange(min=1), help="Cells per chunk in the transform (bounds memory).")
@click.option("--seed", default=124, type=int, help="Random seed (SCALEX's default).")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device; auto picks CUDA when present.")
@click.option("--projection", default=None, type=click.Path(file_okay=False),
              help="Folder of an earlier integrate run: project these cells into its model [default: none, train].")
@click.option("--repeat/--no-repeat", default=False,
              help="With --projection: keep only the projected cells (else reference + query are concatenated).")
@click.option("--impute-batch", "impute_batch", default=None,
              help="Write obsm['X_impute'] (HVGs in uns['impute_genes']): expression decoded through this batch's "
                   "decoder [default: none].")
@click.option("--harmony-on", default="latent", type=click.Choice(["pca", "latent"]),
              help="--method harmony: correct the PCA of the HVGs, or the latent of the VAE this run trains first "
                   "(kept in obsm['X_scalex']; its checkpoint is saved).")
@click.option("--n-pcs", default=50, type=click.IntRange(min=2), help="PCs for --method harmony --harmony-on pca.")
@click.option("--harmony-theta", default=2.0, type=click.FloatRange(min=0), help="Harmony diversity penalty.")
@click.option("--threads", default=0, type=click.IntRange(min=0), help="Torch CPU threads (0 = torch's default).")
def command(**kwargs) -> None:
    run(**kwargs)
