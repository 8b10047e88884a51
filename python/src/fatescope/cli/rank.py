"""``fatescope rank``: daywise and any-day hit calls, ranked, and the comparison of the two mash modes."""
from __future__ import annotations

from pathlib import Path

import click

from ..io.mash_tables import read_table_text
from ..io.outputs import staged_output
from ..shrink.rank import CORRECTIONS, CallThresholds
from ..tl._rank import rank_hits
from .common import api_default, outdir_option, stage_command

OUTPUTS = ("hits_ranked.csv", "mash_mode_comparison.csv")
PACKAGES = ["numpy", "scipy", "pandas"]


def _default(name: str):
    return api_default(rank_hits, name)


def run(conservative: str, outdir: str = "rank", enriched: str | None = None, hits_mode: str = _default("hits_mode"),
        mash_lfsr_thresh_day: float = _default("mash_lfsr_thresh_day"), min_abs_effect: float = _default("min_abs_effect"),
        tail_prob_thresh: float = _default("tail_prob_thresh"),
        min_active_days_for_hit_anyday: int = _default("min_active_days_for_hit_anyday"),
        anyday_correction: str = _default("anyday_correction")) -> Path:
    t = CallThresholds(mash_lfsr_thresh_day, min_abs_effect, tail_prob_thresh, min_active_days_for_hit_anyday, anyday_correction)
    hits, comparison = rank_hits(read_table_text(conservative), read_table_text(enriched) if enriched else None,
                                 hits_mode=hits_mode, mash_lfsr_thresh_day=mash_lfsr_thresh_day,
                                 min_abs_effect=min_abs_effect, tail_prob_thresh=tail_prob_thresh,
                                 min_active_days_for_hit_anyday=min_active_days_for_hit_anyday,
                                 anyday_correction=anyday_correction, names=(conservative, enriched or "enriched"))
    params = dict(conservative=conservative, enriched=enriched, hits_mode=hits_mode, **t.__dict__)
    with staged_output(outdir, "rank", params, PACKAGES) as tmp:
        hits.to_csv(tmp / OUTPUTS[0], index=False, float_format="%.10g")
        comparison.to_csv(tmp / OUTPUTS[1], index=False, float_format="%.6g")
    return Path(outdir) / OUTPUTS[0]


@stage_command("rank", help="Call daywise and any-day hits from gene-level mash posteriors, rank them "
                            "(hits_ranked.csv), and compare the conservative and enriched modes (mash_mode_comparison.csv).")
@click.option("--conservative", required=True, type=click.Path(dir_okay=False),
              help="Gene-level mash table of the conservative mode (mash_gene_conservative.csv, or an aggregate).")
@outdir_option("rank")
@click.option("--enriched", default=None, type=click.Path(dir_okay=False),
              help="Gene-level mash table of the enriched mode [default: none; comparison lists one mode].")
@click.option("--hits-mode", default=_default("hits_mode"), type=click.Choice(["conservative", "enriched"]),
              help="Which mode's posteriors give hits_ranked.csv.")
@click.option("--mash-lfsr-thresh-day", default=_default("mash_lfsr_thresh_day"), type=click.FloatRange(0, 1),
              help="lfsr threshold of a daywise call (and of active days).")
@click.option("--min-abs-effect", default=_default("min_abs_effect"), type=click.FloatRange(min=0),
              help="Effect size whose tail probability a daywise call needs.")
@click.option("--tail-prob-thresh", default=_default("tail_prob_thresh"), type=click.FloatRange(0, 1),
              help="Minimum P(|effect| >= min-abs-effect) of a daywise call.")
@click.option("--min-active-days-for-hit-anyday", default=_default("min_active_days_for_hit_anyday"), type=click.IntRange(min=0), help="Active days an any-day hit needs.")
@click.option("--anyday-correction", default=_default("anyday_correction"), type=click.Choice(CORRECTIONS),
              help="Correction of the smallest daywise lfsr across days for the any-day call.")
def command(**kwargs) -> None:
    run(**kwargs)
