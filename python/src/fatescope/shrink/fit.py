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
        d = json.loads(text)
        if d.get("format") != "fatescope-mash-fit/1":
            raise ValueError("not a fatescope mash fit (format 'fatescope-mash-fit/1' expected)")
        return cls(ulist={k: np.asarray(v, dtype=np.float64) for k, v in d["ulist"].items()},
                   grid=np.asarray(d["grid"], dtype=np.float64), pi=np.asarray(list(d["pi"].values()), dtype=np.float64),
                   usepointmass=bool(d["usepointmass"]), V=np.asarray(d["V"], dtype=np.float64), alpha=float(d["alpha"]),
                   conditions=list(d["conditions"]), loglik=d.get("loglik"), info=d.get("info", {}))
