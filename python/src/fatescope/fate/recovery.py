"""Recovery of planted effects: estimates (posterior mean, sd) against the simulator's truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

TRUTH_COLUMNS = ("gene", "fate", "day", "theta")
EST_COLUMNS = ("gene", "fate", "day", "mean", "sd")


def join_truth(estimates: pd.DataFrame, truth: pd.DataFrame, source: str = "sim_recovery.csv") -> pd.DataFrame:
    """Inner join on gene, fate, day; every truth row must have an estimate."""
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing}; expected {list(TRUTH_COLUMNS)}")
    truth = truth.assign(gene=truth["gene"].astype(str), fate=truth["fate"].astype(str), day=truth["day"].astype(str))
    est = estimates.assign(gene=estimates["gene"].astype(str), fate=estimates["fate"].astype(str),
                           day=estimates["day"].astype(str))
    merged = truth.merge(est, on=["gene", "fate", "day"], how="left")
    lost = merged["mean"].isna()
    if lost.any():
        example = merged.loc[lost, ["gene", "fate", "day"]].iloc[0].tolist()
        raise InputError(f"{source}: {int(lost.sum())} truth rows have no estimate (e.g. {example}); "
                         "do the fit and the simulation use the same genes, fates and days?")
    if "hit_gene" not in merged:
        merged["hit_gene"] = merged.groupby(["gene", "fate"])["theta"].transform(lambda t: (t != 0).any())
    return merged


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def coverage(merged: pd.DataFrame, level: float = 0.9) -> np.ndarray:
    z = stats.norm.ppf(0.5 + level / 2)
    return (np.abs(merged["theta"] - merged["mean"]) <= z * merged["sd"]).to_numpy()


def recovery_metrics(merged: pd.DataFrame, level: float = 0.9, fate: str | None = None) -> dict:
    """Correlation (all, genes with effects), interval coverage (nonzero truth, nulls), per day and overall."""
    if fate is not None:
        merged = merged[merged["fate"] == fate]
    covered = coverage(merged, level)
    nonzero = (merged["theta"] != 0).to_numpy()
    hit = merged["hit_gene"].to_numpy(bool)

    def block(rows: np.ndarray) -> dict:
        m = merged[rows]
        return {
            "n": int(rows.sum()),
            "pearson_r": _pearson(m["mean"].to_numpy(), m["theta"].to_numpy()),
            "pearson_r_effect_genes": _pearson(m["mean"].to_numpy()[hit[rows]], m["theta"].to_numpy()[hit[rows]]),
            "coverage_nonzero": float(covered[rows & nonzero].mean()) if (rows & nonzero).any() else None,
            "coverage_null": float(covered[rows & ~nonzero].mean()) if (rows & ~nonzero).any() else None,
            "rmse": float(np.sqrt(np.mean((m["mean"] - m["theta"]) ** 2))) if len(m) else None,
        }

    out = {"level": level, "fate": fate or "all", "overall": block(np.ones(len(merged), bool))}
    out["by_day"] = {d: block((merged["day"] == d).to_numpy()) for d in sorted(merged["day"].unique())}
    return out


def _auc(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, float | None]:
    """(AUROC, AUPRC = average precision) of ``scores`` (higher = more likely a hit)."""
    if labels.all() or not labels.any():
        return None, None
    ranks = stats.rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    auroc = (ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(auroc), float((precision * hits).sum() / n_pos)


def _calls(called: np.ndarray, truth: np.ndarray) -> dict:
    tp, fp, fn = int((called & truth).sum()), int((called & ~truth).sum()), int((~called & truth).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "fdr": None if precision is None else 1 - precision,
            "f1": f1}


def hit_metrics(hits: pd.DataFrame, truth: pd.DataFrame, fate: str, source: str = "hits_ranked.csv") -> dict:
    """Calls of the rank stage (``gene, hit_anyday, hit_<day>, lfsr_<day>``) against truth for ``fate``:
    any-day and daywise precision / recall / FDR / F1, and per-day AUROC / AUPRC of 1 - lfsr."""
    t = truth[truth["fate"].astype(str) == fate]
    if t.empty:
        raise InputError(f"{source}: truth has no rows for fate {fate!r}")
    days = sorted(t["day"].astype(str).unique())
    need = ["gene", "hit_anyday"] + [f"{p}_{d}" for d in days for p in ("hit", "lfsr")]
    missing = [c for c in need if c not in hits.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing}; expected the rank stage's hits_ranked.csv")
    h = hits.assign(gene=hits["gene"].astype(str)).set_index("gene")
    lost = sorted(set(t["gene"].astype(str)) - set(h.index))
    if lost:
        raise InputError(f"{source}: {len(lost)} genes of the truth are not in the hit table (e.g. {lost[:3]})")
    anyday_truth = t.assign(gene=t["gene"].astype(str)).groupby("gene")["is_hit"].any()
    out = {"fate": fate, "anyday": _calls(h.loc[anyday_truth.index, "hit_anyday"].astype(bool).to_numpy(), anyday_truth.to_numpy())}
    called_all, truth_all, by_day = [], [], {}
    for d in days:
        td = t[t["day"].astype(str) == d].assign(gene=lambda x: x["gene"].astype(str)).set_index("gene")["is_hit"].astype(bool)
        called = h.loc[td.index, f"hit_{d}"].astype(bool).to_numpy()
        auroc, auprc = _auc(1 - h.loc[td.index, f"lfsr_{d}"].to_numpy(float), td.to_numpy())
        by_day[d] = {**_calls(called, td.to_numpy()), "auroc": auroc, "auprc": auprc}
        called_all.append(called)
        truth_all.append(td.to_numpy())
    out["daywise"] = _calls(np.concatenate(called_all), np.concatenate(truth_all))
    out["by_day"] = by_day
    return out
