"""Variational families for the fate model.

- ``structured`` (default): point estimates (MAP) of the scale hyperparameters tau, sigma_time,
  sigma_guide (and the two-group prior's null fraction); a full (F*D) x (F*D) normal per gene for z (days and fates jointly, so the
  random-walk posterior keeps its strong day-to-day correlations); mean-field normals for u and
  the nuisance terms. Avoids the spec's known trap (mean-field scales collapsing).
- ``map-meanfield``: as structured but z mean-field (an ablation, for calibration studies).
- ``meanfield``: pyro's AutoNormal over everything (the reference pipeline's choice; the trap).
- ``lowrank``: pyro's AutoLowRankMultivariateNormal over everything.

Every guide owns its parameters (``guide.params``, a ``ParamState``): SVI runs inside ``with
guide.params``, and ``point``/``draw`` enter it themselves, so fits never share pyro's global store.
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer import autoguide
from torch.distributions.transforms import ReshapeTransform

from .model import FateModel
from .state import ParamReader, ParamState, owns_params

GUIDES = ("block-lowrank", "structured", "map-meanfield", "meanfield", "lowrank")
POSTERIORS = ("laplace", "guide")


def initial_alpha(model: FateModel) -> torch.Tensor:
    """(F, D) empirical log(mean p_f / mean p_ref) per day: a starting point near the optimum."""
    data = model.data
    sums = torch.zeros(data.n_days, data.probs.shape[1], device=data.probs.device).index_add(0, data.day, data.probs)
    ratio = torch.log(sums[:, 1:].clamp(min=1e-6)) - torch.log(sums[:, :1].clamp(min=1e-6))
    return ratio.T.contiguous()


class StructuredGuide(ParamReader):
    """Hand-written guide; ``distributions()`` is shared by SVI and posterior sampling."""

    def __init__(self, model: FateModel, block_z: bool = True, init_scale: float = 0.05, params: ParamState | None = None):
        self.model, self.block_z, self.init_scale = model, block_z, init_scale
        self.params = params or ParamState()

    def _loc_sd(self, name: str, loc_init, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.param(f"{name}.loc", loc_init)
        sd = self.param(f"{name}.scale", lambda: torch.full_like(loc_init(), scale), constraint=constraints.positive)
        return loc, sd

    def scales(self) -> dict[str, torch.Tensor]:
        data, p = self.model.data, self.model.priors
        dev, F, D = data.probs.device, data.n_fates, data.n_days
        inits = {"tau": lambda: torch.full((F,), 0.5 * p.s_tau, device=dev),
                 "sigma_time": lambda: torch.full((F, D - 1), 0.5 * p.s_time, device=dev),
                 "sigma_guide": lambda: torch.full((F,), 0.5 * p.s_guide, device=dev)}
        if p.s_eff > 0:
            inits["sigma_eff"] = lambda: torch.full((1,), 0.02, device=dev)
        out = {k: self.param(f"{k}.map", v, constraint=constraints.positive) for k, v in inits.items()}
        if p.null_sd > 0:  # the two-group prior's null fraction per fate, MAP like the scales
            out["null_frac"] = self.param("null_frac.map", lambda: torch.full((F,), 0.5, device=dev),
                                          constraint=constraints.unit_interval)
        return out

    def site_params(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """Per site, in sampling order: (MAP value,) of a scale, (loc, scale_tril) of z's per-gene block
        normal over its flattened (F * D) entries, else (loc, sd) of a mean-field normal."""
        model, data = self.model, self.model.data
        dev = data.probs.device
        F, D, R, L, G = data.n_fates, data.n_days, data.n_replicates, data.n_genes, data.n_guides
        out = {"alpha": self._loc_sd("alpha", lambda: initial_alpha(model), self.init_scale),
               "b": self._loc_sd("b", lambda: torch.zeros(F, R, device=dev), self.init_scale),
               "gamma": self._loc_sd("gamma", lambda: torch.zeros(F, device=dev), self.init_scale)}
        if not model.use_guides:
            return out
        out.update({name: (value,) for name, value in self.scales().items()})
        if self.block_z:
            loc = self.param("z.loc", lambda: torch.zeros(L, F * D, device=dev))
            tril = self.param("z.scale_tril", lambda: 0.1 * torch.eye(F * D, device=dev).expand(L, F * D, F * D).clone(),
                              constraint=constraints.lower_cholesky)
            out["z"] = (loc, tril)
        else:
            out["z"] = self._loc_sd("z", lambda: torch.zeros(L, F, D, device=dev), 0.1)
        out["u"] = self._loc_sd("u", lambda: torch.zeros(G, F, device=dev), 0.1)
        if model.priors.s_eff > 0:
            out["v"] = self._loc_sd("v", lambda: torch.zeros(G, device=dev), 0.1)
        return out

    def distributions(self) -> dict[str, dist.Distribution]:
        data, out = self.model.data, {}
        for name, p in self.site_params().items():
            if len(p) == 1:
                out[name] = dist.Delta(p[0], event_dim=p[0].dim())
            elif name == "z" and self.block_z:
                shape = (data.n_fates, data.n_days)
                mvn = dist.MultivariateNormal(p[0], scale_tril=p[1])
                out[name] = dist.TransformedDistribution(mvn, [ReshapeTransform((math.prod(shape),), shape)]).to_event(1)
            else:
                out[name] = dist.Normal(*p).to_event(p[0].dim())
        return out

    def __call__(self, batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {name: pyro.sample(name, d) for name, d in self.distributions().items()}

    def rsample(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One reparameterised draw of every site and its log density under the guide (``DirectSVI``).

        The draws of ``__call__`` (same standard normals eps, same order, same arithmetic), with
        log q = -sum log sd - |eps|^2 / 2 - n log(2 pi) / 2: as a function of the parameters for
        fixed eps the same as the density of the draw that ``Trace_ELBO`` evaluates, without
        solving back for eps.
        """
        data, values, log_sd, sq_eps, n = self.model.data, {}, [], [], 0
        for name, p in self.site_params().items():
            if len(p) == 1:  # MAP: a point mass, log q = 0
                values[name] = p[0]
                continue
            loc, scale = p
            eps = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
            if name == "z" and self.block_z:
                values[name] = (loc + torch.matmul(scale, eps.unsqueeze(-1)).squeeze(-1)).reshape(
                    *loc.shape[:-1], data.n_fates, data.n_days)
                scale = scale.diagonal(dim1=-2, dim2=-1)
            else:
                values[name] = loc + eps * scale
            log_sd.append(scale.log().sum())
            sq_eps.append(torch.dot(eps.reshape(-1), eps.reshape(-1)))
            n += eps.numel()
        log_q = -torch.stack(log_sd).sum() - 0.5 * (torch.stack(sq_eps).sum() + n * math.log(2 * math.pi))
        return values, log_q

    @owns_params
    def point(self) -> dict[str, torch.Tensor]:
        """Posterior means (MAP values for the scale hyperparameters)."""
        with torch.no_grad():
            dists = self.distributions()
            out = {name: d.mean.detach() for name, d in dists.items() if name != "z"}
            if "z" in dists:
                loc = self.param("z.loc")
                out["z"] = (loc.reshape(dists["z"].event_shape) if self.block_z else loc).detach()
            return out

    @owns_params
    def draw(self, num: int) -> dict[str, torch.Tensor]:
        """``num`` posterior draws per site (leading dimension), without gradients."""
        with torch.no_grad():
            return {name: d.sample((num,)) for name, d in self.distributions().items()}


class AutoGuideWrapper:
    """Pyro autoguide with the same ``draw`` interface."""

    def __init__(self, model: FateModel, kind: str, rank: int | None = None, params: ParamState | None = None):
        self.model, self.params = model, params or ParamState()
        if kind == "meanfield":
            self.guide = autoguide.AutoNormal(model, init_scale=0.05)
        else:
            self.guide = autoguide.AutoLowRankMultivariateNormal(model, rank=rank, init_scale=0.05)

    def __call__(self, batch: torch.Tensor | None = None):
        return self.guide(batch)

    @owns_params
    def point(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {k: v.detach() for k, v in self.guide.median().items()}

    @owns_params
    def draw(self, num: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            draws = [self.guide(None) for _ in range(num)]
        return {k: torch.stack([d[k] for d in draws]) for k in draws[0]}


def make_guide(model: FateModel, kind: str = "structured", rank: int | None = None, params: ParamState | None = None):
    """A guide of family ``kind`` owning ``params`` (a fresh, empty ``ParamState`` by default)."""
    if kind not in GUIDES:
        raise ValueError(f"unknown guide {kind!r}; expected one of {GUIDES}")
    if kind == "block-lowrank":
        from .joint_guide import JointGuide
        return JointGuide(model, rank=rank or 4, params=params)
    if kind in ("structured", "map-meanfield"):
        return StructuredGuide(model, block_z=kind == "structured", params=params)
    return AutoGuideWrapper(model, kind, rank, params=params)
