"""Training loop for the fate model: seeded minibatch SVI with ClippedAdam and an ELBO-plateau stop.

Minibatches are slices of a per-epoch permutation (drawn from a seeded torch generator), so the
cost of a step grows with the batch size, not with the number of cells.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import ClippedAdam

from ..device import resolve_device
from ..logs import get_logger, progress_bar
from .batches import EpochBatches
from .elbo import DirectSVI, FusedClippedAdam
from .encoding import Encoding
from .guides import make_guide
from .model import FateData, FateModel, Priors, center, soft_cross_entropy
from .state import seeded

log = get_logger(__name__)


@dataclass(frozen=True)
class FitConfig:
    num_steps: int = 30000          # upper bound; training normally stops on the ELBO plateau
    min_steps: int = 3000
    batch_size: int = 8192
    lr: float = 0.01
    lr_final_factor: float = 0.1    # lr decays geometrically to lr * this at num_steps
    clip_norm: float = 10.0
    plateau_window: int = 500
    plateau_rel_tol: float = 2e-4   # stop when a window's mean loss improves by less than this (relative)
    plateau_patience: int = 2
    final_lr_drop: float = 0.1      # at the plateau, lr is multiplied by this and training goes on to a new plateau
    guide: str = "structured"
    rank: int | None = None
    posterior: str = "laplace"      # laplace: joint Laplace covariance around the guide's mean; guide: the guide itself
    likelihood_weight: float | None = None  # None = estimated (quasi-likelihood dispersion)
    seed: int = 0
    device: str = "auto"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    model: FateModel
    guide: object
    losses: np.ndarray              # per-step loss / n_cells
    steps: int
    plateau_step: int | None
    likelihood_weight: float
    seconds: float
    config: FitConfig
    notes: dict = field(default_factory=dict)


def fit_nuisance(data: FateData, steps: int = 300) -> dict[str, torch.Tensor]:
    """Full-batch maximum-likelihood fit of the nuisance-only model (alpha, b, gamma) by L-BFGS."""
    F, D, R = data.n_fates, data.n_days, data.n_replicates
    dev = data.probs.device
    alpha = torch.zeros(F, D, device=dev, requires_grad=True)
    b = torch.zeros(F, R, device=dev, requires_grad=True)
    gamma = torch.zeros(F, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([alpha, b, gamma], max_iter=steps, line_search_fn="strong_wolfe")
    idx = torch.arange(data.n_cells, device=dev)

    def closure():
        opt.zero_grad()
        loss = -soft_cross_entropy(nuisance_logits(idx, data, alpha, b, gamma), data.probs).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return {"alpha": alpha.detach(), "b": b.detach(), "gamma": gamma.detach()}


def nuisance_logits(idx, data: FateData, alpha, b, gamma) -> torch.Tensor:
    d = data.day[idx]
    eta = alpha.T[d] + center(b).T[data.replicate[idx]] + data.burden_centered[idx, None] * gamma
    return torch.cat([torch.zeros_like(eta[:, :1]), eta], dim=1)


def dispersion_weight(probs: torch.Tensor, pi: torch.Tensor) -> float:
    """Quasi-likelihood weight sum_i (1 - sum_f pi^2) / sum_i ||p_i - pi_i||^2.

    For p ~ Dirichlet(c pi) this is c + 1: the weight that makes the soft-label cross-entropy's
    curvature match the sampling variance of its score (sandwich-calibrated intervals).
    """
    expected = (1.0 - (pi ** 2).sum(-1)).sum()
    observed = ((probs - pi) ** 2).sum(-1).sum().clamp(min=1e-12)
    return float(expected / observed)


def estimate_likelihood_weight(data: FateData) -> float:
    """Weight from the residuals of the nuisance-only fit (conservative: gene effects inflate them)."""
    params = fit_nuisance(data)
    idx = torch.arange(data.n_cells, device=data.probs.device)
    with torch.no_grad():
        pi = torch.softmax(nuisance_logits(idx, data, **params), dim=-1)
    return dispersion_weight(data.probs, pi)


def plateau_reached(window_means: list[float], rel_tol: float, patience: int) -> bool:
    """True when each of the last ``patience`` windows improved by less than rel_tol * |mean|."""
    if len(window_means) < patience + 1:
        return False
    recent = window_means[-(patience + 1):]
    return all((a - b) < rel_tol * abs(b) for a, b in zip(recent[:-1], recent[1:]))


def fit(enc: Encoding, priors: Priors = Priors(), config: FitConfig = FitConfig(), use_guides: bool = True) -> FitResult:
    """Fit the model to an encoding; deterministic for a fixed seed on one device.

    The fit owns its parameters (``result.guide.params``) and its random streams: pyro's global param
    store and the caller's torch / numpy / random states are the same after it as before.
    """
    from .guides import POSTERIORS
    if config.posterior not in POSTERIORS:
        raise ValueError(f"unknown posterior {config.posterior!r}; expected one of {POSTERIORS}")
    with seeded(config.seed):
        return _fit(enc, priors, config, use_guides)


def _fit(enc: Encoding, priors: Priors, config: FitConfig, use_guides: bool) -> FitResult:
    device = resolve_device(config.device)
    data = FateData.from_encoding(enc, device)
    w = config.likelihood_weight
    model = FateModel(data, priors, w if w is not None else 1.0, use_guides)
    guide = make_guide(model, config.guide, config.rank)
    lrd = config.lr_final_factor ** (1.0 / max(config.num_steps, 1))
    if hasattr(guide, "rsample"):  # the fate model's own guides: the same steps without pyro's per-step tracing
        svi = DirectSVI(model, guide, FusedClippedAdam(config.lr, config.clip_norm, lrd))
    else:
        svi = SVI(model, guide, ClippedAdam({"lr": config.lr, "clip_norm": config.clip_norm, "lrd": lrd}), Trace_ELBO())
    batches = EpochBatches(data, config.batch_size, config.seed)
    result = FitResult(model, guide, np.empty(0), 0, None, model.w, 0.0, config)
    start = time.perf_counter()
    bar = progress_bar(config.num_steps, desc="fate-fit")
    losses: list[float] = []
    with guide.params:  # SVI reads and updates the guide's own parameters
        if w is None:
            model.w = estimate_likelihood_weight(data)
            result.notes["likelihood_weight_nuisance"] = model.w
            log.info("likelihood_weight: %.3g from nuisance-only residuals (first phase)", model.w)
            _train(svi, data, batches, config, losses, bar, config.num_steps // 2, config.min_steps // 2)
            result.notes["phase1_steps"] = len(losses)
            model.w = full_model_weight(result, data)
            log.info("likelihood_weight: %.3g from full-model residuals after %d steps", model.w, len(losses))
        plateau = _train(svi, data, batches, config, losses, bar, config.num_steps, config.min_steps)
        if plateau is not None and config.final_lr_drop < 1:
            # reduce-on-plateau: a last phase at a lower learning rate removes most minibatch jitter
            result.notes["first_plateau_step"] = plateau
            scale_learning_rate(svi.optim, config.final_lr_drop)
            plateau = _train(svi, data, batches, config, losses, bar, config.num_steps, 2 * config.plateau_window)
    bar.close()
    seconds = time.perf_counter() - start
    if w is None:
        result.notes["likelihood_weight_final_residuals"] = full_model_weight(result, data)
    steps = len(losses)
    if plateau is None:
        log.warning("fate-fit: no ELBO plateau within %d steps; consider more steps", steps)
    else:
        log.info("fate-fit: ELBO plateau at step %d (%.1f s, loss per cell %.4f)", plateau, seconds,
                 float(np.mean(losses[-config.plateau_window:])))
    result.losses, result.steps, result.plateau_step = np.asarray(losses), steps, plateau
    result.likelihood_weight, result.seconds = model.w, seconds
    if config.posterior == "laplace" and use_guides:
        result.guide = laplace_posterior(model, guide, result.notes)
    return result


def laplace_posterior(model: FateModel, guide, notes: dict):
    """The Laplace posterior around the guide's mean, or the guide itself when P x P is too large."""
    from .laplace import MAX_LATENTS, LaplaceGuide, n_latents
    size = n_latents(model.data, model.priors.s_eff > 0)
    if size > MAX_LATENTS:
        log.warning("fate-fit: %d latent effects exceed the Laplace limit %d; posterior sds come from the "
                    "variational guide (less well calibrated, see docs/fate.md)", size, MAX_LATENTS)
        notes["posterior"] = "guide"
        return guide
    start = time.perf_counter()
    out = LaplaceGuide(model, guide).fit()
    notes["posterior"] = "laplace"  # no timing in notes: fit_summary.json is compared bit for bit across runs
    notes["laplace_em_steps"] = out.em_steps
    log.info("fate-fit: joint Laplace posterior over %d latent effects, random-walk scales by %d Laplace-EM steps "
             "(%.1f s)", size, out.em_steps, time.perf_counter() - start)
    return out


def scale_learning_rate(optim: ClippedAdam | FusedClippedAdam, factor: float) -> None:
    if isinstance(optim, FusedClippedAdam):
        optim.lr *= factor
        return
    for opt in optim.optim_objs.values():
        for group in opt.param_groups:
            group["lr"] *= factor


def full_model_weight(result: FitResult, data: FateData) -> float:
    """Dispersion weight from the full model's residuals, with a degrees-of-freedom correction."""
    pi = model_probabilities(result)
    n_params = data.n_fates * (data.n_genes * data.n_days + data.n_guides + data.n_days + data.n_replicates + 1)
    return dispersion_weight(data.probs, pi) * max(0.5, 1.0 - n_params / (data.n_cells * data.n_fates))


def _train(svi, data: FateData, batches: EpochBatches, config: FitConfig, losses: list[float], bar,
           until: int, min_steps: int) -> int | None:
    """Step until the ELBO plateaus (return that step) or ``until`` steps in total (return None)."""
    full = config.batch_size >= data.n_cells
    windows: list[float] = []
    first = len(losses)
    while len(losses) < until:
        losses.append(svi.step(None if full else batches.next()) / data.n_cells)
        bar.update()
        done = len(losses) - first
        if done % config.plateau_window == 0:
            windows.append(float(np.mean(losses[-config.plateau_window:])))
            bar.set_postfix(elbo=f"{-windows[-1]:.4f}")
            if done >= min_steps and plateau_reached(windows, config.plateau_rel_tol, config.plateau_patience):
                return len(losses)
    return None


def model_probabilities(result: FitResult, idx: torch.Tensor | None = None) -> torch.Tensor:
    """(n, F + 1) fate probabilities of cells ``idx`` (all if None) at the posterior point estimates."""
    from .model import cell_logits, effects_table
    model, data = result.model, result.model.data
    p = result.guide.point()
    beta = effects_table(p, data) if model.use_guides else None
    with torch.no_grad():
        return torch.softmax(cell_logits(data.as_cells(idx), p["alpha"], p["b"], p["gamma"], beta, model.use_guides), dim=-1)
