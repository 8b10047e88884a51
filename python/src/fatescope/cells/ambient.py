"""Ambient RNA removal, CellBender-style: a VAE whose expected counts are cell signal plus an
ambient fraction times the ambient profile.

For cell i with observed library l_i, latent z_i and ambient fraction f_i:
    mu_i = l_i x ((1 - f_i) softmax(decoder(z_i)) + f_i a_s(i)),   x_i ~ NegBinomial(mu_i, r)
with a_s the ambient profile of the cell's sample (estimated from empty droplets of a raw matrix
when given, else from the lowest-UMI barcodes), r a learned per-gene dispersion, z ~ N(0, I) and
f ~ Beta(c m_i, c (1 - m_i)) a priori. Cell signal and ambient cannot separate the overall level, so
the prior sets it and the data set each cell's deviation: m_i = 10% by default, or, with empty
droplets, m_i = E[d] / l_i (CellBender's physics: a cell's droplet holds as much ambient RNA as an
empty one, d UMIs) with c_i from the spread of d over the empty droplets, Var[f_i] = Var[d] / l_i^2. The decontaminated counts are the expected cell-derived
part of each observed count: x_ij (1 - f_i) p_ij / ((1 - f_i) p_ij + f_i a_j).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..logs import get_logger, progress_bar

log = get_logger(__name__)


@dataclass(frozen=True)
class AmbientParams:
    n_latent: int = 10  # cell-state prototypes (near one-hot assignment; see AmbientVAE)
    n_hidden: int = 128
    tau: float = 0.2
    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-3
    prior_a: float = 2.0
    prior_b: float = 18.0
    empty_quantile: float = 0.05
    empty_max_umis: int = 100
    seed: int = 0

    @classmethod
    def from_prior(cls, prior_mean: float, prior_concentration: float, **options) -> AmbientParams:
        """The stage's options: the Beta prior of the ambient fraction as mean m and concentration c,
        Beta(c m, c (1 - m))."""
        return cls(prior_a=prior_concentration * prior_mean, prior_b=prior_concentration * (1 - prior_mean), **options)


def profile_from_empties(raw, raw_genes, genes, cell_barcodes, raw_barcodes, max_umis: int) -> tuple[np.ndarray, np.ndarray]:
    """Ambient profile from the barcodes of a raw matrix that are not cells and have 1..max_umis UMIs,
    and those droplets' UMI totals (the ambient RNA of one droplet)."""
    raw = sp.csr_matrix(raw)
    totals = np.asarray(raw.sum(axis=1)).ravel()
    empty = (totals > 0) & (totals <= max_umis) & ~pd.Index(raw_barcodes).isin(cell_barcodes)
    if empty.sum() < 10:
        raise InputError(f"raw matrix: only {int(empty.sum())} empty droplets with 1..{max_umis} UMIs; "
                         f"raise --empty-max-umis or drop --raw")
    summed = np.asarray(raw[np.flatnonzero(empty)].sum(axis=0)).ravel()
    pos = pd.Index(raw_genes).get_indexer(genes)
    prof = np.where(pos >= 0, summed[np.maximum(pos, 0)], 0.0) + 1e-3
    log.info("ambient: profile from %d empty droplets, %.1f UMIs each on average", int(empty.sum()), totals[empty].mean())
    return prof / prof.sum(), totals[empty].astype(np.float64)


def prior_from_empties(counts, empty_umis: np.ndarray, low: float = 1e-3, high: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the Beta prior (mean, concentration) of the ambient fraction if its droplet holds as
    many ambient UMIs d as an empty one: mean E[d] / l, variance Var[d] / l^2 (l = the cell's UMIs)."""
    lib = np.maximum(np.asarray(sp.csr_matrix(counts).sum(axis=1)).ravel(), 1.0)
    mean = np.clip(empty_umis.mean() / lib, low, high)
    var = max(float(empty_umis.var()), float(empty_umis.mean())) / lib ** 2  # at least Poisson spread
    return mean, np.clip(mean * (1 - mean) / var - 1, 2.0, 1e4)


def profile_from_low_umi(counts, samples, quantile: float) -> dict[str, np.ndarray]:
    """Per sample, the summed profile of its lowest-UMI ``quantile`` of barcodes (at least 5)."""
    counts = sp.csr_matrix(counts)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    out = {}
    for s in pd.unique(np.asarray(samples)):
        rows = np.flatnonzero(np.asarray(samples) == s)
        n = max(5, int(np.ceil(quantile * len(rows))))
        low = rows[np.argsort(totals[rows], kind="stable")[:n]]
        prof = np.asarray(counts[low].sum(axis=0)).ravel() + 1e-3
        out[str(s)] = prof / prof.sum()
    return out


class AmbientVAE(nn.Module):
    def __init__(self, n_genes: int, n_hidden: int, n_latent: int):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_genes, n_hidden), nn.LayerNorm(n_hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(n_hidden, n_latent), nn.Linear(n_hidden, n_latent)
        self.frac = nn.Linear(n_hidden, 2)  # Beta posterior parameters (softplus) of the ambient fraction
        self.dec = nn.Linear(n_latent, n_genes)
        self.log_r = nn.Parameter(torch.full((n_genes,), 2.0))
        with torch.no_grad():  # start at the prior mean fraction (~0.1) and a weak decoder
            self.frac.weight.mul_(0.01)
            self.frac.bias.copy_(torch.tensor([0.5, 8.5]))

    def init_profile(self, mean_profile: np.ndarray) -> None:
        with torch.no_grad():
            self.dec.bias.copy_(torch.log(torch.as_tensor(mean_profile, dtype=torch.float32) + 1e-8))

    def encode(self, x):
        h = self.enc(torch.log1p(x / x.sum(1, keepdim=True).clamp_min(1) * 1e4))
        ab = F.softplus(self.frac(h)) + 0.5
        return self.mu(h), self.logvar(h).clamp(-10, 10), ab[:, 0], ab[:, 1]

    def assign(self, logits: torch.Tensor, tau: float) -> torch.Tensor:
        """Near one-hot prototype weights: a cell's signal is its state's profile, so the ambient
        fraction cannot be absorbed by a continuous latent (the source of identifiability)."""
        return torch.softmax(logits / tau, dim=1)

    def parts(self, z, f, ambient):
        p = torch.softmax(self.dec(z), dim=1)
        return (1 - f)[:, None] * p, f[:, None] * ambient


def _nb_loglik(x, mu, r):
    return (torch.lgamma(x + r) - torch.lgamma(r) - torch.lgamma(x + 1) + r * torch.log(r / (r + mu))
            + x * torch.log(mu.clamp_min(1e-10) / (r + mu))).sum(1)


def decontaminate(counts, samples, profiles: dict[str, np.ndarray], params: AmbientParams = AmbientParams(),
                  device: torch.device = torch.device("cpu"), prior: tuple[np.ndarray, np.ndarray] | None = None,
                  ) -> tuple[sp.csr_matrix, np.ndarray, dict]:
    """Fit the model; return (decontaminated counts CSR float32, per-cell ambient fraction, info).

    ``prior``: per-cell (mean, concentration) of the ambient fraction's Beta prior (e.g.
    ``prior_from_empties``); default: ``params``' Beta(prior_a, prior_b) for every cell."""
    counts = sp.csr_matrix(counts, dtype=np.float32)
    samples = np.asarray(samples).astype(str)
    missing = sorted(set(samples) - set(profiles))
    if missing:
        raise InputError(f"ambient: no ambient profile for sample(s) {', '.join(missing)}")
    names = sorted(profiles)
    amb = torch.tensor(np.stack([profiles[s] for s in names]), dtype=torch.float32, device=device)
    code = torch.from_numpy(pd.Categorical(samples, categories=names).codes.astype(np.int64)).to(device)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    n, g = counts.shape
    model = AmbientVAE(g, params.n_hidden, params.n_latent)
    mean = np.asarray(counts.sum(axis=0)).ravel()
    model.init_profile(mean / mean.sum())
    model = model.to(device)
    optim = torch.optim.Adam(model.parameters(), lr=params.lr)
    if prior is None:
        m, conc = np.full(n, params.prior_a / (params.prior_a + params.prior_b)), params.prior_a + params.prior_b
    else:
        m, conc = (np.asarray(v, dtype=np.float64) for v in prior)
    prior_a = torch.tensor(conc * m, dtype=torch.float32, device=device)
    prior_b = torch.tensor(conc * (1 - m), dtype=torch.float32, device=device)
    bs = min(params.batch_size, n)
    bar = progress_bar(params.epochs, desc="ambient: epochs")
    history = []
    for _ in range(params.epochs):
        order, total = rng.permutation(n), 0.0
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            rows = torch.from_numpy(idx).to(device)
            x = torch.from_numpy(counts[idx].toarray()).to(device)
            lib = x.sum(1, keepdim=True)
            mu_z, logvar, a, b = model.encode(x)
            z = model.assign(mu_z + torch.exp(0.5 * logvar) * torch.randn_like(mu_z), params.tau)
            q = torch.distributions.Beta(a, b)
            f = q.rsample().clamp(1e-4, 1 - 1e-4)
            cell, ambient = model.parts(z, f, amb[code[rows]])
            ll = _nb_loglik(x, lib * (cell + ambient), torch.exp(model.log_r))
            kl_z = 0.5 * (torch.exp(logvar) + mu_z ** 2 - 1 - logvar).sum(1) * 0.1
            kl_f = torch.distributions.kl_divergence(q, torch.distributions.Beta(prior_a[rows], prior_b[rows]))
            loss = (-ll + kl_z + kl_f).mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
        bar.update(1)
    bar.close()
    return _posterior(model, counts, code, amb, device, params.tau) + ({"loss_history": history, "final_loss": history[-1]},)


@torch.no_grad()
def _posterior(model, counts, code, amb, device, tau, chunk: int = 4096):
    model.eval()
    rows, cols, vals, fracs = [], [], [], []
    for start in range(0, counts.shape[0], chunk):
        block = counts[start:start + chunk]
        x = torch.from_numpy(block.toarray()).to(device)
        mu_z, _, a, b = model.encode(x)
        f = a / (a + b)
        cell, ambient = model.parts(model.assign(mu_z, tau), f, amb[code[start:start + chunk]])
        keep = (cell / (cell + ambient)).cpu().numpy()
        coo = block.tocoo()
        rows.append(coo.row + start)
        cols.append(coo.col)
        vals.append(coo.data * keep[coo.row, coo.col])
        fracs.append(f.cpu().numpy())
    out = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=counts.shape)
    return out, np.concatenate(fracs).astype(np.float32)
