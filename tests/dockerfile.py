"""A small Dockerfile parser for the static container tests (nothing is built).

Parser directives, line continuations, comments inside continuations, heredocs, ARG/ENV
substitution and build stages; plus the simple commands of a RUN (:func:`shell_commands`,
:func:`run_commands`) and the sources/destination of COPY/ADD (:func:`copies`).
"""
from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

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


def parse_pairs(args: str) -> dict[str, str]:
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
            env.update({k: substitute(v, last.env) for k, v in parse_pairs(last.body).items()})
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
            env.update({k: substitute(v, inst.env) for k, v in parse_pairs(body).items()})
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, substitute(body.strip(), env)))
        instructions.append(inst)
        if stages and keyword != "FROM":
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError(f"{path}: no FROM")
    return Dockerfile(path, instructions, stages, global_args)



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


def run_commands(stage: Stage) -> Iterator[tuple[Instruction, int, list[str]]]:
    """(RUN instruction, index of the command in it, argv) of every simple command the stage runs."""
    for inst in stage.instructions:
        if inst.keyword == "RUN":
            for k, argv in enumerate(shell_commands(inst)):
                yield inst, k, argv


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
