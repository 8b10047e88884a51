"""Static tests of the Nextflow layer: main.nf, nextflow.config, conf/, modules/, nextflow_schema.json.

No Nextflow runtime is needed except for the tests marked ``nextflow``. Two kinds of checks:

* Nextflow's own parser and checker -- the Nextflow language server (nf-lang), driven over LSP
  by tests/nflang.py -- reads every .nf and .config file of the repo in 'paranoid' mode: no file
  may have an error. The harness is first shown to fail: broken copies of our files (syntax
  error, undefined variable, include of a missing name or file, broken config) must each give
  an error. Skipped with a reason when Java 17+ or the jar is missing (.ci/get-nf-lang.sh).
* Consistency with the Python package, read from the files themselves: every process has a
  label with resources, a stub, and calls only `fatescope` subcommands/options that exist; the
  ext.args of conf/modules.config name real options, one per stage param; params in
  nextflow.config, nextflow_schema.json, the click CLI, the local engine and the test profile
  agree (names, defaults, types, ranges).

Reading Groovy with regular expressions is enough here because nf-lang has already checked the
syntax; :func:`mask` blanks strings and comments first so braces and keywords inside them do
not count.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nflang  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAIN_NF = REPO / "main.nf"
NEXTFLOW_CONFIG = REPO / "nextflow.config"
SCHEMA = REPO / "nextflow_schema.json"
CONF = REPO / "conf"
MODULES = REPO / "modules" / "local"

REQUIRED_PROFILES = {"test", "docker", "singularity", "apptainer", "gpu", "slurm", "awsbatch", "google", "k8s"}
REQUIRED_LABELS = {"process_single", "process_low", "process_medium", "process_high", "process_gpu"}

# Params that exist only in the Nextflow layer (the local engine `fatescope run` has no use for
# them): publishing, containers, GPU requests, resource limits, executor settings, validation,
# and `simulate`, which the test profile sets (the local engine simulates whenever input is null).
NEXTFLOW_ONLY_PARAMS = {
    "simulate", "publish_dir_mode",
    "container_registry", "python_container", "python_gpu_container", "r_container",
    "use_gpu", "google_gpu_type",
    "max_cpus", "max_memory", "max_time",
    "queue", "cluster_options", "aws_region", "aws_cli_path", "google_project", "google_location",
    "k8s_namespace", "k8s_storage_claim", "k8s_storage_mount",
    "validate_params",
}
# conf/test.config params beyond fatescope.engine.profiles.TEST_PROFILE
TEST_PROFILE_ONLY = {"simulate": True}
CONTAINER_PARAMS = ("python_container", "python_gpu_container", "r_container")


# ------------------------------------------------------------------------------------------
# reading Groovy / Nextflow text
# ------------------------------------------------------------------------------------------

def mask(text: str) -> str:
    """``text`` with comments and the insides of strings (GString interpolations included)
    replaced by spaces; same length, newlines kept, quotes kept."""
    out = list(text)
    n = len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    def string(i: int, quote: str) -> int:  # i: first char after the opening quote
        while i < n:
            if text[i] == "\\":
                i += 2
            elif text.startswith(quote, i):
                return i + len(quote)
            elif quote[0] == '"' and text.startswith("${", i):
                i = code(i + 2, until_brace=True)
            else:
                i += 1
        return n

    def code(i: int, until_brace: bool) -> int:
        depth = 0
        while i < n:
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                blank(i, j)
                i = j
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                j = n if j < 0 else j + 2
                blank(i, j)
                i = j
            elif text.startswith('"""', i) or text.startswith("'''", i):
                j = string(i + 3, text[i:i + 3])
                blank(i + 3, max(i + 3, j - 3))
                i = j
            elif text[i] in "\"'":
                j = string(i + 1, text[i])
                blank(i + 1, max(i + 1, j - 1))
                i = j
            else:
                if until_brace and text[i] == "{":
                    depth += 1
                elif until_brace and text[i] == "}":
                    if depth == 0:
                        return i + 1
                    depth -= 1
                i += 1
        return n

    code(0, until_brace=False)
    return "".join(out)


def closing(masked: str, open_at: int, pair: str = "{}") -> int:
    """Index of the bracket closing the one at ``open_at`` (in masked text)."""
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == pair[0]:
            depth += 1
        elif masked[i] == pair[1]:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {pair!r} from offset {open_at}")


def string_at(text: str, i: int) -> str:
    """The literal of the quoted string starting at ``text[i]`` (no interpolation)."""
    quote = text[i]
    j = i + 1
    while text[j] != quote:
        j += 2 if text[j] == "\\" else 1
    return text[i + 1:j].replace("\\" + quote, quote)


def literal(raw: str):
    """A Groovy literal as Python: null, true/false, numbers, plain strings."""
    raw = raw.strip().rstrip(",")
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d*([eE]-?\d+)?", raw):
        return float(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and "$" not in raw:
        return string_at(raw, 0)
    raise ValueError(f"not a literal: {raw}")


def blocks(text: str, pattern: str, masked: str | None = None) -> list[tuple[re.Match, str, int]]:
    """(match, body text, body offset) of every ``pattern`` ending in '{' (matched on masked text)."""
    masked = mask(text) if masked is None else masked
    out = []
    for m in re.finditer(pattern, masked):
        open_at = m.end() - 1
        assert masked[open_at] == "{", pattern
        end = closing(masked, open_at)
        out.append((m, text[open_at + 1:end], open_at + 1))
    return out


def top_level_block(text: str, name: str) -> str | None:
    """Body of the first ``name { ... }`` block at brace depth 0, or None."""
    masked = mask(text)
    for m in re.finditer(rf"(?m)^\s*{name}\s*\{{", masked):
        if masked[:m.start()].count("{") == masked[:m.start()].count("}"):
            end = closing(masked, m.end() - 1)
            return text[m.end():end]
    return None


def params_block(path: Path) -> dict[str, object]:
    """The literal params of the top-level ``params { }`` block of a config file."""
    body = top_level_block(path.read_text(), "params")
    assert body is not None, f"{path}: no params block"
    masked = mask(body)
    params: dict[str, object] = {}
    for line, mline in zip(body.splitlines(), masked.splitlines()):
        if not mline.strip():
            continue
        m = re.fullmatch(r"\s*(\w+)\s*=\s*(.*?)\s*", mline)
        assert m, f"{path}: params lines are `name = literal`; got {line.strip()!r}"
        raw = line[m.start(2):m.start(2) + len(mline[m.start(2):].rstrip())]
        try:
            params[m.group(1)] = literal(raw)
        except ValueError as exc:
            raise AssertionError(f"{path}: param {m.group(1)} must be a literal (the schema's default is "
                                 f"compared with it), got {raw!r}") from exc
    return params


def top_level_names(body: str) -> list[str]:
    """Names of the ``name {`` blocks at depth 0 of a block body."""
    masked = mask(body)
    names, depth = [], 0
    for m in re.finditer(r"\w+\s*\{|[{}]", masked):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        else:
            if depth == 0:
                names.append(tok.split()[0].rstrip("{"))
            depth += 1
    return names


@dataclass
class Process:
    name: str
    path: Path
    text: str
    labels: list[str]
    directives: str
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        lines = [ln.strip() for ln in self.sections.get("input", "").splitlines()]
        return [ln for ln in lines if re.match(r"(val|path|tuple|env|stdin|each)\b", ln)]

    @property
    def emits(self) -> dict[str, str]:
        out = {}
        for ln in self.sections.get("output", "").splitlines():
            m = re.search(r"""path\s*\(?\s*["']([^"']+)["'].*emit:\s*(\w+)""", ln)
            if m:
                out[m.group(2)] = m.group(1)
        return out


SECTION_RE = re.compile(r"(?m)^\s*(input|output|script|stub|when|exec|shell|topic)\s*:\s*$")


def parse_processes(path: Path, text: str | None = None) -> list[Process]:
    text = path.read_text() if text is None else text
    out = []
    for m, body, _ in blocks(text, r"\bprocess\s+(\w+)\s*\{"):
        masked_body = mask(body)
        heads = list(SECTION_RE.finditer(masked_body))
        directives = body[:heads[0].start()] if heads else body
        sections = {}
        for i, h in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(body)
            sections[h.group(1)] = body[h.end():end]
        mdir = mask(directives)
        labels = [string_at(directives, lm.end() - 1) for lm in re.finditer(r"\blabel\s+['\"]", mdir)]
        out.append(Process(m.group(1), path, body, labels, directives, sections))
    return out


def module_processes() -> dict[str, Process]:
    procs = {}
    for path in sorted(MODULES.glob("*/main.nf")):
        for proc in parse_processes(path):
            assert proc.name not in procs, f"process {proc.name} defined twice"
            procs[proc.name] = proc
    return procs


def stage_of(process: str) -> str:
    """Process name -> `fatescope` subcommand: FATE_FIT -> fate-fit."""
    return process.lower().replace("_", "-")


def includes(text: str) -> list[tuple[list[str], str]]:
    """(included names, source) of every include statement."""
    masked = mask(text)
    out = []
    for m in re.finditer(r"\binclude\s*\{([^}]*)\}\s*from\s*(['\"])", masked):
        names = [n.split()[0] for n in m.group(1).split(";") if n.strip()]  # `NAME as ALIAS` -> NAME
        out.append((names, string_at(text, m.end() - 1)))
    return out


def definitions(path: Path) -> set[str]:
    """Names a module file defines: processes, workflows, functions."""
    masked = mask(path.read_text())
    return set(re.findall(r"(?m)^\s*(?:process|workflow)\s+(\w+)\s*\{", masked)) | \
        set(re.findall(r"(?m)^\s*def\s+(\w+)\s*\(", masked))


def include_problems(nf_file: Path, text: str | None = None, config_text: str | None = None) -> list[str]:
    """Includes of ``nf_file`` that do not resolve: missing module file, a name the module does
    not define, a plugin not declared in nextflow.config's plugins block, or a name the plugin
    does not provide (plugin specs in nflang.PLUGIN_SPECS)."""
    text = nf_file.read_text() if text is None else text
    config_text = NEXTFLOW_CONFIG.read_text() if config_text is None else config_text
    plugins_body = top_level_block(config_text, "plugins") or ""
    declared = dict(re.findall(r"id\s+['\"]([\w-]+)@([\w.\-]+)['\"]", plugins_body))
    problems = []
    for names, source in includes(text):
        if source.startswith("plugin/"):
            plugin = source.split("/", 1)[1]
            if plugin not in declared:
                problems.append(f"{nf_file}: plugin {plugin!r} is not in nextflow.config's plugins block")
                continue
            spec = nflang.PLUGIN_SPECS.get(plugin)
            if spec is None:
                problems.append(f"{nf_file}: no spec for plugin {plugin!r} in tests/nflang.py")
                continue
            provided = {d["spec"]["name"] for d in spec["definitions"] if d["type"] in ("Function", "Factory", "Operator")}
            problems += [f"{nf_file}: {plugin} has no function {n!r}" for n in names if n not in provided]
            continue
        target = (nf_file.parent / source).resolve()
        module = target / "main.nf" if target.is_dir() else target.with_suffix(".nf") if target.suffix != ".nf" else target
        if not module.is_file():
            problems.append(f"{nf_file}: include source {source!r} not found ({module})")
            continue
        defined = definitions(module)
        problems += [f"{nf_file}: {n!r} is not defined in {module}" for n in names if n not in defined]
    return problems


def process_calls(text: str, names: set[str]) -> list[tuple[str, list[str]]]:
    """(process, [argument text]) of every call of one of ``names`` in ``text``."""
    masked = mask(text)
    out = []
    for m in re.finditer(r"\b([A-Z][A-Z0-9_]*)\s*\(", masked):
        if m.group(1) not in names:
            continue
        end = closing(masked, m.end() - 1, "()")
        inner, minner = text[m.end():end], masked[m.end():end]
        args, depth, start = [], 0, 0
        for i, ch in enumerate(minner):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 0:
                args.append(inner[start:i].strip())
                start = i + 1
        if inner[start:].strip():
            args.append(inner[start:].strip())
        out.append((m.group(1), args))
    return out


def selector_blocks(text: str, selector: str) -> dict[str, str]:
    """{name: body} of the ``withName: 'NAME' {`` / ``withLabel: 'name' {`` blocks of a config."""
    return {string_at(text, m.start(1)): body
            for m, body, _ in blocks(text, selector + r"\s*:\s*(['\"])[^'\"]*['\"]\s*\{")}


def with_name_blocks(text: str) -> dict[str, str]:
    return selector_blocks(text, "withName")


def with_label_blocks(text: str) -> dict[str, str]:
    return selector_blocks(text, "withLabel")


def ext_args_options(block: str) -> tuple[dict[str, str], set[str]]:
    """From a withName block: {option: param} of the ext.args map, and every other literal
    --option written in ext.args."""
    m = re.search(r"ext\.args\s*=", mask(block))
    if not m:
        return {}, set()
    region = block[m.end():]
    pairs = dict(re.findall(r"['\"]([a-z][a-z0-9-]*)['\"]\s*:\s*params\.(\w+)", region))
    literal_opts = set(re.findall(r"--([a-z][a-z0-9-]*)", region))
    return pairs, literal_opts


# ------------------------------------------------------------------------------------------
# the Python side
# ------------------------------------------------------------------------------------------

def cli_command(stage: str) -> click.Command | None:
    from fatescope.cli import main

    return main.get_command(click.Context(main), stage)


def option_names(cmd: click.Command) -> set[str]:
    return {opt.lstrip("-") for p in cmd.params for opt in p.opts + p.secondary_opts if opt.startswith("--")}


def engine_stages() -> dict:
    from fatescope.engine.stages import STAGES

    return {s.name: s for s in STAGES}


def clean_default(value):
    return None if value is None or type(value).__name__ == "Sentinel" or repr(value).startswith("Sentinel") else value


def schema_properties(schema: dict) -> dict[str, dict]:
    props = dict(schema.get("properties", {}))
    for group in schema.get("$defs", {}).values():
        for name, spec in group.get("properties", {}).items():
            assert name not in props, f"param {name} is in two schema groups"
            props[name] = spec
    return props


def json_type(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[type(value)]


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def config_params() -> dict[str, object]:
    return params_block(NEXTFLOW_CONFIG)


@pytest.fixture(scope="session")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="session")
def processes() -> dict[str, Process]:
    procs = module_processes()
    assert procs, "no processes under modules/local"
    return procs


@pytest.fixture(scope="session")
def modules_config() -> dict[str, str]:
    return with_name_blocks((CONF / "modules.config").read_text())


def _nflang_or_skip():
    reason = nflang.skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def nflang_runs(tmp_path_factory) -> dict[str, tuple]:
    """Both nf-lang checks, run side by side (two language servers): the repo, and a copy of
    its Nextflow files plus the BROKEN ones. Values: (root, diagnostics, seconds)."""
    _nflang_or_skip()
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
    for name in ("conf", "modules", "assets"):
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
    write("broken_channel.nf", main.replace("QC(ch_samples, ch_guide_map,", "QC(ch_samples, ch_guide_mapp,"), main)
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


# ------------------------------------------------------------------------------------------
# nf-lang: the harness fails on broken code ...
# ------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------
# includes
# ------------------------------------------------------------------------------------------

def test_includes_resolve():
    nf_files = [MAIN_NF, *sorted(MODULES.glob("*/main.nf"))]
    problems = [p for f in nf_files for p in include_problems(f)]
    assert not problems, "\n".join(problems)
    included = {n for names, _ in includes(MAIN_NF.read_text()) for n in names}
    assert {"samplesheetToList", "validateParameters"} <= included


@pytest.mark.parametrize("mutation, expected", [
    (("include { QC       } from './modules/local/qc'", "include { QC_TYPO } from './modules/local/qc'"), "'QC_TYPO' is not defined"),
    (("'./modules/local/qc'", "'./modules/local/nowhere'"), "not found"),
    (("samplesheetToList; validateParameters", "samplesheetToLst; validateParameters"), "no function 'samplesheetToLst'"),
    (("from 'plugin/nf-schema'", "from 'plugin/nf-schemata'"), "not in nextflow.config's plugins block"),
])
def test_include_check_fails_on_bad_includes(mutation, expected):
    """Negative test of include_problems (which also covers plugin includes, see tests/nflang.py)."""
    text = MAIN_NF.read_text()
    assert mutation[0] in text
    problems = include_problems(MAIN_NF, text.replace(mutation[0], mutation[1]))
    assert any(expected in p for p in problems), problems


def test_plugin_include_needs_the_plugin_in_the_config():
    config = NEXTFLOW_CONFIG.read_text().replace("id 'nf-schema@", "id 'nf-other@")
    problems = include_problems(MAIN_NF, config_text=config)
    assert any("plugins block" in p for p in problems), problems


# ------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------

def test_one_process_per_module_folder(processes):
    for folder in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        procs = parse_processes(folder / "main.nf")
        assert len(procs) == 1, f"{folder}/main.nf: expected one process, found {[p.name for p in procs]}"
        assert stage_of(procs[0].name) == folder.name.replace("_", "-"), \
            f"{folder}: process {procs[0].name} is not named after its folder"


def label_problems(proc: Process, labels: set[str]) -> list[str]:
    if not proc.labels:
        return [f"{proc.path}: process {proc.name} has no label"]
    resource_labels = [lb for lb in proc.labels if lb in labels]
    if len(resource_labels) != 1:
        return [f"{proc.path}: {proc.name} must have exactly one label with a withLabel block in conf/base.config, "
                f"has {proc.labels}"]
    return []


def test_every_process_has_a_label_with_resources(processes):
    labels = set(with_label_blocks((CONF / "base.config").read_text()))
    assert REQUIRED_LABELS <= labels, f"conf/base.config lacks withLabel blocks for {REQUIRED_LABELS - labels}"
    problems = [p for proc in processes.values() for p in label_problems(proc, labels)]
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


def stub_and_output_problems(proc: Process) -> list[str]:
    """A script and a stub; the stub creates every output; outputs live in the stage folder,
    which is emitted as `outdir`, and its versions.yml as `versions`."""
    problems = []
    stub = proc.sections.get("stub", "")
    if not stub.strip():
        problems.append(f"{proc.path}: process {proc.name} has no stub: block")
    if "script" not in proc.sections:
        return problems + [f"{proc.path}: process {proc.name} has no script: block"]
    for emit, out in proc.emits.items():
        if stub.strip() and out not in stub:
            problems.append(f"{proc.path}: {proc.name}'s stub does not create {out} (emit {emit})")
    outdir = stage_outdir(proc)
    if proc.emits.get("versions") != f"{outdir}/versions.yml":
        problems.append(f"{proc.path}: {proc.name} must emit `path \"{outdir}/versions.yml\", emit: versions`")
    if proc.emits.get("outdir") != outdir:
        problems.append(f"{proc.path}: {proc.name} must emit its folder `path \"{outdir}\", emit: outdir`")
    problems += [f"{proc.path}: output {out} is outside {outdir}/" for out in proc.emits.values()
                 if out != outdir and not out.startswith(outdir + "/")]
    return problems


def test_every_process_has_a_stub_creating_its_outputs_and_emits_versions(processes):
    problems = [p for proc in processes.values() for p in stub_and_output_problems(proc)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("old, new, expected", [
    ("    label 'process_medium'\n", "", "has no label"),
    ("label 'process_medium'", "label 'process_huge'", "exactly one label with a withLabel block"),
    ("    stub:\n", "    stubb:\n", "has no stub"),
    ("    touch qc/cells.h5ad qc/params.yaml\n", "", "stub does not create qc/cells.h5ad"),
    ('path "qc/versions.yml", emit: versions', 'path "versions.yml", emit: versions', "must emit `path \"qc/versions.yml\""),
])
def test_process_checks_fail_on_bad_modules(old, new, expected):
    text = (MODULES / "qc" / "main.nf").read_text()
    assert old in text
    proc = parse_processes(MODULES / "qc" / "main.nf", text.replace(old, new, 1))[0]
    labels = set(with_label_blocks((CONF / "base.config").read_text()))
    problems = label_problems(proc, labels) + stub_and_output_problems(proc)
    assert any(expected in p for p in problems), problems


def stage_outdir(proc: Process) -> str:
    m = re.search(r"--outdir\s+(\S+)", proc.sections.get("script", ""))
    assert m, f"{proc.path}: the script must pass --outdir"
    return m.group(1)


def script_problems(proc: Process) -> list[str]:
    """What is wrong with a process script's `fatescope` call (empty when nothing)."""
    script = proc.sections.get("script", "")
    calls = re.findall(r"\bfatescope\s+([a-z][a-z0-9-]*)", script)
    if len(calls) != 1:
        return [f"{proc.name}: expected one `fatescope <stage>` call in the script, found {calls}"]
    stage = calls[0]
    problems = []
    if stage != stage_of(proc.name):
        problems.append(f"{proc.name} calls `fatescope {stage}`, expected `fatescope {stage_of(proc.name)}`")
    cmd = cli_command(stage)
    if cmd is None:
        return problems + [f"{proc.name}: `fatescope {stage}` is not a subcommand of the CLI"]
    known = option_names(cmd)
    for opt in sorted(set(re.findall(r"--([a-z][a-z0-9-]*)", script)) - known):
        problems.append(f"{proc.name}: `fatescope {stage}` has no option --{opt}")
    if not re.search(r"def\s+args\s*=\s*task\.ext\.args\s*\?:\s*''", script):
        problems.append(f"{proc.name}: the script must start with `def args = task.ext.args ?: ''`")
    if not re.search(r"\$\{?args\}?", script.split('"""', 1)[-1]):
        problems.append(f"{proc.name}: the command must pass ${{args}}")
    missing = [p.opts[0] for p in cmd.params if getattr(p, "required", False) and p.opts[0].lstrip("-") not in
               set(re.findall(r"--([a-z][a-z0-9-]*)", script))]
    problems += [f"{proc.name}: required option {o} of `fatescope {stage}` is not passed" for o in missing]
    return problems


def test_process_scripts_call_existing_fatescope_subcommands_and_options(processes):
    problems = [p for proc in processes.values() for p in script_problems(proc)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("old, new, expected", [
    ("fatescope qc --input", "fatescope qcc --input", "not a subcommand"),
    ("--outdir qc ${guide_map_arg}", "--outdir qc --min-featurez 3 ${guide_map_arg}", "no option --min-featurez"),
    ("def args = task.ext.args ?: ''", "def args = ''", "task.ext.args"),
    (" ${args}\n", "\n", "must pass ${args}"),
    ("--input samplesheet.csv --outdir qc", "--outdir qc", "required option --input"),
])
def test_script_check_fails_on_bad_scripts(old, new, expected):
    text = (MODULES / "qc" / "main.nf").read_text()
    assert old in text
    proc = parse_processes(MODULES / "qc" / "main.nf", text.replace(old, new, 1))[0]
    problems = script_problems(proc)
    assert any(expected in p for p in problems), problems


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
        m = re.search(r"container\s*=(.*)", block)
        if m:
            assert "params.container_registry" in m.group(1) and re.search(r"params\.\w+_container", m.group(1)), \
                f"conf/modules.config: {name}'s container must be built from params"
    from fatescope import __version__
    for key in CONTAINER_PARAMS:
        name, _, tag = str(config_params[key]).rpartition(":")
        assert name and tag == __version__, f"params.{key} = {config_params[key]!r}: tag must be the package version {__version__}"
    manifest = top_level_block(NEXTFLOW_CONFIG.read_text(), "manifest")
    assert re.search(rf"version\s*=\s*'{re.escape(__version__)}'", manifest)


def test_main_calls_every_process_with_its_inputs(processes):
    text = MAIN_NF.read_text()
    calls = process_calls(text, set(processes))
    called = {name for name, _ in calls}
    assert called == set(processes), f"processes never called in main.nf: {set(processes) - called}"
    for name, args in calls:
        assert len(args) == len(processes[name].inputs), \
            f"main.nf calls {name} with {len(args)} arguments; it has {len(processes[name].inputs)} inputs"
    for proc, emit in re.findall(r"\b([A-Z][A-Z0-9_]*)\.out\.(\w+)", mask(text)):
        assert emit in processes[proc].emits, f"main.nf uses {proc}.out.{emit}, which {proc} does not emit"
    included = {n for names, _ in includes(text) for n in names}
    assert set(processes) <= included


def test_every_version_is_collected(processes):
    text = MAIN_NF.read_text()
    for name in processes:
        assert re.search(rf"ch_versions\s*=\s*ch_versions\.mix\(\s*{name}\.out\.versions\s*\)", text), \
            f"main.nf does not collect {name}.out.versions"
    assert re.search(r"collectFile\(name:\s*'versions\.yml',\s*storeDir:\s*\"\$\{params\.outdir\}/pipeline_info\"", text)


# ------------------------------------------------------------------------------------------
# conf/modules.config
# ------------------------------------------------------------------------------------------

def test_every_process_is_published_to_its_stage_folder(processes, modules_config):
    for name, proc in processes.items():
        assert name in modules_config, f"conf/modules.config has no withName: '{name}' block"
        block = modules_config[name]
        outdir = stage_outdir(proc)
        assert re.search(rf"publishDir\s*=\s*\[path:\s*\{{\s*params\.outdir\s*\}}.*pattern:\s*'{re.escape(outdir)}'", block), \
            f"{name} must be published with pattern '{outdir}' into params.outdir"
        cmd = cli_command(stage_of(name))
        default_outdir = next(p.default for p in cmd.params if p.name == "outdir")
        assert outdir == default_outdir, f"{name} writes to {outdir}/, the CLI's (and local engine's) folder is {default_outdir}/"
    unknown = set(modules_config) - set(processes)
    assert not unknown, f"conf/modules.config configures unknown processes {unknown}"


def ext_args_problems(process: str, block: str, prefix: str, input_names: set[str]) -> list[str]:
    cmd = cli_command(stage_of(process))
    if cmd is None:
        return [f"{process}: no `fatescope {stage_of(process)}` command"]
    pairs, literal_opts = ext_args_options(block)
    known = option_names(cmd)
    problems = [f"{process}: ext.args option --{o} is not an option of `fatescope {stage_of(process)}`"
                for o in sorted(literal_opts | set(pairs)) if o not in known]
    by_opt = {p.opts[0].lstrip("-"): p for p in cmd.params if isinstance(p, click.Option)}
    for opt, param in pairs.items():
        if opt in by_opt:
            expected = prefix + by_opt[opt].name
            if param != expected:
                problems.append(f"{process}: --{opt} is fed from params.{param}; the naming rule says params.{expected}")
            if by_opt[opt].is_flag:
                problems.append(f"{process}: --{opt} is a flag; ext.args would pass it a value")
    stage_params = {p.opts[0].lstrip("-") for p in cmd.params
                    if isinstance(p, click.Option) and p.name not in input_names | {"outdir"}}
    problems += [f"{process}: stage option --{o} is not passed in ext.args (its param would have no effect)"
                 for o in sorted(stage_params - set(pairs))]
    return problems


def test_ext_args_options_exist_and_cover_every_stage_param(processes, modules_config):
    stages = engine_stages()
    problems = []
    for name in processes:
        stage = stages[stage_of(name)]
        problems += ext_args_problems(name, modules_config.get(name, ""), stage.prefix, stage.input_names())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("old, new, expected", [
    ("'min-cells'   : params.min_cells", "'min-cellz'   : params.min_cells", "--min-cellz is not an option"),
    ("'min-cells'   : params.min_cells", "'min-cells'   : params.min_cell", "naming rule says params.min_cells"),
    ("'gene-join'   : params.gene_join,", "", "--gene-join is not passed"),
])
def test_ext_args_check_fails_on_bad_options(old, new, expected):
    text = (CONF / "modules.config").read_text()
    assert old in text
    block = with_name_blocks(text.replace(old, new, 1))["QC"]
    problems = ext_args_problems("QC", block, "", {"input", "guide_map"})
    assert any(expected in p for p in problems), problems


# ------------------------------------------------------------------------------------------
# params: nextflow.config <-> schema <-> click <-> local engine <-> test profile
# ------------------------------------------------------------------------------------------

def test_config_params_and_schema_agree(config_params, schema):
    props = schema_properties(schema)
    assert set(config_params) == set(props), (
        f"in nextflow.config only: {sorted(set(config_params) - set(props))}; "
        f"in nextflow_schema.json only: {sorted(set(props) - set(config_params))}")
    for name, value in config_params.items():
        spec = props[name]
        assert spec.get("description"), f"schema: {name} has no description"
        assert spec.get("type"), f"schema: {name} has no type"
        if value is None:
            assert spec.get("default") is None, f"schema: {name} defaults to null in nextflow.config"
        else:
            assert "default" in spec and spec["default"] == value and type(spec["default"]) is type(value), \
                f"schema default of {name} is {spec.get('default')!r}, nextflow.config has {value!r}"
            assert spec["type"] == json_type(value), f"schema type of {name} is {spec['type']}, the default is {value!r}"
            if "enum" in spec:
                assert value in spec["enum"]


def test_schema_structure(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    groups = schema["$defs"]
    assert [ref["$ref"] for ref in schema["allOf"]] == [f"#/$defs/{g}" for g in groups], "allOf must list every $defs group"
    for name, group in groups.items():
        assert group.get("title") and group.get("type") == "object" and group.get("properties"), f"$defs/{name}"
    inp = schema_properties(schema)["input"]
    assert inp["format"] == "file-path" and inp["schema"] == "assets/schema_input.json"
    assert (REPO / inp["schema"]).is_file()


def test_schema_is_valid_and_accepts_the_defaults(schema, config_params):
    """nextflow_schema.json is a valid draft 2020-12 schema; the defaults and the test profile's
    params satisfy it (types, ranges, enums, patterns) and bad values do not."""
    import jsonschema
    from fatescope.engine.profiles import TEST_PROFILE

    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    defaults = {k: v for k, v in config_params.items() if v is not None}
    for instance in (defaults, {**defaults, **TEST_PROFILE, **TEST_PROFILE_ONLY}):
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(instance)]
        assert not problems, problems
    for bad in ({"publish_dir_mode": "cp"}, {"min_features": -1}, {"sim_ntc_frac": 1.5}, {"gene_join": "left"},
                {"max_memory": "lots"}, {"sim_n_cells": 2.5}, {"use_gpu": "yes"}):
        assert list(validator.iter_errors({**defaults, **bad})), f"schema accepts {bad}"


def test_stage_params_follow_the_naming_rule(config_params, processes, schema):
    """Every option of every stage (minus --outdir and inputs) is the param <prefix><dest> with
    the click default; the schema's type, range and choices are the click option's."""
    props = schema_properties(schema)
    stages = engine_stages()
    problems = []
    for name in processes:
        stage = stages.get(stage_of(name))
        assert stage is not None, f"stage {stage_of(name)} is not in fatescope.engine.stages.STAGES"
        for opt in stage.command.params:
            if not isinstance(opt, click.Option) or opt.name in stage.input_names() | {"outdir"}:
                continue
            param = stage.prefix + opt.name
            if param not in config_params:
                problems.append(f"--{opt.name} of `fatescope {stage.name}` has no param {param} in nextflow.config")
                continue
            default = clean_default(opt.default)
            if config_params[param] != default or type(config_params[param]) is not type(default):
                problems.append(f"params.{param} = {config_params[param]!r}; `fatescope {stage.name} --{opt.name}` "
                                f"defaults to {default!r}")
            spec, t = props.get(param, {}), opt.type
            want = ("integer" if isinstance(t, click.IntRange) or t is click.INT else
                    "number" if isinstance(t, click.FloatRange) or t is click.FLOAT else
                    "boolean" if t is click.BOOL else "string")
            if spec.get("type") != want:
                problems.append(f"schema type of {param} is {spec.get('type')}, click says {want}")
            for key, attr in (("minimum", "min"), ("maximum", "max")):
                if getattr(t, attr, None) is not None and spec.get(key) != getattr(t, attr):
                    problems.append(f"schema {key} of {param} is {spec.get(key)}, click's is {getattr(t, attr)}")
            if isinstance(t, click.Choice) and spec.get("enum") != list(t.choices):
                problems.append(f"schema enum of {param} is {spec.get('enum')}, click's choices are {list(t.choices)}")
    assert not problems, "\n".join(problems)


def test_params_agree_with_the_local_engine(config_params):
    """Both engines read the same params: the local engine's defaults (fatescope.engine.stages)
    are nextflow.config's, and nextflow.config adds only the Nextflow-only ones."""
    from fatescope.engine.stages import default_params

    local = default_params()
    assert set(config_params) == set(local) | NEXTFLOW_ONLY_PARAMS, (
        f"only in nextflow.config (add to NEXTFLOW_ONLY_PARAMS if Nextflow-only): "
        f"{sorted(set(config_params) - set(local) - NEXTFLOW_ONLY_PARAMS)}; "
        f"only in the local engine: {sorted(set(local) - set(config_params))}")
    assert not NEXTFLOW_ONLY_PARAMS & set(local), "a Nextflow-only param is also a local-engine param"
    for name, value in local.items():
        assert config_params[name] == value, f"params.{name}: nextflow.config {config_params[name]!r}, local engine {value!r}"


def test_every_module_is_a_local_engine_stage(processes):
    stages = engine_stages()
    nextflow_stages = {stage_of(n) for n in processes}
    assert nextflow_stages == set(stages), (
        f"stages only in Nextflow: {sorted(nextflow_stages - set(stages))}; "
        f"only in the local engine: {sorted(set(stages) - nextflow_stages)}")


def test_test_profile_matches_the_local_engine():
    from fatescope.engine.profiles import TEST_PROFILE

    test_params = params_block(CONF / "test.config")
    assert test_params == {**TEST_PROFILE, **TEST_PROFILE_ONLY}, (
        f"conf/test.config params {test_params} != TEST_PROFILE {TEST_PROFILE} + {TEST_PROFILE_ONLY}")


def test_required_profiles_exist():
    body = top_level_block(NEXTFLOW_CONFIG.read_text(), "profiles")
    assert body is not None, "nextflow.config has no profiles block"
    profiles = set(top_level_names(body))
    assert REQUIRED_PROFILES <= profiles, f"missing profiles: {REQUIRED_PROFILES - profiles}"
    for target in re.findall(r"includeConfig\s+'([^']+)'", NEXTFLOW_CONFIG.read_text()):
        assert (REPO / target).is_file(), f"includeConfig {target}: no such file"
    cfg = NEXTFLOW_CONFIG.read_text()
    assert "includeConfig 'conf/base.config'" in cfg and "includeConfig 'conf/modules.config'" in cfg
    assert re.search(r"id\s+'nf-schema@\d+\.\d+\.\d+'", cfg), "nf-schema must be pinned to an exact version"
    manifest = top_level_block(cfg, "manifest")
    for key, value in (("name", "fatescope"), ("mainScript", "main.nf"), ("nextflowVersion", ">=24.10")):
        assert re.search(rf"{key}\s*=\s*'{re.escape(value)}'", manifest), f"manifest.{key} must be {value!r}"
    for report in ("timeline", "report", "trace", "dag"):
        block = top_level_block(cfg, report)
        assert block and "${params.outdir}/pipeline_info/" in block and re.search(r"enabled\s*=\s*true", block)


def test_params_block_parser_rejects_non_literals(tmp_path):
    cfg = tmp_path / "x.config"
    cfg.write_text("params {\n  a = 1\n  b = \"${params.a}\"\n}\n")
    with pytest.raises(AssertionError, match="must be a literal"):
        params_block(cfg)
    cfg.write_text("params {\n  a = 1 // one\n  b = 'x' /* two */\n  c = null\n  d = 2.5\n}\n")
    assert params_block(cfg) == {"a": 1, "b": "x", "c": None, "d": 2.5}


# ------------------------------------------------------------------------------------------
# the test profile's DAG, emulated: our Groovy evaluated by real Groovy, scripts run by bash
# ------------------------------------------------------------------------------------------
#
# Without a Nextflow runtime we still run what Nextflow would run. The Groovy runtime inside the
# nf-lang jar (Groovy 4, as Nextflow's) evaluates the ext.args closures of conf/modules.config,
# the helper functions of main.nf and each process's script:/stub: section with its inputs
# bound the way Nextflow binds them (path inputs as staged relative names); the rendered bash
# runs in a task folder with bin/ on PATH and `bash -euo pipefail` (process.shell), files staged
# as symlinks like Nextflow's default stageInMode. What this does not cover: the channel
# operators, publishDir, containers, executors -- the `nextflow`-marked tests below do.

# small simulation so that the emulated test profile takes seconds
SMALL_SIMULATION = {"sim_n_cells": 300, "sim_n_genes": 200, "sim_n_days": 2, "sim_n_replicates": 1, "sim_n_tfs": 3,
                    "sim_targets_per_tf": 10, "sim_n_perturbed_genes": 6, "sim_guides_per_gene": 2,
                    "sim_n_ntc_guides": 2, "sim_n_motifs": 20, "sim_kmax": 4, "sim_moi": 1.0, "min_features": 10}

GROOVY_PRELUDE = """
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path
import java.nio.file.Paths
def file(value, Map options = [:]) { Paths.get(value.toString()) }
"""


def main_functions() -> str:
    """The top-level function definitions of main.nf, verbatim."""
    text = MAIN_NF.read_text()
    return "\n\n".join(text[m.start():off + len(body) + 1]
                       for m, body, off in blocks(text, r"(?m)^def\s+\w+\s*\([^)]*\)\s*\{"))


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


def ext_args_closure(block: str) -> str | None:
    masked = mask(block)
    m = re.search(r"ext\.args\s*=\s*\{", masked)
    if not m:
        return None
    return block[m.end() - 1:closing(masked, m.end() - 1) + 1]


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


def directive_closure(body: str, name: str) -> str:
    """The ``{ ... }`` assigned to directive ``name`` at brace depth 0 of a block body."""
    masked = mask(body)
    for m in re.finditer(rf"(?m)^\s*{name}\s*=\s*\{{", masked):
        if masked[:m.start()].count("{") == masked[:m.start()].count("}"):
            return body[m.end() - 1:closing(masked, m.end() - 1) + 1]
    raise AssertionError(f"no `{name} = {{ ... }}` at the top of the block")


TRICKY_SHEET = [["sample", "counts", "batch", "day", "replicate"],
                ["s1", 0, "lane,1", "d0", "r1"],
                ["s2", 1, "it's", 'say "hi"', "$HOME`x`"]]
TRICKY_FILES = ["inputs/01/with space.h5ad", "inputs/02/comma,name.h5ad"]


@pytest.fixture(scope="session")
def emulated(tmp_path_factory):
    """The test profile's DAG (SIMULATE -> VALIDATE -> QC) emulated in script and stub mode."""
    _nflang_or_skip()
    import csv

    from fatescope.engine.profiles import TEST_PROFILE

    t0 = time.monotonic()
    root = tmp_path_factory.mktemp("emulated")
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
        g.append(f"""
def rows_{mode} = simulatedRows(new Expando(splitCsv: {{ Map o -> {groovy_json(rows)} }}), Paths.get('{task / "simulate"}'))
rows_{mode} = rows_{mode}.toSorted({comparator})
def (sheet_{mode}, files_{mode}) = stagedSamplesheet(rows_{mode})
def staged_{mode} = files_{mode}.withIndex().collect {{ f, i -> Paths.get(String.format('inputs/%02d/%s', i + 1, f.fileName)) }}
def inputs_{mode} = [sheet: sheet_{mode}, files: staged_{mode}, guide_map: Paths.get('guide_map.csv'),
                     validated: Paths.get('validate/samplesheet.valid.csv')]
out['{mode}'] = [sheet: sheet_{mode}, files: files_{mode}*.toString(), staged: staged_{mode}*.toString(),
                 VALIDATE: {tasks['VALIDATE']}, QC: {tasks['QC']}]
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
    result["seconds"] = time.monotonic() - t0
    return result


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


# ------------------------------------------------------------------------------------------
# with the nextflow runtime (skipped here)
# ------------------------------------------------------------------------------------------

def _nextflow_or_skip() -> str:
    exe = shutil.which("nextflow")
    if exe is None:
        print("\nskipped: `nextflow` is not on PATH (install Nextflow >=24.10 to run the runtime tests)")
        pytest.skip("`nextflow` is not on PATH: runtime tests of the Nextflow layer need Nextflow >=24.10")
    return exe


def _run_nextflow(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "NXF_ANSI_LOG": "false", "NXF_HOME": str(cwd / ".nxf-home"), "NXF_SYNTAX_PARSER": "v2"}
    if "NXF_HOME" in os.environ:  # reuse downloaded plugins when the caller has a Nextflow home
        env["NXF_HOME"] = os.environ["NXF_HOME"]
    return subprocess.run(["nextflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.nextflow
def test_stub_run_of_the_test_profile(tmp_path):
    """`nextflow run main.nf -stub -profile test`: the DAG runs end to end (stubs) and the
    output folder has every stage folder and pipeline_info."""
    _nextflow_or_skip()
    outdir = tmp_path / "results"
    res = _run_nextflow(["run", str(MAIN_NF), "-stub", "-profile", "test", "--outdir", str(outdir),
                         "-work-dir", str(tmp_path / "work")], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    for rel in ("simulate/samplesheet.csv", "simulate/guide_map.csv", "simulate/versions.yml",
                "validate/samplesheet.valid.csv", "validate/versions.yml",
                "qc/cells.h5ad", "qc/qc_per_sample.csv", "qc/versions.yml",
                "pipeline_info/versions.yml", "pipeline_info/params.yaml", "pipeline_info/trace.tsv"):
        assert (outdir / rel).is_file(), f"{rel} missing from the stub run's outdir"
    versions = (outdir / "pipeline_info" / "versions.yml").read_text()
    for proc in ("SIMULATE", "VALIDATE", "QC"):
        assert f"FATESCOPE:{proc}" in versions


@pytest.mark.nextflow
def test_nextflow_config_resolves_the_test_profile(tmp_path):
    """`nextflow config -flat -profile test`: the profile's params reach the resolved config."""
    _nextflow_or_skip()
    from fatescope.engine.profiles import TEST_PROFILE

    res = _run_nextflow(["config", "-flat", "-profile", "test", str(REPO)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    flat = dict(line.split(" = ", 1) for line in res.stdout.splitlines() if " = " in line)
    for key, value in {**TEST_PROFILE, **TEST_PROFILE_ONLY}.items():
        assert flat.get(f"params.{key}", "").strip("'") == str(value).lower(), (key, flat.get(f"params.{key}"))


@pytest.mark.nextflow
def test_nextflow_lint(tmp_path):
    """`nextflow lint` (Nextflow >= 25.04) finds no errors in the repo."""
    _nextflow_or_skip()
    version = _run_nextflow(["-version"], cwd=tmp_path).stdout
    m = re.search(r"version (\d+)\.(\d+)", version)
    if not m or (int(m.group(1)), int(m.group(2))) < (25, 4):
        pytest.skip(f"nextflow lint needs Nextflow >= 25.04 ({version.strip()[:80]})")
    res = _run_nextflow(["lint", "-o", "concise", str(MAIN_NF), *map(str, sorted(MODULES.glob("*/main.nf"))),
                         str(NEXTFLOW_CONFIG), *map(str, sorted(CONF.glob("*.config")))], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
