"""Posterior summaries of a fitted mash mixture: mean, sd, lfsr (ashr's definition), in batches.

For component p with prior covariance U, noise Sigma_j and L L' = U + Sigma_j: with W = L^-1 U and
z = L^-1 bhat_j, the posterior mean is mu1 = W'z and the posterior variances are
diag(U) - colsums(W^2) (= diag of U - U (U + Sigma_j)^-1 U); one Cholesky per (effect, component)
also gives the log-likelihood, so fixg computes both in one pass. Per condition, a zero posterior
variance marks a point mass at zero (it counts toward the zero probability, as in mashr);
otherwise P(effect < 0) = Phi(-mu1 / sd1). lfsr = 1 - P(neg) when P(neg) > (1 - P(zero)) / 2, else
P(neg) + P(zero), clipped at 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..logs import progress
from .data import MashData
from ..device import resolve_device
from .likelihood import DTYPE, noise_cov, row_batches, safe_cholesky

FIELDS = ("mean", "sd", "lfsr", "zero_prob", "neg_prob")
BATCH_VALUES = 2 ** 24  # doubles of work arrays per row batch of the posterior computation


@dataclass
class MashPosterior:
    """Per effect and condition: mash posterior mean, sd, lfsr and the zero / negative probabilities behind it."""
    mean: np.ndarray
    sd: np.ndarray
    lfsr: np.ndarray
    zero_prob: np.ndarray
    neg_prob: np.ndarray

    @classmethod
    def concat(cls, parts: list[MashPosterior]) -> MashPosterior:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))

    def rows(self, start: int, stop: int) -> MashPosterior:
        return MashPosterior(*(getattr(self, f)[start:stop] for f in FIELDS))


def posterior_weights(pi: np.ndarray, rel_loglik: np.ndarray) -> np.ndarray:
    """J x P posterior component probabilities from row-normalised log-likelihoods."""
    d = np.exp(rel_loglik) * pi
    return d / d.sum(axis=1, keepdims=True)


def compute_lfsr(neg: np.ndarray, zero: np.ndarray) -> np.ndarray:
    lfsr = np.where(neg > 0.5 * (1 - zero), 1 - neg, neg + zero)
    return np.maximum(lfsr, 0.0)


def component_moments(b: torch.Tensor, shat: torch.Tensor, V: torch.Tensor, U: torch.Tensor, common: bool):
    """(loglik J x P, mu1 J x P x R, var1 J x P x R); ``shat`` is one row when ``common``."""
    R = U.shape[-1]
    if common:
        L, ok = safe_cholesky(U + noise_cov(shat, V))                                   # P x R x R
        W = torch.linalg.solve_triangular(L, U, upper=False)                             # P x R x R
        Linv = torch.linalg.solve_triangular(L, torch.eye(R, dtype=U.dtype, device=U.device).expand_as(L), upper=False)
        z = torch.einsum("pab,jb->jpa", Linv, b)
        mu1 = torch.einsum("pac,jpa->jpc", W, z)
        var1 = (torch.diagonal(U, dim1=-2, dim2=-1) - (W * W).sum(-2)).expand(b.shape[0], -1, -1)
    else:
        L, ok = safe_cholesky(U[None] + noise_cov(shat, V)[:, None])                    # J x P x R x R
        J, P = L.shape[:2]
        rhs = torch.cat([U.expand(J, -1, -1, -1), b[:, None, :, None].expand(-1, P, -1, 1)], dim=-1)
        X = torch.linalg.solve_triangular(L, rhs, upper=False)
        W, z = X[..., :R], X[..., R]
        mu1 = (W * z[..., None]).sum(-2)
        var1 = torch.diagonal(U, dim1=-2, dim2=-1) - (W * W).sum(-2)
    logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    ll = -0.5 * R * math.log(2 * math.pi) - logdet - 0.5 * (z * z).sum(-1)
    return torch.where(ok, ll, torch.full_like(ll, -math.inf)), mu1, var1


def summarise(mu1: torch.Tensor, var1: torch.Tensor, w: torch.Tensor, sa: torch.Tensor) -> MashPosterior:
    """Mix the per-component moments with weights w (J x P); scale back by shat^alpha (J x R)."""
    mu1 = mu1 * sa[:, None, :]
    var1 = var1.clamp_min(0) * (sa ** 2)[:, None, :]
    w = w[..., None]
    zero = var1 == 0
    sd1 = torch.sqrt(var1)
    neg = torch.special.ndtr(-mu1 / torch.where(zero, torch.ones_like(sd1), sd1))
    neg = torch.where(zero, torch.zeros_like(neg), neg)
    mean = (w * mu1).sum(1)
    sd = torch.sqrt(((w * (mu1 ** 2 + var1)).sum(1) - mean ** 2).clamp_min(0))
    zero_p, neg_p = (w * zero).sum(1).cpu().numpy(), (w * neg).sum(1).cpu().numpy()
    return MashPosterior(mean.cpu().numpy(), sd.cpu().numpy(), compute_lfsr(neg_p, zero_p), zero_p, neg_p)


def _batches(data: MashData, P: int, dev: torch.device, span: tuple[int, int] | None = None,
             budget: int = BATCH_VALUES):
    """Yield (rows, bhat, shat (one row when common), shat_alpha) tensors per row batch; with ``span`` only the
    batches that overlap rows [start, stop), whole: the batches are fixed by the data, never by the span."""
    J, R = data.bhat.shape
    common = data.common_shat()
    batches = [b for b in row_batches(J, P, 1 if common else R + 1, budget=budget)
               if span is None or (b.start < span[1] and b.stop > span[0])]
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=DTYPE, device=dev)

    for rows in progress(batches, desc="mash posteriors", total=len(batches)):
        yield rows, t(data.bhat[rows]), t(data.shat[rows.start] if common else data.shat[rows]), t(data.shat_alpha[rows])


def compute_posterior(data: MashData, xU: np.ndarray, weights: np.ndarray, device: str = "auto") -> MashPosterior:
    """MashPosterior mean, sd, lfsr of every effect under the components ``xU`` with posterior ``weights`` (J x P)."""
    dev = resolve_device(device)
    U, V = torch.as_tensor(xU, dtype=DTYPE, device=dev), torch.as_tensor(data.V, dtype=DTYPE, device=dev)
    parts = []
    for rows, b, shat, sa in _batches(data, len(xU), dev):
        _, mu1, var1 = component_moments(b, shat, V, U, data.common_shat())
        parts.append(summarise(mu1, var1, torch.as_tensor(weights[rows], dtype=DTYPE, device=dev), sa))
    return MashPosterior.concat(parts)


def fixg_posterior(data: MashData, xU: np.ndarray, pi: np.ndarray, device: str = "auto",
                   span: tuple[int, int] | None = None, budget: int = BATCH_VALUES) -> tuple[MashPosterior, np.ndarray]:
    """Posteriors and per-effect marginal log-likelihoods under fixed weights ``pi`` (> 0), one factorisation per
    pair, of every effect or of rows ``span`` = (start, stop) only.

    Each row's numbers are those of the whole-table run to the bit: the rows are computed in the whole table's
    batches (a batch's arithmetic -- vectorised loops, matrix products -- can depend on its size and a row's
    place in it), so a span computes the batches it overlaps and keeps its rows. ``budget`` sizes the batches.
    """
    J = data.n_effects
    start, stop = (0, J) if span is None else span
    if not 0 <= start <= stop <= J:
        raise ValueError(f"rows [{start}, {stop}) are not within the {J} effects")
    dev = resolve_device(device)
    U, V = torch.as_tensor(xU, dtype=DTYPE, device=dev), torch.as_tensor(data.V, dtype=DTYPE, device=dev)
    logpi = torch.log(torch.as_tensor(pi, dtype=DTYPE, device=dev))
    parts, lls = [], []
    for rows, b, shat, sa in _batches(data, len(xU), dev, (start, stop), budget):
        ll, mu1, var1 = component_moments(b, shat, V, U, data.common_shat())
        lw = ll + logpi
        norm = torch.logsumexp(lw, dim=1)
        keep = max(start, rows.start) - rows.start, min(stop, rows.stop) - rows.start
        lls.append((norm - torch.log(sa).sum(1)).cpu().numpy()[keep[0]:keep[1]])
        parts.append(summarise(mu1, var1, torch.exp(lw - norm[:, None]), sa).rows(*keep))
    if not parts:
        return MashPosterior(*(np.empty((0, data.n_conditions)) for _ in FIELDS)), np.empty(0)
    return MashPosterior.concat(parts), np.concatenate(lls)
