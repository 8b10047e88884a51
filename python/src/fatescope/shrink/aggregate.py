"""Guide -> gene: fixed-effect meta-analysis of guide-level mash posteriors, per gene and day.

Weights 1/postsd^2; gene postmean = weighted mean, postsd = 1/sqrt(sum of weights); lfsr from
Normal(postmean, postsd) = Phi(-|postmean| / postsd); active_days = days with lfsr below the day threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

SD_FLOOR = 1e-12   # a guide with postsd 0 (all posterior mass on the null) gets a very large, finite weight


def normal_lfsr(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """lfsr of Normal(mean, sd): the probability of the sign opposite to the mean."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, ndtr(-np.abs(mean) / np.where(sd > 0, sd, 1.0)), np.where(mean == 0, 1.0, 0.0))


def aggregate_guides(genes: pd.Series, postmean: np.ndarray, postsd: np.ndarray, lfsr_thresh_day: float = 0.05
                     ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per gene (sorted by first appearance): (ids with n_guides, {postmean, postsd, lfsr}) arrays G x D."""
    codes, uniques = pd.factorize(genes, sort=False)
    G = len(uniques)
    w = 1.0 / np.maximum(postsd, SD_FLOOR) ** 2
    sum_w = np.zeros((G, postmean.shape[1]))
    sum_wm = np.zeros_like(sum_w)
    np.add.at(sum_w, codes, w)
    np.add.at(sum_wm, codes, w * postmean)
    mean = sum_wm / sum_w
    sd = 1.0 / np.sqrt(sum_w)
    lfsr = normal_lfsr(mean, sd)
    ids = pd.DataFrame({"gene": uniques.astype(str), "n_guides": np.bincount(codes, minlength=G)})
    ids["active_days"] = (lfsr < lfsr_thresh_day).sum(axis=1)
    return ids, {"postmean": mean, "postsd": sd, "lfsr": lfsr}
