"""``fs.tl.mash``: shrink daywise knockdown effects with mash (Python engine faithful to mashr, or R mashr)."""
from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
import pandas as pd

from ..device import resolve_device
from ..errors import InputError
from ..io.mash_tables import DaywiseTable, daywise_table
from ..logs import get_logger
from ..shrink.fit import MashFit
from ..shrink.grid import autoselect_grid
from ..shrink.modes import MODES, MashResult, MashSettings, run_fixg, run_mash

log = get_logger(__name__)
ENGINES = ("python", "r")
MIN_EFFECTS = 2     # rows needed to fit a prior
MAX_GRID = 100      # prior scales; sqrt(2) apart, 100 span 15 orders of magnitude


def check_fittable(path, table: DaywiseTable, gridmult: float) -> None:
    """A prior can be fitted: at least MIN_EFFECTS effects, and a grid (from the smallest se to the largest effect)
    of at most MAX_GRID values -- a wider span means an se or effect off by many orders of magnitude."""
    if len(table.ids) < MIN_EFFECTS:
        raise InputError(f"{path}: {len(table.ids)} effect row(s); mash fits its prior (mixture weights, null correlation) "
                         f"from the effects and needs at least {MIN_EFFECTS}; reuse a larger table's fit with --fixg-fit")
    grid = autoselect_grid(table.bhat, table.shat, gridmult)
    if len(grid) > MAX_GRID:
        r_se, c_se = np.unravel_index(np.argmin(table.shat), table.shat.shape)
        r_b, c_b = np.unravel_index(np.argmax(np.abs(table.bhat)), table.bhat.shape)
        ids = table.ids.iloc[:, 0]
        raise InputError(f"{path}: the prior grid would have {len(grid)} values (at most {MAX_GRID}): the smallest se "
                         f"({table.shat[r_se, c_se]:.3g}, row {r_se + 1} {ids.iloc[r_se]!r}, day {table.days[c_se]}) and the "
                         f"largest effect ({table.bhat[r_b, c_b]:.3g}, row {r_b + 1} {ids.iloc[r_b]!r}, day {table.days[c_b]}) "
                         "are too many orders of magnitude apart")


def fit_daywise(table: DaywiseTable, settings: MashSettings, engine: str = "python", fixg: MashFit | None = None,
                source: str | os.PathLike = "table", fit_only: bool = False,
                span: tuple[int, int] | None = None) -> MashResult:
    """One mode on a validated table (the CLI's and the API's one call sequence); ``source`` names it in errors.
    ``fit_only``: the fit without posteriors (python engine); ``span`` = (start, stop): with ``fixg``, the
    posteriors of those rows only, the same bits as in the whole run. The R engine raises RuntimeError when R or
    mashr is missing or fails."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if fit_only and (engine != "python" or fixg is not None):
        raise InputError("a fit without posteriors (chunked posteriors) needs the python engine and no fixg fit")
    if span is not None and fixg is None:
        raise InputError("posteriors of a span of the effects need a fit to reuse (fixg)")
    log.info("mash %s table %s (%d effects x %d days), mode %s, engine %s", table.kind, source, len(table.ids),
             len(table.days), settings.mode, engine)
    try:
        if fixg is not None:
            if fixg.conditions != table.days:
                raise InputError(f"--fixg-fit was fitted on days {fixg.conditions}, the table has {table.days}")
            res = run_fixg(table.bhat, table.shat, fixg, settings, span)
        elif engine == "r":
            from ..shrink.engine_r import run_mash_r
            res = run_mash_r(table.bhat, table.shat, table.days, settings)
        else:
            res = run_mash(table.bhat, table.shat, table.days, settings, posterior=not fit_only)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from exc
    res.ids = table.ids if span is None else table.ids.iloc[span[0]:span[1]]
    res.days = list(table.days)
    return res


def mash(table: pd.DataFrame, *, mode: Literal["conservative", "enriched"] = "conservative",
         engine: Literal["python", "r"] = "python", fixg_fit: MashFit | None = None, alpha: float = 0.0,
         estimate_v: bool = True, z_thresh: float = 2.0, gridmult: float = math.sqrt(2),
         prior: Literal["auto", "nullbiased", "uniform"] = "auto", nullweight: float = 10.0, strong_lfsr: float = 0.05,
         npc: int = 2, ed_tol: float = 1e-6, pi_thresh: float = 1e-10, fit_max_effects: int = 200_000, seed: int = 0,
         device: Literal["auto", "cpu", "cuda"] = "auto") -> MashResult:
    """Shrink a daywise effect table with mash in one mode (canonical covariances, or canonical + ED).

    Parameters
    ----------
    table
        ``gene, betahat_<day>..., se_<day>...`` (or ``guide, gene, ...``), as
        ``fs.tl.fate_fit(...).gene_daywise()`` returns or ``gene_daywise_for_mash.csv`` holds. Text columns
        (``pd.read_csv(path, dtype=str, keep_default_na=False)``) are parsed exactly as the CLI does, giving its bits.
    mode
        ``"conservative"`` (canonical covariances, nullbiased prior) or ``"enriched"`` (plus ED-refined
        data-driven covariances of the strong effects, uniform prior).
    engine
        ``"python"`` (faithful to mashr) or ``"r"`` (mashr via Rscript).
    fixg_fit
        A previous fit (``MashResult.fit``, or ``MashFit.from_json(text)``) to reuse instead of fitting (fixg).
    alpha
        0 = exchangeable effects (EE), 1 = exchangeable z-scores (EZ).
    estimate_v
        Estimate the null correlation V from null-looking effects; else V = I.
    z_thresh
        Max |z| of effects used to estimate V.
    gridmult
        Factor between grid values.
    prior
        Mixture-weight prior; ``"auto"`` = nullbiased (conservative), uniform (enriched).
    nullweight
        Weight on the null under the nullbiased prior.
    strong_lfsr
        Enriched mode: 1-by-1 ash lfsr below which an effect is strong.
    npc
        Enriched mode: principal components for PCA/ED (capped at the number of days).
    ed_tol
        Extreme deconvolution tolerance on the average log-likelihood.
    pi_thresh
        Components with weight at or below this are skipped in posteriors.
    fit_max_effects
        Fit the weights on a seeded random subset of this many effects when the table is larger (fixg for all).
    seed
        Seed of that subset.
    device
        Torch device for likelihoods and posteriors.

    Returns
    -------
    MashResult
        ``.posterior`` (mean, sd, lfsr arrays), ``.fit`` (reusable ``MashFit``), ``.to_frame()`` (the CLI's
        ``mash_<kind>_<mode>.csv`` columns) and ``.postmean`` / ``.postsd`` / ``.lfsr`` DataFrames.

    Examples
    --------
    >>> import fatescope as fs
    >>> res = fs.tl.mash(fit.gene_daywise(), mode="conservative")  # doctest: +SKIP
    >>> res.lfsr.min(axis=1).lt(0.05).sum()  # doctest: +SKIP
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if fixg_fit is not None and not isinstance(fixg_fit, MashFit):
        raise InputError(f"fixg_fit must be a MashFit (MashResult.fit), got {type(fixg_fit).__name__}")
    resolve_device(device)
    data = daywise_table(table)
    if fixg_fit is None:
        check_fittable("table", data, gridmult)
    settings = MashSettings(mode=mode, alpha=alpha, estimate_v=estimate_v, z_thresh=z_thresh, gridmult=gridmult,
                            prior=prior, nullweight=nullweight, strong_lfsr=strong_lfsr, npc=npc, ed_tol=ed_tol,
                            pi_thresh=pi_thresh, fit_max_effects=fit_max_effects, seed=seed, device=device)
    return fit_daywise(data, settings, engine, fixg_fit)
