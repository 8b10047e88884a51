"""mashr's ``autoselect_grid`` (identical to ashr's ``autoselect.mixsd`` with mode 0)."""
from __future__ import annotations

import math

import numpy as np


def autoselect_grid(bhat: np.ndarray, shat: np.ndarray, mult: float = math.sqrt(2)) -> np.ndarray:
    """Grid of prior scales from min(shat)/10 up to 2*sqrt(max(bhat^2 - shat^2)), spaced by ``mult``."""
    bhat, shat = np.ravel(bhat), np.ravel(shat)
    keep = (shat != 0) & np.isfinite(shat) & ~np.isnan(bhat)
    bhat, shat = bhat[keep], shat[keep]
    gmin = shat.min() / 10
    gmax = 8 * gmin if np.all(bhat ** 2 <= shat ** 2) else 2 * math.sqrt(np.max(bhat ** 2 - shat ** 2))
    if mult == 0:
        return np.array([0.0, gmax / 2])
    npoint = math.ceil(math.log2(gmax / gmin) / math.log2(mult))
    return mult ** np.arange(-npoint, 1, dtype=np.float64) * gmax
