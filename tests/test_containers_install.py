"""The Python images install torch==2.13.0 from the PyTorch index of their flavour before the package,
then the package itself from the build context (dependencies on, under constraints that satisfy
what pyproject.toml declares) and put `fatescope` on PATH. The negative tests mutate GOOD_CPU, a
small inline Dockerfile that passes, to show that each check can fail."""
from __future__ import annotations

import pytest

from container_images import CONTAINERS, PYTHON_IMAGES, REPO, read_constraints
from dockerfile import parse_dockerfile
from image_checks import (check_copy_sources, check_declared_dependencies, check_package_install, check_pinned_bases,
                          check_torch)


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



def test_constraints_file_is_well_formed():
    path = CONTAINERS / "constraints.txt"
    pins = read_constraints(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(pins) == len(lines), "every line of containers/constraints.txt must be an exact pin name==version"
    assert "fatescope" not in pins



# --- negative tests ------------------------------------------------------------------------------

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
