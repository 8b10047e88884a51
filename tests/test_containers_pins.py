"""Every base image (FROM, and COPY --from=<image>) of containers/*/Dockerfile is pinned: a digest,
or a tag with a full version (x.y.z or a date), never `latest`; negative tests show the check fails."""
from __future__ import annotations

import pytest

from container_images import IMAGES
from dockerfile import parse_dockerfile
from image_checks import check_pinned_bases


@pytest.mark.parametrize("image", IMAGES)
def test_bases_are_pinned(dockerfiles, image):
    assert check_pinned_bases(dockerfiles[image]) == []



# --- negative tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", [
    "python:latest", "python", "python:3.11-slim", "python:3-slim-bookworm", "python:slim",
    "nvidia/cuda:latest", "ghcr.io/astral-sh/uv:latest", "python@sha256:abc",
])
def test_unpinned_from_is_rejected(ref):
    problems = check_pinned_bases(parse_dockerfile(f"FROM {ref}\nRUN true\n"))
    assert len(problems) == 1 and ref in problems[0]


@pytest.mark.parametrize("ref", [
    "python:3.11.14-slim-bookworm", "nvidia/cuda:13.0.2-runtime-ubuntu22.04", "rocker/r-ver:4.4.2",
    "debian:bookworm-20240110-slim", "python@sha256:" + "a" * 64,
    "python:3.11-slim@sha256:" + "0123456789abcdef" * 4,
])
def test_pinned_from_is_accepted(ref):
    assert check_pinned_bases(parse_dockerfile(f"FROM {ref}\nRUN true\n")) == []


def test_from_through_arg_is_resolved_and_checked():
    assert check_pinned_bases(parse_dockerfile("ARG BASE=python:latest\nFROM ${BASE}\n"))
    assert check_pinned_bases(parse_dockerfile("ARG BASE=python:3.11.14-slim\nFROM ${BASE}\n")) == []
    unresolved = check_pinned_bases(parse_dockerfile("FROM ${NOWHERE}\n"))
    assert unresolved and "unresolved" in unresolved[0]


def test_copy_from_image_must_be_pinned_but_stages_need_not():
    text = ("FROM python:3.11.14-slim AS build\nRUN true\n"
            "FROM python:3.11.14-slim\nCOPY --from=build /x /x\nCOPY --from=ghcr.io/astral-sh/uv:latest /uv /uv\n")
    problems = check_pinned_bases(parse_dockerfile(text))
    assert len(problems) == 1 and "COPY --from" in problems[0] and "latest" in problems[0]
    assert check_pinned_bases(parse_dockerfile("FROM python:3.11.14-slim AS a\nFROM a\nRUN true\n")) == []
