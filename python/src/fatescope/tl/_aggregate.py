"""``fs.tl.aggregate``: guide-level mash posteriors -> gene level, per day (fixed-effect meta-analysis)."""
from __future__ import annotations

import os

import pandas as pd

from ..io.mash_tables import posterior_fields, posterior_table
from ..logs import get_logger
from ..shrink.aggregate import aggregate_guides

log = get_logger(__name__)


def aggregate(table: pd.DataFrame, *, mash_lfsr_thresh_day: float = 0.05, source: str | os.PathLike = "table"
              ) -> pd.DataFrame:
    """Combine guide-level mash posteriors into gene-level ones per day (weights 1/postsd^2).

    Parameters
    ----------
    table
        ``guide, gene, postmean_<day>..., postsd_<day>..., lfsr_<day>...`` (``fs.tl.mash(guide_table).to_frame()``
        or ``mash_guide_<mode>.csv``; read it with ``dtype=str, keep_default_na=False`` for the CLI's bits).
    mash_lfsr_thresh_day
        A day is active for a gene when its aggregated lfsr is below this.
    source
        Name of the table in error messages.

    Returns
    -------
    pandas.DataFrame
        ``gene, n_guides, active_days, postmean_*, postsd_*, lfsr_*`` (the CLI's ``gene_from_guide_mash_<mode>.csv``).

    Examples
    --------
    >>> import fatescope as fs
    >>> genes = fs.tl.aggregate(fs.tl.mash(guide_table).to_frame())  # doctest: +SKIP
    """
    ids, days, fields = posterior_fields(table, ("guide", "gene"), source)
    gene_ids, agg = aggregate_guides(ids["gene"], fields["postmean"], fields["postsd"], mash_lfsr_thresh_day)
    log.info("aggregate %s: %d guides -> %d genes, %d with >= 1 active day", source, len(ids), len(gene_ids),
             int((gene_ids["active_days"] > 0).sum()))
    return posterior_table(gene_ids, days, agg)
