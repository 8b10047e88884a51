"""Prior covariance matrices: canonical (mashr ``cov_canonical``), PCA (``cov_pca``), normalisation.

A covariance list is an ordered dict name -> R x R array, in mashr's order and with mashr's names.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

Ulist = dict[str, np.ndarray]
CANONICAL = ("identity", "singletons", "equal_effects", "simple_het")


def cov_canonical(R: int, condition_names: list[str] | None = None,
                  methods: tuple[str, ...] = CANONICAL, het_corr: tuple[float, ...] = (0.25, 0.5, 0.75)) -> Ulist:
    """identity, one singleton per condition (named by condition), equal_effects, simple_het_1..3."""
    names = list(condition_names) if condition_names is not None else [f"singletons_{r + 1}" for r in range(R)]
    out: Ulist = {}
    for method in methods:
        if method == "identity":
            out["identity"] = np.eye(R)
        elif method == "singletons":
            for r in range(R):
                U = np.zeros((R, R))
                U[r, r] = 1.0
                out[names[r]] = U
        elif method == "equal_effects":
            out["equal_effects"] = np.ones((R, R))
        elif method == "simple_het":
            for i, c in enumerate(het_corr):
                if not -1 <= c <= 1:
                    raise ValueError("simple_het correlations must be between -1 and 1")
                U = np.full((R, R), float(c))
                np.fill_diagonal(U, 1.0)
                out[f"simple_het_{i + 1}"] = U
        else:
            raise ValueError(f"unknown canonical covariance {method!r}; choose from {CANONICAL}")
    return out


def normalize_ulist(ulist: Ulist) -> Ulist:
    """Divide each matrix by its largest diagonal element (when non-zero)."""
    out = {}
    for name, U in ulist.items():
        m = np.max(np.diag(U))
        out[name] = U / m if m != 0 else U.copy()
    return out


def cov_pca(bhat_strong: np.ndarray, npc: int) -> Ulist:
    """Rank-one covariances of the top ``npc`` right singular vectors (PCA_1..) plus tPCA = F D^2 F' / n."""
    n, R = bhat_strong.shape
    if not 1 < npc <= R:
        raise ValueError(f"npc must be in 2..{R}, got {npc}")
    _, d, vt = sla.svd(bhat_strong, full_matrices=False)
    f = vt[:npc].T
    out: Ulist = {f"PCA_{i + 1}": np.outer(f[:, i], f[:, i]) for i in range(npc)}
    out["tPCA"] = (f * d[:npc] ** 2) @ f.T / n
    return out


def check_psd(ulist: Ulist, R: int) -> None:
    for name, U in ulist.items():
        if U.shape != (R, R) or not np.all(np.isfinite(U)) or not np.allclose(U, U.T):
            raise ValueError(f"covariance {name!r} must be a finite symmetric {R} x {R} matrix")
        if np.any(np.linalg.eigvalsh(U) <= -1e-8):
            raise ValueError(f"covariance {name!r} is not positive semi-definite")
