"""The processes of modules/local: one per module folder, named after it; a label with resources in
conf/base.config; a stub creating every output; a script calling its `fatescope <stage>` with
options the click CLI has; no params inside modules; containers from params. Negative tests
mutate the qc module to show the checks fail."""
from __future__ import annotations

import re

import pytest

from nfconfig import CONF, MODULES, NEXTFLOW_CONFIG, mask, mutate, top_level_block, with_label_blocks, with_name_blocks
from nfmodules import Process, label_problems, parse_processes, script_problems, stage_of, stub_and_output_problems

REQUIRED_LABELS = {"process_single", "process_low", "process_medium", "process_high", "process_gpu"}
CONTAINER_PARAMS = ("python_container", "python_gpu_container", "r_container")


def _qc_mutated(old: str, new: str) -> Process:
    """The qc module's process with ``old`` (which must be there) replaced by ``new`` once."""
    path = MODULES / "qc" / "main.nf"
    return parse_processes(path, mutate(path.read_text(), old, new, 1))[0]


def test_one_process_per_module_folder(processes):
    for folder in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        procs = parse_processes(folder / "main.nf")
        assert len(procs) == 1, f"{folder}/main.nf: expected one process, found {[p.name for p in procs]}"
        assert procs[0].name == folder.name.upper(), f"{folder}: process {procs[0].name} is not named after its folder"



def test_every_process_has_a_label_with_resources(processes):
    blocks = with_label_blocks((CONF / "base.config").read_text())
    assert REQUIRED_LABELS <= set(blocks), f"conf/base.config lacks withLabel blocks for {REQUIRED_LABELS - set(blocks)}"
    problems = [p for proc in processes.values() for p in label_problems(proc, blocks)]
    assert not problems, "\n".join(problems)


def test_gpu_label_requests_an_accelerator_and_exposes_the_gpu():
    body = with_label_blocks((CONF / "base.config").read_text())["process_gpu"]
    assert re.search(r"accelerator\s*=.*params\.use_gpu", body)
    assert "--gpus all" in body and "--nv" in body and "workflow.containerEngine" in body
    assert "python_gpu_container" in body
    gpu_profile = top_level_block(top_level_block(NEXTFLOW_CONFIG.read_text(), "profiles"), "gpu")
    assert re.search(r"params\.use_gpu\s*=\s*true", gpu_profile)


def test_base_config_retries_tasks_killed_for_memory_with_more():
    base = (CONF / "base.config").read_text()
    strategy = re.search(r"errorStrategy\s*=\s*\{(.*)\}", base).group(1)
    assert "retry" in strategy and "130..145" in strategy, "exit 137 (killed: out of memory) must be retried"
    assert re.search(r"maxRetries\s*=\s*[1-9]", base)
    assert re.search(r"memory\s*=\s*\{[^}]*task\.attempt", base), "memory must grow with task.attempt"
    assert re.search(r"resourceLimits\s*=", base)



def test_every_process_has_a_stub_creating_its_outputs_and_emits_versions(processes):
    problems = [p for proc in processes.values() for p in stub_and_output_problems(proc)]
    assert not problems, "\n".join(problems)



def test_process_scripts_call_existing_fatescope_subcommands_and_options(processes):
    problems = [p for proc in processes.values() for p in script_problems(proc)]
    assert not problems, "\n".join(problems)



def test_modules_use_no_params(processes):
    """Modules get everything through inputs and task.ext (params outside the entry workflow
    are deprecated in Nextflow's strict syntax); containers come from conf/base.config."""
    for name, proc in processes.items():
        uses = re.findall(r"\bparams\.(?!yaml\b)\w+", proc.text)  # code and interpolations; not 'params.yaml'
        assert not uses, f"{proc.path}: {name} uses {uses}"


def test_containers_come_from_params(config_params):
    base = (CONF / "base.config").read_text()
    top = mask(base)
    assert re.search(r"(?m)^\s*container\s*=", top), "conf/base.config must set process.container"
    assert "params.container_registry" in base and "params.python_container" in base
    for name, block in with_name_blocks((CONF / "modules.config").read_text()).items():
        m = re.search(r"container\s*=(.*?)\n\s*(?:\w|$)", block, re.S)  # up to the next setting
        if m:
            assert "params.container_registry" in m.group(1) and re.search(r"params\.\w+_container", m.group(1)), \
                f"conf/modules.config: {name}'s container must be built from params"
    from fatescope import __version__
    for key in CONTAINER_PARAMS:
        name, _, tag = str(config_params[key]).rpartition(":")
        assert name and tag == __version__, f"params.{key} = {config_params[key]!r}: tag must be the package version {__version__}"
    manifest = top_level_block(NEXTFLOW_CONFIG.read_text(), "manifest")
    assert re.search(rf"version\s*=\s*'{re.escape(__version__)}'", manifest)


# --- negative tests -----------------------------------------------------------------------

@pytest.mark.parametrize("old, new, expected", [
    ("    label 'process_medium'\n", "", "has no label"),
    ("label 'process_medium'", "label 'process_huge'", "without a withLabel block"),
    ("label 'process_medium'", "label 'process_gpu'", "exactly one size label"),
    ("label 'process_medium'", "label 'process_medium'\n    label 'process_low'", "exactly one size label"),
    ("    stub:\n", "    stubb:\n", "has no stub"),
    ("touch cells.h5ad qc/params.yaml\n    ${keep_h5ad ? 'cp cells.h5ad qc/cells.h5ad' : ''}", "touch qc/params.yaml",
     "stub does not create cells.h5ad"),
    ('path "qc/versions.yml", emit: versions', 'path "versions.yml", emit: versions', "must emit `path \"qc/versions.yml\""),
])
def test_process_checks_fail_on_bad_modules(old, new, expected):
    proc = _qc_mutated(old, new)
    problems = label_problems(proc, with_label_blocks((CONF / "base.config").read_text())) + stub_and_output_problems(proc)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("module, old, new, expected", [
    ("qc", "fatescope qc ${merged}", "fatescope qcc ${merged}", "not a subcommand"),
    ("qc", "--outdir qc ${guide_map_arg}", "--outdir qc --min-featurez 3 ${guide_map_arg}", "no option --min-featurez"),
    ("qc", "def args = task.ext.args ?: ''", "def args = ''", "task.ext.args"),
    ("qc", " ${args}\n", "\n", "must pass ${args}"),
    ("validate", "--input samplesheet.csv --no-check-files", "--no-check-files", "required option --input"),
    ("qc_load", "fatescope qc --input", "fatescope validate --input", "expected `fatescope qc`"),
])
def test_script_check_fails_on_bad_scripts(module, old, new, expected):
    path = MODULES / module / "main.nf"
    proc = parse_processes(path, mutate(path.read_text(), old, new, 1))[0]
    problems = script_problems(proc)
    assert any(expected in p for p in problems), problems


def test_gpu_stages_are_one_list(processes):
    """fatescope.device.GPU_STAGES is the list: the processes labelled process_gpu, the stages with a torch
    device option, and the lists in conf/base.config, containers/README.md, the GPU image and docs."""
    from click import Context

    from fatescope.cli import main
    from fatescope.device import GPU_STAGES

    labelled = {stage_of(name) for name, proc in processes.items() if "process_gpu" in proc.labels}
    assert labelled == set(GPU_STAGES), (sorted(labelled), GPU_STAGES)
    ctx = Context(main)
    for stage in GPU_STAGES:
        options = {p.name for p in main.get_command(ctx, stage).params}
        assert options & {"device", "pruning_device"}, f"{stage}: no --device option, yet a GPU stage"
    plain = ", ".join(GPU_STAGES)
    base = " ".join(re.sub(r"(?m)^\s*//", "", (CONF / "base.config").read_text()).split())
    assert f"GPU_STAGES: {plain})" in base
    repo = CONF.parent
    assert ", ".join(f"`{s}`" for s in GPU_STAGES) in (repo / "containers" / "README.md").read_text()
    dockerfile = " ".join((repo / "containers" / "python-gpu" / "Dockerfile").read_text().replace("#", "").split())
    listed = ", ".join(GPU_STAGES[:-1]) + f" and {GPU_STAGES[-1]}"
    assert f"GPU stages {listed} of the pipeline" in dockerfile and f"stages ({plain};" in dockerfile
    docs = (repo / "docs" / "nextflow.md").read_text()
    assert all(f"`{s}`" in docs.split("### GPU stages")[1].split("\n\n")[1] for s in GPU_STAGES)


GPU_ROUTING_CASES = [  # (config, params) -> expected queue / clusterOptions of a process_gpu task
    ("slurm", {"use_gpu": False, "queue": "normal", "gpu_queue": "gpu", "cluster_options": "--account=lab",
               "gpu_cluster_options": None}, {"queue": "normal", "clusterOptions": "--account=lab"}),
    ("slurm", {"use_gpu": True, "queue": "normal", "gpu_queue": "gpu", "cluster_options": "--account=lab",
               "gpu_cluster_options": None}, {"queue": "gpu", "clusterOptions": "--account=lab --gres=gpu:1"}),
    ("slurm", {"use_gpu": True, "queue": "normal", "gpu_queue": None, "cluster_options": None,
               "gpu_cluster_options": "--gres=gpu:a100:2 --constraint=hbm"},
     {"queue": "normal", "clusterOptions": "--gres=gpu:a100:2 --constraint=hbm"}),
    ("awsbatch", {"use_gpu": True, "queue": "cpu-queue", "gpu_queue": "gpu-queue"}, {"queue": "gpu-queue"}),
    ("awsbatch", {"use_gpu": False, "queue": "cpu-queue", "gpu_queue": "gpu-queue"}, {"queue": "cpu-queue"}),
]


def test_gpu_stages_go_to_the_gpu_queue_with_their_options():
    """The process_gpu directives of conf/slurm.config and conf/awsbatch.config, evaluated by Groovy."""
    import json

    import nflang
    from nfconfig import directive_closure

    nflang.skip_if_unavailable()
    lines, expected = ["import groovy.json.JsonOutput", "def out = []"], []
    for i, (config, params, want) in enumerate(GPU_ROUTING_CASES):
        body = with_label_blocks((CONF / f"{config}.config").read_text())["process_gpu"]
        for j, (directive, value) in enumerate(want.items()):
            closure = directive_closure(body, directive)
            lines.append(f"def d{i}_{j}(params) {{ return {closure} }}")
            lines.append(f"out << d{i}_{j}(new groovy.json.JsonSlurper().parseText('{json.dumps(params)}'))()?.toString()")
            expected.append(value)
    lines.append("println JsonOutput.toJson(out)")
    assert json.loads(nflang.run_groovy("\n".join(lines))) == expected
    gpu_profile = top_level_block(top_level_block(NEXTFLOW_CONFIG.read_text(), "profiles"), "gpu")
    assert re.search(r"maxForks\s*=\s*params\.max_gpus", gpu_profile)
