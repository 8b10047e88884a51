"""Motif -> TF annotations, filtered as pySCENIC's ``load_motif_annotations`` does.

Two layouts:
- pySCENIC ``.tbl``: ``#motif_id``, ``gene_name``, ``motif_similarity_qvalue``,
  ``orthologous_identity``, ``description`` (plus columns ignored here);
- RcisTarget TSV (``motifAnnotations_hgnc.tsv``): ``motif``, ``TF``, ``directAnnotation``,
  ``inferred_Orthology``, ``inferred_MotifSimil``, ``annotationSource``, ``description``. The
  q-value and identity are read from the description (``q-value = 5.04e-06``,
  ``identity = 30%``); a direct annotation has q-value 0 and identity 1, as in the ``.tbl`` files.

Output: one row per (tf, motif) with ``qvalue``, ``identity``, ``annotation``; where a pair has
several rows, the best one is kept (lowest q-value, then highest identity), as ctxcore keeps it.
``listed`` counts the rows the pair had after the filter: pySCENIC orders its enriched rows
differently when any pair is listed twice (see ``prune.pyscenic_row_pairs``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

TBL_COLUMNS = ("#motif_id", "gene_name", "motif_similarity_qvalue", "orthologous_identity", "description")
TSV_COLUMNS = ("motif", "TF", "directAnnotation", "inferred_Orthology", "inferred_MotifSimil", "description")
COLUMNS = ["tf", "motif", "qvalue", "identity", "annotation"]


def read_motif_annotations(path: str | Path) -> pd.DataFrame:
    """Read a ``.tbl`` or RcisTarget TSV annotation file (gzip allowed) into the common table."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: motif annotation file not found")
    try:
        head = pd.read_csv(path, sep="\t", nrows=0).columns
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a tab-separated motif annotation table ({exc})") from exc
    if set(TBL_COLUMNS) <= set(head):
        raw = pd.read_csv(path, sep="\t", usecols=list(TBL_COLUMNS), dtype={"#motif_id": str, "gene_name": str},
                          float_precision="round_trip")
        table = pd.DataFrame({"tf": raw["gene_name"], "motif": raw["#motif_id"],
                              "qvalue": pd.to_numeric(raw["motif_similarity_qvalue"], errors="coerce"),
                              "identity": pd.to_numeric(raw["orthologous_identity"], errors="coerce"),
                              "annotation": raw["description"].astype(str)})
    elif set(TSV_COLUMNS) <= set(head):
        table = _from_rcistarget(pd.read_csv(path, sep="\t", usecols=list(TSV_COLUMNS), dtype=str))
    else:
        raise InputError(f"{path}: motif annotation columns not recognised; expected the pySCENIC .tbl columns "
                         f"{list(TBL_COLUMNS)} or the RcisTarget TSV columns {list(TSV_COLUMNS)}; found {list(head)[:8]}")
    return table.dropna(subset=["tf", "motif"]).reset_index(drop=True)


def _from_rcistarget(raw: pd.DataFrame) -> pd.DataFrame:
    desc = raw["description"].fillna("")
    direct = raw["directAnnotation"].str.upper().eq("TRUE")
    q = pd.to_numeric(desc.str.extract(r"q-value = ([0-9.eE+-]+)")[0], errors="coerce")
    ident = pd.to_numeric(desc.str.extract(r"identity = ([0-9.]+)%")[0], errors="coerce") / 100.0
    by_similarity = raw["inferred_MotifSimil"].str.upper().eq("TRUE")
    by_orthology = raw["inferred_Orthology"].str.upper().eq("TRUE")
    qvalue = np.where(direct | ~by_similarity, 0.0, q)
    identity = np.where(direct | ~by_orthology, 1.0, ident)
    return pd.DataFrame({"tf": raw["TF"], "motif": raw["motif"], "qvalue": qvalue.astype(float),
                         "identity": identity.astype(float), "annotation": desc})


def filter_annotations(table: pd.DataFrame, motif_similarity_fdr: float = 0.001,
                       orthologous_identity: float = 0.0) -> pd.DataFrame:
    """Keep q-value <= fdr and identity >= threshold; one row per (tf, motif), the best one."""
    keep = (table["qvalue"] <= motif_similarity_fdr) & (table["identity"] >= orthologous_identity)
    kept = table[keep].sort_values(["qvalue", "identity"], ascending=[False, True], kind="stable")
    kept = kept.assign(listed=kept.groupby(["tf", "motif"], sort=False)["motif"].transform("size"))
    kept = kept[~kept.duplicated(["tf", "motif"], keep="last")]
    return kept.sort_values(["tf", "motif"], kind="stable").reset_index(drop=True)
