"""``fatescope validate``: check the samplesheet against assets/schema_input.json."""
from __future__ import annotations

from pathlib import Path

import click

from ..io.outputs import staged_output
from ..io.samplesheet import validate_samplesheet
from ..logs import get_logger
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("samplesheet.valid.csv",)


def run(input: str, outdir: str = "validate", check_files: bool = True) -> Path:
    """Validate the samplesheet; write it back (with absolute paths when the files are checked) as samplesheet.valid.csv."""
    sheet = validate_samplesheet(input, check_files=check_files)
    with staged_output(outdir, "validate", {"input": input, "check_files": check_files}, ["jsonschema", "pandas"]) as tmp:
        sheet.table.to_csv(tmp / OUTPUTS[0], index=False)
    log.info("samplesheet %s: %d samples valid", input, len(sheet.table))
    return Path(outdir) / OUTPUTS[0]


@stage_command("validate", help="Validate a samplesheet (columns sample, counts, batch, day, replicate[, guides, "
                                "fate_probs]) and write samplesheet.valid.csv. Every bad row and field is listed.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="Samplesheet CSV.")
@outdir_option("validate")
@click.option("--check-files/--no-check-files", default=True,
              help="Check that the files exist and that each counts file has a known format. Nextflow's validate "
                   "task sees only the sheet (each file is staged once, in its sample's qc task, which checks it).")
def command(input: str, outdir: str, check_files: bool) -> None:
    run(input=input, outdir=outdir, check_files=check_files)
