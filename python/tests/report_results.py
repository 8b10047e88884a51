"""Small real results folders for the report tests, built with the stage commands at tiny sizes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SIZES = dict(n_cells=600, n_genes=400, n_tfs=4, targets_per_tf=20, n_perturbed_genes=8, guides_per_gene=2,
             n_ntc_guides=2, kmax=4, n_days=2, n_replicates=2, n_motifs=60)


def fate_chain(root: Path) -> Path:
    """simulate -> qc -> fate-fit (few steps) -> mash -> rank -> eval-recovery, as a run lays them out."""
    from fatescope.cli import eval_recovery, fate_fit, mash, qc, rank, simulate

    sheet = simulate.run(outdir=str(root / "simulate"), seed=3, **SIZES)
    gmap = str(root / "simulate" / "guide_map.csv")
    qc.run(str(sheet), outdir=str(root / "qc"), guide_map=gmap, min_features=50)
    fate_fit.run(str(root / "qc" / "cells.h5ad"), outdir=str(root / "fate"), guide_map=gmap, num_steps=200, min_steps=50,
                 num_draws=50, plateau_window=50, threads=1, device="cpu")
    mash.run([str(root / "fate" / "gene_daywise_for_mash.csv")], outdir=str(root / "mash"))
    rank.run(str(root / "mash" / "mash_gene_conservative.csv"), outdir=str(root / "rank"),
             enriched=str(root / "mash" / "mash_gene_enriched.csv"))
    eval_recovery.run(str(root / "fate" / "theta_posterior_summary.npz"), str(root / "simulate" / "truth" / "sim_recovery.csv"),
                      outdir=str(root / "eval-recovery"), hits=str(root / "rank" / "hits_ranked.csv"))
    return root


def planted_adjacency(root: Path, seed: int = 0) -> pd.DataFrame:
    """A GRN as a good inference gives it (planted edges strong, random decoys weaker): grn itself is too slow here."""
    truth = pd.read_csv(root / "simulate" / "truth" / "regulons_truth.csv")
    genes = pd.read_csv(root / "simulate" / "truth" / "genes.csv")["gene"].to_numpy()
    rng = np.random.default_rng(seed)
    rows = [(r.tf, r.target, 3.0 + 3.0 * r.weight) for r in truth.itertuples()]
    for tf in truth["tf"].unique():
        rows += [(tf, g, float(rng.uniform(1.5, 4.0))) for g in rng.choice(genes, 25, replace=False) if g != tf]
    return pd.DataFrame(rows, columns=["tf", "target", "importance"]).drop_duplicates(["tf", "target"])


def terminal_labels(cells_truth: Path) -> pd.DataFrame:
    """cell, terminal: the true fate of the last day's cells furthest along their branch, 'none' for the rest."""
    truth = pd.read_parquet(cells_truth)
    last = truth["day_index"] == truth["day_index"].max()
    late = last & (truth["pseudotime"] >= truth.loc[last, "pseudotime"].median())
    return pd.DataFrame({"cell": truth["cell"], "terminal": np.where(late, truth["true_fate"].astype(str), "none")})


def full_run(root: Path) -> Path:
    """fate_chain plus diagnostics, integrate (harmony), embed --assess, fate-probs, modules -> prune -> aucell, and
    eval-recovery again with the regulons."""
    from fatescope.cli import aucell, diagnostics, embed, eval_recovery, fate_probs, integrate, modules, prune
    from fatescope.regulons.rankdb import load_ranking_db

    fate_chain(root)
    cells, res, truth = str(root / "qc" / "cells.h5ad"), root / "simulate" / "resources", root / "simulate" / "truth"
    diagnostics.run(cells, str(root / "fate" / "fate_model.pt"), str(root / "fate" / "theta_posterior_summary.npz"),
                    outdir=str(root / "diagnostics"), guide_map=str(root / "simulate" / "guide_map.csv"), threads=1, device="cpu")
    integrate.run(cells, outdir=str(root / "integrate"), method="harmony", n_top_features=200)
    embed.run(str(root / "integrate" / "cells.h5ad"), outdir=str(root / "embed"), assess=True, label_key="true_fate",
              labels=str(truth / "cells.parquet"))
    terminal = root / "terminal_labels.csv"
    terminal_labels(truth / "cells.parquet").to_csv(terminal, index=False)
    fate_probs.run(str(root / "embed" / "cells.h5ad"), outdir=str(root / "fate_probs"), labels=str(terminal),
                   terminal_key="terminal", terminal_states="EC,MES,NEU")
    terminal.unlink()
    adjacency = root / "adjacency.parquet"
    planted_adjacency(root).to_parquet(adjacency, index=False)
    modules.run(str(adjacency), outdir=str(root / "modules"), min_targets=10)
    db = res / "sim.genes_vs_motifs.rankings.feather"
    prune.run(str(root / "modules" / "modules.parquet"), ranking_dbs=str(db), motif_annotations=str(res / "motifs.tbl"),
              outdir=str(root / "prune"), pruning_rank_threshold=load_ranking_db(db).n_genes // 2)
    aucell.run(cells, str(root / "prune" / "regulons.parquet"), outdir=str(root / "aucell"), device="cpu")
    eval_recovery.run(str(root / "fate" / "theta_posterior_summary.npz"), str(truth / "sim_recovery.csv"),
                      outdir=str(root / "eval-recovery"), hits=str(root / "rank" / "hits_ranked.csv"),
                      regulons=str(root / "prune" / "regulons.parquet"), regulon_truth=str(truth / "regulons_truth.csv"))
    adjacency.unlink()
    return root
