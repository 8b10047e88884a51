"""``fs.pp.ambient``: CellBender-style ambient RNA removal on an AnnData (the optional ambient stage)."""
from __future__ import annotations

from typing import Literal

import numpy as np
from anndata import AnnData

from ..cells.checks import check_cells
from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


def ambient(adata: AnnData, *, raw: AnnData | None = None, sample_key: str = "sample", empty_quantile: float = 0.05,
            empty_max_umis: int = 100, n_latent: int = 10, epochs: int = 150, batch_size: int = 128, lr: float = 1e-3,
            prior_mean: float = 0.1, prior_concentration: float = 20.0, prior_from_empties: bool = True, seed: int = 0,
            device: Literal["auto", "cpu", "cuda"] = "auto") -> dict:
    """Remove ambient RNA: counts = cell signal + an ambient fraction x the ambient profile (a VAE).

    The ambient profile comes from the empty droplets of ``raw`` (barcodes that are not cells,
    with 1..``empty_max_umis`` UMIs), else, per ``sample_key``, from the lowest-UMI
    ``empty_quantile`` of the cells. Torch is switched to deterministic kernels
    (``fatescope.device.set_threads``): the same seed gives the same estimate.

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``layers["counts"]`` (the qc stage's output); modified in place.
    raw
        Unfiltered matrix (cells and empty droplets; barcodes as obs names, matched to
        ``obs["barcode"]`` or the obs names of ``adata``); ``None``: profile from the lowest-UMI cells.
    sample_key
        obs column: one ambient profile per value (without ``raw``); absent: one profile.
    empty_quantile, empty_max_umis
        Without ``raw``: fraction of lowest-UMI barcodes per sample; with ``raw``: most UMIs of an empty droplet.
    n_latent, epochs, batch_size, lr
        Cell-state prototypes of the decoder, training epochs, cells per minibatch, Adam learning rate.
    prior_mean, prior_concentration
        Beta prior of the ambient fraction, Beta(c m, c (1 - m)) with mean m, concentration c.
    prior_from_empties
        With ``raw``: each cell's prior mean is the empty droplets' mean UMIs / its UMIs, replacing ``prior_mean``.
    seed, device
        Random seed; torch device (``"auto"``: CUDA when present).

    Returns
    -------
    The summary written to ambient.json by the command (profile source, empty-droplet UMIs, prior,
    fraction of counts removed, mean and median ambient fraction, final loss). Writes
    ``layers["decontaminated"]`` (the expected cell-derived counts) and ``obs["ambient_fraction"]``.

    Examples
    --------
    >>> import fatescope as fs
    >>> summary = fs.pp.ambient(adata, raw=raw_droplets, epochs=150)
    >>> adata.obs["ambient_fraction"].median()
    """
    from ..cells import ambient as model
    from ..device import resolve_device, set_threads

    check_cells(adata, layer="counts")
    if not 0 < prior_mean < 1 or prior_concentration <= 0:
        raise InputError(f"prior_mean={prior_mean}, prior_concentration={prior_concentration}: expected a mean in "
                         f"(0, 1) and a positive concentration")
    dev = resolve_device(device)
    set_threads(0)  # deterministic kernels: the same seed gives the same estimate
    counts = adata.layers["counts"]
    samples = adata.obs[sample_key].astype(str).to_numpy() if sample_key in adata.obs else np.full(adata.n_obs, "all")
    prior, empty_umis = None, None
    if raw is not None:
        barcodes = adata.obs["barcode"].astype(str) if "barcode" in adata.obs else adata.obs_names
        prof, d = model.profile_from_empties(raw.X, raw.var_names, adata.var_names, barcodes, raw.obs_names, empty_max_umis)
        empty_umis = {"mean": float(d.mean()), "sd": float(d.std()), "droplets": int(len(d))}
        profiles = {s: prof for s in np.unique(samples)}
        source = "empty droplets of the raw matrix"
        if prior_from_empties:
            prior = model.prior_from_empties(counts, d)
    else:
        profiles = model.profile_from_low_umi(counts, samples, empty_quantile)
        source = f"lowest-UMI {empty_quantile:.0%} of barcodes per {sample_key}"
    params = model.AmbientParams.from_prior(prior_mean, prior_concentration, n_latent=n_latent, epochs=epochs,
                                            batch_size=batch_size, lr=lr, empty_quantile=empty_quantile,
                                            empty_max_umis=empty_max_umis, seed=seed)
    dec, frac, info = model.decontaminate(counts, samples, profiles, params, dev, prior)
    adata.layers["decontaminated"] = dec
    adata.obs["ambient_fraction"] = frac
    removed = 1 - float(dec.sum()) / max(float(counts.sum()), 1.0)
    prior_text = (f"{prior_mean:g} for every cell" if prior is None else
                  "per cell: empty droplets' UMIs / the cell's UMIs (median %.4f)" % float(np.median(prior[0])))
    log.info("ambient: %.1f%% of counts attributed to ambient RNA (profile: %s)", 100 * removed, source)
    return {"profile_source": source, "empty_droplet_umis": empty_umis, "prior_mean_fraction": prior_text,
            "fraction_of_counts_removed": removed, "mean_ambient_fraction": float(np.mean(frac)),
            "median_ambient_fraction": float(np.median(frac)), "final_loss": info["final_loss"]}
