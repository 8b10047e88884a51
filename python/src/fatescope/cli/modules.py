"""``fatescope modules``: top-k, percentile and top-N-per-target modules from the GRN's TF edges."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..io.outputs import staged_output
from ..io.readers import read_table
from ..logs import get_logger
from ..regulons.modules import ModuleParams, build_modules
from .common import outdir_option, stage_command

log = get_logger(__name__)
OUTPUTS = ("modules.parquet", "modules_report.json")


def _numbers(text: str, kind, name: str) -> tuple:
    try:
        return tuple(kind(x) for x in str(text).replace(",", " ").split())
    except ValueError as exc:
        raise InputError(f"--{name}: expected numbers separated by commas, got {text!r}") from exc


def run(adjacency: str, outdir: str = "modules", k: int = 50, percentile_thresholds: str = "75",
        top_n_per_target: str = "5,10,50", min_targets: int = 20, min_fraction: float | None = None,
        include_tf: bool = True) -> Path:
    edges = read_table(adjacency, "the grn stage's adjacency.parquet")
    params = ModuleParams(k=k, percentile_thresholds=_numbers(percentile_thresholds, float, "percentile-thresholds"),
                          top_n_per_target=_numbers(top_n_per_target, int, "top-n-per-target"),
                          min_targets=min_targets, min_fraction=min_fraction, include_tf=include_tf)
    try:
        mods, report = build_modules(edges, params)
    except InputError as exc:
        raise InputError(f"{adjacency}: {exc}") from exc
    if mods.empty:
        raise InputError(f"{adjacency}: no module has {min_targets} targets or more; lower --min-targets")
    settings = dict(adjacency=adjacency, **{f: getattr(params, f) for f in params.__dataclass_fields__})
    with staged_output(outdir, "modules", settings, ["pandas", "pyarrow"]) as tmp:
        mods.to_parquet(tmp / OUTPUTS[0], index=False)
        (tmp / OUTPUTS[1]).write_text(json.dumps(report, indent=1))
    log.info("modules: %d modules of %d TFs written to %s", report["n_modules"], report["n_tfs_with_modules"], outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("modules", help="Build co-expression modules per TF from the GRN edges: top-k targets, targets above "
                               "percentiles of the TF's weights, and top-N regulators per target regrouped by TF.")
@click.option("--adjacency", required=True, type=click.Path(dir_okay=False), help="grn/adjacency.parquet.")
@outdir_option("modules")
@click.option("--k", default=50, type=click.IntRange(min=0), help="Top-k targets per TF (0 = no top-k modules).")
@click.option("--percentile-thresholds", default="75", help="Comma-separated percentiles of the TF's edge weights "
                                                            "('' = none).")
@click.option("--top-n-per-target", default="5,10,50", help="Comma-separated N for top-N-regulators-per-target "
                                                            "modules ('' = none).")
@click.option("--min-targets", default=20, type=click.IntRange(min=0), help="Drop modules with fewer targets.")
@click.option("--min-fraction", default=None, type=click.FloatRange(0, 1),
              help="Drop modules with fewer than this fraction of the TF's targets [default: no filter].")
@click.option("--include-tf/--no-include-tf", default=True, help="Add the TF itself to its modules (weight 1.0).")
def command(**kwargs) -> None:
    run(**kwargs)
