"""The per-cell layer of the model: sample, guides, true fate probabilities, fate, pseudotime.

Everything here is small (a few numbers per cell), so it is drawn for all cells at once; only
the expression counts are generated sample by sample.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .design import cell_barcodes
from .fate import FateEffects, fate_logits, observed_fate_probs, softmax
from .guides import NO_GUIDE, assign_guides
from .params import FATES, SimParams

PSEUDOTIME_SD = 0.4  # spread of a cell's pseudotime around its day's centre, in units of days
MATURE_PSEUDOTIME = 0.9  # a cell this far along is a mature cell of its branch (cell_type = its fate)
PROGENITOR, TRANSITIONAL = "progenitor", "transitional"


def pseudotime(rng: np.random.Generator, day_index: np.ndarray, n_days: int) -> np.ndarray:
    """Pseudotime in [0, 1]: (day + 0.5 + N(0, PSEUDOTIME_SD)) / n_days, clipped; adjacent days overlap."""
    return np.clip((day_index + 0.5 + PSEUDOTIME_SD * rng.standard_normal(len(day_index))) / n_days, 0.0, 1.0)


def cell_types(true_fate: np.ndarray, pseudotime: np.ndarray) -> np.ndarray:
    """Annotation a user could name terminal states by: 'progenitor' while the progenitor program
    dominates (t < 0.5), the fate name for mature cells (t >= MATURE_PSEUDOTIME), else 'transitional'."""
    out = np.where(pseudotime < 0.5, PROGENITOR, TRANSITIONAL).astype(object)
    mature = pseudotime >= MATURE_PSEUDOTIME
    out[mature] = np.asarray(true_fate, dtype=object)[mature]
    return out


def simulate_cells(rng: np.random.Generator, params: SimParams, samples: pd.DataFrame,
                   effects: FateEffects) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Draw every cell's metadata; return (cells table, cells x kmax guide matrix, observed fate probs).

    The table has one row per cell in sample order: sample, barcode, cell (``<sample>_<barcode>``),
    day, replicate, batch, their indices, n_guides, n_ntc_guides, true pi per fate (``pi_<fate>``),
    true_fate (drawn from pi), pseudotime and cell_type (``cell_types``).
    """
    sample_of_cell = np.repeat(np.arange(len(samples)), samples["n_cells"].to_numpy())
    barcodes = np.concatenate([cell_barcodes(rng, n) for n in samples["n_cells"]])
    design = samples.iloc[sample_of_cell].reset_index(drop=True)
    guides = assign_guides(rng, len(design), params)
    burden = (guides != NO_GUIDE).sum(axis=1)
    day_index = design["day_index"].to_numpy()
    logits = fate_logits(effects, guides, day_index, design["replicate_index"].to_numpy(), float(burden.mean()))
    pi = softmax(logits)
    observed = observed_fate_probs(rng, pi, params.dirichlet_conc)
    cumulative = np.cumsum(pi, axis=1)
    true_fate = np.minimum((rng.random(len(pi))[:, None] > cumulative).sum(axis=1), len(FATES) - 1)
    table = pd.DataFrame({
        "cell": design["sample"].to_numpy() + "_" + barcodes,
        "sample": design["sample"].to_numpy(),
        "barcode": barcodes,
        "day": design["day"].to_numpy(),
        "replicate": design["replicate"].to_numpy(),
        "batch": design["batch"].to_numpy(),
        "day_index": day_index,
        "replicate_index": design["replicate_index"].to_numpy(),
        "n_guides": burden,
        "n_ntc_guides": (guides >= params.n_targeting_guides).sum(axis=1),
        **{f"pi_{fate}": pi[:, j] for j, fate in enumerate(FATES)},
        "true_fate": np.asarray(FATES, dtype=object)[true_fate],
        "pseudotime": pseudotime(rng, day_index, params.n_days),
    })
    table["cell_type"] = cell_types(table["true_fate"].to_numpy(), table["pseudotime"].to_numpy())
    for column in ("sample", "day", "replicate", "batch", "true_fate", "cell_type"):
        table[column] = pd.Categorical(table[column])
    return table, guides, observed
