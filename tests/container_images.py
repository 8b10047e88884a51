"""The container images of containers/ and what they must provide: the layout the static
container tests check (image folders, the Nextflow params naming them, torch and R pins)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from dockerfile import Dockerfile, parse_dockerfile

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
TORCH_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = re.compile(r"^https://download\.pytorch\.org/whl/cu(\d{3,})/?$")
R_PACKAGES_PINNED = ("mashr", "ashr", "mixsqp")
OCI = "org.opencontainers.image."


def dockerfile_path(image: str) -> Path:
    return CONTAINERS / image / "Dockerfile"


def load(image: str) -> Dockerfile:
    path = dockerfile_path(image)
    return parse_dockerfile(path.read_text(), str(path.relative_to(REPO)))


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

