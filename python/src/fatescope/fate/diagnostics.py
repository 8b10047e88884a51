"""Model diagnostics: held-out cross-entropy, permutation negative control, known-regulator sanity."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..errors import InputError
from .encoding import Encoding
from .fit import FitResult, nuisance_logits
from .model import FateData, cell_logits, effects_table, soft_cross_entropy


def strata(enc: Encoding) -> np.ndarray:
    """Stratum id of each cell: day x replicate."""
    return enc.day * len(enc.replicates) + enc.replicate


def stratified_split(enc: Encoding, test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): ``test_frac`` of every day x replicate stratum, at least one cell each side."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    groups = strata(enc)
    for s in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == s))
        if len(rows) < 2:
            day, rep = enc.days[s // len(enc.replicates)], enc.replicates[s % len(enc.replicates)]
            raise InputError(f"day {day!r}, replicate {rep!r} has {len(rows)} cell(s); a stratified split needs at least 2")
        n_test = min(max(1, int(round(test_frac * len(rows)))), len(rows) - 1)
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    for name, rows in (("train", train), ("test", test)):
        present = set(np.unique(groups[rows]))
        assert present == set(np.unique(groups)), f"{name} split misses a day x replicate stratum"
    return train, test


def split_counts(enc: Encoding, train: np.ndarray, test: np.ndarray) -> pd.DataFrame:
    groups = strata(enc)
    rows = []
    for s in np.unique(groups):
        rows.append({"day": enc.days[s // len(enc.replicates)], "replicate": enc.replicates[s % len(enc.replicates)],
                     "n_train": int((groups[train] == s).sum()), "n_test": int((groups[test] == s).sum())})
    return pd.DataFrame(rows)


def held_out_cross_entropy(result: FitResult, test: Encoding, use_guides: bool) -> float:
    """Mean soft-label cross-entropy -sum_f p log pi of the test cells at the posterior point estimates."""
    data = FateData.from_encoding(test, result.model.data.probs.device)
    p = result.guide.point()
    idx = torch.arange(data.n_cells, device=data.probs.device)
    with torch.no_grad():
        if use_guides:
            beta = effects_table(p, data)
            logits = cell_logits(data.all_cells, p["alpha"], p["b"], p["gamma"], beta)
        else:
            logits = nuisance_logits(idx, data, p["alpha"], p["b"], p["gamma"])
        return float(-soft_cross_entropy(logits, data.probs).mean())


def burden_bins(burden: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bins of the guide burden (ties kept together)."""
    edges = np.unique(np.quantile(burden, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, burden, side="right")


def permute_guides(enc: Encoding, n_bins: int, seed: int) -> Encoding:
    """Guide sets shuffled across cells within (day, replicate, burden-bin) strata; everything else kept."""
    rng = np.random.default_rng(seed)
    key = strata(enc) * (n_bins + 1) + burden_bins(enc.burden, n_bins)
    order = np.arange(enc.n_cells)
    for s in np.unique(key):
        rows = np.flatnonzero(key == s)
        order[rows] = rng.permutation(rows)
    return dataclasses.replace(enc, guide_ids=enc.guide_ids[order], mask=enc.mask[order], burden=enc.burden[order],
                               burden_centered=enc.burden_centered[order])


def lfsr_normal(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Local false sign rate of Normal(mean, sd): the posterior mass on the other side of 0."""
    return stats.norm.cdf(-np.abs(mean) / np.maximum(sd, 1e-12))


def anyday_hits(theta_mean: np.ndarray, theta_sd: np.ndarray, lfsr: float) -> np.ndarray:
    """(L, F) any-day calls from 1-by-1 posteriors: min over days of lfsr x D (Bonferroni) < ``lfsr``."""
    n_days = theta_mean.shape[-1]
    return (lfsr_normal(theta_mean, theta_sd).min(axis=-1) * n_days) < lfsr


def sanity_table(known: pd.DataFrame, genes: list[str], theta_mean: np.ndarray, theta_sd: np.ndarray, days: list[str],
                 source: str) -> pd.DataFrame:
    """Known regulators (gene, expected_sign) against the primary contrast: observed sign of the
    effect with the smallest lfsr over days, its lfsr, and agreement."""
    cols = {c.lower(): c for c in known.columns}
    if "gene" not in cols or "expected_sign" not in cols:
        raise InputError(f"{source}: expected columns gene, expected_sign (+1/-1 or +/-); found {list(known.columns)}")
    signs = known[cols["expected_sign"]].astype(str).str.strip().map({"+": 1, "-": -1, "1": 1, "-1": -1, "+1": 1,
                                                                     "up": 1, "down": -1})
    if signs.isna().any():
        bad = known[cols["expected_sign"]][signs.isna()].iloc[0]
        raise InputError(f"{source}: expected_sign {bad!r} is not one of +1, -1, +, -, up, down")
    index = {g: i for i, g in enumerate(genes)}
    rows = []
    for gene, sign in zip(known[cols["gene"]].astype(str), signs.astype(int)):
        if gene not in index:
            rows.append({"gene": gene, "expected_sign": sign, "in_model": False})
            continue
        lf = lfsr_normal(theta_mean[index[gene]], theta_sd[index[gene]])
        d = int(np.argmin(lf))
        observed = int(np.sign(theta_mean[index[gene], d]))
        rows.append({"gene": gene, "expected_sign": sign, "in_model": True, "best_day": days[d],
                     "effect": float(theta_mean[index[gene], d]), "lfsr": float(lf[d]), "observed_sign": observed,
                     "agrees": observed == sign, "significant_agreement": bool(observed == sign and lf[d] < 0.05)})
    return pd.DataFrame(rows)
