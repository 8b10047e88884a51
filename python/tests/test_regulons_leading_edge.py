"""Leading edges (RankAtMax, targets) equal pySCENIC 0.12.1's on every row, including its row pairing.

Cases are rebuilt from a seed by data/pyscenic_le/case.py; pySCENIC's rows are in
data/pyscenic_le/ref_prune2df_<case>.csv.gz (made by data/pyscenic_le/make_ref.py).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatescope.regulons import recovery as rc
from fatescope.regulons.annotations import filter_annotations, read_motif_annotations
from fatescope.regulons.prune import PruneParams, module_gene_sets, prune, pyscenic_row_pairs
from fatescope.regulons.rankdb import from_frame

DATA = Path(__file__).resolve().parent / "data" / "pyscenic_le"
PARAMS = json.loads((DATA / "params.json").read_text())


def _cases():
    spec = importlib.util.spec_from_file_location("pyscenic_le_case", DATA / "case.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CASES = _cases()


@pytest.fixture(scope="module", params=sorted(CASES.CASES))
def case(request, tmp_path_factory):
    name = request.param
    built = CASES.build(name)
    assert built.digest() == PARAMS[name]["digest"], "numpy's random stream changed: the rebuilt case differs"
    tbl = tmp_path_factory.mktemp(name) / "annotations.tbl"
    built.annotations.to_csv(tbl, sep="\t", index=False)
    ann = filter_annotations(read_motif_annotations(tbl), PARAMS[name]["motif_similarity_fdr"],
                             PARAMS[name]["orthologous_identity_threshold"])
    ref = pd.read_csv(DATA / f"ref_prune2df_{name}.csv.gz")
    return name, built, from_frame(name, built.frame()), ann, ref


@pytest.mark.parametrize("device", [None, "cpu"], ids=["numpy", "torch"])  # torch: the GPU path, run on the CPU here
def test_rows_equal_prune2df(case, device):
    name, built, db, ann, ref = case
    p = PARAMS[name]
    params = PruneParams(rank_threshold=p["rank_threshold"], auc_threshold=p["auc_threshold"],
                         nes_threshold=p["nes_threshold"], device=device)
    enriched, regulons, _ = prune(module_gene_sets(built.modules), [db], ann, params)
    enriched["TargetGenes"] = [";".join(f"{g}:{w:.6g}" for g, w in sorted(zip(t, w)))
                               for t, w in zip(enriched["targets"], enriched["target_weights"])]
    both = enriched.merge(ref, left_on=["module", "motif"], right_on=["module", "MotifID"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all() and len(both) == len(ref) == p["n_rows"]
    assert (both["rank_at_max"] == both["RankAtMax"]).all(), both.loc[both["rank_at_max"] != both["RankAtMax"],
                                                                     ["module", "motif", "rank_at_max", "RankAtMax"]]
    assert (both["TargetGenes_x"] == both["TargetGenes_y"]).all()
    assert (both["tf"] == both["TF"]).all() and (both["annotation"] == both["Annotation"]).all()
    assert np.abs(both["auc"] - both["AUC"]).max() < 1e-6 and np.abs(both["nes"] - both["NES"]).max() < 1e-6
    for tf, grp in ref.groupby("TF"):
        genes = {t.split(":")[0] for tg in grp["TargetGenes"] for t in tg.split(";")}
        assert set(regulons.loc[regulons["tf"] == tf, "target"]) == genes


def test_case_needs_the_pairing(case):
    """Rows whose leading edge is not their own motif's (a plain per-motif argmax fails on exactly these)."""
    name, built, db, ann, ref = case
    own = []
    for module, tf, genes, _ in module_gene_sets(built.modules):
        rows = db.gene_index(genes)
        ranks = db.ranks[rows]
        ones = np.ones(len(rows))
        avg2std = rc.avg2std_curve(ranks, ones, PARAMS[name]["rank_threshold"])
        for motif in ref.loc[ref["module"] == module, "MotifID"]:
            m = int(np.flatnonzero(db.motifs == motif)[0])
            own.append((module, motif, rc.leading_edge(ranks[:, m], ones, avg2std)[0]))
    own = pd.DataFrame(own, columns=["module", "MotifID", "own"]).merge(ref, on=["module", "MotifID"])
    assert len(own) == len(ref)
    assert (own["own"] != own["RankAtMax"]).sum() == {"issue14": 4, "reorder": 88, "reorder_unique": 88}[name]


def test_pairing_rule():
    """Curves of the first k enriched motifs (database order) go to the annotated ones sorted by q-value
    descending, identity ascending, then database order (or motif name when the table lists a pair twice)."""
    motifs = np.array(["e", "b", "c", "d", "a"])
    tf_ann = {"b": (0.0, 1.0, ""), "c": (5e-4, 1.0, ""), "d": (5e-4, 0.0, ""), "a": (0.0, 1.0, "")}
    assert pyscenic_row_pairs(np.array([0, 1, 2, 3, 4]), motifs, tf_ann, False) == [(3, 0), (2, 1), (1, 2), (4, 3)]
    assert pyscenic_row_pairs(np.array([0, 1, 2, 3, 4]), motifs, tf_ann, True) == [(3, 0), (2, 1), (4, 2), (1, 3)]
    assert pyscenic_row_pairs(np.array([1, 4]), motifs, tf_ann, False) == [(1, 1), (4, 4)]
    assert pyscenic_row_pairs(np.array([1, 4]), motifs, tf_ann, True) == [(4, 1), (1, 4)]
    assert pyscenic_row_pairs(np.array([0]), motifs, tf_ann, True) == []
