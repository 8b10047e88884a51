"""The gene catalogue: readable symbols and the role each gene plays in the model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .params import MARKERS_PER_PROGRAM, MITO_GENES, PROGRAMS, SimParams

ROLES = ("tf", "tf_no_targets", "target", "marker", "mito", "background")


@dataclass(frozen=True)
class GeneCatalog:
    """``table``: one row per gene in var order; columns role, program (markers), regulator (targets)."""

    table: pd.DataFrame

    @property
    def names(self) -> pd.Index:
        return self.table.index

    def with_role(self, role: str) -> pd.Index:
        return self.table.index[self.table["role"].to_numpy() == role]

    @property
    def tfs(self) -> pd.Index:
        """Planted TFs (they have targets)."""
        return self.with_role("tf")

    @property
    def all_tfs(self) -> pd.Index:
        return self.table.index[self.table["role"].isin(["tf", "tf_no_targets"]).to_numpy()]

    def targets_of(self, tf: str) -> pd.Index:
        return self.table.index[self.table["regulator"].to_numpy() == tf]

    def markers_of(self, program: str) -> pd.Index:
        return self.table.index[self.table["program"].to_numpy() == program]


def _symbols(prefix: str, n: int, width: int) -> list[str]:
    width = max(width, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def gene_catalog(rng: np.random.Generator, params: SimParams) -> GeneCatalog:
    """TFs ``TF01..``, mitochondrial ``MT-..``, everything else ``GENE0001..`` with roles shuffled.

    Targets and markers get random GENE symbols so a gene's number says nothing about its role.
    """
    tfs = _symbols("TF", params.n_tfs_total, 2)
    n_plain = params.n_genes - len(tfs) - len(MITO_GENES)
    plain = np.array(_symbols("GENE", n_plain, 4), dtype=object)
    order = rng.permutation(n_plain)
    rows: list[tuple[str, str, str, str]] = []
    rows += [(tf, "tf" if i < params.n_tfs else "tf_no_targets", "", "") for i, tf in enumerate(tfs)]
    rows += [(g, "mito", "", "") for g in MITO_GENES]
    pos = 0
    for tf in tfs[: params.n_tfs]:
        rows += [(g, "target", "", tf) for g in plain[order[pos: pos + params.targets_per_tf]]]
        pos += params.targets_per_tf
    for program in PROGRAMS:
        rows += [(g, "marker", program, "") for g in plain[order[pos: pos + MARKERS_PER_PROGRAM]]]
        pos += MARKERS_PER_PROGRAM
    rows += [(g, "background", "", "") for g in plain[order[pos:]]]
    table = pd.DataFrame(rows, columns=["gene", "role", "program", "regulator"]).set_index("gene").sort_index()
    return GeneCatalog(table)
