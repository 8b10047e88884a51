"""fatescope report on a small real run: every section, embedded PNGs, numbers equal to their source files,
skipped stages shown as not run, and bad input."""
from __future__ import annotations

import base64
import json
import re

import anndata as ad
import pandas as pd
import pytest
from click.testing import CliRunner
from report_results import full_run

from fatescope.cli import main
from fatescope.cli.report import run as report_run
from fatescope.errors import InputError
from fatescope.report.page import SECTION_IDS
from fatescope.regulons.activity import cluster_means as _cluster_means, zscore_rows as _zscore_rows
from fatescope.report.tables import fmt

IMG = re.compile(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"')


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return full_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    page = report_run(str(results), outdir=str(out), title="Tiny <run>", top_hits=5)
    return page.read_text(), json.loads((out / "report_summary.json").read_text())


def section(page: str, sid: str) -> str:
    return re.search(rf'<section id="{sid}"[^>]*>(.*?)</section>', page, re.S).group(1)


def test_every_section_ran_with_png_figures_and_nothing_external(report):
    page, summary = report
    assert summary["sections"] == list(SECTION_IDS) and summary["skipped"] == []
    for sid in SECTION_IDS:
        assert f'<section id="{sid}" data-ran="true">' in page
    images = IMG.findall(page)
    assert len(images) >= 6  # qc, umap, regulon heatmap, fate heatmap, volcano, mash modes
    for b64, alt in images:
        assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n") and alt.strip()
    for sid in ("qc", "embedding", "regulons", "fate-probs", "fate-effects", "volcano", "mash-modes"):
        assert "<img " in section(page, sid), sid
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page and "<script src" not in page
    assert "<title>Tiny &lt;run&gt;</title>" in page  # the title is escaped


def test_summary_numbers_equal_their_source_files(results, report):
    _, s = report
    rec = json.loads((results / "eval-recovery" / "recovery_metrics.json").read_text())
    assert s["recovery"]["hits"]["anyday"]["precision"] == rec["hits"]["anyday"]["precision"]
    assert s["recovery"]["hits"]["daywise"]["recall"] == rec["hits"]["daywise"]["recall"]
    assert s["regulon_recovery"]["target_precision"] == rec["regulons"]["target_precision"]
    metrics = json.loads((results / "embed" / "metrics.json").read_text())
    assert s["integration"]["ilisi"] == metrics["ilisi"] and s["integration"]["ari"] == metrics["ari"]
    diag = json.loads((results / "diagnostics" / "diagnostics.json").read_text())
    assert s["diagnostics"]["cross_entropy_full"] == diag["held_out"]["cross_entropy_full"]
    assert s["diagnostics"]["hits_permuted"] == diag["hits"]["permuted"]
    hits = pd.read_csv(results / "rank" / "hits_ranked.csv")
    assert s["hits"]["anyday"] == int(hits["hit_anyday"].sum())
    assert s["hits"]["top"] == list(hits.sort_values("rank").query("hit_anyday")["gene"].head(5))
    mash = pd.read_csv(results / "mash" / "mash_gene_conservative.csv")
    assert s["hits"]["lfsr_below_thresh"]["d1"] == int((mash["lfsr_d1"] < 0.05).sum())
    assert s["qc"]["cells_after"] == int(pd.read_csv(results / "qc" / "qc_per_sample.csv")["cells_after"].sum())
    obs = ad.read_h5ad(results / "embed" / "cells.h5ad").obs
    auc = pd.read_parquet(results / "aucell" / "aucell.parquet")
    assert s["regulons"] == {"n_regulons": auc.shape[1] - 1, "n_cells": len(auc), "n_cells_matched": len(obs),
                             "n_clusters": obs["leiden"].nunique()}
    comp = pd.read_csv(results / "rank" / "mash_mode_comparison.csv").set_index("scope")
    assert s["mash_modes"]["calls_conservative"] == comp.loc["anyday", "calls_conservative"]


def test_tables_show_rounded_numbers_and_sort_keys(report):
    page, _ = report
    recovery = section(page, "recovery")
    assert '<table class="sortable" id="recovery-hits">' in recovery and "click to sort" in recovery
    cells = re.findall(r'<td data-sort="([^"]*)" class=num>([^<]*)</td>', page)
    assert cells and all(len(text.replace("-", "").replace(".", "").lstrip("0")) <= 6 or "e" in text for _, text in cells)
    assert fmt(0.123456789) == "0.1235" and fmt(3.0) == "3" and fmt(1.2e-189) == "1.2e-189" and fmt(float("nan")) == ""


def test_cluster_zscores_are_per_regulon():
    auc = pd.DataFrame({"R1": [0.1, 0.3, 0.5, 0.7], "R2": [0.2, 0.2, 0.9, 0.9]}, index=list("abcd"))
    means = _cluster_means(auc, pd.Series(["10", "2", "2", "10"], index=list("abcd")))
    assert list(means.columns) == ["2", "10"]  # clusters in natural order
    assert means.loc["R1"].tolist() == pytest.approx([0.4, 0.4]) and means.loc["R2"].tolist() == pytest.approx([0.55, 0.55])
    z = _zscore_rows(pd.DataFrame({"0": [0.1, 0.5], "1": [0.3, 0.5]}, index=["R1", "R2"]))
    assert z.loc["R1"].tolist() == pytest.approx([-1, 1]) and z.loc["R2"].tolist() == [0, 0]  # constant row: 0, not NaN


def test_skipped_stages_are_not_run_sections(results, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("qc", "mash", "rank"):  # integration, regulons, diagnostics and eval-recovery skipped
        (partial / name).symlink_to(results / name)
    r = CliRunner().invoke(main, ["report", "--results", str(partial), "--outdir", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "report.html").read_text()
    s = json.loads((tmp_path / "rep" / "report_summary.json").read_text())
    skipped = ["embedding", "integration", "regulons", "fate-probs", "diagnostics", "recovery"]
    assert s["skipped"] == skipped and s["sections"] == [i for i in SECTION_IDS if i not in skipped]
    for sid in skipped:
        assert f'<section id="{sid}" data-ran="false">' in page and "Not run:" in section(page, sid)
    assert "no simulated truth" in section(page, "recovery")
    assert s["recovery"] is None and s["regulon_recovery"] is None and s["integration"] is None
    assert s["hits"]["anyday"] == int(pd.read_csv(results / "rank" / "hits_ranked.csv")["hit_anyday"].sum())


def test_missing_or_empty_results_is_an_input_error(tmp_path):
    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", "--results", str(tmp_path / "nope"), "--outdir", str(out)])
    assert r.exit_code == 1 and "results folder not found" in r.output and not out.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="none of the known stage folders"):
        report_run(str(tmp_path / "empty"), outdir=str(out))
    assert not out.exists()


def test_unreadable_or_malformed_file_names_the_file(results, tmp_path):
    (tmp_path / "diagnostics").mkdir()
    (tmp_path / "diagnostics" / "diagnostics.json").write_text("{not json")
    with pytest.raises(InputError, match=r"diagnostics\.json: could not be read"):
        report_run(str(tmp_path), outdir=str(tmp_path / "rep"))
    (tmp_path / "diagnostics" / "diagnostics.json").unlink()
    (tmp_path / "rank").mkdir()
    pd.read_csv(results / "rank" / "hits_ranked.csv").drop(columns="hit_anyday").to_csv(tmp_path / "rank" / "hits_ranked.csv")
    with pytest.raises(InputError, match=r"hits_ranked\.csv: could not be read .*missing column\(s\) hit_anyday"):
        report_run(str(tmp_path), outdir=str(tmp_path / "rep"))
    assert not (tmp_path / "rep").exists()
