"""The ``fatescope`` command: one subcommand per pipeline stage, plus ``run`` for the whole DAG.

Subcommands are imported lazily so ``fatescope --help`` stays fast (torch and pyro load only
for the stages that use them).
"""
from __future__ import annotations

import importlib
import os

import click

from .. import __version__
from ..logs import RUN_LOG_ENV, add_file_log, configure

# cuBLAS is deterministic only with a fixed workspace (torch.use_deterministic_algorithms, fatescope.device):
# set before CUDA loads
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# commands draw into files, never on a screen; the API (fs.pl) leaves a notebook's backend alone
os.environ.setdefault("MPLBACKEND", "Agg")

# stage name -> module under fatescope.cli defining `command`; order = order in the DAG
COMMANDS = {
    "simulate": "simulate",
    "validate": "validate",
    "qc": "qc",
    "ambient": "ambient",
    "integrate": "integrate",
    "embed": "embed",
    "grn": "grn",
    "modules": "modules",
    "prune": "prune",
    "aucell": "aucell",
    "fate-probs": "fate_probs",
    "fate-fit": "fate_fit",
    "mash": "mash",
    "aggregate": "aggregate",
    "rank": "rank",
    "eval-recovery": "eval_recovery",
    "diagnostics": "diagnostics",
    "report": "report",
    "run": "run",
}


def command_for(name: str) -> click.Command:
    """The click command of stage ``name`` (its options are the engine's and nextflow.config's params)."""
    if name not in COMMANDS:
        raise KeyError(f"no fatescope command {name!r} (commands: {', '.join(COMMANDS)})")
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}").command


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        return command_for(name) if name in COMMANDS else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="fatescope")
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logging verbosity (logs go to stderr).")
def main(log_level: str) -> None:
    """fatescope: ranked, shrunken knockdown effects on cell fate from time-course CRISPRi
    Perturb-seq, with integration, clusters and regulon activity as context.

    Each command below is one pipeline stage; `fatescope run` runs the whole DAG.
    """
    configure(log_level)
    if os.environ.get(RUN_LOG_ENV):  # a stage launched by `fatescope run`: its records go to the run's log too
        add_file_log(os.environ[RUN_LOG_ENV])
