"""Resource labels against measured memory: each process's first-attempt memory (conf/base.config,
its size label) must hold the stage's peak RSS as measured (bench/stage_peaks.json: the 1M-cell stage
benchmarks and the 200,000-cell whole-DAG run of bench/pipeline_scale.py), scaled to the reference
experiment the labels are sized for (1M cells x 20,000 genes, 3% non-zero counts). The retry's
doubled memory is headroom, not part of the budget."""
from __future__ import annotations

import json
import re

import pytest

from nfconfig import CONF, REPO, with_label_blocks
from nfmodules import module_processes

PEAKS = REPO / "bench" / "stage_peaks.json"


def first_attempt_gb(block: str) -> float:
    m = re.search(r"^\s*memory\s*=\s*\{?\s*([\d.]+)\.GB", block, re.M)
    assert m, f"no `memory = N.GB ...` in withLabel block:\n{block}"
    return float(m.group(1))


def scaled_peak_gib(entry: dict, reference: dict) -> float:
    """The measured peak grown to the reference size by what the stage's memory grows with (cells,
    non-zero counts, the densified cells x genes, or nothing: guide x day tables, regulon tables); an
    entry's ``sized_for`` replaces the reference where no label can hold it (grn)."""
    grows_with, reference = entry["grows_with"], {**reference, **entry.get("sized_for", {})}
    factor = 1.0 if grows_with == "fixed" else reference[grows_with] / entry[grows_with]
    return entry["peak_gib"] * max(factor, 1.0)


def label_budgets() -> dict[str, tuple[str, float]]:
    blocks = with_label_blocks((CONF / "base.config").read_text())
    sizes = {name: first_attempt_gb(body) for name, body in blocks.items() if re.search(r"^\s*memory\s*=", body, re.M)}
    out = {}
    for proc in module_processes().values():
        (label,) = [lb for lb in proc.labels if lb in sizes]
        out[proc.name.lower().replace("_", "-")] = (label, sizes[label])  # a split step (qc-load) has its own peak
    return out


def sizing_problems(peaks: dict, budgets: dict[str, tuple[str, float]]) -> list[str]:
    problems = []
    for stage, (label, gb) in sorted(budgets.items()):
        entry = peaks["stages"].get(stage)
        if entry is None:
            problems.append(f"{stage}: no measured peak in {PEAKS.name}")
            continue
        need = scaled_peak_gib(entry, peaks["reference"])  # GiB; Nextflow's GB is 2^30 bytes too
        if need > gb:
            problems.append(f"{stage}: {label} gives {gb:g} GB on the first attempt, below its peak of {need:.1f} GiB "
                            f"at the reference size ({entry['source']})")
    return problems


@pytest.fixture(scope="module")
def peaks() -> dict:
    return json.loads(PEAKS.read_text())


def test_every_stage_fits_its_label_at_the_reference_size(peaks):
    problems = sizing_problems(peaks, label_budgets())
    assert not problems, "\n".join(problems)


def test_sizing_check_fails_on_an_undersized_label(peaks):
    budgets = label_budgets()
    budgets["integrate"] = ("process_single", 6.0)
    assert any(p.startswith("integrate: process_single gives 6 GB") for p in sizing_problems(peaks, budgets))
    del peaks["stages"]["qc"]
    assert "qc: no measured peak in stage_peaks.json" in sizing_problems(peaks, label_budgets())
