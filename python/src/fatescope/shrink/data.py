"""The mash data object: effects, standard errors, alpha (0 = EE, 1 = EZ) and the null correlation V.

Mirrors ``mashr::mash_set_data`` for complete data: with alpha != 0 the effects are scaled by
``Shat^-alpha`` and the standard errors become ``Shat^(1-alpha)``; ``shat_alpha`` keeps the factor
to scale posteriors and log-likelihoods back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MashData:
    bhat: np.ndarray          # J x R (scaled by shat_alpha^-1)
    shat: np.ndarray          # J x R
    shat_alpha: np.ndarray    # J x R (ones when alpha == 0)
    V: np.ndarray             # R x R null correlation
    alpha: float = 0.0

    @property
    def n_effects(self) -> int:
        return self.bhat.shape[0]

    @property
    def n_conditions(self) -> int:
        return self.bhat.shape[1]

    def common_shat(self) -> bool:
        """True when every row of shat (and of shat_alpha) is the same: one covariance for all effects."""
        return bool(np.all(self.shat == self.shat[:1]) and np.all(self.shat_alpha == self.shat_alpha[:1]))

    def subset(self, rows) -> MashData:
        return MashData(self.bhat[rows], self.shat[rows], self.shat_alpha[rows], self.V, self.alpha)


def check_correlation(V: np.ndarray, R: int) -> np.ndarray:
    V = np.asarray(V, dtype=np.float64)
    if V.shape != (R, R):
        raise ValueError(f"null correlation V must be {R} x {R}, got {V.shape}")
    if not np.allclose(V, V.T) or np.any(np.linalg.eigvalsh(V) <= 0):
        raise ValueError("null correlation V must be symmetric positive definite")
    return V


def set_data(bhat, shat, alpha: float = 0.0, V: np.ndarray | None = None) -> MashData:
    """Validated mash data (finite effects, positive finite standard errors)."""
    bhat = np.asarray(bhat, dtype=np.float64)
    shat = np.broadcast_to(np.asarray(shat, dtype=np.float64), bhat.shape).copy()
    if bhat.ndim != 2 or bhat.shape[0] == 0:
        raise ValueError(f"effects must be a non-empty J x R matrix, got shape {bhat.shape}")
    if not np.all(np.isfinite(bhat)):
        raise ValueError("effects contain NaN or infinite values")
    if not np.all(np.isfinite(shat)) or np.any(shat <= 0):
        raise ValueError("standard errors must be finite and positive")
    V = np.eye(bhat.shape[1]) if V is None else check_correlation(V, bhat.shape[1])
    if alpha != 0 and not np.all(shat == 1):
        shat_alpha = shat ** alpha
        bhat, shat = bhat / shat_alpha, shat ** (1 - alpha)
    else:
        shat_alpha = np.ones_like(shat)
    return MashData(bhat, shat, shat_alpha, V, float(alpha))


def with_V(data: MashData, V: np.ndarray) -> MashData:
    return MashData(data.bhat, data.shat, data.shat_alpha, check_correlation(V, data.n_conditions), data.alpha)


def estimate_null_correlation_simple(data: MashData, z_thresh: float = 2.0, est_cor: bool = True) -> np.ndarray:
    """mashr's ``estimate_null_correlation_simple``: correlation of z-scores of effects with max |z| < z_thresh.

    Raises ValueError when fewer null-looking effects than conditions exist (as mashr does).
    """
    z = data.bhat / data.shat
    nullish = np.abs(z).max(axis=1) < z_thresh
    if nullish.sum() < data.n_conditions:
        raise ValueError(f"not enough null data to estimate null correlation ({int(nullish.sum())} effects with "
                         f"max |z| < {z_thresh}, need >= {data.n_conditions})")
    Vhat = np.atleast_2d(np.cov(z[nullish], rowvar=False))
    if est_cor:
        d = np.sqrt(np.diag(Vhat))
        Vhat = Vhat / np.outer(d, d)
        np.fill_diagonal(Vhat, 1.0)
    return Vhat
