"""Read a results folder into plain data for the report; any stage folder may be absent.

Only this module touches the results folder. Each reader returns None when its stage did not
run, so a skipped stage becomes a "not run" section rather than an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import InputError

# stage folders of a run, in DAG order (fate-fit writes fate/)
KNOWN_FOLDERS = ("pipeline_info", "simulate", "validate", "qc", "ambient", "integrate", "embed", "grn", "modules",
                 "prune", "aucell", "fate_probs", "fate", "mash", "aggregate", "rank", "eval-recovery", "diagnostics")


@dataclass
class Embedding:
    umap: np.ndarray            # cells x 2
    obs: pd.DataFrame           # batch, day, leiden (whichever exist), indexed by cell id
    pngs: dict[str, bytes]      # the embed stage's own umap_<key>.png files, used when X_umap is absent


@dataclass
class RunData:
    root: Path
    folders: list[str]
    params: dict | None = None
    versions: dict | None = None
    trace: pd.DataFrame | None = None
    samplesheet: pd.DataFrame | None = None
    qc: pd.DataFrame | None = None
    embedding: Embedding | None = None
    embed_metrics: dict | None = None
    integrate_info: dict | None = None
    aucell: pd.DataFrame | None = None          # cells x regulons, indexed by cell id
    regulon_info: pd.DataFrame | None = None
    fate_probs: pd.DataFrame | None = None      # cells x fates (fate-probs stage), indexed by cell id
    terminal_states: pd.Series | None = None    # cell -> terminal state
    fate_probs_info: dict | None = None
    fates: dict = field(default_factory=dict)   # fit_summary.json of the fate stage
    mash: dict[str, pd.DataFrame] = field(default_factory=dict)   # fate -> conservative gene table
    hits: pd.DataFrame | None = None
    mode_comparison: pd.DataFrame | None = None
    diagnostics: dict | None = None
    permutation_hits: pd.DataFrame | None = None
    recovery: dict | None = None


def _read(path: Path, reader):
    """``reader(path)`` when the file exists, else None; unreadable files are an InputError naming them."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input, reported with the file name
        raise InputError(f"{path}: could not be read ({type(exc).__name__}: {exc})") from None


def _csv_with(*columns: str, **kw):
    """A CSV reader that insists on ``columns`` (the ones the report uses)."""
    def read(path: Path) -> pd.DataFrame:
        frame = pd.read_csv(path, float_precision="round_trip", **kw)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"missing column(s) {', '.join(missing)}")
        return frame
    return read


def _json(path: Path):
    return json.loads(path.read_text())


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _stage_versions(root: Path, folders: list[str]) -> dict | None:
    """versions.yml of each stage folder merged, when the run has no pipeline_info/versions.yml."""
    merged = {}
    for name in folders:
        merged.update(_read(root / name / "versions.yml", _yaml) or {})
    return merged or None


def _embedding(folder: Path) -> Embedding | None:
    if not folder.is_dir():
        return None
    pngs = {p.stem.removeprefix("umap_"): p.read_bytes() for p in sorted(folder.glob("umap_*.png"))}
    cells = folder / "cells.h5ad"
    if not cells.is_file():
        return Embedding(np.empty((0, 2)), pd.DataFrame(), pngs) if pngs else None
    import anndata as ad

    adata = _read(cells, lambda p: ad.read_h5ad(p, backed="r"))
    try:
        umap = np.asarray(adata.obsm["X_umap"])[:, :2] if "X_umap" in adata.obsm else np.empty((0, 2))
        obs = adata.obs[[c for c in ("batch", "day", "leiden") if c in adata.obs]].copy()
    finally:
        adata.file.close()
    return Embedding(umap, obs, pngs)


def _aucell(path: Path) -> pd.DataFrame | None:
    frame = _read(path, pd.read_parquet)
    if frame is None:
        return None
    first = frame.columns[0]
    if frame[first].dtype.kind in "fi":
        raise InputError(f"{path}: expected the cell id in the first column, found numbers in {first!r}")
    return frame.set_index(first)


def _mash_tables(folder: Path, fit_summary: dict) -> dict[str, pd.DataFrame]:
    """Conservative gene tables by fate: mash_gene_conservative.csv is the primary fate's."""
    primary = str(fit_summary.get("primary_contrast", "primary")).split("-")[0]
    out = {}
    for path in sorted(folder.glob("mash_gene_conservative*.csv")):
        fate = path.stem.removeprefix("mash_gene_conservative").lstrip("_") or primary
        table = _read(path, _csv_with("gene"))
        days = [c.removeprefix("postmean_") for c in table.columns if c.startswith("postmean_")]
        if not days or any(f"lfsr_{d}" not in table.columns for d in days):
            raise InputError(f"{path}: expected columns gene, postmean_<day> and lfsr_<day> for each day")
        out[fate] = table
    return dict(sorted(out.items(), key=lambda kv: kv[0] != primary))


def collect(results: str | Path) -> RunData:
    """Everything the report shows, read from the stage folders of ``results``."""
    root = Path(results)
    if not root.is_dir():
        raise InputError(f"{root}: results folder not found (expected a run's outdir with stage folders)")
    folders = [f for f in KNOWN_FOLDERS if (root / f).is_dir()]
    if not folders:
        raise InputError(f"{root}: none of the known stage folders ({', '.join(KNOWN_FOLDERS)}) is present")
    info = root / "pipeline_info"
    data = RunData(root, folders)
    data.params = _read(info / "params.yaml", _yaml)
    data.versions = _read(info / "versions.yml", _yaml) or _stage_versions(root, folders)
    data.trace = _read(info / "trace.tsv", _csv_with("name", sep="\t"))
    data.samplesheet = _read(root / "validate" / "samplesheet.valid.csv", _csv_with())
    if data.samplesheet is None:
        data.samplesheet = _read(root / "simulate" / "samplesheet.csv", _csv_with())
    data.qc = _read(root / "qc" / "qc_per_sample.csv", _csv_with("sample"))
    data.embedding = _embedding(root / "embed")
    data.embed_metrics = _read(root / "embed" / "metrics.json", _json)
    data.integrate_info = _read(root / "integrate" / "integrate.json", _json)
    data.aucell = _aucell(root / "aucell" / "aucell.parquet")
    data.regulon_info = _read(root / "aucell" / "aucell_regulons.csv", _csv_with())
    probs = _read(root / "fate_probs" / "fate_probs.csv", _csv_with("cell"))
    data.fate_probs = None if probs is None else probs.set_index("cell")
    terminal = _read(root / "fate_probs" / "terminal_states.csv", _csv_with("cell", "terminal_state"))
    data.terminal_states = None if terminal is None else terminal.set_index("cell")["terminal_state"]
    data.fate_probs_info = _read(root / "fate_probs" / "fate_probs.json", _json)
    data.fates = _read(root / "fate" / "fit_summary.json", _json) or {}
    data.mash = _mash_tables(root / "mash", data.fates) if (root / "mash").is_dir() else {}
    data.hits = _read(root / "rank" / "hits_ranked.csv", _csv_with("rank", "gene", "hit_anyday"))
    data.mode_comparison = _read(root / "rank" / "mash_mode_comparison.csv",
                                 _csv_with("scope", "calls_conservative", "calls_enriched", "jaccard"))
    data.diagnostics = _read(root / "diagnostics" / "diagnostics.json", _json)
    data.permutation_hits = _read(root / "diagnostics" / "permutation_hits.csv", _csv_with("gene"))
    data.recovery = _read(root / "eval-recovery" / "recovery_metrics.json", _json)
    return data
