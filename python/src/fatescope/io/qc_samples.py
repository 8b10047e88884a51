"""Per-sample files of the qc stage split in two (Nextflow: one load task per sample, one merge task).

``fatescope qc --load-only`` writes each sample as loaded (guides and fate probabilities attached)
to ``<sample>.h5ad``, with what the merge needs in ``uns["qc_sample"]``: the sample's name, its
size as loaded (qc_per_sample.csv reports it) and the guide and fate names it was built with.
``fatescope qc --merge`` reads them back and checks they belong together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np

from ..errors import InputError
from .readers import read_anndata

INFO_KEY = "qc_sample"


@dataclass(frozen=True)
class LoadedSamples:
    """Samples of ``--load-only`` files, in the order given."""
    samples: dict[str, ad.AnnData]
    sizes: dict[str, tuple[int, int]]  # cells, genes as loaded
    guide_names: list[str] | None
    fate_names: list[str] | None


def write_loaded_sample(adata: ad.AnnData, path: str | os.PathLike, sample: str, loaded_shape: tuple[int, int],
                        guide_names: list[str] | None, fate_names: list[str] | None) -> None:
    """One loaded sample to ``path``; strings stay strings (the merge must see what a one-task qc sees)."""
    info = {"sample": sample, "cells_loaded": int(loaded_shape[0]), "genes_loaded": int(loaded_shape[1])}
    if guide_names is not None:
        info["guide_names"] = np.asarray(guide_names, dtype=str)
    if fate_names is not None:
        info["fate_names"] = np.asarray(fate_names, dtype=str)
    adata.uns[INFO_KEY] = info
    adata.write_h5ad(path, convert_strings_to_categoricals=False, compression="lzf")


def _names(info: dict, key: str) -> list[str] | None:
    return [str(v) for v in info[key]] if key in info else None


def read_loaded_samples(paths: list[str]) -> LoadedSamples:
    """``--load-only`` files -> samples by name; an InputError names a file that is not one, a sample given
    twice, or files built with different guide maps or fate columns (a sample without fate probabilities
    has none and joins any)."""
    samples: dict[str, ad.AnnData] = {}
    sizes: dict[str, tuple[int, int]] = {}
    origin: dict[str, str] = {}
    seen: dict[str, tuple[str, list[str] | None]] = {}  # guide/fate names -> (first file, names)
    for path in paths:
        adata = read_anndata(path, "a per-sample file of `fatescope qc --load-only`")
        info = adata.uns.pop(INFO_KEY, None)
        if not isinstance(info, dict) or "sample" not in info:
            raise InputError(f"{path}: not a per-sample file of `fatescope qc --load-only` (no uns['{INFO_KEY}'])")
        name = str(info["sample"])
        if name in samples:
            raise InputError(f"{path}: sample {name!r} is given twice (also {origin[name]}); give each sample's file once")
        for key, what in (("guide_names", "guide map"), ("fate_names", "fate columns")):
            names = _names(info, key)
            if key == "fate_names" and names is None:
                continue
            if key not in seen:
                seen[key] = (path, names)
            elif names != seen[key][1]:
                raise InputError(f"{path}: sample {name!r} was loaded with {what} {names}, {seen[key][0]} with "
                                 f"{seen[key][1]}; load every sample with the same {what}")
        samples[name], origin[name] = adata, path
        sizes[name] = (int(info["cells_loaded"]), int(info["genes_loaded"]))
    return LoadedSamples(samples, sizes, seen.get("guide_names", (None, None))[1], seen.get("fate_names", (None, None))[1])


def sample_file(outdir: str | os.PathLike, sample: str) -> Path:
    """Where ``--load-only`` writes a sample."""
    return Path(outdir) / f"{sample}.h5ad"
