"""``fs.tl.fate_fit``: the MOI-aware fate-effect model on AnnData, returning a ``FateFit``.

A ``FateFit`` owns its model state (the guide's pyro parameters live in ``guide.params``, not in
pyro's global store) and its posterior summaries; fitting and summarising leave the caller's
random streams as they were, so two fits in one process give what two processes give.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)
SUMMARY_ARRAYS = ("theta_mean", "theta_sd", "delta_mean", "delta_sd", "beta_mean", "beta_sd")


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    """A list of labels from a list or a comma-separated string (the CLI's form)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()] or None


@dataclass
class FateFit:
    """A fitted fate model: the fit (``result``: model, guide, losses, settings), the encoding's names and
    the posterior summaries (``posterior``) as DataFrames through the properties below."""

    result: object            # fate.fit.FitResult
    encoding: object          # fate.encoding.Encoding (after ``load``: names and guide -> gene map only)
    posterior: object         # fate.export.FatePosterior
    primary_fate: str
    summary: dict             # the fit's numbers (fit_summary.json)

    @property
    def theta(self) -> pd.DataFrame:
        """Gene effects: ``gene, fate, day, mean, sd`` (fate = non-reference fate, contrast against the reference)."""
        from ..fate.export import long_theta
        return long_theta(self.posterior)

    @property
    def beta(self) -> pd.DataFrame:
        """Guide-level effects beta = theta[gene] + delta[guide]: ``guide, gene, fate, day, mean, sd``."""
        p = self.posterior
        G, F, D = p.beta_mean.shape
        return pd.DataFrame({"guide": np.repeat(p.guides, F * D), "gene": np.repeat(p.guide_genes, F * D),
                             "fate": np.tile(np.repeat(p.fates, D), G), "day": np.tile(p.days, G * F),
                             "mean": p.beta_mean.ravel(), "sd": p.beta_sd.ravel()})

    def gene_daywise(self, fate: str | None = None) -> pd.DataFrame:
        """The table mash reads (gene_daywise_for_mash.csv): ``gene, betahat_<day>.., se_<day>..`` of ``fate``
        (default: the primary fate)."""
        from ..fate.export import gene_table
        return gene_table(self.posterior, self._fate(fate))

    def guide_daywise(self, fate: str | None = None) -> pd.DataFrame:
        """guide_daywise_for_mash.csv: ``guide, gene, betahat_<day>.., se_<day>..`` of ``fate`` (default: primary)."""
        from ..fate.export import guide_table
        return guide_table(self.posterior, self._fate(fate))

    @property
    def loss_curve(self) -> pd.DataFrame:
        """``step, loss_per_cell, phase, likelihood_weight`` of the training run (loss_curve.csv)."""
        r = self.result
        steps = np.arange(1, len(r.losses) + 1)
        phase1 = r.notes.get("phase1_steps", 0)
        phase = 1 + (steps > phase1) + (steps > r.notes.get("first_plateau_step", len(steps)))
        weight = np.where(steps > phase1, r.likelihood_weight, r.notes.get("likelihood_weight_nuisance", r.likelihood_weight))
        return pd.DataFrame({"step": steps, "loss_per_cell": r.losses, "phase": phase, "likelihood_weight": weight})

    def _fate(self, fate: str | None) -> str:
        fate = self.primary_fate if fate is None else fate
        if fate not in self.posterior.fates:
            raise InputError(f"fate {fate!r} is not a non-reference fate of the fit {self.posterior.fates}")
        return fate

    def save(self, path) -> None:
        """Write the fit to ``path`` (fate_model.pt: tensors + JSON, read back with ``torch.load(weights_only=True)``)."""
        import torch

        from ..fate import checkpoint
        ck = checkpoint.checkpoint(self.result, self.encoding)
        ck["summaries"] = {k: torch.from_numpy(np.ascontiguousarray(getattr(self.posterior, k))) for k in SUMMARY_ARRAYS}
        ck["summaries"]["losses"] = torch.from_numpy(np.asarray(self.result.losses, dtype=np.float64))
        ck["fit"] = json.dumps({"summary": self.summary, "primary_fate": self.primary_fate,
                                "num_draws": self.posterior.num_draws}, default=str)
        torch.save(ck, path)

    @classmethod
    def load(cls, path, device: str = "cpu") -> FateFit:
        """A fit written by ``save`` (or the fate-fit stage); a file holding code objects is refused (InputError)."""
        from ..fate import checkpoint
        from ..fate.export import FatePosterior
        from ..fate.fit import FitConfig, FitResult
        ck = checkpoint.read(path, device)
        if "fit" not in ck:
            raise InputError(f"{path}: a fate-model checkpoint without posterior summaries (written before FateFit); "
                             "refit, or redraw with fate.checkpoint.load and fate.export.summarise")
        model, guide, enc = checkpoint.load_parts(ck, device)
        arrays = {k: v.cpu().numpy() for k, v in ck["summaries"].items()}
        info = ck["fit"]
        summary = info["summary"]
        post = FatePosterior(*(arrays[k] for k in SUMMARY_ARRAYS), list(enc.gene_names), list(enc.guide_names),
                             enc.guide_gene_names, list(enc.fates[1:]), list(enc.days), info["num_draws"])
        result = FitResult(model, guide, arrays["losses"], summary["steps"], summary["plateau_step"], ck["likelihood_weight"],
                           summary["seconds"], FitConfig(**ck["config"]), summary["notes"])
        return cls(result, enc, post, info["primary_fate"], summary)


def fate_fit(adata: AnnData, guide_map: pd.DataFrame | None = None, *, num_steps: int = 30000, min_steps: int = 3000,
             batch_size: int = 8192, lr: float = 0.01, lr_final_factor: float = 0.1, clip_norm: float = 10.0,
             plateau_window: int = 500, plateau_rel_tol: float = 2e-4, plateau_patience: int = 2, num_draws: int = 1000,
             guide: Literal["block-lowrank", "structured", "map-meanfield", "meanfield", "lowrank"] = "structured",
             rank: int | None = None, posterior: Literal["laplace", "guide"] = "laplace",
             likelihood_weight: float | None = None, s_alpha: float = 2.0, s_rep: float = 0.5, s_gamma: float = 0.5,
             s_tau: float = 1.0, s_time: float = 0.5, s_guide: float = 0.3, effect_df: float = 3.0, null_sd: float = 0.1,
             s_eff: float = 0.3, k_max: int = 20,
             fate_names: str | Sequence[str] | None = None, reference_fate: str = "EC", primary_fate: str = "MES",
             guide_key: str = "guides", fate_prob_key: str = "fate_probs", day_key: str = "day", rep_key: str = "replicate",
             day_order: str | Sequence[str] | None = None, renormalize: bool = False,
             missing_fate_probs: Literal["error", "drop"] = "error", seed: int = 0,
             device: Literal["auto", "cpu", "cuda"] = "auto") -> FateFit:
    """Fit the MOI-aware fate-effect model (pyro SVI; see docs/fate.md) and summarise its posterior.

    Parameters
    ----------
    adata
        QC'd cells: ``obsm[guide_key]`` (cells x guides), ``obsm[fate_prob_key]`` (fate probabilities),
        ``obs[day_key]``, ``obs[rep_key]``; guide and fate names in ``uns`` (as the qc stage writes).
    guide_map
        ``io.annotations.read_guide_map`` table (indexed by guide_name: gene_name, is_ntc);
        default: ``uns["guide_genes"]`` / ``uns["guide_is_ntc"]``.
    num_steps, min_steps, batch_size, lr, lr_final_factor, clip_norm, plateau_window, plateau_rel_tol, plateau_patience
        Training: at most ``num_steps`` ClippedAdam steps on minibatches, stopped on an ELBO plateau.
    num_draws
        Posterior draws behind the summaries.
    guide, rank, posterior
        Variational family, its rank (lowrank), and where posterior sds come from (joint Laplace or the guide).
    likelihood_weight
        Weight of the soft-label cross-entropy; ``None`` estimates it from the residual dispersion.
    s_alpha, s_rep, s_gamma, s_tau, s_time, s_guide, effect_df
        Prior scales and the t prior's degrees of freedom (0 = Normal).
    null_sd
        Two-group prior of the gene effects: sd (in units of the random-walk scales) of the null group,
        whose weight is learned; 0 = one group (the t prior alone). See docs/fate.md.
    s_eff
        Guide efficiencies: guide g's effect is (1 + e_g) x its gene's effect (plus its deviation delta),
        e_g mean zero within the gene with a learned spread sigma_eff ~ HalfNormal(s_eff); 0 = no
        efficiency term (the spec's additive deviations only). See docs/fate.md.
    k_max
        Cells with more detected guides are dropped.
    fate_names, reference_fate, primary_fate
        Fate columns (list or comma-separated; default ``uns["fate_names"]``), the reference (logit 0)
        and the fate of the primary contrast (the default of ``gene_daywise``/``guide_daywise``).
    guide_key, fate_prob_key, day_key, rep_key, day_order, renormalize, missing_fate_probs
        Where the inputs live in ``adata`` and how they are checked.
    seed
        Seed of every random step (the caller's random state is left unchanged).
    device
        Torch device; ``"auto"`` = CUDA when present.

    Returns
    -------
    The ``FateFit``; ``adata`` is not modified.

    Examples
    --------
    >>> import fatescope as fs
    >>> fit = fs.tl.fate_fit(adata, num_steps=2000, seed=0)
    >>> fit.theta.head()                     # gene, fate, day, mean, sd
    >>> fit.save("fate_model.pt"); fit = fs.tl.FateFit.load("fate_model.pt")
    """
    options = {k: v for k, v in locals().items() if k not in ("adata", "guide_map")}
    return _fate_fit(adata, guide_map, source="adata", **options)


def _fate_fit(adata: AnnData, guide_map: pd.DataFrame | None, *, source: str, num_steps: int, min_steps: int, batch_size: int,
              lr: float, lr_final_factor: float, clip_norm: float, plateau_window: int, plateau_rel_tol: float,
              plateau_patience: int, num_draws: int, guide: str, rank: int | None, posterior: str,
              likelihood_weight: float | None, s_alpha: float, s_rep: float, s_gamma: float, s_tau: float, s_time: float,
              s_guide: float, effect_df: float, null_sd: float, s_eff: float, k_max: int, fate_names, reference_fate: str, primary_fate: str,
              guide_key: str, fate_prob_key: str, day_key: str, rep_key: str, day_order, renormalize: bool,
              missing_fate_probs: str, seed: int, device: str) -> FateFit:
    """``fate_fit`` with ``source`` naming the input in error messages (the CLI passes the file)."""
    from ..fate.encoding import encode
    from ..fate.export import qc_delta_mean, qc_theta_beta_offset, summarise
    from ..fate.fit import FitConfig, fit
    from ..fate.model import Priors
    enc = encode(adata, guide_map, guide_key=guide_key, fate_prob_key=fate_prob_key, day_key=day_key, rep_key=rep_key,
                 fate_names=_names(fate_names), reference_fate=reference_fate, k_max=k_max, renormalize=renormalize,
                 day_order=_names(day_order), missing_fate_probs=missing_fate_probs, source=source)
    if primary_fate not in enc.fates[1:]:
        raise InputError(f"{source}: primary fate {primary_fate!r} is not a non-reference fate {enc.fates[1:]}")
    priors = Priors(s_alpha, s_rep, s_gamma, s_tau, s_time, s_guide, effect_df, null_sd, s_eff)
    config = FitConfig(num_steps=num_steps, min_steps=min_steps, batch_size=batch_size, lr=lr, lr_final_factor=lr_final_factor,
                       clip_norm=clip_norm, plateau_window=plateau_window, plateau_rel_tol=plateau_rel_tol,
                       plateau_patience=plateau_patience, guide=guide, rank=rank, posterior=posterior,
                       likelihood_weight=likelihood_weight, seed=seed, device=device)
    result = fit(enc, priors, config)
    post = summarise(result.guide, result.model.data, enc, num_draws=num_draws, seed=seed)
    point = result.guide.point()
    summary = {
        "n_cells": enc.n_cells, "n_dropped_kmax": enc.n_dropped_kmax, "n_guides": enc.n_guides, "n_genes": enc.n_genes,
        "fates": enc.fates, "reference_fate": enc.fates[0], "primary_contrast": f"{primary_fate}-{enc.fates[0]}",
        "days": enc.days, "replicates": enc.replicates, "mean_burden": enc.mean_burden,
        "steps": result.steps, "plateau_step": result.plateau_step, "converged": result.plateau_step is not None,
        "seconds": round(result.seconds, 2), "likelihood_weight": result.likelihood_weight, "notes": result.notes,
        "final_loss_per_cell": float(np.mean(result.losses[-config.plateau_window:])),
        "point_estimates": {k: np.asarray(point[k].cpu()).tolist() for k in ("alpha", "b", "gamma", "tau", "sigma_time",
                                                                              "sigma_guide", "sigma_eff", "null_frac")
                              if k in point},
        "qc_max_abs_delta_mean": float(qc_delta_mean(post).iloc[:, 1:].abs().to_numpy().max()),
        "qc_max_abs_theta_beta_offset": float(qc_theta_beta_offset(post).iloc[:, 1:].abs().to_numpy().max()),
        "num_draws": post.num_draws,
    }
    return FateFit(result, enc, post, primary_fate, summary)
