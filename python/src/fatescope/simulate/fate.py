"""Fate effects with planted truth, and the fate probabilities they imply (docs/fate-model spec).

For each non-reference fate f: day intercepts alpha[f, d], replicate effects b[f, r] (sum zero),
burden slope gamma[f], gene-by-day effects theta[l, f, d] (a random walk for hit genes, exactly 0
for null genes), guide deviations delta[g, f] (mean zero within gene), beta = theta + delta.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .guides import NO_GUIDE
from .params import FATES, REFERENCE_FATE, SimParams

NON_REFERENCE_FATES = tuple(f for f in FATES if f != REFERENCE_FATE)
PROB_FLOOR = 1e-6  # observed fate probabilities are kept at least this far from 0


@dataclass(frozen=True)
class FateEffects:
    alpha: np.ndarray        # (F, D) day intercepts, increasing over days
    b: np.ndarray            # (F, R) replicate effects, each row sums to 0
    gamma: np.ndarray        # (F,) guide-burden slope
    tau: np.ndarray          # (F,) scale of day-0 effects
    sigma_time: np.ndarray   # (F, D-1) random-walk step scale of interval d-1 -> d
    sigma_guide: np.ndarray  # (F,) guide-deviation scale
    theta: np.ndarray        # (L, F, D) gene-by-day effects; rows of null genes are exactly 0
    delta: np.ndarray        # (G, F) guide deviations of the targeting guides
    hit_gene: np.ndarray     # (L,) bool: the gene has a planted (nonzero) effect
    gene_of_guide: np.ndarray  # (G,) perturbed-gene index of each targeting guide

    @property
    def beta(self) -> np.ndarray:
        """(G, F, D) guide-level effects theta[l(g)] + delta[g]."""
        return self.theta[self.gene_of_guide] + self.delta[:, :, None]


def _tail_normal(rng: np.random.Generator, shape: tuple[int, ...], lower: float) -> np.ndarray:
    """Standard normal draws conditioned on |z| >= lower (redrawn until they are)."""
    z = rng.standard_normal(shape)
    while (small := np.abs(z) < lower).any():
        z[small] = rng.standard_normal(int(small.sum()))
    return z


def hit_paths(rng: np.random.Generator, n: int, tau: np.ndarray, sigma_time: np.ndarray) -> np.ndarray:
    """(n, F, D) random walks theta_0 = tau z_0, theta_d = theta_{d-1} + sigma_time[d] z_d.

    z_0 is drawn with |z_0| >= 1 (so |theta_0| >= tau), and a path whose last-day effect is
    below tau is redrawn whole (at most about half are), so every hit is at least tau away
    from zero at both ends of the time course while the steps in between stay Gaussian.
    """
    n_fates, n_steps = sigma_time.shape

    def draw(k: int) -> np.ndarray:
        z0 = _tail_normal(rng, (k, n_fates), 1.0)
        steps = sigma_time[None] * rng.standard_normal((k, n_fates, n_steps))
        return np.cumsum(np.concatenate([(tau * z0)[:, :, None], steps], axis=2), axis=2)

    paths = draw(n)
    while (weak := np.abs(paths[:, :, -1]) < tau).any():
        genes, fates = np.nonzero(weak)
        paths[genes, fates] = draw(len(genes))[np.arange(len(genes)), fates]
    return paths


def draw_fate_effects(rng: np.random.Generator, params: SimParams, gene_of_guide: np.ndarray) -> FateEffects:
    """Draw every fate-model parameter for ``gene_of_guide`` (targeting guide -> perturbed gene).

    Hit genes follow ``hit_paths``; null genes have theta exactly 0 on every day.
    """
    n_fates, n_days, n_reps = len(NON_REFERENCE_FATES), params.n_days, params.n_replicates
    n_genes = params.n_perturbed_genes
    steps = rng.uniform(0.25, 0.6, size=(n_fates, n_days - 1))
    alpha = rng.normal(-0.5, 0.25, size=(n_fates, 1)) + np.concatenate([np.zeros((n_fates, 1)), np.cumsum(steps, axis=1)], axis=1)
    b = rng.normal(0.0, 0.15, size=(n_fates, n_reps))
    b -= b.mean(axis=1, keepdims=True)
    gamma = rng.normal(0.0, 0.05, size=n_fates)
    tau = np.full(n_fates, params.s_tau)
    sigma_time = params.s_time * rng.uniform(0.7, 1.3, size=(n_fates, n_days - 1))
    sigma_guide = np.full(n_fates, params.s_guide)

    hit_gene = np.zeros(n_genes, bool)
    hit_gene[rng.choice(n_genes, size=int(round(params.frac_hit_genes * n_genes)), replace=False)] = True
    theta = np.zeros((n_genes, n_fates, n_days))
    theta[hit_gene] = hit_paths(rng, int(hit_gene.sum()), tau, sigma_time)

    u = rng.standard_normal((len(gene_of_guide), n_fates))
    counts = np.bincount(gene_of_guide, minlength=n_genes)
    gene_mean_u = np.stack([np.bincount(gene_of_guide, weights=u[:, f], minlength=n_genes) for f in range(n_fates)], axis=1)
    gene_mean_u /= np.maximum(counts, 1)[:, None]
    delta = sigma_guide * (u - gene_mean_u[gene_of_guide])
    return FateEffects(alpha, b, gamma, tau, sigma_time, sigma_guide, theta, delta, hit_gene, gene_of_guide)


def fate_logits(effects: FateEffects, guides: np.ndarray, day_index: np.ndarray, replicate_index: np.ndarray,
                mean_burden: float) -> np.ndarray:
    """(N, len(FATES)) eta; the reference fate's column is 0.

    eta[i, f] = alpha[f, d_i] + b[f, r_i] + gamma[f] (k_i - mean k) + sum of beta[g, f, d_i]
    over the cell's targeting guides (NTC guides and padding add nothing).
    """
    n_targeting = len(effects.gene_of_guide)
    burden = (guides != NO_GUIDE).sum(axis=1)
    beta = effects.beta  # (G, F, D)
    padded = np.concatenate([beta, np.zeros((1, *beta.shape[1:]))], axis=0)  # last row: NTC / padding
    rows = np.where((guides == NO_GUIDE) | (guides >= n_targeting), n_targeting, guides)
    guide_sum = padded[rows, :, day_index[:, None]].sum(axis=1)  # (N, F)
    eta = (effects.alpha[:, day_index].T + effects.b[:, replicate_index].T
           + np.outer(burden - mean_burden, effects.gamma) + guide_sum)
    out = np.zeros((len(guides), len(FATES)))
    out[:, [FATES.index(f) for f in NON_REFERENCE_FATES]] = eta
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def observed_fate_probs(rng: np.random.Generator, pi: np.ndarray, concentration: float) -> np.ndarray:
    """Noisy observed probabilities ~ Dirichlet(concentration * pi), floored and renormalised.

    Drawn as normalised Gamma variates; a row whose draws all underflow keeps its true pi.
    """
    draws = rng.gamma(concentration * pi)
    total = draws.sum(axis=1, keepdims=True)
    probs = np.where(total > 0, draws / np.where(total > 0, total, 1.0), pi)
    probs = np.maximum(probs, PROB_FLOOR)
    return probs / probs.sum(axis=1, keepdims=True)
