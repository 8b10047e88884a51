"""The fate-effect model (pyro) of design/fate-model.md, vectorised over cells, guides and genes.

For each non-reference fate f: alpha[f, d], b[f, r] (sum zero over replicates), gamma[f],
tau[f], sigma_time[f, j], sigma_guide[f]; non-centred z[l, f, d] and u[g, f] give
theta = random walk over days and delta = mean-zero-within-gene guide deviations.
eta[i, f] = alpha + b + gamma kc + sum_m mask beta[guide_ids[i, m], f, d_i]; eta[i, ref] = 0;
log-lik = w * sum_f p[i, f] log softmax(eta)[f] (soft-label cross-entropy), minibatched.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch

from .batches import CellBatch, GuideEntries
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
    null_sd: float = 0.1  # > 0: z's prior is two-group, null_frac N(0, null_sd^2 I) + (1 - null_frac) t; 0: t alone
    s_eff: float = 0.3  # > 0: guide efficiencies 1 + e_g scale the gene effect, sigma_eff ~ HalfNormal(s_eff); 0: none

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

    @cached_property
    def entries(self) -> GuideEntries:
        return GuideEntries.from_data(self)

    @cached_property
    def guides_per_gene(self) -> torch.Tensor:
        """(L + 1, 1) float guides per gene, at least 1 (the divisor of the within-gene mean of u)."""
        return self.gene_guide_count.clamp(min=1).float().unsqueeze(-1)

    @cached_property
    def group(self) -> torch.Tensor:
        """(N,) day * n_replicates + replicate of each cell: its column of the nuisance table."""
        return self.day * self.n_replicates + self.replicate

    @cached_property
    def all_cells(self) -> CellBatch:
        return CellBatch.gather(self, torch.arange(self.n_cells, device=self.day.device))

    def as_cells(self, batch: CellBatch | torch.Tensor | None) -> CellBatch:
        """A minibatch as ``CellBatch``: given, gathered from cell indices, or all cells (None)."""
        if batch is None:
            return self.all_cells
        return batch if isinstance(batch, CellBatch) else CellBatch.gather(self, batch)

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


def guide_effects(cells: CellBatch, beta: torch.Tensor) -> torch.Tensor:
    """(F, B) sum over the guides of each cell of mask * beta[guide, :, day of the cell]."""
    n_fates = beta.shape[-2]
    flat = beta.permute(1, 0, 2).reshape(n_fates, -1)  # (F, (G + 1) * D): column guide * D + day
    picked = flat.index_select(1, cells.rows)
    if cells.weight is not None:
        picked = picked * cells.weight.to(flat.dtype)
    return flat.new_zeros(n_fates, cells.size).index_add(1, cells.pos, picked)


def theta_from_z(z: torch.Tensor, tau: torch.Tensor, sigma_time: torch.Tensor) -> torch.Tensor:
    """(..., L, F, D) random walk: theta_0 = tau z_0, theta_d = theta_{d-1} + sigma_time[d] z_d."""
    scales = torch.cat([tau.unsqueeze(-1), sigma_time], dim=-1)  # (..., F, D)
    return torch.cumsum(z * scales.unsqueeze(-3), dim=-1)


def delta_from_u(u: torch.Tensor, sigma_guide: torch.Tensor, data: FateData) -> torch.Tensor:
    """(..., G, F) sigma_guide * (u - mean of u over the guides of the same gene)."""
    gene = data.gene_of_guide[1:]
    sums = torch.zeros(*u.shape[:-2], data.n_genes + 1, u.shape[-1], dtype=u.dtype, device=u.device)
    sums = sums.index_add(-2, gene, u)
    means = sums / data.guides_per_gene.to(u.dtype)
    return sigma_guide.unsqueeze(-2) * (u - means.index_select(-2, gene))


def efficiency_from_v(v: torch.Tensor, sigma_eff: torch.Tensor, data: FateData) -> torch.Tensor:
    """(..., G) e = sigma_eff * (v - mean of v over the guides of the same gene): guide g's effect is
    (1 + e_g) theta, so the gene's mean guide effect stays theta."""
    return delta_from_u(v.unsqueeze(-1), sigma_eff, data).squeeze(-1)


def beta_table(theta: torch.Tensor, delta: torch.Tensor, data: FateData, efficiency: torch.Tensor | None = None) -> torch.Tensor:
    """(..., G + 1, F, D) guide effects (1 + e_g) theta + delta_g with the hard zero in row 0 (NTC and padding;
    the only guide id of gene 0)."""
    zero_gene = torch.zeros_like(theta[..., :1, :, :])
    gene_effect = torch.cat([zero_gene, theta], dim=-3).index_select(-3, data.gene_of_guide)
    if efficiency is not None:
        gene_effect = gene_effect * (1 + torch.cat([torch.zeros_like(efficiency[..., :1]), efficiency], dim=-1))[..., None, None]
    delta0 = torch.cat([torch.zeros_like(delta[..., :1, :]), delta], dim=-2)
    return gene_effect + delta0.unsqueeze(-1)


def effects_table(g: dict[str, torch.Tensor], data: FateData) -> torch.Tensor:
    """``beta_table`` from the sites ``g`` (z, tau, sigma_time, u, sigma_guide and, with efficiencies, v, sigma_eff)."""
    efficiency = efficiency_from_v(g["v"], g["sigma_eff"], data) if "v" in g else None
    return beta_table(theta_from_z(g["z"], g["tau"], g["sigma_time"]), delta_from_u(g["u"], g["sigma_guide"], data),
                      data, efficiency)


def center(b: torch.Tensor) -> torch.Tensor:
    """Replicate effects with sum zero within each fate (identifiability against alpha)."""
    return b - b.mean(dim=-1, keepdim=True)


def cell_logits(cells: CellBatch, alpha, b, gamma, beta, use_guides: bool = True) -> torch.Tensor:
    """(B, F + 1) logits of ``cells``; column 0 is the reference fate (0).

    Built fates-first, (F + 1, B), and returned as a transposed view: on the CPU, torch's gathers and
    softmax over a trailing dimension of 2 or 3 are several times slower than over a leading one. The
    day and replicate terms come from one (F, D * R) table, one gather per cell.
    """
    table = (alpha.unsqueeze(-1) + center(b).unsqueeze(-2)).reshape(alpha.shape[0], -1)  # column day * R + replicate
    eta = table.index_select(1, cells.group) + gamma[:, None] * cells.burden
    if use_guides:
        eta = eta + guide_effects(cells, beta)
    return torch.cat([torch.zeros_like(eta[:1]), eta], dim=0).T


def soft_cross_entropy(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(B,) sum_f p[i, f] log softmax(logits)[i, f], the softmax taken over the leading dimension of
    ``logits.T`` (see ``cell_logits``)."""
    return (probs.T * torch.log_softmax(logits.T, dim=0)).sum(0)


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


class TwoGroupEffects(dist.TorchDistribution):
    """Prior of z (L, F, D) with ``null_sd`` > 0: each gene x fate's day vector is null with probability
    ``null_frac[f]`` (z ~ N(0, null_sd^2 I), an effect of about null_sd x the random-walk scales) and
    otherwise follows ``effect_prior``'s slab (multivariate t, or Normal with df 0).

    Why (issue 14): with one group, the shared scales tau and sigma_time are set by all genes, and in a
    screen most genes do nothing, so they settle at a fraction of the real effects' steps and every real
    effect is pulled toward its neighbours and zero. With a null group (its weight learned, MAP, like
    the scales) the nulls no longer set the slab's scales: on the issue's simulation the learned null
    fraction is 0.789 (truth 0.79) and the random-walk scales double toward their true values.
    """
    arg_constraints: dict = {}
    support = dist.constraints.real

    def __init__(self, null_frac: torch.Tensor, null_sd: float | torch.Tensor, df: float, shape, validate_args=None):
        """``null_sd``: one sd for every day, or an (F, D) tensor of sds per fate and day (the Laplace-EM's null
        group, whose width is held in theta units while the random-walk scales move)."""
        self.null_frac, self.df = null_frac, float(df)
        self.null_sd = null_sd if isinstance(null_sd, torch.Tensor) else float(null_sd)
        super().__init__(torch.Size(()), torch.Size(shape), validate_args=False)

    def component_log_probs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., L, F) log null_frac + log N(z; 0, diag(null_sd^2)) and log(1 - null_frac) + log slab(z)."""
        n_days, s, df = z.shape[-1], self.null_sd, self.df
        r2 = (z * z).sum(-1)
        if isinstance(s, torch.Tensor):
            null = (-0.5 * torch.log(2 * math.pi * s * s) - 0.5 * z * z / (s * s)).sum(-1)
        else:
            null = -0.5 * n_days * math.log(2 * math.pi * s * s) - 0.5 * r2 / (s * s)
        if df > 0:
            slab = (math.lgamma(0.5 * (df + n_days)) - math.lgamma(0.5 * df) - 0.5 * n_days * math.log(df * math.pi)
                    - 0.5 * (df + n_days) * torch.log1p(r2 / df))
        else:
            slab = -0.5 * n_days * math.log(2 * math.pi) - 0.5 * r2
        return null + torch.log(self.null_frac), slab + torch.log1p(-self.null_frac)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        null, slab = self.component_log_probs(z)
        return torch.logaddexp(null, slab).sum((-2, -1))

    def null_probability(self, z: torch.Tensor) -> torch.Tensor:
        """(..., L, F) posterior probability of the null group given z."""
        null, slab = self.component_log_probs(z)
        return torch.sigmoid(null - slab)

    def conditional_precision(self, z: torch.Tensor) -> torch.Tensor:
        """(..., L, F, D) expected inverse prior variance of z given z (the EM weight the Laplace step uses):
        p_null / null_sd^2 + (1 - p_null) x the slab's (df + D) / (df + |z|^2) (1 for a Normal slab)."""
        p_null, n_days = self.null_probability(z), z.shape[-1]
        slab = (self.df + n_days) / (self.df + (z * z).sum(-1)) if self.df > 0 else torch.ones_like(p_null)
        return p_null[..., None] / self.null_sd ** 2 + ((1 - p_null) * slab)[..., None].expand(z.shape)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.event_shape
        with torch.no_grad():
            null = torch.rand(shape[:-1], device=self.null_frac.device) < self.null_frac
            slab = effect_prior(self.df, tuple(self.event_shape), self.null_frac.device).sample(sample_shape)
            return torch.where(null.unsqueeze(-1), self.null_sd * torch.randn(shape, device=self.null_frac.device), slab)


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

    def prior(self, null_frac: torch.Tensor | None = None) -> dict[str, dist.Distribution]:
        """The prior of every global site, in the order the model samples them; with two groups, z's prior
        is the one given ``null_frac`` (a sampled value; 0.5 when None)."""
        data, p, dev = self.data, self.priors, self.data.probs.device
        F, D, R, L, G = data.n_fates, data.n_days, data.n_replicates, data.n_genes, data.n_guides
        out = {"alpha": _normal(p.s_alpha, (F, D), dev), "b": _normal(p.s_rep, (F, R), dev),
               "gamma": _normal(p.s_gamma, (F,), dev)}
        if self.use_guides:
            out.update(tau=_half_normal(p.s_tau, (F,), dev), sigma_time=_half_normal(p.s_time, (F, D - 1), dev),
                       sigma_guide=_half_normal(p.s_guide, (F,), dev))
            if p.s_eff > 0:
                out["sigma_eff"] = _half_normal(p.s_eff, (1,), dev)
            if p.null_sd > 0:
                out["null_frac"] = dist.Uniform(torch.zeros(F, device=dev), torch.ones(F, device=dev)).to_event(1)
                out["z"] = self.z_prior(torch.full((F,), 0.5, device=dev) if null_frac is None else null_frac)
            else:
                out["z"] = effect_prior(p.effect_df, (L, F, D), dev)
            out["u"] = deviation_prior(p.effect_df, (G, F), dev)
            if p.s_eff > 0:
                out["v"] = _normal(1.0, (G,), dev)
        return out

    def z_prior(self, null_frac: torch.Tensor) -> TwoGroupEffects:
        d = self.data
        return TwoGroupEffects(null_frac, self.priors.null_sd, self.priors.effect_df, (d.n_genes, d.n_fates, d.n_days))

    def globals(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, d in self.prior().items():
            out[name] = pyro.sample(name, self.z_prior(out["null_frac"]) if name == "z" and "null_frac" in out else d)
        return out

    def log_likelihood(self, cells: CellBatch, g: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) weighted soft-label log-likelihood of ``cells`` given the global sites ``g``."""
        beta = effects_table(g, self.data) if self.use_guides else None
        logits = cell_logits(cells, g["alpha"], g["b"], g["gamma"], beta, self.use_guides)
        return self.w * soft_cross_entropy(logits, cells.probs.T)

    def __call__(self, batch: CellBatch | torch.Tensor | None = None) -> None:
        """The model on a minibatch (``CellBatch`` or cell indices; all cells if None), its likelihood
        scaled by N / B."""
        g = self.globals()
        cells = self.data.as_cells(batch)
        with poutine.scale(scale=self.data.n_cells / cells.size):
            pyro.factor("soft_labels", self.log_likelihood(cells, g).sum())
