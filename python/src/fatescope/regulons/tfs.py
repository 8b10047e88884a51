"""Transcription factor lists: bundled defaults per species, or a user file (one symbol per line)."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)
BUNDLED = {"human": "hs_lambert2018.txt", "mouse": "mm_mgi_tfs.txt"}


def bundled_path(species: str) -> Path:
    """Path of the bundled list for ``species`` (human: Lambert et al. 2018; mouse: MGI TFs)."""
    if species not in BUNDLED:
        raise InputError(f"no bundled TF list for species {species!r}; bundled: {sorted(BUNDLED)}; give a file with --tf-list")
    return Path(str(files("fatescope") / "assets" / "tf_lists" / BUNDLED[species]))


def read_tf_list(spec: str) -> list[str]:
    """A TF list from a bundled name ('human', 'mouse') or a file path; blank lines and '#' comments ignored."""
    path = bundled_path(spec) if spec in BUNDLED else Path(spec)
    if not path.is_file():
        raise InputError(f"{path}: TF list not found (expected a text file with one gene symbol per line, or one of "
                         f"the bundled names {sorted(BUNDLED)})")
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError(f"{path}: TF list is empty (expected one gene symbol per line)")
    return names


def tfs_in_data(tfs: list[str], genes: pd.Index) -> tuple[list[str], dict]:
    """TFs of the list present in ``genes`` (in the data's order) and a small report."""
    present = [g for g in genes if g in set(tfs)]
    report = {"n_tfs_in_list": len(tfs), "n_tfs_in_data": len(present),
              "fraction_of_list_in_data": round(len(present) / len(tfs), 4)}
    log.info("TF list: %d of %d TFs are in the data", len(present), len(tfs))
    if not present:
        raise InputError(f"none of the {len(tfs)} TFs of the list is among the data's {len(genes)} genes "
                         f"(e.g. list {tfs[:3]} vs data {list(genes[:3])}); wrong species or gene symbols?")
    return present, report
