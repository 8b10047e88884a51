"""``fatescope fate-probs``: per-cell fate probabilities (CellRank's pseudotime kernel and absorption
probabilities) on embed's kNN graph, for samples that bring none."""
from __future__ import annotations

import json
from pathlib import Path

import click
import scipy.sparse as sp

from ..io.outputs import staged_output
from ..io.readers import read_cells
from ..logs import get_logger
from ..pl._fate_probs import fate_probs as plot_fate_probs
from ..tl._fate_probs import fate_probs
from .common import api_default, outdir_option, stage_command
from .embed import read_labels

log = get_logger(__name__)
OUTPUTS = ("fate_probs.csv", "terminal_states.csv", "transition_matrix.npz", "fate_probs.json", "cells.h5ad")
PACKAGES = ["scipy", "numpy", "anndata", "matplotlib"]


def _d(name: str):
    """The API's default of option ``name`` (the one source of this stage's defaults)."""
    return api_default(fate_probs, name)


def run(input: str, outdir: str = "fate_probs", labels: str | None = None,
        pseudotime_key: str | None = _d("pseudotime_key"), root_key: str = _d("root_key"),
        root_states: str | None = _d("root_states"), terminal_key: str = _d("terminal_key"),
        terminal_states: str | None = _d("terminal_states"), connectivity_weight: float = _d("connectivity_weight"),
        b: float = _d("b"), nu: float = _d("nu"), n_comps: int = _d("n_comps"), solver: str = _d("solver"),
        tol: float = _d("tol")) -> Path:
    settings = dict(locals())
    adata = read_cells(input, what="the cells.h5ad of the embed stage (kNN graph in obsp['connectivities'])", min_cells=3)
    truth = read_labels(labels, terminal_key, adata.obs_names) if labels else None
    result = fate_probs(adata, pseudotime_key=pseudotime_key, root_key=root_key, root_states=root_states,
                        terminal_key=terminal_key, terminal_states=terminal_states, labels=truth,
                        connectivity_weight=connectivity_weight, b=b, nu=nu, n_comps=n_comps, solver=solver, tol=tol)
    names = list(result.probs.columns)
    summary = {"n_cells": adata.n_obs, "fates": names, "root_cell": result.root,
               "terminal_cells": {n: int((result.terminal == n).sum()) for n in names},
               "mean_probability": {n: float(result.probs[n].mean()) for n in names},
               "pseudotime": "obs[" + repr(pseudotime_key) + "]" if pseudotime_key else "diffusion pseudotime"}
    with staged_output(outdir, "fate-probs", settings, PACKAGES) as tmp:
        result.probs.rename_axis("cell").reset_index().to_csv(tmp / OUTPUTS[0], index=False, float_format="%.17g")
        result.terminal_table().to_csv(tmp / OUTPUTS[1], index=False)
        sp.save_npz(tmp / OUTPUTS[2], result.transition)
        (tmp / OUTPUTS[3]).write_text(json.dumps(summary, indent=1))
        adata.write_h5ad(tmp / OUTPUTS[4], compression="gzip")
        if "X_umap" in adata.obsm:
            plot_fate_probs(adata).savefig(tmp / "fate_probs_umap.png")
    log.info("fate-probs: %d cells, fates %s, outputs in %s", adata.n_obs, ", ".join(names), outdir)
    return Path(outdir) / OUTPUTS[0]


@stage_command("fate-probs", help="Fate probabilities of every cell when the samples bring none: a random walk on "
                                  "embed's kNN graph biased forward in (diffusion) pseudotime (CellRank's "
                                  "PseudotimeKernel, soft scheme), absorbed in terminal states (given, or found "
                                  "automatically). Writes fate_probs.csv (cell, one column per fate) for fate-fit.")
@click.option("--input", required=True, type=click.Path(dir_okay=False), help="cells.h5ad of the embed stage.")
@outdir_option("fate_probs")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Table (parquet/CSV, column 'cell') holding --terminal-key, when it is not in obs [default: none].")
@click.option("--pseudotime-key", default=_d("pseudotime_key"),
              help="obs column with a pseudotime to use [default: diffusion pseudotime from the root cells].")
@click.option("--root-key", default=_d("root_key"), help="obs column choosing the root cells of the diffusion pseudotime.")
@click.option("--root-states", default=_d("root_states"),
              help="Comma-separated values of --root-key that are root cells [default: its earliest day].")
@click.option("--terminal-key", default=_d("terminal_key"),
              help="obs column (or --labels column) whose values name the terminal states.")
@click.option("--terminal-states", default=_d("terminal_states"),
              help="Comma-separated values of --terminal-key that are terminal states, one fate each "
                   "[default: found automatically among its clusters].")
@click.option("--connectivity-weight", default=_d("connectivity_weight"), type=click.FloatRange(0, 1, max_open=True),
              help="Weight of the connectivity kernel mixed into the pseudotime kernel (CellRank's tutorials: 0.2).")
@click.option("--b", default=_d("b"), type=click.FloatRange(min=0, min_open=True),
              help="Soft scheme: steepness of the down-weighting of edges to earlier cells.")
@click.option("--nu", default=_d("nu"), type=click.FloatRange(min=0, min_open=True), help="Soft scheme: shape.")
@click.option("--n-comps", default=_d("n_comps"), type=click.IntRange(min=2),
              help="Diffusion components of the diffusion pseudotime.")
@click.option("--solver", default=_d("solver"), type=click.Choice(["auto", "direct", "gmres", "bicgstab"]),
              help="Linear solver of the absorption probabilities (auto: direct for small systems, gmres beyond).")
@click.option("--tol", default=_d("tol"), type=click.FloatRange(min=0, min_open=True),
              help="Relative tolerance of the iterative solver.")
def command(**kwargs) -> None:
    run(**kwargs)
