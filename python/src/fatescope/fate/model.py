"""The fate-effect model (pyro) of design/fate-model.md, vectorised over cells, guides and genes.

For each non-reference fate f: alpha[f, d], b[f, r] (sum zero over replicates), gamma[f],
tau[f], sigma_time[f, j], sigma_guide[f]; non-centred z[l, f, d] and u[g, f] give
theta = random walk over days and delta = mean-zero-within-gene guide deviations.
eta[i, f] = alpha + b + gamma kc + sum_m mask beta[guide_ids[i, m], f, d_i]; eta[i, ref] = 0;
log-lik = w * sum_f p[i, f] log softmax(eta)[f] (soft-label cross-entropy), minibatched.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pyro
import pyro.distributions as dist
import torch

from .encoding import Encoding


@dataclass(frozen=True)
class Priors:
    s_alpha: float = 2.0
    s_rep: float = 0.5
    s_gamma: float = 0.5
    s_tau: float = 1.0
    s_time: float = 0.5
    s_guide: float = 0.3
    effect_df: float = 3.0  # df of the t priors of z (per gene x fate) and u (0 = the spec's Normal(0, 1))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FateData:
    """The encoding as tensors on one device (index tensors int64, values float32)."""
    guide_ids: torch.Tensor
    mask: torch.Tensor
    gene_of_guide: torch.Tensor
    day: torch.Tensor
    replicate: torch.Tensor
    burden_centered: torch.Tensor
    probs: torch.Tensor
    gene_guide_count: torch.Tensor  # (L + 1,) guides per gene (index 0 unused)
    n_days: int
    n_replicates: int

    @property
    def n_cells(self) -> int:
        return self.day.shape[0]

    @property
    def n_fates(self) -> int:  # non-reference fates
        return self.probs.shape[1] - 1

    @property
    def n_guides(self) -> int:
        return self.gene_of_guide.shape[0] - 1

    @property
    def n_genes(self) -> int:
        return self.gene_guide_count.shape[0] - 1

    @classmethod
    def from_encoding(cls, enc: Encoding, device: str | torch.device = "cpu") -> "FateData":
        gog = torch.as_tensor(enc.gene_of_guide, dtype=torch.long)
        counts = torch.bincount(gog[1:], minlength=enc.n_genes + 1)
        return cls(
            guide_ids=torch.as_tensor(enc.guide_ids, dtype=torch.int32, device=device),
            mask=torch.as_tensor(enc.mask, dtype=torch.float32, device=device),
            gene_of_guide=gog.to(device),
            day=torch.as_tensor(enc.day, dtype=torch.long, device=device),
            replicate=torch.as_tensor(enc.replicate, dtype=torch.long, device=device),
            burden_centered=torch.as_tensor(enc.burden_centered, dtype=torch.float32, device=device),
            probs=torch.as_tensor(enc.probs, dtype=torch.float32, device=device),
            gene_guide_count=counts.to(device),
            n_days=len(enc.days), n_replicates=len(enc.replicates))


def theta_from_z(z: torch.Tensor, tau: torch.Tensor, sigma_time: torch.Tensor) -> torch.Tensor:
    """(..., L, F, D) random walk: theta_0 = tau z_0, theta_d = theta_{d-1} + sigma_time[d] z_d."""
    scales = torch.cat([tau.unsqueeze(-1), sigma_time], dim=-1)  # (..., F, D)
    return torch.cumsum(z * scales.unsqueeze(-3), dim=-1)


def delta_from_u(u: torch.Tensor, sigma_guide: torch.Tensor, data: FateData) -> torch.Tensor:
    """(..., G, F) sigma_guide * (u - mean of u over the guides of the same gene)."""
    gene = data.gene_of_guide[1:]
    sums = torch.zeros(*u.shape[:-2], data.n_genes + 1, u.shape[-1], dtype=u.dtype, device=u.device)
    sums = sums.index_add(-2, gene, u)
    means = sums / data.gene_guide_count.clamp(min=1).to(u.dtype).unsqueeze(-1)
    return sigma_guide.unsqueeze(-2) * (u - means.index_select(-2, gene))


def beta_table(theta: torch.Tensor, delta: torch.Tensor, data: FateData) -> torch.Tensor:
    """(..., G + 1, F, D) guide effects with the hard zero in row 0 (NTC and padding)."""
    zero_gene = torch.zeros_like(theta[..., :1, :, :])
    theta0 = torch.cat([zero_gene, theta], dim=-3)
    delta0 = torch.cat([torch.zeros_like(delta[..., :1, :]), delta], dim=-2)
    beta = theta0.index_select(-3, data.gene_of_guide) + delta0.unsqueeze(-1)
    return beta * (data.gene_of_guide > 0).to(beta.dtype).view(-1, 1, 1)


def center(b: torch.Tensor) -> torch.Tensor:
    """Replicate effects with sum zero within each fate (identifiability against alpha)."""
    return b - b.mean(dim=-1, keepdim=True)


def cell_logits(idx: torch.Tensor, data: FateData, alpha, b, gamma, beta, use_guides: bool = True) -> torch.Tensor:
    """(B, F + 1) logits of cells ``idx``; column 0 is the reference fate (0)."""
    d = data.day.index_select(0, idx)
    eta = (alpha.T.index_select(0, d) + center(b).T.index_select(0, data.replicate.index_select(0, idx))
           + data.burden_centered.index_select(0, idx)[:, None] * gamma)
    if use_guides:
        n_fates, n_days = beta.shape[-2], beta.shape[-1]
        gids = data.guide_ids.index_select(0, idx).long()  # (B, K)
        rows = (gids * n_days + d[:, None]).reshape(-1)  # row of (guide, day) in the flat table
        flat = beta.permute(0, 2, 1).reshape(-1, n_fates)  # ((G + 1) * D, F)
        picked = flat.index_select(0, rows).reshape(*gids.shape, n_fates)  # (B, K, F)
        eta = eta + (picked * data.mask.index_select(0, idx)[:, :, None]).sum(dim=1)
    return torch.cat([torch.zeros_like(eta[:, :1]), eta], dim=1)


def soft_cross_entropy(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(B,) sum_f p[i, f] log softmax(logits)[i, f]."""
    return (probs * torch.log_softmax(logits, dim=-1)).sum(-1)


def _half_normal(scale: float, shape, device) -> dist.Distribution:
    return dist.HalfNormal(torch.full(shape, scale, device=device)).to_event(len(shape))


def _normal(scale: float, shape, device) -> dist.Distribution:
    return dist.Normal(torch.zeros(shape, device=device), scale).to_event(len(shape))


def effect_prior(df: float, shape, device) -> dist.Distribution:
    """Prior of z (L, F, D): Normal(0, 1), or with df > 0 a multivariate t over the D days of each gene x fate.

    The t is a Normal scale mixture with one scale per gene and fate (lambda^2 ~ InvGamma(df/2, df/2),
    integrated out): a gene with a large effect is barely shrunk, while the many null genes still
    pull the shared scales tau and sigma_time down. With a Normal prior those shared scales are
    the mean square over all genes, so a sparse truth shrinks every real effect toward zero.
    """
    if df <= 0:
        return _normal(1.0, shape, device)
    n_days = shape[-1]
    return dist.MultivariateStudentT(torch.tensor(float(df), device=device), torch.zeros(shape, device=device),
                                     torch.eye(n_days, device=device)).to_event(len(shape) - 1)


def deviation_prior(df: float, shape, device) -> dist.Distribution:
    """Prior of u (G, F): Normal(0, 1), or with df > 0 a Student t, for the same reason as ``effect_prior``:
    sigma_guide is shared by all genes, and null genes whose guides all do nothing pull it toward 0."""
    if df <= 0:
        return _normal(1.0, shape, device)
    return dist.StudentT(torch.full(shape, float(df), device=device), 0.0, 1.0).to_event(len(shape))


class FateModel:
    """Callable pyro model; ``batch`` is a LongTensor of cell indices (or None for all cells)."""

    def __init__(self, data: FateData, priors: Priors, likelihood_weight: float = 1.0, use_guides: bool = True):
        self.data, self.priors, self.w, self.use_guides = data, priors, float(likelihood_weight), use_guides

    def globals(self) -> dict[str, torch.Tensor]:
        data, p, dev = self.data, self.priors, self.data.probs.device
        F, D, R, L, G = data.n_fates, data.n_days, data.n_replicates, data.n_genes, data.n_guides
        out = {
            "alpha": pyro.sample("alpha", _normal(p.s_alpha, (F, D), dev)),
            "b": pyro.sample("b", _normal(p.s_rep, (F, R), dev)),
            "gamma": pyro.sample("gamma", _normal(p.s_gamma, (F,), dev)),
        }
        if self.use_guides:
            out["tau"] = pyro.sample("tau", _half_normal(p.s_tau, (F,), dev))
            out["sigma_time"] = pyro.sample("sigma_time", _half_normal(p.s_time, (F, D - 1), dev))
            out["sigma_guide"] = pyro.sample("sigma_guide", _half_normal(p.s_guide, (F,), dev))
            out["z"] = pyro.sample("z", effect_prior(p.effect_df, (L, F, D), dev))
            out["u"] = pyro.sample("u", deviation_prior(p.effect_df, (G, F), dev))
        return out

    def __call__(self, batch: torch.Tensor | None = None) -> None:
        data = self.data
        g = self.globals()
        beta = None
        if self.use_guides:
            theta = theta_from_z(g["z"], g["tau"], g["sigma_time"])
            delta = delta_from_u(g["u"], g["sigma_guide"], data)
            beta = beta_table(theta, delta, data)
        with pyro.plate("cells", data.n_cells, subsample=batch) as idx:
            logits = cell_logits(idx, data, g["alpha"], g["b"], g["gamma"], beta, self.use_guides)
            pyro.factor("soft_labels", self.w * soft_cross_entropy(logits, data.probs.index_select(0, idx)))
