"""Laplace posterior of all effects jointly, from the variational mean to the mode (the calibrated sd of theta),
with the random-walk scales re-estimated from it and their uncertainty carried into the draws (``scales.py``).

Given the scale hyperparameters, the logits are linear in x = [alpha, b, gamma, u, z], so the
Hessian of the weighted soft-label log-likelihood is exactly J^T W J with J = d eta / d x and, per
cell, W_i = w (diag(pi) - pi pi^T) over the non-reference fates. Adding the prior precision and
inverting gives the joint posterior covariance of every gene's effects, including the cross-gene
terms that the per-gene variational blocks leave out: with MOI ~5 each estimate leans on the
co-carried guides of the other genes, and ignoring that made the hit genes' sds ~15% too small.
The t priors of z and u enter through their conditional precisions, (df + D) / (df + |z|^2) and
(df + 1) / (df + u^2) (the expected inverse scale of the normal scale mixture), the two-group prior of
z through the same expectation over its groups, which keeps the Hessian positive definite.
"""
from __future__ import annotations

import math

import numpy as np
import pyro
import scipy.sparse as sp
import torch
from pyro.distributions import constraints

from .model import (FateData, FateModel, cell_logits, deviation_prior, effects_table, efficiency_from_v, soft_cross_entropy,
                    theta_from_z)
from .scales import log_scale_sd, scales_m_step, step_scales, z_prior
from .state import owns_params

MAX_LATENTS = 12000  # dense P x P Hessian in float64: ~1.1 GiB at this size
PARAM = "laplace.precision_tril"
LOC = "laplace.loc"


SCALES = ("tau", "sigma_time", "sigma_guide", "sigma_eff")
EM_PARAMS = {site: f"laplace.{site}" for site in ("tau", "sigma_time", "null_frac", "null_width")}
SCALE_JACOBIAN = "laplace.scale_jacobian"  # (P, F * D) d mode / d log scale
SCALE_SD = "laplace.log_scale_sd"          # (F * D,) posterior sd of each log scale
SCALE_STEP = 0.05                          # log-scale step of the central differences
EM_STEPS = 30  # at most; the scales usually settle (em_tol) in far fewer
EM_TOL = 1e-3


def layout(data: FateData, efficiency: bool = False) -> list[tuple[str, tuple[int, ...]]]:
    F, D, R = data.n_fates, data.n_days, data.n_replicates
    out = [("alpha", (F, D)), ("b", (F, R)), ("gamma", (F,)), ("u", (data.n_guides, F)), ("z", (data.n_genes, F, D))]
    return out + [("v", (data.n_guides,))] if efficiency else out


def n_latents(data: FateData, efficiency: bool = False) -> int:
    return sum(math.prod(s) for _, s in layout(data, efficiency))


def _offsets(data: FateData, efficiency: bool = False) -> dict[str, int]:
    out, pos = {}, 0
    for name, shape in layout(data, efficiency):
        out[name] = pos
        pos += math.prod(shape)
    return out


def design(data: FateData, idx: np.ndarray, scales: dict[str, np.ndarray], efficiency: tuple | None = None) -> sp.csr_matrix:
    """(len(idx) * F, P) Jacobian d eta / d x of cells ``idx`` (row i * F + f), scale hyperparameters fixed.

    With guide efficiencies (``efficiency`` = (e, theta) at the current point: (G,) and (L, F, D)) the
    logits are bilinear in z and v; this is their Jacobian at that point (Gauss-Newton).
    """
    F, D, R = data.n_fates, data.n_days, data.n_replicates
    off, n = _offsets(data, efficiency is not None), len(idx)
    day = data.day.cpu().numpy()[idx]
    rep = data.replicate.cpu().numpy()[idx]
    kc = data.burden_centered.cpu().numpy()[idx].astype(np.float64)
    fates = np.arange(F)
    rows, cols, vals = [], [], []

    def add(r, c, v):
        r, c, v = np.broadcast_arrays(r, c, v)
        rows.append(r.ravel())
        cols.append(c.ravel())
        vals.append(v.ravel().astype(np.float64))

    cell_rows = np.arange(n)[:, None] * F + fates[None, :]                     # (n, F)
    add(cell_rows, off["alpha"] + fates[None, :] * D + day[:, None], 1.0)
    for r in range(R):
        add(cell_rows, off["b"] + fates[None, :] * R + r, (rep[:, None] == r) - 1.0 / R)
    add(cell_rows, off["gamma"] + fates[None, :], kc[:, None])

    gids = data.guide_ids.cpu().numpy()[idx].astype(np.int64)
    mask = data.mask.cpu().numpy()[idx]
    cell, slot = np.nonzero((gids > 0) & (mask > 0))
    g, w = gids[cell, slot], mask[cell, slot].astype(np.float64)
    gene_of_guide = data.gene_of_guide.cpu().numpy()
    gene = gene_of_guide[g]                                                        # 1-based
    step = np.concatenate([scales["tau"][:, None], scales["sigma_time"]], axis=1)  # (F, D)
    # z: theta[l, f, d] = sum_{j <= d} step[f, j] z[l, f, j]
    j = np.arange(D)
    zrow = cell[:, None, None] * F + fates[None, :, None]
    zcol = off["z"] + ((gene[:, None, None] - 1) * F + fates[None, :, None]) * D + j[None, None, :]
    zval = w[:, None, None] * step[None] * (j[None, None, :] <= day[cell][:, None, None])
    if efficiency is not None:
        zval = zval * (1 + efficiency[0][g - 1])[:, None, None]
    add(zrow, zcol, zval)
    # u: delta[g, f] = sigma_guide[f] (u[g, f] - mean of u over the gene's guides)
    counts = np.bincount(gene_of_guide[1:], minlength=data.n_genes + 1)
    members = np.full((data.n_genes + 1, counts.max()), -1)
    order = np.argsort(gene_of_guide[1:], kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for pos, guide in enumerate(order + 1):
        l = gene_of_guide[guide]
        members[l, pos - starts[l]] = guide
    other = members[gene]                                                          # (pairs, max n_l)
    present = other > 0
    coef = ((other == g[:, None]).astype(np.float64) - 1.0 / counts[gene][:, None]) * present
    urow = cell[:, None, None] * F + fates[None, None, :]
    ucol = off["u"] + (np.maximum(other, 1) - 1)[:, :, None] * F + fates[None, None, :]
    uval = (w[:, None] * coef)[:, :, None] * scales["sigma_guide"][None, None, :]
    add(urow, ucol, uval)
    if efficiency is not None:  # e_g = sigma_eff (v_g - mean of v over the gene's guides) scales theta[l, :, d]
        theta_cell = efficiency[1][gene - 1, :, day[cell]]                           # (pairs, F)
        vval = (w[:, None] * coef * scales["sigma_eff"][0])[:, :, None] * theta_cell[:, None, :]
        add(urow, off["v"] + (np.maximum(other, 1) - 1)[:, :, None], vval)
    shape = (n * F, n_latents(data, efficiency is not None))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)


def flat_point(point: dict[str, torch.Tensor], data: FateData) -> torch.Tensor:
    return torch.cat([point[name].reshape(-1).double().cpu() for name, _ in layout(data, "v" in point)])


def unflatten(x: torch.Tensor, data: FateData, efficiency: bool = False) -> dict[str, torch.Tensor]:
    """Split (..., P) into the latent sites (leading dimensions kept)."""
    out, pos = {}, 0
    for name, shape in layout(data, efficiency):
        k = math.prod(shape)
        out[name] = x[..., pos:pos + k].reshape(*x.shape[:-1], *shape)
        pos += k
    return out


def log_joint_grad(model: FateModel, point: dict[str, torch.Tensor], chunk: int = 50000) -> torch.Tensor:
    """(P,) gradient of the log joint (all cells, scales fixed) with respect to the flat latent vector."""
    data, pr = model.data, model.priors
    x = flat_point(point, data).to(data.probs.device).requires_grad_(True)
    sites = unflatten(x, data, "v" in point)
    scales = {k: point[k].detach().double() for k in SCALES if k in point}
    beta = effects_table({**scales, **sites}, data)
    total = -(sites["alpha"] ** 2).sum() / (2 * pr.s_alpha ** 2) - (sites["b"] ** 2).sum() / (2 * pr.s_rep ** 2) \
        - (sites["gamma"] ** 2).sum() / (2 * pr.s_gamma ** 2) - sum((sites[k] ** 2).sum() / 2 for k in ("v",) if k in sites) \
        + deviation_prior(pr.effect_df, tuple(sites["u"].shape), x.device).log_prob(sites["u"]) \
        + z_prior(pr, point, x.device).log_prob(sites["z"])
    for start in range(0, data.n_cells, chunk):
        idx = torch.arange(start, min(start + chunk, data.n_cells), device=x.device)
        logits = cell_logits(data.as_cells(idx), sites["alpha"], sites["b"], sites["gamma"], beta)
        total = total + model.w * soft_cross_entropy(logits, data.probs.index_select(0, idx).double()).sum()
    (grad,) = torch.autograd.grad(total, x)
    return grad.cpu()


def precision(model: FateModel, point: dict[str, torch.Tensor], chunk: int = 50000) -> np.ndarray:
    """(P, P) posterior precision at ``point``: J^T W J over all cells plus the prior precision."""
    H = likelihood_hessian(model, point, chunk)
    H[np.diag_indices(H.shape[0])] += prior_precision(model, point)
    return H


def likelihood_hessian(model: FateModel, point: dict[str, torch.Tensor], chunk: int = 50000) -> np.ndarray:
    """(P, P) J^T W J over all cells at ``point`` (Gauss-Newton with guide efficiencies)."""
    data = model.data
    scales = {k: point[k].detach().double().cpu().numpy() for k in SCALES if k in point}
    beta = effects_table(point, data)
    efficiency = None
    if "v" in point:
        efficiency = (efficiency_from_v(point["v"], point["sigma_eff"], data).detach().double().cpu().numpy(),
                      theta_from_z(point["z"], point["tau"], point["sigma_time"]).detach().double().cpu().numpy())
    P, F = n_latents(data, efficiency is not None), data.n_fates
    H = np.zeros((P, P))
    for start in range(0, data.n_cells, chunk):
        idx = np.arange(start, min(start + chunk, data.n_cells))
        with torch.no_grad():
            pi = torch.softmax(cell_logits(data.as_cells(torch.as_tensor(idx, device=data.day.device)), point["alpha"], point["b"],
                                           point["gamma"], beta), dim=-1)[:, 1:].double().cpu()
        W = model.w * (torch.diag_embed(pi) - pi[:, :, None] * pi[:, None, :])
        C = torch.linalg.cholesky(W + 1e-12 * torch.eye(F, dtype=W.dtype)).numpy()  # W_i = C_i C_i^T
        n = len(idx)
        r = np.repeat(np.arange(n) * F, F * F) + np.tile(np.repeat(np.arange(F), F), n)
        c = np.repeat(np.arange(n) * F, F * F) + np.tile(np.tile(np.arange(F), F), n)
        ct = sp.csr_matrix((C.transpose(0, 2, 1).ravel(), (r, c)), shape=(n * F, n * F))
        Jt = (ct @ design(data, idx, scales, efficiency)).tocsc()
        H += (Jt.T @ Jt).toarray()
    return H


def prior_precision(model: FateModel, point: dict[str, torch.Tensor]) -> np.ndarray:
    """(P,) the prior's precision at ``point``: fixed for alpha, b, gamma and v, the t and two-group priors' EM
    weights for u and z."""
    data, pr = model.data, model.priors
    F = data.n_fates
    prior = np.concatenate([np.full(F * data.n_days, pr.s_alpha ** -2.0), np.full(F * data.n_replicates, pr.s_rep ** -2.0),
                            np.full(F, pr.s_gamma ** -2.0)])
    z = point["z"].detach().double().cpu().numpy()
    u = point["u"].detach().double().cpu().numpy()
    if pr.null_sd > 0:
        zprec = z_prior(pr, point, "cpu").conditional_precision(torch.as_tensor(z)).numpy()
    elif pr.effect_df > 0:
        zprec = (pr.effect_df + data.n_days) / (pr.effect_df + (z ** 2).sum(-1, keepdims=True))
    else:
        zprec = np.ones(z.shape[:-1] + (1,))
    zprec = np.broadcast_to(zprec, z.shape).ravel()
    uprec = ((pr.effect_df + 1) / (pr.effect_df + u ** 2)).ravel() if pr.effect_df > 0 else np.ones(u.size)
    return np.concatenate([prior, uprec, zprec] + ([np.ones(data.n_guides)] if "v" in point else []))


def _z_variances(tril: torch.Tensor, point: dict[str, torch.Tensor], data: FateData) -> torch.Tensor:
    """(L, F, D) posterior variances of z from the Cholesky factor of H: z and v come last, so their block of
    H^-1 is the inverse of the factor's trailing block."""
    off = _offsets(data, "v" in point)["z"]
    return torch.cholesky_inverse(tril[off:, off:]).diagonal()[:point["z"].numel()].reshape(point["z"].shape)


class LaplaceGuide:
    """Draws x ~ Normal(posterior mode, H^-1) with the Laplace-EM scales and their uncertainty; same interface as
    the guides."""

    def __init__(self, model: FateModel, base):
        self.model, self.base, self.params = model, base, base.params  # the factor joins the guide's own parameters

    @owns_params
    def fit(self, max_newton_steps: int = 8, rel_tol: float = 1e-4, chunk: int = 50000, em_steps: int = EM_STEPS,
            em_tol: float = EM_TOL) -> "LaplaceGuide":
        """Newton steps from the guide's mean to the posterior mode, Laplace-EM of the random-walk scales, and
        the precision at the final mode.

        Newton (full data: no minibatch jitter) goes on until the largest gradient entry is ``rel_tol`` times
        the one at the guide's mean: with the two-group prior of z three steps could stop short of that.

        Why the EM (issue 14): the fit's MAP scales tau and sigma_time are set by every gene, because the null
        group's width is null_sd times those scales, so the ~80% null genes pull them down and every real
        day-to-day step is shrunk (step slope 0.96 on the simulation, 90% intervals covering 0.89). Here the null
        group keeps its width in theta units, null_sd x the fit's scales, and the scales and null fraction are
        re-estimated from the Laplace posterior (``scales_m_step``), the mode found again after each update,
        until the scales move by less than ``em_tol`` (relative). Within the EM the likelihood's curvature is
        held (rescaled with z) and rebuilt once the scales settle, then the EM goes on from the new curvature:
        two to three builds instead of two per EM step, which are most of the cost. Last, for ``draw``: the
        derivative of the mode with respect to each log scale and the scales' posterior sds (``log_scale_sd``).
        """
        data, pr = self.model.data, self.model.priors
        point = dict(self.base.point())
        if pr.null_sd > 0:
            point["null_width"] = pr.null_sd * step_scales(point).detach()
        x, point, start = self._newton(flat_point(point, data), point, max_newton_steps, rel_tol, chunk, None)
        em_done, moves = 0, []
        for _sweep in range(2 if em_steps > 0 else 0):  # the second sweep starts from the curvature at the settled scales
            hessian = likelihood_hessian(self.model, point, chunk)
            for em_done in range(em_done + 1, em_steps + 1):
                x, point, hessian, tril, change = self._em_step(x, point, hessian, moves)
                x, point, _ = self._newton(x, point, max_newton_steps, rel_tol, chunk, start, tril)
                if change < em_tol:
                    break
        if em_done:  # the mode with the exact curvature
            x, point, _ = self._newton(x, point, max_newton_steps, rel_tol, chunk, start)
        self.em_steps = em_done
        tril = torch.linalg.cholesky(torch.as_tensor(precision(self.model, point, chunk)))
        if em_done:
            jacobian = self._scale_jacobian(x, point, tril, max_newton_steps, rel_tol * start, chunk)
            scale_sd = log_scale_sd(self.model.priors, point, _z_variances(tril, point, data)).reshape(-1)
        store = pyro.get_param_store()
        for name in (LOC, PARAM, SCALE_JACOBIAN, SCALE_SD) + tuple(EM_PARAMS.values()):
            if name in store:
                del store[name]  # a refit replaces the previous factor
        pyro.param(LOC, x.float().to(data.probs.device))
        pyro.param(PARAM, tril.float().to(data.probs.device), constraint=constraints.lower_cholesky)
        if em_done:
            for site, name in EM_PARAMS.items():
                if site in point:
                    pyro.param(name, point[site].detach(), constraint=constraints.unit_interval if site == "null_frac" else
                               constraints.positive)
            pyro.param(SCALE_JACOBIAN, jacobian.float().to(data.probs.device))
            pyro.param(SCALE_SD, scale_sd.float().to(data.probs.device), constraint=constraints.positive)
        return self

    def _scale_jacobian(self, x, point, tril: torch.Tensor, max_steps: int, grad_tol: float, chunk: int) -> torch.Tensor:
        """(P, F * D) derivative of the mode (in the z coordinates of the moved scales) with respect to each log
        scale: central differences of +-``SCALE_STEP``, each mode found again, to the gradient ``grad_tol`` of
        the mode itself, by Newton steps with the final Cholesky factor (exact gradients)."""
        data, shape = self.model.data, point["z"].shape
        scales = step_scales(point).detach()
        off = _offsets(data, "v" in point)["z"]
        columns = []
        for k in range(scales.numel()):
            modes = []
            for sign in (1.0, -1.0):
                move = torch.zeros(scales.numel(), dtype=torch.float64)
                move[k] = sign * SCALE_STEP
                ratio = torch.exp(-move).reshape(scales.shape)  # z = ratio z keeps theta = scales x z
                moved = scales * torch.exp(move).reshape(scales.shape).to(scales.device, scales.dtype)
                start = {**point, "tau": moved[:, 0], "sigma_time": moved[:, 1:],
                         "z": point["z"] * ratio.to(point["z"].device, point["z"].dtype)}
                factor = torch.ones_like(x)
                factor[off:off + point["z"].numel()] = ratio.expand(shape).reshape(-1)
                modes.append(self._newton(x * factor, start, max_steps, grad_tol, chunk, 1.0, tril)[0])
            columns.append((modes[0] - modes[1]) / (2 * SCALE_STEP))
        return torch.stack(columns, dim=1)

    def _em_step(self, x, point, hessian: np.ndarray, moves: list):
        """One M-step of the scales from the posterior at the mode ``x`` (likelihood curvature ``hessian``).

        ``moves`` collects each M-step's move of the log scales. Every third step goes on by Aitken's
        extrapolation of the last two moves (a scale converging at rate r is moved r / (1 - r) times its
        last move further, r capped at 0.8): a weakly identified scale converges at rate ~0.85 (tens of steps),
        and extrapolated, in a few.

        Returns x, the point and the curvature carried to the new scales with theta kept, the Cholesky factor
        of the old precision carried the same way (the next Newton steps' preconditioner) and the largest
        relative change of a scale.
        """
        data = self.model.data
        tril = torch.linalg.cholesky(self._with_prior(hessian, point))
        off = _offsets(data, "v" in point)["z"]
        new = scales_m_step(self.model.priors, point, _z_variances(tril, point, data))
        moves.append(torch.log(step_scales(new) / step_scales(point)))
        change = float(moves[-1].abs().max())
        if len(moves) % 3 == 2 and len(moves) > 2:  # the first moves, from the fit's coupled scales, are not geometric
            rate = torch.nan_to_num(moves[-1] / moves[-2])
            rate = torch.where((rate > 0) & (rate < 1), rate, 0.0).clamp(max=0.8)
            extrapolated = step_scales(new) * torch.exp(moves[-1] * rate / (1 - rate))
            new = {**new, "tau": extrapolated[:, 0], "sigma_time": extrapolated[:, 1:]}
        ratio = (step_scales(point) / step_scales(new)).double().cpu()  # z_new = ratio z keeps theta = scales x z
        factor = torch.ones_like(x)
        factor[off:off + point["z"].numel()] = ratio.expand(point["z"].shape).reshape(-1)
        hessian /= factor.numpy()[:, None]  # d eta / d z_new = d eta / d z / ratio (in place: P x P can be ~1 GiB)
        hessian /= factor.numpy()[None, :]
        point = {**point, **new, "z": point["z"] * ratio.to(point["z"].device, point["z"].dtype)}
        return x * factor, point, hessian, tril / factor[:, None], change

    def _with_prior(self, hessian: np.ndarray, point) -> torch.Tensor:
        out = hessian.copy()
        out[np.diag_indices(out.shape[0])] += prior_precision(self.model, point)
        return torch.as_tensor(out)

    def _newton(self, x, point, max_steps: int, rel_tol: float, chunk: int, start, tril: torch.Tensor | None = None):
        """Newton steps at fixed scales until the gradient is ``rel_tol`` x ``start`` (the first one's size when
        None); with ``tril`` the steps use that Cholesky factor of an approximate precision instead (exact
        gradients: the same mode). Returns (x, point, start)."""
        data, dev, first = self.model.data, self.model.data.probs.device, start is None
        for step in range(max_steps):
            grad = log_joint_grad(self.model, point, chunk)
            start = float(grad.abs().max()) if start is None else start
            if (step > 0 or not first) and float(grad.abs().max()) <= rel_tol * start:
                break
            factor = torch.linalg.cholesky(torch.as_tensor(precision(self.model, point, chunk))) if tril is None else tril
            x = x + torch.cholesky_solve(grad[:, None], factor)[:, 0]
            point = {**point, **{k: v.to(dev, point[k].dtype) for k, v in unflatten(x, data, "v" in point).items()}}
        return x, point, start

    @owns_params
    def scales(self) -> dict[str, torch.Tensor]:
        """The scale hyperparameters the factor was built with: the Laplace-EM's where the fit made them (a
        checkpoint from before the EM has none), else the guide's MAP."""
        with torch.no_grad():
            base = self.base.point()
            out = {k: base[k] for k in SCALES + ("null_frac",) if k in base}
            store = pyro.get_param_store()
            return {**out, **{site: pyro.param(name).detach() for site, name in EM_PARAMS.items() if name in store}}

    @owns_params
    def point(self) -> dict[str, torch.Tensor]:
        """The posterior mode of the effects (with the scales of ``scales``)."""
        with torch.no_grad():
            base = self.base.point()
            sites = unflatten(pyro.param(LOC).detach(), self.model.data, "v" in base)
            return {**base, **self.scales(), **{k: v.to(base[k].dtype) for k, v in sites.items()}}

    @owns_params
    def draw(self, num: int) -> dict[str, torch.Tensor]:
        """``num`` draws: x = mode + L^-T eps with H = L L^T (float64 solve), and with the Laplace-EM's scales
        also their uncertainty: log scales drawn around their estimate (sd ``log_scale_sd``), the mode moved
        with them to first order (``_scale_jacobian``). That is Kass & Steffey's (1989) correction of an
        empirical-Bayes posterior: Var(theta) = E[Var(theta | scales)] + Var(E[theta | scales])."""
        with torch.no_grad():
            data = self.model.data
            tril = pyro.param(PARAM).double()
            eps = torch.randn(tril.shape[0], num, dtype=torch.float64, device=tril.device)
            x = pyro.param(LOC).double() + torch.linalg.solve_triangular(tril.T, eps, upper=True).T
            scales = {k: v.expand(num, *v.shape) for k, v in self.scales().items() if k != "null_width"}
            if SCALE_SD in pyro.get_param_store():
                sd = pyro.param(SCALE_SD).double()
                move = torch.randn(num, sd.numel(), dtype=torch.float64, device=tril.device) * sd
                x = x + move @ pyro.param(SCALE_JACOBIAN).double().T
                fitted = step_scales(self.scales()).double()
                moved = fitted * torch.exp(move).reshape(num, *fitted.shape)
                scales.update(tau=moved[..., 0].to(data.probs.dtype), sigma_time=moved[..., 1:].to(data.probs.dtype))
            out = {k: v.to(data.probs.dtype) for k, v in unflatten(x, data, tril.shape[0] > n_latents(data)).items()}
            return {**out, **scales}
