"""Benchmark of the fate model's training step: time per 1,000 steps and peak memory vs N and batch size.

Synthetic encoding with the issue's sizes (G = 2,000 guides over L = 300 genes, D = 4 days,
R = 2 replicates, K_max = 20, MOI ~5 truncated Poisson, 10% NTC, 3 fates), the default guide
and a fixed likelihood weight (the estimate's extra nuisance fit is a one-off full-batch L-BFGS).
Each case runs in a fresh spawned process, so its peak RSS (ru_maxrss) is its own; time is the
SVI loop only (after a short warm-up), extrapolated to 1,000 steps; CPU time (all threads of
the process) is reported too, as wall time on a shared machine is inflated by other jobs.

    .venv/bin/python bench/fate_fit.py --out bench/fate_fit_results.json            # N = 10k, 100k, 1M
    .venv/bin/python bench/fate_fit.py --cells 100000 --batch-sizes 2048 8192 32768  # linear in B
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time


def synthetic_encoding(n_cells: int, n_guides: int = 2000, n_genes: int = 300, n_days: int = 4, n_reps: int = 2,
                       k_max: int = 20, moi: float = 5.0, ntc_frac: float = 0.1, seed: int = 0):
    import numpy as np

    from fatescope.fate.encoding import Encoding
    rng = np.random.default_rng(seed)
    k = rng.poisson(moi, n_cells)
    while (over := k > k_max).any():
        k[over] = rng.poisson(moi, int(over.sum()))
    ids = rng.integers(1, n_guides + 1, size=(n_cells, k_max), dtype=np.int32)  # duplicates are harmless here
    ids[rng.random((n_cells, k_max)) < ntc_frac] = 0
    mask = (np.arange(k_max)[None, :] < k[:, None]).astype(np.float32)
    ids[mask == 0] = 0
    probs = rng.dirichlet(np.ones(3) * 5, size=n_cells).astype(np.float32)
    gene_of_guide = np.concatenate([[0], 1 + np.arange(n_guides) % n_genes]).astype(np.int64)
    return Encoding(ids, mask, gene_of_guide, rng.integers(0, n_days, n_cells), rng.integers(0, n_reps, n_cells), k,
                    (k - k.mean()).astype(np.float32), probs, ["EC", "MES", "NEU"], [f"d{d}" for d in range(n_days)],
                    [f"r{r + 1}" for r in range(n_reps)], [f"g{g}" for g in range(n_guides)], [f"L{l}" for l in range(n_genes)],
                    [], k_max)


def case(n_cells: int, batch_size: int, steps: int, warmup: int, guide: str, device: str, threads: int, auto_weight: bool,
         queue) -> None:
    import torch
    if threads > 0:
        torch.set_num_threads(threads)

    from fatescope.fate.export import summarise
    from fatescope.fate.fit import FitConfig, fit
    enc = synthetic_encoding(n_cells)
    # posterior "guide": the process CPU time below is then the SVI loop's (the joint Laplace step, ~100 CPU s at
    # 100k cells, would otherwise be counted in it); draws come from the guide
    base = dict(batch_size=batch_size, guide=guide, likelihood_weight=None if auto_weight else 50.0, device=device,
                plateau_window=10 ** 9, seed=0, posterior="guide")
    warm = fit(enc, config=FitConfig(num_steps=warmup, min_steps=warmup, **base))
    cpu0 = time.process_time()
    res = fit(enc, config=FitConfig(num_steps=steps, min_steps=steps, **base))
    cpu = time.process_time() - cpu0
    t = time.perf_counter()
    summarise(res.guide, res.model.data, enc, num_draws=1000)
    draws_s = time.perf_counter() - t
    queue.put({"n_cells": n_cells, "batch_size": batch_size, "guide": guide, "device": device, "steps_timed": steps,
               "likelihood_weight": "estimated (2 phases, full-data residual passes)" if auto_weight else 50.0,
               "seconds_per_1000_steps": round(1000 * res.seconds / steps, 2),
               "cpu_seconds_per_1000_steps": round(1000 * cpu / steps, 2), "warmup_s": round(warm.seconds, 2),
               "posterior_1000_draws_s": round(draws_s, 2), "threads": torch.get_num_threads(),
               "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3)})


def run_case(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=case, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8192])
    p.add_argument("--steps", type=int, default=300, help="timed steps per case (extrapolated to 1,000)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--guide", default="structured")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--auto-weight", action="store_true", help="estimate the likelihood weight (memory of the full-data passes)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    rows = []
    for n in a.cells:
        for b in a.batch_sizes:
            rows.append(run_case(n, b, a.steps, a.warmup, a.guide, a.device, a.threads, a.auto_weight))
            sys.stderr.write(json.dumps(rows[-1]) + "\n")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
