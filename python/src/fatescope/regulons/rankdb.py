"""cisTarget ranking databases: motifs x genes 0-based ranks, held in memory once per process.

Layouts read:
- Feather v2 (ctxcore, ``*.genes_vs_motifs.rankings.feather``): one integer column per gene and
  a string index column named ``motifs`` (or ``tracks``/``regions``).
- Legacy Feather v1 (pySCENIC <= 0.9, ``*.mc9nr.feather``): a string column named ``features``.
  Read as is (ranks are 0-based in both); a warning names the conversion.

Ranks are stored genes x motifs (C order) so gathering a module's genes reads contiguous rows.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..logs import get_logger

log = get_logger(__name__)
INDEX_COLUMNS = ("motifs", "tracks", "regions")
LEGACY_INDEX = "features"
CONVERT_HINT = ("convert it once with: python -c \"import pyarrow.feather as f; t = f.read_table('OLD.feather'); "
                "f.write_feather(t.rename_columns(['motifs' if c == 'features' else c for c in t.column_names]), "
                "'NEW.genes_vs_motifs.rankings.feather', compression='lz4')\"")


@dataclass
class RankingDB:
    """A ranking database in memory: ``ranks[g, m]`` is gene g's 0-based rank for motif m."""
    name: str
    motifs: np.ndarray                 # (n_motifs,) str
    genes: pd.Index                    # (n_genes,)
    ranks: np.ndarray                  # (n_genes, n_motifs) int16/int32, C-contiguous
    legacy: bool = False

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_motifs(self) -> int:
        return len(self.motifs)

    def gene_index(self, genes) -> np.ndarray:
        """Positions of ``genes`` in the database (-1 where absent)."""
        return self.genes.get_indexer(pd.Index(genes))


def db_name(path: str | Path) -> str:
    """Database name from its file name (``hg38_500bp.genes_vs_motifs.rankings.feather`` -> ``hg38_500bp``)."""
    name = Path(path).name
    for suffix in (".feather", ".rankings", ".genes_vs_motifs", ".genes_vs_tracks", ".motifs_vs_genes"):
        name = name.removesuffix(suffix)
    return name


def from_frame(name: str, table: pd.DataFrame, index_column: str = "motifs") -> RankingDB:
    """Build a database from a DataFrame in the Feather layout (gene columns + an index column)."""
    if index_column not in table.columns:
        raise InputError(f"ranking database {name}: no {index_column!r} column")
    gene_cols = [c for c in table.columns if c != index_column]
    ranks = np.ascontiguousarray(table[gene_cols].to_numpy().T)
    return _checked(name, table[index_column].astype(str).to_numpy(), pd.Index(gene_cols, dtype=str), ranks, False)


def load_ranking_db(path: str | Path, name: str | None = None) -> RankingDB:
    """Read a Feather ranking database (v2 ``motifs`` layout, or the legacy ``features`` layout)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    path = Path(path)
    name = name or db_name(path)
    if not path.is_file():
        raise InputError(f"{path}: ranking database not found (expected a *.genes_vs_motifs.rankings.feather file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            table = feather.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a Feather ranking database ({exc})") from exc
    columns = table.column_names
    index = next((c for c in INDEX_COLUMNS if c in columns), None)
    legacy = index is None and LEGACY_INDEX in columns
    if legacy:
        index = LEGACY_INDEX
        log.warning("%s: legacy cisTarget layout (index column 'features', Feather v1); read as is. To silence this, %s",
                    path, CONVERT_HINT)
    if index is None:
        raise InputError(f"{path}: no index column {INDEX_COLUMNS + (LEGACY_INDEX,)}; expected a cisTarget ranking "
                         "database (motifs x genes, one integer rank column per gene)")
    gene_cols = [c for c in columns if c != index]
    if not gene_cols:
        raise InputError(f"{path}: ranking database has no gene columns")
    bad = [c for c in gene_cols if not pa.types.is_integer(table.schema.field(c).type)]
    if bad:
        raise InputError(f"{path}: gene columns must hold integer ranks; {len(bad)} do not (e.g. {bad[0]!r}: "
                         f"{table.schema.field(bad[0]).type})")
    dtype = np.int16 if len(gene_cols) <= np.iinfo(np.int16).max + 1 else np.int32
    ranks = np.empty((len(gene_cols), table.num_rows), dtype=dtype)
    for i, col in enumerate(gene_cols):
        ranks[i] = table.column(col).to_numpy()
    motifs = np.asarray(table.column(index).to_pylist(), dtype=object).astype(str)
    return _checked(str(name), motifs, pd.Index(gene_cols, dtype=str), ranks, legacy, path)


def _checked(name, motifs, genes, ranks, legacy, path=None) -> RankingDB:
    where = path or name
    if genes.has_duplicates:
        raise InputError(f"{where}: duplicated gene columns (e.g. {genes[genes.duplicated()][0]!r})")
    if pd.Index(motifs).has_duplicates:
        raise InputError(f"{where}: duplicated motif names (e.g. {pd.Index(motifs)[pd.Index(motifs).duplicated()][0]!r})")
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(genes)):
        raise InputError(f"{where}: ranks must be 0-based below the number of genes ({len(genes)}); found "
                         f"{int(ranks.min())}..{int(ranks.max())}")
    log.info("ranking database %s: %d motifs x %d genes%s", name, len(motifs), len(genes), " (legacy layout)" if legacy else "")
    return RankingDB(name=name, motifs=motifs, genes=genes, ranks=ranks, legacy=legacy)
