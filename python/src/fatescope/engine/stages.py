"""The DAG as an ordered registry of stages; a later stage is one more entry.

Each stage is one CLI command (``fatescope <stage>``), run in its own process as a Nextflow task
runs it. Its params are the command's options minus ``--outdir`` and its inputs,
named ``<prefix><option>`` with the option's default -- the same names and defaults as
``nextflow.config``. A param may feed several stages (``mash_lfsr_thresh_day``: aggregate and
rank) when their options have the same default. A stage writes into ``<outdir>/<folder>``, its
CLI's ``--outdir`` default (the stage name unless set: fate-fit writes ``fate/``).
"""
from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd

from ..cells.integrate import writes_checkpoint
from ..errors import InputError

Inputs = Callable[["RunPaths"], dict[str, str | list[str] | None]]
# fixed, or following the params (mash modes); a name with '*' is a pattern of optional outputs (plots)
Outputs = tuple[str, ...] | Callable[["RunPaths"], tuple[str, ...]]


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

    def resource(self, param: str, simulated_name: str, default: str | None = None) -> str | None:
        """A reference file: the param when set, else the simulation's own (simulated runs), else ``default``."""
        if self.params.get(param):
            return str(self.params[param])
        return str(self.stage_dir("simulate") / "resources" / simulated_name) if self.simulated() else default

    def truth(self, name: str) -> str | None:
        """A table of the simulation's planted truth (None for real data)."""
        return str(self.stage_dir("simulate") / "truth" / name) if self.simulated() else None

    def runs(self, branch: str) -> bool:
        """Whether a branch of the DAG (integration, regulons, fate, diagnostics, report) is switched on."""
        return not self.params.get(f"skip_{branch}", False)

    def computes_fate_probs(self) -> bool:
        """Whether the fate-probs stage gives fate-fit its fate probabilities: ``compute_fate_probs`` always
        / never, or (auto) when a sample of the samplesheet has none (simulated: ``sim_fate_probs`` false)."""
        mode = self.params.get("compute_fate_probs", "auto")
        return mode == "always" or (mode == "auto" and self.samples_lack_fate_probs())

    def samples_lack_fate_probs(self) -> bool:
        """Whether a sample brings no fate probabilities (simulated: ``sim_fate_probs`` false)."""
        if self.simulated():
            return not self.params.get("sim_fate_probs", True)
        return samples_lack_fate_probs(self.params["input"])

    def computed_fate_probs(self) -> str | None:
        """The fate-probs stage's table for fate-fit, when that stage runs."""
        return self.file("fate_probs", "fate_probs.csv") if self.computes_fate_probs() else None

    def mash_modes(self) -> tuple[str, ...]:
        """The mash modes of the run (``mash_mode``, comma-separated), in MASH_MODES order."""
        asked = {m.strip() for m in str(self.params.get("mash_mode") or ",".join(MASH_MODES)).split(",")}
        return tuple(m for m in MASH_MODES if m in asked)

    def cells_for_integration(self) -> str:
        return self.file("ambient" if self.params.get("run_ambient") else "qc", "cells.h5ad")


def samples_lack_fate_probs(samplesheet: str) -> bool:
    """Whether a row of the samplesheet has no fate_probs file (an unreadable sheet is validate's to report)."""
    try:
        sheet = pd.read_csv(samplesheet, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return False
    return "fate_probs" not in sheet or bool((sheet["fate_probs"].str.strip() == "").any())


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Inputs
    outputs: Outputs
    prefix: str = ""
    enabled: Callable[[RunPaths], bool] = field(default=lambda paths: True)
    folder_name: str | None = None
    samplesheet_inputs: tuple[str, ...] = ()  # inputs that are samplesheets: their data files are hashed too
    hashed_inputs: Callable[[RunPaths], dict[str, str | list[str] | None]] | None = None  # what --resume hashes instead of inputs
    prepare: Callable[[RunPaths], None] | None = None  # makes the inputs ready before the stage runs
    # options only Nextflow's scatter/gather tasks set (qc's --load-only/--merge, aucell's --chunk/--gather,
    # mash's --effect-chunk/--fit-only/--gather): not params, never set by this engine
    split_options: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        """The output folder under the run's outdir: the CLI's --outdir default."""
        return self.folder_name or self.name

    def output_names(self, paths: RunPaths) -> tuple[str, ...]:
        return self.outputs(paths) if callable(self.outputs) else self.outputs

    @property
    def command(self) -> click.Command:
        """The stage's command as the CLI declares it (options, types, defaults): the engine's contract with the CLI."""
        return importlib.import_module("fatescope.cli").command_for(self.name)

    def argv(self, paths: RunPaths) -> list[str]:
        """The command line running this stage (after ``fatescope``), from its inputs and params."""
        kwargs, args = self.kwargs(paths), [self.name]
        for option in self.command.params:
            if not isinstance(option, click.Option) or option.name not in kwargs:
                continue
            value = kwargs[option.name]
            if option.is_flag:
                args += [option.opts[0]] if value else option.secondary_opts[:1]
            elif value is not None:
                args += [item for v in (value if option.multiple else [value]) for item in (option.opts[0], _text(v))]
        return args

    def param_options(self, input_names: set[str]) -> list[click.Option]:
        skip = input_names | {"outdir"} | set(self.split_options)
        return [p for p in self.command.params if isinstance(p, click.Option) and p.name not in skip]

    def input_names(self) -> set[str]:
        return set(self.inputs(RunPaths(Path("."), {"input": None})))

    def defaults(self) -> dict[str, object]:
        """Pipeline params of this stage with their defaults."""
        return {self.prefix + o.name: o.default for o in self.param_options(self.input_names())}

    def kwargs(self, paths: RunPaths) -> dict[str, object]:
        """Arguments for ``run``: inputs, outdir and this stage's params, each converted by its option's
        click type as the CLI would (``--module_percentile_thresholds 90`` arrives as the int 90 from the
        command line or a params file; the option takes the string "90")."""
        inputs = self.inputs(paths)
        params = {o.name: self._convert(o, paths.params.get(self.prefix + o.name, o.default))
                  for o in self.param_options(set(inputs))}
        return {**inputs, "outdir": str(paths.stage_dir(self.folder)), **params}

    def _convert(self, option: click.Option, value: object) -> object:
        if value is None:
            return None
        try:
            return option.type.convert(value, option, None)
        except click.BadParameter as exc:
            raise InputError(f"--{self.prefix}{option.name} {value!r}: {exc.message} "
                             f"(stage {self.name}: `fatescope {self.name} --help`)") from None


def _text(value: object) -> str:
    """A param value as the command line carries it (floats round-trip exactly)."""
    return repr(value) if isinstance(value, float) else str(value)


MASH_MODES = ("conservative", "enriched")
FATE_OUTPUTS = ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv", "theta_posterior_summary.npz",
                "delta_posterior_summary.npz", "qc_delta_mean_by_gene.csv", "qc_theta_beta_offset_by_gene.csv",
                "loss_curve.csv", "fate_model.pt", "fit_summary.json")


def mash_outputs(paths: RunPaths) -> tuple[str, ...]:
    return tuple(f"mash_{kind}_{mode}{suffix}" for kind in ("gene", "guide") for mode in paths.mash_modes()
                 for suffix in (".csv", "_fit.json"))


def integrate_outputs(paths: RunPaths) -> tuple[str, ...]:
    has_model = writes_checkpoint(paths.params.get("integrate_method", "harmony"),
                                  paths.params.get("integrate_harmony_on", "latent"), paths.params.get("integrate_projection"))
    return ("cells.h5ad", "integrate.json") + (("checkpoint",) if has_model else ())


STAGES: tuple[Stage, ...] = (
    Stage("simulate", inputs=lambda p: {}, prefix="sim_",
          outputs=("samplesheet.csv", "guide_map.csv", "sim_metadata.yaml"),
          enabled=lambda p: p.simulated()),
    Stage("validate", inputs=lambda p: {"input": p.samplesheet()}, samplesheet_inputs=("input",),
          outputs=("samplesheet.valid.csv",), split_options=("check_files",)),
    Stage("qc", inputs=lambda p: {"input": str(p.stage_dir("validate") / "samplesheet.valid.csv"),
                                        "guide_map": p.guide_map()}, samplesheet_inputs=("input",),
          outputs=("cells.h5ad", "qc_per_sample.csv"), split_options=("load_only", "merge")),
    # cells: [ambient] -> integrate -> embed
    Stage("ambient", prefix="ambient_", outputs=("cells.h5ad", "ambient.json"),
          inputs=lambda p: {"input": p.file("qc", "cells.h5ad"), "raw": p.params.get("ambient_raw")},
          enabled=lambda p: bool(p.params.get("run_ambient")) and p.runs("integration")),
    Stage("integrate", prefix="integrate_", outputs=integrate_outputs,
          inputs=lambda p: {"input": p.cells_for_integration(), "projection": p.params.get("integrate_projection")},
          enabled=lambda p: p.runs("integration")),
    Stage("embed", prefix="embed_", outputs=("cells.h5ad", "umap_*.png"),
          inputs=lambda p: {"input": p.file("integrate", "cells.h5ad"), "labels": p.params.get("embed_labels") or p.truth("cells.parquet")},
          enabled=lambda p: p.runs("integration")),
    # regulons: grn -> modules -> prune -> aucell
    Stage("grn", prefix="grn_", outputs=("adjacency.parquet", "grn_report.json", "model"),
          inputs=lambda p: {"cells": p.file("qc", "cells.h5ad"), "tf_list": p.resource("tf_list", "tf_list.txt", "human")},
          enabled=lambda p: p.runs("regulons")),
    Stage("modules", prefix="module_", outputs=("modules.parquet", "modules_report.json"),
          inputs=lambda p: {"adjacency": p.file("grn", "adjacency.parquet")}, enabled=lambda p: p.runs("regulons")),
    Stage("prune", outputs=("regulons.parquet", "motif_enrichment.parquet", "regulons.gmt", "prune_report.json"),
          inputs=lambda p: {"modules": p.file("modules", "modules.parquet"),
                            "ranking_dbs": p.resource("ranking_dbs", "sim.genes_vs_motifs.rankings.feather"),
                            "motif_annotations": p.resource("motif_annotations", "motifs.tbl")},
          enabled=lambda p: p.runs("regulons")),
    Stage("aucell", prefix="aucell_", outputs=("aucell.parquet", "cells.h5ad", "aucell_regulons.csv"),
          inputs=lambda p: {"cells": p.file("qc", "cells.h5ad"), "regulons": p.file("prune", "regulons.parquet")},
          enabled=lambda p: p.runs("regulons"), split_options=("chunk", "gather")),
    # fate: [fate-probs] -> fate-fit -> mash -> aggregate, rank -> [eval-recovery], diagnostics
    Stage("fate-probs", folder_name="fate_probs", prefix="fate_probs_",
          outputs=("fate_probs.csv", "terminal_states.csv", "transition_matrix.npz", "fate_probs.json", "cells.h5ad",
                   "fate_probs_*.png"),
          inputs=lambda p: {"input": p.file("embed", "cells.h5ad"), "labels": p.params.get("fate_probs_labels") or p.truth("cells.parquet")},
          enabled=lambda p: p.runs("fate") and p.computes_fate_probs()),
    Stage("fate-fit", folder_name="fate", prefix="fate_", outputs=FATE_OUTPUTS,
          inputs=lambda p: {"input": p.file("qc", "cells.h5ad"), "guide_map": p.guide_map(),
                            "fate_probs": p.computed_fate_probs()},
          enabled=lambda p: p.runs("fate")),
    Stage("mash", prefix="mash_", outputs=mash_outputs,
          inputs=lambda p: {"input": [p.file("fate", "gene_daywise_for_mash.csv"),
                                      p.file("fate", "guide_daywise_for_mash.csv")],
                            "fixg_fit": p.params.get("mash_fixg_fit")},
          enabled=lambda p: p.runs("fate"), split_options=("effect_chunk", "fit_only", "gather")),
    Stage("aggregate", outputs=lambda p: tuple(f"gene_from_guide_mash_{m}.csv" for m in p.mash_modes()),
          inputs=lambda p: {"input": [p.file("mash", f"mash_guide_{m}.csv") for m in p.mash_modes()]},
          enabled=lambda p: p.runs("fate")),
    Stage("rank", outputs=("hits_ranked.csv", "mash_mode_comparison.csv"),
          inputs=lambda p: {"conservative": p.file("mash", "mash_gene_conservative.csv"),
                            "enriched": p.file("mash", "mash_gene_enriched.csv") if "enriched" in p.mash_modes() else None},
          enabled=lambda p: p.runs("fate")),
    Stage("eval-recovery", prefix="eval_", outputs=("recovery_metrics.json", "recovery_table.csv"),
          inputs=lambda p: {"theta_summary": p.file("fate", "theta_posterior_summary.npz"),
                            "truth": p.file("simulate", "truth/sim_recovery.csv"),
                            "hits": p.file("rank", "hits_ranked.csv"),
                            "regulons": p.file("prune", "regulons.parquet") if p.runs("regulons") else None,
                            "regulon_truth": p.truth("regulons_truth.csv") if p.runs("regulons") else None,
                            "cells": p.file("embed", "cells.h5ad") if p.runs("integration") else None,
                            "cell_truth": p.truth("cells.parquet") if p.runs("integration") else None},
          enabled=lambda p: p.simulated() and p.runs("fate")),
    Stage("diagnostics", prefix="diag_",
          outputs=("diagnostics.json", "split_counts.csv", "permutation_hits.csv", "sanity.csv"),
          inputs=lambda p: {"input": p.file("qc", "cells.h5ad"), "model": p.file("fate", "fate_model.pt"),
                            "theta_summary": p.file("fate", "theta_posterior_summary.npz"),
                            "guide_map": p.guide_map(), "fate_probs": p.computed_fate_probs(),
                            "known_regulators": p.params.get("diag_known_regulators")},
          enabled=lambda p: p.runs("fate") and p.runs("diagnostics")),
    Stage("report", prefix="report_", outputs=("report.html", "report_summary.json"),
          inputs=lambda p: {"results": str(p.outdir / REPORT_VIEW)}, enabled=lambda p: p.runs("report"),
          hashed_inputs=lambda p: {s.folder: str(p.stage_dir(s.folder)) for s in _report_stages(p)},
          prepare=lambda p: stage_report_inputs(p)),
)

def _report_stages(paths: RunPaths) -> list[Stage]:
    return [s for s in STAGES if s.name != "report" and s.enabled(paths)]


def stage_report_inputs(paths: RunPaths) -> None:
    """The report's input folder: links to the folders of this run's stages and pipeline_info/, as
    Nextflow stages them for REPORT, so that a folder left in the outdir by an earlier run with other
    switches (an embed/ from before --skip_integration) is not reported as this run's."""
    view = paths.outdir / REPORT_VIEW
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    for folder in ["pipeline_info", *(s.folder for s in _report_stages(paths))]:
        if paths.stage_dir(folder).is_dir():
            (view / folder).symlink_to(Path("..") / folder, target_is_directory=True)


REPORT_VIEW = ".report_inputs"

# Switches of DAG branches; a skipped branch's stages do not run and nothing downstream needs them
BRANCH_SWITCHES: dict[str, object] = {"run_ambient": False, "skip_integration": False, "skip_regulons": False,
                                      "skip_fate": False, "skip_diagnostics": False, "skip_report": False}

# Run-level params: inputs and reference files (None = the simulation's own, or the stage's default)
PIPELINE_PARAMS: dict[str, object] = {"input": None, "outdir": None, "guide_map": None, "ambient_raw": None,
                                      "integrate_projection": None, "embed_labels": None, "fate_probs_labels": None,
                                      "compute_fate_probs": "auto", "mash_fixg_fit": None,
                                      "diag_known_regulators": None, "tf_list": None,
                                      "ranking_dbs": None, "motif_annotations": None, **BRANCH_SWITCHES}


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
