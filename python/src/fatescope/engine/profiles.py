"""Param overrides of the named profiles; conf/test.config holds the same values for Nextflow.

The test profile keeps the whole simulated run (simulate -> ... -> diagnostics) to about two
minutes on a 2-core machine: a step cap on the fit (the plateau rule still stops it, at ~2,000
steps), smaller minibatches, fewer posterior draws, one torch thread (faster than two on a shared
machine). The diagnostics refits inherit the fit's step cap: a shorter permutation refit stops
before its plateau and overstates the null hits (8 instead of 1 with 400 steps).
"""

TEST_PROFILE: dict[str, object] = {
    "min_features": 300,
    "min_cells": 3,
    "fate_num_steps": 2500,
    "fate_min_steps": 400,
    "fate_plateau_window": 100,
    "fate_batch_size": 1024,
    "fate_num_draws": 200,
    "fate_threads": 1,
    "diag_threads": 1,
}

PROFILES = {"test": TEST_PROFILE}
