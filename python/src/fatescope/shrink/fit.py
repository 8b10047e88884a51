"""A fitted mash prior (weights, grid, covariances, V, alpha) and its JSON form for reuse (fixg)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .likelihood import expand_cov


@dataclass
class MashFit:
    ulist: dict[str, np.ndarray]      # normalised covariances, mashr's names and order
    grid: np.ndarray
    pi: np.ndarray                    # null (if usepointmass) then for each grid value all covariances
    usepointmass: bool
    V: np.ndarray
    alpha: float
    conditions: list[str]
    loglik: float | None = None
    info: dict = field(default_factory=dict)

    def expanded(self) -> np.ndarray:
        return expand_cov(list(self.ulist.values()), self.grid, self.usepointmass)

    def component_names(self) -> list[str]:
        names = [f"{u}.{g + 1}" for g in range(len(self.grid)) for u in self.ulist]
        return (["null"] if self.usepointmass else []) + names

    def pi_cov(self) -> dict[str, float]:
        """Weights summed over the grid per covariance (``get_estimated_pi(m, "cov")``)."""
        pi = self.pi[1:] if self.usepointmass else self.pi
        sums = pi.reshape(len(self.grid), len(self.ulist)).sum(axis=0)
        out = {"null": float(self.pi[0])} if self.usepointmass else {}
        out.update({name: float(v) for name, v in zip(self.ulist, sums)})
        return out

    def to_json(self) -> str:
        return json.dumps({
            "format": "fatescope-mash-fit/1", "conditions": self.conditions, "alpha": self.alpha,
            "usepointmass": self.usepointmass, "loglik": self.loglik, "V": self.V.tolist(),
            "grid": self.grid.tolist(), "ulist": {k: v.tolist() for k, v in self.ulist.items()},
            "pi": dict(zip(self.component_names(), self.pi.tolist())), "pi_cov": self.pi_cov(), "info": self.info,
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> MashFit:
        """A fit from ``to_json``; raises ValueError naming the first field that is not a valid prior."""
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != "fatescope-mash-fit/1":
            raise ValueError("not a fatescope mash fit (format 'fatescope-mash-fit/1' expected)")
        try:
            fit = cls(ulist={k: np.asarray(v, dtype=np.float64) for k, v in d["ulist"].items()},
                      grid=np.asarray(d["grid"], dtype=np.float64), pi=np.asarray(list(d["pi"].values()), dtype=np.float64),
                      usepointmass=bool(d["usepointmass"]), V=np.asarray(d["V"], dtype=np.float64), alpha=float(d["alpha"]),
                      conditions=[str(c) for c in d["conditions"]], loglik=d.get("loglik"), info=d.get("info", {}))
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"a field has the wrong type ({exc})") from None
        fit.check()
        return fit

    def check(self) -> None:
        """ValueError naming the field when this is not a usable prior."""
        r = len(self.conditions)
        n_comp = int(self.usepointmass) + len(self.grid) * len(self.ulist)
        if r == 0 or not self.ulist or not len(self.grid):
            raise ValueError("'conditions', 'ulist' and 'grid' must not be empty")
        if self.grid.ndim != 1 or not np.all(np.isfinite(self.grid)) or np.any(self.grid <= 0):
            raise ValueError(f"'grid' must hold finite positive scales, has {self.grid.tolist()[:5]}")
        for name, u in self.ulist.items():
            if u.shape != (r, r) or not np.all(np.isfinite(u)):
                raise ValueError(f"'ulist' {name!r} must be a finite {r} x {r} matrix (one row per condition)")
        if self.pi.shape != (n_comp,) or not np.all(np.isfinite(self.pi)) or np.any(self.pi < 0):
            raise ValueError(f"'pi' must hold {n_comp} finite non-negative weights (null + grid x covariances), "
                             f"has {self.pi.size}{' with negative or non-finite values' if self.pi.size == n_comp else ''}")
        if abs(self.pi.sum() - 1) > 1e-6:
            raise ValueError(f"'pi' must sum to 1, sums to {self.pi.sum():.6g}")
        if self.V.shape != (r, r) or not np.all(np.isfinite(self.V)) or not np.allclose(self.V, self.V.T):
            raise ValueError(f"'V' must be a finite symmetric {r} x {r} matrix")
        if np.linalg.eigvalsh(self.V).min() <= 0:
            raise ValueError("'V' (the null correlation of the errors) must be positive definite")
        if not (np.isfinite(self.alpha) and 0 <= self.alpha <= 1):
            raise ValueError(f"'alpha' must be in [0, 1], is {self.alpha}")
