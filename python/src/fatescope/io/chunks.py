"""Scatter/gather bookkeeping of the stages Nextflow splits into chunk tasks (aucell over cells, mash posteriors
over effects): chunk K of size N covers items [K N, min((K + 1) N, n)); a gather takes the chunks in any order,
puts them in chunk order and checks that they cover every item exactly once."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError


def n_chunks(n: int, size: int) -> int:
    return -(-n // size)


def chunk_span(n: int, size: int, index: int, what: str, source: str) -> tuple[int, int]:
    """(start, stop) of chunk ``index``; an index past the end is an InputError naming the valid ones."""
    if size < 1 or index < 0:
        raise InputError(f"chunk size must be >= 1 and the chunk index >= 0, got size {size}, index {index}")
    if index >= n_chunks(n, size):
        raise InputError(f"{source}: chunk {index} of {size} {what} would start at {index * size}, past the {n} {what} "
                         f"(chunks 0..{n_chunks(n, size) - 1})")
    return index * size, min((index + 1) * size, n)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, fmt: str, expected: str) -> dict:
    """A JSON record of ``format`` ``fmt``, else an InputError naming the file."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found (expected {expected})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc}); expected {expected}") from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise InputError(f"{path}: not {expected} (format {fmt!r} expected)")
    return record


def check_cover(chunks: list[dict], n: int, what: str, source: str) -> list[dict]:
    """``chunks`` (each with chunk, chunk_size, start, stop and path) in chunk order, after checking that they
    cover items 0..n-1 exactly once; else an InputError naming the duplicate, missing or foreign chunks."""
    if not chunks:
        raise InputError(f"{source}: no chunks given")
    sizes = sorted({c["chunk_size"] for c in chunks})
    if len(sizes) > 1:
        raise InputError(f"{source}: chunks of different sizes {sizes} overlap or leave gaps; "
                         "run every chunk with the same chunk size")
    size, expected = sizes[0], n_chunks(n, sizes[0])
    by_index: dict[int, list[dict]] = {}
    for c in chunks:
        by_index.setdefault(c["chunk"], []).append(c)
    twice = {k: v for k, v in by_index.items() if len(v) > 1}
    if twice:
        k, v = min(twice.items())
        raise InputError(f"{source}: chunk {k} ({what} {k * size}..{min((k + 1) * size, n) - 1}) is given "
                         f"{len(v)} times ({', '.join(str(c['path']) for c in v)}): the chunks overlap")
    for k, (c,) in sorted(by_index.items()):
        span = (k * size, min((k + 1) * size, n))
        if k >= expected or (c["start"], c["stop"]) != span:
            raise InputError(f"{source}: {c['path']} holds {what} {c['start']}..{c['stop'] - 1} as chunk {k} of size "
                             f"{size}, which does not fit the {n} {what} here (chunks 0..{expected - 1}): a chunk of "
                             "a different input")
    missing = [k for k in range(expected) if k not in by_index]
    if missing:
        spans = ", ".join(f"{k} ({what} {k * size}..{min((k + 1) * size, n) - 1})" for k in missing[:10])
        raise InputError(f"{source}: missing chunk(s) {spans}{' ...' if len(missing) > 10 else ''} of the {n} {what} "
                         f"in chunks of {size}")
    return [by_index[k][0] for k in range(expected)]


def chunk_folders(paths, markers: tuple[str, ...]) -> list[Path]:
    """The chunk folders of ``paths`` (a folder, or a file in it), each holding one of the ``markers`` files;
    else an InputError naming the path as given."""
    out = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        if not p.exists() or not any((folder / m).is_file() for m in markers):
            raise InputError(f"{p}: {'not found' if not p.exists() else 'not a chunk folder'} "
                             f"(expected a chunk folder holding {' or '.join(markers)})")
        out.append(folder)
    return out
