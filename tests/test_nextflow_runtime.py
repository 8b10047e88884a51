"""With the nextflow runtime (tests marked `nextflow`; skipped with a reason when it is not on PATH):
a stub run of the test profile, the resolved config, `nextflow lint`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nfconfig import CONF, MAIN_NF, MODULES, NEXTFLOW_CONFIG, REPO, TEST_PROFILE_ONLY


def _nextflow_or_skip() -> str:
    exe = shutil.which("nextflow")
    if exe is None:
        print("\nskipped: `nextflow` is not on PATH (install Nextflow >=24.10 to run the runtime tests)")
        pytest.skip("`nextflow` is not on PATH: runtime tests of the Nextflow layer need Nextflow >=24.10")
    return exe


def _run_nextflow(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "NXF_ANSI_LOG": "false", "NXF_HOME": str(cwd / ".nxf-home"), "NXF_SYNTAX_PARSER": "v2"}
    if "NXF_HOME" in os.environ:  # reuse downloaded plugins when the caller has a Nextflow home
        env["NXF_HOME"] = os.environ["NXF_HOME"]
    return subprocess.run(["nextflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.nextflow
def test_stub_run_of_the_test_profile(tmp_path):
    """`nextflow run main.nf -stub -profile test`: the DAG runs end to end (stubs) and the
    output folder has every stage folder and pipeline_info."""
    _nextflow_or_skip()
    outdir = tmp_path / "results"
    res = _run_nextflow(["run", str(MAIN_NF), "-stub", "-profile", "test", "--outdir", str(outdir),
                         "-work-dir", str(tmp_path / "work")], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    for rel in ("simulate/samplesheet.csv", "simulate/guide_map.csv", "simulate/versions.yml",
                "validate/samplesheet.valid.csv", "validate/versions.yml",
                "qc/cells.h5ad", "qc/qc_per_sample.csv", "qc/versions.yml",
                "fate/gene_daywise_for_mash.csv", "fate/fate_model.pt", "fate/versions.yml",
                "mash/mash_gene_conservative.csv", "mash/mash_guide_enriched.csv", "mash/versions.yml",
                "aggregate/gene_from_guide_mash_conservative.csv", "rank/hits_ranked.csv",
                "eval-recovery/recovery_metrics.json", "diagnostics/diagnostics.json",
                "pipeline_info/versions.yml", "pipeline_info/params.yaml", "pipeline_info/trace.tsv"):
        assert (outdir / rel).is_file(), f"{rel} missing from the stub run's outdir"
    versions = (outdir / "pipeline_info" / "versions.yml").read_text()
    for proc in ("SIMULATE", "VALIDATE", "QC", "FATE_FIT", "MASH", "AGGREGATE", "RANK", "EVAL_RECOVERY", "DIAGNOSTICS"):
        assert f"FATESCOPE:{proc}" in versions


@pytest.mark.nextflow
def test_nextflow_config_resolves_the_test_profile(tmp_path):
    """`nextflow config -flat -profile test`: the profile's params reach the resolved config."""
    _nextflow_or_skip()
    from fatescope.engine.profiles import TEST_PROFILE

    res = _run_nextflow(["config", "-flat", "-profile", "test", str(REPO)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    flat = dict(line.split(" = ", 1) for line in res.stdout.splitlines() if " = " in line)
    for key, value in {**TEST_PROFILE, **TEST_PROFILE_ONLY}.items():
        assert flat.get(f"params.{key}", "").strip("'") == str(value).lower(), (key, flat.get(f"params.{key}"))


@pytest.mark.nextflow
def test_nextflow_lint(tmp_path):
    """`nextflow lint` (Nextflow >= 25.04) finds no errors in the repo."""
    _nextflow_or_skip()
    version = _run_nextflow(["-version"], cwd=tmp_path).stdout
    m = re.search(r"version (\d+)\.(\d+)", version)
    if not m or (int(m.group(1)), int(m.group(2))) < (25, 4):
        pytest.skip(f"nextflow lint needs Nextflow >= 25.04 ({version.strip()[:80]})")
    res = _run_nextflow(["lint", "-o", "concise", str(MAIN_NF), *map(str, sorted(MODULES.glob("*/main.nf"))),
                         str(NEXTFLOW_CONFIG), *map(str, sorted(CONF.glob("*.config")))], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
