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
    null_sd: float = 0.1  # > 0: z's prior is two-group, null_frac N(0, null_sd^2 I) + (1 - null_frac) t; 0: t alone

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
    def entries(self) -> "GuideEntries":
        return GuideEntries.from_data(self)

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


@dataclass
class GuideEntries:
    """The (cell, slot) pairs that can move a logit (guide id > 0, mask != 0) as compressed rows over cells.

    Cell i's entries are ``ptr[i]:ptr[i + 1]``; ``rows`` is the row of (guide, day of the cell) in the
    flat beta table, ``weight`` the mask value. With MOI ~5 of K_max = 20 slots this is a quarter of
    the padded (cell, slot) grid, and the dominant gather of a training step shrinks with it; slots
    with guide 0 (NTC, padding) hit beta's hard-zero row, so dropping them changes no logit.
    """
    ptr: torch.Tensor            # (N + 1,) int64
    rows: torch.Tensor           # (nnz,) int64 (index_add with int32 indices is ~10x slower on the CPU)
    weight: torch.Tensor | None  # (nnz,) float32, or None when every weight is 1 (the encoding's 0/1 mask)

    @classmethod
    def from_data(cls, data: "FateData") -> "GuideEntries":
        keep = (data.guide_ids > 0) & (data.mask != 0)
        count = keep.sum(1)
        ptr = torch.zeros(data.n_cells + 1, dtype=torch.long, device=keep.device)
        ptr[1:] = count.cumsum(0)
        rows = data.guide_ids[keep].long() * data.n_days + data.day.repeat_interleave(count)
        weight = data.mask[keep]
        return cls(ptr, rows, None if bool((weight == 1).all()) else weight)

    def select(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(position in ``idx``, table row, weight or None) of every entry of the cells ``idx``."""
        start = self.ptr.index_select(0, idx)
        count = self.ptr.index_select(0, idx + 1) - start
        pos = torch.repeat_interleave(count)
        first = torch.cumsum(count, 0) - count  # where each cell's entries begin in the selection
        entry = torch.arange(pos.shape[0], device=pos.device) + (start - first).index_select(0, pos)
        return pos, self.rows.index_select(0, entry), None if self.weight is None else self.weight.index_select(0, entry)


def guide_effects(idx: torch.Tensor, data: FateData, beta: torch.Tensor) -> torch.Tensor:
    """(F, B) sum over the guides of each cell ``idx`` of mask * beta[guide, :, day of the cell]."""
    n_fates = beta.shape[-2]
    pos, rows, weight = data.entries.select(idx)
    flat = beta.permute(1, 0, 2).reshape(n_fates, -1)  # (F, (G + 1) * D): column guide * D + day
    picked = flat.index_select(1, rows)
    if weight is not None:
        picked = picked * weight.to(flat.dtype)
    return flat.new_zeros(n_fates, idx.shape[0]).index_add(1, pos, picked)


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
    """(B, F + 1) logits of cells ``idx``; column 0 is the reference fate (0).

    Built fates-first, (F + 1, B), and returned as a transposed view: on the CPU, torch's gathers and
    softmax over a trailing dimension of 2 or 3 are several times slower than over a leading one.
    """
    d = data.day.index_select(0, idx)
    eta = (alpha.index_select(1, d) + center(b).index_select(1, data.replicate.index_select(0, idx))
           + gamma[:, None] * data.burden_centered.index_select(0, idx))
    if use_guides:
        eta = eta + guide_effects(idx, data, beta)
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

    def __init__(self, null_frac: torch.Tensor, null_sd: float, df: float, shape, validate_args=None):
        self.null_frac, self.null_sd, self.df = null_frac, float(null_sd), float(df)
        super().__init__(torch.Size(()), torch.Size(shape), validate_args=False)

    def component_log_probs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., L, F) log null_frac + log N(z; 0, null_sd^2 I) and log(1 - null_frac) + log slab(z)."""
        n_days, s, df = z.shape[-1], self.null_sd, self.df
        r2 = (z * z).sum(-1)
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
        """(..., L, F) expected inverse prior variance of z given z (the EM weight the Laplace step uses):
        p_null / null_sd^2 + (1 - p_null) x the slab's (df + D) / (df + |z|^2) (1 for a Normal slab)."""
        p_null, n_days = self.null_probability(z), z.shape[-1]
        slab = (self.df + n_days) / (self.df + (z * z).sum(-1)) if self.df > 0 else torch.ones_like(p_null)
        return p_null / self.null_sd ** 2 + (1 - p_null) * slab

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
            if p.null_sd > 0:
                out["null_frac"] = dist.Uniform(torch.zeros(F, device=dev), torch.ones(F, device=dev)).to_event(1)
                out["z"] = self.z_prior(torch.full((F,), 0.5, device=dev) if null_frac is None else null_frac)
            else:
                out["z"] = effect_prior(p.effect_df, (L, F, D), dev)
            out["u"] = deviation_prior(p.effect_df, (G, F), dev)
        return out

    def z_prior(self, null_frac: torch.Tensor) -> TwoGroupEffects:
        d = self.data
        return TwoGroupEffects(null_frac, self.priors.null_sd, self.priors.effect_df, (d.n_genes, d.n_fates, d.n_days))

    def globals(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, d in self.prior().items():
            out[name] = pyro.sample(name, self.z_prior(out["null_frac"]) if name == "z" and "null_frac" in out else d)
        return out

    def log_likelihood(self, idx: torch.Tensor, g: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) weighted soft-label log-likelihood of cells ``idx`` given the global sites ``g``."""
        data, beta = self.data, None
        if self.use_guides:
            beta = beta_table(theta_from_z(g["z"], g["tau"], g["sigma_time"]), delta_from_u(g["u"], g["sigma_guide"], data),
                              data)
        logits = cell_logits(idx, data, g["alpha"], g["b"], g["gamma"], beta, self.use_guides)
        return self.w * soft_cross_entropy(logits, data.probs.index_select(0, idx))

    def __call__(self, batch: torch.Tensor | None = None) -> None:
        g = self.globals()
        with pyro.plate("cells", self.data.n_cells, subsample=batch) as idx:
            pyro.factor("soft_labels", self.log_likelihood(idx, g))
