"""``fatescope fate-fit``: fit the MOI-aware fate-effect model and export posterior summaries for mash."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..io.outputs import staged_output
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv", "theta_posterior_summary.npz",
           "delta_posterior_summary.npz", "qc_delta_mean_by_gene.csv", "qc_theta_beta_offset_by_gene.csv",
           "loss_curve.csv", "fate_model.pt", "fit_summary.json")
PACKAGES = ["torch", "pyro-ppl", "anndata", "numpy", "pandas", "scipy"]


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def read_cells(path: str):
    from ..io.readers import read_anndata
    return read_anndata(path, "the qc stage's cells.h5ad")


def read_guide_map_csv(path: str | None):
    if not path:
        return None
    from ..io.annotations import read_guide_map
    return read_guide_map(path)


def write_outputs(tmp: Path, post, result, enc, primary_fate: str) -> dict:
    """Every fate-fit file into ``tmp``; returns the summary dict written as fit_summary.json."""
    import numpy as np
    import pandas as pd

    from ..fate import checkpoint, export
    for fate in post.fates:
        export.gene_table(post, fate).to_csv(tmp / f"gene_daywise_for_mash_{fate}.csv", index=False)
        export.guide_table(post, fate).to_csv(tmp / f"guide_daywise_for_mash_{fate}.csv", index=False)
    export.gene_table(post, primary_fate).to_csv(tmp / OUTPUTS[0], index=False)
    export.guide_table(post, primary_fate).to_csv(tmp / OUTPUTS[1], index=False)
    for name, arrays in export.npz_payloads(post).items():
        np.savez(tmp / name, **arrays)
    export.qc_delta_mean(post).to_csv(tmp / OUTPUTS[4], index=False)
    export.qc_theta_beta_offset(post).to_csv(tmp / OUTPUTS[5], index=False)
    steps = np.arange(1, len(result.losses) + 1)
    phase = 1 + (steps > result.notes.get("phase1_steps", 0)) + (steps > result.notes.get("first_plateau_step", len(steps)))
    weight = np.where(steps > result.notes.get("phase1_steps", 0), result.likelihood_weight,
                      result.notes.get("likelihood_weight_nuisance", result.likelihood_weight))
    pd.DataFrame({"step": steps, "loss_per_cell": result.losses, "phase": phase, "likelihood_weight": weight}).to_csv(
        tmp / OUTPUTS[6], index=False)
    checkpoint.save(tmp / OUTPUTS[7], result, enc)
    point = result.guide.point()
    summary = {
        "n_cells": enc.n_cells, "n_dropped_kmax": enc.n_dropped_kmax, "n_guides": enc.n_guides, "n_genes": enc.n_genes,
        "fates": enc.fates, "reference_fate": enc.fates[0], "primary_contrast": f"{primary_fate}-{enc.fates[0]}",
        "days": enc.days, "replicates": enc.replicates, "mean_burden": enc.mean_burden,
        "steps": result.steps, "plateau_step": result.plateau_step, "converged": result.plateau_step is not None,
        "seconds": round(result.seconds, 2), "likelihood_weight": result.likelihood_weight, "notes": result.notes,
        "final_loss_per_cell": float(np.mean(result.losses[-result.config.plateau_window:])),
        "point_estimates": {k: np.asarray(point[k].cpu()).tolist() for k in ("alpha", "b", "gamma", "tau", "sigma_time", "sigma_guide")
                            if k in point},
        "qc_max_abs_delta_mean": float(export.qc_delta_mean(post).iloc[:, 1:].abs().to_numpy().max()),
        "qc_max_abs_theta_beta_offset": float(export.qc_theta_beta_offset(post).iloc[:, 1:].abs().to_numpy().max()),
        "num_draws": post.num_draws,
    }
    (tmp / OUTPUTS[8]).write_text(json.dumps(summary, indent=2))
    return summary


def run(input: str, outdir: str = "fate", guide_map: str | None = None, num_steps: int = 30000, min_steps: int = 3000,
        batch_size: int = 8192, lr: float = 0.01, lr_final_factor: float = 0.1, clip_norm: float = 10.0,
        plateau_window: int = 500, plateau_rel_tol: float = 2e-4, plateau_patience: int = 2, num_draws: int = 1000,
        guide: str = "structured", rank: int | None = None, posterior: str = "laplace", likelihood_weight: float | None = None,
        s_alpha: float = 2.0, s_rep: float = 0.5, s_gamma: float = 0.5, s_tau: float = 1.0, s_time: float = 0.5,
        s_guide: float = 0.3, effect_df: float = 3.0, k_max: int = 20, fate_names: str | None = None, reference_fate: str = "EC",
        primary_fate: str = "MES", guide_key: str = "guides", fate_prob_key: str = "fate_probs", day_key: str = "day",
        rep_key: str = "replicate", day_order: str | None = None, renormalize: bool = False,
        missing_fate_probs: str = "error", seed: int = 0, device: str = "auto", threads: int = 0) -> Path:
    from ..device import set_threads
    from ..fate.encoding import encode
    from ..fate.export import summarise
    from ..fate.fit import FitConfig, fit
    from ..fate.model import Priors
    settings = {k: v for k, v in locals().items() if k not in ("set_threads", "encode", "summarise", "FitConfig", "fit", "Priors")}
    set_threads(threads)
    adata = read_cells(input)
    enc = encode(adata, read_guide_map_csv(guide_map), guide_key=guide_key, fate_prob_key=fate_prob_key, day_key=day_key,
                 rep_key=rep_key, fate_names=_split(fate_names), reference_fate=reference_fate, k_max=k_max,
                 renormalize=renormalize, day_order=_split(day_order), missing_fate_probs=missing_fate_probs, source=input)
    del adata
    if primary_fate not in enc.fates[1:]:
        raise InputError(f"{input}: primary fate {primary_fate!r} is not a non-reference fate {enc.fates[1:]}")
    priors = Priors(s_alpha, s_rep, s_gamma, s_tau, s_time, s_guide, effect_df)
    config = FitConfig(num_steps=num_steps, min_steps=min_steps, batch_size=batch_size, lr=lr, lr_final_factor=lr_final_factor,
                       clip_norm=clip_norm, plateau_window=plateau_window, plateau_rel_tol=plateau_rel_tol,
                       plateau_patience=plateau_patience, guide=guide, rank=rank, posterior=posterior, likelihood_weight=likelihood_weight,
                       seed=seed, device=device)
    result = fit(enc, priors, config)
    post = summarise(result.guide, result.model.data, enc, num_draws=num_draws, seed=seed)
    with staged_output(outdir, "fate-fit", settings, PACKAGES) as tmp:
        summary = write_outputs(tmp, post, result, enc, primary_fate)
    log.info("fate-fit: %d cells (%d dropped, > K_max), %d steps (plateau %s), outputs in %s", summary["n_cells"],
             summary["n_dropped_kmax"], summary["steps"], summary["plateau_step"], outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("fate-fit", help="Fit the MOI-aware fate-effect model (pyro SVI: gene-by-day random walk, guide deviations, "
                                "day/replicate/burden nuisance terms, soft-label cross-entropy) and export posterior "
                                "summaries for mash. Uses CUDA when present.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="QC'd AnnData (the qc stage's cells.h5ad).")
@outdir_option("fate")
@click.option("--guide-map", default=None, type=click.Path(dir_okay=False),
              help="Guide map CSV (guide_name, gene_name, is_ntc) [default: the AnnData's uns guide_genes / guide_is_ntc].")
@click.option("--num-steps", default=30000, type=click.IntRange(min=1), help="Maximum SVI steps (training stops earlier on an ELBO plateau).")
@click.option("--min-steps", default=3000, type=click.IntRange(min=0), help="Steps before the plateau rule may stop training.")
@click.option("--batch-size", default=8192, type=click.IntRange(min=1), help="Cells per minibatch.")
@click.option("--lr", default=0.01, type=click.FloatRange(min=0, min_open=True), help="ClippedAdam learning rate.")
@click.option("--lr-final-factor", default=0.1, type=click.FloatRange(0, 1, min_open=True),
              help="The learning rate decays geometrically to lr x this factor at --num-steps.")
@click.option("--clip-norm", default=10.0, type=click.FloatRange(min=0, min_open=True), help="ClippedAdam gradient clipping norm.")
@click.option("--plateau-window", default=500, type=click.IntRange(min=1), help="Steps per window of the plateau rule.")
@click.option("--plateau-rel-tol", default=2e-4, type=click.FloatRange(min=0),
              help="Plateau: a window's mean loss improves on the previous by less than this fraction.")
@click.option("--plateau-patience", default=2, type=click.IntRange(min=1), help="Consecutive plateau windows needed to stop.")
@click.option("--num-draws", default=1000, type=click.IntRange(min=2), help="Posterior draws for the summaries.")
@click.option("--guide", default="structured", type=click.Choice(["block-lowrank", "structured", "map-meanfield", "meanfield", "lowrank"]),
              help="Variational family: structured = MAP scales + per-gene day x fate normal blocks (calibrated; see docs/fate.md).")
@click.option("--rank", default=None, type=click.IntRange(min=1), help="Rank of --guide lowrank [default: pyro's, ~sqrt(#latents)].")
@click.option("--posterior", default="laplace", type=click.Choice(["laplace", "guide"]),
              help="Posterior sds: laplace = joint Laplace covariance of all effects around the guide's mean "
                   "(calibrated; see docs/fate.md); guide = the variational guide's own.")
@click.option("--likelihood-weight", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Weight w of the soft-label cross-entropy [default: estimated from the residual dispersion, see docs/fate.md].")
@click.option("--s-alpha", default=2.0, type=click.FloatRange(min=0, min_open=True), help="Prior sd of the day intercepts alpha.")
@click.option("--s-rep", default=0.5, type=click.FloatRange(min=0, min_open=True), help="Prior sd of the replicate effects b.")
@click.option("--s-gamma", default=0.5, type=click.FloatRange(min=0, min_open=True), help="Prior sd of the burden slope gamma.")
@click.option("--s-tau", default=1.0, type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of tau (day-0 effect scale).")
@click.option("--s-time", default=0.5, type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of the per-interval sigma_time.")
@click.option("--s-guide", default=0.3, type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of sigma_guide.")
@click.option("--effect-df", default=3.0, type=click.FloatRange(min=0),
              help="Degrees of freedom of the multivariate t prior of each gene x fate's effects over days (0 = Normal).")
@click.option("--k-max", default=20, type=click.IntRange(min=1), help="Cells with more detected guides are dropped (count reported).")
@click.option("--fate-names", default=None, help="Comma-separated fate columns [default: the AnnData's uns fate_names].")
@click.option("--reference-fate", default="EC", help="Reference fate (its logit is 0).")
@click.option("--primary-fate", default="MES", help="Fate of the primary contrast (primary - reference) in the unsuffixed mash tables.")
@click.option("--guide-key", default="guides", help="obsm key of the cells x guides matrix.")
@click.option("--fate-prob-key", default="fate_probs", help="obsm key of the fate probabilities.")
@click.option("--day-key", default="day", help="obs column of the day.")
@click.option("--rep-key", default="replicate", help="obs column of the replicate.")
@click.option("--day-order", default=None, help="Comma-separated day labels in time order [default: by the number in the label].")
@click.option("--renormalize/--no-renormalize", default=False, help="Rescale fate probabilities that do not sum to 1 (else an error).")
@click.option("--missing-fate-probs", default="error", type=click.Choice(["error", "drop"]),
              help="Cells without fate probabilities (a fate table covering part of a sample): an error, or left out "
                   "with their count logged.")
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Seed of every random step.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device; auto = CUDA when present.")
@click.option("--threads", default=0, type=click.IntRange(min=0), help="CPU threads for torch (0 = torch's default).")
def command(**kwargs) -> None:
    run(**kwargs)
