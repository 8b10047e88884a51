"""``fatescope rank``: daywise and any-day hit calls, ranked, and the comparison of the two mash modes."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.mash_tables import read_posterior_table
from ..io.outputs import staged_output
from ..logs import get_logger
from ..shrink.rank import CORRECTIONS, CallThresholds, compare_modes, rank_hits
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("hits_ranked.csv", "mash_mode_comparison.csv")
PACKAGES = ["numpy", "scipy", "pandas"]
ONE_MODE_BLANK = ["calls_enriched", "overlap", "union", "jaccard", "sign_concordance", "postmean_correlation"]


def _aligned(path_a: str, a, path_b: str, b):
    """Restrict two gene tables to their shared genes in the first table's order; days must match."""
    (ids_a, days_a, fa), (ids_b, days_b, fb) = a, b
    if days_a != days_b:
        raise InputError(f"{path_a} and {path_b} have different days: {days_a} vs {days_b}")
    pos = pd.Index(ids_b["gene"]).get_indexer(ids_a["gene"])
    keep = pos >= 0
    if not keep.any():
        raise InputError(f"{path_a} and {path_b} share no genes")
    return ({k: v[keep] for k, v in fa.items()}, {k: v[pos[keep]] for k, v in fb.items()})


def run(conservative: str, outdir: str = "rank", enriched: str | None = None, hits_mode: str = "conservative",
        mash_lfsr_thresh_day: float = 0.05, min_abs_effect: float = 0.2, tail_prob_thresh: float = 0.9,
        min_active_days_for_hit_anyday: int = 1, anyday_correction: str = "bonferroni") -> Path:
    t = CallThresholds(mash_lfsr_thresh_day, min_abs_effect, tail_prob_thresh, min_active_days_for_hit_anyday, anyday_correction)
    tables = {"conservative": (conservative, read_posterior_table(conservative, ("gene",)))}
    if enriched:
        tables["enriched"] = (enriched, read_posterior_table(enriched, ("gene",)))
    if hits_mode not in tables:
        raise InputError(f"--hits-mode {hits_mode} needs the {hits_mode} table (--{hits_mode})")
    _, (ids, days, fields) = tables[hits_mode]
    hits = rank_hits(ids, days, fields, t)
    if enriched:
        a, b = _aligned(conservative, tables["conservative"][1], enriched, tables["enriched"][1])
        comparison = compare_modes(days, a, b, t)
    else:
        log.warning("rank: no enriched table given; the mode comparison lists the conservative calls only")
        comparison = compare_modes(days, fields, fields, t)
        comparison[list(ONE_MODE_BLANK)] = np.nan  # float columns: no second mode to compare
    params = dict(conservative=conservative, enriched=enriched, hits_mode=hits_mode, **t.__dict__)
    with staged_output(outdir, "rank", params, PACKAGES) as tmp:
        hits.to_csv(tmp / OUTPUTS[0], index=False, float_format="%.10g")
        comparison.to_csv(tmp / OUTPUTS[1], index=False, float_format="%.6g")
    log.info("rank: %d any-day hits of %d genes (%s mode)", int(hits["hit_anyday"].sum()), len(hits), hits_mode)
    return Path(outdir) / OUTPUTS[0]


@stage_command("rank", help="Call daywise and any-day hits from gene-level mash posteriors, rank them "
                            "(hits_ranked.csv), and compare the conservative and enriched modes (mash_mode_comparison.csv).")
@click.option("--conservative", required=True, type=click.Path(dir_okay=False),
              help="Gene-level mash table of the conservative mode (mash_gene_conservative.csv, or an aggregate).")
@outdir_option("rank")
@click.option("--enriched", default=None, type=click.Path(dir_okay=False),
              help="Gene-level mash table of the enriched mode [default: none; comparison lists one mode].")
@click.option("--hits-mode", default="conservative", type=click.Choice(["conservative", "enriched"]),
              help="Which mode's posteriors give hits_ranked.csv.")
@click.option("--mash-lfsr-thresh-day", default=0.05, type=click.FloatRange(0, 1),
              help="lfsr threshold of a daywise call (and of active days).")
@click.option("--min-abs-effect", default=0.2, type=click.FloatRange(min=0),
              help="Effect size whose tail probability a daywise call needs.")
@click.option("--tail-prob-thresh", default=0.9, type=click.FloatRange(0, 1),
              help="Minimum P(|effect| >= min-abs-effect) of a daywise call.")
@click.option("--min-active-days-for-hit-anyday", default=1, type=click.IntRange(min=0), help="Active days an any-day hit needs.")
@click.option("--anyday-correction", default="bonferroni", type=click.Choice(CORRECTIONS),
              help="Correction of the smallest daywise lfsr across days for the any-day call.")
def command(**kwargs) -> None:
    run(**kwargs)
