"""The DAG as an ordered registry of stages; a later stage is one more entry.

Each stage is one CLI command (``fatescope.cli.<module>``) exposing ``command`` (click) and
``run(**kwargs)``. Its params are the command's options minus ``--outdir`` and its inputs,
named ``<prefix><option>`` with the option's default -- the same names and defaults as
``nextflow.config``. A param may feed several stages (``mash_lfsr_thresh_day``: aggregate and
rank) when their options have the same default. A stage writes into ``<outdir>/<folder>``, its
CLI's ``--outdir`` default (the stage name unless set: fate-fit writes ``fate/``).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

Inputs = Callable[["RunPaths"], dict[str, str | list[str] | None]]


@dataclass(frozen=True)
class RunPaths:
    """Where a run's stages read and write: the outdir and the pipeline-level params."""
    outdir: Path
    params: dict

    def stage_dir(self, folder: str) -> Path:
        return self.outdir / folder

    def file(self, folder: str, name: str) -> str:
        return str(self.outdir / folder / name)

    def simulated(self) -> bool:
        return self.params.get("input") is None

    def samplesheet(self) -> str:
        if self.simulated():
            return str(self.stage_dir("simulate") / "samplesheet.csv")
        return str(self.params["input"])

    def guide_map(self) -> str | None:
        if self.params.get("guide_map"):
            return str(self.params["guide_map"])
        return str(self.stage_dir("simulate") / "guide_map.csv") if self.simulated() else None


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    inputs: Inputs
    outputs: tuple[str, ...]
    prefix: str = ""
    enabled: Callable[[RunPaths], bool] = field(default=lambda paths: True)
    folder_name: str | None = None
    samplesheet_inputs: tuple[str, ...] = ()  # inputs that are samplesheets: their data files are hashed too

    @property
    def folder(self) -> str:
        """The output folder under the run's outdir: the CLI's --outdir default."""
        return self.folder_name or self.name

    @property
    def command(self) -> click.Command:
        return importlib.import_module(f"fatescope.cli.{self.module}").command

    def run_function(self) -> Callable[..., object]:
        return importlib.import_module(f"fatescope.cli.{self.module}").run

    def param_options(self, input_names: set[str]) -> list[click.Option]:
        return [p for p in self.command.params if isinstance(p, click.Option) and p.name not in input_names | {"outdir"}]

    def input_names(self) -> set[str]:
        return set(self.inputs(RunPaths(Path("."), {"input": None})))

    def defaults(self) -> dict[str, object]:
        """Pipeline params of this stage with their defaults."""
        return {self.prefix + o.name: o.default for o in self.param_options(self.input_names())}

    def kwargs(self, paths: RunPaths) -> dict[str, object]:
        """Arguments for ``run``: inputs, outdir and this stage's params."""
        inputs = self.inputs(paths)
        params = {o.name: paths.params.get(self.prefix + o.name, o.default) for o in self.param_options(set(inputs))}
        return {**inputs, "outdir": str(paths.stage_dir(self.folder)), **params}


MASH_MODES = ("conservative", "enriched")
FATE_OUTPUTS = ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv", "theta_posterior_summary.npz",
                "delta_posterior_summary.npz", "qc_delta_mean_by_gene.csv", "qc_theta_beta_offset_by_gene.csv",
                "loss_curve.csv", "fate_model.pt", "fit_summary.json")
MASH_OUTPUTS = tuple(f"mash_{kind}_{mode}{suffix}" for kind in ("gene", "guide") for mode in MASH_MODES
                     for suffix in (".csv", "_fit.json"))

STAGES: tuple[Stage, ...] = (
    Stage("simulate", "simulate", inputs=lambda p: {}, prefix="sim_",
          outputs=("samplesheet.csv", "guide_map.csv", "sim_metadata.yaml"),
          enabled=lambda p: p.simulated()),
    Stage("validate", "validate", inputs=lambda p: {"input": p.samplesheet()}, samplesheet_inputs=("input",),
          outputs=("samplesheet.valid.csv",)),
    Stage("qc", "qc", inputs=lambda p: {"input": str(p.stage_dir("validate") / "samplesheet.valid.csv"),
                                        "guide_map": p.guide_map()}, samplesheet_inputs=("input",),
          outputs=("cells.h5ad", "qc_per_sample.csv")),
    Stage("fate-fit", "fate_fit", folder_name="fate", prefix="fate_", outputs=FATE_OUTPUTS,
          inputs=lambda p: {"input": p.file("qc", "cells.h5ad"), "guide_map": p.guide_map()}),
    Stage("mash", "mash", prefix="mash_", outputs=MASH_OUTPUTS,
          inputs=lambda p: {"input": [p.file("fate", "gene_daywise_for_mash.csv"),
                                      p.file("fate", "guide_daywise_for_mash.csv")]}),
    Stage("aggregate", "aggregate", outputs=tuple(f"gene_from_guide_mash_{m}.csv" for m in MASH_MODES),
          inputs=lambda p: {"input": [p.file("mash", f"mash_guide_{m}.csv") for m in MASH_MODES]}),
    Stage("rank", "rank", outputs=("hits_ranked.csv", "mash_mode_comparison.csv"),
          inputs=lambda p: {"conservative": p.file("mash", "mash_gene_conservative.csv"),
                            "enriched": p.file("mash", "mash_gene_enriched.csv")}),
    Stage("eval-recovery", "eval_recovery", prefix="eval_", outputs=("recovery_metrics.json", "recovery_table.csv"),
          inputs=lambda p: {"theta_summary": p.file("fate", "theta_posterior_summary.npz"),
                            "truth": p.file("simulate", "truth/sim_recovery.csv"),
                            "hits": p.file("rank", "hits_ranked.csv")},
          enabled=lambda p: p.simulated()),
    Stage("diagnostics", "diagnostics", prefix="diag_",
          outputs=("diagnostics.json", "split_counts.csv", "permutation_hits.csv", "sanity.csv"),
          inputs=lambda p: {"input": p.file("qc", "cells.h5ad"), "model": p.file("fate", "fate_model.pt"),
                            "theta_summary": p.file("fate", "theta_posterior_summary.npz"),
                            "guide_map": p.guide_map()}),
)

PIPELINE_PARAMS: dict[str, object] = {"input": None, "outdir": "results", "guide_map": None}


def default_params() -> dict[str, object]:
    """Every pipeline param with its default (the local engine's view of nextflow.config)."""
    params = dict(PIPELINE_PARAMS)
    owner: dict[str, str] = {}
    for stage in STAGES:
        for name, value in stage.defaults().items():
            if name in params and (name in PIPELINE_PARAMS or params[name] != value):
                where = "a pipeline param" if name in PIPELINE_PARAMS else f"{owner[name]}'s default {params[name]!r}"
                raise AssertionError(f"param {name} of stage {stage.name} (default {value!r}) clashes with {where}")
            params[name] = value
            owner.setdefault(name, stage.name)
    return params
