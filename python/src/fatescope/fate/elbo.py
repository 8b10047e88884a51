"""Training steps for the fate model's own guides without pyro's tracing machinery.

Pyro's ``SVI`` + ``Trace_ELBO`` record the model and the guide site by site on every step (traces,
messengers, fresh distribution objects with argument checks, per-site log-density bookkeeping) and
``pyro.optim.ClippedAdam`` keeps one torch optimiser per parameter tensor; at the usual problem
sizes that costs more than the arithmetic of a step. ``DirectSVI`` computes the same single-particle
ELBO estimate, log p(x) - log q(x) with the cells' likelihood scaled by N / B, from the same draws in
the same order (the guide's ``rsample``, the priors in closed form, ``FateModel.log_likelihood``) and
applies ClippedAdam's update to all parameters at once, so a seeded fit takes the same path up to
float rounding. Parameters stay in pyro's store (``pyro.param``), so checkpoints and posteriors are
unchanged; pyro's autoguides still train with ``SVI`` + ``Trace_ELBO``.
"""
from __future__ import annotations

import math

import pyro.poutine as poutine
import torch

from .model import FateModel


def _sum_sq(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1)
    return torch.dot(flat, flat)


def log_prior(model: FateModel, g: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum over sites of ``model.prior()[site].log_prob(g[site])`` in closed form (the scales at their
    positive MAP values): normal and half-normal sites -|x|^2 / (2 s^2) + const, t sites
    -(df + k) / 2 sum log(1 + |x|^2 / df) + const, the two-group prior of z by its own log-sum-exp, with
    the constants summed once in Python. A handful of tensor ops in all instead of the distributions'
    generic code, which dominated a step.
    """
    p, log_2pi = model.priors, math.log(2 * math.pi)
    normal = [("alpha", p.s_alpha), ("b", p.s_rep), ("gamma", p.s_gamma)]
    if model.use_guides:
        normal += [("tau", p.s_tau), ("sigma_time", p.s_time), ("sigma_guide", p.s_guide)]
    const = sum(-g[n].numel() * (math.log(s) + 0.5 * log_2pi) for n, s in normal)
    const += math.log(2) * sum(g[n].numel() for n, _ in normal[3:])  # half normals: twice the density on x >= 0
    total = torch.dot(torch.stack([_sum_sq(g[n]) for n, _ in normal]),
                      torch.tensor([-0.5 / s ** 2 for _, s in normal], dtype=g["alpha"].dtype, device=g["alpha"].device))
    if not model.use_guides:
        return total + const
    df, t_vectors = p.effect_df, [(g["u"] * g["u"], 1)]  # |x|^2 of each t (or normal) vector, its dimension
    if p.null_sd > 0:  # two groups: a log-sum-exp per gene x fate (null_frac's uniform prior adds 0)
        total = total + model.z_prior(g["null_frac"]).log_prob(g["z"])
    else:
        t_vectors.insert(0, ((g["z"] * g["z"]).sum(-1), g["z"].shape[-1]))
    for x, k in t_vectors:
        if df <= 0:
            total, const = total - 0.5 * x.sum(), const - 0.5 * x.numel() * k * log_2pi
        else:
            const += x.numel() * (math.lgamma(0.5 * (df + k)) - math.lgamma(0.5 * df) - 0.5 * k * math.log(df * math.pi))
            total = total - 0.5 * (df + k) * torch.log1p(x / df).sum()
    return total + const


class FusedClippedAdam:
    """``pyro.optim.ClippedAdam``'s update (lr *= lrd, gradients clamped to +-clip_norm, Adam with bias
    correction) for a fixed list of parameters in a few ``torch._foreach`` calls instead of one
    optimiser per tensor; the same float operations in the same order, so the same values."""

    def __init__(self, lr: float, clip_norm: float, lrd: float = 1.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.clip_norm, self.lrd, self.betas, self.eps = lr, clip_norm, lrd, betas, eps
        self.steps, self.exp_avg, self.exp_avg_sq = 0, None, None

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        (b1, b2), clip = self.betas, self.clip_norm
        if self.exp_avg is None:
            self.exp_avg, self.exp_avg_sq = [torch.zeros_like(g) for g in grads], [torch.zeros_like(g) for g in grads]
        self.lr *= self.lrd
        self.steps += 1
        grads = torch._foreach_clamp_max(torch._foreach_clamp_min(grads, -clip), clip)
        torch._foreach_mul_(self.exp_avg, b1)
        torch._foreach_add_(self.exp_avg, grads, alpha=1 - b1)
        torch._foreach_mul_(self.exp_avg_sq, b2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_add_(denom, self.eps)
        step_size = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        torch._foreach_addcdiv_(params, self.exp_avg, denom, value=-step_size)


class DirectSVI:
    """``SVI(model, guide, ClippedAdam(...), Trace_ELBO()).step`` for a guide with ``rsample() -> (values, log q)``."""

    def __init__(self, model: FateModel, guide, optim: FusedClippedAdam):
        self.model, self.guide, self.optim = model, guide, optim

    def loss(self, batch: torch.Tensor | None = None) -> torch.Tensor:
        """The negative ELBO estimate (differentiable) on the cells ``batch`` (all cells if None)."""
        n = self.model.data.n_cells
        idx = torch.arange(n, device=self.model.data.probs.device) if batch is None else batch
        values, log_q = self.guide.rsample()
        return log_q - log_prior(self.model, values) - (n / idx.shape[0]) * self.model.log_likelihood(idx, values).sum()

    def step(self, batch: torch.Tensor | None = None) -> float:
        with poutine.trace(param_only=True) as capture:  # the guide's parameters, created on first use
            loss = self.loss(batch)
        params = [site["value"].unconstrained() for site in capture.trace.nodes.values()]
        self.optim.step(params, torch.autograd.grad(loss, params))
        return loss.item()
