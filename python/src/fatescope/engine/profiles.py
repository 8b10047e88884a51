"""Param overrides of the named profiles; conf/test.config holds the same values for Nextflow."""

TEST_PROFILE: dict[str, object] = {
    "min_features": 300,
    "min_cells": 3,
}

PROFILES = {"test": TEST_PROFILE}
