"""Expression: programs, regulons, batch effects, knockdown, and negative-binomial counts.

Per cell i and gene j the log-weight is
    base[j] + sum_k covariate[i, k] * loading[k, j] + batch_log_fold[batch_i, j] + knockdown[i, j],
the mean is size_i * softmax_j(log-weight), and counts are gamma-Poisson (NB with shape r_j).
Covariates: the progenitor program (1 - pseudotime), one branch program per fate (pseudotime if
the cell's true fate is that branch, else 0, plus the lineage priming fate_priming x (1 - pseudotime)
x pi of that fate), one activity per TF, and a mitochondrial shift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .genes import GeneCatalog
from .guides import NO_GUIDE
from .params import FATES, PROGRAMS, SimParams

BASE_SD = 0.8               # spread of gene baseline log-weights
TF_BASE_SHIFT = 1.0         # TFs are expressed above the typical gene, so GRN inference sees them
MITO_SHARE = 0.04           # expected fraction of UMIs from mitochondrial genes
MARKER_AMPLITUDE = (1.5, 3.0)
TF_COUPLING = (0.5, 1.5)    # how strongly a TF's activity follows its home program
TF_NOISE_SD = 0.8           # cell-level TF activity independent of the programs
TARGET_WEIGHT = (0.6, 1.2)  # w of TF -> target edges (log-mean per unit activity)
DISPERSION_MEDIAN = 4.0     # NB shape r_j (variance = mu + mu^2 / r_j), log-normal across genes
DISPERSION_LOG_SD = 0.5
CELL_SIZE_LOG_SD = 0.3      # per-cell size factor around the sample's depth
SAMPLE_DEPTH_RANGE = (0.8, 1.25)  # per-sample sequencing depth factor, log-uniform
MITO_SHIFT_SD = 0.3         # per-cell log shift of mitochondrial genes
KNOCKDOWN_EFFICIENCY = (0.6, 0.9)  # fraction of the target's expression removed by a guide
CHUNK_ENTRIES = 2_000_000   # cells x genes generated at once (bounds memory within a sample)


@dataclass(frozen=True)
class ExpressionModel:
    genes: pd.Index
    base: np.ndarray            # (G,) baseline log-weights
    dispersion: np.ndarray      # (G,) NB shape r_j
    covariates: tuple[str, ...]  # names of the rows of ``loadings``
    loadings: np.ndarray        # (K, G)
    tf_home: np.ndarray         # (T,) program index each TF's activity follows
    tf_coupling: np.ndarray     # (T,)
    regulons: pd.DataFrame      # tf, target, weight (planted edges)
    batches: tuple[str, ...]
    batch_log_fold: np.ndarray  # (B, G)
    sample_depth: np.ndarray    # (S,) depth factor per sample
    knockdown_gene: np.ndarray  # (G_targeting,) gene column each targeting guide represses
    knockdown_log_fold: np.ndarray  # (G_targeting,) log(1 - efficiency)

    @property
    def tfs(self) -> list[str]:
        return [c.removeprefix("tf:") for c in self.covariates if c.startswith("tf:")]


def draw_expression_model(rng: np.random.Generator, params: SimParams, catalog: GeneCatalog, guide_library: pd.DataFrame,
                          batches: list[str]) -> ExpressionModel:
    """Draw every gene- and batch-level quantity of the expression model."""
    genes = catalog.names
    role = catalog.table["role"].to_numpy()
    base = rng.normal(0.0, BASE_SD, size=len(genes))
    is_tf = np.isin(role, ["tf", "tf_no_targets"])
    base[is_tf] += TF_BASE_SHIFT
    mito = role == "mito"
    nonmito_mass = np.exp(base[~mito]).sum()
    base[mito] = np.log(MITO_SHARE / (1 - MITO_SHARE) * nonmito_mass / mito.sum()) + rng.normal(0, 0.3, mito.sum())

    tfs = list(catalog.all_tfs)
    covariates = (*(f"program:{p}" for p in PROGRAMS), *(f"tf:{t}" for t in tfs), "mito_shift")
    loadings = np.zeros((len(covariates), len(genes)))
    for k, program in enumerate(PROGRAMS):
        markers = genes.get_indexer(catalog.markers_of(program))
        loadings[k, markers] = rng.uniform(*MARKER_AMPLITUDE, size=len(markers))
    edges = []
    for t, tf in enumerate(tfs):
        row = len(PROGRAMS) + t
        loadings[row, genes.get_loc(tf)] = 1.0  # a TF's log-expression carries its own activity
        targets = catalog.targets_of(tf)
        weights = rng.uniform(*TARGET_WEIGHT, size=len(targets))
        loadings[row, genes.get_indexer(targets)] = weights
        edges += list(zip([tf] * len(targets), targets, weights))
    loadings[-1, mito] = 1.0

    targeting = guide_library[~guide_library["is_ntc"]]
    return ExpressionModel(
        genes=genes,
        base=base,
        dispersion=np.exp(rng.normal(np.log(DISPERSION_MEDIAN), DISPERSION_LOG_SD, size=len(genes))),
        covariates=covariates,
        loadings=loadings,
        tf_home=rng.integers(len(PROGRAMS), size=len(tfs)),
        tf_coupling=rng.uniform(*TF_COUPLING, size=len(tfs)),
        regulons=pd.DataFrame(edges, columns=["tf", "target", "weight"]),
        batches=tuple(batches),
        batch_log_fold=rng.normal(0.0, params.batch_effect_sd, size=(len(batches), len(genes))),
        sample_depth=np.exp(rng.uniform(*np.log(SAMPLE_DEPTH_RANGE), size=params.n_samples)),
        knockdown_gene=genes.get_indexer(targeting["gene_name"]),
        knockdown_log_fold=np.log(1 - rng.uniform(*KNOCKDOWN_EFFICIENCY, size=len(targeting))),
    )


def program_activity(true_fate: np.ndarray, pseudotime: np.ndarray, pi: np.ndarray, priming: float) -> np.ndarray:
    """(N, len(PROGRAMS)): progenitor fades (1 - t); the branch of the true fate rises (t).

    With ``priming`` > 0 every branch is also active at priming x (1 - t) x pi of its fate: progenitors
    express the programs they are biased towards (multilineage priming), so a guide's shift of pi shows
    in expression before the cell commits, and fate probabilities computed from expression can see it.
    """
    branches = (true_fate[:, None] == np.asarray(FATES)[None, :]) * pseudotime[:, None]
    if priming > 0:
        branches = branches + priming * (1 - pseudotime)[:, None] * pi
    return np.concatenate([(1 - pseudotime)[:, None], branches], axis=1)


def cell_covariates(rng: np.random.Generator, model: ExpressionModel, true_fate: np.ndarray, pseudotime: np.ndarray,
                    pi: np.ndarray, priming: float) -> np.ndarray:
    """(N, K) covariates; TF activity = coupling * home-program activity + independent noise."""
    programs = program_activity(true_fate, pseudotime, pi, priming)
    noise = TF_NOISE_SD * rng.standard_normal((len(pseudotime), len(model.tf_home)))
    tf_activity = programs[:, model.tf_home] * model.tf_coupling + noise
    mito_shift = MITO_SHIFT_SD * rng.standard_normal((len(pseudotime), 1))
    return np.concatenate([programs, tf_activity, mito_shift], axis=1)


def _nb_counts(rng: np.random.Generator, model: ExpressionModel, covariates: np.ndarray, size: np.ndarray,
               batch_index: int, guides: np.ndarray) -> sp.csr_matrix:
    log_weight = model.base + covariates @ model.loadings + model.batch_log_fold[batch_index]
    rows, slots = np.nonzero((guides != NO_GUIDE) & (guides < len(model.knockdown_gene)))
    carried = guides[rows, slots]
    np.add.at(log_weight, (rows, model.knockdown_gene[carried]), model.knockdown_log_fold[carried])
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    mean = weight * (size / weight.sum(axis=1))[:, None]
    counts = rng.poisson(rng.gamma(model.dispersion, mean / model.dispersion))
    return sp.csr_matrix(counts.astype(np.float32))


def sample_counts(rng: np.random.Generator, model: ExpressionModel, params: SimParams, sample_index: int, batch_index: int,
                  true_fate: np.ndarray, pseudotime: np.ndarray, pi: np.ndarray,
                  guides: np.ndarray) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Counts of one sample (cells x genes CSR, float32 integers) and per-cell expression truth.

    Generated in chunks of about CHUNK_ENTRIES values, so memory is bounded by the sample's sparse
    matrix, not by cells x genes dense arrays.
    """
    n = len(pseudotime)
    covariates = cell_covariates(rng, model, true_fate, pseudotime, pi, params.fate_priming)
    size = params.library_size * model.sample_depth[sample_index] * np.exp(CELL_SIZE_LOG_SD * rng.standard_normal(n))
    step = max(1, CHUNK_ENTRIES // len(model.genes))
    blocks = [_nb_counts(rng, model, covariates[a: a + step], size[a: a + step], batch_index, guides[a: a + step])
              for a in range(0, n, step)]
    counts = sp.vstack(blocks, format="csr")
    per_cell = pd.DataFrame({
        "depth_factor": model.sample_depth[sample_index],
        "size_factor": size,
        "total_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.int64),
        "n_genes_detected": np.diff(counts.indptr).astype(np.int64),
        **{f"tf_activity_{tf}": covariates[:, len(PROGRAMS) + t] for t, tf in enumerate(model.tfs)},
    })
    return counts, per_cell
