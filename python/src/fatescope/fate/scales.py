"""The random-walk scales after the SVI fit: their Laplace-EM update and their uncertainty.

The Laplace step (``laplace.py``) re-estimates tau and sigma_time from the joint posterior of the
effects (``scales_m_step``) with the null group's width held in theta units, and widens the posterior
by the scales' own uncertainty (``log_scale_sd``): see docs/fate.md, Posterior sds.
"""
from __future__ import annotations

import torch

from .model import Priors, TwoGroupEffects, effect_prior


def step_scales(point: dict[str, torch.Tensor]) -> torch.Tensor:
    """(F, D) the random walk's scales: tau, then sigma_time."""
    return torch.cat([point["tau"].unsqueeze(-1), point["sigma_time"]], dim=-1)


def z_prior(priors: Priors, point: dict[str, torch.Tensor], device) -> torch.distributions.Distribution:
    """z's prior in float64 on ``device``; two groups: at the null fraction in ``point``, and with the null group's
    width ``null_width`` (theta units, (F, D)) when the point has one (the Laplace-EM's), else ``null_sd``."""
    shape = tuple(point["z"].shape)
    if priors.null_sd > 0:
        null_sd = priors.null_sd
        if "null_width" in point:
            null_sd = (point["null_width"] / step_scales(point)).detach().double().to(device)
        return TwoGroupEffects(point["null_frac"].detach().double().to(device), null_sd, priors.effect_df, shape)
    return effect_prior(priors.effect_df, shape, device)


def slab_weights(priors: Priors, point: dict[str, torch.Tensor], z_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, F) null probability p_null of each gene x fate given its mode, and the slab's E[1 / lambda] =
    (df + D) / (df + E|z|^2) over the posterior (mode ``point["z"]``, marginal variances ``z_var``)."""
    z = point["z"].detach().double().cpu()
    p_null = z_prior(priors, point, "cpu").null_probability(z) if priors.null_sd > 0 else torch.zeros(z.shape[:-1], dtype=z.dtype)
    ez2 = (z * z + z_var.double().cpu()).sum(-1)
    df = priors.effect_df
    return p_null, (df + z.shape[-1]) / (df + ez2) if df > 0 else torch.ones_like(p_null)


def scales_m_step(priors: Priors, point: dict[str, torch.Tensor], z_var: torch.Tensor) -> dict[str, torch.Tensor]:
    """Laplace-EM update of tau, sigma_time and null_frac from the posterior of z: mode ``point["z"]``,
    marginal variances ``z_var`` (L, F, D).

    Each gene x fate counts with its slab weight 1 - p_null and the t's E[1 / lambda]: s_d^2 solves
    s^4 / c^2 + (n - 1) s^2 = S with n the sum of the slab weights, S the sum of slab weight x E[1 / lambda] x
    E[step_d^2] and c the half-Normal prior's scale. The - 1 is a boundary-avoiding Gamma(2) factor on s
    (Chung et al. 2013): a scale only a few genes inform does not collapse to 0. The null genes do not enter:
    their group has its own width.
    """
    z = point["z"].detach().double().cpu()
    ez2 = z * z + z_var.double().cpu()
    p_null, weight = slab_weights(priors, point, z_var)
    n_days = z.shape[-1]
    n = (1 - p_null).sum(0)[:, None]                                                    # (F, 1)
    S = (((1 - p_null) * weight)[..., None] * ez2).sum(0) * step_scales(point).detach().double().cpu() ** 2
    c2 = torch.tensor([priors.s_tau] + [priors.s_time] * (n_days - 1), dtype=z.dtype) ** 2
    s2 = 0.5 * c2 * (torch.sqrt((n - 1) ** 2 + 4 * S / c2) - (n - 1))
    out = {"tau": s2[:, 0].sqrt(), "sigma_time": s2[:, 1:].sqrt()}
    if priors.null_sd > 0:  # null_frac's uniform prior: the MAP is the mean null probability
        out["null_frac"] = p_null.mean(0).clamp(1e-6, 1 - 1e-6)
    return {k: v.to(point["tau"].device, point["tau"].dtype) for k, v in out.items()}


def log_scale_sd(priors: Priors, point: dict[str, torch.Tensor], z_var: torch.Tensor) -> torch.Tensor:
    """(F, D) posterior sd of each log scale: 1 / sqrt of its Fisher information in the Normal hierarchy,
    2 sum over slab gene x fates of (1 - shrinkage)^2, where the shrinkage 1 - E[1 / lambda] Var(z) is the
    share of a step the data determine (so a well-measured step counts fully and a prior-dominated one not
    at all; with n well-measured slab genes the sd is 1 / sqrt(2 n)). Capped at 1."""
    p_null, weight = slab_weights(priors, point, z_var)
    determined = (1 - weight[..., None] * z_var.double().cpu()).clamp(0.0, 1.0)
    info = 2 * ((1 - p_null)[..., None] * determined ** 2).sum(0)
    return info.clamp(min=1.0).rsqrt()
