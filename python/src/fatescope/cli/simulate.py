"""``fatescope simulate``: write a simulated time-course CRISPRi Perturb-seq experiment with its truth
(``fs.datasets.simulate``)."""
from __future__ import annotations

import click

from ..datasets import simulate as run
from ..simulate.params import option_fields
from .common import outdir_option, stage_command

__all__ = ["command", "run"]


def _simulation_options(fn):
    """One ``--<name>`` option per SimParams field, default and help taken from the field."""
    for f in reversed(option_fields()):
        low, high = f.metadata["min"], f.metadata["max"]
        kind = click.IntRange(low, high) if isinstance(f.default, int) else click.FloatRange(low, high)
        fn = click.option(f"--{f.name.replace('_', '-')}", f.name, default=f.default, type=kind, help=f.metadata["help"])(fn)
    return fn


@stage_command("simulate", help="Simulate a time-course CRISPRi Perturb-seq experiment with planted truth: per-sample counts, "
                                "guide calls and fate probabilities, a samplesheet and guide map, a synthetic cisTarget "
                                "ranking DB with motif annotations and a TF list, and the truth tables (see docs/simulate.md).")
@outdir_option("simulate")
@_simulation_options
@click.option("--fate-probs/--no-fate-probs", "fate_probs", default=True,
              help="Write the observed fate probabilities (fate_probs/ and the samplesheet's fate_probs column); "
                   "--no-fate-probs leaves them out, for a run whose fate-probs stage computes them (name the "
                   "terminal states by truth/cells.parquet's cell_type: EC, MES, NEU).")
def command(outdir: str, fate_probs: bool, **params) -> None:
    run(outdir=outdir, fate_probs=fate_probs, **params)
