"""The r-mashr image: R, mashr/ashr/mixsqp pinned to the mashr reference's environment
(r-versions.csv), a build-time library(mashr), rpy2 and fatescope[r]; with negative tests."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from container_images import CONTAINERS, REPO
from dockerfile import parse_dockerfile, run_commands
from image_checks import context_path
from r_checks import check_r_mashr, check_r_versions_table, r_package_versions


def test_r_image_provides_r_mashr_rpy2_and_the_r_extra(dockerfiles):
    assert check_r_mashr(dockerfiles["r-mashr"]) == []


def test_r_pins_match_the_checked_versions_table(dockerfiles):
    """The image checks itself against containers/r-mashr/r-versions.csv at build time (check_r_env.R);
    the pins that install R and the packages must agree with that table."""
    table = CONTAINERS / "r-mashr" / "r-versions.csv"
    assert check_r_versions_table(dockerfiles["r-mashr"], table) == []
    final = dockerfiles["r-mashr"].final
    runs = [argv for _, _, argv in run_commands(final) if argv[0] == "Rscript" and len(argv) == 3]
    checked = [(context_path(final, a[1]), context_path(final, a[2])) for a in runs]
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



# --- negative tests ------------------------------------------------------------------------------

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
