"""Param overrides of the named profiles; conf/test.config holds the same values for Nextflow.

The test profile keeps the whole simulated run (simulate -> ... -> report) to a few minutes on a
2-core machine: a step cap on the fit (the plateau rule still stops it, at ~2,000 steps), smaller
minibatches, fewer posterior draws, one torch thread (faster than two on a shared machine). The
diagnostics refits inherit the fit's step cap: a shorter permutation refit stops before its
plateau and overstates the null hits (8 instead of 1 with 400 steps). Integration stops at 1,500
iterations; RegDiffusion trains 300 steps (150 leave the top-30 targets per TF 32% planted, 300
give 78%); modules are the top-50 targets per TF only (the percentile and top-N-per-target
modules hold most of the 1,200 simulated genes, and pruning keeps decoys from them: target
precision 0.32 instead of 0.97); the cisTarget recovery curve stops at rank 1,000 of the 1,200
genes of the simulated database. With computed fate probabilities (``--sim_fate_probs false``) the
terminal states are the simulated mature cells (truth's ``cell_type``: EC, MES, NEU), named as the
fate model's fates.
"""

TEST_PROFILE: dict[str, object] = {
    "outdir": "results",  # real data has no default outdir (--outdir required)
    "min_features": 300,
    "min_cells": 3,
    "fate_num_steps": 2500,
    "fate_min_steps": 400,
    "fate_plateau_window": 100,
    "fate_batch_size": 1024,
    "fate_num_draws": 200,
    "fate_threads": 1,
    "diag_threads": 1,
    "integrate_max_iteration": 1500,
    "integrate_threads": 1,
    "embed_assess": True,
    "embed_label_key": "true_fate",
    "grn_n_steps": 300,
    "module_percentile_thresholds": "",
    "module_top_n_per_target": "",
    "pruning_rank_threshold": 1000,
    "fate_probs_terminal_key": "cell_type",
    "fate_probs_terminal_states": "EC,MES,NEU",
}

PROFILES = {"test": TEST_PROFILE}
