"""``fatescope fate-fit``: fit the MOI-aware fate-effect model and export posterior summaries for mash."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..io.outputs import staged_output
from ..io.readers import read_annotations
from ..logs import get_logger
from ..tl._fate_fit import FateFit, _fate_fit, fate_fit
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv", "theta_posterior_summary.npz",
           "delta_posterior_summary.npz", "qc_delta_mean_by_gene.csv", "qc_theta_beta_offset_by_gene.csv",
           "loss_curve.csv", "fate_model.pt", "fit_summary.json")
CELLS = "the qc stage's cells.h5ad"
PACKAGES = ["torch", "pyro-ppl", "anndata", "numpy", "pandas", "scipy"]


def read_guide_map_csv(path: str | None):
    if not path:
        return None
    from ..io.annotations import read_guide_map
    return read_guide_map(path)


def write_outputs(tmp: Path, fit: FateFit) -> None:
    """Every fate-fit file into ``tmp``."""
    import numpy as np

    from ..fate import export
    post = fit.posterior
    for fate in post.fates:
        fit.gene_daywise(fate).to_csv(tmp / f"gene_daywise_for_mash_{fate}.csv", index=False)
        fit.guide_daywise(fate).to_csv(tmp / f"guide_daywise_for_mash_{fate}.csv", index=False)
    fit.gene_daywise().to_csv(tmp / OUTPUTS[0], index=False)
    fit.guide_daywise().to_csv(tmp / OUTPUTS[1], index=False)
    for name, arrays in export.npz_payloads(post).items():
        np.savez(tmp / name, **arrays)
    export.qc_delta_mean(post).to_csv(tmp / OUTPUTS[4], index=False)
    export.qc_theta_beta_offset(post).to_csv(tmp / OUTPUTS[5], index=False)
    fit.loss_curve.to_csv(tmp / OUTPUTS[6], index=False)
    fit.save(tmp / OUTPUTS[7])
    (tmp / OUTPUTS[8]).write_text(json.dumps(fit.summary, indent=2))


def _default(name: str):
    return api_default(fate_fit, name)


def read_fate_cells(input: str, fate_probs: str | None, fate_prob_key: str):
    """The qc stage's cells without their counts (the fate model needs none), with the fate-probs stage's
    probabilities in place of the samples' when given."""
    adata = read_annotations(input, CELLS)
    if fate_probs:
        from .._read import replace_fate_probs
        replace_fate_probs(adata, fate_probs, fate_prob_key)
    return adata


def run(input: str, outdir: str = "fate", guide_map: str | None = None, fate_probs: str | None = None, num_steps: int = _default("num_steps"),
        min_steps: int = _default("min_steps"), batch_size: int = _default("batch_size"), lr: float = _default("lr"),
        lr_final_factor: float = _default("lr_final_factor"), clip_norm: float = _default("clip_norm"),
        plateau_window: int = _default("plateau_window"), plateau_rel_tol: float = _default("plateau_rel_tol"),
        plateau_patience: int = _default("plateau_patience"), num_draws: int = _default("num_draws"),
        guide: str = _default("guide"), rank: int | None = _default("rank"), posterior: str = _default("posterior"),
        likelihood_weight: float | None = _default("likelihood_weight"), s_alpha: float = _default("s_alpha"),
        s_rep: float = _default("s_rep"), s_gamma: float = _default("s_gamma"), s_tau: float = _default("s_tau"),
        s_time: float = _default("s_time"), s_guide: float = _default("s_guide"), effect_df: float = _default("effect_df"),
        null_sd: float = _default("null_sd"), s_eff: float = _default("s_eff"), k_max: int = _default("k_max"),
        fate_names: str | None = _default("fate_names"),
        reference_fate: str = _default("reference_fate"), primary_fate: str = _default("primary_fate"),
        guide_key: str = _default("guide_key"), fate_prob_key: str = _default("fate_prob_key"), day_key: str = _default("day_key"),
        rep_key: str = _default("rep_key"), day_order: str | None = _default("day_order"),
        renormalize: bool = _default("renormalize"), missing_fate_probs: str = _default("missing_fate_probs"),
        seed: int = _default("seed"), device: str = _default("device"), threads: int = 0) -> Path:
    settings = dict(locals())
    from ..device import set_threads
    options = {k: v for k, v in settings.items() if k not in ("input", "outdir", "guide_map", "fate_probs", "threads")}
    set_threads(threads)
    fit = _fate_fit(read_fate_cells(input, fate_probs, fate_prob_key), read_guide_map_csv(guide_map), source=input,
                    **options)
    with staged_output(outdir, "fate-fit", settings, PACKAGES) as tmp:
        write_outputs(tmp, fit)
    summary = fit.summary
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
@click.option("--fate-probs", default=None, type=click.Path(dir_okay=False),
              help="Fate probabilities (cell + one column per fate: the fate-probs stage's fate_probs.csv) used in place "
                   "of the samples' own [default: the AnnData's obsm fate_probs].")
@click.option("--num-steps", default=_default("num_steps"), type=click.IntRange(min=1), help="Maximum SVI steps (training stops earlier on an ELBO plateau).")
@click.option("--min-steps", default=_default("min_steps"), type=click.IntRange(min=0), help="Steps before the plateau rule may stop training.")
@click.option("--batch-size", default=_default("batch_size"), type=click.IntRange(min=1), help="Cells per minibatch.")
@click.option("--lr", default=_default("lr"), type=click.FloatRange(min=0, min_open=True), help="ClippedAdam learning rate.")
@click.option("--lr-final-factor", default=_default("lr_final_factor"), type=click.FloatRange(0, 1, min_open=True),
              help="The learning rate decays geometrically to lr x this factor at --num-steps.")
@click.option("--clip-norm", default=_default("clip_norm"), type=click.FloatRange(min=0, min_open=True), help="ClippedAdam gradient clipping norm.")
@click.option("--plateau-window", default=_default("plateau_window"), type=click.IntRange(min=1), help="Steps per window of the plateau rule.")
@click.option("--plateau-rel-tol", default=_default("plateau_rel_tol"), type=click.FloatRange(min=0),
              help="Plateau: a window's mean loss improves on the previous by less than this fraction.")
@click.option("--plateau-patience", default=_default("plateau_patience"), type=click.IntRange(min=1), help="Consecutive plateau windows needed to stop.")
@click.option("--num-draws", default=_default("num_draws"), type=click.IntRange(min=2), help="Posterior draws for the summaries.")
@click.option("--guide", default=_default("guide"), type=click.Choice(["block-lowrank", "structured", "map-meanfield", "meanfield", "lowrank"]),
              help="Variational family: structured = MAP scales + per-gene day x fate normal blocks (calibrated; see docs/fate.md).")
@click.option("--rank", default=_default("rank"), type=click.IntRange(min=1), help="Rank of --guide lowrank [default: pyro's, ~sqrt(#latents)].")
@click.option("--posterior", default=_default("posterior"), type=click.Choice(["laplace", "guide"]),
              help="Posterior sds: laplace = joint Laplace posterior of all effects at the mode, the random-walk scales "
                   "re-estimated from it (Laplace-EM) and their uncertainty carried into the draws (calibrated; see "
                   "docs/fate.md); guide = the variational guide's own, with the MAP scales.")
@click.option("--likelihood-weight", default=_default("likelihood_weight"), type=click.FloatRange(min=0, min_open=True),
              help="Weight w of the soft-label cross-entropy [default: estimated from the residual dispersion, see docs/fate.md].")
@click.option("--s-alpha", default=_default("s_alpha"), type=click.FloatRange(min=0, min_open=True), help="Prior sd of the day intercepts alpha.")
@click.option("--s-rep", default=_default("s_rep"), type=click.FloatRange(min=0, min_open=True), help="Prior sd of the replicate effects b.")
@click.option("--s-gamma", default=_default("s_gamma"), type=click.FloatRange(min=0, min_open=True), help="Prior sd of the burden slope gamma.")
@click.option("--s-tau", default=_default("s_tau"), type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of tau (day-0 effect scale).")
@click.option("--s-time", default=_default("s_time"), type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of the per-interval sigma_time.")
@click.option("--s-guide", default=_default("s_guide"), type=click.FloatRange(min=0, min_open=True), help="HalfNormal scale of sigma_guide.")
@click.option("--effect-df", default=_default("effect_df"), type=click.FloatRange(min=0),
              help="Degrees of freedom of the multivariate t prior of each gene x fate's effects over days (0 = Normal).")
@click.option("--null-sd", default=_default("null_sd"), type=click.FloatRange(min=0),
              help="Two-group effect prior: sd of the null group (in units of the random-walk scales; its weight "
                   "is learned); 0 = one group, the t prior alone.")
@click.option("--s-eff", default=_default("s_eff"), type=click.FloatRange(min=0),
              help="Guide efficiencies: each guide's effect is (1 + e_g) x its gene's effect, e_g mean zero within "
                   "the gene, spread sigma_eff ~ HalfNormal(this); 0 = no efficiency term (additive deviations only).")
@click.option("--k-max", default=_default("k_max"), type=click.IntRange(min=1), help="Cells with more detected guides are dropped (count reported).")
@click.option("--fate-names", default=_default("fate_names"), help="Comma-separated fate columns [default: the AnnData's uns fate_names].")
@click.option("--reference-fate", default=_default("reference_fate"), help="Reference fate (its logit is 0).")
@click.option("--primary-fate", default=_default("primary_fate"), help="Fate of the primary contrast (primary - reference) in the unsuffixed mash tables.")
@click.option("--guide-key", default=_default("guide_key"), help="obsm key of the cells x guides matrix.")
@click.option("--fate-prob-key", default=_default("fate_prob_key"), help="obsm key of the fate probabilities.")
@click.option("--day-key", default=_default("day_key"), help="obs column of the day.")
@click.option("--rep-key", default=_default("rep_key"), help="obs column of the replicate.")
@click.option("--day-order", default=_default("day_order"), help="Comma-separated day labels in time order [default: by the number in the label].")
@click.option("--renormalize/--no-renormalize", default=_default("renormalize"), help="Rescale fate probabilities that do not sum to 1 (else an error).")
@click.option("--missing-fate-probs", default=_default("missing_fate_probs"), type=click.Choice(["error", "drop"]),
              help="Cells without fate probabilities (a fate table covering part of a sample): an error, or left out "
                   "with their count logged.")
@click.option("--seed", default=_default("seed"), type=click.IntRange(min=0), help="Seed of every random step.")
@click.option("--device", default=_default("device"), type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device; auto = CUDA when present.")
@click.option("--threads", default=0, type=click.IntRange(min=0), help="CPU threads for torch (0 = torch's default).")
def command(**kwargs) -> None:
    run(**kwargs)
