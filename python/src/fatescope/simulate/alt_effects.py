"""A second fate-effect generator, written independently of the fate model's prior (a calibration check).

The default simulator draws effects from the model's own prior (a Gaussian random walk over days,
additive mean-zero guide deviations). This one does not:

- effect sizes are heavy-tailed (|effect| = 0.25 + 0.3 |t_3|, capped at 2.5: a few large effects);
- each affected gene x fate follows a day profile that is not a random walk: constant, late onset
  (zero before a random day, so some hits have no day-0 effect), transient bump, ramp or decay;
- genes may affect one fate only;
- guides act through a knockdown efficiency (Beta(5, 1.5)): guide effect = efficiency x gene
  profile, so guide deviations change over days (the model's are time-invariant);
- guide abundance is uneven (log-normal weights), MOI is overdispersed (negative binomial),
  samples have unequal cell counts and the Dirichlet concentration varies from cell to cell.

The truth scored against the fit is the mean over a gene's guides of the guide effects, which is
the quantity the model's theta is defined as; null genes are exactly 0 for every guide.
"""
from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .params import FATES, TRUTH_THRESHOLD

PROFILES = ("constant", "onset", "transient", "ramp", "decay")
NON_REFERENCE = FATES[1:]


@dataclass(frozen=True)
class AltParams:
    seed: int = 0
    n_cells: int = 25000
    n_genes: int = 100
    n_days: int = 4
    n_replicates: int = 2
    guides_per_gene: int = 4
    n_ntc_guides: int = 41
    moi: float = 5.0
    moi_shape: float = 4.0          # negative-binomial size (lower = more overdispersed MOI)
    kmax: int = 20
    ntc_frac: float = 0.1
    frac_hit_genes: float = 0.21
    concentration: float = 50.0     # mean Dirichlet concentration; per cell ~ Gamma(10, mean / 10)


def day_profile(rng: np.random.Generator, kind: str, n_days: int) -> np.ndarray:
    """(n_days,) profile with maximum |value| 1."""
    t = np.linspace(0.0, 1.0, n_days)
    if kind == "constant":
        return np.ones(n_days)
    if kind == "onset":
        return (np.arange(n_days) >= rng.integers(1, n_days)).astype(float)
    if kind == "transient":
        bump = np.exp(-(((t - rng.uniform(0.3, 0.7)) / 0.3) ** 2))
        return bump / bump.max()
    if kind == "ramp":
        return 0.3 + 0.7 * t
    return 1.0 - 0.75 * t  # decay: strongest on day 0


def gene_effects(rng: np.random.Generator, p: AltParams) -> tuple[np.ndarray, np.ndarray]:
    """(L, F, D) gene-level effect profiles and the (L,) hit mask."""
    n_fates = len(NON_REFERENCE)
    effects = np.zeros((p.n_genes, n_fates, p.n_days))
    hit = np.zeros(p.n_genes, bool)
    hit[rng.choice(p.n_genes, size=int(round(p.frac_hit_genes * p.n_genes)), replace=False)] = True
    for gene in np.nonzero(hit)[0]:
        which = rng.choice(3, p=[0.25, 0.25, 0.5])  # MES only, NEU only, both
        for f in ([which] if which < 2 else range(n_fates)):
            size = min(2.5, 0.25 + 0.3 * abs(rng.standard_t(3)))
            effects[gene, f] = rng.choice([-1.0, 1.0]) * size * day_profile(rng, rng.choice(PROFILES), p.n_days)
    return effects, hit


def assign(rng: np.random.Generator, p: AltParams, n_cells: int) -> list[np.ndarray]:
    """Per cell, distinct library indices: NB(moi, moi_shape) guides truncated at kmax, uneven abundance."""
    n_target = p.n_genes * p.guides_per_gene
    weights = rng.lognormal(0.0, 0.6, size=n_target + p.n_ntc_guides)
    w_target = weights[:n_target] / weights[:n_target].sum()
    w_ntc = weights[n_target:] / weights[n_target:].sum()
    k = rng.negative_binomial(p.moi_shape, p.moi_shape / (p.moi_shape + p.moi), size=n_cells)
    while (over := k > p.kmax).any():
        k[over] = rng.negative_binomial(p.moi_shape, p.moi_shape / (p.moi_shape + p.moi), size=int(over.sum()))
    n_ntc = np.minimum(rng.binomial(k, p.ntc_frac), p.n_ntc_guides)
    return [np.concatenate([rng.choice(n_target, size=k_i - c, replace=False, p=w_target),
                            n_target + rng.choice(p.n_ntc_guides, size=c, replace=False, p=w_ntc)])
            for k_i, c in zip(k, n_ntc)]


def alt_simulation(p: AltParams = AltParams()) -> tuple[ad.AnnData, pd.DataFrame]:
    """(QC-like AnnData with the keys fate-fit reads, truth table ``gene, fate, day, theta, is_hit, hit_gene``)."""
    rng = np.random.default_rng(np.random.SeedSequence(p.seed, spawn_key=(101,)))
    F, D, R, L = len(NON_REFERENCE), p.n_days, p.n_replicates, p.n_genes
    genes = [f"ALT{i:03d}" for i in range(L)]
    effects, _ = gene_effects(rng, p)
    efficiency = rng.beta(5.0, 1.5, size=(L, p.guides_per_gene))
    guide_effect = efficiency[:, :, None, None] * effects[:, None]          # (L, guides, F, D)
    truth = guide_effect.mean(axis=1)                                        # what theta estimates
    guide_effect = guide_effect.reshape(L * p.guides_per_gene, F, D)
    alpha = np.stack([np.linspace(-1.0, 0.6, D), np.linspace(0.2, -0.6, D)]) + rng.normal(0, 0.1, (F, D))
    b = rng.normal(0.0, 0.15, (F, R))
    b -= b.mean(axis=1, keepdims=True)
    gamma = rng.normal(0.0, 0.05, F)

    share = rng.dirichlet(np.full(D * R, 8.0))
    sample = rng.choice(D * R, size=p.n_cells, p=share)
    day, rep = sample // R, sample % R
    guides = assign(rng, p, p.n_cells)
    burden = np.array([len(g) for g in guides], float)
    eta = alpha[:, day].T + b[:, rep].T + np.outer(burden - burden.mean(), gamma)
    n_target = L * p.guides_per_gene
    for i, g in enumerate(guides):
        t = g[g < n_target]
        eta[i] += guide_effect[t, :, day[i]].sum(axis=0)
    logits = np.concatenate([np.zeros((p.n_cells, 1)), eta], axis=1)
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    conc = rng.gamma(10.0, p.concentration / 10.0, size=(p.n_cells, 1))
    probs = np.maximum(rng.gamma(conc * pi), 1e-6)
    probs /= probs.sum(axis=1, keepdims=True)

    names = [f"{gene}_g{j + 1}" for gene in genes for j in range(p.guides_per_gene)] + \
            [f"NTC_{i + 1:02d}" for i in range(p.n_ntc_guides)]
    gene_of = [gene for gene in genes for _ in range(p.guides_per_gene)] + ["NTC"] * p.n_ntc_guides
    rows = np.repeat(np.arange(p.n_cells), [len(g) for g in guides])
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(guides))), shape=(p.n_cells, len(names)))
    obs = pd.DataFrame({"day": pd.Categorical([f"d{d}" for d in day]), "replicate": pd.Categorical([f"r{r + 1}" for r in rep])},
                       index=pd.Index([f"cell{i}" for i in range(p.n_cells)]))
    adata = ad.AnnData(X=sp.csr_matrix((p.n_cells, 1), dtype=np.float32), obs=obs)
    adata.obsm["guides"], adata.obsm["fate_probs"] = matrix, probs
    adata.uns["guide_names"], adata.uns["guide_genes"] = np.asarray(names), np.asarray(gene_of)
    adata.uns["guide_is_ntc"] = np.asarray([n == "NTC" for n in gene_of])
    adata.uns["fate_names"] = np.asarray(FATES)
    table = pd.DataFrame({"gene": np.repeat(genes, F * D), "fate": np.tile(np.repeat(NON_REFERENCE, D), L),
                          "day": np.tile([f"d{d}" for d in range(D)], L * F), "theta": truth.ravel(),
                          "hit_gene": np.repeat((truth != 0).any(axis=2).ravel(), D)})
    table.insert(4, "is_hit", np.abs(table["theta"].to_numpy()) >= TRUTH_THRESHOLD)
    return adata, table
