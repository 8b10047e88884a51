"""Sections about the run and the cells: summary, QC, embedding, integration, regulons."""
from __future__ import annotations

import base64
from pathlib import PurePath

import numpy as np
import pandas as pd

from ..regulons.activity import cluster_means, most_varying, zscore_rows
from . import figures
from .collect import RunData
from .section import Section, details, heading, image, not_run, para
from .tables import key_values, table

MAX_REGULONS_SHOWN = 40  # heatmap rows: the regulons that vary most across clusters


def _numeric(d: dict) -> dict:
    """The scalar numbers of a flat mapping (for report_summary.json)."""
    return {k: (int(v) if isinstance(v, (bool, np.bool_)) else float(v) if not isinstance(v, (int, np.integer)) else int(v))
            for k, v in d.items() if isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))}


def _versions_table(versions: dict) -> pd.DataFrame:
    """One row per tool and version, with the stages that used it."""
    rows = {}
    for process, tools in versions.items():
        for tool, ver in (tools or {}).items():
            rows.setdefault((tool, str(ver)), []).append(str(process).split(":")[-1].lower())
    return pd.DataFrame([(t, v, ", ".join(p)) for (t, v), p in sorted(rows.items())], columns=["tool", "version", "stages"])


def _trace_table(trace: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("name", "status", "exit", "realtime", "%cpu", "peak_rss") if c in trace.columns]
    return trace[cols].rename(columns={"name": "stage", "peak_rss": "peak memory", "realtime": "time"})


def summary(data: RunData) -> Section:
    parts = [para(f"Results folder: {data.root}"),
             para(f"Stage folders found: {', '.join(data.folders)}")]
    numbers: dict = {"stages_found": list(data.folders)}
    if data.samplesheet is not None:
        sheet = data.samplesheet.copy()
        for col in sheet.columns:  # file paths: the name is what a reader needs; the full path is in params
            if sheet[col].astype(str).str.contains("/").any():
                sheet[col] = [PurePath(str(v)).name if isinstance(v, str) else v for v in sheet[col]]
        parts += [heading("Samples"), table(sheet, table_id="samplesheet")]
        numbers["n_samples"] = int(len(sheet))
    if data.trace is not None:
        parts += [heading("Stage timings (pipeline_info/trace.tsv)"), table(_trace_table(data.trace), table_id="timings")]
    if data.versions:
        parts += [heading("Software versions"), table(_versions_table(data.versions), table_id="versions")]
    if data.params:
        flat = {k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in sorted(data.params.items())}
        parts.append(details(f"Parameters ({len(flat)})", key_values(flat, key="parameter")))
    else:
        parts.append(para("No pipeline_info/params.yaml: stages were run one by one; see each folder's params.yaml.", "note"))
    return Section("summary", "Run summary", "".join(parts), numbers=numbers)


def qc(data: RunData) -> Section:
    if data.qc is None:
        return not_run("qc", "Quality control", "qc/qc_per_sample.csv is absent")
    q = data.qc
    body = table(q, table_id="qc-table") + image(figures.qc_bars(q), "Bar plots of cells per sample before and after "
                                                 "QC filters, and median genes per cell")
    numbers = {k: int(q[k].sum()) for k in ("cells_before", "cells_after") if k in q}
    numbers["n_samples"] = int(len(q))
    return Section("qc", "Quality control", body, numbers=numbers)


def embedding(data: RunData) -> Section:
    emb = data.embedding
    if emb is None:
        return not_run("embedding", "Embedding and clusters", "embed/ is absent (integration/embedding skipped)")
    numbers = {"n_cells": int(len(emb.obs))}
    if "leiden" in emb.obs:
        numbers["n_clusters"] = int(emb.obs["leiden"].nunique())
    if len(emb.umap) and len(emb.obs.columns):
        body = image(figures.umap_panels(emb.umap, emb.obs),
                     f"UMAP of {len(emb.umap)} cells coloured by {', '.join(emb.obs.columns)}")
    elif emb.pngs:
        body = "".join(image(base64.b64encode(png).decode("ascii"), f"UMAP coloured by {key}",
                             f"embed/umap_{key}.png") for key, png in emb.pngs.items())
    else:
        return not_run("embedding", "Embedding and clusters", "embed/cells.h5ad has no X_umap and there are no UMAP plots")
    if "leiden" in emb.obs:
        sizes = emb.obs["leiden"].astype(str).value_counts().rename_axis("cluster").reset_index(name="cells")
        body += details(f"Cluster sizes ({len(sizes)} Leiden clusters)", table(sizes, table_id="cluster-sizes"))
    return Section("embedding", "Embedding and clusters", body, numbers=numbers)


def integration(data: RunData) -> Section:
    if data.embed_metrics is None and data.integrate_info is None:
        return not_run("integration", "Integration", "integrate/ and embed/metrics.json are absent")
    body, numbers = "", {}
    if data.embed_metrics is not None:
        m = data.embed_metrics
        body += para("Batch mixing (iLISI, batch ASW, entropy: higher is better mixed) and conservation of "
                     "the cell labels (cLISI, label ASW, ARI, NMI), as computed by fatescope embed --assess.")
        body += key_values({k: v for k, v in m.items() if v is not None}, key="metric", caption="embed/metrics.json")
        numbers = _numeric(m)
    else:
        body += para("embed --assess was not run: no integration metrics.", "note")
    if data.integrate_info:
        info = {k: v for k, v in data.integrate_info.items() if isinstance(v, (str, int, float, bool))}
        body += details("Integration settings (integrate/integrate.json)", key_values(info, key="setting"))
    return Section("integration", "Integration", body, numbers=numbers)


def regulons(data: RunData, top: int) -> Section:
    title = "Regulon activity"
    if data.aucell is None:
        return not_run("regulons", title, "aucell/aucell.parquet is absent (regulon stages skipped)")
    auc = data.aucell
    numbers = {"n_regulons": int(auc.shape[1]), "n_cells": int(auc.shape[0])}
    clusters = data.embedding.obs["leiden"] if data.embedding is not None and "leiden" in data.embedding.obs else None
    body = ""
    if clusters is None:
        body += para("No Leiden clusters (embed/ absent): the heatmap per cluster needs them.", "note")
        stats = pd.DataFrame({"regulon": auc.columns, "mean AUC": auc.mean().to_numpy(), "sd AUC": auc.std().to_numpy()})
        stats = stats.sort_values("sd AUC", ascending=False)
    else:
        shared = auc.index.intersection(clusters.index)
        numbers["n_cells_matched"] = int(len(shared))
        if len(shared) == 0:
            body += para("The cell ids of aucell.parquet and embed/cells.h5ad do not overlap: no per-cluster view.", "note")
            stats = pd.DataFrame({"regulon": auc.columns, "mean AUC": auc.mean().to_numpy()})
        else:
            if len(shared) < len(auc):
                body += para(f"{len(shared)} of {len(auc)} AUCell cells have a cluster; the rest are left out.", "note")
            means = cluster_means(auc.loc[shared], clusters.loc[shared])
            z = zscore_rows(means)
            spread = means.max(axis=1) - means.min(axis=1)
            shown = most_varying(means, MAX_REGULONS_SHOWN)
            body += image(figures.heatmap(shown, f"Mean AUCell per Leiden cluster ({len(shown)} of {len(z)} regulons)",
                                          "z-score across clusters", "Leiden cluster"),
                          "Heatmap of mean AUCell per Leiden cluster, regulons by clusters, z-scored per regulon")
            stats = pd.DataFrame({"regulon": means.index, "mean AUC": auc.loc[shared].mean().reindex(means.index).to_numpy(),
                                  "top cluster": means.idxmax(axis=1).to_numpy(), "z in top cluster": z.max(axis=1).to_numpy(),
                                  "AUC range across clusters": spread.to_numpy()})
            stats = stats.sort_values("AUC range across clusters", ascending=False)
            numbers["n_clusters"] = int(means.shape[1])
    info = data.regulon_info
    if info is not None and "regulon" in info:
        extra = [c for c in info.columns if c != "regulon" and pd.api.types.is_numeric_dtype(info[c])][:3]
        stats = stats.merge(info[["regulon", *extra]], on="regulon", how="left")
    body += heading(f"Top {min(top, len(stats))} regulons") + table(stats.head(top), table_id="regulon-table")
    return Section("regulons", title, body, numbers=numbers)

