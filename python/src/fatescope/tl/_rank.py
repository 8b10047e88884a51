"""``fs.tl.rank_hits``: daywise and any-day hit calls, ranked, and the comparison of the two mash modes."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.mash_tables import posterior_fields
from ..logs import get_logger
from ..shrink import rank as science
from ..shrink.rank import CallThresholds, compare_modes

log = get_logger(__name__)
ONE_MODE_BLANK = ["calls_enriched", "overlap", "union", "jaccard", "sign_concordance", "postmean_correlation"]


def _aligned(name_a: str, a, name_b: str, b):
    """Restrict two gene tables to their shared genes in the first table's order; days must match."""
    (ids_a, days_a, fa), (ids_b, days_b, fb) = a, b
    if days_a != days_b:
        raise InputError(f"{name_a} and {name_b} have different days: {days_a} vs {days_b}")
    pos = pd.Index(ids_b["gene"]).get_indexer(ids_a["gene"])
    keep = pos >= 0
    if not keep.any():
        raise InputError(f"{name_a} and {name_b} share no genes")
    return ({k: v[keep] for k, v in fa.items()}, {k: v[pos[keep]] for k, v in fb.items()})


def rank_hits(conservative: pd.DataFrame, enriched: pd.DataFrame | None = None, *,
              hits_mode: Literal["conservative", "enriched"] = "conservative", mash_lfsr_thresh_day: float = 0.05,
              min_abs_effect: float = 0.2, tail_prob_thresh: float = 0.9, min_active_days_for_hit_anyday: int = 1,
              anyday_correction: Literal["bonferroni", "none"] = "bonferroni",
              names: tuple[str, str] = ("conservative", "enriched")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Call daywise and any-day hits from gene-level mash posteriors, rank them, and compare the two modes.

    Parameters
    ----------
    conservative, enriched
        Gene-level posterior tables (``gene, postmean_*, postsd_*, lfsr_*``: ``fs.tl.mash(...).to_frame()`` or
        ``fs.tl.aggregate(...)``); ``enriched`` is optional (the comparison then lists one mode).
    hits_mode
        Which mode's posteriors give the ranked hits.
    mash_lfsr_thresh_day
        lfsr threshold of a daywise call (and of active days).
    min_abs_effect
        Effect size whose tail probability a daywise call needs.
    tail_prob_thresh
        Minimum P(|effect| >= min_abs_effect) of a daywise call.
    min_active_days_for_hit_anyday
        Active days an any-day hit needs.
    anyday_correction
        Correction of the smallest daywise lfsr across days for the any-day call.
    names
        Names of the two tables in error messages.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The ranked hits (``hits_ranked.csv``) and the mode comparison (``mash_mode_comparison.csv``).

    Examples
    --------
    >>> import fatescope as fs
    >>> hits, comparison = fs.tl.rank_hits(cons.to_frame(), enr.to_frame())  # doctest: +SKIP
    """
    t = CallThresholds(mash_lfsr_thresh_day, min_abs_effect, tail_prob_thresh, min_active_days_for_hit_anyday,
                       anyday_correction)
    tables = {"conservative": posterior_fields(conservative, ("gene",), names[0])}
    if enriched is not None:
        tables["enriched"] = posterior_fields(enriched, ("gene",), names[1])
    if hits_mode not in tables:
        raise InputError(f"--hits-mode {hits_mode} needs the {hits_mode} table (--{hits_mode}; fs.tl.rank_hits: {hits_mode}=)")
    ids, days, fields = tables[hits_mode]
    hits = science.rank_hits(ids, days, fields, t)
    if enriched is not None:
        a, b = _aligned(names[0], tables["conservative"], names[1], tables["enriched"])
        comparison = compare_modes(days, a, b, t)
    else:
        log.warning("rank: no enriched table given; the mode comparison lists the conservative calls only")
        comparison = compare_modes(days, fields, fields, t)
        comparison[list(ONE_MODE_BLANK)] = np.nan  # float columns: no second mode to compare
    log.info("rank: %d any-day hits of %d genes (%s mode)", int(hits["hit_anyday"].sum()), len(hits), hits_mode)
    return hits, comparison
