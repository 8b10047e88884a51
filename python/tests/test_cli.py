"""The CLI frame: every stage listed, every option documented with its default."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fatescope import __version__
from fatescope.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def test_group_help_lists_every_stage():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output or f"  {name}\n" in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_and_default(name):
    cmd = main.get_command(click.Context(main), name)
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    for opt in cmd.params:
        if not isinstance(opt, click.Option) or opt.name == "help":
            continue
        assert opt.help, f"{name} --{opt.name} has no help text"
        shown = opt.required or opt.is_flag or opt.default is not None or "[default:" in opt.help
        assert shown, f"{name} --{opt.name}: default None not explained in its help"
    assert "[default:" in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_bin_runs_from_checkout():
    """bin/fatescope puts the checkout's python/src first, so it runs without installation."""
    out = subprocess.run([sys.executable, str(REPO / "bin" / "fatescope"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
