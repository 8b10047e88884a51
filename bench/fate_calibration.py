"""Calibration of fate-fit on 25,000-cell simulations: interval coverage and day-wise recall (docs/fate.md).

Two generators: the default simulator (the model's own prior; `fatescope simulate --n-cells 25000
--n-perturbed-genes 100 --guides-per-gene 4 --n-ntc-guides 41 --moi 5 --frac-hit-genes 0.21
--dirichlet-conc 50`) and `fatescope.simulate.alt_effects` (written independently of the model).
Each case fits with the defaults (one torch thread), summarises 300 draws, scores 90% intervals
against the truth, and scores mash (conservative) + rank calls day by day for every fate.

    .venv/bin/python bench/fate_calibration.py --seeds 1 2 3 --out bench/fate_calibration_results.json
    .venv/bin/python bench/fate_calibration.py --before ...   # the previous defaults (Normal priors, guide sds)
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


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
        m = hit_metrics(pd.read_csv(folder / fate / "rank" / "hits_ranked.csv"), truth, fate)
        out[fate] = {day: {k: v[k] for k in ("tp", "fp", "fn", "recall")} for day, v in m["by_day"].items()}
    return out


def case(kind: str, seed: int, n_cells: int, n_genes: int, before: bool) -> dict:
    import torch

    from fatescope.fate.encoding import encode
    from fatescope.fate.export import long_theta, summarise
    from fatescope.fate.fit import FitConfig, fit
    from fatescope.fate.model import Priors
    from fatescope.fate.recovery import join_truth, recovery_metrics
    torch.set_num_threads(1)
    adata, truth = simulate(kind, seed, n_cells, n_genes)
    enc = encode(adata, None)
    priors = Priors(effect_df=0.0) if before else Priors()
    config = FitConfig(device="cpu", posterior="guide" if before else "laplace")
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(enc, priors, config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    post = summarise(result.guide, result.model.data, enc, num_draws=300, seed=0)
    m = recovery_metrics(join_truth(long_theta(post), truth), 0.9)
    with tempfile.TemporaryDirectory() as tmp:
        calls = calls_by_day(post, truth, Path(tmp))
    pooled = {day: sum(calls[f][day]["tp"] for f in calls) / max(1, sum(calls[f][day]["tp"] + calls[f][day]["fn"] for f in calls))
              for day in calls[post.fates[0]]}
    return {"generator": kind, "seed": seed, "n_cells": n_cells, "n_genes": n_genes, "defaults": "before" if before else "after",
            "steps": result.steps, "fit_cpu_s": round(cpu, 1), "fit_wall_s": round(wall, 1), "notes": result.notes,
            "coverage_nonzero": m["overall"]["coverage_nonzero"], "coverage_null": m["overall"]["coverage_null"],
            "pearson_r": m["overall"]["pearson_r"],
            "by_day": {d: [v["coverage_nonzero"], v["coverage_null"]] for d, v in m["by_day"].items()},
            "daywise_recall_pooled": pooled, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=["own", "independent"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--cells", type=int, default=25000)
    parser.add_argument("--genes", type=int, default=100)
    parser.add_argument("--before", action="store_true", help="the previous defaults (Normal priors, the guide's sds)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = [case(kind, seed, args.cells, args.genes, args.before) for kind in args.generators for seed in args.seeds]
    text = json.dumps(rows, indent=1, default=float)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
