"""Shared pieces of the stage commands: error handling and common options."""
from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path

import click

from ..errors import InputError
from ..logs import ERROR_FILE_ENV, get_logger

log = get_logger(__name__)


def reports_input_errors(fn):
    """Turn InputError into a clean ``Error: ...`` message and exit status 1; under the local engine, also
    leave the message where the engine reads it (a crash is logged with its traceback for the run log)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        error_file = os.environ.get(ERROR_FILE_ENV)
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            if error_file:
                Path(error_file).write_text(str(exc))
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            if error_file:
                Path(error_file).write_text(f"{type(exc).__name__}: {exc}")
                log.exception("%s", exc)
            raise

    return wrapper


DEVICE_OPTIONS = ("device", "pruning_device")  # the keyword of a stage command's torch-device option


def is_cuda_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error (torch's OutOfMemoryError, or the RuntimeError older kernels raise)."""
    torch = sys.modules.get("torch")  # not imported: no torch, no CUDA error
    if torch is None:
        return False
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (isinstance(exc, RuntimeError)
                                                            and "CUDA out of memory" in str(exc))


def falls_back_to_cpu(name: str, fn):
    """Run a GPU-capable stage again on the CPU when the GPU runs out of memory, with a warning: a task on a
    busy or small GPU then finishes (slower) instead of failing the run. Stages write their outputs
    atomically, so the first attempt leaves nothing behind."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = next((k for k in DEVICE_OPTIONS if k in kwargs), None)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if key is None or kwargs[key] == "cpu" or not is_cuda_out_of_memory(exc):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("%s: CUDA out of memory with --%s %s (%s); running the stage again on the CPU", name,
                        key.replace("_", "-"), kwargs[key], reason)
            sys.modules["torch"].cuda.empty_cache()
            return fn(*args, **{**kwargs, key: "cpu"})

    return wrapper


def outdir_option(stage: str):
    return click.option("--outdir", default=stage, show_default=True, type=click.Path(file_okay=False),
                        help="Folder for this stage's outputs (created; written atomically).")


def stage_command(name: str, help: str):
    """A click command for one stage, with every option's default shown in --help."""

    def decorate(fn):
        return click.command(name, help=help, context_settings={"show_default": True})(
            reports_input_errors(falls_back_to_cpu(name, fn)))

    return decorate


def api_default(function, name: str):
    """The default of keyword ``name`` of an API function: the one source of a stage's defaults
    (the click option, nextflow.config and nextflow_schema.json follow it; tests check)."""
    value = inspect.signature(function).parameters[name].default
    if value is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}: {name!r} has no default")
    return value
