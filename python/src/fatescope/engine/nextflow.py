"""Hand a run to Nextflow (``fatescope run --engine nextflow``) with the same params."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from ..errors import InputError


def pipeline_root() -> Path:
    """The checkout holding main.nf (this package lives in <root>/python/src/fatescope)."""
    root = Path(__file__).resolve().parents[4]
    if not (root / "main.nf").is_file():
        raise InputError(f"main.nf not found next to the package ({root}); run from a fatescope checkout or "
                         "use `nextflow run <checkout>/main.nf` directly")
    return root


def nextflow_command(params: dict, profiles: list[str], resume: bool, params_file: Path) -> list[str]:
    """The ``nextflow run`` command line equivalent to a local run."""
    cmd = ["nextflow", "run", str(pipeline_root() / "main.nf"), "-params-file", str(params_file)]
    if profiles:
        cmd += ["-profile", ",".join(profiles)]
    if resume:
        cmd.append("-resume")
    return cmd


def run_with_nextflow(params: dict, profiles: list[str], resume: bool) -> int:
    """Write the params file into the outdir and exec Nextflow; returns its exit status."""
    if shutil.which("nextflow") is None:
        raise InputError("`nextflow` is not on PATH: install it (https://www.nextflow.io) or use --engine local")
    outdir = Path(params["outdir"])
    outdir.mkdir(parents=True, exist_ok=True)
    params_file = outdir / "nextflow_params.yaml"
    params_file.write_text(yaml.safe_dump({k: v for k, v in params.items() if v is not None}, sort_keys=True))
    return subprocess.call(nextflow_command(params, profiles, resume, params_file))
