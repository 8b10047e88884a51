"""Posterior summaries of a fitted fate model and the tables the mash stage reads.

theta (gene x fate x day) and beta = theta[l(g)] + delta[g] (guide x fate x day) are summarised
by the mean and sd of S posterior draws; delta is mean zero within each gene in every draw, so
the QC offsets (mean delta per gene; mean over guides of beta minus theta) are ~0 by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .encoding import Encoding
from .model import FateData, delta_from_u, effects_table, theta_from_z
from .state import seeded


@dataclass(frozen=True)
class FatePosterior:
    """Posterior mean and sd of the fate effects theta, delta and beta over draws (the fate stage's summaries)."""
    theta_mean: np.ndarray  # (L, F, D)
    theta_sd: np.ndarray
    delta_mean: np.ndarray  # (G, F)
    delta_sd: np.ndarray
    beta_mean: np.ndarray   # (G, F, D)
    beta_sd: np.ndarray
    genes: list[str]
    guides: list[str]
    guide_genes: list[str]
    fates: list[str]        # non-reference fates (axis F)
    days: list[str]
    num_draws: int


class _Moments:
    def __init__(self):
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double().cpu()
        self.n += x.shape[0]
        self.s = self.s + x.sum(0)
        self.ss = self.ss + (x ** 2).sum(0)

    def mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.s / self.n
        var = (self.ss / self.n - mean ** 2).clamp(min=0) * self.n / max(self.n - 1, 1)
        return mean.numpy(), var.sqrt().numpy()


def summarise(guide, data: FateData, enc: Encoding, num_draws: int = 1000, chunk: int = 100, seed: int = 0) -> FatePosterior:
    """Mean and sd of theta, delta and beta over ``num_draws`` draws from the guide (seeded; the caller's
    random streams are left as they were)."""
    th, de, be = _Moments(), _Moments(), _Moments()
    done = 0
    with seeded(seed):
        while done < num_draws:
            n = min(chunk, num_draws - done)
            d = guide.draw(n)
            theta = theta_from_z(d["z"], d["tau"], d["sigma_time"])       # (n, L, F, D)
            delta = delta_from_u(d["u"], d["sigma_guide"], data)           # (n, G, F)
            th.add(theta)
            de.add(delta)
            be.add(effects_table(d, data)[:, 1:])
            done += n
    (tm, ts), (dm, ds), (bm, bs) = th.mean_sd(), de.mean_sd(), be.mean_sd()
    return FatePosterior(tm, ts, dm, ds, bm, bs, list(enc.gene_names), list(enc.guide_names), enc.guide_gene_names,
                     list(enc.fates[1:]), list(enc.days), num_draws)


def day_columns(days: list[str]) -> list[str]:
    return [d if d[:1].isalpha() else f"d{d}" for d in days]


def gene_table(post: FatePosterior, fate: str) -> pd.DataFrame:
    """``gene, betahat_<day>.., se_<day>..`` for one non-reference fate (contrast fate - reference)."""
    f = post.fates.index(fate)
    cols = day_columns(post.days)
    out = pd.DataFrame({"gene": post.genes})
    for j, c in enumerate(cols):
        out[f"betahat_{c}"] = post.theta_mean[:, f, j]
    for j, c in enumerate(cols):
        out[f"se_{c}"] = post.theta_sd[:, f, j]
    return out


def guide_table(post: FatePosterior, fate: str) -> pd.DataFrame:
    """``guide, gene, betahat_<day>.., se_<day>..`` from beta for one non-reference fate."""
    f = post.fates.index(fate)
    cols = day_columns(post.days)
    out = pd.DataFrame({"guide": post.guides, "gene": post.guide_genes})
    for j, c in enumerate(cols):
        out[f"betahat_{c}"] = post.beta_mean[:, f, j]
    for j, c in enumerate(cols):
        out[f"se_{c}"] = post.beta_sd[:, f, j]
    return out


def qc_delta_mean(post: FatePosterior) -> pd.DataFrame:
    """Mean posterior delta over each gene's guides, per fate (~0 by construction)."""
    frame = pd.DataFrame(post.delta_mean, columns=[f"delta_mean_{f}" for f in post.fates])
    frame.insert(0, "gene", post.guide_genes)
    table = frame.groupby("gene", sort=False).mean().reset_index()
    return table.set_index("gene").loc[post.genes].reset_index()


def qc_theta_beta_offset(post: FatePosterior) -> pd.DataFrame:
    """Per gene, fate and day: mean over the gene's guides of beta minus theta (~0 by construction)."""
    gene_index = {g: i for i, g in enumerate(post.genes)}
    rows = np.array([gene_index[g] for g in post.guide_genes])
    offset = post.beta_mean - post.theta_mean[rows]  # (G, F, D)
    cols = day_columns(post.days)
    data = {f"offset_{f}_{c}": offset[:, i, j] for i, f in enumerate(post.fates) for j, c in enumerate(cols)}
    frame = pd.DataFrame(data)
    frame.insert(0, "gene", post.guide_genes)
    return frame.groupby("gene", sort=False).mean().reindex(post.genes).reset_index()


def npz_payloads(post: FatePosterior) -> dict[str, dict[str, np.ndarray]]:
    return {
        "theta_posterior_summary.npz": dict(mean=post.theta_mean, sd=post.theta_sd, genes=np.asarray(post.genes),
                                            fates=np.asarray(post.fates), days=np.asarray(post.days),
                                            num_draws=np.asarray(post.num_draws)),
        "delta_posterior_summary.npz": dict(mean=post.delta_mean, sd=post.delta_sd, guides=np.asarray(post.guides),
                                            genes=np.asarray(post.guide_genes), fates=np.asarray(post.fates),
                                            beta_mean=post.beta_mean, beta_sd=post.beta_sd, days=np.asarray(post.days),
                                            num_draws=np.asarray(post.num_draws)),
    }


def long_theta(post: FatePosterior) -> pd.DataFrame:
    """Long ``gene, fate, day, mean, sd`` (for evaluation against truth)."""
    L, F, D = post.theta_mean.shape
    return pd.DataFrame({
        "gene": np.repeat(post.genes, F * D),
        "fate": np.tile(np.repeat(post.fates, D), L),
        "day": np.tile(post.days, L * F),
        "mean": post.theta_mean.ravel(),
        "sd": post.theta_sd.ravel(),
    })
