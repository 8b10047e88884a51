"""Checks of the R image (containers/r-mashr): R, mashr/ashr/mixsqp pins, library(mashr), rpy2."""
from __future__ import annotations

import csv
import posixpath
import re
from pathlib import Path

from packaging.specifiers import SpecifierSet

from container_images import R_PACKAGES_PINNED, REPO, pyproject
from dockerfile import Dockerfile, Instruction, shell_commands
from image_checks import context_path, package_installs
from installs import apt_installs, debian_upstream, pip_installs


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
