"""``fatescope ambient`` (optional stage): CellBender-style ambient RNA removal."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from ..cells.ambient import AmbientParams
from ..io.counts import read_counts
from ..io.outputs import staged_output
from ..io.readers import read_cells
from ..logs import get_logger
from ..pp._ambient import ambient
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("cells.h5ad", "ambient.json")
PACKAGES = ["torch", "anndata", "numpy", "scipy"]


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(ambient, name)


def run(input: str, outdir: str = "ambient", raw: str | None = None, sample_key: str = _d("sample_key"),
        empty_quantile: float = _d("empty_quantile"), empty_max_umis: int = _d("empty_max_umis"),
        n_latent: int = _d("n_latent"), epochs: int = _d("epochs"), batch_size: int = _d("batch_size"),
        lr: float = _d("lr"), prior_mean: float = _d("prior_mean"), prior_concentration: float = _d("prior_concentration"),
        prior_from_empties: bool = _d("prior_from_empties"), seed: int = _d("seed"), device: str = _d("device")) -> Path:
    adata = read_cells(input, what="the cells.h5ad of the qc stage", layer="counts")
    model = dict(n_latent=n_latent, epochs=epochs, batch_size=batch_size, lr=lr, empty_quantile=empty_quantile,
                 empty_max_umis=empty_max_umis, seed=seed)
    summary = ambient(adata, raw=read_counts(raw) if raw else None, sample_key=sample_key, prior_mean=prior_mean,
                      prior_concentration=prior_concentration, prior_from_empties=prior_from_empties, device=device,
                      **model)
    if raw:  # name the file, where the API knows only the matrix
        summary["profile_source"] = f"empty droplets of {raw}"
    settings = dict(input=input, raw=raw, sample_key=sample_key, prior_mean=prior_mean,
                    prior_concentration=prior_concentration, prior_from_empties=prior_from_empties, device=device,
                    **asdict(AmbientParams.from_prior(prior_mean, prior_concentration, **model)))
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
@click.option("--sample-key", default=_d("sample_key"),
              help="obs column: one ambient profile per value (without --raw).")
@click.option("--empty-quantile", default=_d("empty_quantile"), type=click.FloatRange(0, 1, min_open=True),
              help="Without --raw: fraction of lowest-UMI barcodes per sample that make the profile.")
@click.option("--empty-max-umis", default=_d("empty_max_umis"), type=click.IntRange(min=1),
              help="With --raw: most UMIs of an empty droplet.")
@click.option("--n-latent", default=_d("n_latent"), type=click.IntRange(min=1),
              help="Cell-state prototypes of the cell-signal decoder.")
@click.option("--epochs", default=_d("epochs"), type=click.IntRange(min=1), help="Training epochs.")
@click.option("--batch-size", default=_d("batch_size"), type=click.IntRange(min=2),
              help="Cells per minibatch.")
@click.option("--lr", default=_d("lr"), type=click.FloatRange(min=0, min_open=True),
              help="Adam learning rate.")
@click.option("--prior-mean", default=_d("prior_mean"), type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Prior mean of the ambient fraction (sets the overall level; the data set each cell's deviation).")
@click.option("--prior-from-empties/--no-prior-from-empties", default=_d("prior_from_empties"),
              help="With --raw: each cell's prior mean is the empty droplets' mean UMIs / its UMIs (CellBender's "
                   "physics), replacing --prior-mean.")
@click.option("--prior-concentration", default=_d("prior_concentration"), type=click.FloatRange(min=0, min_open=True),
              help="Prior concentration of the ambient fraction: Beta(c x mean, c x (1 - mean)).")
@click.option("--seed", default=_d("seed"), type=int, help="Random seed.")
@click.option("--device", default=_d("device"), type=click.Choice(["auto", "cpu", "cuda"]),
              help="Torch device; auto picks CUDA when present.")
def command(**kwargs) -> None:
    run(**kwargs)
