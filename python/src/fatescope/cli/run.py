"""``fatescope run``: the whole DAG on one machine (or handed to Nextflow)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from ..engine.local import StageFailed, run_pipeline
from ..engine.nextflow import run_with_nextflow
from ..engine.profiles import PROFILES
from ..engine.stages import default_params
from ..errors import InputError
from .common import stage_command


def _coerce(text: str):
    """A command-line param value as YAML reads it (numbers, booleans, null), else a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_extra_params(args: list[str]) -> dict[str, object]:
    """``--key value`` / ``--key=value`` pairs left over by click, as Nextflow takes params."""
    params: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise InputError(f"unexpected argument {arg!r} (params are given as --name value)")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        params[key] = _coerce(value)
        i += 1
    return params


def resolve_params(profiles: list[str], params_file: str | None, cli_params: dict) -> dict[str, object]:
    """Defaults < profiles (in order) < params file < command line, as Nextflow layers them."""
    params = default_params()
    for name in profiles:
        if name in PROFILES:
            params.update(PROFILES[name])
    if params_file:
        path = Path(params_file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: could not read params file: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"{path}: a params file must be a YAML/JSON mapping of param names to values")
        params.update(loaded)
    params.update(cli_params)
    if params.get("input") is None and "test" not in profiles:
        raise InputError("no --input samplesheet given (use --profile test to run on simulated data)")
    if not params.get("outdir"):
        raise InputError("--outdir is required: the folder the results are written to (--profile test sets results)")
    return params


@stage_command("run", help="Run the pipeline on --input, or on freshly simulated data with --profile test: validate "
                           "-> qc -> [ambient] -> integrate -> embed; grn -> modules -> prune -> aucell; fate-fit -> "
                           "mash -> aggregate, rank -> [eval-recovery], diagnostics; report. Any pipeline param can be "
                           "given as --name value (names as in nextflow.config, e.g. --min_features 300, "
                           "--skip_regulons true).")
@click.option("--input", default=None, type=click.Path(dir_okay=False), help="Samplesheet CSV [default: none; required unless --profile test].")
@click.option("--outdir", default=None, type=click.Path(file_okay=False), help="Output folder [default: none; required, except --profile test: results].")
@click.option("--params-file", "-params-file", "params_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file of params (as Nextflow's -params-file) [default: none].")
@click.option("--profile", "-profile", "profile", default="", help="Comma-separated profiles; 'test' simulates a small "
              "dataset into the outdir and runs on it. Other profiles (docker, slurm, ...) are for --engine nextflow.")
@click.option("--resume", "-resume", "resume", is_flag=True, help="Skip stages whose outputs are complete and whose "
              "inputs and params are unchanged (content hashes).")
@click.option("--engine", default="local", type=click.Choice(["local", "nextflow"]),
              help="Run here in one process, or hand the run to `nextflow` (must be on PATH).")
@click.pass_context
def command(ctx: click.Context, input, outdir, params_file, profile, resume, engine) -> None:
    profiles = [p for p in profile.split(",") if p]
    cli_params = parse_extra_params(ctx.args)
    cli_params.update({k: v for k, v in (("input", input), ("outdir", outdir)) if v is not None})
    params = resolve_params(profiles, params_file, cli_params)
    if engine == "nextflow":
        sys.exit(run_with_nextflow(params, profiles, resume))
    try:
        run_pipeline(params, resume=resume)
    except StageFailed as exc:
        raise click.ClickException(str(exc)) from exc


command.context_settings.update(ignore_unknown_options=True, allow_extra_args=True)
