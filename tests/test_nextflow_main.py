"""main.nf: its includes resolve (modules, and plugin functions against tests/nfplugins.py and the
plugins block of nextflow.config), it calls every process with its inputs and uses only what they
emit, and it collects every versions.yml; with negative tests of the include check."""
from __future__ import annotations

import re

import pytest

from nfconfig import MAIN_NF, MODULES, NEXTFLOW_CONFIG, mask, mutate
from nfmodules import include_problems, includes, process_calls, subworkflow_emits


def test_includes_resolve():
    nf_files = [MAIN_NF, *sorted(MODULES.glob("*/main.nf"))]
    problems = [p for f in nf_files for p in include_problems(f)]
    assert not problems, "\n".join(problems)
    included = {n for names, _ in includes(MAIN_NF.read_text()) for n in names}
    assert {"samplesheetToList", "validateParameters"} <= included



def test_main_calls_every_process_with_its_inputs(processes):
    text = MAIN_NF.read_text()
    calls = process_calls(text, set(processes))
    called = {name for name, _ in calls}
    assert called == set(processes), f"processes never called in main.nf: {set(processes) - called}"
    for name, args in calls:
        assert len(args) == len(processes[name].inputs), \
            f"main.nf calls {name} with {len(args)} arguments; it has {len(processes[name].inputs)} inputs"
    subworkflows = subworkflow_emits()
    assert subworkflows.get("CHECK_IMAGES") == {"ready"}, subworkflows
    for proc, emit in re.findall(r"\b([A-Z][A-Z0-9_]*)\.out\.(\w+)", mask(text)):
        emits = processes[proc].emits if proc in processes else subworkflows[proc]
        assert emit in emits, f"main.nf uses {proc}.out.{emit}, which {proc} does not emit"
    included = {n for names, _ in includes(text) for n in names}
    assert set(processes) <= included


def test_every_version_is_collected(processes):
    text = MAIN_NF.read_text()
    for name in processes:
        assert re.search(rf"ch_versions\s*=\s*ch_versions\.mix\(\s*{name}\.out\.versions(\.first\(\))?\s*\)", text), \
            f"main.nf does not collect {name}.out.versions"
    assert re.search(r"collectFile\(name:\s*'versions\.yml',\s*storeDir:\s*\"\$\{params\.outdir\}/pipeline_info\"", text)


# --- negative tests -----------------------------------------------------------------------

@pytest.mark.parametrize("mutation, expected", [
    (("include { QC       } from './modules/local/qc'", "include { QC_TYPO } from './modules/local/qc'"), "'QC_TYPO' is not defined"),
    (("'./modules/local/qc'", "'./modules/local/nowhere'"), "not found"),
    (("samplesheetToList; validateParameters", "samplesheetToLst; validateParameters"), "no function 'samplesheetToLst'"),
    (("from 'plugin/nf-schema'", "from 'plugin/nf-schemata'"), "not in nextflow.config's plugins block"),
])
def test_include_check_fails_on_bad_includes(mutation, expected):
    """Negative test of include_problems (which also covers plugin includes, see tests/nfplugins.py)."""
    problems = include_problems(MAIN_NF, mutate(MAIN_NF.read_text(), *mutation))
    assert any(expected in p for p in problems), problems


def test_plugin_include_needs_the_plugin_in_the_config():
    config = NEXTFLOW_CONFIG.read_text().replace("id 'nf-schema@", "id 'nf-other@")
    problems = include_problems(MAIN_NF, config_text=config)
    assert any("plugins block" in p for p in problems), problems
