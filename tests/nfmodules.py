"""The processes of modules/local and main.nf's includes and calls, read for the static tests, and
the checks of a process against the `fatescope` click CLI and the local engine (each returns a
list of problems, empty when there are none)."""
from __future__ import annotations

import re
from fnmatch import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import click

from nfconfig import MODULES, NEXTFLOW_CONFIG, blocks, closing, ext_args_options, mask, string_at, top_level_block
from nfplugins import PLUGIN_SPECS

INTERMEDIATE_H5AD = "cells.h5ad"  # emitted beside the stage folder; published only with params.save_intermediates


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


def subworkflow_emits() -> dict[str, set[str]]:
    """{workflow name: its emit names} of subworkflows/local/*/main.nf."""
    out = {}
    for path in sorted((MODULES.parent.parent / "subworkflows" / "local").glob("*/main.nf")):
        text = path.read_text()
        for m, body, _ in blocks(text, r"\bworkflow\s+(\w+)\s*\{"):
            emit = re.search(r"(?ms)^\s*emit:\s*$(.*)", mask(body))
            out[m.group(1)] = set(re.findall(r"(?m)^\s*(\w+)\b", emit.group(1))) if emit else set()
    return out


# Stages Nextflow runs in more than one process (scatter/gather): each extra process -> (its stage, the
# stage options its step uses; None: all of them). Its task calls `fatescope <stage>` with the stage's
# split options (fatescope.engine.stages: Stage.split_options); it is not published (the stage's own
# process is, after gathering).
SPLIT_STEPS = {"QC_LOAD": ("qc", ("min_features",)), "AUCELL_CHUNK": ("aucell", None),
               "MASH_FIT": ("mash", None), "MASH_CHUNK": ("mash", None)}


def stage_of(process: str) -> str:
    """Process name -> `fatescope` subcommand: FATE_FIT -> fate-fit; a split step -> its stage (QC_LOAD -> qc)."""
    return SPLIT_STEPS[process][0] if process in SPLIT_STEPS else process.lower().replace("_", "-")


def carried_options(process: str) -> set[str]:
    """Names (click dests) of the stage options a process's ext.args must pass: every option of its stage
    but --outdir, the inputs and the split options; for a split step, the options its step uses."""
    if process in SPLIT_STEPS and SPLIT_STEPS[process][1] is not None:
        return set(SPLIT_STEPS[process][1])
    stage = engine_stages()[stage_of(process)]
    skip = stage.input_names() | set(stage.split_options) | {"outdir"}
    return {p.name for p in stage.command.params if isinstance(p, click.Option) and p.name not in skip}


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
    does not provide (plugin specs in nfplugins.PLUGIN_SPECS)."""
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
            spec = PLUGIN_SPECS.get(plugin)
            if spec is None:
                problems.append(f"{nf_file}: no spec for plugin {plugin!r} in tests/nfplugins.py")
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


# --- the Python side ----------------------------------------------------------------------

def cli_command(stage: str) -> click.Command | None:
    from fatescope.cli import main

    return main.get_command(click.Context(main), stage)


def option_names(cmd: click.Command) -> set[str]:
    return {opt.lstrip("-") for p in cmd.params for opt in p.opts + p.secondary_opts if opt.startswith("--")}


def engine_stages() -> dict:
    from fatescope.engine.stages import STAGES

    return {s.name: s for s in STAGES}


# --- checks of a process ------------------------------------------------------------------

def label_problems(proc: Process, blocks: dict[str, str]) -> list[str]:
    """Exactly one size label (a withLabel block of conf/base.config that sets memory); any other label
    must have a block too (process_gpu: routing only)."""
    if not proc.labels:
        return [f"{proc.path}: process {proc.name} has no label"]
    unknown = [lb for lb in proc.labels if lb not in blocks]
    if unknown:
        return [f"{proc.path}: {proc.name} has label(s) {unknown} without a withLabel block in conf/base.config"]
    sizes = [lb for lb in proc.labels if re.search(r"^\s*memory\s*=", blocks[lb], re.M)]
    if len(sizes) != 1:
        return [f"{proc.path}: {proc.name} must have exactly one size label (a withLabel block in conf/base.config "
                f"that sets memory), has {proc.labels}"]
    return []


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
        created = any(fnmatch(word.strip("'\""), out) for word in stub.split())
        if stub.strip() and not created:
            problems.append(f"{proc.path}: {proc.name}'s stub does not create {out} (emit {emit})")
    outdir = stage_outdir(proc)
    if proc.emits.get("versions") != f"{outdir}/versions.yml":
        problems.append(f"{proc.path}: {proc.name} must emit `path \"{outdir}/versions.yml\", emit: versions`")
    if proc.emits.get("outdir") != outdir:
        problems.append(f"{proc.path}: {proc.name} must emit its folder `path \"{outdir}\", emit: outdir`")
    problems += [f"{proc.path}: output {out} is outside {outdir}/" for out in proc.emits.values()
                 if out != outdir and not out.startswith(outdir + "/") and out != INTERMEDIATE_H5AD]
    return problems


def intermediate_h5ad_problems(proc: Process, with_name_block: str) -> list[str]:
    """A process that emits its cells.h5ad beside its folder (lean publishing) moves it there after the
    stage ran, or links it when task.ext.save_h5ad is set, which conf/modules.config sets from
    params.save_intermediates; the stub does the same."""
    if proc.emits.get("h5ad") != INTERMEDIATE_H5AD:
        return []
    outdir = stage_outdir(proc)
    problems = []
    keep = r"def\s+keep_h5ad\s*=\s*task\.ext\.save_h5ad\s*\?:\s*false"
    for section in ("script", "stub"):
        if not re.search(keep, proc.sections.get(section, "")):
            problems.append(f"{proc.name}: the {section} must read `def keep_h5ad = task.ext.save_h5ad ?: false`")
    moved = (rf"\$\{{keep_h5ad \? 'ln {re.escape(outdir)}/cells\.h5ad cells\.h5ad \|\| cp {re.escape(outdir)}/cells\.h5ad "
             rf"cells\.h5ad' : 'mv {re.escape(outdir)}/cells\.h5ad cells\.h5ad'\}}")
    if not re.search(moved, proc.sections["script"]):
        problems.append(f"{proc.name}: the script must end with ${{keep_h5ad ? 'ln {outdir}/cells.h5ad cells.h5ad || cp "
                        f"...' : 'mv {outdir}/cells.h5ad cells.h5ad'}}")
    if f"${{keep_h5ad ? 'cp cells.h5ad {outdir}/cells.h5ad' : ''}}" not in proc.sections.get("stub", ""):
        problems.append(f"{proc.name}: the stub must copy cells.h5ad into {outdir}/ when keep_h5ad")
    if not re.search(r"ext\.save_h5ad\s*=\s*params\.save_intermediates\b", with_name_block):
        problems.append(f"{proc.name}: conf/modules.config must set `ext.save_h5ad = params.save_intermediates`")
    return problems


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


def ext_args_problems(process: str, block: str, prefix: str) -> list[str]:
    cmd = cli_command(stage_of(process))
    if cmd is None:
        return [f"{process}: no `fatescope {stage_of(process)}` command"]
    pairs, literal_opts, flags = ext_args_options(block)
    known = option_names(cmd)
    problems = [f"{process}: ext.args option --{o} is not an option of `fatescope {stage_of(process)}`"
                for o in sorted(literal_opts | set(pairs) | set(flags)) if o not in known]
    by_opt = {p.opts[0].lstrip("-"): p for p in cmd.params if isinstance(p, click.Option)}
    for opt, param in [*pairs.items(), *flags.items()]:
        if opt in by_opt:
            expected = prefix + by_opt[opt].name
            if param != expected:
                problems.append(f"{process}: --{opt} is fed from params.{param}; the naming rule says params.{expected}")
    for opt in pairs:
        if opt in by_opt and by_opt[opt].is_flag:
            problems.append(f"{process}: --{opt} is a flag; ext.args would pass it a value "
                            f"(write `params.<param> ? '--{opt}' : '--no-{opt}'`)")
    for opt in flags:
        if opt in by_opt and not (by_opt[opt].is_flag and f"--no-{opt}" in by_opt[opt].secondary_opts):
            problems.append(f"{process}: --{opt} is not a --{opt}/--no-{opt} flag of `fatescope {stage_of(process)}`")
    carried = carried_options(process)
    stage_params = {p.opts[0].lstrip("-") for p in cmd.params if isinstance(p, click.Option) and p.name in carried}
    problems += [f"{process}: stage option --{o} is not passed in ext.args (its param would have no effect)"
                 for o in sorted(stage_params - set(pairs) - set(flags))]
    return problems
