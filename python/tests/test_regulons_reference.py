"""Pruning and AUCell against pySCENIC 0.12.1 / ctxcore 0.2.0 reference outputs (../shared/reference/pyscenic).

The case's inputs are rebuilt from its seed by data/pyscenic_ref/case.py; pySCENIC's outputs are in
data/pyscenic_ref/*.csv.gz (copied from ../shared, see its README.txt).
"""
from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatescope.regulons import recovery as rc
from fatescope.regulons.annotations import filter_annotations, read_motif_annotations
from fatescope.regulons.aucell import auc_cutoff, aucell_batch, aucell_batch_torch, build_signatures, shuffle_positions
from fatescope.regulons.prune import PruneParams, module_gene_sets, prune
from fatescope.regulons.rankdb import from_frame

REF = Path(__file__).resolve().parent / "data" / "pyscenic_ref"


@cache
def _build():
    spec = importlib.util.spec_from_file_location("pyscenic_ref_case", REF / "case.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    case = module.build()
    assert case.digests() == module.DIGESTS, "numpy's random stream changed: the rebuilt case differs"
    return case


@pytest.fixture(scope="module")
def case():
    return _build()


@pytest.fixture(scope="module")
def db(case):
    return from_frame("synthetic_s11", case.frame())


@pytest.fixture(scope="module")
def modules(case):
    return case.modules


def test_every_module_motif_auc_and_nes(db, modules):
    ref = pd.read_csv(REF / "ref_module_motif_auc_nes.csv.gz")
    cutoff = rc.rank_cutoff(0.05, db.n_genes)
    rows = []
    for name, grp in modules.groupby("module"):
        idx = db.gene_index(grp["target"])
        auc = rc.aucs(db.ranks[idx[idx >= 0]], np.ones(int((idx >= 0).sum())), cutoff)
        rows.append(pd.DataFrame({"module": name, "motif": db.motifs, "auc": auc, "nes": rc.nes(auc)}))
    got = pd.concat(rows).merge(ref, on=["module", "motif"], suffixes=("", "_ref"), validate="one_to_one")
    assert len(got) == len(ref)
    assert np.abs(got["auc"] - got["auc_ref"]).max() < 1e-6
    assert np.abs(got["nes"] - got["nes_ref"]).max() < 1e-6


@pytest.mark.parametrize("device", [None, "cpu"], ids=["numpy", "torch"])  # torch: the GPU path, run on the CPU here
def test_prune_matches_prune2df(db, modules, case, device, tmp_path):
    ref = pd.read_csv(REF / "ref_prune2df.csv.gz")
    ref["module"] = ref["Enrichment_Context"].str.extract(r"'([^']+_(?:top50|pct75))'")[0]
    case.annotations.to_csv(tbl := tmp_path / "motif_annotations.tbl", sep="\t", index=False)
    ann = filter_annotations(read_motif_annotations(tbl), 0.001, 0.0)
    enriched, regulons, _ = prune(module_gene_sets(modules), [db], ann, PruneParams(rank_threshold=1500, device=device))
    enriched["TargetGenes"] = [";".join(f"{g}:{w:.6g}" for g, w in sorted(zip(t, w)))
                               for t, w in zip(enriched["targets"], enriched["target_weights"])]
    both = enriched.merge(ref, left_on=["module", "motif"], right_on=["module", "MotifID"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all(), both.loc[both["_merge"] != "both", ["module", "motif", "MotifID"]]
    assert len(both) == len(ref) == 60
    assert (both["rank_at_max"] == both["Enrichment_RankAtMax"]).all()
    assert (both["TargetGenes_x"] == both["TargetGenes_y"]).all()
    assert (both["tf"] == both["TF"]).all() and (both["annotation"] == both["Enrichment_Annotation"]).all()
    assert np.abs(both["auc"] - both["Enrichment_AUC"]).max() < 1e-6
    assert np.abs(both["nes"] - both["Enrichment_NES"]).max() < 1e-6
    # regulon = union of leading edges per TF (max weight), as df2regulons
    for tf, grp in ref.groupby("TF"):
        genes = {t.split(":")[0] for tg in grp["TargetGenes"] for t in tg.split(";")}
        assert set(regulons.loc[regulons["tf"] == tf, "target"]) == genes


def test_batched_torch_aucs_equal_numpy_with_weights(db, modules):
    """The GPU path's AUCs (modules padded into batches) equal the numpy path's, weighted or not."""
    from fatescope.regulons.recovery_torch import batched_aucs

    cutoff = rc.rank_cutoff(0.05, db.n_genes)
    rng = np.random.default_rng(0)
    rows = [idx[idx >= 0] for idx in (db.gene_index(g["target"]) for _, g in modules.groupby("module"))]
    weights = [rng.uniform(0.5, 3.0, len(r)) for r in rows]
    for w in (weights, [np.ones(len(r)) for r in rows]):
        want = np.stack([rc.aucs(db.ranks[r], wt, cutoff) for r, wt in zip(rows, w)])
        np.testing.assert_allclose(batched_aucs(db.ranks, rows, w, cutoff, "cpu"), want, rtol=0, atol=1e-12)


def _aucell(expr: str):
    ex = _build().expression[expr]
    sigs = build_signatures(pd.read_csv(REF / "aucell_regulons.csv.gz"), ex.columns)
    perm, pos = shuffle_positions(ex.shape[1], 0)
    cutoff = auc_cutoff(0.05, ex.shape[1])
    return ex, sigs, perm, pos, cutoff


@pytest.mark.parametrize("expr,ref_file", [("tiefree", "ref_aucell_tiefree.csv.gz"),
                                           ("counts", "ref_aucell_counts_seed0.csv.gz")])
def test_aucell_matches_ctxcore(expr, ref_file):
    """Tie-free within 1e-6; counts with ties exactly too (ctxcore's seeded column shuffle reproduced)."""
    ex, sigs, perm, pos, cutoff = _aucell(expr)
    ref = pd.read_csv(REF / ref_file, index_col=0)
    got = pd.DataFrame(aucell_batch(ex.to_numpy(), sigs, perm, pos, cutoff), index=ex.index, columns=sigs.names)
    got = got.loc[ref.index, ref.columns]
    assert np.abs(got.to_numpy() - ref.to_numpy()).max() < 1e-6
    assert min(np.corrcoef(got[c], ref[c])[0, 1] for c in ref.columns) >= 0.99
    # float64 input not representable in float32 (generic kernel; same order and ties) and torch: same numbers
    got64 = aucell_batch(ex.to_numpy(np.float64)[:200] * (1 + 2.0 ** -40), sigs, perm, pos, cutoff)
    assert np.abs(got64 - got.to_numpy()[:200]).max() < 1e-12
    got_t = aucell_batch_torch(ex.to_numpy()[:200], sigs, perm, cutoff, device="cpu")
    assert np.abs(got_t - got.to_numpy()[:200]).max() < 1e-12


def test_aucell_ties_depend_on_seed():
    ex, sigs, perm, pos, cutoff = _aucell("counts")
    perm1, pos1 = shuffle_positions(ex.shape[1], 1)
    a0 = aucell_batch(ex.to_numpy()[:100], sigs, perm, pos, cutoff)
    a1 = aucell_batch(ex.to_numpy()[:100], sigs, perm1, pos1, cutoff)
    assert not np.allclose(a0, a1) and np.corrcoef(a0.ravel(), a1.ravel())[0, 1] > 0.95


def test_aucell_sparse_counts_kernels_agree():
    """Mostly-zero counts (ties at zero inside the top 5%): the CPU kernel's short walk along the shuffle
    equals a full stable sort (torch path)."""
    rng = np.random.default_rng(5)
    X = (rng.random((300, 2000)) < 0.03) * rng.poisson(3.0, (300, 2000)).astype(np.float32)
    genes = pd.Index([f"g{i}" for i in range(2000)])
    regs = pd.DataFrame([(f"r{k}", genes[j]) for k in range(20) for j in rng.choice(2000, 40, replace=False)],
                        columns=["regulon", "gene"])
    sigs = build_signatures(regs, genes)
    perm, pos = shuffle_positions(2000, 0)
    cutoff = auc_cutoff(0.05, 2000)
    fast = aucell_batch(X.astype(np.float32), sigs, perm, pos, cutoff)
    full = aucell_batch_torch(X.astype(np.float32), sigs, perm, cutoff, device="cpu")
    assert fast.max() > 0 and np.abs(fast - full).max() < 1e-12
