"""Shared setup of the static tests of the container images and of the Nextflow layer.

The helper modules next to this file (dockerfile.py, image_checks.py, nflang.py, nfconfig.py, ...)
are imported by the tests as top-level modules: this folder goes on sys.path here (whatever
pytest's import mode), and pytest rewrites their asserts as it does the tests' own.
(python/tests/conftest.py is separate: the package's unit tests.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

pytest.register_assert_rewrite(
    "container_images", "dockerfile", "dockerignore", "groovyscan", "image_checks", "installs", "module_containers",
    "r_checks", "nfconfig", "nfemulate", "nflang", "nfmodules", "nfplugins",
)

from container_images import IMAGES, load  # noqa: E402
from dockerfile import Dockerfile  # noqa: E402
from module_containers import ImageFacts, image_facts  # noqa: E402
from nfconfig import CONF, NEXTFLOW_CONFIG, SCHEMA, params_block, with_name_blocks  # noqa: E402
from nfmodules import Process, module_processes  # noqa: E402


# --- containers ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    """The parsed containers/<image>/Dockerfile of every image."""
    return {image: load(image) for image in IMAGES}


@pytest.fixture(scope="session")
def facts(dockerfiles) -> dict[str, ImageFacts]:
    """What each image provides (fatescope on PATH, R + mashr, CUDA torch), from its Dockerfile."""
    return {image: image_facts(image, df) for image, df in dockerfiles.items()}


# --- Nextflow --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def config_params() -> dict[str, object]:
    return params_block(NEXTFLOW_CONFIG)


@pytest.fixture(scope="session")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="session")
def processes() -> dict[str, Process]:
    procs = module_processes()
    assert procs, "no processes under modules/local"
    return procs


@pytest.fixture(scope="session")
def modules_config() -> dict[str, str]:
    return with_name_blocks((CONF / "modules.config").read_text())
