"""Ranking database layouts and motif annotation formats (the real legacy files in ../shared/data/cistarget)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatescope.errors import InputError
from fatescope.regulons.annotations import filter_annotations, read_motif_annotations
from fatescope.regulons.prune import PruneParams, regulons_from_enrichment
from fatescope.regulons.rankdb import db_name, load_ranking_db
from fatescope.regulons.recovery import rank_cutoff

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CT = SHARED / "data" / "cistarget"
needs_ct = pytest.mark.skipif(not CT.is_dir(), reason=f"cisTarget files not found at {CT}")


@needs_ct
def test_legacy_features_layout_is_read():
    db = load_ranking_db(CT / "hg19-tss-centered-10kb-10species.mc9nr.feather")
    assert db.legacy and db.n_motifs == 5 and db.n_genes == 22284
    assert db.ranks.shape == (22284, 5) and db.ranks.min() == 0 and db.ranks.max() == 22283
    assert db.name == "hg19-tss-centered-10kb-10species.mc9nr"


@needs_ct
def test_rcistarget_tsv_annotations():
    table = read_motif_annotations(CT / "motifAnnotations_hgnc.tsv.gz")
    direct = table[table["annotation"] == "gene is directly annotated"]
    assert (direct["qvalue"] == 0).all() and (direct["identity"] == 1).all()
    sim = table[table["annotation"].str.contains("q-value = 5.04e-06", regex=False)]
    assert np.allclose(sim["qvalue"], 5.04e-06)
    orth = table[table["annotation"].str.startswith("gene is orthologous") & ~table["annotation"].str.contains("q-value")]
    assert orth["identity"].between(0, 1).all() and (orth["qvalue"] == 0).all()
    kept = filter_annotations(table, 0.001, 0.5)
    assert not kept.duplicated(["tf", "motif"]).any() and (kept["identity"] >= 0.5).all()


def test_v2_layout_round_trip(tmp_path):
    ranks = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.int16)
    frame = pd.DataFrame(ranks, columns=["A", "B", "C", "D"])
    frame["motifs"] = ["m1", "m2"]
    path = tmp_path / "toy.genes_vs_motifs.rankings.feather"
    frame.to_feather(path)
    db = load_ranking_db(path)
    assert db.name == "toy" == db_name(path) and not db.legacy
    assert list(db.gene_index(["C", "Z"])) == [2, -1] and db.ranks[2].tolist() == [2, 1]
    frame.loc[0, "A"] = 9
    frame.to_feather(path)
    with pytest.raises(InputError, match="0-based"):
        load_ranking_db(path)


def test_rank_threshold_must_be_below_db_genes():
    with pytest.raises(InputError, match="rank threshold"):
        rank_cutoff(0.05, 1000, 5000)
    assert rank_cutoff(0.05, 3000, 1500) == 149


def test_merge_strategies():
    enr = pd.DataFrame({"tf": ["T", "T"], "database": ["a", "b"], "nes": [4.0, 6.0],
                        "targets": [["x", "y"], ["y", "z"]], "target_weights": [[1.0, 2.0], [3.0, 0.5]]})
    union = regulons_from_enrichment(enr, PruneParams(merge_strategy="union"))
    assert dict(zip(union["target"], union["weight"])) == {"x": 1.0, "y": 3.0, "z": 0.5}
    best = regulons_from_enrichment(enr, PruneParams(merge_strategy="best"))
    assert set(best["target"]) == {"y", "z"} and set(best["database"]) == {"b"}
    assert regulons_from_enrichment(enr, PruneParams(min_genes=4)).empty
