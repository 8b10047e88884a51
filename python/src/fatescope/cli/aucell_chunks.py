"""The split aucell stage (Nextflow, ``aucell_chunk_size``): one task per chunk of cells, one gather task.

1. ``--chunk-size N --chunk K``: the AUC of cells [K N, (K + 1) N) of the backed --cells (only the blocks holding
   them are read), as ``aucell_chunk.parquet`` (cell + one float64 column per regulon, as aucell.parquet) and
   ``aucell_chunk.json`` (the span, the settings, the regulons, the genes' digest, device and seconds).
2. ``--gather <chunk folders...>`` (same --cells, --regulons and settings): the standard outputs. Otsu
   binarisation needs every cell, so it happens here.

Cells are scored in the batches of the whole pass (regulons/aucell.py ``score_cells``) and the tie-breaking gene
shuffle is drawn once per run from the seed, so the outputs are the one-task run's to the bit.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from anndata import AnnData

from ..errors import InputError
from ..io.chunks import check_cover, chunk_folders, chunk_span, read_json
from ..io.outputs import staged_output
from ..logs import get_logger
from ..tl._aucell import aucell_cells, aucell_from_scores

log = get_logger(__name__)
CHUNK, CHUNK_TABLE, FORMAT = "aucell_chunk.json", "aucell_chunk.parquet", "fatescope-aucell-chunk/1"
SCORING = ("layer", "k", "auc_threshold", "seed", "weighted")  # the settings that change the scores


def genes_digest(adata: AnnData) -> str:
    return hashlib.sha256("\n".join(map(str, adata.var_names)).encode()).hexdigest()


def score_chunk(adata: AnnData, table: pd.DataFrame, outdir: str, chunk: int, chunk_size: int, settings: dict,
                batch_size: int, device: str, packages: list[str]) -> Path:
    """One chunk task: score cells [chunk x chunk_size, ...) and write the chunk files."""
    start, stop = chunk_span(adata.n_obs, chunk_size, chunk, "cells", settings["cells"])
    scoring = {k: settings[k] for k in SCORING}
    frame, run = aucell_cells(adata, table, start, stop, batch_size=batch_size, device=device, **scoring)
    record = {"format": FORMAT, "chunk": chunk, "chunk_size": chunk_size, "start": start, "stop": stop,
              "n_cells": int(adata.n_obs), "genes_sha256": genes_digest(adata), "settings": scoring,
              "regulons": list(frame.columns), **run}
    auc = frame.to_numpy()
    # versions.yml: FATESCOPE:AUCELL_CHUNK, the Nextflow process of this step
    with staged_output(outdir, "aucell-chunk", {**settings, "chunk": chunk, "chunk_size": chunk_size}, packages) as tmp:
        columns = {"cell": pa.array(frame.index.to_numpy(str)), **{n: pa.array(auc[:, j]) for j, n in enumerate(frame.columns)}}
        pq.write_table(pa.table(columns), tmp / CHUNK_TABLE)
        (tmp / CHUNK).write_text(json.dumps(record, indent=1))
    log.info("aucell: chunk %d (cells %d..%d) written to %s", chunk, start, stop - 1, outdir)
    return Path(outdir) / CHUNK_TABLE


def _check(c: dict, adata: AnnData, scoring: dict, genes: str) -> None:
    where = f"{c['path']}: chunk {c['chunk']}"
    if c["n_cells"] != adata.n_obs or c["genes_sha256"] != genes:
        raise InputError(f"{where} was scored on a different input ({c['n_cells']} cells"
                         f"{'' if c['genes_sha256'] == genes else ', other genes'}); --cells has {adata.n_obs} cells")
    differ = {k: (c["settings"].get(k), v) for k, v in scoring.items() if c["settings"].get(k) != v}
    if differ:
        raise InputError(f"{where} was scored with other settings than given here: "
                         + ", ".join(f"{k} {a!r} (chunk) vs {b!r}" for k, (a, b) in differ.items()))


def gather_scores(paths: list[str], adata: AnnData, table: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The chunks' scores of every cell, checked (coverage, input, settings, regulons) and put in order; ``adata``
    annotated as ``aucell`` does. Returns the AUC frame."""
    scoring = {k: settings[k] for k in SCORING}
    genes = genes_digest(adata)
    chunks = []
    for folder in chunk_folders(paths, (CHUNK,)):
        chunks.append({**read_json(folder / CHUNK, FORMAT, "an aucell --chunk record"), "path": folder})
    for c in chunks:
        _check(c, adata, scoring, genes)
    chunks = check_cover(chunks, adata.n_obs, "cells", f"aucell gather of {settings['cells']}")
    names = chunks[0]["regulons"]
    auc = np.empty((adata.n_obs, len(names)), dtype=np.float64, order="F")
    for c in chunks:
        part = pd.read_parquet(c["path"] / CHUNK_TABLE)
        if list(part.columns) != ["cell", *names] or len(part) != c["stop"] - c["start"]:
            raise InputError(f"{c['path'] / CHUNK_TABLE}: expected {c['stop'] - c['start']} rows and columns cell, "
                             f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''} (the first chunk's regulons)")
        cells = adata.obs_names[c["start"]:c["stop"]]
        if not np.array_equal(part["cell"].to_numpy(str), cells.to_numpy(str)):
            raise InputError(f"{c['path']}: chunk {c['chunk']} holds other cells than {settings['cells']} at "
                             f"{c['start']}..{c['stop'] - 1}: a chunk of a different input")
        auc[c["start"]:c["stop"]] = part.iloc[:, 1:].to_numpy(np.float64)
    devices = sorted({c["device"] for c in chunks})
    if len(devices) > 1:
        log.warning("aucell gather: chunks scored on different devices (%s)", ", ".join(devices))
    frame = aucell_from_scores(adata, table, auc, k=scoring["k"], auc_threshold=scoring["auc_threshold"],
                               weighted=scoring["weighted"], binarize_auc=settings["binarize_auc"],
                               device=",".join(devices), seconds=sum(c["seconds"] for c in chunks))
    if list(frame.columns) != names:
        raise InputError(f"the chunks scored regulons {names[:5]}..., --regulons gives {list(frame.columns)[:5]}...")
    log.info("aucell gather: %d chunks, %d cells x %d regulons", len(chunks), adata.n_obs, len(names))
    return frame
