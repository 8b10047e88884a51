"""main.nf on a real Nextflow runtime (tests marked `nextflow`; each skips with the reason when
`nextflow` is not on PATH, and the ones that run the pipeline skip when the nf-schema plugin can be
neither found in $NXF_HOME/plugins nor downloaded).

`make setup` installs Nextflow 24.10.0 from Maven Central (.ci/get-nextflow.sh) into
build/nextflow/bin, which `make test` puts on PATH. The nf-schema plugin comes from Nextflow's
plugin registry, which CI cannot reach: there the `nextflow config` test runs and the rest skip.

What runs: the test profile end to end (local executor, no container: every task runs the
`fatescope` of this Python's environment, first on PATH), then -resume (every task cached), with the
hits and recovery numbers equal to the local engine's on the same seed; the param matrix of
tests/param_matrix.py; the image version check; a stub run; `nextflow config`.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nfconfig import CONF, MAIN_NF, MODULES, NEXTFLOW_CONFIG, REPO, TEST_PROFILE_ONLY
from param_matrix import MATRIX, Combo, check_outcome, write_params_file

MIN_VERSION = (24, 10)
SUBMITTED = re.compile(r"Submitted process > (?:[A-Z_]+:)*([A-Z_]+)")


def _nextflow_or_skip() -> str:
    exe = shutil.which("nextflow")
    if exe is None:
        pytest.skip("`nextflow` is not on PATH: `make setup` installs Nextflow 24.10.0 from Maven Central "
                    "(.ci/get-nextflow.sh, needs Java 17+ and Maven); `make test` puts it on PATH")
    return exe


def _env() -> dict[str, str]:
    """Nextflow's environment: this Python's bin first on PATH (its `fatescope`, else bin/fatescope with
    its python3), no ANSI log, no version check over the network."""
    python_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{python_bin}:{os.environ.get('PATH', '')}", "NXF_ANSI_LOG": "false",
            "NXF_DISABLE_CHECK_LATEST": "true"}


def _nextflow(args: list[str], cwd: Path, timeout: int = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nextflow", *args], cwd=cwd, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout)


def _version() -> tuple[int, int]:
    out = subprocess.run(["nextflow", "-version"], capture_output=True, text=True, env=_env()).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _plugin() -> str:
    m = re.search(r"id\s+'(nf-schema@[\w.\-]+)'", NEXTFLOW_CONFIG.read_text())
    assert m, "nextflow.config pins no nf-schema version"
    return m.group(1)


@pytest.fixture(scope="session")
def nextflow_runtime(tmp_path_factory) -> str:
    """The Nextflow version, once the runtime and the pinned nf-schema plugin are there."""
    _nextflow_or_skip()
    version = _version()
    if version < MIN_VERSION:
        pytest.skip(f"Nextflow {version} is older than the pipeline's minimum {MIN_VERSION}")
    res = _nextflow(["plugin", "install", _plugin()], cwd=tmp_path_factory.mktemp("plugin"), timeout=300)
    if res.returncode != 0:
        pytest.skip(f"the {_plugin()} plugin is neither in $NXF_HOME/plugins nor downloadable "
                    f"(Nextflow's plugin registry is unreachable here): {(res.stdout + res.stderr).strip()[-300:]}")
    return ".".join(map(str, version))


def _trace(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / "pipeline_info" / "trace.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _run_test_profile(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return _nextflow(["run", str(MAIN_NF), "-profile", "test", *args], cwd=cwd)


@pytest.mark.nextflow
def test_test_profile_runs_resumes_and_matches_the_local_engine(nextflow_runtime, tmp_path):
    """`nextflow run main.nf -profile test`: every stage completes; -resume caches every task; the
    hit list and the recovery numbers equal the local engine's on the same seed."""
    outdir = tmp_path / "results"
    first = _run_test_profile(["--outdir", str(outdir)], tmp_path)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-3000:]
    trace = _trace(outdir)
    processes = {row["process"].split(":")[-1] for row in trace}
    # run_ambient; fate probabilities the samples do not bring; the chunk tasks of aucell_chunk_size/mash_effect_chunk_size
    optional = {"ambient", "fate_probs", "aucell_chunk", "mash_fit", "mash_chunk"}
    assert {p.name for p in MODULES.iterdir()} - optional <= {p.lower() for p in processes}, processes
    assert {row["status"] for row in trace} == {"COMPLETED"}
    # lean publishing (--save_intermediates false): the run's AnnData is embed's; no intermediate copies
    assert (outdir / "embed" / "cells.h5ad").is_file()
    intermediate = [f"{stage}/cells.h5ad" for stage in ("qc", "integrate", "aucell") if (outdir / stage / "cells.h5ad").exists()]
    assert not intermediate, f"published without --save_intermediates: {intermediate}"
    assert (outdir / "qc" / "qc_per_sample.csv").is_file() and (outdir / "aucell" / "aucell.parquet").is_file()
    # per-sample QC: one QC_LOAD task per sample of the samplesheet, tagged with it, then one QC merge
    with open(outdir / "simulate" / "samplesheet.csv", newline="") as fh:
        samples = sorted(row["sample"] for row in csv.DictReader(fh))
    loads = sorted(re.search(r"QC_LOAD \((.+)\)", row["name"]).group(1) for row in trace if "QC_LOAD" in row["name"])
    assert loads == samples and len(samples) >= 2, loads
    assert not (outdir / "qc_samples").exists(), "the per-sample files are QC's input, not results"
    size = sum(f.stat().st_size for f in outdir.rglob("*") if f.is_file())
    print(f"\n-profile test outdir: {size / 1e6:.1f} MB")
    print(f"\nNextflow {nextflow_runtime}, -profile test: " +
          ", ".join(f"{row['process'].split(':')[-1]} {row['realtime']}" for row in trace))

    again = _run_test_profile(["--outdir", str(outdir), "-resume"], tmp_path)
    assert again.returncode == 0, again.stdout[-5000:]
    assert not SUBMITTED.search(again.stdout), "-resume ran tasks again:\n" + again.stdout[-3000:]
    assert {row["status"] for row in _trace(outdir)} == {"CACHED"}

    local = tmp_path / "local"
    res = subprocess.run([sys.executable, "-m", "fatescope", "run", "--profile", "test", "--outdir", str(local)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-5000:]
    assert (outdir / "qc" / "qc_per_sample.csv").read_text() == (local / "qc" / "qc_per_sample.csv").read_text()
    assert (outdir / "rank" / "hits_ranked.csv").read_text() == (local / "rank" / "hits_ranked.csv").read_text()
    ours, theirs = (json.loads((d / "eval-recovery" / "recovery_metrics.json").read_text()) for d in (outdir, local))
    assert ours == theirs


# The matrix's checks read the stages' cells.h5ad, as the local engine keeps them
SAVE_INTERMEDIATES = ["--save_intermediates", "true"]


@pytest.fixture(scope="module")
def nextflow_matrix_run(nextflow_runtime, tmp_path_factory):
    """The small test-profile run every combination resumes from: (folder, params file, outdir)."""
    root = tmp_path_factory.mktemp("matrix-nextflow")
    params_file = write_params_file(root / "small.yaml")
    outdir = root / "results"
    res = _run_test_profile(["-params-file", str(params_file), "--outdir", str(outdir), *SAVE_INTERMEDIATES], root)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-3000:]
    return root, params_file, outdir


@pytest.mark.nextflow
@pytest.mark.parametrize("combo", MATRIX, ids=lambda combo: combo.id)
def test_param_combination_with_nextflow(nextflow_matrix_run, combo: Combo):
    root, params_file, outdir = nextflow_matrix_run
    res = _run_test_profile(["-params-file", str(params_file), "--outdir", str(outdir), "-resume", *combo.args(),
                             *SAVE_INTERMEDIATES], root)
    started = {m.lower().replace("_", "-") for m in SUBMITTED.findall(res.stdout)} - {"image-version"}
    check_outcome(combo, outdir, res.returncode, res.stdout + res.stderr, started)


@pytest.mark.nextflow
def test_fatescope_run_hands_the_run_to_nextflow(nextflow_runtime, tmp_path):
    """`fatescope run --engine nextflow`: the local engine's params (defaults < profile < params file <
    command line) reach Nextflow as one params file, and the run completes with the same layout."""
    params_file = write_params_file(tmp_path / "small.yaml")
    outdir = tmp_path / "results"
    res = subprocess.run([sys.executable, "-m", "fatescope", "run", "--engine", "nextflow", "--profile", "test",
                          "-params-file", str(params_file), "--outdir", str(outdir), "--embed_umap", "false"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-3000:]
    assert (outdir / "report" / "report.html").is_file() and (outdir / "nextflow_params.yaml").is_file()
    assert not list((outdir / "embed").glob("umap_*.png"))
    assert {row["status"] for row in _trace(outdir)} == {"COMPLETED"}


@pytest.mark.nextflow
def test_a_fatescope_of_another_version_is_refused_before_any_stage(nextflow_runtime, tmp_path):
    """The image check: a `fatescope` on PATH (or in the image) that is not the pipeline's version
    stops the run before any stage, naming both versions."""
    from fatescope import __version__

    fake = tmp_path / "stale"
    fake.mkdir()
    (fake / "fatescope").write_text("#!/bin/sh\necho 'fatescope, version 0.0.1'\n")
    (fake / "fatescope").chmod(0o755)
    env = _env()
    env["PATH"] = f"{fake}:{env['PATH']}"
    res = _nextflow(["run", str(MAIN_NF), "-profile", "test", "--outdir", str(tmp_path / "results")], tmp_path,
                    env=env)
    assert res.returncode != 0
    assert f"this pipeline is fatescope {__version__}" in res.stdout and "version 0.0.1" in res.stdout, res.stdout[-3000:]
    assert set(SUBMITTED.findall(res.stdout)) == {"IMAGE_VERSION"}, res.stdout[-3000:]


@pytest.mark.nextflow
def test_outdir_is_required_on_real_data(nextflow_runtime, tmp_path):
    """No --outdir and no test profile: refused before any task, and no null/pipeline_info/ written."""
    res = _nextflow(["run", str(MAIN_NF), "--input", "samples.csv"], cwd=tmp_path)
    assert res.returncode != 0 and "--outdir is required" in res.stdout + res.stderr, res.stdout[-3000:]
    assert not SUBMITTED.search(res.stdout)
    assert {p.name for p in tmp_path.iterdir()} <= {".nextflow", ".nextflow.log", "work"}, list(tmp_path.iterdir())


@pytest.mark.nextflow
def test_stub_run_of_the_test_profile(nextflow_runtime, tmp_path):
    """`nextflow run main.nf -stub -profile test --compute_fate_probs always --save_intermediates true
    --custom_config_base <site>`, AUCell and mash split into chunk tasks: the DAG runs end to end (stubs), every
    process once at least (ambient aside), the output folder has every stage folder
    (ambient's aside), each intermediate cells.h5ad, and pipeline_info; the site's fatescope.config is read."""
    outdir = tmp_path / "results"
    site = tmp_path / "site"  # an institutional config folder (--custom_config_base)
    site.mkdir()
    (site / "fatescope.config").write_text("params.max_cpus = 3\nprocess { withName: 'RANK' { cpus = 1 } }\n")
    res = _run_test_profile(["-stub", "--outdir", str(outdir), "--compute_fate_probs", "always", *SAVE_INTERMEDIATES,
                             "--custom_config_base", str(site), "--aucell_chunk_size", "100",
                             "--mash_effect_chunk_size", "10"], tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    for rel in ("simulate/samplesheet.csv", "validate/samplesheet.valid.csv", "qc/cells.h5ad", "integrate/cells.h5ad",
                "embed/cells.h5ad", "fate_probs/fate_probs.csv", "grn/adjacency.parquet", "prune/regulons.parquet",
                "aucell/aucell.parquet", "aucell/cells.h5ad", "fate_probs/cells.h5ad",
                "fate/gene_daywise_for_mash.csv", "mash/mash_gene_conservative.csv", "rank/hits_ranked.csv",
                "eval-recovery/recovery_metrics.json", "diagnostics/diagnostics.json", "report/report.html",
                "pipeline_info/versions.yml", "pipeline_info/params.yaml", "pipeline_info/trace.tsv"):
        assert (outdir / rel).is_file(), f"{rel} missing from the stub run's outdir"
    assert yaml.safe_load((outdir / "pipeline_info" / "params.yaml").read_text())["max_cpus"] == 3, "site config not read"
    versions = (outdir / "pipeline_info" / "versions.yml").read_text()
    for module in MODULES.iterdir():
        assert module.name == "ambient" or f"FATESCOPE:{module.name.upper()}" in versions, module.name


@pytest.mark.nextflow
def test_nextflow_config_resolves_the_test_profile(tmp_path):
    """`nextflow config -flat -profile test` (no plugin needed): the profile's params reach the resolved
    config, with the plugin pinned and lenient type checks for string params."""
    _nextflow_or_skip()
    from fatescope.engine.profiles import TEST_PROFILE

    res = _nextflow(["config", "-flat", "-profile", "test", str(REPO)], cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    flat = dict(line.split(" = ", 1) for line in res.stdout.splitlines() if " = " in line)
    for key, value in {**TEST_PROFILE, **TEST_PROFILE_ONLY}.items():
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert flat.get(f"params.{key}", "").strip("'") == expected, (key, flat.get(f"params.{key}"))
    assert flat["plugins"] == f"['{_plugin()}']" and flat["validation.lenientMode"] == "true"


@pytest.mark.nextflow
def test_nextflow_lint(tmp_path):
    """`nextflow lint` (Nextflow >= 25.04) finds no errors in the repo."""
    _nextflow_or_skip()
    if _version() < (25, 4):
        pytest.skip(f"nextflow lint needs Nextflow >= 25.04 (this is {_version()})")
    files = [MAIN_NF, *sorted(MODULES.glob("*/main.nf")), *sorted((REPO / "subworkflows").glob("*/*/main.nf")),
             NEXTFLOW_CONFIG, *sorted(CONF.glob("*.config"))]
    res = _nextflow(["lint", "-o", "concise", *map(str, files)], cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
