"""Ground-truth tables that later stages are scored against (schemas in docs/simulate.md)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .expression import ExpressionModel
from .fate import NON_REFERENCE_FATES, FateEffects
from .genes import GeneCatalog
from .params import FATES, REFERENCE_FATE, TRUTH_THRESHOLD


def recovery_table(effects: FateEffects, perturbed_genes: pd.Index, days: list[str]) -> pd.DataFrame:
    """Long ``gene, fate, day, theta, is_hit, hit_gene``; is_hit = |theta| >= TRUTH_THRESHOLD."""
    n_genes, n_fates, n_days = effects.theta.shape
    table = pd.DataFrame({
        "gene": np.repeat(perturbed_genes.to_numpy(str), n_fates * n_days),
        "fate": np.tile(np.repeat(NON_REFERENCE_FATES, n_days), n_genes),
        "day": np.tile(days, n_genes * n_fates),
        "theta": effects.theta.ravel(),
        "hit_gene": np.repeat(effects.hit_gene, n_fates * n_days),
    })
    table.insert(4, "is_hit", np.abs(table["theta"].to_numpy()) >= TRUTH_THRESHOLD)
    return table


def guide_truth_table(effects: FateEffects, library: pd.DataFrame, model: ExpressionModel, days: list[str]) -> pd.DataFrame:
    """Long ``guide, gene, fate, day, beta, delta, knockdown_efficiency``; NTC guides are all 0."""
    n_targeting, n_fates, n_days = effects.beta.shape
    n_ntc = len(library) - n_targeting
    beta = np.concatenate([effects.beta, np.zeros((n_ntc, n_fates, n_days))])
    delta = np.concatenate([effects.delta, np.zeros((n_ntc, n_fates))])
    efficiency = np.concatenate([1 - np.exp(model.knockdown_log_fold), np.zeros(n_ntc)])
    per_guide = n_fates * n_days
    return pd.DataFrame({
        "guide": np.repeat(library["guide_name"].to_numpy(str), per_guide),
        "gene": np.repeat(library["gene_name"].to_numpy(str), per_guide),
        "fate": np.tile(np.repeat(NON_REFERENCE_FATES, n_days), len(library)),
        "day": np.tile(days, len(library) * n_fates),
        "beta": beta.ravel(),
        "delta": np.repeat(delta.ravel(), n_days),
        "knockdown_efficiency": np.repeat(efficiency, per_guide),
    })


def nuisance(effects: FateEffects, days: list[str], replicates: list[str], mean_burden: float) -> dict:
    """The non-gene fate parameters as plain YAML-ready values, keyed by fate (then day/replicate)."""
    def by_fate(values: np.ndarray, keys: list[str] | None = None) -> dict:
        return {f: (dict(zip(keys, map(float, values[i]))) if keys is not None else float(values[i]))
                for i, f in enumerate(NON_REFERENCE_FATES)}

    intervals = [f"{a}-{b}" for a, b in zip(days[:-1], days[1:])]
    return {
        "fates": list(FATES),
        "reference_fate": REFERENCE_FATE,
        "days": days,
        "replicates": replicates,
        "alpha": by_fate(effects.alpha, days),
        "b": by_fate(effects.b, replicates),
        "gamma": by_fate(effects.gamma),
        "tau": by_fate(effects.tau),
        "sigma_time": by_fate(effects.sigma_time, intervals),
        "sigma_guide": by_fate(effects.sigma_guide),
        "mean_burden": float(mean_burden),
        "truth_threshold": TRUTH_THRESHOLD,
        "n_hit_genes": int(effects.hit_gene.sum()),
        "n_null_genes": int((~effects.hit_gene).sum()),
    }


def batch_effects_table(model: ExpressionModel) -> pd.DataFrame:
    """Long ``batch, gene, log_fold`` (natural log, added to every cell of the batch)."""
    return pd.DataFrame({
        "batch": np.repeat(np.asarray(model.batches, dtype=str), len(model.genes)),
        "gene": np.tile(model.genes.to_numpy(str), len(model.batches)),
        "log_fold": model.batch_log_fold.ravel(),
    })


def genes_table(catalog: GeneCatalog, model: ExpressionModel, perturbed_genes: pd.Index, db_genes: pd.Index) -> pd.DataFrame:
    """One row per gene: role, program, regulator, perturbed, in_ranking_db, base log-weight, NB shape."""
    table = catalog.table.reset_index()
    table["perturbed"] = table["gene"].isin(perturbed_genes)
    table["in_ranking_db"] = table["gene"].isin(db_genes)
    table["base_log_weight"] = model.base
    table["nb_shape"] = model.dispersion
    return table
