"""Hit calling and ranking from mash posteriors, and the comparison of the two modes.

Daywise call at day d: lfsr_d < lfsr threshold and P(|effect| >= min_abs_effect) >= tail_prob_thresh,
the tail from Normal(postmean, postsd). Any-day call: the smallest lfsr corrected across days
(Bonferroni by default: times the number of days, capped at 1) below the threshold and at least
``min_active_days`` active days (days with lfsr below the threshold).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

CORRECTIONS = ("bonferroni", "none")


@dataclass(frozen=True)
class CallThresholds:
    lfsr_thresh_day: float = 0.05
    min_abs_effect: float = 0.2
    tail_prob_thresh: float = 0.9
    min_active_days: int = 1
    correction: str = "bonferroni"


def tail_prob(mean: np.ndarray, sd: np.ndarray, threshold: float) -> np.ndarray:
    """P(|X| >= threshold) for X ~ Normal(mean, sd); sd = 0 gives the indicator."""
    safe = np.where(sd > 0, sd, 1.0)
    p = ndtr((mean - threshold) / safe) + ndtr((-threshold - mean) / safe)
    return np.where(sd > 0, p, (np.abs(mean) >= threshold).astype(float))


def corrected_lfsr(lfsr: np.ndarray, correction: str) -> np.ndarray:
    """Any-day lfsr per effect: min over days, Bonferroni-corrected unless ``correction`` is 'none'."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    best = lfsr.min(axis=1)
    return np.minimum(best * lfsr.shape[1], 1.0) if correction == "bonferroni" else best


def call_hits(fields: dict[str, np.ndarray], t: CallThresholds) -> dict[str, np.ndarray]:
    pm, psd, lfsr = fields["postmean"], fields["postsd"], fields["lfsr"]
    tail = tail_prob(pm, psd, t.min_abs_effect)
    active = lfsr < t.lfsr_thresh_day
    anyday_lfsr = corrected_lfsr(lfsr, t.correction)
    return {"tail": tail, "daywise": active & (tail >= t.tail_prob_thresh), "active_days": active.sum(axis=1),
            "anyday_lfsr": anyday_lfsr,
            "anyday": (anyday_lfsr < t.lfsr_thresh_day) & (active.sum(axis=1) >= t.min_active_days)}


def rank_hits(ids: pd.DataFrame, days: list[str], fields: dict[str, np.ndarray], t: CallThresholds) -> pd.DataFrame:
    """One row per effect, hits first, then by any-day lfsr and the size of the best day's effect."""
    calls = call_hits(fields, t)
    best = np.argmin(fields["lfsr"], axis=1)
    rows = np.arange(len(best))
    out = ids.reset_index(drop=True).copy()
    out["hit_anyday"] = calls["anyday"]
    out["lfsr_anyday"] = calls["anyday_lfsr"]
    out["active_days"] = calls["active_days"]
    out["n_daywise_hits"] = calls["daywise"].sum(axis=1)
    out["best_day"] = np.asarray(days)[best]
    out["postmean_best"] = fields["postmean"][rows, best]
    out["postsd_best"] = fields["postsd"][rows, best]
    for j, d in enumerate(days):
        out[f"hit_{d}"] = calls["daywise"][:, j]
        out[f"lfsr_{d}"] = fields["lfsr"][:, j]
        out[f"postmean_{d}"] = fields["postmean"][:, j]
        out[f"tailprob_{d}"] = calls["tail"][:, j]
    key = pd.DataFrame({"h": ~out["hit_anyday"], "l": out["lfsr_anyday"], "m": -np.abs(out["postmean_best"])})
    order = key.sort_values(["h", "l", "m"], kind="mergesort").index
    out = out.loc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _agreement(scope: str, calls_a, calls_b, pm_a, pm_b) -> dict:
    both = calls_a & calls_b
    same_sign = np.sign(pm_a[both]) == np.sign(pm_b[both])
    union = int((calls_a | calls_b).sum())
    varies = pm_a.size > 1 and np.std(pm_a) > 0 and np.std(pm_b) > 0
    corr = float(np.corrcoef(pm_a.ravel(), pm_b.ravel())[0, 1]) if varies else float("nan")
    return {"scope": scope, "calls_conservative": int(calls_a.sum()), "calls_enriched": int(calls_b.sum()),
            "overlap": int(both.sum()), "union": union, "jaccard": both.sum() / union if union else float("nan"),
            "sign_concordance": float(same_sign.mean()) if both.any() else float("nan"), "postmean_correlation": corr}


def compare_modes(days: list[str], cons: dict[str, np.ndarray], enr: dict[str, np.ndarray], t: CallThresholds) -> pd.DataFrame:
    """Calls per mode, overlap, sign concordance and postmean correlation: any-day, then each day.

    ``cons`` and ``enr`` hold the same effects in the same order (aligned by the caller).
    """
    ca, cb = call_hits(cons, t), call_hits(enr, t)
    best_a = cons["postmean"][np.arange(len(cons["lfsr"])), np.argmin(cons["lfsr"], axis=1)]
    best_b = enr["postmean"][np.arange(len(enr["lfsr"])), np.argmin(enr["lfsr"], axis=1)]
    rows = [_agreement("anyday", ca["anyday"], cb["anyday"], best_a, best_b)]
    every_day = _agreement("", ca["anyday"], cb["anyday"], cons["postmean"], enr["postmean"])
    rows[0]["postmean_correlation"] = every_day["postmean_correlation"]      # any-day scope: all genes x days
    for j, d in enumerate(days):
        rows.append(_agreement(d, ca["daywise"][:, j], cb["daywise"][:, j], cons["postmean"][:, j], enr["postmean"][:, j]))
    return pd.DataFrame(rows)
