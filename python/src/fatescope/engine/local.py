"""The embedded engine: run the registered stages in order, each in its own process.

It orders, skips (``--resume``: outputs complete, inputs and params unchanged by content hash)
and records (pipeline_info/: params, run log, trace.tsv with Nextflow's fields, versions). Each
stage runs as ``fatescope <stage> ...`` in a child process, as a Nextflow task does, so a stage's
trace (time, CPU, peak memory) is its own. Retries, scheduling and distribution are Nextflow's job.
"""
from __future__ import annotations

import csv
import json
import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from .. import __version__
from ..errors import InputError
from ..io.annotations import read_guide_map
from ..io.outputs import atomic_write_text
from ..io.samplesheet import validate_samplesheet
from ..logs import add_file_log, get_logger
from ..regulons.tfs import BUNDLED
from .hashing import fingerprint, hash_path
from .monitor import human_bytes, human_seconds, run_child
from .stages import STAGES, RunPaths, Stage, default_params

log = get_logger(__name__)
RECORD = ".fatescope_stage.json"
TRACE_FIELDS = ("task_id", "hash", "name", "status", "exit", "submit", "duration", "realtime", "%cpu", "peak_rss", "workdir")


class StageFailed(RuntimeError):
    """A stage raised: carries the stage name and the run log's path for the user."""

    def __init__(self, stage: str, error: BaseException, log_path: Path):
        self.stage, self.error, self.log_path = stage, error, log_path
        super().__init__(f"stage '{stage}' failed: {error}\n(full log: {log_path})")


@dataclass
class TraceRow:
    task_id: int
    name: str
    status: str
    hash: str = "-"
    exit: str = "-"
    submit: str = "-"
    realtime_s: float = 0.0
    pct_cpu: float = 0.0
    peak_rss: int = 0
    workdir: str = "-"

    def fields(self) -> dict[str, str]:
        return {"task_id": str(self.task_id), "hash": self.hash[:8], "name": self.name.upper().replace("-", "_"), "status": self.status,
                "exit": self.exit, "submit": self.submit, "duration": human_seconds(self.realtime_s),
                "realtime": human_seconds(self.realtime_s), "%cpu": f"{self.pct_cpu:.1f}%",
                "peak_rss": human_bytes(self.peak_rss), "workdir": self.workdir}


def preflight(params: dict, stages: list[Stage]) -> None:
    """Check user inputs of the ``stages`` to run before anything is written, so a bad run leaves no outdir."""
    unknown = sorted(set(params) - set(default_params()))
    if unknown:
        raise InputError(f"unknown param(s): {', '.join(unknown)} (see `fatescope run --help` and nextflow_schema.json)")
    if params.get("input"):
        validate_samplesheet(params["input"])
    if params.get("guide_map"):
        read_guide_map(params["guide_map"])
    paths = RunPaths(Path(params["outdir"]), params)
    for stage in stages:  # every param value converts to its option's type
        stage.kwargs(paths)
    names = {s.name for s in stages}
    modes = [m.strip() for m in str(params.get("mash_mode") or "").split(",") if m.strip()]
    if "rank" in names and "conservative" not in modes:
        raise InputError(f"--mash_mode {params.get('mash_mode')!r}: the pipeline ranks hits on the conservative mode; "
                         "give 'conservative' or 'conservative,enriched' (to run enriched alone, use `fatescope mash`)")
    if params.get("compute_fate_probs", "auto") not in ("auto", "always", "never"):
        raise InputError(f"--compute_fate_probs {params['compute_fate_probs']!r}: expected auto, always or never")
    if "fate-fit" in names and paths.computes_fate_probs() and "embed" not in names:
        raise InputError("the fate branch needs fate probabilities: the samplesheet gives none for some sample, so the "
                         "fate-probs stage computes them on embed's kNN graph; drop --skip_integration, give every "
                         "sample a fate_probs file, or --skip_fate true")
    if ("fate-fit" in names and params.get("compute_fate_probs") == "never" and paths.samples_lack_fate_probs()
            and params.get("fate_missing_fate_probs") != "drop"):
        raise InputError("--compute_fate_probs never: some sample of the samplesheet has no fate_probs file, so the fate "
                         "branch would have no fate probabilities for its cells; give every sample one, use "
                         "--compute_fate_probs auto, --fate_missing_fate_probs drop (fit on the other samples' cells), "
                         "or --skip_fate true")
    if params.get("input") and "prune" in names:
        missing = [name for name in ("ranking_dbs", "motif_annotations") if not params.get(name)]
        if missing:
            raise InputError(f"the regulon stages need --{' and --'.join(missing)} (cisTarget ranking databases and "
                             "motif annotations; docs/regulons.md), or --skip_regulons true")
    for name in ("tf_list", "ranking_dbs", "motif_annotations", "ambient_raw", "integrate_projection", "embed_labels",
                 "fate_probs_labels", "mash_fixg_fit", "diag_known_regulators"):
        value = params.get(name)
        if not value or (name == "tf_list" and value in BUNDLED):
            continue
        for part in str(value).replace(",", " ").split():
            if not Path(part).exists():
                raise InputError(f"--{name}: {part} not found")


def _record_path(paths: RunPaths, stage: Stage) -> Path:
    return paths.stage_dir(stage.folder) / RECORD


def _is_current(paths: RunPaths, stage: Stage, key: str) -> bool:
    """True when the stage ran with the same inputs/params and its outputs are intact."""
    record = _record_path(paths, stage)
    if not record.is_file():
        return False
    saved = json.loads(record.read_text())
    if saved.get("fingerprint") != key:
        return False
    folder = paths.stage_dir(stage.folder)
    return all((folder / name).exists() and hash_path(folder / name) == digest for name, digest in saved["outputs"].items())


def _restore_usage(row: TraceRow, paths: RunPaths, stage: Stage) -> None:
    """A cached stage's trace row carries the numbers of the run that made its outputs, as Nextflow's does."""
    usage = json.loads(_record_path(paths, stage).read_text()).get("trace", {})
    row.submit = usage.get("submit", row.submit)
    row.realtime_s, row.pct_cpu, row.peak_rss = usage.get("realtime_s", 0.0), usage.get("pct_cpu", 0.0), usage.get("peak_rss", 0)


def _write_record(paths: RunPaths, stage: Stage, key: str, row: TraceRow) -> None:
    folder = paths.stage_dir(stage.folder)
    names = stage.output_names(paths)
    missing = [o for o in names if "*" not in o and not (folder / o).exists()]
    if missing:
        raise RuntimeError(f"stage '{stage.name}' finished without writing {', '.join(missing)}")
    found = [o for o in names if "*" not in o] + sorted(p.name for o in names if "*" in o for p in folder.glob(o))
    outputs = {o: hash_path(folder / o) for o in found}
    usage = {"submit": row.submit, "realtime_s": row.realtime_s, "pct_cpu": row.pct_cpu, "peak_rss": row.peak_rss}
    atomic_write_text(_record_path(paths, stage), json.dumps({"fingerprint": key, "outputs": outputs,
                                                             "fatescope": __version__, "trace": usage}, indent=1))


def _run_stage(stage: Stage, paths: RunPaths, task_id: int, resume: bool, run_log: Path) -> TraceRow:
    kwargs = stage.kwargs(paths)
    inputs = {k: kwargs[k] for k in stage.input_names()}
    params = {k: v for k, v in kwargs.items() if k not in inputs and k != "outdir"}
    if stage.hashed_inputs is not None:
        inputs = stage.hashed_inputs(paths)
    key = fingerprint(inputs, {"stage": stage.name, **params}, samplesheet_keys=stage.samplesheet_inputs)
    row = TraceRow(task_id, stage.name, "CACHED", hash=key, workdir=str(paths.stage_dir(stage.folder)))
    if resume and _is_current(paths, stage, key):
        log.info("[%s] cached: inputs and params unchanged, outputs complete", stage.name)
        _restore_usage(row, paths, stage)
        return row
    _record_path(paths, stage).unlink(missing_ok=True)
    row.submit = datetime.now().isoformat(timespec="seconds")
    log.info("[%s] running", stage.name)
    if stage.prepare is not None:
        stage.prepare(paths)
    level = logging.getLevelName(logging.getLogger("fatescope").getEffectiveLevel())
    usage = run_child(["--log-level", level, *stage.argv(paths)], run_log)
    if usage.error is not None:
        raise StageFailed(stage.name, RuntimeError(usage.error), run_log)
    row.status, row.exit = "COMPLETED", "0"
    row.realtime_s, row.pct_cpu, row.peak_rss = usage.realtime_s, usage.pct_cpu, usage.peak_rss
    _write_record(paths, stage, key, row)
    log.info("[%s] done in %s, peak RSS %s", stage.name, human_seconds(usage.realtime_s), human_bytes(usage.peak_rss))
    return row


def _write_trace(info: Path, rows: list[TraceRow]) -> None:
    path = info / "trace.tsv"
    with open(path.with_suffix(".tmp"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TRACE_FIELDS, delimiter="\t")
        writer.writeheader()
        writer.writerows(r.fields() for r in rows)
    path.with_suffix(".tmp").replace(path)


def _collect_versions(paths: RunPaths, stages: list[Stage]) -> str:
    merged: dict = {}
    for stage in stages:
        f = paths.stage_dir(stage.folder) / "versions.yml"
        if f.is_file():
            merged.update(yaml.safe_load(f.read_text()) or {})
    return yaml.safe_dump(merged, sort_keys=False)


def run_pipeline(params: dict, resume: bool = False, until: str | None = None) -> list[TraceRow]:
    """Run every enabled stage in order (up to and including stage ``until`` when given); raise
    StageFailed naming the stage that failed."""
    names = [s.name for s in STAGES]
    if until is not None and until not in names:
        raise InputError(f"unknown stage {until!r} (stages: {', '.join(names)})")
    if not params.get("outdir"):
        raise InputError("--outdir is required: the folder the results are written to (--profile test sets results)")
    paths = RunPaths(Path(params["outdir"]), params)
    last = names.index(until) if until is not None else len(STAGES) - 1
    stages = [s for s in STAGES[:last + 1] if s.enabled(paths)]
    preflight(params, stages)
    info = paths.outdir / "pipeline_info"
    info.mkdir(parents=True, exist_ok=True)
    handler = add_file_log(info / "run.log")
    atomic_write_text(info / "params.yaml", yaml.safe_dump(params, sort_keys=True))
    rows: list[TraceRow] = []
    log.info("fatescope %s: %d stages (%s) into %s%s", __version__, len(stages), ", ".join(s.name for s in stages),
             paths.outdir, " [resume]" if resume else "")
    try:
        for task_id, stage in enumerate(stages, start=1):
            try:
                rows.append(_run_stage(stage, paths, task_id, resume, info / "run.log"))
                _write_trace(info, rows)  # so far: the report stage reads it
            except StageFailed as exc:
                rows.append(TraceRow(task_id, stage.name, "FAILED", exit="1", workdir=str(paths.stage_dir(stage.folder))))
                log.error("[%s] failed: %s", stage.name, exc.error)
                raise
            except Exception as exc:
                rows.append(TraceRow(task_id, stage.name, "FAILED", exit="1", workdir=str(paths.stage_dir(stage.folder))))
                log.error("[%s] failed: %s\n%s", stage.name, exc, traceback.format_exc())
                raise StageFailed(stage.name, exc, info / "run.log") from exc
    finally:
        _write_trace(info, rows)
        atomic_write_text(info / "versions.yml", _collect_versions(paths, stages))
        logging.getLogger("fatescope").removeHandler(handler)
        handler.close()
    return rows
