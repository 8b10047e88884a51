"""Condition-by-condition adaptive shrinkage (ashr ``ash``, normal mixture, point mass at zero).

Used as mashr's ``mash_1by1`` to pick the strong effects for the data-driven covariances:
grid of prior sds from ``autoselect_grid`` with 0 prepended, nullbiased prior (nullweight 10),
weights by mix-SQP, posteriors with components of weight <= 1e-10 pruned, lfsr as ashr defines it.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from .grid import autoselect_grid
from .mixsqp import mixsqp
from .posterior import compute_lfsr


def ash_normal(betahat: np.ndarray, se: np.ndarray, gridmult: float = math.sqrt(2), nullweight: float = 10.0,
               pi_thresh: float = 1e-10) -> dict[str, np.ndarray]:
    """Fit ash to one condition; returns pi, mixsd, PosteriorMean, PosteriorSD, lfsr."""
    sd = np.concatenate([[0.0], autoselect_grid(betahat, se, gridmult)])
    k = len(sd)
    total = np.sqrt(se[:, None] ** 2 + sd[None] ** 2)
    llik = -0.5 * math.log(2 * math.pi) - np.log(total) - 0.5 * (betahat[:, None] / total) ** 2
    lik = np.exp(llik - llik.max(axis=1, keepdims=True))
    prior = np.ones(k)
    prior[0] = nullweight
    keep = (lik.max(axis=0) > 0) | (prior > 1)
    extra = prior[keep] - 1
    rows = np.flatnonzero(extra != 0)
    A = np.vstack([np.eye(int(keep.sum()))[rows], lik[:, keep]])
    w = np.concatenate([extra[rows], np.ones(len(betahat))])
    pi = np.zeros(k)
    pi[keep], _ = mixsqp(A, w, np.ones(int(keep.sum())))
    pi = np.maximum(pi, 0)
    use = pi > pi_thresh
    p, s0, tot = pi[use] / pi[use].sum(), sd[use], total[:, use]
    lpost = llik[:, use] + np.log(p)
    post = np.exp(lpost - lpost.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    shrink = se[:, None] ** 2 / tot ** 2
    mu1 = (1 - shrink) * betahat[:, None]
    sd1 = np.sqrt(s0[None] ** 2 * se[:, None] ** 2 / tot ** 2)
    pmean = (post * mu1).sum(axis=1)
    psd = np.sqrt(np.maximum((post * (mu1 ** 2 + sd1 ** 2)).sum(axis=1) - pmean ** 2, 0))
    zero = np.maximum(post[:, s0 == 0].sum(axis=1), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf0 = np.where(s0[None] == 0, 1.0, ndtr(-mu1 / np.where(sd1 == 0, 1.0, sd1)))
    neg = np.maximum((post * cdf0).sum(axis=1) - zero, 0)
    return {"pi": pi, "mixsd": sd, "PosteriorMean": pmean, "PosteriorSD": psd, "lfsr": compute_lfsr(neg, zero)}


def mash_1by1_lfsr(bhat: np.ndarray, shat: np.ndarray) -> np.ndarray:
    """J x R ash lfsr, one condition at a time (mashr ``mash_1by1``)."""
    return np.column_stack([ash_normal(bhat[:, r], shat[:, r])["lfsr"] for r in range(bhat.shape[1])])


def strong_effects(bhat: np.ndarray, shat: np.ndarray, thresh: float = 0.05) -> np.ndarray:
    """Sorted row indices whose smallest 1-by-1 lfsr is below ``thresh`` (``get_significant_results``)."""
    return np.flatnonzero(mash_1by1_lfsr(bhat, shat).min(axis=1) < thresh)
