"""The GPU checks of issue 17 in one command: every GPU stage on CUDA against the CPU, on the same machine.

Phases, each written to ``--out`` as soon as it ends (a run stopped at its time limit still reports the
phases it finished); a phase starts only while ``--budget-s`` lasts:

1. ``environment``: torch, the GPU, and any installed package outside python/pyproject.toml's ranges.
2. ``test_profile``: ``fatescope run --profile test --run_ambient true`` (all eight GPU stages) with every
   ``*_device`` param ``cuda``, then ``cpu``: each stage's trace row (wall, CPU, peak RSS) side by side,
   the hits of both runs (they must be the same calls) and the largest differences of the posterior, mash
   and AUCell tables (over the regulons both runs found).
3. ``chunks``: on CUDA, AUCell split into cell chunks and mash posteriors split into effect chunks (one
   shared fit) against one task each, on the CUDA run's outputs: the files must be equal to the bit.
4. ``oom_fallback``: ``fatescope aucell --device cuda`` in a process whose CUDA memory is capped at a few
   bytes (a real CUDA out-of-memory error) must log it and finish on the CPU with ``--device cpu``'s numbers
   on the same inputs.
5. ``stage_speed``: the torch paths at benchmark sizes, CUDA vs this machine's CPU in the same run:
   fate-fit SVI steps (bench/fate_fit.py's case, 100,000 cells, batch 8,192), AUCell (bench/aucell.py's
   20,000 x 6,000 case: torch on CUDA vs the numba kernels) and mash posteriors under one fit
   (bench/mash.py's 1M x 4 fixg case, cut to ``--mash-effects``).

The command exits non-zero when a check of phases 2-4 fails. On a machine without CUDA it runs phases 1-3
with ``--device cpu`` against the CPU (the plumbing check; docs/nextflow.md, "GPU checks"):

    python bench/gpu_check.py --out gpu_check.json --work /tmp/gpu_check [--budget-s 420]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
DEVICE_PARAMS = ("ambient_device", "integrate_device", "grn_device", "pruning_device", "aucell_device",
                 "fate_device", "mash_device", "diag_device")


def fatescope(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fatescope", "--log-level", "WARNING", *map(str, args)],
                          capture_output=True, text=True, env=env, check=False)


def must(proc: subprocess.CompletedProcess) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(proc.args[2:])} exited {proc.returncode}:\n{proc.stderr[-4000:]}")


def environment() -> dict:
    import importlib.metadata as md
    import tomllib

    import torch
    from packaging.requirements import Requirement
    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1), cuda_runtime=torch.version.cuda)
    deps = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())["project"]["dependencies"]
    outside = {}
    for spec in map(Requirement, deps):
        try:
            version = md.version(spec.name)
        except md.PackageNotFoundError:
            version = None
        if version is None or not spec.specifier.contains(version, prereleases=True):
            outside[spec.name] = {"installed": version, "wanted": str(spec.specifier)}
    out["packages_outside_pyproject_ranges"] = outside
    return out


def trace(outdir: Path) -> dict:
    rows = pd.read_csv(outdir / "pipeline_info" / "trace.tsv", sep="\t")
    return {r["name"]: {"realtime": r["realtime"], "%cpu": r["%cpu"], "peak_rss": r["peak_rss"]} for _, r in rows.iterrows()}


def table_difference(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Largest |difference| over the numeric columns both tables have (e.g. the regulons both runs found), and
    the columns only one has."""
    common = [c for c in a.select_dtypes("number").columns if c in b.columns]
    x, y = a[common].to_numpy(np.float64), b[common].to_numpy(np.float64)
    return {"max_abs_diff": float(np.nanmax(np.abs(x - y))) if x.size else None,
            "columns_only_in_device_run": sorted(set(a.columns) - set(b.columns)),
            "columns_only_in_cpu_run": sorted(set(b.columns) - set(a.columns))}


def hit_columns(hits: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in hits.columns if c.startswith("hit")]
    return hits.set_index("gene")[cols].sort_index()


def test_profile(work: Path, device: str) -> dict:
    runs = {}
    for name, dev in (("device", device), ("cpu", "cpu")):
        outdir = work / f"profile_{name}"
        shutil.rmtree(outdir, ignore_errors=True)
        t0 = time.perf_counter()
        must(fatescope("run", "--profile", "test", "--outdir", outdir, "--run_ambient", "true",
                       *[a for p in DEVICE_PARAMS for a in (f"--{p}", dev)]))
        runs[name] = (outdir, round(time.perf_counter() - t0, 1))

    def both(read) -> dict:
        return {name: read(outdir) for name, (outdir, _) in runs.items()}
    hits = both(lambda d: hit_columns(pd.read_csv(d / "rank" / "hits_ranked.csv")))
    a, b = hits["device"].align(hits["cpu"], fill_value=False)
    differ = [f"{gene}:{col} {a.at[gene, col]}/{b.at[gene, col]}" for gene, col in (a != b).stack().loc[lambda x: x].index]
    theta = both(lambda d: np.load(d / "fate" / "theta_posterior_summary.npz", allow_pickle=False))
    return {
        "wall_s": {name: secs for name, (_, secs) in runs.items()},
        "trace": both(trace),
        "same_hits": not differ, "n_hits": int(hits["device"].any(axis=1).sum()), "hit_differences": differ,
        "theta_mean_max_abs_diff": float(np.abs(theta["device"]["mean"] - theta["cpu"]["mean"]).max()),
        "theta_sd_max_rel_diff": float((np.abs(theta["device"]["sd"] - theta["cpu"]["sd"]) / theta["cpu"]["sd"]).max()),
        "mash": table_difference(*both(lambda d: pd.read_csv(d / "mash" / "mash_gene_conservative.csv")).values()),
        "aucell": table_difference(*both(lambda d: pd.read_parquet(d / "aucell" / "aucell.parquet")).values()),
        "recovery": both(lambda d: json.loads((d / "eval-recovery" / "recovery_metrics.json").read_text())),
        "ok": not differ,
    }


def same_files(one: Path, other: Path, names: list[str]) -> dict:
    return {n: (one / n).read_bytes() == (other / n).read_bytes() for n in names}


def chunks(work: Path, device: str) -> dict:
    src = work / "profile_device"
    out = work / "chunks"
    shutil.rmtree(out, ignore_errors=True)
    cells, regulons = src / "qc" / "cells.h5ad", src / "prune" / "regulons.parquet"
    n_cells = int(pd.read_parquet(src / "aucell" / "aucell.parquet").shape[0])
    size = -(-n_cells // 3)
    must(fatescope("aucell", "--cells", cells, "--regulons", regulons, "--device", device, "--outdir", out / "aucell_one"))
    folders = []
    for k in range(3):
        folders.append(out / f"aucell_chunk{k}")
        must(fatescope("aucell", "--cells", cells, "--regulons", regulons, "--device", device, "--chunk-size", size,
                       "--chunk", k, "--outdir", folders[-1]))
    must(fatescope("aucell", "--cells", cells, "--regulons", regulons, "--device", device,
                   *[a for f in folders for a in ("--gather", f)], "--outdir", out / "aucell_gathered"))
    aucell_same = pd.read_parquet(out / "aucell_one" / "aucell.parquet").equals(
        pd.read_parquet(out / "aucell_gathered" / "aucell.parquet"))
    table = src / "fate" / "gene_daywise_for_mash.csv"
    rows = sum(1 for _ in table.open()) - 1
    esize = str(-(-rows // 3))
    common = ["--mode", "conservative", "--device", device]
    must(fatescope("mash", "--input", table, *common, "--outdir", out / "mash_one"))
    must(fatescope("mash", "--input", table, *common, "--fit-only", "--effect-chunk-size", esize, "--outdir", out / "mash_fit"))
    plan = pd.read_csv(out / "mash_fit" / "mash_chunks.csv")
    mfolders = []
    for r in plan.itertuples():
        mfolders.append(out / f"mash_chunk{r.chunk}")
        must(fatescope("mash", "--input", table, "--fixg-fit", out / "mash_fit" / r.fit, *common[2:],
                       "--effect-chunk-size", esize, "--effect-chunk", r.chunk, "--outdir", mfolders[-1]))
    must(fatescope("mash", "--gather", out / "mash_fit", *[a for f in mfolders for a in ("--gather", f)],
                   "--outdir", out / "mash_gathered"))
    mash_same = same_files(out / "mash_one", out / "mash_gathered", ["mash_gene_conservative.csv"])
    return {"aucell_cells": n_cells, "aucell_chunk_size": size, "aucell_identical": bool(aucell_same),
            "mash_effects": rows, "mash_chunks": len(mfolders), "mash_identical": mash_same,
            "ok": bool(aucell_same) and all(mash_same.values())}


OOM_CHILD = """
import sys, torch
torch.cuda.set_per_process_memory_fraction(1e-9)
from fatescope.cli import main
main(sys.argv[1:])
"""


def oom_fallback(work: Path) -> dict:
    src, out = work / "profile_device", work / "oom"
    for folder in (out, work / "oom_cpu"):
        shutil.rmtree(folder, ignore_errors=True)
    stage = ["aucell", "--cells", src / "qc" / "cells.h5ad", "--regulons", src / "prune" / "regulons.parquet"]
    args = ["--log-level", "WARNING", *stage, "--device", "cuda", "--outdir", out]
    proc = subprocess.run([sys.executable, "-c", OOM_CHILD, *map(str, args)], capture_output=True, text=True, check=False)
    logged = "CUDA out of memory" in proc.stderr and "again on the CPU" in proc.stderr
    must(fatescope(*stage, "--device", "cpu", "--outdir", work / "oom_cpu"))
    equal = proc.returncode == 0 and pd.read_parquet(out / "aucell.parquet").equals(
        pd.read_parquet(work / "oom_cpu" / "aucell.parquet"))
    return {"exit": proc.returncode, "logged": logged, "equals_cpu_run": bool(equal), "stderr_tail": proc.stderr[-600:],
            "ok": proc.returncode == 0 and logged and bool(equal)}


def timed(fn, sync) -> tuple[object, float]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def stage_speed(device: str, mash_effects: int) -> dict:
    import torch

    import aucell as aucell_bench
    import fate_fit as fate_bench
    import mash as mash_bench
    from fatescope.regulons.aucell import auc_cutoff, aucell_batch, aucell_batch_torch, build_signatures, shuffle_positions
    from fatescope.shrink.covariances import cov_canonical
    from fatescope.shrink.data import set_data
    from fatescope.shrink.engine_python import FitOptions, apply_fit, fit_mash
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = {}
    for dev in (device, "cpu"):
        row = fate_bench.run_case(100_000, 8192, 300, 20, "structured", dev, 0, False)
        out[f"fate_fit_100000_{dev}"] = {k: row[k] for k in ("seconds_per_1000_steps", "cpu_seconds_per_1000_steps",
                                                            "posterior_1000_draws_s", "threads", "peak_rss_gib")}
    X, genes, regs = aucell_bench.make_inputs(20_000, 6_000, 100)
    sigs = build_signatures(regs, pd.Index(genes))
    perm, pos = shuffle_positions(len(genes), 0)
    cut = auc_cutoff(0.05, len(genes))
    aucell_batch(X[:4], sigs, perm, pos, cut)  # numba compile, not timed
    aucell_batch_torch(X[:64], sigs, perm, cut, device=device)  # CUDA context and kernels, not timed
    cpu_auc, cpu_s = timed(lambda: aucell_batch(X, sigs, perm, pos, cut), sync)
    dev_auc, dev_s = timed(lambda: np.concatenate([aucell_batch_torch(X[i:i + 4096], sigs, perm, cut, device=device)
                                                    for i in range(0, len(X), 4096)]), sync)
    out["aucell_20000x6000"] = {f"{device}_s": round(dev_s, 3), "cpu_numba_s": round(cpu_s, 3),
                                "max_abs_diff": float(np.abs(dev_auc - cpu_auc).max())}
    bhat, shat = mash_bench.case_data("fixg1m")
    data = set_data(bhat[:mash_effects], shat[:mash_effects])
    names = [f"c{i + 1}" for i in range(data.n_conditions)]
    train = data.subset(np.sort(np.random.default_rng(0).choice(data.n_effects, 20_000, replace=False)))
    fit, _ = fit_mash(train, cov_canonical(data.n_conditions, names), names, FitOptions(device="cpu"), posterior=False)
    posts = {}
    for dev in (device, "cpu"):
        (post, loglik), secs = timed(lambda: apply_fit(fit, data, device=dev), sync)
        posts[dev] = (post, loglik, secs)
    (pg, lg, sg), (pc, lc, sc) = posts[device], posts["cpu"]
    out[f"mash_fixg_{mash_effects}x4"] = {f"{device}_s": round(sg, 3), "cpu_s": round(sc, 3),
                                          "postmean_max_abs_diff": float(np.abs(pg.mean - pc.mean).max()),
                                          "loglik_diff": float(lg - lc)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="JSON of every phase's numbers, rewritten after each phase")
    p.add_argument("--work", default="/tmp/gpu_check", type=Path, help="scratch folder for the runs")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no phase after this many seconds")
    p.add_argument("--device", default=None, help="device under test (default: cuda when present, else cpu)")
    p.add_argument("--mash-effects", type=int, default=1_000_000, help="effects of the mash speed case (at most 1,000,000)")
    p.add_argument("--skip", nargs="*", default=[], help="phases to skip")
    args = p.parse_args()
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.work.mkdir(parents=True, exist_ok=True)
    t0, report = time.perf_counter(), {"device": device}
    phases = [("environment", environment), ("test_profile", lambda: test_profile(args.work, device)),
              ("chunks", lambda: chunks(args.work, device))]
    if device == "cuda":
        phases += [("oom_fallback", lambda: oom_fallback(args.work)),
                   ("stage_speed", lambda: stage_speed(device, args.mash_effects))]
    for name, phase in phases:
        if name in args.skip or time.perf_counter() - t0 > args.budget_s:
            report[name] = {"skipped": "--skip" if name in args.skip else f"over --budget-s {args.budget_s:g}"}
            continue
        start = time.perf_counter()
        try:
            report[name] = phase()
        except Exception as exc:  # noqa: BLE001 - one phase's failure is reported and the next phases still run
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "ok": False}
        report[name]["seconds"] = round(time.perf_counter() - start, 1)
        args.out.write_text(json.dumps(report, indent=1, default=str))
        print(f"{name}: {'ok' if report[name].get('ok', True) else 'FAILED'} ({report[name]['seconds']} s)", flush=True)
    failed = [n for n, r in report.items() if isinstance(r, dict) and r.get("ok") is False]
    print(f"done in {time.perf_counter() - t0:.0f} s; failed: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
