"""The test profile's DAG emulated without Nextflow (tests/nfemulate.py): ext.args read back by click
as the params, conf/base.config's dynamic directives, params.yaml, every task's outputs in script
and stub mode, samplesheet quoting and staging; the param matrix's ext.args against the local
engine's option values; the images checked before any stage and the version check."""
from __future__ import annotations

from pathlib import Path

import pytest

import nflang
from nfconfig import MAIN_NF, NEXTFLOW_CONFIG, TEST_PROFILE_ONLY, params_block
from nfemulate import (DIRECTIVE_CASES, SMALL_SIMULATION, SPLIT_PARAMS, TRICKY_COUNTS, TRICKY_META, TRICKY_SHEET, emulate, ext_args_of_cases,
                       functions_of, main_function_calls, nextflow_cli_value, run_task)
from nfmodules import carried_options, engine_stages, module_processes, stage_of
from param_matrix import MATRIX


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
            if name not in carried_options(process):
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
            out = out.replace("${meta.id}", emulated["staging"][mode]["ids"][0])  # QC_LOAD: the first sample's task
            assert list(task.glob(out)) if "*" in out else (task / out).exists(), \
                f"{name} ({mode}) did not create {out} (emit {emit}) in {task}"
        assert f"FATESCOPE:{name}" in (task / proc.emits["versions"]).read_text()


def test_emulated_samplesheet_quoting(emulated, tmp_path):
    """Cells with commas, quotes, spaces, $ and backticks reach the CLI's samplesheets unchanged: VALIDATE's
    whole sheet (files as URIs) and a QC_LOAD task's one-row sheet (its staged file)."""
    import csv

    for name, expected in (("VALIDATE", TRICKY_SHEET),
                           ("QC_LOAD", [["sample", "counts", "batch", "day", "replicate", "guides", "fate_probs"],
                                        [TRICKY_META["id"], TRICKY_COUNTS, TRICKY_META["batch"], TRICKY_META["day"],
                                         TRICKY_META["replicate"], "", ""]])):
        script = emulated["tricky"][name]
        task = tmp_path / name
        task.mkdir()
        res = run_task(task, script[:script.index("fatescope ")])
        assert res.returncode == 0, res.stderr
        with open(task / "samplesheet.csv", newline="") as fh:
            assert list(csv.reader(fh)) == expected, name


def test_emulated_samplesheet_staging(emulated):
    """samplesheetOfUris + the process scripts: VALIDATE sees every sample, sorted, with the files' URIs and
    stages none; each QC_LOAD task's one-row sheet names its own staged files; QC merges every sample."""
    for mode, info in emulated["staging"].items():
        header, *rows = info["sheet"]
        assert header == ["sample", "counts", "batch", "day", "replicate", "guides", "fate_probs"]
        samples = [r[0] for r in rows]
        assert samples == sorted(samples) == info["ids"] and len(set(samples)) == len(samples) >= 2
        assert [r[1] for r in rows] == [f[0] for f in info["files"]]
        assert all(Path(f).exists() for files in info["files"] for f in files if f), "relocated SIMULATE paths must exist"
        if mode == "stub":
            continue
        task = emulated["tasks"][("VALIDATE", mode)][0]
        assert not list(task.glob("inputs/**/*")), "VALIDATE stages no file"
        valid = (task / "validate" / "samplesheet.valid.csv").read_text().splitlines()
        assert len(valid) == len(rows) + 1
        for sample, files in zip(info["ids"], info["files"]):
            task = emulated["tasks"][(f"QC_LOAD:{sample}", mode)][0]
            written = (task / "samplesheet.csv").read_text().splitlines()
            assert written[0] == ",".join(header) and len(written) == 2 and written[1].startswith(f"{sample},")
            staged = [c for c in written[1].split(",") if "/" in c]
            assert staged == [f"inputs/{kind}/{Path(f).name}" for kind, f in zip(("counts", "guides", "fate_probs"), files) if f]
        qc = emulated["tasks"][("QC", mode)][0]
        table = (qc / "qc" / "qc_per_sample.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in table[1:]] == info["ids"]


@pytest.mark.parametrize("combo", [c for c in MATRIX if not c.refused], ids=lambda combo: combo.id)
def test_emulated_ext_args_of_the_param_matrix(combo, matrix_ext_args):
    """Each combination of the param matrix, typed as on Nextflow's command line, reaches every
    `fatescope <stage>` as the same option values the local engine passes for it (Stage.kwargs)."""
    import shlex

    from fatescope.engine.stages import RunPaths

    params, args_by_process = matrix_ext_args[combo.id]
    paths = RunPaths(Path("results"), params)
    stages = engine_stages()
    for process, args in args_by_process.items():
        stage = stages[stage_of(process)]
        cmd = stage.command
        required = [t for p in cmd.params if getattr(p, "required", False) for t in (p.opts[0], "x")]
        parsed = cmd.make_context(stage.name, required + shlex.split(args)).params
        local = stage.kwargs(paths)
        for name in set(parsed) & carried_options(process):
            assert parsed[name] == local[name], f"{combo.id}: {process} gets --{name} {parsed[name]!r} from " \
                                                f"Nextflow, {local[name]!r} from the local engine"


@pytest.fixture(scope="module")
def matrix_ext_args():
    """{combo id: (params, {process: ext.args})} for the successful combinations, in one Groovy run."""
    nflang.skip_if_unavailable()
    from fatescope.engine.profiles import TEST_PROFILE

    base = {**params_block(NEXTFLOW_CONFIG), **TEST_PROFILE, **TEST_PROFILE_ONLY, **SMALL_SIMULATION}
    combos = [c for c in MATRIX if not c.refused]
    cases = [{**base, **{k: nextflow_cli_value(v) for k, v in c.params.items()}} for c in combos]
    return {c.id: (params, args) for c, params, args in zip(combos, cases, ext_args_of_cases(cases))}


IMAGE_CASES = [  # params overrides, container engine -> the images checked before any stage
    ({}, None, [""]),
    ({}, "docker", ["ghcr.io/fatescope/fatescope-python:0.1.0"]),
    ({"use_gpu": True}, "singularity", ["ghcr.io/fatescope/fatescope-python:0.1.0",
                                        "ghcr.io/fatescope/fatescope-python-gpu:0.1.0"]),
    ({"use_gpu": True, "skip_integration": True, "skip_regulons": True, "skip_fate": True}, "docker",
     ["ghcr.io/fatescope/fatescope-python:0.1.0"]),
    ({"mash_engine": "r", "container_registry": ""}, "apptainer", ["fatescope-python:0.1.0", "fatescope-r-mashr:0.1.0"]),
    ({"mash_engine": "r", "skip_fate": True}, "docker", ["ghcr.io/fatescope/fatescope-python:0.1.0"]),
]


def test_emulated_images_checked_before_any_stage():
    """main.nf's runImages(): the images a run's stages use (conf/base.config, conf/modules.config), each
    once; with no container engine, the one `fatescope` on PATH."""
    nflang.skip_if_unavailable()
    base = params_block(NEXTFLOW_CONFIG)
    calls = [({**base, **over}, {"containerEngine": engine}, "runImages()") for over, engine, _ in IMAGE_CASES]
    got = main_function_calls(calls)
    for (over, engine, want), text in zip(IMAGE_CASES, got):
        assert text == str(want).replace("'", ""), f"{over}, {engine}: {text} != {want}"


def test_emulated_version_check_names_both_versions():
    """CHECK_IMAGES's checkedVersion(): the image passes when its `fatescope --version` is manifest.version;
    otherwise the run stops with both versions and the image in the message."""
    nflang.skip_if_unavailable()
    from fatescope import __version__

    check = MAIN_NF.parent / "subworkflows" / "local" / "check_images" / "main.nf"
    workflow = {"manifest": {"version": __version__}}
    image = "ghcr.io/fatescope/fatescope-python:0.1.0"
    got = main_function_calls([
        ({}, workflow, f"checkedVersion('{image}', 'fatescope, version {__version__}\\n')"),
        ({}, workflow, f"checkedVersion('{image}', 'fatescope, version 0.0.9')"),
        ({}, workflow, "checkedVersion('', 'fatescope, version 0.0.9')"),
    ], extra_source=functions_of(check))
    assert got[0] == image
    assert got[1].startswith("ERROR: ") and f"fatescope {__version__}" in got[1] and "0.0.9" in got[1] and image in got[1]
    assert got[2].startswith("ERROR: ") and "on PATH" in got[2] and "0.0.9" in got[2]


def test_emulated_split_stages_equal_one_task(emulated):
    """AUCELL and MASH split over tasks (SPLIT_PARAMS), as main.nf wires them, publish what the one-task
    AUCELL and MASH publish: the same aucell.parquet and mash tables, to the bit."""
    import pandas as pd

    for (name, mode), (task, res, script) in emulated["tasks"].items():
        if name.split(":")[0] in ("AUCELL_CHUNK", "MASH_FIT", "MASH_CHUNK") or name.endswith(":gather"):
            assert res.returncode == 0, f"{name} ({mode}) failed in {task}:\n{script}\n{res.stderr[-3000:]}"
    tasks = emulated["tasks"]
    chunks = [key for key in tasks if key[1] == "script" and key[0].startswith("AUCELL_CHUNK:")]
    one, split = tasks[("AUCELL", "script")][0] / "aucell", tasks[("AUCELL:gather", "script")][0] / "aucell"
    n_cells = len(pd.read_parquet(one / "aucell.parquet"))
    assert len(chunks) == -(-n_cells // SPLIT_PARAMS["aucell_chunk_size"]) >= 2, (len(chunks), n_cells)
    pd.testing.assert_frame_equal(pd.read_parquet(one / "aucell.parquet"), pd.read_parquet(split / "aucell.parquet"))
    assert (one / "aucell_regulons.csv").read_text() == (split / "aucell_regulons.csv").read_text()
    one, split = tasks[("MASH", "script")][0] / "mash", tasks[("MASH:gather", "script")][0] / "mash"
    tables = sorted(p.name for p in one.glob("mash_*.csv"))
    assert tables == sorted(p.name for p in split.glob("mash_*.csv")) and len(tables) == 4, tables
    assert len([key for key in tasks if key[1] == "script" and key[0].startswith("MASH_CHUNK:")]) > 4
    for table in tables:
        assert (one / table).read_text() == (split / table).read_text(), table
