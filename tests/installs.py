"""What the RUN instructions of a Dockerfile stage install: pip (and uv pip), apt, virtualenvs."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dockerfile import Instruction, Stage, run_commands


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
            if is_local_path(req):
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
            if is_local_path(req):
                m = re.match(r"^(.*?)(?:\[([^\]]*)\])?$", req)
                extras = {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}
                out.append((posixpath.normpath(posixpath.join(self.inst.workdir, m.group(1))), extras))
        return out


def is_local_path(req: str) -> bool:
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
    for inst, k, argv in run_commands(stage):
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
    for _, _, argv in run_commands(stage):
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


def venv_dirs(stage: Stage) -> list[str]:
    out = []
    for inst, _, argv in run_commands(stage):
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
