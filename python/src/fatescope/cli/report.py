"""``fatescope report``: one self-contained HTML page summarising a run, plus its key numbers as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..io.outputs import staged_output
from ..logs import get_logger
from ..report.collect import collect
from ..report.page import build_sections, render, summary_numbers
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("report.html", "report_summary.json")
PACKAGES = ["matplotlib", "pandas", "numpy", "anndata"]


def run(results: str, outdir: str = "report", title: str = "fatescope report", top_hits: int = 20,
        lfsr_thresh: float = 0.05) -> Path:
    data = collect(results)
    sections = build_sections(data, top_hits, lfsr_thresh)
    numbers = summary_numbers(data, sections, title, top_hits, lfsr_thresh)
    page = render(sections, title, str(data.root))
    params = dict(results=results, title=title, top_hits=top_hits, lfsr_thresh=lfsr_thresh)
    with staged_output(outdir, "report", params, PACKAGES) as tmp:
        (tmp / OUTPUTS[0]).write_text(page, encoding="utf-8")
        (tmp / OUTPUTS[1]).write_text(json.dumps(numbers, indent=1, default=float) + "\n")
    log.info("report: %d sections, %d not run (%s); %.1f kB written to %s", len(numbers["sections"]),
             len(numbers["skipped"]), ", ".join(numbers["skipped"]) or "none", len(page) / 1024, outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("report", help="Summarise a run in one self-contained HTML page (report.html: tables, figures "
                              "embedded) and its key numbers in report_summary.json. Stages that did not run are "
                              "shown as not run.")
@click.option("--results", required=True, type=click.Path(file_okay=False),
              help="A run's outdir, holding the stage folders (qc/, embed/, mash/, rank/, ...).")
@outdir_option("report")
@click.option("--title", default="fatescope report", help="Title of the page.")
@click.option("--top-hits", default=20, type=click.IntRange(min=1), help="Hits shown in the fate-effect heatmap and tables.")
@click.option("--lfsr-thresh", default=0.05, type=click.FloatRange(0, 1, min_open=True),
              help="lfsr threshold drawn on the volcano plots (and used for hits when rank/ is absent).")
def command(**kwargs) -> None:
    run(**kwargs)
