"""``fatescope aggregate``: guide-level mash posteriors -> gene level, per day (fixed-effect meta-analysis)."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import InputError
from ..io.mash_tables import read_table_text
from ..io.outputs import staged_output
from ..logs import get_logger
from ..tl._aggregate import aggregate
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
PACKAGES = ["numpy", "scipy", "pandas"]


def output_name(input_path: str) -> str:
    """mash_guide_<mode>.csv -> gene_from_guide_mash_<mode>.csv (other names: gene_from_guide_<stem>.csv)."""
    stem = Path(input_path).stem
    match = re.fullmatch(r"mash_guide_(.+)", stem)
    return f"gene_from_guide_mash_{match.group(1)}.csv" if match else f"gene_from_guide_{stem}.csv"


def run(input: tuple[str, ...] | list[str], outdir: str = "aggregate",
        mash_lfsr_thresh_day: float = api_default(aggregate, "mash_lfsr_thresh_day")) -> list[Path]:
    inputs = [input] if isinstance(input, str) else list(input)
    if not inputs:
        raise InputError("no guide-level mash table given (--input)")
    names = [output_name(p) for p in inputs]
    if len(set(names)) != len(names):
        raise InputError(f"inputs {inputs} would write the same output names {names}")
    tables = {name: aggregate(read_table_text(path), mash_lfsr_thresh_day=mash_lfsr_thresh_day, source=path)
              for path, name in zip(inputs, names)}
    with staged_output(outdir, "aggregate", {"input": inputs, "mash_lfsr_thresh_day": mash_lfsr_thresh_day}, PACKAGES) as tmp:
        for name, table in tables.items():
            table.to_csv(tmp / name, index=False, float_format="%.12g")
    return [Path(outdir) / n for n in tables]


@stage_command("aggregate", help="Combine guide-level mash posteriors into gene-level ones per day (fixed-effect "
                                 "meta-analysis, weights 1/postsd^2); writes gene_from_guide_mash_<mode>.csv.")
@click.option("--input", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Guide-level mash table(s) mash_guide_<mode>.csv (repeat the option).")
@outdir_option("aggregate")
@click.option("--mash-lfsr-thresh-day", default=api_default(aggregate, "mash_lfsr_thresh_day"), type=click.FloatRange(0, 1),
              help="A day is active for a gene when its aggregated lfsr is below this.")
def command(**kwargs) -> None:
    run(**kwargs)
