"""Checks on parsed Dockerfiles: pinned bases, the build context, the package and torch installs,
declared dependencies, OCI labels, Nextflow-friendliness. Each returns a list of problems."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from container_images import (OCI, REPO, TORCH_CPU_INDEX, TORCH_CUDA_INDEX, TORCH_VERSION, pyproject,
                              read_constraints)
from dockerfile import Dockerfile, Stage, copies, parse_pairs, run_commands, substitute
from dockerignore import DockerIgnore
from groovyscan import top_level_spans
from installs import PipInstall, apt_installs, is_local_path, pip_installs, venv_dirs


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
    for _, _, argv in run_commands(df.final):
        if argv[:3] == ["uv", "python", "install"] and len(argv) > 3:
            return argv[3]
    m = re.match(r"^(?:docker\.io/)?(?:library/)?python:(\d+\.\d+\.\d+)", df.final.resolved)
    return m.group(1) if m else None


def base_cuda_version(df: Dockerfile) -> str | None:
    m = re.match(r"^(?:[\w.-]+/)?nvidia/cuda:(\d+)\.(\d+)(?:\.\d+)?-", df.final.resolved)
    return f"{m.group(1)}.{m.group(2)}" if m else None


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
    smoke = [(inst.line, k) for inst, k, argv in run_commands(df.final) if argv[:2] == ["fatescope", "--version"]]
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
            if is_local_path(req):
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
            out.update({k: substitute(v, inst.env) for k, v in parse_pairs(inst.body).items()})
    return out


def manifest_home_page(root: Path = REPO) -> str | None:
    config = root / "nextflow.config"
    if not config.is_file():
        return None
    text = config.read_text()
    for a, b in top_level_spans(text):
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
