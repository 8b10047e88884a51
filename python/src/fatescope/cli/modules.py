"""``fatescope modules``: top-k, percentile and top-N-per-target modules from the GRN's TF edges."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_table
from ..logs import get_logger
from ..tl._modules import modules, number_list
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("modules.parquet", "modules_report.json")


def run(adjacency: str, outdir: str = "modules", k: int = api_default(modules, "k"),
        percentile_thresholds: str = api_default(modules, "percentile_thresholds"),
        top_n_per_target: str = api_default(modules, "top_n_per_target"),
        min_targets: int = api_default(modules, "min_targets"),
        min_fraction: float | None = api_default(modules, "min_fraction"),
        include_tf: bool = api_default(modules, "include_tf")) -> Path:
    edges = read_table(adjacency, "the grn stage's adjacency.parquet")
    options = dict(k=k, percentile_thresholds=number_list(percentile_thresholds, float, "--percentile-thresholds"),
                   top_n_per_target=number_list(top_n_per_target, int, "--top-n-per-target"),
                   min_targets=min_targets, min_fraction=min_fraction, include_tf=include_tf)
    settings = dict(adjacency=adjacency, **options)
    try:
        mods, report = modules(edges, **options, return_report=True)
    except InputError as exc:
        raise InputError(f"{adjacency}: {exc}") from exc
    if mods.empty:
        raise InputError(f"{adjacency}: no module has {min_targets} targets or more; lower --min-targets")
    with staged_output(outdir, "modules", settings, ["pandas", "pyarrow"]) as tmp:
        mods.to_parquet(tmp / OUTPUTS[0], index=False)
        (tmp / OUTPUTS[1]).write_text(json.dumps(report, indent=1))
    log.info("modules: %d modules of %d TFs written to %s", report["n_modules"], report["n_tfs_with_modules"], outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("modules", help="Build co-expression modules per TF from the GRN edges: top-k targets, targets above "
                               "percentiles of the TF's weights, and top-N regulators per target regrouped by TF.")
@click.option("--adjacency", required=True, type=click.Path(dir_okay=False), help="grn/adjacency.parquet.")
@outdir_option("modules")
@click.option("--k", default=api_default(modules, "k"), type=click.IntRange(min=0),
              help="Top-k targets per TF (0 = no top-k modules).")
@click.option("--percentile-thresholds", default=api_default(modules, "percentile_thresholds"),
              help="Comma-separated percentiles of the TF's edge weights ('' = none).")
@click.option("--top-n-per-target", default=api_default(modules, "top_n_per_target"),
              help="Comma-separated N for top-N-regulators-per-target modules ('' = none).")
@click.option("--min-targets", default=api_default(modules, "min_targets"), type=click.IntRange(min=0),
              help="Drop modules with fewer targets.")
@click.option("--min-fraction", default=api_default(modules, "min_fraction"), type=click.FloatRange(0, 1),
              help="Drop modules with fewer than this fraction of the TF's targets [default: no filter].")
@click.option("--include-tf/--no-include-tf", default=api_default(modules, "include_tf"),
              help="Add the TF itself to its modules (weight 1.0).")
def command(**kwargs) -> None:
    run(**kwargs)
