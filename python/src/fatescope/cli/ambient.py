"""``fatescope ambient`` (optional stage): CellBender-style ambient RNA removal."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..cells import ambient as ambient_model
from ..device import resolve_device, set_threads
from ..errors import InputError
from ..io.counts import read_counts
from ..io.outputs import staged_output
from ..io.readers import read_anndata
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "ambient.json")
PACKAGES = ["torch", "anndata", "numpy", "scipy"]


def run(input: str, outdir: str = "ambient", raw: str | None = None, sample_key: str = "sample",
        empty_quantile: float = 0.05, empty_max_umis: int = 100, n_latent: int = 10, epochs: int = 150,
        batch_size: int = 128, lr: float = 1e-3, prior_mean: float = 0.1, prior_concentration: float = 20.0,
        prior_from_empties: bool = True, seed: int = 0, device: str = "auto") -> Path:
    set_threads(0)  # deterministic kernels: the same seed gives the same estimate
    adata = read_anndata(input, "the cells.h5ad of the qc stage")
    if "counts" not in adata.layers:
        raise InputError(f"{input}: layers has no 'counts' (layers: {', '.join(adata.layers) or 'none'}); expected raw counts")
    prior, empty_umis = None, None
    samples = adata.obs[sample_key].astype(str).to_numpy() if sample_key in adata.obs else np.full(adata.n_obs, "all")
    if raw:
        rawa = read_counts(raw)
        barcodes = adata.obs["barcode"].astype(str) if "barcode" in adata.obs else adata.obs_names
        prof, d = ambient_model.profile_from_empties(rawa.X, rawa.var_names, adata.var_names, barcodes, rawa.obs_names,
                                                     empty_max_umis)
        empty_umis = {"mean": float(d.mean()), "sd": float(d.std()), "droplets": int(len(d))}
        profiles = {s: prof for s in np.unique(samples)}
        source = f"empty droplets of {raw}"
        if prior_from_empties:
            prior = ambient_model.prior_from_empties(adata.layers["counts"], d)
    else:
        profiles = ambient_model.profile_from_low_umi(adata.layers["counts"], samples, empty_quantile)
        source = f"lowest-UMI {empty_quantile:.0%} of barcodes per {sample_key}"
    params = ambient_model.AmbientParams(n_latent=n_latent, epochs=epochs, batch_size=batch_size, lr=lr,
                                         prior_a=prior_concentration * prior_mean,
                                         prior_b=prior_concentration * (1 - prior_mean), empty_quantile=empty_quantile,
                                         empty_max_umis=empty_max_umis, seed=seed)
    dec, frac, info = ambient_model.decontaminate(adata.layers["counts"], samples, profiles, params,
                                                  resolve_device(device), prior)
    adata.layers["decontaminated"] = dec
    adata.obs["ambient_fraction"] = frac
    removed = 1 - float(dec.sum()) / max(float(adata.layers["counts"].sum()), 1.0)
    prior_text = (f"{prior_mean:g} for every cell" if prior is None else
                  "per cell: empty droplets' UMIs / the cell's UMIs (median %.4f)" % float(np.median(prior[0])))
    summary = {"profile_source": source, "empty_droplet_umis": empty_umis, "prior_mean_fraction": prior_text,
               "fraction_of_counts_removed": removed, "mean_ambient_fraction": float(np.mean(frac)),
               "median_ambient_fraction": float(np.median(frac)), "final_loss": info["final_loss"]}
    log.info("ambient: %.1f%% of counts attributed to ambient RNA (profile: %s)", 100 * removed, source)
    settings = dict(input=input, raw=raw, sample_key=sample_key, prior_mean=prior_mean,
                    prior_concentration=prior_concentration, prior_from_empties=prior_from_empties, device=device,
                    **params.__dict__)
    with staged_output(outdir, "ambient", settings, PACKAGES) as tmp:
        adata.write_h5ad(tmp / OUTPUTS[0], compression="gzip")
        (tmp / OUTPUTS[1]).write_text(json.dumps(summary, indent=1))
    return Path(outdir) / OUTPUTS[0]


@stage_command("ambient", help="Optional: remove ambient RNA with a CellBender-style VAE (cell signal plus an ambient "
                               "fraction times the ambient profile); writes layers['decontaminated'].")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="cells.h5ad of the qc stage.")
@outdir_option("ambient")
@click.option("--raw", default=None, type=click.Path(),
              help="Raw (unfiltered) matrix whose empty droplets give the ambient profile [default: none, lowest-UMI cells].")
@click.option("--sample-key", default="sample", help="obs column: one ambient profile per value (without --raw).")
@click.option("--empty-quantile", default=0.05, type=click.FloatRange(0, 1, min_open=True),
              help="Without --raw: fraction of lowest-UMI barcodes per sample that make the profile.")
@click.option("--empty-max-umis", default=100, type=click.IntRange(min=1), help="With --raw: most UMIs of an empty droplet.")
@click.option("--n-latent", default=10, type=click.IntRange(min=1), help="Cell-state prototypes of the cell-signal decoder.")
@click.option("--epochs", default=150, type=click.IntRange(min=1), help="Training epochs.")
@click.option("--batch-size", default=128, type=click.IntRange(min=2), help="Cells per minibatch.")
@click.option("--lr", default=1e-3, type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@click.option("--prior-mean", default=0.1, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Prior mean of the ambient fraction (sets the overall level; the data set each cell's deviation).")
@click.option("--prior-from-empties/--no-prior-from-empties", default=True,
              help="With --raw: each cell's prior mean is the empty droplets' mean UMIs / its UMIs (CellBender's "
                   "physics), replacing --prior-mean.")
@click.option("--prior-concentration", default=20.0, type=click.FloatRange(min=0, min_open=True),
              help="Prior concentration of the ambient fraction: Beta(c x mean, c x (1 - mean)).")
@click.option("--seed", default=0, type=int, help="Random seed.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device; auto picks CUDA when present.")
def command(**kwargs) -> None:
    run(**kwargs)
