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

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import constraints
from torch.distributions import transform_to

from .batches import CellBatch
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
        normal += [("sigma_eff", p.s_eff)] if p.s_eff > 0 else []
    const = sum(-g[n].numel() * (math.log(s) + 0.5 * log_2pi) for n, s in normal)
    const += math.log(2) * sum(g[n].numel() for n, _ in normal[3:])  # half normals: twice the density on x >= 0
    if model.use_guides and p.s_eff > 0:
        normal.append(("v", 1.0))
        const -= g["v"].numel() * 0.5 * log_2pi
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
    correction) for a fixed list of parameters, on one flat vector of all their entries: a dozen tensor
    ops per step instead of one optimiser (or one ``_foreach`` kernel) per tensor. Element by element
    the same float operations in the same order, so the same values."""

    def __init__(self, lr: float, clip_norm: float, lrd: float = 1.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.clip_norm, self.lrd, self.betas, self.eps = lr, clip_norm, lrd, betas, eps
        self.steps, self.exp_avg, self.exp_avg_sq = 0, None, None

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        (b1, b2), clip = self.betas, self.clip_norm
        grad = torch.cat([g.reshape(-1) for g in grads]).clamp_(-clip, clip)
        if self.exp_avg is None:
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(grad), torch.zeros_like(grad)
        self.lr *= self.lrd
        self.steps += 1
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = self.exp_avg_sq.sqrt().add_(self.eps)
        step_size = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        update = torch.zeros_like(grad).addcdiv_(self.exp_avg, denom, value=-step_size)  # 0 + u: exactly addcdiv's u
        torch._foreach_add_(params, [u.view_as(p) for u, p in zip(update.split([p.numel() for p in params]), params)])


def direct_transform(constraint):
    """``transform_to(constraint)`` as pyro's store applies it, with positive parameters by ``torch.exp``
    alone: torch's transform for them is exp followed by the affine map 0 + 1 * y, which leaves the value
    as it is but costs two more operations forward and backward for every positive parameter."""
    return torch.exp if constraint is constraints.positive else transform_to(constraint)


class DirectSVI:
    """``SVI(model, guide, ClippedAdam(...), Trace_ELBO()).step`` for a guide with ``rsample() -> (values, log q)``.

    The first step runs under pyro, which creates the guide's parameters and reports them; later steps
    hand the guide their constrained values (``ParamReader.direct``), computed from the same tensors of
    the store, and skip pyro altogether. When the store holds other tensors (another fit's state was
    loaded), the parameters are looked up again.
    """

    def __init__(self, model: FateModel, guide, optim: FusedClippedAdam):
        self.model, self.guide, self.optim = model, guide, optim
        self.params: list[tuple[str, torch.Tensor, object]] = []  # (name, unconstrained tensor, its transform)

    def loss(self, batch: CellBatch | torch.Tensor | None = None) -> torch.Tensor:
        """The negative ELBO estimate (differentiable) on the minibatch ``batch`` (all cells if None)."""
        cells = self.model.data.as_cells(batch)
        values, log_q = self.guide.rsample()
        scale = self.model.data.n_cells / cells.size
        return log_q - log_prior(self.model, values) - scale * self.model.log_likelihood(cells, values).sum()

    def _params_current(self) -> bool:
        store = dict(pyro.get_param_store().named_parameters())
        return bool(self.params) and all(store.get(name) is leaf for name, leaf, _ in self.params)

    def step(self, batch: CellBatch | torch.Tensor | None = None) -> float:
        if self._params_current():
            self.guide.direct = {name: transform(leaf) for name, leaf, transform in self.params}
            try:
                loss = self.loss(batch)
            finally:
                self.guide.direct = None
        else:
            with poutine.trace(param_only=True) as capture:  # the guide's parameters, created on first use
                loss = self.loss(batch)
            leaves = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
            found = pyro.get_param_store().get_state()["constraints"]  # (get_state drops the values' links to leaves)
            self.params = [(name, leaf, direct_transform(found[name])) for name, leaf in leaves.items()]
        leaves = [leaf for _, leaf, _ in self.params]
        self.optim.step(leaves, torch.autograd.grad(loss, leaves))
        return loss.item()
