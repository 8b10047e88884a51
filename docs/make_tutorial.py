"""Write docs/tutorial.ipynb from the cells below (committed without outputs; python/tests/test_tutorial.py
executes it and checks that this script reproduces the committed file).

    python docs/make_tutorial.py
"""
from __future__ import annotations

from pathlib import Path

import nbformat

SIZES = ("n_cells=800, n_genes=400, n_days=2, n_replicates=2, n_tfs=4, targets_per_tf=20,\n"
         "                  n_perturbed_genes=16, guides_per_gene=2, n_ntc_guides=2, kmax=4, n_motifs=60")

CELLS = [
    ("markdown", """# fatescope tutorial: from a simulated screen to ranked hits

This notebook walks through the Python API (`import fatescope as fs`) on a small simulated time-course
CRISPRi Perturb-seq experiment with planted truth: simulate -> QC -> integration and embedding ->
regulons -> fate model -> mash shrinkage -> ranked hits -> figures. Each `fs.tl` / `fs.pp` call is what the
pipeline stage of the same name runs (same options, same defaults, same numbers on the same seed).

Everything is sized to finish in about a minute on two CPU cores: an 800-cell experiment and short
training runs (`n_steps`, `num_steps`, ... well below their defaults). On real data keep the defaults."""),
    ("code", """import logging

import pandas as pd

import fatescope as fs

logging.basicConfig(level=logging.WARNING)"""),
    ("markdown", """## 1. Simulate

`fatescope simulate` writes per-sample counts, guide calls and fate probabilities, a samplesheet and guide
map, a synthetic cisTarget ranking database with motif annotations and a TF list, and the truth tables
(`docs/simulate.md`). Here: 2 days x 2 replicates, 16 perturbed genes of which some have a planted effect
on fate, 4 TFs with planted regulons."""),
    ("code", f"""sheet = fs.datasets.simulate(outdir="sim", seed=3, {SIZES})
truth = pd.read_csv("sim/truth/sim_recovery.csv")
planted = set(truth.loc[truth["hit_gene"], "gene"])
sorted(planted)"""),
    ("markdown", """## 2. Load and QC
`fs.read_samples` reads every sample of the samplesheet (h5ad, 10x .h5 or MatrixMarket), attaches guide
calls (`obsm["guides"]`) and fate probabilities (`obsm["fate_probs"]`) and concatenates them; `fs.pp.qc`
filters cells and genes in place and keeps the raw counts in `layers["counts"]`."""),
    ("code", """guide_map = "sim/guide_map.csv"
adata = fs.read_samples(sheet, guide_map)
fs.pp.qc(adata, min_features=50)
adata"""),
    ("markdown", """## 3. Integrate and embed

Harmony on the PCA of 200 highly variable genes (the default, a SCALEX VAE then Harmony on its latent,
trains for minutes); then the neighbour graph, Leiden clusters and UMAP."""),
    ("code", """model = fs.tl.integrate(adata, method="harmony", harmony_on="pca", batch_key="batch", n_top_features=200,
                        device="cpu")
fs.tl.embed(adata, seed=0)
adata.obs["leiden"].value_counts()"""),
    ("markdown", """## 4. Regulons

RegDiffusion GRN (100 training steps instead of 1000), modules (the top-50 targets per TF), cisTarget
pruning against the simulated ranking database, then AUCell scores per cell (`obsm["X_aucell"]`)."""),
    ("code", """from fatescope.regulons.rankdb import load_ranking_db

adjacency = fs.tl.grn(adata, tfs="sim/resources/tf_list.txt", n_steps=100, device="cpu")
mods = fs.tl.modules(adjacency, percentile_thresholds=[], top_n_per_target=[], min_targets=10)
db = load_ranking_db("sim/resources/sim.genes_vs_motifs.rankings.feather")
pruned = fs.tl.prune(mods, [db], "sim/resources/motifs.tbl", pruning_rank_threshold=db.n_genes // 2,
                     pruning_device="cpu")
fs.tl.aucell(adata, pruned.regulons, layer="counts", device="cpu")
pruned.regulons.groupby("regulon").size()"""),
    ("markdown", """How many of the regulons' targets are planted targets of their TF:"""),
    ("code", """regulon_truth = pd.read_csv("sim/truth/regulons_truth.csv")
planted_edges = set(zip(regulon_truth["tf"], regulon_truth["target"]))
found = pruned.regulons[pruned.regulons["target"] != pruned.regulons["tf"]]
regulon_precision = sum((t, g) in planted_edges for t, g in zip(found["tf"], found["target"])) / len(found)
regulon_precision"""),
    ("markdown", """## 5. Fate model, mash and ranked hits
The fate model estimates each knockdown's effect on each fate per day (500 SVI steps here); mash shrinks
the daywise effects across days, and `rank_hits` calls the hits (lfsr and effect-size rules)."""),
    ("code", """from fatescope.io.annotations import read_guide_map
fit = fs.tl.fate_fit(adata, read_guide_map(guide_map), num_steps=500, min_steps=200, num_draws=200, device="cpu")
shrunk = fs.tl.mash(fit.gene_daywise(), mode="conservative", device="cpu").to_frame()
hits, _ = fs.tl.rank_hits(shrunk)
called = set(hits.loc[hits["hit_anyday"], "gene"])
hit_precision = len(called & planted) / max(len(called), 1)
hit_recall = len(called & planted) / len(planted)
hits.head()"""),
    ("markdown", """## 6. Figures
Each `fs.pl` function returns a matplotlib Figure (the report's figures)."""),
    ("code", """figures = [fs.pl.umap(adata, color="batch"), fs.pl.umap(adata, color="leiden"),
           fs.pl.regulon_heatmap(adata, groupby="leiden"), fs.pl.fate_heatmap(shrunk, hits),
           fs.pl.volcano(shrunk, hits)]
figures[-1]"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    cells = [nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
             for kind, text in CELLS]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: the file only changes when the text does
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}})
    return nb


if __name__ == "__main__":
    nbformat.write(build(), Path(__file__).with_name("tutorial.ipynb"))
