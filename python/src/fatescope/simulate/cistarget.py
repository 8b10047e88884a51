"""Synthetic cisTarget resources: a ranking DB (ctxcore Feather v2 layout) and motif annotations.

Per TF, two planted motifs rank most of the TF's true targets near the top; all other motifs
are decoys with random rankings. Row order is shuffled so position says nothing about truth.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

PLANTED_PER_TF = 2
PLANTED_TARGET_FRACTION = 0.8   # share of a TF's targets each planted motif pushes to the top
DECOY_ANNOTATED_FRACTION = 0.3  # decoys annotated to a random TF (like motif-similarity hits)
DECOY_QVALUES = (0.2, 0.0005, 0.01, 0.0)  # cycled over annotated decoys: some pass, some fail q <= 0.001
TBL_COLUMNS = ("#motif_id", "motif_name", "motif_description", "source_name", "source_version", "gene_name",
               "motif_similarity_qvalue", "similar_motif_id", "similar_motif_description", "orthologous_identity",
               "orthologous_gene_name", "orthologous_species", "description")


def motif_truth(rng: np.random.Generator, tfs: list[str], n_motifs: int) -> pd.DataFrame:
    """Motif names ``motif_0001..`` in DB row order, with the planted TF (empty for decoys)."""
    width = max(4, len(str(n_motifs)))
    planted = [tf for tf in tfs for _ in range(PLANTED_PER_TF)]
    tf_of_row = np.array(planted + [""] * (n_motifs - len(planted)), dtype=object)[rng.permutation(n_motifs)]
    return pd.DataFrame({"motif": [f"motif_{i + 1:0{width}d}" for i in range(n_motifs)], "tf": tf_of_row,
                         "planted": tf_of_row != ""})


def ranking_db(rng: np.random.Generator, genes: pd.Index, motifs: pd.DataFrame, regulons: pd.DataFrame) -> pd.DataFrame:
    """motifs x genes 0-based ranks plus a ``motifs`` string column (ctxcore Feather v2 layout).

    A planted motif gives a random PLANTED_TARGET_FRACTION of its TF's targets scores below
    every other gene (ranks 0..), the rest of the genes rank at random. Built row by row so
    memory is the integer table itself.
    """
    dtype = np.int16 if len(genes) <= np.iinfo(np.int16).max + 1 else np.int32
    ranks = np.empty((len(motifs), len(genes)), dtype=dtype)
    for row, tf in enumerate(motifs["tf"]):
        scores = rng.random(len(genes))
        if tf:
            targets = genes.get_indexer(regulons.loc[regulons["tf"] == tf, "target"])
            boosted = targets[rng.random(len(targets)) < PLANTED_TARGET_FRACTION]
            scores[boosted] -= 1.0 + 0.2 * rng.random(len(boosted))
        ranks[row, np.argsort(scores, kind="stable")] = np.arange(len(genes))
    table = pd.DataFrame(ranks, columns=pd.Index(genes, dtype=str))
    table["motifs"] = motifs["motif"].to_numpy(str)
    return table


def motif_annotations(rng: np.random.Generator, motifs: pd.DataFrame, tfs: list[str]) -> pd.DataFrame:
    """pySCENIC ``.tbl`` rows: planted motifs directly annotated to their TF (q 0, identity 1);
    a share of decoys annotated to a random TF with q-values of which some fail a 0.001 filter."""
    planted = motifs[motifs["planted"]]
    rows = [(m, tf, 0.0, 1.0, "gene is directly annotated") for m, tf in zip(planted["motif"], planted["tf"])]
    decoys = motifs.loc[~motifs["planted"], "motif"].to_numpy()
    annotated = rng.choice(decoys, size=int(np.ceil(DECOY_ANNOTATED_FRACTION * len(decoys))), replace=False)
    qvalues = np.resize(DECOY_QVALUES, len(annotated))
    identities = rng.choice([0.0, 0.5, 1.0], size=len(annotated))
    rows += [(m, str(rng.choice(tfs)), float(q), float(ident), "motif similar to an annotated motif")
             for m, q, ident in zip(annotated, qvalues, identities)]
    table = pd.DataFrame(rows, columns=["#motif_id", "gene_name", "motif_similarity_qvalue", "orthologous_identity",
                                        "description"])
    for column in TBL_COLUMNS:
        if column not in table:
            table[column] = "NA"
    return table.loc[:, list(TBL_COLUMNS)].sort_values("#motif_id", kind="stable").reset_index(drop=True)
