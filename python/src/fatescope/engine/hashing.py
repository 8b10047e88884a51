"""Content hashes of stage inputs and outputs, for --resume."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

SAMPLESHEET_PATH_COLUMNS = ("counts", "guides", "fate_probs")
_cache: dict[tuple[str, int, int], str] = {}


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, cached per (path, size, mtime) within a process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def hash_path(path: Path) -> str:
    """Hash of a file, or of a folder's relative file names and contents."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(hash_file(f).encode())
        return h.hexdigest()
    return hash_file(path)


def samplesheet_files(path: Path) -> list[Path]:
    """Data files a samplesheet points at (so a changed counts file invalidates its stages)."""
    table = pd.read_csv(path, dtype=str)
    return [Path(v) for col in SAMPLESHEET_PATH_COLUMNS if col in table for v in table[col].dropna()]


def fingerprint(inputs: dict[str, str | list[str] | tuple[str, ...] | None], params: dict,
                samplesheet_keys: tuple[str, ...] = ("input",)) -> str:
    """One hash over input contents (samplesheets followed into their files) and params. An
    input may be several paths (a repeated option such as mash's --input): hashed in order."""
    parts: dict[str, object] = {"params": params}
    for key, value in sorted(inputs.items()):
        if value is None:
            parts[key] = None
            continue
        if isinstance(value, (list, tuple)):
            parts[key] = [hash_path(Path(v)) for v in value]
            continue
        path = Path(value)
        parts[key] = hash_path(path)
        if key in samplesheet_keys and path.is_file():
            parts[f"{key}:files"] = [hash_path(p) for p in samplesheet_files(path) if p.exists()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
