"""``fs.tl.integrate``: SCALEX-style VAE, Harmony on its latent (default) or on PCA; the fitted model
(``IntegrationModel``) maps new cells and batches into it without retraining, and saves and loads."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from ..cells.checks import check_cells
from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)


class IntegrationModel:
    """A trained SCALEX-style VAE and what mapping new cells into it needs.

    Made by ``fs.tl.integrate`` or ``IntegrationModel.load``. With ``method="harmony",
    harmony_on="pca"`` no network is trained: ``vae`` is ``None`` and the model cannot ``project``
    or ``save`` (Harmony keeps no model of the batches it corrects).

    Attributes
    ----------
    vae
        The ``ScalexVAE`` (torch module) on ``device``, or ``None``.
    genes
        The model's genes (the HVGs it was trained on), in input order.
    domains
        Batches with a decoder batch norm: the training batches, then projected ones.
    maxabs
        Max-abs scales of the cells last prepared (per batch, or ``"*"`` with ``scale="global"``).
    params
        The ``ScalexParams`` of training (``chunk_size`` as last used).
    info
        Run facts recorded in checkpoint/config.json: method, layer, device and training
        (epochs, iterations, best loss, loss history), or the batches of the last projection.
    """

    def __init__(self, vae, genes: list[str], domains: list[str], maxabs: dict[str, np.ndarray], params, info: dict,
                 device):
        self.vae, self.genes, self.domains, self.maxabs = vae, list(genes), list(domains), dict(maxabs)
        self.params, self.info, self.device = params, dict(info), device

    def __repr__(self) -> str:
        kind = "no VAE (Harmony on PCA)" if self.vae is None else f"VAE {len(self.genes)} genes -> {self.params.n_latent}"
        return f"IntegrationModel({kind}, batches {self.domains})"

    def _require_vae(self, action: str) -> None:
        if self.vae is None:
            raise InputError(f"cannot {action}: this integration trained no model (method='harmony', harmony_on='pca'); "
                             f"use harmony_on='latent' or method='scalex'")

    def project(self, adata: AnnData, *, batch_key: str = "batch", layer: str = "auto", impute_batch: str | None = None,
                chunk_size: int | None = None) -> np.ndarray:
        """Map new cells into the model without retraining (SCALEX's online mode).

        The encoder is unchanged; each batch not yet in ``domains`` gets its own decoder batch
        norm, fitted on its cells (so ``impute_batch`` can name it), and is added to ``domains``.

        Parameters
        ----------
        adata
            New cells x genes with raw counts in ``layer``; genes missing from it count as 0.
        batch_key
            obs column of the batch.
        layer
            Counts layer; ``"auto"``: 'decontaminated' when present, else 'counts'.
        impute_batch
            Also write ``obsm["X_impute"]``: expression decoded through this batch's decoder.
        chunk_size
            Cells per chunk of the transform; ``None``: the model's.

        Returns
        -------
        The latent (cells x latent dimensions, float32), also written to ``adata.obsm["X_latent"]``;
        with ``impute_batch``, ``obsm["X_impute"]`` and ``uns["impute_genes"]``, ``uns["impute_batch"]``.

        Examples
        --------
        >>> import fatescope as fs
        >>> model = fs.tl.IntegrationModel.load("results/integrate/checkpoint")
        >>> latent = model.project(new_cells)
        """
        from ..cells.integrate import fit_new_decoder_norms, prepare, transform
        from ..device import set_threads

        self._require_vae("project")
        layer = check_cells(adata, batch_key=batch_key, layer=layer, min_cells=1)
        params = self.params if chunk_size is None else replace(self.params, chunk_size=chunk_size)
        batches = adata.obs[batch_key].astype(str).to_numpy()
        reference = list(self.domains)
        new = [b for b in sorted(np.unique(batches)) if b not in reference]
        domains = reference + new
        _check_impute(impute_batch, domains, "the model or the data")
        set_threads(0)  # deterministic kernels: the same cells give the same latent
        data = prepare(adata.layers[layer], adata.var_names, batches, params, hvg=self.genes,
                       maxabs={k: v for k, v in self.maxabs.items() if k == "*"})
        latent = transform(self.vae, data, params, self.device)
        fit_new_decoder_norms(self.vae, data, latent, domains, new, params.chunk_size, self.device)
        self.domains, self.maxabs, self.params = domains, data.maxabs, params
        self.info = {"layer": layer, "device": str(self.device), "projected_batches": new, "reference_batches": reference}
        adata.obsm["X_latent"] = latent
        if impute_batch:
            self._impute(adata, latent, impute_batch)
        log.info("integrate: %d cells projected (new batches: %s)", adata.n_obs, ", ".join(new) or "none")
        return latent

    def _impute(self, adata: AnnData, latent: np.ndarray, batch: str) -> None:
        """HVGs only, so kept beside the full gene matrix rather than as a layer."""
        from ..cells.integrate import impute

        values = impute(self.vae, latent, self.domains.index(batch), self.params.chunk_size, self.device)
        adata.obsm["X_impute"] = values
        adata.uns["impute_genes"] = np.asarray(self.genes, dtype=str)
        adata.uns["impute_batch"] = batch

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``model.pt`` (weights, genes, batches, scales; no code objects) and ``config.json``
        into ``folder`` (the integrate stage's ``checkpoint/``); returns the folder."""
        from ..cells.integrate import save_checkpoint

        self._require_vae("save")
        save_checkpoint(Path(folder), self.vae, self.genes, self.maxabs, self.domains, self.params, self.info)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, *, device: Literal["auto", "cpu", "cuda"] = "auto") -> IntegrationModel:
        """The model saved in ``folder`` (holding model.pt), read with ``torch.load(weights_only=True)``:
        a file that is not our checkpoint, or holds code objects, is an InputError."""
        from ..cells.integrate import load_checkpoint
        from ..device import resolve_device

        dev = resolve_device(device)
        vae, state = load_checkpoint(Path(folder), dev)
        return cls(vae, state["genes"], state["domains"], state["maxabs"], state["params"], {}, dev)


def _check_impute(batch: str | None, domains: list[str], where: str) -> None:
    if batch and batch not in domains:
        raise InputError(f"impute_batch={batch!r}: not a batch of {where} (batches: {', '.join(domains)})")


def integrate(adata: AnnData, *, method: Literal["scalex", "harmony"] = "harmony", batch_key: str = "batch",
              layer: str = "auto", n_top_features: int = 2000, target_sum: float = 1e4,
              scale: Literal["batch", "global"] = "batch", hidden: int = 1024, latent_dim: int = 10, batch_size: int = 64,
              lr: float = 2e-4, weight_decay: float = 5e-4, kl_weight: float = 0.5, max_iteration: int = 30000,
              max_epochs: int = 400, patience: int = 10, transform_norm: Literal["batch", "running"] = "batch",
              chunk_size: int = 20000, seed: int = 124, device: Literal["auto", "cpu", "cuda"] = "auto",
              impute_batch: str | None = None, harmony_on: Literal["pca", "latent"] = "latent", n_pcs: int = 50,
              harmony_theta: float = 2.0) -> IntegrationModel:
    """Integrate batches: a SCALEX-style VAE (batch-free encoder, one decoder batch norm per batch),
    by default followed by Harmony on its latent, or Harmony on the PCA of the HVGs.

    Torch is switched to deterministic kernels (``fatescope.device.set_threads``): the same seed,
    device and thread count give the same bits as ``fatescope integrate``.

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``layer`` and the batch in ``obs[batch_key]``; modified in place.
    method
        ``"harmony"``: Harmony on the VAE's latent (``harmony_on="latent"``) or on PCA;
        ``"scalex"``: the VAE's latent alone.
    batch_key
        obs column of the batch.
    layer
        Counts layer; ``"auto"``: 'decontaminated' when present (the ambient stage ran), else 'counts'.
    n_top_features, target_sum, scale
        HVGs (batch-aware Seurat rule), counts per cell after normalisation, max-abs scaling per
        batch or over all cells.
    hidden, latent_dim, batch_size, lr, weight_decay, kl_weight
        Encoder hidden units, latent dimensions, cells per minibatch, Adam learning rate and weight
        decay, weight of the KL term (SCALEX: 0.5).
    max_iteration, max_epochs, patience
        Training stops at whichever of the minibatch or epoch limits comes first, or after
        ``patience`` epochs without a lower loss (best weights kept).
    transform_norm
        Encoder batch norm at transform: each batch's own statistics (SCALEX) or the running averages.
    chunk_size, seed, device
        Cells per chunk of the transform; random seed; torch device (``"auto"``: CUDA when present).
    impute_batch
        Also write ``obsm["X_impute"]``: expression decoded through this batch's decoder (needs the VAE).
    harmony_on, n_pcs, harmony_theta
        With ``method="harmony"``: correct the VAE's latent or the first ``n_pcs`` PCs; Harmony's
        diversity penalty.

    Returns
    -------
    The fitted ``IntegrationModel`` (``.project(new_adata)``, ``.save(folder)``); for
    ``harmony_on="pca"`` its ``vae`` is ``None``. Writes ``obsm["X_latent"]`` (the integrated
    embedding), ``obsm["X_scalex"]`` (the VAE's latent, under Harmony on it) or ``obsm["X_pca"]``
    (Harmony on PCA), and with ``impute_batch`` ``obsm["X_impute"]``, ``uns["impute_genes"]``,
    ``uns["impute_batch"]``.

    Examples
    --------
    >>> import fatescope as fs
    >>> model = fs.tl.integrate(adata, batch_key="batch")
    >>> model.save("integrate/checkpoint")
    >>> latent = model.project(new_batch)
    """
    from ..cells.harmony import HarmonyParams, harmonize
    from ..cells.integrate import ScalexParams, prepare, train, transform
    from ..cells.preprocess import hvg_pca
    from ..device import resolve_device, set_threads

    if method not in ("scalex", "harmony"):
        raise InputError(f"method={method!r}: expected 'scalex' or 'harmony'")
    if harmony_on not in ("pca", "latent"):
        raise InputError(f"harmony_on={harmony_on!r}: expected 'pca' or 'latent'")
    layer = check_cells(adata, batch_key=batch_key, layer=layer, min_cells=2, min_genes=2)
    dev = resolve_device(device)
    set_threads(0)  # deterministic kernels: the same seed gives the same latent
    params = ScalexParams(n_top_features=n_top_features, target_sum=target_sum, scale=scale, n_hidden=hidden,
                          n_latent=latent_dim, batch_size=batch_size, lr=lr, weight_decay=weight_decay, beta=kl_weight,
                          max_iteration=max_iteration, max_epochs=max_epochs, patience=patience,
                          transform_norm=transform_norm, chunk_size=chunk_size, seed=seed)
    batches = adata.obs[batch_key].astype(str).to_numpy()
    domains = sorted(np.unique(batches))
    info = {"method": method, "layer": layer, "device": str(dev)}
    if method == "harmony" and harmony_on == "pca":
        if impute_batch:
            log.warning("integrate: impute_batch=%r ignored: Harmony on PCA trains no decoder", impute_batch)
        base, keep = hvg_pca(adata.layers[layer], batches, n_top_features, target_sum, n_pcs, chunk_size)
        adata.obsm["X_pca"] = base
        model = IntegrationModel(None, adata.var_names[keep], domains, {}, params, info, dev)
    else:
        _check_impute(impute_batch, domains, "the data")
        data = prepare(adata.layers[layer], adata.var_names, batches, params)
        vae, fit = train(data, domains, params, dev)
        base = transform(vae, data, params, dev)
        model = IntegrationModel(vae, data.genes, domains, data.maxabs, params, {**info, **fit}, dev)
        adata.obsm["X_scalex" if method == "harmony" else "X_latent"] = base
    if method == "harmony":
        adata.obsm["X_latent"] = harmonize(base, batches, HarmonyParams(theta=harmony_theta), seed=seed, device=dev)
    if impute_batch and model.vae is not None:
        model._impute(adata, base, impute_batch)
    log.info("integrate (%s): %d cells, latent %s", method, adata.n_obs, adata.obsm["X_latent"].shape)
    return model


def with_reference(reference: AnnData, query: AnnData) -> AnnData:
    """Reference cells (an earlier integrate run's output) then projected ``query`` cells in one AnnData
    (genes and obsm keys both hold), ``obs["projection"]`` telling which; ``X_impute`` of the query
    is kept with NaN rows for the reference."""
    imputed = query.obsm.get("X_impute")
    reference.obs["projection"] = "reference"
    query.obs["projection"] = "query"
    both = ad.concat([reference, query], join="inner", merge="same", uns_merge="first")
    both.obs["projection"] = pd.Categorical(both.obs["projection"])
    if imputed is not None:
        full = np.full((both.n_obs, imputed.shape[1]), np.nan, dtype=np.float32)
        full[reference.n_obs:] = imputed
        both.obsm["X_impute"] = full
        both.uns["impute_genes"] = query.uns["impute_genes"]
        both.uns["impute_batch"] = query.uns["impute_batch"]
    return both
