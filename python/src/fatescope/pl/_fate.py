"""``fs.pl.fate_heatmap`` and ``fs.pl.volcano``: the report's fate-effect figures from mash and rank tables."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from ..report.figures import heatmap_figure, volcano_figure
from ..report.sections_fate import daywise_hits, days_of, top_genes


def _posterior(mash: pd.DataFrame) -> list[str]:
    """Days of a gene-level posterior table; an InputError when it is not one."""
    days = days_of(mash) if isinstance(mash, pd.DataFrame) else []
    if "gene" not in getattr(mash, "columns", ()) or not days or any(f"lfsr_{d}" not in mash for d in days):
        raise InputError("mash: expected a gene-level posterior DataFrame (gene, postmean_<day>..., lfsr_<day>...), "
                         "e.g. fs.tl.mash(...).to_frame()")
    return days


def fate_heatmap(mash: pd.DataFrame, hits: pd.DataFrame, *, top_hits: int = 20, fate: str = "fate") -> Figure:
    """Posterior mean effect by day of the ``top_hits`` best-ranked any-day hits (the best-ranked genes when
    there are none), as in the report's "Fate effects of the top hits".

    Parameters
    ----------
    mash
        Gene-level posteriors (``fs.tl.mash(...).to_frame()``, conservative mode in the report).
    hits
        Ranked hits (the first table of ``fs.tl.rank_hits``).
    top_hits
        Genes shown.
    fate
        Name of the fate in the title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import fatescope as fs
    >>> hits, _ = fs.tl.rank_hits(res.to_frame())  # doctest: +SKIP
    >>> fs.pl.fate_heatmap(res.to_frame(), hits).savefig("effects.png")  # doctest: +SKIP
    """
    days = _posterior(mash)
    if not {"gene", "rank", "hit_anyday"} <= set(hits.columns):
        raise InputError("hits: expected fs.tl.rank_hits's table (gene, rank, hit_anyday, ...)")
    genes, _ = top_genes(hits, top_hits)
    m = mash.set_index("gene").reindex([g for g in genes if g in set(mash["gene"])])
    matrix = m[[f"postmean_{d}" for d in days]].set_axis(days, axis=1)
    return heatmap_figure(matrix, f"{fate}: posterior mean effect (conservative mash)", "posterior mean", "day",
                          annotate=matrix.size <= 200)


def volcano(mash: pd.DataFrame, hits: pd.DataFrame | None = None, *, lfsr_thresh: float = 0.05,
            fate: str = "fate") -> Figure:
    """Posterior mean against -log10 lfsr, one panel per day, the day's hits in colour.

    Parameters
    ----------
    mash
        Gene-level posteriors (``fs.tl.mash(...).to_frame()``).
    hits
        Ranked hits (``fs.tl.rank_hits``) giving the daywise calls; ``None``: lfsr below ``lfsr_thresh``.
    lfsr_thresh
        Threshold drawn (dashed), and the call without ``hits``.
    fate
        Name of the fate in the title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import fatescope as fs
    >>> fs.pl.volcano(fs.tl.mash(table).to_frame()).savefig("volcano.png")  # doctest: +SKIP
    """
    days = _posterior(mash)
    return volcano_figure(mash, daywise_hits(hits, mash, days, lfsr_thresh), days, lfsr_thresh, fate)
