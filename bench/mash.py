#!/usr/bin/env python
"""Benchmark the Python mash engine against mashr (via Rscript when present, else mashr's recorded timings).

Cases: (1) simple_sims(5000, 4, 1) = 20,000 x 4, canonical covariances, mash() defaults;
(2) 1M x 4 effects with unequal standard errors, weights fitted on a 20,000-effect subset, then
posteriors for all 1M effects in batches (fixg); (3) GTEx strong z-scores 1,000 x 44 (canonical).
Each case runs in its own process so the peak RSS is the case's own. Writes a markdown table.

    python bench/mash.py [--out bench/mash_results.md] [--cases sims20k,fixg1m,gtex]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GTEX = SHARED / "data" / "mashr_gtex" / "gtex_strong_z_1000x44.csv"
# mashr 0.2.79 on this machine class (2 cores, reference BLAS): shared/reference/README.md
RECORDED_MASHR = {"sims20k": "4.0-4.3 s user (simple_sims(5000, 4, 1), canonical, mash() defaults)"}
RECORDED_MASHR_SECONDS = {"sims20k": 4.2}


def simple_sims(nsamp: int, ncond: int, err_sd: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """mashr's simple_sims: null, independent, condition-1-only and equal effects, nsamp each."""
    B = np.zeros((4 * nsamp, ncond))
    B[nsamp:2 * nsamp] = rng.normal(size=(nsamp, ncond))
    B[2 * nsamp:3 * nsamp, 0] = rng.normal(size=nsamp)
    B[3 * nsamp:] = rng.normal(size=(nsamp, 1))
    return B + rng.normal(scale=err_sd, size=B.shape), np.full(B.shape, err_sd)


def case_data(case: str):
    rng = np.random.default_rng(1)
    if case == "sims20k":
        return simple_sims(5000, 4, 1.0, rng)
    if case == "fixg1m":
        bhat, _ = simple_sims(250_000, 4, 1.0, rng)
        shat = rng.uniform(0.5, 2.0, size=bhat.shape)
        return bhat * shat, shat
    if case == "gtex":
        import pandas as pd
        z = pd.read_csv(GTEX, index_col=0, float_precision="round_trip").to_numpy(np.float64)
        return z, np.ones_like(z)
    raise ValueError(case)


def run_python(case: str) -> dict:
    """Run one case in this process; returns seconds (wall, CPU) and peak RSS."""
    from fatescope.shrink.covariances import cov_canonical
    from fatescope.shrink.data import set_data
    from fatescope.shrink.engine_python import FitOptions, apply_fit, fit_mash

    bhat, shat = case_data(case)
    names = [f"c{i + 1}" for i in range(bhat.shape[1])]
    w0, c0 = time.perf_counter(), time.process_time()
    data = set_data(bhat, shat)
    opts = FitOptions(device="cpu")
    if case == "fixg1m":
        train = data.subset(np.sort(np.random.default_rng(0).choice(data.n_effects, 20_000, replace=False)))
        fit, _ = fit_mash(train, cov_canonical(data.n_conditions, names), names, opts)
        post, loglik = apply_fit(fit, data, device="cpu")
    else:
        fit, post = fit_mash(data, cov_canonical(data.n_conditions, names), names, opts)
        loglik = fit.loglik
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"case": case, "shape": list(bhat.shape), "wall_s": wall, "cpu_s": cpu, "peak_rss_gib": rss,
            "loglik": loglik, "n_sig_0.05": int((post.lfsr.min(axis=1) < 0.05).sum())}


R_BENCH = r"""
suppressPackageStartupMessages(library(mashr))
a = commandArgs(TRUE); B = as.matrix(read.csv(a[1])); S = as.matrix(read.csv(a[2]))
data = mash_set_data(B, S)
t = system.time(m <- mash(data, cov_canonical(data), verbose = FALSE))
cat(t[["user.self"]], t[["elapsed"]], get_loglik(m), "\n")
"""


def run_mashr(case: str) -> dict | None:
    if case == "fixg1m" or shutil.which("Rscript") is None:
        return None
    ok = subprocess.run(["Rscript", "-e", "library(mashr)"], check=False, capture_output=True).returncode == 0
    if not ok:
        return None
    import tempfile

    import pandas as pd
    bhat, shat = case_data(case)
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(bhat).to_csv(f"{tmp}/b.csv", index=False)
        pd.DataFrame(shat).to_csv(f"{tmp}/s.csv", index=False)
        Path(f"{tmp}/run.R").write_text(R_BENCH)
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "Rscript", f"{tmp}/run.R", f"{tmp}/b.csv", f"{tmp}/s.csv"],
                             check=False, capture_output=True, text=True)
    user, elapsed, loglik = map(float, out.stdout.split())
    return {"cpu_s": user, "wall_s": elapsed, "loglik": loglik, "peak_rss_gib": int(out.stderr.split()[-1]) / 1024 ** 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="sims20k,fixg1m,gtex")
    ap.add_argument("--out", default=str(REPO / "bench" / "mash_results.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_python(args.one)))
        return
    rows = ["| case | effects x conditions | Python engine wall / CPU (s) | peak RSS (GiB) | mashr CPU (s) | speed-up (CPU) | log-lik |",
            "|---|---|---|---|---|---|---|"]
    for case in args.cases.split(","):
        if case == "gtex" and not GTEX.exists():
            print(f"skip gtex: {GTEX} not found", file=sys.stderr)
            continue
        out = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True, text=True, check=True)
        py = json.loads(out.stdout.strip().splitlines()[-1])
        r = run_mashr(case)
        if r is not None:
            ref, speed = f"{r['cpu_s']:.2f} (measured)", f"{r['cpu_s'] / py['cpu_s']:.1f}x"
        elif case in RECORDED_MASHR_SECONDS:
            ref, speed = f"{RECORDED_MASHR[case]} (recorded)", f"{RECORDED_MASHR_SECONDS[case] / py['cpu_s']:.1f}x"
        else:
            ref, speed = "n/a (mashr not installed)", "n/a"
        rows.append(f"| {case} | {py['shape'][0]:,} x {py['shape'][1]} | {py['wall_s']:.2f} / {py['cpu_s']:.2f} | "
                    f"{py['peak_rss_gib']:.2f} | {ref} | {speed} | {py['loglik']:.3f} |")
        print(rows[-1], file=sys.stderr)
    Path(args.out).write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
