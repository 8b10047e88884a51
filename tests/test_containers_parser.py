"""The Dockerfile parser of tests/dockerfile.py: continuations, comments, heredocs, escape, errors."""
from __future__ import annotations

import pytest

from dockerfile import DockerfileError, parse_dockerfile, shell_commands


def test_parser_continuations_comments_heredocs_and_escape():
    text = """\
# syntax=docker/dockerfile:1
# escape=`
FROM python:3.11.14-slim
RUN apt-get update `
# a comment inside the continuation
 && apt-get install -y procps `

 && echo done
COPY <<EOF /etc/x.conf
line one
EOF
env A=1 B="two words"
"""
    df = parse_dockerfile(text)
    run = df.final.instructions[0]
    assert run.keyword == "RUN" and run.line == 4
    assert shell_commands(run) == [["apt-get", "update"], ["apt-get", "install", "-y", "procps"], ["echo", "done"]]
    copy = df.final.instructions[1]
    assert copy.keyword == "COPY" and "line one" in copy.args
    assert df.final_env() == {"A": "1", "B": "two words"}
    assert df.final.instructions[-1].keyword == "ENV"


def test_parser_rejects_malformed_dockerfiles():
    with pytest.raises(DockerfileError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11.14-slim\nRUNN true\n")
    with pytest.raises(DockerfileError, match="before the first FROM"):
        parse_dockerfile("RUN true\nFROM python:3.11.14-slim\n")
    with pytest.raises(DockerfileError, match="heredoc"):
        parse_dockerfile("FROM python:3.11.14-slim\nRUN <<EOF\necho\n")
