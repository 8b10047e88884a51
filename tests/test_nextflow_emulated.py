"""The test profile's DAG emulated without Nextflow (tests/nfemulate.py): ext.args read back by click
as the params, conf/base.config's dynamic directives, params.yaml, every task's outputs in script
and stub mode, samplesheet quoting and staging."""
from __future__ import annotations

from pathlib import Path

import pytest

import nflang
from nfemulate import DIRECTIVE_CASES, TRICKY_FILES, TRICKY_SHEET, emulate, run_task
from nfmodules import engine_stages, module_processes, stage_of


@pytest.fixture(scope="session")
def emulated(tmp_path_factory):
    """The test profile's DAG (SIMULATE -> VALIDATE -> QC -> ... -> DIAGNOSTICS) emulated in script and stub mode."""
    nflang.skip_if_unavailable()
    return emulate(tmp_path_factory.mktemp("emulated"))


def test_emulated_ext_args_parse_back_to_the_params(emulated):
    """The option string ext.args builds is read by click as the params' values (naming rule in action)."""
    import shlex

    stages = engine_stages()
    assert emulated["args"], "no ext.args evaluated"
    for process, args in emulated["args"].items():
        stage = stages[stage_of(process)]
        cmd = stage.command
        required = [t for p in cmd.params if getattr(p, "required", False) for t in (p.opts[0], "x")]
        ctx = cmd.make_context(stage.name, required + shlex.split(args))
        for name, value in ctx.params.items():
            if name in stage.input_names() | {"outdir"}:
                continue
            want = emulated["params"][stage.prefix + name]
            assert value == want, f"{process}: ext.args {args!r} gives --{name} = {value!r}, params say {want!r}"


def test_emulated_dynamic_directives(emulated):
    """conf/base.config's closures (containers from params, GPU options per engine, retry on
    memory kills) give the intended values."""
    for case, got in zip(DIRECTIVE_CASES, emulated["directives"]):
        for key, want in case["expected"].items():
            assert got[key] == want, f"{key} with {case['params']}, {case['task']}, {case['workflow']}: {got[key]!r} != {want!r}"


def test_emulated_params_yaml_reads_back(emulated):
    import yaml

    assert yaml.safe_load(emulated["params.yaml"]) == emulated["params"]


@pytest.mark.parametrize("mode", ["stub", "script"])
def test_emulated_tasks_create_their_outputs(emulated, mode):
    procs = module_processes()
    print(f"\nemulated test profile ({mode}): {len(procs)} processes; whole emulation {emulated['seconds']:.1f} s")
    for name, proc in procs.items():
        task, res, script = emulated["tasks"][(name, mode)]
        assert res.returncode == 0, f"{name} ({mode}) failed in {task}:\n{script}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        for emit, out in proc.emits.items():
            assert (task / out).exists(), f"{name} ({mode}) did not create {out} (emit {emit}) in {task}"
        assert f"FATESCOPE:{name}" in (task / proc.emits["versions"]).read_text()


def test_emulated_samplesheet_quoting(emulated, tmp_path):
    """Cells with commas, quotes, spaces, $ and backticks reach the CLI's samplesheet unchanged."""
    import csv

    script = emulated["tricky"]
    head = script[:script.index("fatescope validate")]
    res = run_task(tmp_path, head)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "samplesheet.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    expected = [[TRICKY_FILES[c] if isinstance(c, int) else c for c in row] for row in TRICKY_SHEET]
    assert rows == expected


def test_emulated_samplesheet_staging(emulated):
    """stagedSamplesheet + the process scripts: every file staged once under its own folder,
    rows sorted by sample, the samplesheet the CLI validated has every sample."""
    for mode, info in emulated["staging"].items():
        header, *rows = info["sheet"]
        assert header[:5] == ["sample", "counts", "batch", "day", "replicate"]
        samples = [r[0] for r in rows]
        assert samples == sorted(samples) and len(set(samples)) == len(samples) >= 2
        assert len(set(info["staged"])) == len(info["staged"]) == len(info["files"])
        assert all(Path(f).exists() for f in info["files"]), "relocated SIMULATE paths must exist"
        if mode == "stub":
            continue
        for name in ("VALIDATE", "QC"):
            task = emulated["tasks"][(name, mode)][0]
            written = (task / "samplesheet.csv").read_text().splitlines()
            assert written[0] == ",".join(header) and len(written) == len(rows) + 1
            assert all(cell.startswith("inputs/") for line in written[1:] for cell in line.split(",") if "/" in cell)
        valid = (emulated["tasks"][("VALIDATE", mode)][0] / "validate" / "samplesheet.valid.csv").read_text().splitlines()
        assert len(valid) == len(rows) + 1
