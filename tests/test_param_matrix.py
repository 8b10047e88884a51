"""The param matrix (tests/param_matrix.py) with the local engine: `fatescope run --profile test` on a
small simulation, each combination of params as a user types it, chained with -resume in one outdir;
refused combinations leave no outdir. The same matrix runs on Nextflow in tests/test_nextflow_runtime.py."""
from __future__ import annotations

import subprocess
import sys

import pytest

from param_matrix import MATRIX, Combo, check_outcome, write_params_file


def _fatescope_run(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fatescope", "run", "--profile", "test", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    """The small test-profile run every combination resumes from: (folder, params file, outdir)."""
    root = tmp_path_factory.mktemp("matrix-local")
    params_file = write_params_file(root / "small.yaml")
    outdir = root / "results"
    res = _fatescope_run(["-params-file", str(params_file), "--outdir", str(outdir)], root)
    assert res.returncode == 0, res.stderr[-5000:]
    return root, params_file, outdir


@pytest.mark.slow
@pytest.mark.parametrize("combo", MATRIX, ids=lambda combo: combo.id)
def test_param_combination_with_the_local_engine(matrix_run, combo: Combo):
    root, params_file, outdir = matrix_run
    if combo.refused:
        outdir = root / f"refused-{combo.id}"
    res = _fatescope_run(["-params-file", str(params_file), "--outdir", str(outdir), "-resume", *combo.args()], root)
    started = {p.name for p in outdir.iterdir()} if combo.refused and outdir.exists() else set()
    check_outcome(combo, outdir, res.returncode, res.stdout + res.stderr, started)
    if combo.refused:
        assert not outdir.exists(), f"{combo.id}: refused, yet {outdir} was created"
