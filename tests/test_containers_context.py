"""The build context of the images: every COPY source exists and survives .dockerignore, which keeps
the context small and the package whole; negative tests of the COPY check and of the matcher."""
from __future__ import annotations

import pytest

from container_images import IMAGES, PACKAGE_DIR, REPO
from dockerfile import parse_dockerfile
from dockerignore import DockerIgnore
from image_checks import check_copy_sources


@pytest.mark.parametrize("image", IMAGES)
def test_copy_sources_exist_and_survive_dockerignore(dockerfiles, image):
    assert check_copy_sources(dockerfiles[image], REPO) == []



def test_dockerignore_keeps_the_context_small_and_the_package_whole():
    ignore = DockerIgnore.for_context(REPO)
    for rel in (".venv/bin/python", ".git/HEAD", "results/qc/cells.h5ad", "work/ab/cd/.command.sh",
                ".nextflow.log", ".nextflow/history", "build/nf-lang/language-server-all.jar",
                "python/build/lib/fatescope/__init__.py", "python/src/fatescope.egg-info/PKG-INFO",
                "python/src/fatescope/__pycache__/cli.cpython-311.pyc", "tests/test_containers_context.py"):
        assert ignore.excluded(rel), f"{rel} is sent to the builder"
    needed = ["python/pyproject.toml", "python/src/fatescope/__init__.py", "python/src/fatescope/cli/__init__.py",
              "bin/fatescope", "containers/constraints.txt", "containers/r-mashr/r-versions.csv"]
    needed += [p.relative_to(REPO).as_posix() for p in (PACKAGE_DIR / "src" / "fatescope" / "assets").rglob("*") if p.is_file()]
    for rel in needed:
        assert (REPO / rel).exists(), rel
        assert not ignore.excluded(rel), f"{rel} is excluded by .dockerignore but the images need it"



# --- negative tests ------------------------------------------------------------------------------

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
