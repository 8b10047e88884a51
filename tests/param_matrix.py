"""The param matrix of the pipeline, for both engines (tests/test_param_matrix.py runs it with the
local engine, tests/test_nextflow_runtime.py with Nextflow).

Every combination runs on a small simulation (SMALL_SIMULATION: seconds per stage) into one outdir
with -resume, so each run redoes only the stages its params change. Each either runs to the end
(report included unless skipped) and its `check` holds, or is refused before any stage runs with
a message naming the param. Values are given as a user types them (`--embed_umap false`,
`--module_percentile_thresholds 90`), so the engines' own parsing of numbers and booleans is
part of the test. The checks read only this run's outputs: the trace (which stages ran) and the
folders of the stages that ran.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import yaml

from nfemulate import SMALL_SIMULATION

ALL_STAGES = ("simulate", "validate", "qc", "ambient", "integrate", "embed", "fate-probs", "grn", "modules", "prune",
              "aucell", "fate-fit", "mash", "aggregate", "rank", "eval-recovery", "diagnostics", "report")
BRANCHES = {"integration": ("integrate", "embed"), "regulons": ("grn", "modules", "prune", "aucell"),
            "fate": ("fate-probs", "fate-fit", "mash", "aggregate", "rank", "eval-recovery", "diagnostics"),
            "diagnostics": ("diagnostics",), "report": ("report",)}


def write_params_file(path: Path) -> Path:
    """The small simulation's params as a -params-file (both engines read it)."""
    path.write_text(yaml.safe_dump(SMALL_SIMULATION, sort_keys=True))
    return path


def stages_in_trace(outdir: Path) -> set[str]:
    """Stages of the last run (completed or cached), from pipeline_info/trace.tsv of either engine:
    the local engine's `name` or Nextflow's `process` column (FATE_FIT -> fate-fit)."""
    with open(outdir / "pipeline_info" / "trace.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    names = {row.get("process") or row["name"] for row in rows}
    return {n.split(":")[-1].lower().replace("_", "-") for n in names} & set(ALL_STAGES)


def obsm_keys(h5ad: Path) -> set[str]:
    with h5py.File(h5ad, "r") as fh:
        return set(fh["obsm"].keys()) if "obsm" in fh else set()


def report_skipped(outdir: Path) -> set[str]:
    return set(json.loads((outdir / "report" / "report_summary.json").read_text())["skipped"])


@dataclass(frozen=True)
class Combo:
    id: str
    params: dict[str, str]                      # --name value, as typed on the command line
    skipped: tuple[str, ...] = ()               # stages that must not run
    check: Callable[[Path], None] = field(default=lambda outdir: None)
    refused: str | None = None                  # expected in the error when the run must be refused

    def args(self) -> list[str]:
        return [part for key, value in self.params.items() for part in (f"--{key}", value)]

    def optional_stages(self) -> set[str]:
        """The stages that run only when asked: ambient (run_ambient) and fate-probs (always, or auto with
        samples that bring no fate probabilities)."""
        mode = self.params.get("compute_fate_probs", "auto")
        computes = mode == "always" or (mode == "auto" and self.params.get("sim_fate_probs") == "false")
        return {name for name, runs in (("ambient", "run_ambient" in self.params), ("fate-probs", computes)) if runs}


def _harmony_on_pca(out: Path) -> None:
    info = json.loads((out / "integrate" / "integrate.json").read_text())
    assert info["method"] == "harmony", info
    assert not (out / "integrate" / "checkpoint").exists(), "Harmony on PCA has no model to save"
    assert {"X_pca", "X_latent"} <= obsm_keys(out / "integrate" / "cells.h5ad")
    assert "embedding" not in report_skipped(out)


def _scalex_alone(out: Path) -> None:
    assert (out / "integrate" / "checkpoint" / "model.pt").is_file()
    keys = obsm_keys(out / "integrate" / "cells.h5ad")
    assert "X_latent" in keys and "X_scalex" not in keys, keys


def _no_umap(out: Path) -> None:
    assert not list((out / "embed").glob("umap_*.png")), sorted(p.name for p in (out / "embed").iterdir())
    assert "X_umap" not in obsm_keys(out / "embed" / "cells.h5ad")
    assert (out / "report" / "report.html").is_file()


def _plots_without_leiden(out: Path) -> None:
    plots = {p.name for p in (out / "embed").glob("umap_*.png")}
    assert {"umap_batch.png", "umap_day.png"} <= plots and "umap_leiden.png" not in plots, plots


def _ambient(out: Path) -> None:
    assert (out / "ambient" / "cells.h5ad").is_file()
    info = json.loads((out / "integrate" / "integrate.json").read_text())
    assert info["layer"] == "decontaminated", info


def _conservative_only(out: Path) -> None:
    assert (out / "mash" / "mash_gene_conservative.csv").is_file()
    assert not list((out / "mash").glob("*enriched*")), sorted(p.name for p in (out / "mash").iterdir())
    assert (out / "rank" / "hits_ranked.csv").is_file()


def _numeric_strings(out: Path) -> None:
    params = yaml.safe_load((out / "modules" / "params.yaml").read_text())
    assert params["percentile_thresholds"] == [90.0] and params["top_n_per_target"] == [50], params


def _guide_posterior_normal_prior(out: Path) -> None:
    params = yaml.safe_load((out / "fate" / "params.yaml").read_text())
    assert params["posterior"] == "guide" and float(params["effect_df"]) == 0.0 and float(params["null_sd"]) == 0.0, params
    assert float(params["s_eff"]) == 0.0, params
    summary = json.loads((out / "fate" / "fit_summary.json").read_text())
    assert {"null_frac", "sigma_eff"}.isdisjoint(summary["point_estimates"]), summary["point_estimates"].keys()
    assert (out / "fate" / "gene_daywise_for_mash.csv").is_file()


def _computed_fate_probs(solver: str, connectivity_weight: float) -> Callable[[Path], None]:
    """fate-probs ran with these settings, its table (rows summing to 1 over the simulated fates) fed
    fate-fit, and the report shows it."""
    def check(out: Path) -> None:
        params = yaml.safe_load((out / "fate_probs" / "params.yaml").read_text())
        assert params["solver"] == solver and float(params["connectivity_weight"]) == connectivity_weight, params
        with open(out / "fate_probs" / "fate_probs.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["cell", "EC", "MES", "NEU"], rows[0]
        with h5py.File(out / "qc" / "cells.h5ad", "r") as fh:
            n_cells = len(fh["obs"][fh["obs"].attrs["_index"]])
        assert len(rows) == n_cells + 1, (len(rows), n_cells)
        assert all(abs(sum(map(float, row[1:])) - 1) < 1e-6 for row in rows[1:])
        fit = yaml.safe_load((out / "fate" / "params.yaml").read_text())
        assert str(fit["fate_probs"]).endswith("fate_probs.csv"), fit["fate_probs"]
        assert "fate-probs" not in report_skipped(out)
    return check


def _split_stages_equal_one_task(out: Path) -> None:
    """aucell_chunk_size / mash_effect_chunk_size: on Nextflow, AUCell and the mash posteriors ran in chunk
    tasks (the trace shows them); in both engines the published tables are those of one unsplit
    `fatescope aucell` / `fatescope mash` on the same inputs, to the bit."""
    import subprocess
    import sys
    import tempfile

    import pandas as pd

    with open(out / "pipeline_info" / "trace.tsv", newline="") as fh:
        processes = {(row.get("process") or "").split(":")[-1] for row in csv.DictReader(fh, delimiter="\t")}
    if processes != {""}:  # Nextflow's trace
        assert {"AUCELL_CHUNK", "MASH_FIT", "MASH_CHUNK"} <= processes, processes
    with tempfile.TemporaryDirectory() as tmp:
        fatescope = [sys.executable, "-m", "fatescope"]
        subprocess.run([*fatescope, "aucell", "--cells", str(out / "qc" / "cells.h5ad"), "--regulons",
                        str(out / "prune" / "regulons.parquet"), "--outdir", f"{tmp}/aucell"], check=True, capture_output=True)
        pd.testing.assert_frame_equal(pd.read_parquet(out / "aucell" / "aucell.parquet"), pd.read_parquet(f"{tmp}/aucell/aucell.parquet"))
        subprocess.run([*fatescope, "mash", "--input", str(out / "fate" / "gene_daywise_for_mash.csv"), "--input",
                        str(out / "fate" / "guide_daywise_for_mash.csv"), "--outdir", f"{tmp}/mash"], check=True, capture_output=True)
        for table in ("mash_gene_conservative.csv", "mash_guide_conservative.csv", "mash_gene_enriched.csv",
                      "mash_guide_enriched.csv"):
            assert (out / "mash" / table).read_text() == Path(tmp, "mash", table).read_text(), table


def _skipping(branch: str) -> Combo:
    def check(out: Path) -> None:
        if branch == "report":
            return
        sections = {"integration": {"embedding", "integration"}, "regulons": {"regulons"},
                    "fate": {"fate-effects", "volcano", "mash-modes", "diagnostics", "recovery"},
                    "diagnostics": {"diagnostics"}}[branch]
        assert sections <= report_skipped(out), (sections, report_skipped(out))
    return Combo(f"skip_{branch}", {f"skip_{branch}": "true"}, skipped=BRANCHES[branch], check=check)


MATRIX: tuple[Combo, ...] = (
    Combo("harmony-pca", {"integrate_harmony_on": "pca"}, check=_harmony_on_pca),
    Combo("scalex", {"integrate_method": "scalex"}, check=_scalex_alone),
    Combo("no-umap", {"embed_umap": "false"}, check=_no_umap),
    Combo("plot-keys-without-leiden", {"embed_plot_keys": "batch,day"}, check=_plots_without_leiden),
    Combo("ambient", {"run_ambient": "true"}, check=_ambient),
    *(_skipping(branch) for branch in BRANCHES),
    Combo("fate-guide-posterior-normal-prior", {"fate_posterior": "guide", "fate_effect_df": "0", "fate_null_sd": "0",
                                                "fate_s_eff": "0"},
          check=_guide_posterior_normal_prior),
    Combo("mash-conservative", {"mash_mode": "conservative"}, check=_conservative_only),
    # Nextflow splits aucell over chunks of 120 cells and the mash posteriors over chunks of 4 effects
    Combo("split-aucell-and-mash", {"aucell_chunk_size": "120", "mash_effect_chunk_size": "4"},
          check=_split_stages_equal_one_task),
    Combo("numeric-looking-strings", {"module_percentile_thresholds": "90", "module_top_n_per_target": "50"},
          check=_numeric_strings),
    # the solvers on the same simulation (compute_fate_probs always): only fate-probs and the fate branch rerun
    Combo("fate-probs-always-gmres-with-connectivity", {"compute_fate_probs": "always", "fate_probs_solver": "gmres",
                                                        "fate_probs_connectivity_weight": "0.2"},
          check=_computed_fate_probs("gmres", 0.2)),
    Combo("fate-probs-direct", {"compute_fate_probs": "always", "fate_probs_solver": "direct"},
          check=_computed_fate_probs("direct", 0.0)),
    Combo("fate-probs-bicgstab", {"compute_fate_probs": "always", "fate_probs_solver": "bicgstab"},
          check=_computed_fate_probs("bicgstab", 0.0)),
    Combo("fate-probs-never", {"compute_fate_probs": "never"}),  # the samples' own: fate-probs must not run
    # auto on samples without fate probabilities: a new simulation, so every stage reruns (once, last)
    Combo("computed-fate-probs", {"sim_fate_probs": "false"}, check=_computed_fate_probs("auto", 0.0)),
    Combo("refused-never-without-fate-probs", {"sim_fate_probs": "false", "compute_fate_probs": "never"},
          refused="compute_fate_probs"),
    Combo("refused-fate-probs-without-integration", {"compute_fate_probs": "always", "skip_integration": "true"},
          refused="skip_integration"),
    Combo("refused-enriched-alone", {"mash_mode": "enriched"}, refused="mash_mode"),
    Combo("refused-unknown-method", {"integrate_method": "umap"}, refused="integrate_method"),
)


def check_outcome(combo: Combo, outdir: Path, returncode: int, output: str, stages_started: set[str]) -> None:
    """Assert the outcome of one run of ``combo``: refused before any stage (``stages_started`` empty) with
    the param named, or completed with the expected stages skipped and its check holding."""
    if combo.refused:
        assert returncode != 0, f"{combo.id}: expected a refusal\n{output[-3000:]}"
        assert combo.refused in output, f"{combo.id}: the error does not name {combo.refused!r}:\n{output[-3000:]}"
        assert "Traceback" not in output, output[-3000:]
        assert not stages_started, f"{combo.id}: refused, but stages started: {stages_started}"
        return
    assert returncode == 0, f"{combo.id} failed:\n{output[-5000:]}"
    ran = stages_in_trace(outdir)
    optional = {"ambient", "fate-probs"} - combo.optional_stages()
    expected = {s for s in ALL_STAGES if s not in combo.skipped and s not in optional}
    assert ran == expected, f"{combo.id}: stages {sorted(ran)}, expected {sorted(expected)}"
    if "report" not in combo.skipped:
        assert (outdir / "report" / "report.html").is_file()
    combo.check(outdir)
