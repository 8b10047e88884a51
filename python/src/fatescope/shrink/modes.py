"""The two analysis modes on a daywise effect table, for either engine.

conservative: canonical covariances, nullbiased prior. enriched: canonical plus ED-refined PCA
covariances of the strong effects (1-by-1 ash lfsr below a threshold), uniform prior. Both estimate
the null correlation V from null-looking effects first. An empty (or too small) strong set makes
the enriched mode fall back to the canonical covariances with a warning (mashr errors there).
Tables larger than ``fit_max_effects`` fit the weights on a seeded random subset and apply them to
every effect in batches (fixg). Posteriors are always fixg's, computed in batches fixed by the table: a saved fit
reused on the whole table, or on any span of its rows, gives the fitting run's bits.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..logs import get_logger
from .ash import strong_effects
from .covariances import cov_canonical, cov_pca
from .data import MashData, estimate_null_correlation_simple, set_data, with_V
from .ed import cov_ed
from .engine_python import FitOptions, apply_fit_effects, fit_mash
from .fit import MashFit
from .posterior import MashPosterior

log = get_logger(__name__)
MODES = ("conservative", "enriched")
DEFAULT_PRIOR = {"conservative": "nullbiased", "enriched": "uniform"}


@dataclass(frozen=True)
class MashSettings:
    mode: str = "conservative"
    alpha: float = 0.0
    estimate_v: bool = True
    z_thresh: float = 2.0
    gridmult: float = math.sqrt(2)
    prior: str = "auto"                # auto: nullbiased (conservative) / uniform (enriched)
    nullweight: float = 10.0
    usepointmass: bool = True
    normalize: bool = True
    strong_lfsr: float = 0.05
    npc: int = 2
    ed_tol: float = 1e-6
    pi_thresh: float = 1e-10
    fit_max_effects: int = 200_000
    seed: int = 0
    device: str = "auto"

    def resolved_prior(self) -> str:
        return DEFAULT_PRIOR[self.mode] if self.prior == "auto" else self.prior

    def fit_options(self) -> FitOptions:
        return FitOptions(gridmult=self.gridmult, normalize=self.normalize, usepointmass=self.usepointmass,
                          prior=self.resolved_prior(), nullweight=self.nullweight, pi_thresh=self.pi_thresh,
                          device=self.device)


@dataclass
class MashResult:
    """Posteriors and the fitted prior; ``ids``/``days`` (set by ``fs.tl.mash``) label the DataFrame views.
    ``posterior`` is None for a fit without posteriors; ``effect_loglik`` holds fixg's per-effect log-likelihoods."""
    posterior: MashPosterior | None
    fit: MashFit
    info: dict = field(default_factory=dict)
    ids: pd.DataFrame | None = None
    days: list[str] | None = None
    effect_loglik: np.ndarray | None = None

    def _frame(self, values: np.ndarray, prefix: str) -> pd.DataFrame:
        if self.ids is None or self.days is None:
            raise ValueError("this MashResult has no ids/days (fit it with fatescope.tl.mash)")
        return pd.DataFrame(values, columns=[f"{prefix}_{d}" for d in self.days],
                            index=pd.Index(self.ids.iloc[:, 0], name=self.ids.columns[0]))

    @property
    def postmean(self) -> pd.DataFrame:
        return self._frame(self.posterior.mean, "postmean")

    @property
    def postsd(self) -> pd.DataFrame:
        return self._frame(self.posterior.sd, "postsd")

    @property
    def lfsr(self) -> pd.DataFrame:
        return self._frame(self.posterior.lfsr, "lfsr")

    def to_frame(self) -> pd.DataFrame:
        """The id columns, then postmean_*, postsd_*, lfsr_* (the CLI's mash_<kind>_<mode>.csv)."""
        fields = [f.reset_index(drop=True) for f in (self.postmean, self.postsd, self.lfsr)]
        return pd.concat([self.ids.reset_index(drop=True), *fields], axis=1)


def null_correlation(data: MashData, settings: MashSettings, info: dict) -> MashData:
    if not settings.estimate_v:
        info["V"] = "identity"
        return data
    try:
        V = estimate_null_correlation_simple(data, settings.z_thresh)
    except ValueError as exc:
        log.warning("%s; using V = identity", exc)
        info["V"] = "identity (too few null-looking effects)"
        return data
    info["V"] = "estimate_null_correlation_simple"
    return with_V(data, V)


def choose_covariances(data: MashData, conditions: list[str], settings: MashSettings, info: dict) -> dict[str, np.ndarray]:
    ulist = cov_canonical(data.n_conditions, conditions)
    if settings.mode == "conservative":
        return ulist
    npc = min(settings.npc, data.n_conditions)
    strong = strong_effects(data.bhat, data.shat, settings.strong_lfsr)
    info["n_strong"] = len(strong)
    if npc < 2 or len(strong) < npc:
        log.warning("enriched mode: %d strong effects (1-by-1 lfsr < %g) and %d principal components possible; "
                    "falling back to the canonical covariances", len(strong), settings.strong_lfsr, npc)
        info["fallback"] = "canonical (strong set too small for PCA/ED)"
        return ulist
    pca = cov_pca(data.bhat[strong], npc)
    return {**ulist, **cov_ed(data, pca, strong, tol=settings.ed_tol)}


def run_mash(bhat: np.ndarray, shat: np.ndarray, conditions: list[str], settings: MashSettings,
             posterior: bool = True) -> MashResult:
    """Fit one mode on a J x R table of effects and standard errors; every effect gets a posterior (none with
    ``posterior=False``: the fit only, whose fixg over the table, in one piece or in spans, gives them)."""
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {settings.mode!r}")
    info: dict = {"mode": settings.mode, "settings": asdict(settings), "n_effects": int(bhat.shape[0])}
    data = null_correlation(set_data(bhat, shat, settings.alpha), settings, info)
    train = data
    if data.n_effects > settings.fit_max_effects:
        rows = np.sort(np.random.default_rng(settings.seed).choice(data.n_effects, settings.fit_max_effects, replace=False))
        train = data.subset(rows)
        info["fit_on"] = f"random subset of {settings.fit_max_effects} effects (seed {settings.seed}), fixg for all"
    ulist = choose_covariances(train, conditions, settings, info)
    fit, _ = fit_mash(train, ulist, conditions, settings.fit_options(), posterior=False)
    fit.info = info
    if not posterior:
        return MashResult(None, fit, info)
    post, loglik = apply_fit_effects(fit, data, settings.pi_thresh, settings.device)
    if train is not data:
        fit.loglik = math.fsum(loglik)  # of every effect: what the fixg runs of a chunked fit add up to
    return MashResult(post, fit, info, effect_loglik=loglik)


def run_fixg(bhat: np.ndarray, shat: np.ndarray, fit: MashFit, settings: MashSettings,
             span: tuple[int, int] | None = None) -> MashResult:
    """Posteriors under a previously fitted prior (its V and alpha are reused), of every effect or of rows
    ``span`` = (start, stop) only (the whole run's bits for those rows; the log-likelihood is then the span's)."""
    data = with_V(set_data(bhat, shat, fit.alpha), fit.V)
    post, loglik = apply_fit_effects(fit, data, settings.pi_thresh, settings.device, span)
    n = int(bhat.shape[0]) if span is None else span[1] - span[0]
    new = MashFit(fit.ulist, fit.grid, fit.pi, fit.usepointmass, fit.V, fit.alpha, fit.conditions, math.fsum(loglik),
                  {**fit.info, "fixg": True, "n_effects": n})
    return MashResult(post, new, new.info, effect_loglik=loglik)
