"""Simulated experiments with planted truth, written as the pipeline reads real ones (``fs.datasets.simulate``).

The science lives in ``fatescope.simulate``; this module decides file names and writes. Counts are
generated and written one sample at a time, so memory follows the largest sample.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import yaml

from . import __version__
from .errors import InputError
from .io.outputs import staged_output
from .logs import get_logger, progress
from .simulate.dataset import (Simulation, build_simulation, cistarget_resources, fate_prob_table, guide_calls,
                               sample_counts_anndata)
from .simulate.params import FATES, REFERENCE_FATE, TRUTH_THRESHOLD, SimParams, option_fields
from .simulate.truth import batch_effects_table, genes_table, guide_truth_table, nuisance, recovery_table

log = get_logger(__name__)
SAMPLESHEET = "samplesheet.csv"
RANKING_DB = "resources/sim.genes_vs_motifs.rankings.feather"
PACKAGES = ["numpy", "pandas", "scipy", "anndata", "h5py", "pyarrow"]


def _write_samples(sim: Simulation, tmp: Path, final: Path, fate_probs: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts, guide calls and (with ``fate_probs``) fate probabilities per sample; returns (samplesheet,
    per-cell expression truth). Without them the samplesheet has no fate_probs column, as an experiment
    whose fate probabilities the fate-probs stage computes."""
    for folder in ("samples", "guides", "fate_probs")[: 3 if fate_probs else 2]:
        (tmp / folder).mkdir()
    sheet, per_cell = [], []
    for i in progress(range(len(sim.samples)), desc="simulate samples", total=len(sim.samples)):
        row = sim.samples.iloc[i]
        name = row["sample"]
        adata, truth = sample_counts_anndata(sim, i)
        adata.write_h5ad(tmp / "samples" / f"{name}.h5ad", compression="gzip")
        guide_calls(sim, i).to_csv(tmp / "guides" / f"{name}.csv", index=False)
        if fate_probs:
            fate_prob_table(sim, i).to_csv(tmp / "fate_probs" / f"{name}.csv", index=False, float_format="%.10g")
        log.info("sample %s: %d cells, median %d genes detected", name, adata.n_obs, int(np.median(truth["n_genes_detected"])))
        per_cell.append(truth)
        sheet.append({"sample": name, "counts": str(final / "samples" / f"{name}.h5ad"), "batch": row["batch"],
                      "day": row["day"], "replicate": row["replicate"], "guides": str(final / "guides" / f"{name}.csv"),
                      **({"fate_probs": str(final / "fate_probs" / f"{name}.csv")} if fate_probs else {})})
    return pd.DataFrame(sheet), pd.concat(per_cell)


def _write_resources(sim: Simulation, tmp: Path) -> None:
    (tmp / "resources").mkdir()
    db, annotations = cistarget_resources(sim)
    feather.write_feather(pa.Table.from_pandas(db, preserve_index=False), tmp / RANKING_DB)
    annotations.to_csv(tmp / "resources" / "motifs.tbl", sep="\t", index=False)
    (tmp / "resources" / "tf_list.txt").write_text("".join(f"{tf}\n" for tf in sim.catalog.all_tfs))


def _write_truth(sim: Simulation, tmp: Path, per_cell: pd.DataFrame) -> None:
    truth = tmp / "truth"
    truth.mkdir()
    recovery_table(sim.effects, sim.perturbed_genes, sim.days).to_csv(truth / "sim_recovery.csv", index=False)
    guide_truth_table(sim.effects, sim.library, sim.expression, sim.days).to_csv(truth / "guide_truth.csv", index=False)
    fate_nuisance = nuisance(sim.effects, sim.days, sim.replicates, float(sim.cells["n_guides"].mean()))
    (truth / "nuisance.yaml").write_text(yaml.safe_dump(fate_nuisance, sort_keys=False))
    sim.expression.regulons.to_csv(truth / "regulons_truth.csv", index=False)
    sim.cells.join(per_cell).to_parquet(truth / "cells.parquet", index=False)
    batch_effects_table(sim.expression).to_parquet(truth / "batch_effects.parquet", index=False)
    genes_table(sim.catalog, sim.expression, sim.perturbed_genes, sim.db_genes).to_csv(truth / "genes.csv", index=False)
    sim.motifs.to_csv(truth / "motifs.csv", index=False)


def _metadata(sim: Simulation, tmp: Path, per_cell: pd.DataFrame, inputs: dict) -> dict:
    guides_per_cell = sim.cells["n_guides"].to_numpy()
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return {
        "stage": "simulate",
        "fatescope_version": __version__,
        "inputs": inputs,
        "fates": list(FATES),
        "reference_fate": REFERENCE_FATE,
        "truth_threshold": TRUTH_THRESHOLD,
        "days": sim.days,
        "replicates": sim.replicates,
        "samples": sim.samples["sample"].tolist(),
        "summary": {
            "n_cells": int(len(sim.cells)),
            "n_genes": int(len(sim.catalog.names)),
            "median_genes_detected": float(np.median(per_cell["n_genes_detected"])),
            "median_total_counts": float(np.median(per_cell["total_counts"])),
            "mean_guides_per_cell": float(guides_per_cell.mean()),
            "max_guides_per_cell": int(guides_per_cell.max(initial=0)),
            "ntc_guide_fraction": float(sim.cells["n_ntc_guides"].sum() / max(guides_per_cell.sum(), 1)),
            "n_hit_genes": int(sim.effects.hit_gene.sum()),
            "n_planted_tfs": int(len(sim.catalog.tfs)),
        },
        "files": files + ["sim_metadata.yaml"],
    }


def simulate(outdir: str | os.PathLike = "simulate", *, seed: int = 0, fate_probs: bool = True, **sizes) -> Path:
    """Simulate a time-course CRISPRi Perturb-seq experiment and write it into ``outdir``.

    Parameters
    ----------
    outdir
        Folder written atomically: samples/ (h5ad counts), guides/, fate_probs/, samplesheet.csv, guide_map.csv,
        resources/ (cisTarget ranking database, motif annotations, TF list), truth/ (planted effects, regulons, cells).
    seed
        Random seed; the same seed gives the same files.
    fate_probs
        Write the observed fate probabilities (fate_probs/ and the samplesheet's fate_probs column); False
        leaves them out, for runs whose fate-probs stage computes them from the kNN graph (the truth still has
        pi and each cell's true_fate and cell_type).
    **sizes
        Any field of ``fatescope.simulate.params.SimParams`` (n_cells, n_genes, n_days, ...; `fatescope simulate --help`).

    Returns
    -------
    The samplesheet's path, for ``fs.read_samples``.

    Examples
    --------
    >>> import fatescope as fs
    >>> sheet = fs.datasets.simulate("sim", seed=3, n_cells=800)  # doctest: +SKIP
    >>> adata = fs.read_samples(sheet, "sim/guide_map.csv")  # doctest: +SKIP
    """
    known = {f.name for f in option_fields()}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise InputError(f"simulate: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    params = SimParams(seed=seed, **sizes)
    final = Path(outdir).resolve()
    log.info("simulate: %d cells x %d genes in %d samples, seed %d", params.n_cells, params.n_genes, params.n_samples, seed)
    sim = build_simulation(params)
    inputs = {**params.as_dict(), "fate_probs": bool(fate_probs)}
    with staged_output(outdir, "simulate", inputs, PACKAGES) as tmp:
        sheet, per_cell = _write_samples(sim, tmp, final, fate_probs)
        sheet.to_csv(tmp / SAMPLESHEET, index=False)
        guide_map = sim.library.assign(is_ntc=sim.library["is_ntc"].map({True: "true", False: "false"}))
        guide_map.to_csv(tmp / "guide_map.csv", index=False)
        _write_resources(sim, tmp)
        _write_truth(sim, tmp, per_cell)
        (tmp / "sim_metadata.yaml").write_text(yaml.safe_dump(_metadata(sim, tmp, per_cell, inputs), sort_keys=False))
    log.info("simulate: wrote %s", final)
    return final / SAMPLESHEET
