"""The whole simulated experiment: everything but the counts up front, counts one sample at a time."""
from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .cells import simulate_cells
from .cistarget import motif_annotations, motif_truth, ranking_db
from .design import sample_table
from .expression import ExpressionModel, draw_expression_model, sample_counts
from .fate import FateEffects, draw_fate_effects
from .genes import GeneCatalog, gene_catalog
from .guides import NO_GUIDE, choose_perturbed_genes, guide_library
from .params import FATES, SimParams
from .streams import stream


@dataclass(frozen=True)
class Simulation:
    params: SimParams
    samples: pd.DataFrame       # design.sample_table
    catalog: GeneCatalog
    perturbed_genes: pd.Index
    library: pd.DataFrame       # guide map rows, position = library index
    effects: FateEffects
    cells: pd.DataFrame         # cells.simulate_cells table, in sample order
    guides: np.ndarray          # (N, kmax) library indices, NO_GUIDE padded
    observed_fate_probs: np.ndarray  # (N, len(FATES))
    expression: ExpressionModel
    motifs: pd.DataFrame        # cistarget.motif_truth

    @property
    def days(self) -> list[str]:
        return list(dict.fromkeys(self.samples["day"]))

    @property
    def replicates(self) -> list[str]:
        return list(dict.fromkeys(self.samples["replicate"]))

    @property
    def db_genes(self) -> pd.Index:
        """Genes in the ranking DB: all but the mitochondrial ones (as in real cisTarget DBs)."""
        return self.catalog.names[self.catalog.table["role"].to_numpy() != "mito"]

    def cell_rows(self, sample_index: int) -> slice:
        start = int(self.samples["n_cells"].iloc[:sample_index].sum())
        return slice(start, start + int(self.samples["n_cells"].iat[sample_index]))


def build_simulation(params: SimParams) -> Simulation:
    """Draw design, genes, guides, fate effects, per-cell metadata and the expression model."""
    samples = sample_table(params)
    catalog = gene_catalog(stream(params.seed, "genes"), params)
    perturbed = choose_perturbed_genes(stream(params.seed, "guides"), catalog, params.n_perturbed_genes)
    library = guide_library(perturbed, params.guides_per_gene, params.n_ntc_guides)
    gene_of_guide = perturbed.get_indexer(library.loc[~library["is_ntc"], "gene_name"])
    effects = draw_fate_effects(stream(params.seed, "fate_effects"), params, gene_of_guide)
    cells, guides, observed = simulate_cells(stream(params.seed, "cells"), params, samples, effects)
    batches = list(dict.fromkeys(samples["batch"]))
    expression = draw_expression_model(stream(params.seed, "expression"), params, catalog, library, batches)
    motifs = motif_truth(stream(params.seed, "cistarget"), list(catalog.tfs), params.n_motifs)
    return Simulation(params, samples, catalog, perturbed, library, effects, cells, guides, observed, expression, motifs)


def sample_counts_anndata(sim: Simulation, sample_index: int) -> tuple[ad.AnnData, pd.DataFrame]:
    """One sample as cells x genes AnnData (raw counts, barcodes, gene symbols) + per-cell expression truth."""
    rows = sim.cell_rows(sample_index)
    cells = sim.cells.iloc[rows]
    batch_index = list(sim.expression.batches).index(sim.samples["batch"].iat[sample_index])
    counts, per_cell = sample_counts(stream(sim.params.seed, "sample_counts", sample_index), sim.expression, sim.params,
                                     sample_index, batch_index, cells["true_fate"].to_numpy(), cells["pseudotime"].to_numpy(),
                                     cells[[f"pi_{fate}" for fate in FATES]].to_numpy(), sim.guides[rows])
    adata = ad.AnnData(X=counts, obs=pd.DataFrame(index=pd.Index(cells["barcode"].to_numpy(str), name=None)),
                       var=pd.DataFrame(index=pd.Index(sim.catalog.names.to_numpy(str), name=None)))
    per_cell.index = cells.index
    return adata, per_cell


def guide_calls(sim: Simulation, sample_index: int) -> pd.DataFrame:
    """Long ``cell, guide`` table of one sample (raw barcodes); cells without guides have no rows."""
    rows = sim.cell_rows(sample_index)
    guides = sim.guides[rows]
    cell_pos, slot = np.nonzero(guides != NO_GUIDE)
    return pd.DataFrame({"cell": sim.cells["barcode"].to_numpy(str)[rows][cell_pos],
                         "guide": sim.library["guide_name"].to_numpy(str)[guides[cell_pos, slot]]})


def fate_prob_table(sim: Simulation, sample_index: int) -> pd.DataFrame:
    """``cell, EC, MES, NEU`` observed (noisy) fate probabilities of one sample."""
    rows = sim.cell_rows(sample_index)
    table = pd.DataFrame(sim.observed_fate_probs[rows], columns=list(FATES))
    table.insert(0, "cell", sim.cells["barcode"].to_numpy(str)[rows])
    return table


def cistarget_resources(sim: Simulation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranking DB table, .tbl motif annotations); seeded from the cistarget stream after the motifs."""
    rng = stream(sim.params.seed, "cistarget", 1)
    db = ranking_db(rng, sim.db_genes, sim.motifs, sim.expression.regulons)
    return db, motif_annotations(rng, sim.motifs, list(sim.catalog.all_tfs))
