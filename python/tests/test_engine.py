"""The local engine: order, resume by content hash, trace, failures, params layering."""
from __future__ import annotations

import csv
import json
import re

import pytest
import yaml
from click.testing import CliRunner
from conftest import write_sheet

from fatescope.cli import main
from fatescope.cli.run import parse_extra_params, resolve_params
from fatescope.engine.local import StageFailed, run_pipeline
from fatescope.engine.stages import STAGES, default_params
from fatescope.errors import InputError


@pytest.fixture
def sheet(three_samples):
    tmp_path, paths, _ = three_samples
    rows = [{"sample": s, "counts": str(paths[s]), "batch": "b1", "day": "d0", "replicate": "r1"} for s in ("s1", "s2", "s3")]
    return write_sheet(tmp_path / "sheet.csv", rows)


# these tests exercise the engine on validate -> qc (tiny samples without guide calls); the
# whole DAG runs in tests/test_workflows.yml
def _params(sheet, outdir, **over):
    return resolve_params([], None, {"input": str(sheet), "outdir": str(outdir), "min_features": 0, **over})


def _trace(outdir):
    with open(outdir / "pipeline_info" / "trace.tsv") as fh:
        return {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}


def _megabytes(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"B": 2 ** -20, "KB": 2 ** -10, "MB": 1, "GB": 2 ** 10}[unit]


def test_run_then_resume_does_no_work(sheet, tmp_path, caplog):
    caplog.set_level("INFO", logger="fatescope")  # the stages inherit the engine's log level
    out = tmp_path / "res"
    rows = run_pipeline(_params(sheet, out), until="qc")
    assert [(r.name, r.status) for r in rows] == [("validate", "COMPLETED"), ("qc", "COMPLETED")]
    info = out / "pipeline_info"
    assert {p.name for p in info.iterdir()} >= {"trace.tsv", "params.yaml", "run.log", "versions.yml"}
    trace = _trace(out)
    assert trace["QC"]["status"] == "COMPLETED" and re.fullmatch(r"\d+(\.\d+)? (B|KB|MB|GB)", trace["QC"]["peak_rss"])
    # each stage runs in its own process: its peak is its own (python + pandas + anndata, ~150-300 MB), not
    # this test process's (torch and everything the suite loaded before), and its log records reach run.log
    import torch  # noqa: F401  (makes this process large whatever ran before)
    for name in ("VALIDATE", "QC"):
        assert _megabytes(trace[name]["peak_rss"]) < 450, trace[name]
    assert re.search(r"INFO fatescope\.cli\.qc: qc: \d+ cells", (info / "run.log").read_text())
    assert "FATESCOPE:QC" in yaml.safe_load((info / "versions.yml").read_text())
    for stage in ("validate", "qc"):
        assert {"versions.yml", "params.yaml", "command.txt"} <= {p.name for p in (out / stage).iterdir()}
    mtime = (out / "qc" / "cells.h5ad").stat().st_mtime_ns
    rows = run_pipeline(_params(sheet, out), resume=True, until="qc")
    assert [r.status for r in rows] == ["CACHED", "CACHED"]
    assert (out / "qc" / "cells.h5ad").stat().st_mtime_ns == mtime
    resumed = _trace(out)["QC"]
    assert resumed["status"] == "CACHED"
    # a cached stage reports the numbers of the run that made its outputs (as Nextflow's trace does)
    assert {k: resumed[k] for k in ("submit", "realtime", "%cpu", "peak_rss")} == \
        {k: trace["QC"][k] for k in ("submit", "realtime", "%cpu", "peak_rss")}


def test_resume_reruns_what_changed(sheet, three_samples, tmp_path):
    out = tmp_path / "res"
    run_pipeline(_params(sheet, out), until="qc")
    rows = run_pipeline(_params(sheet, out, min_cells=5), resume=True, until="qc")
    assert [r.status for r in rows] == ["CACHED", "COMPLETED"]
    # a changed data file behind an unchanged samplesheet invalidates both stages
    _, paths, _ = three_samples
    h5ad = paths["s1"]
    import anndata as ad
    a = ad.read_h5ad(h5ad)
    a.X[0, 0] += 1
    a.write_h5ad(h5ad)
    rows = run_pipeline(_params(sheet, out, min_cells=5), resume=True, until="qc")
    assert [r.status for r in rows] == ["COMPLETED", "COMPLETED"]
    # a damaged output is not taken as complete
    (out / "qc" / "qc_per_sample.csv").write_text("tampered\n")
    rows = run_pipeline(_params(sheet, out, min_cells=5), resume=True, until="qc")
    assert [r.status for r in rows] == ["CACHED", "COMPLETED"]


def test_failure_names_stage_and_leaves_no_partial_output(sheet, tmp_path):
    out = tmp_path / "res"
    with pytest.raises(StageFailed) as exc:
        run_pipeline(_params(sheet, out, min_features=10_000), until="qc")
    assert exc.value.stage == "qc" and "no cells left" in str(exc.value)
    assert str(out / "pipeline_info" / "run.log") in str(exc.value)
    assert not (out / "qc").exists() and (out / "validate" / "samplesheet.valid.csv").exists()
    assert _trace(out)["QC"]["status"] == "FAILED"
    rows = run_pipeline(_params(sheet, out), resume=True, until="qc")
    assert [r.status for r in rows] == ["CACHED", "COMPLETED"]


def test_bad_samplesheet_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sample,counts,batch,day\na,/nope,b,dX\na,/nope,b,d1\n")
    result = CliRunner().invoke(main, ["run", "--input", str(bad), "--outdir", str(tmp_path / "res")])
    assert result.exit_code == 1
    for needle in ("required column 'replicate' is missing", "duplicate sample 'a'", "'/nope' does not exist",
                   "value 'dX' is not valid"):
        assert needle in result.output
    assert not (tmp_path / "res").exists()


def test_bad_samplesheet_leaves_an_existing_run_untouched(sheet, tmp_path):
    """A bad samplesheet given to an outdir that holds a good run: refused before anything is written (the good
    run's stage folders, records and pipeline_info stay byte for byte), one clean error, no traceback."""
    out = tmp_path / "res"
    run_pipeline(_params(sheet, out), until="qc")
    before = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    for text in ("sample,counts,batch,day,replicate\n", "\ufeffsample,counts,batch,day\ns1,/nope,b1,d0\n"):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        result = CliRunner().invoke(main, ["run", "--input", str(bad), "--outdir", str(out), "-resume"])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert str(bad) in result.output and "Traceback" not in result.output
        assert {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


def test_unknown_param_refused(sheet, tmp_path):
    with pytest.raises(InputError, match="unknown param.*min_featurez"):
        run_pipeline(_params(sheet, tmp_path / "res", min_featurez=3), until="qc")
    assert not (tmp_path / "res").exists()


def test_outdir_is_required_on_real_data(sheet, tmp_path, monkeypatch):
    """No --outdir: refused before anything is written (the CLI and the API); --profile test writes results/."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["run", "--input", str(sheet)])
    assert result.exit_code == 1 and "--outdir is required" in result.output, result.output
    params = _params(sheet, tmp_path / "res")
    del params["outdir"]
    with pytest.raises(InputError, match="--outdir is required"):
        run_pipeline(params, until="qc")
    assert not list(cwd.iterdir()) and not (tmp_path / "res").exists()


def test_params_layering(tmp_path):
    pf = tmp_path / "p.yaml"
    pf.write_text(yaml.safe_dump({"min_features": 100, "min_cells": 7, "outdir": "from_file"}))
    params = resolve_params(["test"], str(pf), {"min_cells": 9})
    assert params["min_features"] == 100 and params["min_cells"] == 9 and params["outdir"] == "from_file"
    assert resolve_params(["test"], None, {})["min_features"] == 300  # the test profile's value
    with pytest.raises(InputError, match="no --input"):
        resolve_params([], None, {})


def test_extra_params_parse_like_nextflow():
    assert parse_extra_params(["--min_features", "250", "--gene-join=outer", "--max_pct_mito", "null", "--flag"]) == {
        "min_features": 250, "gene_join": "outer", "max_pct_mito": None, "flag": True}
    with pytest.raises(InputError):
        parse_extra_params(["stray"])


def test_param_values_take_their_option_type(tmp_path):
    """Numeric-looking values of string params (as the command line and YAML params files give them)
    reach the stage as strings; a value its option cannot take is refused before anything is written."""
    from pathlib import Path

    from fatescope.engine.local import preflight
    from fatescope.engine.stages import RunPaths

    params = {**default_params(), "module_percentile_thresholds": 90, "module_top_n_per_target": 50,
              "integrate_impute_batch": 1, "integrate_lr": 1, "embed_umap": "false"}
    paths = RunPaths(Path(tmp_path), params)
    stages = {s.name: s for s in STAGES}
    assert stages["modules"].kwargs(paths)["percentile_thresholds"] == "90"
    assert stages["modules"].kwargs(paths)["top_n_per_target"] == "50"
    integrate = stages["integrate"].kwargs(paths)
    assert integrate["impute_batch"] == "1" and integrate["lr"] == 1.0 and isinstance(integrate["lr"], float)
    assert stages["embed"].kwargs(paths)["umap"] is False
    out = tmp_path / "res"
    bad = {**params, "outdir": str(out), "integrate_latent_dim": "ten"}
    with pytest.raises(InputError, match=r"--integrate_latent_dim 'ten'.*integrate"):
        preflight(bad, list(STAGES))
    with pytest.raises(InputError, match=r"--integrate_method 'umap'"):
        run_pipeline(resolve_params(["test"], None, {"outdir": str(out), "integrate_method": "umap"}))
    assert not out.exists()


def test_a_rerun_leaves_no_stale_outputs(tmp_path):
    """A stage folder holds one run's outputs: files an earlier run published and this one does not
    write are removed; files that are not the stage's are kept."""
    from fatescope.io.outputs import MANIFEST, staged_output

    out = tmp_path / "mash"
    with staged_output(out, "mash", {"mode": "both"}) as tmp:
        (tmp / "mash_gene_conservative.csv").write_text("a\n")
        (tmp / "mash_gene_enriched.csv").write_text("b\n")
        (tmp / "fits").mkdir()
    (out / "notes.txt").write_text("mine\n")
    with staged_output(out, "mash", {"mode": "conservative"}) as tmp:
        (tmp / "mash_gene_conservative.csv").write_text("c\n")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([MANIFEST, "command.txt", "mash_gene_conservative.csv", "notes.txt", "params.yaml",
                            "versions.yml"])
    assert (out / "mash_gene_conservative.csv").read_text() == "c\n"
    assert "mode: conservative" in (out / "params.yaml").read_text()


def test_stage_params_mirror_cli_defaults():
    params = default_params()
    assert params["min_features"] == 600 and params["gene_join"] == "inner" and params["max_pct_mito"] is None
    assert params["outdir"] is None and params["input"] is None  # required on real data, as nf-core's
    assert resolve_params(["test"], None, {})["outdir"] == "results"  # the test profile's
    assert "sim_seed" in params and all(not k.startswith("sim_") or k[4:] for k in params)
    assert [s.name for s in STAGES][:3] == ["simulate", "validate", "qc"]


def test_record_holds_output_hashes(sheet, tmp_path):
    out = tmp_path / "res"
    run_pipeline(_params(sheet, out), until="qc")
    record = json.loads((out / "qc" / ".fatescope_stage.json").read_text())
    assert set(record["outputs"]) == {"cells.h5ad", "qc_per_sample.csv"} and len(record["fingerprint"]) == 64


def test_nextflow_engine_hand_off(tmp_path, monkeypatch):
    from fatescope.engine.nextflow import nextflow_command, pipeline_root, run_with_nextflow
    cmd = nextflow_command({}, ["test", "docker"], True, tmp_path / "p.yaml")
    assert cmd[:3] == ["nextflow", "run", str(pipeline_root() / "main.nf")]
    assert cmd[3:] == ["-params-file", str(tmp_path / "p.yaml"), "-profile", "test,docker", "-resume"]
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="`nextflow` is not on PATH"):
        run_with_nextflow({"outdir": str(tmp_path / "o")}, ["test"], False)
    assert not (tmp_path / "o").exists()


def test_registry_wires_the_fate_chain(tmp_path):
    """fate-fit writes fate/ (its CLI's --outdir default), mash reads both daywise tables (a list
    input, hashed path by path), one param feeds aggregate and rank, eval-recovery only when simulated."""
    from fatescope.engine.hashing import fingerprint
    from fatescope.engine.stages import RunPaths

    stages = {s.name: s for s in STAGES}
    assert [s.name for s in STAGES] == ["simulate", "validate", "qc", "ambient", "integrate", "embed", "grn", "modules",
                                        "prune", "aucell", "fate-probs", "fate-fit", "mash", "aggregate", "rank", "eval-recovery",
                                        "diagnostics", "report"]
    for stage in STAGES:
        default_outdir = next(p.default for p in stage.command.params if p.name == "outdir")
        assert stage.folder == default_outdir, stage.name
    assert stages["fate-fit"].folder == "fate"
    paths = RunPaths(tmp_path, {"input": None})
    kwargs = stages["mash"].kwargs(paths)
    assert kwargs["input"] == [str(tmp_path / "fate" / f) for f in ("gene_daywise_for_mash.csv", "guide_daywise_for_mash.csv")]
    assert kwargs["outdir"] == str(tmp_path / "mash") and kwargs["mode"] == "conservative,enriched"
    assert stages["fate-fit"].kwargs(paths)["outdir"] == str(tmp_path / "fate")
    params = default_params()
    assert params["mash_lfsr_thresh_day"] == 0.05 and params["mash_mode"] == "conservative,enriched"
    over = RunPaths(tmp_path, {"input": None, "mash_lfsr_thresh_day": 0.01})
    assert stages["aggregate"].kwargs(over)["mash_lfsr_thresh_day"] == stages["rank"].kwargs(over)["mash_lfsr_thresh_day"] == 0.01
    assert stages["eval-recovery"].enabled(paths) and not stages["eval-recovery"].enabled(RunPaths(tmp_path, {"input": "s.csv"}))
    # list inputs: every file's content counts, in order
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n2\n")
    key = fingerprint({"input": [str(a), str(b)]}, {})
    assert key != fingerprint({"input": [str(b), str(a)]}, {}) and key == fingerprint({"input": [str(a), str(b)]}, {})
    b.write_text("x\n3\n")
    assert key != fingerprint({"input": [str(a), str(b)]}, {})


def test_branch_switches_and_reference_files(tmp_path):
    """Skip flags drop whole branches and what reads them; reference files come from the params,
    else from the simulation, else the stage default; real data without cisTarget files is refused
    before anything is written."""
    from fatescope.engine.stages import RunPaths

    def enabled(**params):
        paths = RunPaths(tmp_path, {"input": None, **params})
        return [s.name for s in STAGES if s.enabled(paths)]

    everything = enabled()
    assert "ambient" not in everything and {"integrate", "embed", "grn", "aucell", "diagnostics", "report"} <= set(everything)
    assert enabled(run_ambient=True)[3] == "ambient"
    assert not {"integrate", "embed"} & set(enabled(skip_integration=True, run_ambient=True)) and "ambient" not in enabled(skip_integration=True, run_ambient=True)
    assert not {"grn", "modules", "prune", "aucell"} & set(enabled(skip_regulons=True))
    assert not {"fate-fit", "mash", "rank", "eval-recovery", "diagnostics"} & set(enabled(skip_fate=True))
    assert "diagnostics" not in enabled(skip_diagnostics=True) and "report" not in enabled(skip_report=True)

    stages = {s.name: s for s in STAGES}
    sim = RunPaths(tmp_path, {"input": None})
    assert stages["grn"].kwargs(sim)["tf_list"] == str(tmp_path / "simulate" / "resources" / "tf_list.txt")
    assert stages["prune"].kwargs(sim)["motif_annotations"].endswith("simulate/resources/motifs.tbl")
    assert stages["embed"].kwargs(sim)["labels"].endswith("simulate/truth/cells.parquet")
    real = RunPaths(tmp_path, {"input": "s.csv", "ranking_dbs": "a.feather,b.feather", "tf_list": "mouse"})
    assert stages["grn"].kwargs(real)["tf_list"] == "mouse" and stages["prune"].kwargs(real)["ranking_dbs"] == "a.feather,b.feather"
    assert stages["grn"].kwargs(RunPaths(tmp_path, {"input": "s.csv"}))["tf_list"] == "human"
    assert stages["embed"].kwargs(RunPaths(tmp_path, {"input": "s.csv"}))["labels"] is None
    ambient = RunPaths(tmp_path, {"input": None, "run_ambient": True})
    assert stages["integrate"].kwargs(ambient)["input"] == str(tmp_path / "ambient" / "cells.h5ad")
    # eval-recovery scores regulons and the embedding only when their branches ran
    ev = stages["eval-recovery"]
    assert ev.kwargs(sim)["regulons"] and ev.kwargs(sim)["cells"]
    off = RunPaths(tmp_path, {"input": None, "skip_regulons": True, "skip_integration": True})
    assert ev.kwargs(off)["regulons"] is None and ev.kwargs(off)["cells"] is None


def test_mash_modes_shape_the_fate_branch(sheet, tmp_path):
    from fatescope.engine.stages import RunPaths

    stages = {s.name: s for s in STAGES}
    one = RunPaths(tmp_path, {"input": None, "mash_mode": "conservative"})
    assert stages["mash"].output_names(one) == ("mash_gene_conservative.csv", "mash_gene_conservative_fit.json",
                                                "mash_guide_conservative.csv", "mash_guide_conservative_fit.json")
    assert stages["aggregate"].kwargs(one)["input"] == [str(tmp_path / "mash" / "mash_guide_conservative.csv")]
    assert stages["rank"].kwargs(one)["enriched"] is None
    both = RunPaths(tmp_path, {"input": None, "mash_mode": "enriched,conservative"})
    assert both.mash_modes() == ("conservative", "enriched") and len(stages["mash"].output_names(both)) == 8
    with pytest.raises(InputError, match="ranks hits on the conservative mode"):
        run_pipeline(_params(sheet, tmp_path / "res", mash_mode="enriched", skip_regulons=True))
    assert not (tmp_path / "res").exists()


def test_real_data_regulons_need_cistarget_files(sheet, tmp_path):
    out = tmp_path / "res"
    with pytest.raises(InputError, match="--ranking_dbs and --motif_annotations"):
        run_pipeline(_params(sheet, out))
    assert not out.exists()
    with pytest.raises(InputError, match="--tf_list: nope.txt not found"):
        run_pipeline(_params(sheet, out, tf_list="nope.txt", skip_regulons=True))
    assert not out.exists()


def test_shared_param_needs_one_default(monkeypatch):
    """A param shared by two stages (aggregate and rank) must have the same default in both (else
    default_params refuses)."""
    import fatescope.engine.stages as st

    rank = next(s for s in STAGES if s.name == "rank")
    aggregate = next(s for s in STAGES if s.name == "aggregate")
    assert "mash_lfsr_thresh_day" in aggregate.defaults() and "mash_lfsr_thresh_day" in rank.defaults()
    assert st.default_params()["mash_lfsr_thresh_day"] == 0.05      # same defaults: one param
    opt = next(p for p in rank.command.params if p.name == "mash_lfsr_thresh_day")
    monkeypatch.setattr(opt, "default", 0.1)
    with pytest.raises(AssertionError, match="mash_lfsr_thresh_day"):
        st.default_params()
