"""How the Nextflow modules use the images: every process of modules/local gets its container from
params.container_registry + params.<x>_container (module directive, or process.container /
withLabel / withName in the config), <x> maps to a Dockerfile under containers/, and that image
provides the `fatescope <stage>` the process runs; negative tests on inline modules and configs."""
from __future__ import annotations

import re

import pytest

from container_images import CONTAINER_PARAMS, MODULES, REGISTRY_PARAM, REPO
from image_checks import image_pin_problem
from module_containers import (ContainerConfig, ImageFacts, Process, check_process, cli_stages, effective_container,
                               load_container_config, module_files, params_of, parse_container_config,
                               parse_processes)


def _modules_or_skip() -> list[Process]:
    files = module_files()
    if not files:
        pytest.skip(f"no Nextflow modules yet ({MODULES.relative_to(REPO)}/*/main.nf not found)")
    procs = []
    for f in files:
        procs += parse_processes(f.read_text(), str(f.relative_to(REPO)))
    return procs


def test_modules_use_existing_images_that_provide_their_command(facts):
    """For every process of modules/local: the container Nextflow gives it (module directive, or
    process.container / withLabel / withName of the config) is built from params.container_registry
    and params.<x>_container, <x> maps to a Dockerfile here, and that image provides the
    `fatescope <stage>` the process runs (and R + mashr for the R image, CUDA torch for the GPU one)."""
    procs = _modules_or_skip()
    assert procs, "modules/local/*/main.nf define no process"
    stages = cli_stages()
    cfg = load_container_config()
    problems = [p for proc in procs for p in check_process(proc, facts, stages, cfg)]
    assert problems == []


def test_nextflow_config_defines_the_image_params():
    config = REPO / "nextflow.config"
    if not config.is_file():
        pytest.skip("nextflow.config not written yet")
    text = config.read_text()
    problems = []
    for param in [REGISTRY_PARAM, *CONTAINER_PARAMS]:
        m = re.search(rf"^\s*(?:params\.)?{param}\s*=\s*(.+?)\s*$", text, re.M)
        if not m:
            problems.append(f"params.{param} is not defined in nextflow.config")
            continue
        literal = re.fullmatch(r"['\"]([^'\"]*)['\"]", m.group(1))
        if param in CONTAINER_PARAMS and literal and literal.group(1):
            ref = literal.group(1)
            name = ref.rsplit("/", 1)[-1].split(":", 1)[0]
            if name != f"fatescope-{CONTAINER_PARAMS[param]}":
                problems.append(f"params.{param} = {ref!r}: containers/{CONTAINER_PARAMS[param]} is built as "
                                f"fatescope-{CONTAINER_PARAMS[param]} (containers/README.md)")
            problem = image_pin_problem(ref)
            if problem:
                problems.append(f"params.{param}: {problem}")
    assert problems == []



# --- negative tests ------------------------------------------------------------------------------

MODULE_GOOD = """\
process QC {
    tag "${meta.id}"
    label 'process_medium'
    container "${params.container_registry ? params.container_registry + '/' : ''}${params.python_container}"

    input:
    path(h5ads)

    output:
    path 'cells.h5ad', emit: cells

    script:
    def args = task.ext.args ?: ''
    \"\"\"
    fatescope --log-level INFO qc --input ${h5ads} ${args}
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        fatescope: \\$(fatescope --version | sed 's/.* //')
    END_VERSIONS
    \"\"\"

    stub:
    \"\"\"
    touch cells.h5ad
    \"\"\"
}
"""


def _facts_for_negative_tests() -> dict[str, ImageFacts]:
    return {"python": ImageFacts("python", True, False, False),
            "python-gpu": ImageFacts("python-gpu", True, False, True),
            "r-mashr": ImageFacts("r-mashr", True, True, False)}


def test_module_parser_and_good_module():
    (proc,) = parse_processes(MODULE_GOOD, "qc/main.nf")
    assert proc.name == "QC" and proc.labels == ["process_medium"]
    assert params_of(proc.container) == ["container_registry", "python_container"]
    assert proc.stages == ["qc"]
    assert check_process(proc, _facts_for_negative_tests(), {"qc", "mash"}) == []


def test_module_with_unknown_container_param_or_stage_is_rejected():
    facts = _facts_for_negative_tests()
    (proc,) = parse_processes(MODULE_GOOD.replace("params.python_container", "params.julia_container"))
    assert any("params.julia_container (from <inline>) maps to no Dockerfile" in p for p in check_process(proc, facts, {"qc"}))
    (proc,) = parse_processes(MODULE_GOOD.replace("INFO qc", "INFO qcc"))
    assert any("`fatescope qcc`" in p for p in check_process(proc, facts, {"qc"}))
    (proc,) = parse_processes(MODULE_GOOD.replace(
        "\"${params.container_registry ? params.container_registry + '/' : ''}${params.python_container}\"",
        "'fatescope-python:0.1.0'"))
    problems = check_process(proc, facts, {"qc"})
    assert any("not built from params" in p for p in problems) and any("container_registry" in p for p in problems)
    (proc,) = parse_processes(MODULE_GOOD.replace("fatescope --log-level INFO qc", "python -m something"))
    assert any("does not run `fatescope <stage>`" in p for p in check_process(proc, facts, {"qc"}))
    no_container = re.sub(r"^\s*container .*\n", "", MODULE_GOOD, flags=re.M)
    (proc,) = parse_processes(no_container)
    assert proc.container is None
    assert any("no container" in p for p in check_process(proc, facts, {"qc"}))


def test_module_image_must_provide_what_the_process_runs():
    facts = _facts_for_negative_tests()
    (proc,) = parse_processes(MODULE_GOOD)
    broken = dict(facts, python=ImageFacts("python", False, False, False))
    assert any("does not provide `fatescope`" in p for p in check_process(proc, broken, {"qc"}))
    mash = MODULE_GOOD.replace("INFO qc", "INFO mash").replace("process_medium", "process_gpu").replace(
        "${params.python_container}",
        "${params.mash_engine == 'r' ? params.r_container : params.use_gpu ? params.python_gpu_container : "
        "params.python_container}")
    (proc,) = parse_processes(mash)
    assert check_process(proc, facts, {"mash"}) == []
    no_r = dict(facts, **{"r-mashr": ImageFacts("r-mashr", True, False, False)})
    assert any("R + mashr" in p for p in check_process(proc, no_r, {"mash"}))
    (proc,) = parse_processes(MODULE_GOOD.replace("INFO qc", "INFO mash"))
    assert any("params.r_container" in p for p in check_process(proc, facts, {"mash"}))


def test_module_gpu_label_and_gpu_image_go_together():
    facts = _facts_for_negative_tests()
    gpu = MODULE_GOOD.replace("process_medium", "process_gpu").replace("INFO qc", "INFO grn")
    (proc,) = parse_processes(gpu)
    assert any("never uses params.python_gpu_container" in p for p in check_process(proc, facts, {"grn"}))
    (proc,) = parse_processes(gpu.replace("${params.python_container}",
                                          "${params.use_gpu ? params.python_gpu_container : params.python_container}"))
    assert check_process(proc, facts, {"grn"}) == []
    (proc,) = parse_processes(MODULE_GOOD.replace("INFO qc", "INFO grn"))
    assert any("GPU stage(s) ['grn']" in p for p in check_process(proc, facts, {"grn"}))
    (proc,) = parse_processes(MODULE_GOOD.replace("${params.python_container}", "${params.python_gpu_container}"))
    assert any("not labelled process_gpu" in p for p in check_process(proc, facts, {"qc"}))
    (proc,) = parse_processes(gpu.replace("${params.python_container}", "${params.python_gpu_container}"))
    cpu_only = dict(facts, **{"python-gpu": ImageFacts("python-gpu", True, False, False)})
    assert any("no CUDA torch build" in p for p in check_process(proc, cpu_only, {"grn"}))


def test_module_container_closure_is_parsed():
    text = MODULE_GOOD.replace(
        "container \"${params.container_registry ? params.container_registry + '/' : ''}${params.python_container}\"",
        "container {\n        def reg = params.container_registry ? \"${params.container_registry}/\" : ''\n"
        "        \"${reg}${params.python_container}\"\n    }")
    (proc,) = parse_processes(text)
    assert params_of(proc.container) == ["container_registry", "python_container"]
    assert proc.stages == ["qc"]


CONFIG = """\
params {
    container_registry = 'ghcr.io/fatescope'
    python_container   = 'fatescope-python:0.1.0'
}
process {
    // the default image of every process
    container = { [params.container_registry, params.python_container].findAll { it }.join('/') }
    withLabel: 'process_gpu' {
        cpus      = 8
        container = { [params.container_registry, params.use_gpu ? params.python_gpu_container : params.python_container].findAll { it }.join('/') }
    }
    withName: 'MASH' {
        container = { [params.container_registry, params.mash_engine == 'r' ? params.r_container
                       : params.use_gpu ? params.python_gpu_container : params.python_container].join('/') }
    }
}
profiles {
    odd {
        process.container = 'somewhere/else:1.0.0'
    }
}
"""


def test_container_from_the_config_is_resolved_with_nextflow_priorities():
    cfg = parse_container_config(CONFIG, "conf/base.config")
    assert len(cfg.generic) == 1 and len(cfg.by_label) == 1 and len(cfg.by_name) == 1  # profiles ignored
    facts = _facts_for_negative_tests()
    no_directive = re.sub(r"^\s*container .*\n", "", MODULE_GOOD, flags=re.M)
    (qc,) = parse_processes(no_directive)
    expr, where = effective_container(qc, cfg)
    assert params_of(expr) == ["container_registry", "python_container"] and where == "conf/base.config"
    assert check_process(qc, facts, {"qc"}, cfg) == []
    (grn,) = parse_processes(no_directive.replace("process_medium", "process_gpu").replace("INFO qc", "INFO grn"))
    assert "python_gpu_container" in params_of(effective_container(grn, cfg)[0])
    assert check_process(grn, facts, {"grn"}, cfg) == []
    (mash,) = parse_processes(no_directive.replace("process QC", "process MASH").replace("INFO qc", "INFO mash")
                              .replace("process_medium", "process_gpu"))
    assert "r_container" in params_of(effective_container(mash, cfg)[0])
    assert check_process(mash, facts, {"mash"}, cfg) == []
    # without the withName block, MASH could never run in the R image
    cfg_no_mash = parse_container_config(re.sub(r"withName: 'MASH' \{.*?\n    \}\n", "", CONFIG, flags=re.S))
    assert any("cannot be params.r_container" in p for p in check_process(mash, facts, {"mash"}, cfg_no_mash))
    # withLabel beats the module's own directive, withName beats withLabel
    (gpu_with_directive,) = parse_processes(MODULE_GOOD.replace("process_medium", "process_gpu"))
    assert effective_container(gpu_with_directive, cfg)[1] == "conf/base.config (withLabel: process_gpu)"
    assert effective_container(gpu_with_directive, ContainerConfig())[1] == "<inline>"
