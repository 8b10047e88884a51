"""Nextflow modules and the container settings of the Nextflow configuration, as the container
tests see them: which image each process gets, and whether that image provides what it runs."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from container_images import (CONTAINER_PARAMS, GPU_LABEL, MODULES, PACKAGE_DIR, REGISTRY_PARAM, REPO,
                              load)
from dockerfile import Dockerfile
from groovyscan import blank_spans, block_end, expression_at, top_level_spans
from image_checks import base_cuda_version, check_package_install, check_torch
from r_checks import check_r_mashr


@dataclass
class Process:
    name: str
    file: str
    labels: list[str]
    container: str | None  # the module's own `container` directive, if any
    stages: list[str]  # `fatescope <stage>` subcommands the script runs



def params_of(expr: str | None) -> list[str]:
    return sorted(set(re.findall(r"params\.([A-Za-z_]\w*)", expr or "")))


_SECTION = re.compile(r"^\s*(input|output|when|script|shell|exec|stub)\s*:", re.M)
_GROUP_OPTS_WITH_VALUE = {"--log-level"}


def fatescope_stages(script: str) -> list[str]:
    stages = []
    for m in re.finditer(r"(?<![\w/.-])(?:[\w./-]*/)?fatescope\b(?![.\w-])", script):
        rest = script[m.end():].replace("\\\n", " ")
        toks = rest.split("\n", 1)[0].split()
        it = iter(toks)
        for tok in it:
            if tok in _GROUP_OPTS_WITH_VALUE:
                next(it, None)
            elif tok.startswith("-"):
                continue
            else:
                if re.fullmatch(r"[a-z][a-z0-9-]*", tok):
                    stages.append(tok)
                break
    return stages


def parse_processes(text: str, file: str = "<inline>") -> list[Process]:
    out = []
    for m in re.finditer(r"^\s*process\s+([A-Za-z_]\w*)\s*\{", text, re.M):
        start = m.end() - 1
        body = text[start + 1:block_end(text, start)]
        first = _SECTION.search(body)
        directives = body[: first.start()] if first else body
        labels = re.findall(r"^\s*label\s*\(?\s*['\"]([^'\"]+)['\"]", directives, re.M)
        cm = re.search(r"^\s*container\b", directives, re.M)
        container = expression_at(directives, cm.end()) if cm else None
        script_m = re.search(r"^\s*(script|shell|exec)\s*:", body, re.M)
        if script_m:
            script = body[script_m.end():]
        else:
            script = body[first.start():] if first else body
        script = re.split(r"^\s*stub\s*:", script, flags=re.M)[0]
        out.append(Process(m.group(1), file, labels, container, fatescope_stages(script)))
    return out


@dataclass
class ContainerConfig:
    """`container` settings of the Nextflow config outside profiles, with where they are."""
    generic: list[tuple[str, str]] = field(default_factory=list)  # process.container: (expr, file)
    by_label: list[tuple[str, str, str]] = field(default_factory=list)  # (selector, expr, file)
    by_name: list[tuple[str, str, str]] = field(default_factory=list)

    def extend(self, other: "ContainerConfig") -> None:
        self.generic += other.generic
        self.by_label += other.by_label
        self.by_name += other.by_name


_SELECTOR = re.compile(r"(withLabel|withName)\s*:\s*(['\"]?)([^'\"{\n]+?)\2\s*\{")


def parse_container_config(text: str, file: str = "<inline>") -> ContainerConfig:
    cfg = ContainerConfig()
    top = top_level_spans(text)
    # process.container = ... at the top level
    flat = blank_spans(text, top)
    for m in re.finditer(r"^\s*process\.container\s*=", flat, re.M):
        cfg.generic.append((expression_at(text, m.end()), file))
    for a, b in top:
        head = text[max(0, text.rfind("\n", 0, a) + 1):a]
        if not re.fullmatch(r"\s*process\s*", head):
            continue  # params {...}, profiles {...}, env {...}: not process settings
        body = text[a + 1:b]
        selectors = []
        for m in _SELECTOR.finditer(body):
            if any(s <= m.start() <= e for s, e in selectors):
                continue
            open_at = m.end() - 1
            close_at = block_end(body, open_at)
            selectors.append((m.start(), close_at))
            inner = body[open_at + 1:close_at]
            for cm in re.finditer(r"^\s*container\s*=", blank_spans(inner, top_level_spans(inner)), re.M):
                target = cfg.by_label if m.group(1) == "withLabel" else cfg.by_name
                target.append((m.group(3).strip(), expression_at(inner, cm.end()), file))
        rest = blank_spans(body, top_level_spans(body))
        for cm in re.finditer(r"^\s*container\s*=", rest, re.M):
            cfg.generic.append((expression_at(body, cm.end()), file))
    return cfg


def load_container_config(root: Path = REPO) -> ContainerConfig:
    """nextflow.config and the files it includes outside `profiles {}` (recursively)."""
    cfg = ContainerConfig()
    seen: set[Path] = set()

    def visit(path: Path) -> None:
        if path in seen or not path.is_file():
            return
        seen.add(path)
        text = path.read_text()
        cfg.extend(parse_container_config(text, str(path.relative_to(root))))
        profiles = [(a, b) for a, b in top_level_spans(text)
                    if re.fullmatch(r"\s*profiles\s*", text[text.rfind("\n", 0, a) + 1:a])]
        flat = blank_spans(text, profiles)
        for m in re.finditer(r"includeConfig\s+['\"]([^'\"]+)['\"]", flat):
            visit((path.parent / m.group(1)).resolve())

    visit((root / "nextflow.config").resolve())
    return cfg


def _selector_matches(selector: str, value: str) -> bool:
    negate = selector.startswith("!")
    pattern = selector[1:] if negate else selector
    try:
        hit = re.fullmatch(pattern, value) is not None
    except re.error:
        hit = pattern == value
    return hit != negate


def effective_container(proc: Process, cfg: ContainerConfig) -> tuple[str | None, str]:
    """The container expression Nextflow uses for the process, and where it is set. Priority, lowest
    first: process.container in the config, the module's directive, withLabel, withName."""
    expr, where = None, ""
    for e, f in cfg.generic:
        expr, where = e, f
    if proc.container is not None:
        expr, where = proc.container, proc.file
    for sel, e, f in cfg.by_label:
        if any(_selector_matches(sel, label) for label in proc.labels):
            expr, where = e, f"{f} (withLabel: {sel})"
    for sel, e, f in cfg.by_name:
        if _selector_matches(sel, proc.name):
            expr, where = e, f"{f} (withName: {sel})"
    return expr, where


def module_files() -> list[Path]:
    return sorted(MODULES.glob("*/main.nf")) if MODULES.is_dir() else []


def cli_stages() -> set[str]:
    """The subcommands of the `fatescope` CLI of the package the images install."""
    src = str(PACKAGE_DIR / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    import click

    from fatescope.cli import main

    return set(main.list_commands(click.Context(main)))


@dataclass
class ImageFacts:
    """What an image provides, derived from its Dockerfile by the checks of image_checks.py and r_checks.py."""
    image: str
    fatescope: bool  # the package is installed and `fatescope` is on PATH
    mashr: bool  # R + mashr, checked at build time
    cuda: bool  # a CUDA torch build


def image_facts(image: str, df: Dockerfile | None = None) -> ImageFacts:
    df = df or load(image)
    return ImageFacts(
        image,
        fatescope=not check_package_install(df),
        mashr=not check_r_mashr(df),
        cuda=base_cuda_version(df) is not None and not check_torch(df, "cuda"),
    )


def check_process(proc: Process, facts: dict[str, ImageFacts], stages: set[str],
                  cfg: ContainerConfig | None = None) -> list[str]:
    where = f"{proc.file}: process {proc.name}"
    expr, source = effective_container(proc, cfg or ContainerConfig())
    if expr is None:
        return [f"{where}: no container (neither a `container` directive nor process.container / "
                "withLabel / withName in the Nextflow config)"]
    used = params_of(expr)
    image_params = [p for p in used if p.endswith("_container")]
    problems = []
    if not image_params:
        problems.append(f"{where}: container {expr} (from {source}) is not built from params.<x>_container")
    if REGISTRY_PARAM not in used:
        problems.append(f"{where}: container (from {source}) does not use params.{REGISTRY_PARAM} "
                        "(the registry prefix must be one setting)")
    if not proc.stages:
        problems.append(f"{where}: the script does not run `fatescope <stage>`")
    for stage in proc.stages:
        if stage not in stages:
            problems.append(f"{where}: runs `fatescope {stage}`, which the package's CLI does not have "
                            f"(it has: {', '.join(sorted(stages))})")
    for param in image_params:
        image = CONTAINER_PARAMS.get(param)
        if image is None or image not in facts:
            problems.append(f"{where}: params.{param} (from {source}) maps to no Dockerfile under containers/ "
                            f"(known: {', '.join(f'{k} -> containers/{v}' for k, v in CONTAINER_PARAMS.items())})")
            continue
        f = facts[image]
        if not f.fatescope:
            problems.append(f"{where}: image {image} (params.{param}) does not provide `fatescope`")
        if param == "r_container" and not f.mashr:
            problems.append(f"{where}: image {image} (params.{param}) does not provide R + mashr")
        if param == "r_container" and set(proc.stages) - {"mash"}:
            problems.append(f"{where}: the R image is for the mash stage only, not {sorted(set(proc.stages) - {'mash'})}")
        if param == "python_gpu_container" and not f.cuda:
            problems.append(f"{where}: image {image} (params.{param}) has no CUDA torch build")
    gpu_param = "python_gpu_container"
    if GPU_LABEL in proc.labels and gpu_param not in image_params:
        problems.append(f"{where}: labelled {GPU_LABEL} but its container (from {source}) never uses params.{gpu_param}")
    if gpu_param in image_params and GPU_LABEL not in proc.labels:
        problems.append(f"{where}: uses params.{gpu_param} but is not labelled {GPU_LABEL} (it would get no GPU)")
    from fatescope.device import GPU_STAGES

    if set(proc.stages) & set(GPU_STAGES) and GPU_LABEL not in proc.labels:
        problems.append(f"{where}: runs GPU stage(s) {sorted(set(proc.stages) & set(GPU_STAGES))} but is not labelled "
                        f"{GPU_LABEL}")
    if "mash" in proc.stages and "r_container" not in image_params:
        problems.append(f"{where}: runs `fatescope mash` but its container (from {source}) cannot be "
                        "params.r_container (needed for --mash_engine r)")
    return problems
