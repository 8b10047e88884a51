"""Named, independent random streams derived from one seed.

Each part of the model draws from its own child of ``SeedSequence(seed)``, so outputs are
deterministic, samples can be generated one at a time in any order, and changing one part
(say the number of motifs) does not reshuffle the draws of another.
"""
from __future__ import annotations

import numpy as np

STREAMS = {"genes": 0, "guides": 1, "fate_effects": 2, "cells": 3, "expression": 4, "cistarget": 5, "sample_counts": 6}


def stream(seed: int, name: str, *index: int) -> np.random.Generator:
    """Generator for stream ``name`` (and e.g. a sample index) of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS[name], *index)))
