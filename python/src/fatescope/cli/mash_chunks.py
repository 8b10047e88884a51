"""The split mash stage (Nextflow, ``mash_effect_chunk_size``): fit, posteriors per effect chunk, gather.

1. ``--fit-only --effect-chunk-size N``: the ``*_fit.json`` files of every table and mode, as the one-task run
   writes them, and the plan: ``mash_chunks.csv`` (one row per chunk task: kind, mode, chunk, start, stop, input,
   fit) and ``mash_chunks.json`` (what the gather checks: tables and their SHA-256, fits and theirs).
2. ``--input <table> --fixg-fit <fit> --effect-chunk-size N --effect-chunk K``: ``mash_chunk.csv`` (the posterior
   rows of effects [K N, (K + 1) N)) and ``mash_chunk.json`` (the span, the digests of the table and the fit, the
   per-effect log-likelihoods).
3. ``--gather <fit folder> <chunk folders...>``: ``mash_<kind>_<mode>.csv`` (the chunks' rows in order) and the
   fit files; a fit made on a random subset (``--fit-max-effects``) gets the log-likelihood of every effect, the
   exactly rounded sum of the chunks' per-effect values, as the one-task run computes it.

Posteriors are computed in batches fixed by the whole table (shrink/posterior.py), so every output is the
one-task run's, to the bit.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..io.chunks import check_cover, chunk_folders, n_chunks, read_json, sha256_file
from ..io.mash_tables import posterior_table
from ..io.outputs import staged_output
from ..logs import get_logger
from ..shrink.fit import MashFit

log = get_logger(__name__)
PLAN, PLAN_CSV, CHUNK, CHUNK_CSV = "mash_chunks.json", "mash_chunks.csv", "mash_chunk.json", "mash_chunk.csv"
PLAN_FORMAT, CHUNK_FORMAT = "fatescope-mash-plan/1", "fatescope-mash-chunk/1"


def write_plan(tmp: Path, outdir: str, fits: list[tuple], size: int, pi_thresh: float) -> list[Path]:
    """After ``--fit-only``: ``fits`` = (input path, table, mode, fit file name) in the one-task run's order."""
    tables, entries, rows = {}, [], []
    for path, table, mode, fit_name in fits:
        n = len(table.ids)
        tables.setdefault(table.kind, {"input": str(path), "sha256": sha256_file(path), "n_effects": n})
        entries.append({"kind": table.kind, "mode": mode, "fit": fit_name, "fit_sha256": sha256_file(tmp / fit_name),
                        "n_chunks": n_chunks(n, size)})
        rows += [{"kind": table.kind, "mode": mode, "chunk": k, "start": k * size, "stop": min((k + 1) * size, n),
                  "input": Path(path).name, "fit": fit_name} for k in range(n_chunks(n, size))]
    plan = {"format": PLAN_FORMAT, "effect_chunk_size": size, "pi_thresh": pi_thresh, "tables": tables, "fits": entries}
    (tmp / PLAN).write_text(json.dumps(plan, indent=1))
    pd.DataFrame(rows, columns=["kind", "mode", "chunk", "start", "stop", "input", "fit"]).to_csv(tmp / PLAN_CSV, index=False)
    log.info("mash: %d fits, %d posterior chunks of %d effects planned", len(entries), len(rows), size)
    return [Path(outdir) / e["fit"] for e in entries] + [Path(outdir) / PLAN_CSV]


def write_chunk(tmp: Path, outdir: str, path: str, table, res, fit_path: str, chunk: int, size: int,
                span: tuple[int, int], pi_thresh: float, device: str) -> Path:
    """After ``--effect-chunk``: the chunk's posterior rows and its record."""
    post = res.posterior
    posterior_table(res.ids, table.days, {"postmean": post.mean, "postsd": post.sd, "lfsr": post.lfsr}
                    ).to_csv(tmp / CHUNK_CSV, index=False, float_format="%.12g")
    record = {"format": CHUNK_FORMAT, "kind": table.kind, "mode": res.fit.info.get("mode", "fixg"), "chunk": chunk,
              "chunk_size": size, "start": span[0], "stop": span[1], "n_effects": len(table.ids),
              "input_sha256": sha256_file(path), "fit_sha256": sha256_file(fit_path), "pi_thresh": pi_thresh,
              "device": device, "loglik": [float(v) for v in res.effect_loglik]}
    (tmp / CHUNK).write_text(json.dumps(record))
    log.info("mash %s %s: chunk %d, effects %d..%d", table.kind, record["mode"], chunk, span[0], span[1] - 1)
    return Path(outdir) / CHUNK_CSV


def _sort_folders(paths: list[str]) -> tuple[Path, dict, list[dict]]:
    """(fit folder, its plan, chunk records with their folder as ``path``)."""
    plans, chunks = [], []
    for folder in chunk_folders(paths, (PLAN, CHUNK)):
        if (folder / PLAN).is_file():
            plans.append((folder, read_json(folder / PLAN, PLAN_FORMAT, "a mash --fit-only plan")))
        else:  # chunk_folders: it holds one of the two
            chunks.append({**read_json(folder / CHUNK, CHUNK_FORMAT, "a mash --effect-chunk record"), "path": folder})
    if len(plans) != 1:
        raise InputError(f"--gather needs exactly one mash --fit-only folder, got {len(plans)}"
                         f"{': ' + ', '.join(str(f) for f, _ in plans) if plans else ''}")
    return plans[0][0], plans[0][1], chunks


def _check_chunks(plan: dict, fit: dict, chunks: list[dict]) -> list[dict]:
    kind, mode, table = fit["kind"], fit["mode"], plan["tables"][fit["kind"]]
    for c in chunks:
        if c["input_sha256"] != table["sha256"]:
            raise InputError(f"{c['path']}: chunk {c['chunk']} of {kind}/{mode} was computed on a different input "
                             f"table than the fit's ({table['input']}, SHA-256 {table['sha256'][:12]}...)")
        if c["fit_sha256"] != fit["fit_sha256"]:
            raise InputError(f"{c['path']}: chunk {c['chunk']} of {kind}/{mode} was computed under a different fit "
                             f"than {fit['fit']}")
        if c["pi_thresh"] != plan["pi_thresh"]:
            raise InputError(f"{c['path']}: chunk {c['chunk']} used --pi-thresh {c['pi_thresh']}, the fit "
                             f"{plan['pi_thresh']}")
    if any(c["chunk_size"] != plan["effect_chunk_size"] for c in chunks):
        raise InputError(f"{kind}/{mode}: chunks of size {sorted({c['chunk_size'] for c in chunks})}, the plan has "
                         f"{plan['effect_chunk_size']}")
    return check_cover(chunks, table["n_effects"], "effects", f"mash gather {kind}/{mode}")


def gather(paths: list[str], outdir: str) -> list[Path]:
    """The standard mash outputs from a --fit-only folder and its --effect-chunk folders (any order)."""
    fit_dir, plan, chunks = _sort_folders(paths)
    planned = {(f["kind"], f["mode"]) for f in plan["fits"]}
    foreign = [c for c in chunks if (c["kind"], c["mode"]) not in planned]
    if foreign:
        c = foreign[0]
        raise InputError(f"{c['path']}: a chunk of {c['kind']}/{c['mode']}, which {fit_dir} has no fit for "
                         f"(fits: {', '.join(f'{k}/{m}' for k, m in sorted(planned))})")
    ordered = {(f["kind"], f["mode"]): _check_chunks(plan, f, [c for c in chunks if (c["kind"], c["mode"]) ==
                                                               (f["kind"], f["mode"])]) for f in plan["fits"]}
    devices = sorted({c.get("device", "?") for c in chunks})
    if len(devices) > 1:  # e.g. a CUDA task that ran out of memory and finished on the CPU: last-bit differences
        log.warning("mash gather: chunks computed on different devices (%s)", ", ".join(devices))
    params = {"gather": [str(p) for p in paths], "effect_chunk_size": plan["effect_chunk_size"]}
    written = []
    with staged_output(outdir, "mash", params, ["numpy", "scipy", "pandas", "torch"]) as tmp:
        for f in plan["fits"]:
            parts = ordered[(f["kind"], f["mode"])]
            csv_name = f"mash_{f['kind']}_{f['mode']}.csv"
            header = None
            with open(tmp / csv_name, "w", newline="") as out:
                for c in parts:
                    with open(c["path"] / CHUNK_CSV, newline="") as fh:
                        first = fh.readline()
                        if header is None:
                            header = first
                            out.write(first)
                        elif first != header:
                            raise InputError(f"{c['path'] / CHUNK_CSV}: columns differ from the other chunks'")
                        out.writelines(fh)
            text = (fit_dir / f["fit"]).read_text()
            fit = MashFit.from_json(text)
            if "fit_on" in fit.info:  # fitted on a subset: the log-likelihood is every effect's, from the chunks
                fit.loglik = math.fsum(v for c in parts for v in c["loglik"])
                text = fit.to_json()
            (tmp / f["fit"]).write_text(text)
            written.append(Path(outdir) / csv_name)
            log.info("mash gather %s %s: %d chunks, %d effects", f["kind"], f["mode"], len(parts),
                     plan["tables"][f["kind"]]["n_effects"])
    return written
