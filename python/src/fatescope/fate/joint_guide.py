"""Joint normal guide: per-gene (F*D) blocks for z + a global low-rank part, MAP scales.

Covariance of the flat latent x = [alpha, b, gamma, u, z] is B + W W^T with B block diagonal:
diagonal for alpha, b, gamma, u and a full (F*D) x (F*D) Cholesky block per gene for z. The
low-rank W carries the few directions shared by all genes, above all the common shift of every
gene effect against alpha and gamma (identified only through NTC guides when MOI is high), which
per-gene blocks alone cannot represent (they under-cover nulls when NTC guides are rare).
log q uses Woodbury and the matrix determinant lemma; one step costs O(L (F*D)^2 r).
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution

from .model import FateModel
from .state import ParamReader, ParamState, owns_params


class BlockLowRankNormal(TorchDistribution):
    """Normal(loc, B + W W^T), B = diag(sd_d^2) (+) blockdiag(T_l T_l^T); event = the flat vector."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, sd_diag: torch.Tensor, tril: torch.Tensor, factor: torch.Tensor):
        self.loc, self.sd_diag, self.tril, self.factor = loc, sd_diag, tril, factor
        self.n_diag, (self.n_blocks, self.block, _) = sd_diag.shape[0], tril.shape
        super().__init__(event_shape=loc.shape, validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        eps_d = torch.randn(*shape, self.n_diag, dtype=self.loc.dtype, device=self.loc.device)
        eps_z = torch.randn(*shape, self.n_blocks, self.block, 1, dtype=self.loc.dtype, device=self.loc.device)
        xi = torch.randn(*shape, self.factor.shape[1], dtype=self.loc.dtype, device=self.loc.device)
        blocks = (self.tril @ eps_z).squeeze(-1).reshape(*shape, -1)
        return self.loc + torch.cat([self.sd_diag * eps_d, blocks], dim=-1) + xi @ self.factor.T

    def _whiten(self, v: torch.Tensor) -> torch.Tensor:
        """B^{-1/2} v for v of shape (..., n, k)."""
        d, z = v[..., : self.n_diag, :], v[..., self.n_diag:, :]
        z = z.reshape(*z.shape[:-2], self.n_blocks, self.block, z.shape[-1])
        zw = torch.linalg.solve_triangular(self.tril, z, upper=False)
        return torch.cat([d / self.sd_diag.unsqueeze(-1), zw.reshape(*v.shape[:-2], -1, v.shape[-1])], dim=-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        a = self._whiten((value - self.loc).unsqueeze(-1)).squeeze(-1)  # (..., n)
        c = self._whiten(self.factor)  # (n, r)
        cap = torch.eye(c.shape[1], dtype=c.dtype, device=c.device) + c.T @ c
        chol = torch.linalg.cholesky(cap)
        ca = a @ c  # (..., r)
        sol = torch.cholesky_solve(ca.unsqueeze(-1), chol).squeeze(-1)
        quad = (a * a).sum(-1) - (ca * sol).sum(-1)
        logdet = (2 * self.sd_diag.log().sum() + 2 * torch.diagonal(self.tril, dim1=-2, dim2=-1).log().sum()
                  + 2 * torch.diagonal(chol).log().sum())
        n = self.loc.shape[-1]
        return -0.5 * (quad + logdet + n * math.log(2 * math.pi))


class JointGuide(ParamReader):
    """MAP scales + BlockLowRankNormal over [alpha, b, gamma, u, z]; ``draw``/``point`` as the other guides."""

    def __init__(self, model: FateModel, rank: int = 4, init_scale: float = 0.05, params: ParamState | None = None):
        from .guides import initial_alpha
        self.model, self.rank, self.init_scale, self._initial_alpha = model, rank, init_scale, initial_alpha
        self.params = params or ParamState()
        d = model.data
        F, D, R = d.n_fates, d.n_days, d.n_replicates
        self.diag_sites = [("alpha", (F, D)), ("b", (F, R)), ("gamma", (F,))]
        if model.use_guides:
            self.diag_sites.append(("u", (d.n_guides, F)))
            if model.priors.s_eff > 0:
                self.diag_sites.append(("v", (d.n_guides,)))
        self.n_diag = sum(math.prod(s) for _, s in self.diag_sites)
        self.block = F * D
        self.n_blocks = d.n_genes if model.use_guides else 0

    def scales(self) -> dict[str, torch.Tensor]:
        from .guides import StructuredGuide
        return StructuredGuide.scales(self)  # same MAP parameters and initial values

    def joint(self) -> BlockLowRankNormal:
        dev = self.model.data.probs.device
        n = self.n_diag + self.n_blocks * self.block

        def loc_init():
            loc = torch.zeros(n, device=dev)
            a = self._initial_alpha(self.model).reshape(-1)
            loc[: a.numel()] = a
            return loc

        loc = self.param("joint.loc", loc_init)
        sd = self.param("joint.sd_diag", lambda: torch.full((self.n_diag,), self.init_scale, device=dev),
                        constraint=constraints.positive)
        tril = self.param("joint.z_tril", lambda: 0.1 * torch.eye(self.block, device=dev).expand(self.n_blocks, self.block,
                                                                                                 self.block).clone(),
                          constraint=constraints.lower_cholesky)
        factor = self.param("joint.factor", lambda: 0.01 * torch.randn(n, self.rank, device=dev))
        return BlockLowRankNormal(loc, sd, tril, factor)

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        lead, out, pos = flat.shape[:-1], {}, 0
        for name, shape in self.diag_sites:
            k = math.prod(shape)
            out[name] = flat[..., pos:pos + k].reshape(*lead, *shape)
            pos += k
        if self.n_blocks:
            d = self.model.data
            out["z"] = flat[..., pos:].reshape(*lead, d.n_genes, d.n_fates, d.n_days)
        return out

    def __call__(self, batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        flat = pyro.sample("_joint", self.joint(), infer={"is_auxiliary": True})
        values = self.split(flat)
        if self.model.use_guides:
            values.update(self.scales())
        return {name: pyro.sample(name, dist.Delta(v, event_dim=v.dim())) for name, v in values.items()}

    def rsample(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One reparameterised draw of every site and its log density under the guide (``DirectSVI``;
        the draws of ``__call__``)."""
        joint = self.joint()
        flat = joint.rsample()
        values = self.split(flat)
        if self.model.use_guides:
            values.update(self.scales())
        return values, joint.log_prob(flat)

    @owns_params
    def point(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            out = self.split(self.joint().loc.detach())
            if self.model.use_guides:
                out.update({k: v.detach() for k, v in self.scales().items()})
            return out

    @owns_params
    def draw(self, num: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            out = self.split(self.joint().rsample((num,)))
            if self.model.use_guides:
                out.update({k: v.detach().expand(num, *v.shape) for k, v in self.scales().items()})
            return out
