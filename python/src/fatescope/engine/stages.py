"""The DAG as an ordered registry of stages; a later stage is one more entry.

Each stage is one CLI command (``fatescope.cli.<module>``) exposing ``command`` (click) and
``run(**kwargs)``. Its params are the command's options minus ``--outdir`` and its inputs,
named ``<prefix><option>`` with the option's default -- the same names and defaults as
``nextflow.config``.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

Inputs = Callable[["RunPaths"], dict[str, str | None]]


@dataclass(frozen=True)
class RunPaths:
    """Where a run's stages read and write: the outdir and the pipeline-level params."""
    outdir: Path
    params: dict

    def stage_dir(self, stage: str) -> Path:
        return self.outdir / stage

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
        return {**inputs, "outdir": str(paths.stage_dir(self.name)), **params}


STAGES: tuple[Stage, ...] = (
    Stage("simulate", "simulate", inputs=lambda p: {}, prefix="sim_",
          outputs=("samplesheet.csv", "guide_map.csv", "sim_metadata.yaml"),
          enabled=lambda p: p.simulated()),
    Stage("validate", "validate", inputs=lambda p: {"input": p.samplesheet()},
          outputs=("samplesheet.valid.csv",)),
    Stage("qc", "qc", inputs=lambda p: {"input": str(p.stage_dir("validate") / "samplesheet.valid.csv"),
                                        "guide_map": p.guide_map()},
          outputs=("cells.h5ad", "qc_per_sample.csv")),
)

PIPELINE_PARAMS: dict[str, object] = {"input": None, "outdir": "results", "guide_map": None}


def default_params() -> dict[str, object]:
    """Every pipeline param with its default (the local engine's view of nextflow.config)."""
    params = dict(PIPELINE_PARAMS)
    for stage in STAGES:
        params.update(stage.defaults())
    return params
