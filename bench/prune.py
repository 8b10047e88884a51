"""cisTarget pruning speed: fatescope vs pySCENIC (ctxcore), rustscenic and flashscenic, same inputs, one run.

Inputs (seed 0): a Feather v2 ranking database of 600 motifs x 6,000 genes (int16; 2 planted
motifs per TF rank 80% of its 60 targets first, the rest random permutations), 25 TFs x 2
modules (50 modules: 70% / 50% of the targets + 20 / 50 decoys), a .tbl annotation table
(planted motifs to their TF, 30% of decoys to a random TF). rank_threshold 5000, auc 0.05, NES 3.

- fatescope: ``prune`` complete (AUC, NES, annotation filter, leading edges, regulons); the
  database load from Feather is timed separately.
- pySCENIC: ``module2features_auc1st_impl`` + ``module2df`` semantics rebuilt from ctxcore's own
  functions (``aucs``, ``recovery``, ``leading_edge``; pandas annotation merge), one worker --
  ``pyscenic`` itself needs dask and is not installed here.
- rustscenic: ``cistarget.enrich`` (AUC + NES only, no leading edges).
- flashscenic: ``CisTargetPruner.prune`` per module on CPU (enrichment + annotation filter,
  leading edges not materialised).
Peers are skipped when not importable.

``--real-scale``: a 5,900 motifs x 27,000 genes int16 database (random rankings, 10% of motifs
annotated to a random TF) loaded once, then 1,000 modules of 50-150 genes pruned against it;
prints load and prune seconds and the peak RSS.

Usage: python bench/prune.py [--repeats 3] [--real-scale]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_MOTIFS, N_GENES, N_TFS, RANK_THRESHOLD = 600, 6000, 25, 5000


def make_inputs(tmp: Path, seed: int = 0):
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i:05d}" for i in range(N_GENES)])
    tfs = list(genes[:N_TFS])
    truth = {t: rng.choice(genes[N_TFS:], 60, replace=False) for t in tfs}
    rows, names, ann = [], [], []
    for t in tfs:
        for k in range(2):
            score = rng.random(N_GENES)
            hit = np.isin(genes, truth[t]) & (rng.random(N_GENES) < 0.8)
            score[hit] -= 1.0
            rows.append(np.argsort(np.argsort(score)).astype(np.int16))
            names.append(f"planted__{t}_m{k}")
            ann.append((names[-1], t, 0.0, 1.0, "gene is directly annotated"))
    while len(rows) < N_MOTIFS:
        rows.append(rng.permutation(N_GENES).astype(np.int16))
        names.append(f"decoy__m{len(rows):04d}")
        if rng.random() < 0.3:
            ann.append((names[-1], str(rng.choice(tfs)), float(rng.choice([0.0, 0.0005, 0.01])), 1.0, "similar"))
    db = pd.DataFrame(np.vstack(rows), columns=genes)
    db["motifs"] = names
    db.to_feather(tmp / "bench.genes_vs_motifs.rankings.feather")
    tbl = pd.DataFrame(ann, columns=["#motif_id", "gene_name", "motif_similarity_qvalue", "orthologous_identity", "description"])
    tbl.to_csv(tmp / "bench.tbl", sep="\t", index=False)
    mods = []
    for t in tfs:
        for kind, frac, nd in (("top50", 0.7, 20), ("pct75", 0.5, 50)):
            members = np.concatenate([rng.choice(truth[t], int(60 * frac), replace=False),
                                      rng.choice(genes[N_TFS:], nd, replace=False)])
            mods += [(f"{t}_{kind}", t, g, float(rng.uniform(0.05, 1))) for g in dict.fromkeys(members)]
    return pd.DataFrame(mods, columns=["module", "tf", "target", "weight"])


def best_of(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def pyscenic_like(db_frame: pd.DataFrame, modules: pd.DataFrame, tbl: pd.DataFrame):
    """pySCENIC's per-module steps with ctxcore's functions (auc1st implementation, leading edges)."""
    from ctxcore.recovery import aucs, leading_edge, recovery
    ann = tbl.set_index(["gene_name", "#motif_id"])
    ann = ann[ann["motif_similarity_qvalue"] <= 0.001]
    out = []
    for name, grp in modules.groupby("module"):
        tf = grp["tf"].iloc[0]
        df = db_frame.loc[:, db_frame.columns.isin(grp["target"])]
        w = np.ones(df.shape[1])
        a = aucs(df, N_GENES, w, 0.05)
        nes = (a - a.mean()) / a.std()
        idx = np.flatnonzero(nes >= 3.0)
        keep = [i for i in idx if (tf, df.index[i]) in ann.index]
        if not keep:
            continue
        rccs, _ = recovery(df, N_GENES, w, RANK_THRESHOLD, 0.05, no_auc=True)
        avg2std = rccs.mean(axis=0) + 2.0 * rccs.std(axis=0)
        weights = grp.set_index("target").loc[df.columns, "weight"].to_numpy()
        for i in keep:
            genes, rank_at_max = leading_edge(rccs[i], avg2std, df.values[i], df.columns.values, weights)
            out.append((name, df.index[i], a[i], nes[i], rank_at_max, len(genes)))
    return pd.DataFrame(out, columns=["module", "motif", "auc", "nes", "rank_at_max", "n_targets"])


def main(repeats: int) -> None:
    from fatescope.regulons.annotations import filter_annotations, read_motif_annotations
    from fatescope.regulons.prune import PruneParams, annotation_lookup, module_gene_sets, prune
    from fatescope.regulons.rankdb import load_ranking_db

    tmp = Path(tempfile.mkdtemp(prefix="prune_bench_"))
    modules = make_inputs(tmp)
    db_path = tmp / "bench.genes_vs_motifs.rankings.feather"
    db, load_s = best_of(lambda: load_ranking_db(db_path), repeats)
    ann = annotation_lookup(filter_annotations(read_motif_annotations(tmp / "bench.tbl")))
    sets = module_gene_sets(modules)
    params = PruneParams(rank_threshold=RANK_THRESHOLD)
    (enr, regs, _), ours_s = best_of(lambda: prune(sets, [db], ann, params), repeats)
    print(f"inputs: {N_MOTIFS} motifs x {N_GENES} genes, {modules['module'].nunique()} modules "
          f"({len(modules)} module genes), rank_threshold {RANK_THRESHOLD}")
    print(f"{'tool':12s} {'seconds':>8s}  what")
    print(f"{'fatescope':12s} {ours_s:8.4f}  complete: AUC+NES+annotations+leading edges+regulons "
          f"({len(enr)} enriched rows, {regs['regulon'].nunique()} regulons); DB load {load_s:.3f} s (separate)")
    db_frame = pd.read_feather(db_path).set_index("motifs")
    tbl = pd.read_csv(tmp / "bench.tbl", sep="\t")
    try:
        ref, s = best_of(lambda: pyscenic_like(db_frame, modules, tbl), 1)
        both = enr.merge(ref, on=["module", "motif"], how="outer", indicator=True)
        same = (both["_merge"] == "both").all() and (both["rank_at_max_x"] == both["rank_at_max_y"]).all() and \
            (both["n_targets_x"] == both["n_targets_y"]).all()
        print(f"{'pySCENIC':12s} {s:8.4f}  ctxcore per module, leading edges; same rows/RankAtMax/targets: {same}; "
              f"max|dAUC| {np.abs(both['auc_x'] - both['auc_y']).max():.1e}, max|dNES| {np.abs(both['nes_x'] - both['nes_y']).max():.1e}")
    except ImportError as exc:
        print(f"{'pySCENIC':12s} not importable ({exc})")
    try:
        import rustscenic.cistarget as rc
        sets_r = [(n, list(g)) for n, _, g, _ in sets]
        _, s = best_of(lambda: rc.enrich(db_frame, sets_r, auc_threshold=0.0), repeats)
        print(f"{'rustscenic':12s} {s:8.4f}  enrich (AUC, NES) only")
    except ImportError as exc:
        print(f"{'rustscenic':12s} not importable ({exc})")
    try:
        import torch
        from flashscenic.cistarget import CisTargetPruner
        pruner = CisTargetPruner(rank_threshold=RANK_THRESHOLD, device="cpu")
        pruner.load_from_tensor(db_frame.to_numpy(), list(db_frame.index), list(db_frame.columns))
        idx = [pruner.genes_to_indices(list(g)) for _, _, g, _ in sets]
        _, s = best_of(lambda: [pruner.prune(i) for i in idx], repeats)
        print(f"{'flashscenic':12s} {s:8.4f}  CPU, enrichment per module, no annotation join, no leading-edge lists "
              f"(torch {torch.__version__})")
    except ImportError as exc:
        print(f"{'flashscenic':12s} not importable ({exc})")


def real_scale(n_motifs: int = 5900, n_genes: int = 27000, n_modules: int = 1000) -> None:
    import resource

    from fatescope.regulons.prune import PruneParams, module_gene_sets, prune
    from fatescope.regulons.rankdb import load_ranking_db
    rng = np.random.default_rng(1)
    tmp = Path(tempfile.mkdtemp(prefix="prune_real_"))
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    ranks = np.empty((n_motifs, n_genes), dtype=np.int16)
    for m in range(n_motifs):
        ranks[m] = rng.permutation(n_genes)
    import pyarrow as pa
    import pyarrow.feather as feather
    table = pa.table({**{g: ranks[:, i] for i, g in enumerate(genes)}, "motifs": [f"m{m:05d}" for m in range(n_motifs)]})
    feather.write_feather(table, tmp / "real.genes_vs_motifs.rankings.feather")
    del ranks, table
    tfs = genes[:500]
    ann = pd.DataFrame({"tf": rng.choice(tfs, n_motifs // 10), "motif": [f"m{m:05d}" for m in
                        rng.choice(n_motifs, n_motifs // 10, replace=False)], "qvalue": 0.0, "identity": 1.0,
                        "annotation": "random"})
    mods = [(f"M{i:04d}", str(rng.choice(tfs)), g, 1.0) for i in range(n_modules)
            for g in rng.choice(genes, int(rng.integers(50, 151)), replace=False)]
    sets = module_gene_sets(pd.DataFrame(mods, columns=["module", "tf", "target", "weight"]))
    t = time.perf_counter()
    db = load_ranking_db(tmp / "real.genes_vs_motifs.rankings.feather")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    enr, regs, _ = prune(sets, [db], ann, PruneParams(rank_threshold=5000))
    print(f"real scale: {n_motifs} motifs x {n_genes} genes, {n_modules} modules: load {load_s:.2f} s (once), "
          f"prune {time.perf_counter() - t:.2f} s, {len(enr)} enriched rows; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--real-scale", action="store_true")
    a = p.parse_args()
    main(a.repeats)
    if a.real_scale:
        real_scale()
