"""Nextflow's own parser and checker on the repo: the Nextflow language server (nf-lang), driven over
LSP by tests/nflang.py, reads every .nf and .config file in 'paranoid' mode; no file may have an
error. The harness is first shown to fail: broken copies of our files (syntax error, undefined
variable, include of a missing name or file, broken config) must each give an error. Skipped with
a reason when Java 17+ or the jar is missing (.ci/get-nf-lang.sh)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nflang
from nfconfig import CONF, MAIN_NF, MODULES, NEXTFLOW_CONFIG, REPO


@pytest.fixture(scope="session")
def nflang_runs(tmp_path_factory) -> dict[str, tuple]:
    """Both nf-lang checks, run side by side (two language servers): the repo, and a copy of
    its Nextflow files plus the BROKEN ones. Values: (root, diagnostics, seconds)."""
    nflang.skip_if_unavailable()
    from concurrent.futures import ThreadPoolExecutor

    negative = tmp_path_factory.mktemp("nflang-negative").resolve()
    _make_negative_workspace(negative)
    roots = {"repo": REPO, "negative": negative}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(nflang.check_workspace, root) for name, root in roots.items()}
        return {name: (roots[name], *fut.result()) for name, fut in futures.items()}


@pytest.fixture(scope="session")
def repo_diagnostics(nflang_runs) -> tuple[dict[Path, list[nflang.Diagnostic]], float]:
    """nf-lang diagnostics of every .nf/.config file of the repo, and the seconds it took."""
    _, diags, seconds = nflang_runs["repo"]
    return diags, seconds


BROKEN = {
    # file (relative to the negative workspace) -> (how it is made, expected error text)
    "modules/local/broken_syntax/main.nf": ("qc module with its closing brace removed", "Unexpected input"),
    "modules/local/broken_undefined/main.nf": ("validate module whose script uses an undefined variable",
                                               "`no_such_variable` is not defined"),
    "broken_include_name.nf": ("main.nf including QC_TYPO from the qc module", "Included name 'QC_TYPO' is not defined"),
    "broken_include_path.nf": ("main.nf including QC from a missing module folder", "Invalid include source"),
    "broken_channel.nf": ("main.nf with a misspelt channel variable", "`ch_guide_mapp` is not defined"),
    "conf/broken.config": ("modules.config with an unbalanced brace", "Unexpected input"),
    "conf/broken_undefined.config": ("base.config reading `max_cpus` instead of `params.max_cpus`",
                                     "`max_cpus` is not defined"),
    "broken_include.config": ("nextflow.config including a missing conf file", "Invalid include source"),
}


def _make_negative_workspace(root: Path) -> None:
    for name in ("main.nf", "nextflow.config"):
        shutil.copy(REPO / name, root / name)
    for name in ("conf", "modules", "subworkflows", "assets"):
        shutil.copytree(REPO / name, root / name)
    main = (REPO / "main.nf").read_text()
    qc = (MODULES / "qc" / "main.nf").read_text()
    validate = (MODULES / "validate" / "main.nf").read_text()

    def write(rel: str, text: str, original: str) -> None:
        assert text != original, f"mutation for {rel} did not apply"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("modules/local/broken_syntax/main.nf", qc[:qc.rstrip().rfind("}")], qc)
    write("modules/local/broken_undefined/main.nf",
          validate.replace("${args}\n", "${args} ${no_such_variable}\n", 1), validate)
    write("broken_include_name.nf", main.replace("include { QC       }", "include { QC_TYPO  }"), main)
    write("broken_include_path.nf", main.replace("'./modules/local/qc'", "'./modules/local/qc_missing'"), main)
    write("broken_channel.nf", main.replace("QC_LOAD(ch_rows, ch_guide_map,", "QC_LOAD(ch_rows, ch_guide_mapp,"), main)
    modules_cfg = (CONF / "modules.config").read_text()
    write("conf/broken.config", modules_cfg.replace("withName: 'VALIDATE' {", "withName: 'VALIDATE' {{"), modules_cfg)
    base_cfg = (CONF / "base.config").read_text()
    write("conf/broken_undefined.config", base_cfg.replace("cpus  : params.max_cpus", "cpus  : max_cpus"), base_cfg)
    nf_cfg = NEXTFLOW_CONFIG.read_text()
    write("broken_include.config", nf_cfg.replace("includeConfig 'conf/test.config'", "includeConfig 'conf/tset.config'"), nf_cfg)


@pytest.fixture(scope="session")
def negative_diagnostics(nflang_runs) -> tuple[Path, dict[Path, list[nflang.Diagnostic]], float]:
    """nf-lang diagnostics of a copy of the repo's Nextflow files plus the BROKEN files."""
    return nflang_runs["negative"]


def errors(diags: dict[Path, list[nflang.Diagnostic]]) -> list[nflang.Diagnostic]:
    """The error diagnostics (severity 1) -- what the repo check asserts is empty."""
    return [d for items in diags.values() for d in items if d.is_error]


# --- the harness fails on broken code ... -------------------------------------------------

@pytest.mark.parametrize("rel", sorted(BROKEN))
def test_harness_reports_an_error_for_broken_file(negative_diagnostics, rel):
    root, diags, _ = negative_diagnostics
    how, expected = BROKEN[rel]
    found = [d for d in errors(diags) if d.path == root / rel]
    assert found, f"nf-lang reported no error for {rel} ({how}); diagnostics: {diags.get(root / rel)}"
    assert any(expected in d.message for d in found), f"{rel} ({how}): expected {expected!r} in {[str(d) for d in found]}"


def test_harness_attributes_errors_to_the_broken_files_only(negative_diagnostics):
    """The untouched copies in the negative workspace stay clean: errors land on the right file."""
    root, diags, seconds = negative_diagnostics
    print(f"\nnf-lang negative workspace: {len(diags)} files ({len(BROKEN)} broken) checked in {seconds:.1f} s, "
          f"{len(errors(diags))} errors")
    broken = {root / rel for rel in BROKEN}
    stray = [str(d) for d in errors(diags) if d.path not in broken]
    assert not stray, "errors outside the broken files:\n" + "\n".join(stray)
    assert errors(diags), "the negative workspace produced no errors at all"



# ... and finds none in the repo

def test_no_nflang_errors_in_repo(repo_diagnostics):
    diags, seconds = repo_diagnostics
    problems = errors(diags)
    others = [d for items in diags.values() for d in items if not d.is_error]
    print(f"\nnf-lang (paranoid): {len(diags)} files checked in {seconds:.1f} s: "
          f"{len(problems)} errors, {len(others)} warnings/notes")
    for d in others:
        print(f"  {d}")
    assert not problems, "nf-lang errors:\n" + "\n".join(str(d) for d in problems)


def test_nflang_checked_every_nextflow_file(repo_diagnostics):
    diags, _ = repo_diagnostics
    expected = {p.resolve() for p in nflang.nextflow_files(REPO)}
    assert expected, "no .nf/.config files found"
    missing = sorted(str(p) for p in expected - set(diags))
    assert not missing, f"nf-lang published no diagnostics for: {missing}"
    for must in (MAIN_NF, NEXTFLOW_CONFIG, CONF / "base.config", CONF / "modules.config"):
        assert must.resolve() in diags


def test_nflang_check_is_fast_enough(repo_diagnostics):
    _, seconds = repo_diagnostics
    assert seconds < 45, f"the nf-lang check took {seconds:.1f} s"
