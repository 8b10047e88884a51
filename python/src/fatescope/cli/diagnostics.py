"""``fatescope diagnostics``: held-out cross-entropy, permutation negative control, known-regulator sanity."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..io.outputs import staged_output
from ..io.readers import read_table
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("diagnostics.json", "split_counts.csv", "permutation_hits.csv", "sanity.csv")


def run(input: str, model: str, theta_summary: str, outdir: str = "diagnostics", guide_map: str | None = None,
        fate_probs: str | None = None,
        known_regulators: str | None = None, test_frac: float = 0.2, burden_bins: int = 5, lfsr: float = 0.05,
        refit_steps: int = 0, permutation: bool = True, seed: int = 0, device: str = "auto", threads: int = 0) -> Path:
    import numpy as np
    import pandas as pd
    import torch

    from ..device import set_threads

    from ..fate import diagnostics as dg
    from ..fate.encoding import encode
    from ..fate.export import summarise
    from ..fate.fit import FitConfig, fit, fit_nuisance
    from ..fate.model import FateData, Priors
    from .eval_recovery import read_theta_summary
    from .fate_fit import read_fate_cells, read_guide_map_csv
    settings = dict(input=input, model=model, theta_summary=theta_summary, guide_map=guide_map, fate_probs=fate_probs,
                    known_regulators=known_regulators,
                    test_frac=test_frac, burden_bins=burden_bins, lfsr=lfsr, refit_steps=refit_steps, permutation=permutation,
                    seed=seed, device=device, threads=threads)
    set_threads(threads)
    from ..fate.checkpoint import read as read_checkpoint
    ck = read_checkpoint(model)
    known = None
    if known_regulators:
        known = read_table(known_regulators, "a CSV of gene, expected_sign")
    enc_opts = dict(ck.get("encode", {}))
    enc_opts["fate_names"] = enc_opts.get("fate_names")
    cells = read_fate_cells(input, fate_probs, enc_opts.get("fate_prob_key", "fate_probs"))
    enc = encode(cells, read_guide_map_csv(guide_map), source=input, **enc_opts)
    # the weight is re-estimated per refit (when it was estimated in the fit): permuted data have a larger dispersion
    config = FitConfig(**{**ck["config"], "seed": seed, "device": device,
                          **({"num_steps": refit_steps} if refit_steps > 0 else {})})
    config = dataclasses.replace(config, min_steps=min(config.min_steps, config.num_steps))
    priors = Priors(**ck["priors"])

    # held-out cross-entropy, full vs nuisance-only, on a day x replicate stratified split
    train, test = dg.stratified_split(enc, test_frac, seed)
    counts = dg.split_counts(enc, train, test)
    full = fit(enc.subset(train), priors, config)
    ce_full = dg.held_out_cross_entropy(full, enc.subset(test), use_guides=True)
    nuis = fit_nuisance(FateData.from_encoding(enc.subset(train)))
    tdata = FateData.from_encoding(enc.subset(test))
    from ..fate.fit import nuisance_logits
    from ..fate.model import soft_cross_entropy
    with torch.no_grad():
        idx = torch.arange(tdata.n_cells)
        ce_nuis = float(-soft_cross_entropy(nuisance_logits(idx, tdata, **nuis), tdata.probs).mean())
    report = {"held_out": {"n_train": len(train), "n_test": len(test), "cross_entropy_full": ce_full,
                           "cross_entropy_nuisance_only": ce_nuis, "improvement": ce_nuis - ce_full,
                           "min_test_cells_per_stratum": int(counts["n_test"].min())}}

    # hits of the real fit (1-by-1 posteriors, Bonferroni over days) and of the permutation control
    real = read_theta_summary(theta_summary)
    fates = list(dict.fromkeys(real["fate"]))
    genes = list(dict.fromkeys(real["gene"]))
    days = list(dict.fromkeys(real["day"]))
    shape = (len(genes), len(fates), len(days))
    real_mean, real_sd = real["mean"].to_numpy().reshape(shape), real["sd"].to_numpy().reshape(shape)
    real_hits = dg.anyday_hits(real_mean, real_sd, lfsr)
    report["hits"] = {"lfsr": lfsr, "rule": "Bonferroni over days of the 1-by-1 normal lfsr", "real": int(real_hits.sum()),
                      "real_by_fate": {f: int(real_hits[:, i].sum()) for i, f in enumerate(fates)}}
    perm_table = pd.DataFrame(columns=["gene", "fate"])
    if permutation:
        permuted = dg.permute_guides(enc, burden_bins, seed)
        perm_fit = fit(permuted, priors, config)
        post = summarise(perm_fit.guide, perm_fit.model.data, permuted, num_draws=500, seed=seed)
        perm_hits = dg.anyday_hits(post.theta_mean, post.theta_sd, lfsr)
        gi, fi = np.nonzero(perm_hits)
        perm_table = pd.DataFrame({"gene": [post.genes[i] for i in gi], "fate": [post.fates[i] for i in fi]})
        report["hits"]["permuted"] = int(perm_hits.sum())
        report["permutation"] = {"strata": "day x replicate x burden bin", "burden_bins": burden_bins,
                                 "steps": perm_fit.steps, "plateau_step": perm_fit.plateau_step}
    sanity = pd.DataFrame()
    if known is not None:
        primary = ck["names"]["fates"][1] if len(fates) else None
        f = fates.index(primary) if primary in fates else 0
        sanity = dg.sanity_table(known, genes, real_mean[:, f], real_sd[:, f], days, known_regulators)
        in_model = sanity[sanity["in_model"]] if len(sanity) else sanity
        report["sanity"] = {"contrast": f"{fates[f]}-{ck['names']['fates'][0]}", "n_known": len(sanity),
                            "n_in_model": int(len(in_model)),
                            "n_agree": int(in_model["agrees"].sum()) if len(in_model) else 0,
                            "n_significant_agree": int(in_model["significant_agreement"].sum()) if len(in_model) else 0}
    with staged_output(outdir, "diagnostics", settings, ["torch", "pyro-ppl", "numpy", "pandas", "scipy"]) as tmp:
        (tmp / OUTPUTS[0]).write_text(json.dumps(report, indent=2))
        counts.to_csv(tmp / OUTPUTS[1], index=False)
        perm_table.to_csv(tmp / OUTPUTS[2], index=False)
        sanity.to_csv(tmp / OUTPUTS[3], index=False)
    log.info("diagnostics: held-out CE full %.4f vs nuisance-only %.4f; hits real %d, permuted %s", ce_full, ce_nuis,
             report["hits"]["real"], report["hits"].get("permuted"))
    return Path(outdir) / OUTPUTS[0]


@stage_command("diagnostics", help="Diagnostics of the fate model: held-out cross-entropy of the full vs the nuisance-only "
                                   "model on a day x replicate stratified split, a permutation negative control "
                                   "(guide sets shuffled within day x replicate x burden-bin strata, refit), and the "
                                   "signs of known regulators.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="QC'd AnnData (the qc stage's cells.h5ad).")
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="fate-fit's fate_model.pt (settings for the refits).")
@click.option("--theta-summary", required=True, type=click.Path(dir_okay=False), help="fate-fit's theta_posterior_summary.npz.")
@outdir_option("diagnostics")
@click.option("--guide-map", default=None, type=click.Path(dir_okay=False),
              help="Guide map CSV (guide_name, gene_name, is_ntc) [default: the AnnData's uns].")
@click.option("--fate-probs", default=None, type=click.Path(dir_okay=False),
              help="The fate probabilities fate-fit was given (--fate-probs of fate-fit) [default: the AnnData's].")
@click.option("--known-regulators", default=None, type=click.Path(dir_okay=False),
              help="CSV gene, expected_sign (+1/-1) of the primary contrast [default: no sanity table].")
@click.option("--test-frac", default=0.2, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Fraction of every day x replicate stratum held out.")
@click.option("--burden-bins", default=5, type=click.IntRange(min=1), help="Quantile bins of guide burden for the permutation strata.")
@click.option("--lfsr", default=0.05, type=click.FloatRange(0, 1), help="Threshold on the Bonferroni-over-days lfsr for hit counts.")
@click.option("--refit-steps", default=0, type=click.IntRange(min=0), help="Maximum steps of each refit (0 = the fit's num_steps).")
@click.option("--permutation/--no-permutation", default=True, help="Run the permutation negative control (one extra fit).")
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Seed of the split, the permutation and the refits.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device; auto = CUDA when present.")
@click.option("--threads", default=0, type=click.IntRange(min=0), help="CPU threads for torch (0 = torch's default).")
def command(**kwargs) -> None:
    run(**kwargs)
