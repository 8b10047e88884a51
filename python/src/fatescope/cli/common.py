"""Shared pieces of the stage commands: error handling and common options."""
from __future__ import annotations

import functools

import click

from ..errors import InputError


def reports_input_errors(fn):
    """Turn InputError into a clean ``Error: ...`` message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def outdir_option(stage: str):
    return click.option("--outdir", default=stage, show_default=True, type=click.Path(file_okay=False),
                        help="Folder for this stage's outputs (created; written atomically).")


def stage_command(name: str, help: str):
    """A click command for one stage, with every option's default shown in --help."""

    def decorate(fn):
        return click.command(name, help=help, context_settings={"show_default": True})(reports_input_errors(fn))

    return decorate
