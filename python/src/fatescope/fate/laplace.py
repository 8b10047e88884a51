"""Laplace posterior of all effects jointly, around the variational mean (the calibrated sd of theta).

Given the scale hyperparameters (MAP), the logits are linear in x = [alpha, b, gamma, u, z], so the
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

from .model import (FateData, FateModel, cell_logits, deviation_prior, effect_prior, effects_table, efficiency_from_v,
                    soft_cross_entropy, theta_from_z)
from .state import owns_params

MAX_LATENTS = 12000  # dense P x P Hessian in float64: ~1.1 GiB at this size
PARAM = "laplace.precision_tril"
LOC = "laplace.loc"


SCALES = ("tau", "sigma_time", "sigma_guide", "sigma_eff")


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


def z_prior(model: FateModel, point: dict[str, torch.Tensor], device) -> torch.distributions.Distribution:
    """z's prior in float64 on ``device`` (two groups: at the MAP null fraction in ``point``)."""
    pr, d = model.priors, model.data
    if pr.null_sd > 0:
        return model.z_prior(point["null_frac"].detach().double().to(device))
    return effect_prior(pr.effect_df, (d.n_genes, d.n_fates, d.n_days), device)


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
        + z_prior(model, point, x.device).log_prob(sites["z"])
    for start in range(0, data.n_cells, chunk):
        idx = torch.arange(start, min(start + chunk, data.n_cells), device=x.device)
        logits = cell_logits(data.as_cells(idx), sites["alpha"], sites["b"], sites["gamma"], beta)
        total = total + model.w * soft_cross_entropy(logits, data.probs.index_select(0, idx).double()).sum()
    (grad,) = torch.autograd.grad(total, x)
    return grad.cpu()


def precision(model: FateModel, point: dict[str, torch.Tensor], chunk: int = 50000) -> np.ndarray:
    """(P, P) posterior precision at ``point``: J^T W J over all cells plus the prior precision."""
    data, pr = model.data, model.priors
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
    prior = np.concatenate([np.full(F * data.n_days, pr.s_alpha ** -2.0), np.full(F * data.n_replicates, pr.s_rep ** -2.0),
                            np.full(F, pr.s_gamma ** -2.0)])
    z = point["z"].detach().double().cpu().numpy()
    u = point["u"].detach().double().cpu().numpy()
    if pr.null_sd > 0:
        zprec = z_prior(model, point, "cpu").conditional_precision(torch.as_tensor(z)).numpy()[..., None]
    elif pr.effect_df > 0:
        zprec = (pr.effect_df + data.n_days) / (pr.effect_df + (z ** 2).sum(-1, keepdims=True))
    else:
        zprec = np.ones(z.shape[:-1] + (1,))
    zprec = np.broadcast_to(zprec, z.shape).ravel()
    uprec = ((pr.effect_df + 1) / (pr.effect_df + u ** 2)).ravel() if pr.effect_df > 0 else np.ones(u.size)
    H[np.diag_indices(P)] += np.concatenate([prior, uprec, zprec] + ([np.ones(data.n_guides)] if "v" in point else []))
    return H


class LaplaceGuide:
    """Draws x ~ Normal(mean of the fitted guide, H^-1) with the MAP scales; same interface as the guides."""

    def __init__(self, model: FateModel, base):
        self.model, self.base, self.params = model, base, base.params  # the factor joins the guide's own parameters

    @owns_params
    def fit(self, max_newton_steps: int = 8, rel_tol: float = 1e-4, chunk: int = 50000) -> "LaplaceGuide":
        """Newton steps from the guide's mean to the posterior mode (full data: no minibatch jitter), then H there.

        Steps go on until the largest gradient entry is ``rel_tol`` times the one at the guide's mean: with
        the two-group prior of z (its curvature by EM weights) three steps could stop short of that when
        the guide ends far from the mode, and two more were needed.
        """
        data, dev = self.model.data, self.model.data.probs.device
        point = self.base.point()
        x = flat_point(point, data)
        start = None
        for step in range(max_newton_steps + 1):
            H = torch.as_tensor(precision(self.model, point, chunk))
            tril = torch.linalg.cholesky(H)
            if step == max_newton_steps:
                break
            grad = log_joint_grad(self.model, point, chunk)
            start = float(grad.abs().max()) if start is None else start
            if step > 0 and float(grad.abs().max()) <= rel_tol * start:
                break
            x = x + torch.cholesky_solve(grad[:, None], tril)[:, 0]
            point = {**point, **{k: v.to(dev, point[k].dtype) for k, v in unflatten(x, data, "v" in point).items()}}
        store = pyro.get_param_store()
        for name in (LOC, PARAM):
            if name in store:
                del store[name]  # a refit replaces the previous factor
        pyro.param(LOC, x.float().to(dev))
        pyro.param(PARAM, tril.float().to(dev), constraint=constraints.lower_cholesky)
        return self

    @owns_params
    def point(self) -> dict[str, torch.Tensor]:
        """The posterior mode of the effects (with the MAP scales)."""
        with torch.no_grad():
            base = self.base.point()
            sites = unflatten(pyro.param(LOC).detach(), self.model.data, "v" in base)
            return {**base, **{k: v.to(base[k].dtype) for k, v in sites.items()}}

    @owns_params
    def draw(self, num: int) -> dict[str, torch.Tensor]:
        """``num`` draws: x = mean + L^-T eps with H = L L^T (float64 solve)."""
        with torch.no_grad():
            point, data = self.base.point(), self.model.data
            tril = pyro.param(PARAM).double()
            eps = torch.randn(tril.shape[0], num, dtype=torch.float64, device=tril.device)
            x = pyro.param(LOC).double() + torch.linalg.solve_triangular(tril.T, eps, upper=True).T
            out = {k: v.to(data.probs.dtype) for k, v in unflatten(x, data, "v" in point).items()}
            for name in SCALES + ("null_frac",):  # fixed at their MAP values
                if name in point:
                    out[name] = point[name].expand(num, *point[name].shape)
            return out
