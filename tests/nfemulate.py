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
STAGED_FROM = {"chunks/??/*": None, "raw/*": None, "fate_probs/*": None, "projection/*": None, "fixg/*": None, "known/*": None, "cells/cells.h5ad": "qc/cells.h5ad",
               "labels/*": "simulate/truth/cells.parquet", "tf_list/*": "simulate/resources/tf_list.txt",
               "dbs/*": "simulate/resources/sim.genes_vs_motifs.rankings.feather",
               "annotations/*": "simulate/resources/motifs.tbl", "prune/*": "prune/regulons.parquet",
               "simulate/truth/regulons/*": "simulate/truth/regulons_truth.csv", "embed/*": "embed/cells.h5ad",
               "simulate/truth/cells/*": "simulate/truth/cells.parquet",
               "mash/*": ("mash/mash_guide_conservative.csv", "mash/mash_guide_enriched.csv")}
# the split stages' chunk sizes in the emulation: AUCELL and MASH also run chunked (step 5 of emulate)
SPLIT_PARAMS = {"aucell_chunk_size": 120, "mash_effect_chunk_size": 4}
# REPORT's `results/*`: the folders of the test profile's stages (ambient does not run in it)
REPORT_FOLDERS = ("simulate", "validate", "qc", "integrate", "embed", "grn", "modules", "prune", "aucell", "fate", "mash",
                  "aggregate", "rank", "eval-recovery", "diagnostics")

GROOVY_PRELUDE = """
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path
import java.nio.file.Paths
def file(value, Map options = [:]) { Paths.get(value.toString()) }
ExpandoMetaClass.enableGlobally()
Path.metaClass.toUriString = { -> delegate.toString() }  // Nextflow's: a local file's path, else scheme://...
Path.metaClass.splitCsv = { Map o ->  // Nextflow's, for unquoted CSV with a header (qc_per_sample.csv)
    def lines = delegate.toFile().readLines().findAll { line -> line }
    def header = lines[0].split(',', -1).toList()
    lines.drop(1).collect { line -> [header, line.split(',', -1).toList()].transpose().collectEntries() }
}
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
                ["s1", "/data/with space.h5ad", "lane,1", "d0", "r1"],
                ["s2", "s3://bucket/comma,name.h5ad", "it's", 'say "hi"', "$HOME`x`"]]
TRICKY_META = {"id": "s2", "batch": "it's", "day": 'say "hi"', "replicate": "$HOME`x`"}
TRICKY_COUNTS = "inputs/counts/comma,name.h5ad"



def emulate(root: Path) -> dict:
    """The test profile's DAG (SIMULATE -> VALIDATE -> QC -> FATE_FIT -> MASH -> AGGREGATE, RANK ->
    EVAL_RECOVERY; DIAGNOSTICS) emulated in script and stub mode, in ``root``."""
    from fatescope.engine.profiles import TEST_PROFILE

    t0 = time.monotonic()
    procs = module_processes()
    params = {**params_block(NEXTFLOW_CONFIG), **TEST_PROFILE, **TEST_PROFILE_ONLY, **SMALL_SIMULATION, **SPLIT_PARAMS}
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

    # 2. main.nf: SIMULATE's samplesheet -> rows -> sorted -> VALIDATE's sheet; QC_LOAD per row; QC
    comparator = re.search(r"toSortedList\s*(\{[^}]*\})", MAIN_NF.read_text()).group(1)
    g = [GROOVY_PRELUDE, main_functions(), "def out = [:]",
         'def staged = { f, String kind -> f ? Paths.get("inputs/${kind}/${f.fileName}") : [] }']

    def render(name: str, mode: str, inputs: str) -> str:
        return f"({renderer(procs[name], mode)})({inputs}, [ext: [args: {groovy_json(result['args'].get(name))}]]).toString()"

    for mode, task in sim_dirs.items():
        with open(task / "simulate" / "samplesheet.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        loads = render("QC_LOAD", mode, "[meta: r[0], counts: staged(r[1], 'counts'), guides: staged(r[2], 'guides'), "
                                        "fate_probs: staged(r[3], 'fate_probs'), guide_map: Paths.get('guide_map.csv'), "
                                        "validated: Paths.get('validate/samplesheet.valid.csv')]")
        merged = "rows_%s.withIndex().collect { r, i -> Paths.get(String.format('qc_samples/%%02d/%%s.h5ad', i + 1, r[0].id)) }" % mode
        downstream = ", ".join(f"{name}: {render(name, mode, bound_inputs(procs[name]))}" for name in DOWNSTREAM)
        g.append(f"""
def rows_{mode} = simulatedRows(new Expando(splitCsv: {{ Map o -> {groovy_json(rows)} }}), Paths.get('{task / "simulate"}'))
rows_{mode} = rows_{mode}.toSorted({comparator})
out['{mode}'] = [sheet: samplesheetOfUris(rows_{mode}), ids: rows_{mode}.collect {{ r -> r[0].id }},
                 files: rows_{mode}.collect {{ r -> r[1..3].collect {{ f -> f ? f.toString() : null }} }},
                 VALIDATE: {render("VALIDATE", mode, f"[sheet: samplesheetOfUris(rows_{mode})]")},
                 QC_LOAD: rows_{mode}.collect {{ r -> {loads} }},
                 QC: {render("QC", mode, f"[samples: {merged}, guide_map: Paths.get('guide_map.csv')]")},
                 {downstream}]
""")
    # cells that need CSV and shell quoting: VALIDATE's sheet, and a QC_LOAD row
    g.append(f"""
out['tricky'] = [VALIDATE: ({renderer(procs['VALIDATE'], 'script')})([sheet: {groovy_json(TRICKY_SHEET)}], [ext: [args: null]]).toString(),
                 QC_LOAD: ({renderer(procs['QC_LOAD'], 'script')})([meta: {groovy_json(TRICKY_META)}, counts: Paths.get('{TRICKY_COUNTS}'),
                                                                  guides: [], fate_probs: [], guide_map: [], validated: null],
                                                                 [ext: [args: null]]).toString()]
""")
    g.append("println JsonOutput.toJson(out)")
    staging = json.loads(nflang.run_groovy("\n".join(g)))
    result["tricky"] = staging.pop("tricky")
    result["staging"] = staging

    # 3. VALIDATE (no file staged); QC_LOAD per sample, its files staged like Nextflow (symlinks); QC on their outputs
    for mode, info in staging.items():
        run("VALIDATE", mode, info["VALIDATE"])
        loaded = []
        for sample, files, script in zip(info["ids"], info["files"], info["QC_LOAD"]):
            task = root / f"{mode}-qc_load-{sample}"
            for kind, src in zip(("counts", "guides", "fate_probs"), files):
                if src:
                    (task / "inputs" / kind).mkdir(parents=True, exist_ok=True)
                    (task / "inputs" / kind / Path(src).name).symlink_to(src)
            (task / "guide_map.csv").symlink_to(sim_dirs[mode] / "simulate" / "guide_map.csv")
            (task / "validate").mkdir()
            (task / "validate" / "samplesheet.valid.csv").symlink_to(root / f"{mode}-validate" / "validate" / "samplesheet.valid.csv")
            result["tasks"][(f"QC_LOAD:{sample}", mode)] = (task, run_task(task, script), script)
            loaded.append(task / "qc_samples" / f"{sample}.h5ad")
        result["tasks"][("QC_LOAD", mode)] = result["tasks"][(f"QC_LOAD:{info['ids'][0]}", mode)]
        task = root / f"{mode}-qc"
        for i, src in enumerate(loaded, start=1):
            (task / "qc_samples" / f"{i:02d}").mkdir(parents=True)
            (task / "qc_samples" / f"{i:02d}" / src.name).symlink_to(src)
        (task / "guide_map.csv").symlink_to(sim_dirs[mode] / "simulate" / "guide_map.csv")
        run("QC", mode, info["QC"])

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
        result["sources", mode] = sources
    emulate_split_stages(root, procs, result, run)
    result["seconds"] = time.monotonic() - t0
    return result


def emulate_split_stages(root: Path, procs: dict[str, Process], result: dict, run) -> None:
    """5. AUCELL and MASH split over tasks as main.nf runs them with SPLIT_PARAMS: AUCELL_CHUNK per chunk of
    the cells QC kept (main.nf's cellsKept/chunkIndices), AUCELL gathering; MASH_FIT, MASH_CHUNK per row of
    its plan, MASH gathering. Their tasks are ``(name, mode)`` (the first of a kind) and ``(name:K, mode)``;
    the gathers ``(AUCELL:gather, mode)`` and ``(MASH:gather, mode)``."""
    def render(name: str, mode: str, inputs: str) -> str:
        return f"({renderer(procs[name], mode)})({inputs}, [ext: [args: {groovy_json(result['args'].get(name))}]]).toString()"

    def stage(task: Path, links: dict[str, Path]) -> None:
        for rel, src in links.items():
            (task / rel).parent.mkdir(parents=True, exist_ok=True)
            (task / rel).symlink_to(src)

    fate_inputs = "gene_daywise: Paths.get('fate/gene_daywise_for_mash.csv'), guide_daywise: Paths.get('fate/guide_daywise_for_mash.csv')"
    cells_inputs = "h5ad: Paths.get('qc/cells.h5ad'), regulons: Paths.get('prune/regulons.parquet')"
    for mode in ("script", "stub"):
        sources = result["sources", mode]
        table = sources["qc"] / "qc_per_sample.csv"
        indices = (f"chunkIndices(cellsKept(Paths.get('{table}')), {SPLIT_PARAMS['aucell_chunk_size']})"
                   if mode == "script" else "[0]")  # the stub's qc_per_sample.csv has no rows
        chunk_folders = "idx.withIndex().collect { k, i -> Paths.get(String.format('chunks/%02d/aucell_chunk', i + 1)) }"
        g = [GROOVY_PRELUDE, main_functions(), "def out = [:]", f"def idx = {indices}", "out.chunks = idx",
             f"out.AUCELL_CHUNK = idx.collect {{ k -> {render('AUCELL_CHUNK', mode, f'[{cells_inputs}, chunk: k]')} }}",
             f"out.AUCELL = {render('AUCELL', mode, f'[{cells_inputs}, chunks: {chunk_folders}]')}",
             f"out.MASH_FIT = {render('MASH_FIT', mode, f'[{fate_inputs}]')}",
             "println JsonOutput.toJson(out)"]
        out = json.loads(nflang.run_groovy("\n".join(g)))
        au_links = {"qc/cells.h5ad": sources["qc/cells.h5ad"], "prune/regulons.parquet": sources["prune/regulons.parquet"]}
        for k, script in zip(out["chunks"], out["AUCELL_CHUNK"]):
            task = root / f"{mode}-aucell_chunk-{k}"
            stage(task, au_links)
            result["tasks"][(f"AUCELL_CHUNK:{k}", mode)] = (task, run_task(task, script), script)
        result["tasks"][("AUCELL_CHUNK", mode)] = result["tasks"][(f"AUCELL_CHUNK:{out['chunks'][0]}", mode)]
        task = root / f"{mode}-aucell-gather"
        stage(task, {**au_links, **{f"chunks/{i + 1:02d}/aucell_chunk": root / f"{mode}-aucell_chunk-{k}" / "aucell_chunk"
                                    for i, k in enumerate(out["chunks"])}})
        result["tasks"][("AUCELL:gather", mode)] = (task, run_task(task, out["AUCELL"]), out["AUCELL"])
        fate = {f"fate/{n}": sources[f"fate/{n}"] for n in ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv")}
        fit = root / f"{mode}-mash_fit"
        stage(fit, fate)
        run("MASH_FIT", mode, out["MASH_FIT"])
        with open(fit / "mash_fit" / "mash_chunks.csv", newline="") as fh:
            plan = [[r["kind"], r["mode"], int(r["chunk"])] for r in csv.DictReader(fh)]
        gather = (f"(0..{len(plan)}).collect {{ i -> Paths.get(String.format('chunks/%02d/', i + 1) + "
                  f"(i == 0 ? 'mash_fit' : 'mash_chunk')) }}")
        chunk_inputs = f"[{fate_inputs}, fits: Paths.get('mash_fit'), kind: row[0], mode: row[1], chunk: row[2]]"
        g = [GROOVY_PRELUDE, "def out = [:]", f"def plan = {groovy_json(plan)}",
             f"out.MASH_CHUNK = plan.collect {{ row -> {render('MASH_CHUNK', mode, chunk_inputs)} }}",
             f"out.MASH = {render('MASH', mode, f'[{fate_inputs}, fixg_fit: [], chunks: {gather}]')}",
             "println JsonOutput.toJson(out)"]
        out = json.loads(nflang.run_groovy("\n".join(g)))
        gathered = {"chunks/01/mash_fit": fit / "mash_fit"}
        for i, script in enumerate(out["MASH_CHUNK"]):
            task = root / f"{mode}-mash_chunk-{i}"
            stage(task, {**fate, "mash_fit": fit / "mash_fit"})
            result["tasks"][(f"MASH_CHUNK:{i}", mode)] = (task, run_task(task, script), script)
            gathered[f"chunks/{i + 2:02d}/mash_chunk"] = task / "mash_chunk"
        result["tasks"][("MASH_CHUNK", mode)] = result["tasks"][("MASH_CHUNK:0", mode)]
        task = root / f"{mode}-mash-gather"
        stage(task, {**fate, **gathered})
        result["tasks"][("MASH:gather", mode)] = (task, run_task(task, out["MASH"]), out["MASH"])


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

