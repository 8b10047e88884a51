"""The test profile's DAG, emulated: our Groovy evaluated by real Groovy, scripts run by bash.

Without a Nextflow runtime we still run what Nextflow would run. The Groovy runtime inside the
nf-lang jar (Groovy 4, as Nextflow's) evaluates the ext.args closures of conf/modules.config,
the helper functions of main.nf and each process's script:/stub: section with its inputs
bound the way Nextflow binds them (path inputs as staged relative names); the rendered bash
runs in a task folder with bin/ on PATH and `bash -euo pipefail` (process.shell), files staged
as symlinks like Nextflow's default stageInMode. What this does not cover: the channel
operators, publishDir, containers, executors -- the `nextflow`-marked tests do
(tests/test_nextflow_runtime.py).
"""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nflang
from nfconfig import (CONF, MAIN_NF, NEXTFLOW_CONFIG, REPO, TEST_PROFILE_ONLY, blocks, directive_closure,
                      ext_args_closure, params_block, top_level_block, with_label_blocks, with_name_blocks)
from nfmodules import INTERMEDIATE_H5AD, Process, module_processes, stage_outdir

# small simulation so that the emulated test profile takes seconds
SMALL_SIMULATION = {"sim_n_cells": 300, "sim_n_genes": 200, "sim_n_days": 2, "sim_n_replicates": 1, "sim_n_tfs": 3,
                    "sim_targets_per_tf": 10, "sim_n_perturbed_genes": 6, "sim_guides_per_gene": 2,
                    "sim_n_ntc_guides": 2, "sim_n_motifs": 20, "sim_kmax": 4, "sim_moi": 1.0, "min_features": 10,
                    # short fits: the emulation checks the wiring, tests/test_workflow_outputs.py the numbers
                    "fate_num_steps": 300, "fate_min_steps": 100, "fate_num_draws": 50, "diag_refit_steps": 100,
                    "ambient_epochs": 3, "integrate_max_iteration": 30, "grn_n_steps": 5, "grn_sparsity_threshold": 0.0,
                    "module_min_targets": 3, "pruning_rank_threshold": 100, "pruning_nes_threshold": 0.0}
# the processes after QC, in DAG order; their inputs are staged from earlier tasks' outputs
DOWNSTREAM = ("AMBIENT", "INTEGRATE", "EMBED", "FATE_PROBS", "GRN", "MODULES", "PRUNE", "AUCELL", "FATE_FIT", "MASH", "AGGREGATE",
              "RANK", "EVAL_RECOVERY", "DIAGNOSTICS", "REPORT")
# stageAs patterns whose file is not another task's output of the same relative path: pattern -> the
# run's file(s) Nextflow stages there (simulate/... from SIMULATE's folder; None: an absent optional input)
STAGED_FROM = {"raw/*": None, "fate_probs/*": None, "projection/*": None, "fixg/*": None, "known/*": None, "cells/cells.h5ad": "qc/cells.h5ad",
               "labels/*": "simulate/truth/cells.parquet", "tf_list/*": "simulate/resources/tf_list.txt",
               "dbs/*": "simulate/resources/sim.genes_vs_motifs.rankings.feather",
               "annotations/*": "simulate/resources/motifs.tbl", "prune/*": "prune/regulons.parquet",
               "simulate/truth/regulons/*": "simulate/truth/regulons_truth.csv", "embed/*": "embed/cells.h5ad",
               "simulate/truth/cells/*": "simulate/truth/cells.parquet",
               "mash/*": ("mash/mash_guide_conservative.csv", "mash/mash_guide_enriched.csv")}
# REPORT's `results/*`: the folders of the test profile's stages (ambient does not run in it)
REPORT_FOLDERS = ("simulate", "validate", "qc", "integrate", "embed", "grn", "modules", "prune", "aucell", "fate", "mash",
                  "aggregate", "rank", "eval-recovery", "diagnostics")

GROOVY_PRELUDE = """
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path
import java.nio.file.Paths
def file(value, Map options = [:]) { Paths.get(value.toString()) }
"""


def functions_of(nf_file: Path) -> str:
    """The top-level function definitions of a .nf file, verbatim."""
    text = nf_file.read_text()
    return "\n\n".join(text[m.start():off + len(body) + 1]
                       for m, body, off in blocks(text, r"(?m)^def\s+\w+\s*\([^)]*\)\s*\{"))


def main_functions() -> str:
    """The top-level function definitions of main.nf, verbatim."""
    return functions_of(MAIN_NF)


def input_names(proc: Process) -> list[str]:
    """Variable names bound by a process's inputs, in order (tuple elements flattened)."""
    names = []
    for decl in proc.inputs:
        if decl.startswith("tuple"):
            names += re.findall(r"(?:val|path|env)\s*\(\s*(\w+)", decl)
        else:
            names.append(re.match(r"(?:val|path|env|each)\s+(\w+)", decl).group(1))
    return names


def renderer(proc: Process, section: str) -> str:
    """A Groovy closure (inputs map, task map) -> the rendered script of ``section``."""
    binds = "\n".join(f"    def {n} = inputs.{n}" for n in input_names(proc))
    return f"{{ Map inputs, Map task ->\n{binds}\n{proc.sections[section]}\n}}"



def staged_inputs(proc: Process) -> dict[str, list[tuple[str, str]] | None]:
    """{input name: [(staged relative path, the run's file staged there)], or None for an absent
    optional input} of a process whose inputs are `path` declarations (staged under the stageAs
    name, a `*` replaced by the file's name; else the file's own name: only the guide map here)."""
    out = {}
    for decl in proc.inputs:
        m = re.match(r"path\s+(\w+)(?:\s*,\s*stageAs:\s*['\"]([^'\"]+)['\"])?", decl)
        assert m, f"{proc.name}: cannot emulate input {decl!r}"
        name, pattern = m.group(1), m.group(2) or f"{m.group(1)}.csv"
        if pattern == "results/*":
            out[name] = [(f"results/{folder}", folder) for folder in REPORT_FOLDERS]
        elif pattern in STAGED_FROM:
            sources = STAGED_FROM[pattern]
            sources = (sources,) if isinstance(sources, str) else sources
            out[name] = None if sources is None else [(pattern.replace("*", Path(src).name), src) for src in sources]
        else:
            out[name] = [(pattern, pattern)]
    return out


def bound_inputs(proc: Process) -> str:
    """Groovy: the process's inputs as Nextflow binds them (a path, a list of paths, or [] when absent)."""
    rels = {name: None if files is None else [rel for rel, _ in files] for name, files in staged_inputs(proc).items()}
    single = [name for name, files in rels.items() if files is not None and len(files) == 1]
    return (f"{groovy_json(rels)}.collectEntries {{ k, v -> [k, v == null ? [] : "
            f"(k in {groovy_json(single)} ? Paths.get(v[0]) : v.collect {{ p -> Paths.get(p) }})] }}")


def groovy_json(value) -> str:
    """A Groovy expression parsing ``value`` from JSON (lists, maps, strings, numbers, null)."""
    text = json.dumps(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"new JsonSlurper().parseText('{text}')"


def run_task(task_dir: Path, script: str) -> subprocess.CompletedProcess:
    (task_dir / ".command.sh").write_text(script)
    env = {**os.environ, "PATH": f"{REPO / 'bin'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["/bin/bash", "-euo", "pipefail", ".command.sh"], cwd=task_dir, env=env,
                          capture_output=True, text=True, timeout=600)


DIRECTIVE_CASES = [  # params overrides, task, workflow -> expected directive values (None = unset)
    ({}, {"exitStatus": 137, "attempt": 1}, {"containerEngine": "docker"},
     {"container": "ghcr.io/fatescope/fatescope-python:0.1.0", "errorStrategy": "retry",
      "gpu.container": "ghcr.io/fatescope/fatescope-python:0.1.0", "gpu.accelerator": None, "gpu.containerOptions": ""}),
    ({"use_gpu": True}, {"exitStatus": 1, "attempt": 1}, {"containerEngine": "docker"},
     {"errorStrategy": "finish", "gpu.container": "ghcr.io/fatescope/fatescope-python-gpu:0.1.0",
      "gpu.accelerator": "1", "gpu.containerOptions": "--gpus all"}),
    ({"use_gpu": True, "container_registry": ""}, {"exitStatus": 143, "attempt": 2}, {"containerEngine": "singularity"},
     {"container": "fatescope-python:0.1.0", "errorStrategy": "retry", "gpu.container": "fatescope-python-gpu:0.1.0",
      "gpu.containerOptions": "--nv"}),
    ({"use_gpu": True}, {"exitStatus": 0, "attempt": 1}, {"containerEngine": "apptainer"}, {"gpu.containerOptions": "--nv"}),
    ({"use_gpu": True}, {"exitStatus": 0, "attempt": 1}, {"containerEngine": None}, {"gpu.containerOptions": ""}),
]
DIRECTIVE_CASES = [dict(params=p, task=t, workflow=w, expected=e) for p, t, w, e in DIRECTIVE_CASES]



TRICKY_SHEET = [["sample", "counts", "batch", "day", "replicate"],
                ["s1", 0, "lane,1", "d0", "r1"],
                ["s2", 1, "it's", 'say "hi"', "$HOME`x`"]]
TRICKY_FILES = ["inputs/01/with space.h5ad", "inputs/02/comma,name.h5ad"]



def emulate(root: Path) -> dict:
    """The test profile's DAG (SIMULATE -> VALIDATE -> QC -> FATE_FIT -> MASH -> AGGREGATE, RANK ->
    EVAL_RECOVERY; DIAGNOSTICS) emulated in script and stub mode, in ``root``."""
    from fatescope.engine.profiles import TEST_PROFILE

    t0 = time.monotonic()
    procs = module_processes()
    params = {**params_block(NEXTFLOW_CONFIG), **TEST_PROFILE, **TEST_PROFILE_ONLY, **SMALL_SIMULATION}
    closures = {n: c for n, b in with_name_blocks((CONF / "modules.config").read_text()).items()
                if (c := ext_args_closure(b))}

    # 1. ext.args of every process, params.yaml, and SIMULATE's script and stub
    g = [GROOVY_PRELUDE, main_functions(), f"def params = {groovy_json(params)}", "def out = [:]"]
    g += [f"out['args:{n}'] = ({c})().toString()" for n, c in closures.items()]
    g.append("out['params.yaml'] = paramsYaml(params)")
    # conf/base.config's dynamic directives, under every combination that changes them
    base = (CONF / "base.config").read_text()
    process_body = top_level_block(base, "process")
    directives = {"container": directive_closure(process_body, "container"),
                  "errorStrategy": directive_closure(process_body, "errorStrategy")}
    gpu = with_label_blocks(base)["process_gpu"]
    directives.update({f"gpu.{d}": directive_closure(gpu, d) for d in ("container", "accelerator", "containerOptions")})
    g.append("def directives = [:]")
    for i, (key, closure) in enumerate(directives.items()):  # methods: they do not see the script's `params`
        g.append(f"def directive{i}(params, task, workflow) {{\n    return {closure}\n}}")
        g.append(f"directives['{key}'] = this.&directive{i}")
    g.append(f"def cases = {groovy_json(DIRECTIVE_CASES)}")
    g.append("out['directives'] = cases.collect { c -> directives.collectEntries { key, make -> "
             "[key, make(params + c.params, c.task, c.workflow)()?.toString()] } }")
    sim_args = json.dumps(None)
    for mode in ("script", "stub"):
        g.append(f"out['SIMULATE:{mode}'] = ({renderer(procs['SIMULATE'], mode)})([:], "
                 f"[ext: [args: out['args:SIMULATE'] ?: {sim_args}]]).toString()")
    g.append("println JsonOutput.toJson(out)")
    out = json.loads(nflang.run_groovy("\n".join(g)))
    result = {"args": {n[5:]: v for n, v in out.items() if n.startswith("args:")}, "params": params,
              "params.yaml": out["params.yaml"], "directives": out["directives"], "tasks": {}}

    def run(name: str, mode: str, script: str) -> Path:
        task = root / f"{mode}-{name.lower()}"
        task.mkdir(exist_ok=True)
        result["tasks"][(name, mode)] = (task, run_task(task, script), script)
        return task

    sim_dirs = {mode: run("SIMULATE", mode, out[f"SIMULATE:{mode}"]) for mode in ("script", "stub")}
    for mode in sim_dirs:
        _, res, script = result["tasks"][("SIMULATE", mode)]
        assert res.returncode == 0, f"SIMULATE ({mode}) failed:\n{script}\n{res.stderr[-3000:]}"

    # 2. main.nf: SIMULATE's samplesheet -> rows -> sorted -> [sheet, files]; VALIDATE and QC rendered
    comparator = re.search(r"toSortedList\s*(\{[^}]*\})", MAIN_NF.read_text()).group(1)
    g = [GROOVY_PRELUDE, main_functions(), "def out = [:]"]
    for mode, task in sim_dirs.items():
        with open(task / "simulate" / "samplesheet.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        tasks = {name: (f"({renderer(procs[name], mode)})(inputs_{mode}, "
                        f"[ext: [args: {groovy_json(result['args'].get(name))}]]).toString()")
                 for name in ("VALIDATE", "QC")}
        tasks.update({name: (f"({renderer(procs[name], mode)})({bound_inputs(procs[name])}, "
                             f"[ext: [args: {groovy_json(result['args'].get(name))}]]).toString()")
                      for name in DOWNSTREAM})
        g.append(f"""
def rows_{mode} = simulatedRows(new Expando(splitCsv: {{ Map o -> {groovy_json(rows)} }}), Paths.get('{task / "simulate"}'))
rows_{mode} = rows_{mode}.toSorted({comparator})
def (sheet_{mode}, files_{mode}) = stagedSamplesheet(rows_{mode})
def staged_{mode} = files_{mode}.withIndex().collect {{ f, i -> Paths.get(String.format('inputs/%02d/%s', i + 1, f.fileName)) }}
def inputs_{mode} = [sheet: sheet_{mode}, files: staged_{mode}, guide_map: Paths.get('guide_map.csv'),
                     validated: Paths.get('validate/samplesheet.valid.csv')]
out['{mode}'] = [sheet: sheet_{mode}, files: files_{mode}*.toString(), staged: staged_{mode}*.toString(),
                 {', '.join(f"{name}: {tasks[name]}" for name in ("VALIDATE", "QC", *DOWNSTREAM))}]
""")
    # a samplesheet with cells that need CSV and shell quoting, rendered by VALIDATE's script
    tricky = {"sheet": TRICKY_SHEET, "files": TRICKY_FILES}
    g.append(f"""
def tricky = {groovy_json(tricky)}
out['tricky'] = ({renderer(procs['VALIDATE'], 'script')})([sheet: tricky.sheet, files: tricky.files.collect {{ f -> Paths.get(f) }}],
                                                         [ext: [args: null]]).toString()
""")
    g.append("println JsonOutput.toJson(out)")
    staging = json.loads(nflang.run_groovy("\n".join(g)))
    result["tricky"] = staging.pop("tricky")
    result["staging"] = staging

    # 3. stage like Nextflow (symlinks) and run VALIDATE, then QC
    for mode, info in staging.items():
        for name in ("VALIDATE", "QC"):
            task = root / f"{mode}-{name.lower()}"
            task.mkdir()
            for src, rel in zip(info["files"], info["staged"]):
                (task / rel).parent.mkdir(parents=True, exist_ok=True)
                (task / rel).symlink_to(src)
            if name == "QC":
                (task / "guide_map.csv").symlink_to(sim_dirs[mode] / "simulate" / "guide_map.csv")
                (task / "validate").mkdir()
                (task / "validate" / "samplesheet.valid.csv").symlink_to(
                    root / f"{mode}-validate" / "validate" / "samplesheet.valid.csv")
            run(name, mode, info[name])

    # 4. the processes after QC: each input staged (symlink) from the task that wrote it
    for mode, info in staging.items():
        sources = {"guide_map.csv": sim_dirs[mode] / "simulate" / "guide_map.csv",
                   "validate": root / f"{mode}-validate" / "validate", "qc": root / f"{mode}-qc" / "qc",
                   "qc/cells.h5ad": root / f"{mode}-qc" / INTERMEDIATE_H5AD}
        for name in DOWNSTREAM:
            task = root / f"{mode}-{name.lower()}"
            task.mkdir()
            for files in staged_inputs(procs[name]).values():
                for rel, source in files or []:
                    (task / rel).parent.mkdir(parents=True, exist_ok=True)
                    (task / rel).symlink_to(sim_dirs[mode] / source if source.split("/")[0] == "simulate"
                                            else sources[source])
            run(name, mode, info[name])
            for emitted in procs[name].emits.values():  # what later processes stage, by the same relative path
                # (a cells.h5ad emitted beside the stage folder is staged as <folder>/cells.h5ad)
                staged_as = f"{stage_outdir(procs[name])}/{emitted}" if emitted == INTERMEDIATE_H5AD else emitted
                sources.setdefault(staged_as, task / emitted)
    result["seconds"] = time.monotonic() - t0
    return result


def nextflow_cli_value(text: str):
    """A `--name value` from Nextflow's command line as Nextflow types it: true/false -> boolean,
    digits -> integer, a decimal -> number, anything else the string."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def ext_args_of_cases(cases: list[dict]) -> list[dict[str, str]]:
    """conf/modules.config's ext.args of every process under each params map of ``cases`` (one Groovy run)."""
    closures = {n: c for n, b in with_name_blocks((CONF / "modules.config").read_text()).items()
                if (c := ext_args_closure(b))}
    g = [GROOVY_PRELUDE, "def results = []"]
    for i, params in enumerate(cases):
        g.append(f"def case{i}() {{\n    def params = {groovy_json(params)}\n    def out = [:]")
        g += [f"    out['{n}'] = ({c})().toString()" for n, c in closures.items()]
        g.append(f"    return out\n}}\nresults << case{i}()")
    g.append("println JsonOutput.toJson(results)")
    return json.loads(nflang.run_groovy("\n".join(g)))


def main_function_calls(calls: list[tuple[dict, dict, str]], extra_source: str = "") -> list[str]:
    """Evaluate Groovy expressions with main.nf's functions (and ``extra_source``'s) in scope: each call is
    (params, workflow, expression); `params` and `workflow` are bound as Nextflow binds them and
    `error()` throws. Returns each result (or the error's message, prefixed 'ERROR: ') as text."""
    g = [GROOVY_PRELUDE, "def error(String message) { throw new IllegalStateException(message) }",
         main_functions(), extra_source, "def results = []"]
    for params, workflow, expression in calls:
        g.append(f"params = {groovy_json(params)}\nworkflow = {groovy_json(workflow)}\n"
                 f"try {{ results << ({expression}).toString() }} catch (IllegalStateException e) {{ results << 'ERROR: ' + e.message }}")
    g.append("println JsonOutput.toJson(results)")
    return json.loads(nflang.run_groovy("\n".join(g)))

