"""The Python mash engine: mashr's ``mash()`` (fit weights, posteriors, log-likelihood) and fixg reuse."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..logs import get_logger
from .covariances import Ulist, check_psd, normalize_ulist
from .data import MashData
from .fit import MashFit
from .grid import autoselect_grid
from .likelihood import calc_loglik_matrix, relative_loglik, single_torch_thread, vloglik
from .mixsqp import DEFAULT_CONTROL, SQPControl, mix_weights, set_prior
from .posterior import MashPosterior, fixg_posterior

log = get_logger(__name__)


@dataclass(frozen=True)
class FitOptions:
    gridmult: float = math.sqrt(2)
    normalize: bool = True
    usepointmass: bool = True
    prior: str = "nullbiased"
    nullweight: float = 10.0
    pi_thresh: float = 1e-10
    device: str = "auto"


def fit_mash(data: MashData, ulist: Ulist, conditions: list[str], opts: FitOptions = FitOptions(),
             grid: np.ndarray | None = None, control: SQPControl | None = None,
             posterior: bool = True) -> tuple[MashFit, MashPosterior | None]:
    """Estimate the mixture weights on ``data`` and return the fit with every effect's posterior (``None`` when
    ``posterior`` is False). The posteriors are ``apply_fit``'s: a saved fit reused with fixg gives the same bits."""
    if grid is None:
        grid = autoselect_grid(data.bhat, data.shat, opts.gridmult)
    if opts.normalize:
        ulist = normalize_ulist(ulist)
    check_psd(ulist, data.n_conditions)
    fit = MashFit(ulist, np.asarray(grid, dtype=np.float64), np.empty(0), opts.usepointmass, data.V, data.alpha, list(conditions))
    xU = fit.expanded()
    log.info("mash: %d effects x %d conditions, %d covariances x %d grid values = %d components",
             data.n_effects, data.n_conditions, len(ulist), len(grid), len(xU))
    with single_torch_thread(opts.device):
        rel, lfactors = relative_loglik(calc_loglik_matrix(data, xU, opts.device))
    prior = set_prior(len(xU), opts.prior, opts.nullweight)
    fit.pi = mix_weights(np.exp(rel), prior, control or DEFAULT_CONTROL)
    fit.loglik = float(vloglik(fit.pi, rel, lfactors, data.shat_alpha).sum())
    log.info("mash: log-likelihood %.6f, %d of %d components with weight > %g", fit.loglik,
             int((fit.pi > opts.pi_thresh).sum()), len(xU), opts.pi_thresh)
    post = apply_fit(fit, data, opts.pi_thresh, opts.device)[0] if posterior else None
    return fit, post


def apply_fit(fit: MashFit, data: MashData, pi_thresh: float = 1e-10, device: str = "auto") -> tuple[MashPosterior, float]:
    """fixg: posteriors and log-likelihood of ``data`` under a fitted prior, in row batches (the log-likelihood
    is the exactly rounded sum of the per-effect ones, so it does not depend on how the effects were split)."""
    post, loglik = apply_fit_effects(fit, data, pi_thresh, device)
    return post, math.fsum(loglik)


def apply_fit_effects(fit: MashFit, data: MashData, pi_thresh: float = 1e-10, device: str = "auto",
                      span: tuple[int, int] | None = None) -> tuple[MashPosterior, np.ndarray]:
    """fixg: posteriors and per-effect log-likelihoods of every effect of ``data``, or of rows ``span`` =
    (start, stop) only -- the same bits as those rows of the whole run."""
    if data.n_conditions != len(fit.conditions):
        raise ValueError(f"the fit has {len(fit.conditions)} conditions, the data {data.n_conditions}")
    if data.alpha != fit.alpha:
        raise ValueError(f"the fit used alpha={fit.alpha}, the data alpha={data.alpha}")
    xU = fit.expanded()
    keep = fit.pi > pi_thresh
    with single_torch_thread(device):
        return fixg_posterior(data, xU[keep], fit.pi[keep], device, span)
