"""QC-like AnnData of a simulation without counts: guides, fate probabilities, day, replicate.

For tests and benchmarks of the fate model (the expression counts play no part in it).
"""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..simulate.dataset import Simulation, build_simulation
from ..simulate.guides import NO_GUIDE
from ..simulate.params import FATES, SimParams


def cells_anndata(sim: Simulation) -> ad.AnnData:
    """AnnData with the keys qc writes: obsm guides (CSR) / fate_probs, uns guide and fate names, obs day/replicate."""
    cells = sim.cells
    rows, slots = np.nonzero(sim.guides != NO_GUIDE)
    guides = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, sim.guides[rows, slots])),
                           shape=(len(cells), len(sim.library)))
    obs = pd.DataFrame({"day": pd.Categorical(cells["day"].astype(str)), "replicate": pd.Categorical(cells["replicate"].astype(str)),
                        "n_guides": np.diff(guides.indptr), "has_fate_probs": True},
                       index=pd.Index(cells["cell"].astype(str).to_numpy()))
    adata = ad.AnnData(X=sp.csr_matrix((len(cells), 1), dtype=np.float32), obs=obs)
    adata.obsm["guides"] = guides
    adata.obsm["fate_probs"] = sim.observed_fate_probs.astype(np.float64)
    adata.uns["guide_names"] = sim.library["guide_name"].to_numpy(str)
    adata.uns["guide_genes"] = sim.library["gene_name"].to_numpy(str)
    adata.uns["guide_is_ntc"] = sim.library["is_ntc"].to_numpy(bool)
    adata.uns["fate_names"] = np.asarray(FATES, dtype=str)
    return adata


def truth_table(sim: Simulation) -> pd.DataFrame:
    """``gene, fate, day, theta, hit_gene`` of the simulation (as truth/sim_recovery.csv)."""
    from ..simulate.truth import recovery_table
    return recovery_table(sim.effects, sim.perturbed_genes, sim.days)


def simulated_cells(**params) -> tuple[ad.AnnData, pd.DataFrame, Simulation]:
    """(AnnData, truth table, simulation) for ``SimParams(**params)``."""
    sim = build_simulation(SimParams(**params))
    return cells_anndata(sim), truth_table(sim), sim
