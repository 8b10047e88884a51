"""The whole DAG at scale with the local engine: a simulated experiment of N cells (default 200,000,
4 days x 2 replicates = 8 samples, 2,000 genes), then `fatescope run` on it as on real data -- the
samplesheet, guide map and cisTarget files as inputs and every stage at its default settings
(the regulon branch included), not the test profile's short fits. One exception, bound to the
simulated database: its rankings cover 1,987 genes, so --pruning_rank_threshold is 1,000 (the test
profile's) instead of the default 5,000 (sized for the ~27,000 genes of a real cisTarget database).

Per stage: wall time, CPU time and peak RSS from the local engine's pipeline_info/trace.tsv (each
stage is a child process measured as Nextflow's trace does); the simulation is timed the same way.

    .venv/bin/python bench/pipeline_scale.py --out bench/pipeline_scale_200000.json
    .venv/bin/python bench/pipeline_scale.py --cells 20000 --work /tmp/scale20k -- --skip_diagnostics true

On a real Nextflow runtime (on PATH), with the test profile's short fits; its embed_label_key
('true_fate') names a column only simulated runs have, so another obs column stands in:

    .venv/bin/python bench/pipeline_scale.py --work /tmp/scale_nf --out bench/pipeline_scale_nextflow_200000.json \
        -- --engine nextflow -profile test --embed_assess false --embed_label_key day
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _timed(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``, its output to ``log``; wall and CPU seconds of the child tree, peak RSS of the largest child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"exit": code, "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "peak_rss_gib": round(after.ru_maxrss / 2 ** 20, 2)}


def _seconds(text: str) -> float:
    """Trace durations as the local engine writes them ('1h 2m 3s', '4m 5s', '6.7s', '80ms')."""
    total = 0.0
    for part in text.split():
        for unit, factor in (("ms", 1e-3), ("h", 3600), ("m", 60), ("s", 1)):
            if part.endswith(unit):
                total += float(part[: -len(unit)]) * factor
                break
    return total


def _gib(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"B": 2 ** -30, "KB": 2 ** -20, "MB": 2 ** -10, "GB": 1, "TB": 2 ** 10}[unit]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=200_000)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--replicates", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="/tmp/pipeline_scale", help="folder for the simulation and the run's outdir")
    p.add_argument("--out", default=None, help="JSON of the per-stage numbers")
    p.add_argument("params", nargs="*", help="extra pipeline params after --, e.g. -- --skip_diagnostics true")
    a = p.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    fatescope = [sys.executable, "-m", "fatescope"]
    sim = work / "simulate"
    rows = {}
    if not (sim / "samplesheet.csv").is_file():
        rows["simulate"] = _timed([*fatescope, "simulate", "--outdir", str(sim), "--seed", str(a.seed),
                                   "--n-cells", str(a.cells), "--n-genes", str(a.genes), "--n-days", str(a.days),
                                   "--n-replicates", str(a.replicates)], work / "simulate.log")
        sys.stderr.write(f"simulate: {rows['simulate']}\n")
        if rows["simulate"]["exit"]:
            return 1
    resources = sim / "resources"
    outdir = work / "results"
    run = _timed([*fatescope, "run", "--input", str(sim / "samplesheet.csv"), "--outdir", str(outdir), "-resume",
                  "--guide_map", str(sim / "guide_map.csv"), "--tf_list", str(resources / "tf_list.txt"),
                  "--ranking_dbs", str(resources / "sim.genes_vs_motifs.rankings.feather"),
                  "--motif_annotations", str(resources / "motifs.tbl"), "--pruning_rank_threshold", "1000", *a.params],
                 work / "run.log")
    sys.stderr.write(f"run: {run}\n")
    with open(outdir / "pipeline_info" / "trace.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            rows[row["name"]] = {"status": row["status"], "wall_s": round(_seconds(row["realtime"]), 1),
                                 "cpu_pct": row["%cpu"], "peak_rss_gib": round(_gib(row["peak_rss"]), 2)}
    result = {"cells": a.cells, "genes": a.genes, "samples": a.days * a.replicates, "extra_params": a.params,
              "run": run, "stages": rows}
    print(json.dumps(result, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    return run["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
