"""Calibration of fate-fit on 25,000-cell simulations: interval coverage and day-wise recall (docs/fate.md).

Two generators: the default simulator (the model's own prior; `fatescope simulate --n-cells 25000
--n-perturbed-genes 100 --guides-per-gene 4 --n-ntc-guides 41 --moi 5 --frac-hit-genes 0.21
--dirichlet-conc 50`) and `fatescope.simulate.alt_effects` (written independently of the model).
Each case fits with the defaults (one torch thread), summarises 300 draws, scores 90% intervals
against the truth, and scores mash (conservative) + rank calls day by day for every fate.

    .venv/bin/python bench/fate_calibration.py --seeds 1 2 3 --out bench/fate_calibration_results.json
    .venv/bin/python bench/fate_calibration.py --before ...     # the defaults before issue 14 (Normal priors, guide sds)
    .venv/bin/python bench/fate_calibration.py --one-group ...  # t priors without the null group (--null-sd 0)
    .venv/bin/python bench/fate_calibration.py --no-efficiency ...  # without guide efficiencies (--s-eff 0)
    .venv/bin/python bench/fate_calibration.py --merge a.json b.json --out all.json  # pool runs made in parallel

Results: `fate_calibration_results.json` (the defaults, seeds 1-24), `fate_calibration_before_em.json`
(the defaults of session 15, before the Laplace-EM scales), `fate_calibration_em_only.json` (the
Laplace-EM without the scales' uncertainty, a state of session 16's change), `*_no_efficiency.json`,
`*_one_group.json`.

The output ends with ``pooled``: per generator, coverage over every effect of every seed (one
realisation's coverage of ~110-170 nonzero effects, correlated within genes, moves by +-0.04 from
seed to seed, so the bar is read on the pool), day-wise recall, and the recall of the clear hits
(|theta| >= 0.3; the calling rule needs P(|theta| >= 0.2) >= 0.9, so hits just above 0.2 are found
only when their estimate lands well above it), and the day-wise recall bound: the recall an unbiased
Normal estimate with the fit's posterior sd would reach under that rule (``recall_bound``), and with the sd
rescaled so the nonzero effects' z-scores have sd 1 (``recall_bound_calibrated``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

CLEAR = 0.3  # |theta| of the hits scored as "clear" (the truth threshold and the calling rule's is 0.2)


def simulate(kind: str, seed: int, n_cells: int, n_genes: int):
    if kind == "own":
        from fatescope.fate.synthetic import simulated_cells
        adata, truth, _ = simulated_cells(seed=seed, n_cells=n_cells, n_perturbed_genes=n_genes, guides_per_gene=4,
                                          n_ntc_guides=max(1, 41 * n_genes // 100), moi=5, frac_hit_genes=0.21,
                                          dirichlet_conc=50)
        return adata, truth
    from fatescope.simulate.alt_effects import AltParams, alt_simulation
    return alt_simulation(AltParams(seed=seed, n_cells=n_cells, n_genes=n_genes, n_ntc_guides=max(1, 41 * n_genes // 100)))


def calls_by_day(post, truth, folder: Path) -> dict:
    import pandas as pd

    from fatescope.cli import mash, rank
    from fatescope.fate.export import gene_table
    from fatescope.fate.recovery import hit_metrics
    out = {}
    for fate in post.fates:
        gene_table(post, fate).to_csv(folder / f"gene_{fate}.csv", index=False)
        mash.run([str(folder / f"gene_{fate}.csv")], outdir=str(folder / fate / "mash"), mode="conservative", device="cpu")
        rank.run(str(folder / fate / "mash" / "mash_gene_conservative.csv"), outdir=str(folder / fate / "rank"))
        hits = pd.read_csv(folder / fate / "rank" / "hits_ranked.csv")
        m = hit_metrics(hits, truth, fate)
        out[fate] = {day: {k: v[k] for k in ("tp", "fp", "fn", "recall")} for day, v in m["by_day"].items()}
        clear = clear_hits_found(hits, truth, fate)
        for day in out[fate]:
            out[fate][day]["clear"] = clear.get(day, [0, 0])
    return out


def clear_hits_found(hits, truth, fate: str) -> dict:
    """Per day, [called, all] among the hits clear of the calling threshold (|theta| >= CLEAR): a daywise
    call needs P(|theta| >= 0.2) >= 0.9, so a true effect just above 0.2 is called only when its
    estimate lands ~1.3 sd above it."""
    called = hits.assign(gene=hits["gene"].astype(str)).set_index("gene")
    t = truth[(truth["fate"].astype(str) == fate) & (truth["theta"].abs() >= CLEAR)]
    return {day: [int(called.loc[grp["gene"].astype(str), f"hit_{day}"].astype(bool).sum()), len(grp)]
            for day, grp in t.groupby(t["day"].astype(str))}


def call_probability(theta: np.ndarray, sd: np.ndarray, threshold: float = 0.2, tail: float = 0.9) -> np.ndarray:
    """P(the daywise rule calls the effect) for an unbiased Normal estimate m ~ N(theta, sd^2) judged with sd: the
    rule needs P(|N(m, sd^2)| >= threshold) >= tail (its lfsr < 0.05 follows), i.e. |m| >= c with
    Phi((c - threshold) / sd) + Phi((-threshold - c) / sd) = tail, c found by bisection."""
    lo, hi = np.full_like(sd, threshold), threshold + 10 * sd
    for _ in range(60):
        mid = (lo + hi) / 2
        above = stats.norm.cdf((mid - threshold) / sd) + stats.norm.cdf((-threshold - mid) / sd) >= tail
        lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
    a = np.abs(theta)
    return stats.norm.cdf((a - hi) / sd) + stats.norm.cdf((-a - hi) / sd)


def recall_bound(merged, scale: float = 1.0) -> dict:
    """Per day, [expected calls, true hits]: the recall an unbiased estimate with the fit's posterior sd (times
    ``scale``) would reach under the daywise rule -- what no shrinkage toward zero and exact centring would give."""
    hits = merged[merged["is_hit"].astype(bool)]
    return {day: [float(call_probability(g["theta"].to_numpy(), scale * g["sd"].to_numpy()).sum()), len(g)]
            for day, g in hits.groupby(hits["day"].astype(str))}


def case(kind: str, seed: int, n_cells: int, n_genes: int, before: bool, one_group: bool = False,
         no_efficiency: bool = False) -> dict:
    import torch

    from fatescope.fate.encoding import encode
    from fatescope.fate.export import long_theta, summarise
    from fatescope.fate.fit import FitConfig, fit
    from fatescope.fate.model import Priors
    from fatescope.fate.recovery import coverage, join_truth, recovery_metrics
    torch.set_num_threads(1)
    adata, truth = simulate(kind, seed, n_cells, n_genes)
    enc = encode(adata, None)
    priors = Priors(effect_df=0.0, null_sd=0.0, s_eff=0.0) if before else Priors(null_sd=0.0, s_eff=0.0) if one_group \
        else Priors(s_eff=0.0) if no_efficiency else Priors()
    config = FitConfig(device="cpu", posterior="guide" if before else "laplace")
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(enc, priors, config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    post = summarise(result.guide, result.model.data, enc, num_draws=300, seed=0)
    merged = join_truth(long_theta(post), truth)
    m = recovery_metrics(merged, 0.9)
    covered, nonzero = coverage(merged, 0.9), (merged["theta"] != 0).to_numpy()
    z_sd = float(((merged["mean"] - merged["theta"]) / merged["sd"])[nonzero].std())
    with tempfile.TemporaryDirectory() as tmp:
        calls = calls_by_day(post, truth, Path(tmp))
    pooled = {day: sum(calls[f][day]["tp"] for f in calls) / max(1, sum(calls[f][day]["tp"] + calls[f][day]["fn"] for f in calls))
              for day in calls[post.fates[0]]}
    point = result.guide.point()
    return {"generator": kind, "seed": seed, "n_cells": n_cells, "n_genes": n_genes,
            "defaults": "before" if before else "one-group" if one_group else "no-efficiency" if no_efficiency else "current",
            "null_frac": point["null_frac"].tolist() if "null_frac" in point else None,
            "sigma_eff": float(point["sigma_eff"]) if "sigma_eff" in point else None,
            "tau": point["tau"].tolist(), "sigma_time": point["sigma_time"].tolist(),
            "counts": {"nonzero": [int(covered[nonzero].sum()), int(nonzero.sum())],
                       "null": [int(covered[~nonzero].sum()), int((~nonzero).sum())]},
            "steps": result.steps, "fit_cpu_s": round(cpu, 1), "fit_wall_s": round(wall, 1), "notes": result.notes,
            "coverage_nonzero": m["overall"]["coverage_nonzero"], "coverage_null": m["overall"]["coverage_null"],
            "pearson_r": m["overall"]["pearson_r"],
            "by_day": {d: [v["coverage_nonzero"], v["coverage_null"]] for d, v in m["by_day"].items()},
            "daywise_recall_pooled": pooled, "calls": calls, "z_sd_nonzero": z_sd,
            "recall_bound": recall_bound(merged), "recall_bound_calibrated": recall_bound(merged, z_sd)}


def day_recall(rows: list[dict], day: str) -> float:
    calls = [r["calls"][f][day] for r in rows for f in r["calls"]]
    return sum(c["tp"] for c in calls) / max(1, sum(c["tp"] + c["fn"] for c in calls))


def clear_recall(rows: list[dict], day: str) -> float:
    found = [r["calls"][f][day]["clear"] for r in rows for f in r["calls"]]
    return sum(c for c, _ in found) / max(1, sum(n for _, n in found))


def pool(rows: list[dict]) -> dict:
    """Coverage, day-wise recall and clear-hit recall over every effect of ``rows`` (one generator)."""
    out = {group: sum(r["counts"][group][0] for r in rows) / sum(r["counts"][group][1] for r in rows)
           for group in ("nonzero", "null")}
    days = list(rows[0]["calls"][next(iter(rows[0]["calls"]))])
    out["day0_recall"] = day_recall(rows, "d0")
    out["recall"] = {d: day_recall(rows, d) for d in days}
    if all("clear" in r["calls"][f][d] for r in rows for f in r["calls"] for d in days):
        out["clear_recall"] = {d: clear_recall(rows, d) for d in days}
    for key in ("recall_bound", "recall_bound_calibrated"):
        if all(key in r for r in rows):
            out[key] = {d: sum(r[key][d][0] for r in rows) / sum(r[key][d][1] for r in rows) for d in days}
    out["seeds"] = [r["seed"] for r in rows]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=["own", "independent"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--cells", type=int, default=25000)
    parser.add_argument("--genes", type=int, default=100)
    parser.add_argument("--before", action="store_true", help="the defaults before issue 14 (Normal priors, the guide's sds)")
    parser.add_argument("--one-group", action="store_true", help="t priors without the null group (--null-sd 0)")
    parser.add_argument("--no-efficiency", action="store_true", help="the current defaults without guide efficiencies (--s-eff 0)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="pool the cases of earlier outputs (e.g. seeds run in parallel) instead of fitting")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.merge:
        rows = [r for f in args.merge for r in json.loads(Path(f).read_text())["cases"]]
    else:
        rows = [case(kind, seed, args.cells, args.genes, args.before, args.one_group, args.no_efficiency)
                for kind in args.generators for seed in args.seeds]
    pooled = {kind: pool([r for r in rows if r["generator"] == kind]) for kind in dict.fromkeys(r["generator"] for r in rows)}
    text = json.dumps({"cases": rows, "pooled": pooled}, indent=1, default=float)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
