"""Bad input, table-driven: each case runs one stage command on a realistic bad file and asserts a
non-zero exit, an error naming the file and the key (row, column, field), no traceback, and an
output folder left exactly as it was (here: an earlier good run's files) with no temporary
folders beside it. Plus the recoveries the errors point to, and a stage killed with SIGKILL."""
from __future__ import annotations

import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fatescope.cli import COMMANDS, main

SIM = ["--n-cells", "400", "--n-genes", "150", "--n-days", "2", "--n-replicates", "2", "--n-tfs", "3",
       "--targets-per-tf", "10", "--n-perturbed-genes", "6", "--guides-per-gene", "2", "--n-ntc-guides", "2",
       "--n-motifs", "20", "--kmax", "4", "--moi", "1.0"]
FIT = ["--num-steps", "60", "--min-steps", "20", "--num-draws", "20", "--threads", "1", "--device", "cpu"]


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A small simulated run: simulate/, validate/, qc/, fate/ and mash/ (from the fit)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    for args in (["simulate", "--outdir", str(root / "simulate"), *SIM],
                 ["validate", "--input", str(root / "simulate" / "samplesheet.csv"), "--outdir", str(root / "validate")],
                 ["qc", "--input", str(root / "validate" / "samplesheet.valid.csv"), "--guide-map",
                  str(root / "simulate" / "guide_map.csv"), "--outdir", str(root / "qc"), "--min-features", "10"],
                 ["fate-fit", "--input", str(root / "qc" / "cells.h5ad"), "--outdir", str(root / "fate"), *FIT],
                 ["mash", "--input", str(root / "fate" / "gene_daywise_for_mash.csv"), "--mode", "conservative",
                  "--outdir", str(root / "mash")]):
        res = _invoke(args)
        assert res.exit_code == 0, (args[0], res.output)
    return root


# --- the bad files, each written from the good run -------------------------------------------------

def _sheet(run: Path, tmp: Path, edit: Callable[[pd.DataFrame], pd.DataFrame], name: str = "sheet.csv") -> str:
    sheet = edit(pd.read_csv(run / "validate" / "samplesheet.valid.csv"))
    sheet.to_csv(tmp / name, index=False)
    return str(tmp / name)


def guide_map_without_controls(run, tmp):
    gm = pd.read_csv(run / "simulate" / "guide_map.csv")
    gm = gm[~gm["is_ntc"].astype(str).str.lower().eq("true")]
    gm.to_csv(tmp / "gm.csv", index=False)
    return (["qc", "--input", str(run / "validate" / "samplesheet.valid.csv"), "--guide-map", str(tmp / "gm.csv"),
             "--min-features", "10"], ["gm.csv", "is_ntc", "non-targeting control"])


def guide_map_control_not_flagged(run, tmp):
    gm = pd.read_csv(run / "simulate" / "guide_map.csv")
    gm["is_ntc"] = False
    gm.to_csv(tmp / "gm.csv", index=False)
    row = int(np.flatnonzero(gm["gene_name"] == "NTC")[0]) + 1
    return (["qc", "--input", str(run / "validate" / "samplesheet.valid.csv"), "--guide-map", str(tmp / "gm.csv"),
             "--min-features", "10"], ["gm.csv", f"row {row}, field 'is_ntc'", "'NTC'"])


def filters_leave_no_gene(run, tmp):
    return (["qc", "--input", str(run / "validate" / "samplesheet.valid.csv"), "--guide-map",
             str(run / "simulate" / "guide_map.csv"), "--min-features", "10", "--min-cells", "100000"],
            ["min_cells=100000", "no gene"])


def duplicate_barcodes(run, tmp):
    sheet = pd.read_csv(run / "validate" / "samplesheet.valid.csv")
    a = ad.read_h5ad(sheet["counts"][0])
    names = a.obs_names.tolist()
    names[1] = names[0]
    a.obs_names = names
    a.write_h5ad(tmp / "dup.h5ad")
    path = _sheet(run, tmp, lambda s: s.assign(counts=[str(tmp / "dup.h5ad"), *s["counts"][1:]]))
    return (["qc", "--input", path, "--guide-map", str(run / "simulate" / "guide_map.csv"), "--min-features", "10"],
            ["dup.h5ad", names[0], "barcode"])


def header_only_samplesheet(run, tmp):
    (tmp / "sheet.csv").write_text("sample,counts,batch,day,replicate\n")
    return ["validate", "--input", str(tmp / "sheet.csv")], ["sheet.csv", "no sample rows"]


def no_cell_carries_a_guide(run, tmp):
    a = ad.read_h5ad(run / "qc" / "cells.h5ad")
    a.obsm["guides"] = a.obsm["guides"] * 0
    a.write_h5ad(tmp / "cells.h5ad")
    return ["fate-fit", "--input", str(tmp / "cells.h5ad"), *FIT], ["cells.h5ad", "obsm['guides']", "no cell carries"]


def partial_fate_probabilities(run, tmp):
    a = ad.read_h5ad(run / "qc" / "cells.h5ad")
    a.obsm["fate_probs"][: a.n_obs // 2] = np.nan
    a.write_h5ad(tmp / "cells.h5ad")
    return (["fate-fit", "--input", str(tmp / "cells.h5ad"), *FIT],
            ["cells.h5ad", "obsm['fate_probs']", "--missing-fate-probs drop"])


def _daywise(run, tmp, edit) -> str:
    table = pd.read_csv(run / "fate" / "gene_daywise_for_mash.csv", float_precision="round_trip")
    edit(table).to_csv(tmp / "daywise.csv", index=False)
    return str(tmp / "daywise.csv")


def mash_one_effect(run, tmp):
    return ["mash", "--input", _daywise(run, tmp, lambda t: t.head(1))], ["daywise.csv", "1 effect row", "--fixg-fit"]


def mash_huge_effect(run, tmp):
    def edit(t):
        t.loc[3, "betahat_d1"] = 1e300
        return t
    return ["mash", "--input", _daywise(run, tmp, edit)], ["daywise.csv", "row 4", "'betahat_d1'"]


def mash_vanishing_se(run, tmp):
    def edit(t):
        t.loc[5, "se_d0"] = 1e-300
        return t
    return ["mash", "--input", _daywise(run, tmp, edit)], ["daywise.csv", "row 6", "'se_d0'"]


def mash_grid_too_wide(run, tmp):
    def edit(t):
        t.loc[2, "se_d0"] = 1e-100
        return t
    return ["mash", "--input", _daywise(run, tmp, edit)], ["daywise.csv", "grid", "row 3", "day d0"]


def _fixg(run, tmp, edit) -> list[str]:
    fit = json.loads((run / "mash" / "mash_gene_conservative_fit.json").read_text())
    edit(fit)
    (tmp / "fit.json").write_text(json.dumps(fit))
    return ["mash", "--input", str(run / "fate" / "gene_daywise_for_mash.csv"), "--fixg-fit", str(tmp / "fit.json")]


def fixg_nan_grid(run, tmp):
    return _fixg(run, tmp, lambda f: f["grid"].__setitem__(0, float("nan"))), ["fit.json", "'grid'"]


def fixg_negative_weight(run, tmp):
    return _fixg(run, tmp, lambda f: f["pi"].__setitem__(next(iter(f["pi"])), -0.1)), ["fit.json", "'pi'", "non-negative"]


def fixg_short_weights(run, tmp):
    return _fixg(run, tmp, lambda f: f.__setitem__("pi", dict(list(f["pi"].items())[:3]))), ["fit.json", "'pi'", "has 3"]


def fixg_zero_v(run, tmp):
    return _fixg(run, tmp, lambda f: f.__setitem__("V", [[0.0] * len(f["V"])] * len(f["V"]))), ["fit.json", "'V'", "positive definite"]


def integrate_without_genes(run, tmp):
    a = ad.read_h5ad(run / "qc" / "cells.h5ad")
    a[:, :1].copy().write_h5ad(tmp / "cells.h5ad")
    return ["integrate", "--input", str(tmp / "cells.h5ad")], ["cells.h5ad", "1 genes"]


@dataclass(frozen=True)
class Case:
    make: Callable
    stage_folder: str


CASES = [Case(f, folder) for f, folder in (
    (guide_map_without_controls, "qc"), (guide_map_control_not_flagged, "qc"), (filters_leave_no_gene, "qc"),
    (duplicate_barcodes, "qc"), (header_only_samplesheet, "validate"), (no_cell_carries_a_guide, "fate"),
    (partial_fate_probabilities, "fate"), (mash_one_effect, "mash"), (mash_huge_effect, "mash"),
    (mash_vanishing_se, "mash"), (mash_grid_too_wide, "mash"), (fixg_nan_grid, "mash"), (fixg_negative_weight, "mash"),
    (fixg_short_weights, "mash"), (fixg_zero_v, "mash"), (integrate_without_genes, "integrate"),
)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.make.__name__)
def test_bad_input_is_refused_cleanly(case: Case, run: Path, tmp_path):
    args, expected = case.make(run, tmp_path)
    # the outdir holds an earlier good run of the stage: it must come out unchanged
    outdir = tmp_path / "results" / case.stage_folder
    outdir.mkdir(parents=True)
    (outdir / "earlier_output.csv").write_text("kept\n")
    before = _snapshot(outdir)
    res = _invoke([*args, "--outdir", str(outdir)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), \
        f"{case.make.__name__}: exit {res.exit_code}, {type(res.exception).__name__}: {res.exception}\n{res.output}"
    assert "Traceback" not in res.output
    for text in expected:
        assert text in res.output, f"{case.make.__name__}: {text!r} not in the error:\n{res.output}"
    assert _snapshot(outdir) == before
    assert [p.name for p in outdir.parent.iterdir()] == [case.stage_folder], "temporary folders left behind"


def test_partial_fate_probabilities_can_be_dropped(run, tmp_path):
    """The recovery the error names: --missing-fate-probs drop fits the cells that have fate probabilities."""
    args, _ = partial_fate_probabilities(run, tmp_path)
    res = _invoke([*args, "--outdir", str(tmp_path / "fate"), "--missing-fate-probs", "drop"])
    assert res.exit_code == 0, res.output
    n_obs = ad.read_h5ad(run / "qc" / "cells.h5ad").n_obs
    assert json.loads((tmp_path / "fate" / "fit_summary.json").read_text())["n_cells"] <= n_obs - n_obs // 2


def test_one_effect_is_shrunk_with_a_saved_fit(run, tmp_path):
    """mash on one row is refused for fitting, but works with the prior of a larger table (--fixg-fit)."""
    res = _invoke(["mash", "--input", _daywise(run, tmp_path, lambda t: t.head(1)), "--fixg-fit",
                   str(run / "mash" / "mash_gene_conservative_fit.json"), "--outdir", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "m" / "mash_gene_conservative.csv")
    full = pd.read_csv(run / "mash" / "mash_gene_conservative.csv")
    pd.testing.assert_frame_equal(table, full.head(1))


def test_a_byte_order_mark_is_not_part_of_the_header(run, tmp_path):
    text = (run / "validate" / "samplesheet.valid.csv").read_text()
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    res = _invoke(["validate", "--input", str(tmp_path / "bom.csv"), "--outdir", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output


def test_a_stage_killed_mid_run_leaves_nothing_the_next_run_keeps(tmp_path):
    """SIGKILL inside a stage's staged output: the half-written temporary folder stays (nothing can clean up
    after kill -9) until the next run of the stage removes it; the outdir is never touched."""
    script = ("import os, signal\nfrom fatescope.io.outputs import staged_output\n"
              f"with staged_output({str(tmp_path / 'qc')!r}, 'qc', {{}}) as tmp:\n"
              "    (tmp / 'cells.h5ad').write_bytes(b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert res.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".qc.qc.") and not (tmp_path / "qc").exists()
    # a live process's folder (a concurrent run) is not touched
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".qc.qc.{sleeper.pid}.abcd"
        live.mkdir()
        from fatescope.io.outputs import staged_output
        with staged_output(tmp_path / "qc", "qc", {}) as tmp:
            (tmp / "cells.h5ad").write_bytes(b"whole")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["qc", live.name])
        assert (tmp_path / "qc" / "cells.h5ad").read_bytes() == b"whole"
    finally:
        sleeper.kill()
        sleeper.wait()
    os.rmdir(live)


UNREADABLE = {"missing": None, "empty": b"", "text": b"a,b\n1,2\n", "binary": b"\x89HDF-not\x00really", "parquet": b"PAR1junk"}
STAGES = ("validate", "qc", "ambient", "integrate", "embed", "grn", "modules", "prune", "aucell", "fate-fit", "mash",
          "aggregate", "rank", "eval-recovery", "diagnostics")
# stages whose file input is one of several options, none required: each way of giving it
FILE_INPUT_CHOICES = {"qc": (("--input",), ("--merge",), ("--input", "--load-only")), "mash": (("--input",), ("--gather",)),
                      "aucell": (("--cells", "--regulons"), ("--cells", "--regulons", "--gather"))}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_refuses_unreadable_files(stage, tmp_path):
    """Each stage given a missing, empty, wrong-format or corrupt file for every required input: a clean error
    naming the file, no traceback, no output folder."""
    command = importlib.import_module(f"fatescope.cli.{COMMANDS[stage]}").command
    required = [p.opts[0] for p in command.params if isinstance(p, click.Option) and p.required]
    for (kind, content), options in itertools.product(UNREADABLE.items(), FILE_INPUT_CHOICES.get(stage, [required])):
        path = tmp_path / f"{kind}.dat"
        if content is not None:
            path.write_bytes(content)
        given = [part for opt in options for part in ((opt,) if opt == "--load-only" else (opt, str(path)))]
        res = _invoke([stage, *given, "--outdir", str(tmp_path / "out")])
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), f"{stage} {kind}: {res.exception!r}\n{res.output}"
        assert str(path) in res.output and "Traceback" not in res.output, f"{stage} {kind}:\n{res.output}"
        assert not (tmp_path / "out").exists()
