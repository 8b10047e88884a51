"""The pyro fate model: shapes, hard zeros, the likelihood against the simulator's own logits,
QC offsets ~0, determinism."""
from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from fatescope.fate.encoding import encode
from fatescope.fate.export import qc_delta_mean, qc_theta_beta_offset, summarise
from fatescope.fate.fit import FitConfig, fit, plateau_reached
from fatescope.fate.model import (FateData, FateModel, Priors, beta_table, cell_logits, delta_from_u, soft_cross_entropy,
                                  theta_from_z)
from fatescope.fate.synthetic import simulated_cells
from fatescope.simulate.fate import fate_logits


@pytest.fixture(scope="module")
def sim_enc():
    adata, truth, sim = simulated_cells(seed=11, n_cells=800, n_perturbed_genes=12, guides_per_gene=3, n_ntc_guides=4, moi=4)
    return sim, encode(adata)


def test_shapes_and_hard_zeros(sim_enc):
    sim, enc = sim_enc
    data = FateData.from_encoding(enc)
    L, G, F, D = enc.n_genes, enc.n_guides, 2, 4
    z, u = torch.randn(L, F, D), torch.randn(G, F)
    tau, st, sg = torch.rand(F), torch.rand(F, D - 1), torch.rand(F)
    theta = theta_from_z(z, tau, st)
    assert theta.shape == (L, F, D)
    torch.testing.assert_close(theta[..., 0], tau * z[..., 0])
    torch.testing.assert_close(theta[..., 2] - theta[..., 1], st[:, 1] * z[..., 2])
    delta = delta_from_u(u, sg, data)
    gene = data.gene_of_guide[1:]
    for l in range(1, L + 1):
        assert delta[gene == l].mean(0).abs().max() < 1e-6
    beta = beta_table(theta, delta, data)
    assert beta.shape == (G + 1, F, D) and torch.all(beta[0] == 0)
    torch.testing.assert_close(beta[1:], theta[gene - 1] + delta[:, :, None])
    # batched draws keep the leading dimension
    assert theta_from_z(z.expand(3, L, F, D), tau.expand(3, F), st.expand(3, F, D - 1)).shape == (3, L, F, D)


def test_logits_match_the_simulator(sim_enc):
    """With the simulator's own parameters, cell_logits reproduces its eta (MOI sum, NTC and padding zero)."""
    sim, enc = sim_enc
    eff = sim.effects
    data = FateData.from_encoding(enc)
    delta = torch.tensor(eff.delta, dtype=torch.float32)
    theta = torch.tensor(eff.theta, dtype=torch.float32)
    beta = beta_table(theta, delta, data)
    b = torch.tensor(eff.b, dtype=torch.float32)
    got = cell_logits(data.all_cells, torch.tensor(eff.alpha, dtype=torch.float32), b,
                      torch.tensor(eff.gamma, dtype=torch.float32), beta)
    burden = (sim.guides >= 0).sum(1)
    want = fate_logits(eff, sim.guides, sim.cells["day_index"].to_numpy(), sim.cells["replicate_index"].to_numpy(), burden.mean())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_model_trace_scales_by_plate(sim_enc):
    sim, enc = sim_enc
    data = FateData.from_encoding(enc)
    model = FateModel(data, Priors(), likelihood_weight=2.0)
    pyro.set_rng_seed(0)
    tr = pyro.poutine.trace(model).get_trace(torch.arange(100))
    site = tr.nodes["soft_labels"]
    assert site["scale"] == pytest.approx(enc.n_cells / 100)
    assert tr.nodes["z"]["value"].shape == (enc.n_genes, 2, 4) and tr.nodes["u"]["value"].shape == (enc.n_guides, 2)


def test_plateau():
    assert plateau_reached([10.0, 9.0, 8.9995, 8.9994], rel_tol=1e-4, patience=2)
    assert not plateau_reached([10.0, 9.0, 8.0, 7.99], rel_tol=1e-4, patience=2)


def _short(seed=0, guide="structured"):
    return FitConfig(num_steps=60, min_steps=60, batch_size=256, plateau_window=20, seed=seed, likelihood_weight=10.0,
                     guide=guide, device="cpu")


def test_determinism_and_qc_offsets(sim_enc):
    sim, enc = sim_enc
    r1 = fit(enc, config=_short(3))
    p1 = summarise(r1.guide, r1.model.data, enc, num_draws=50, seed=3)
    r2 = fit(enc, config=_short(3))
    p2 = summarise(r2.guide, r2.model.data, enc, num_draws=50, seed=3)
    assert np.array_equal(r1.losses, r2.losses)
    assert np.array_equal(p1.theta_mean, p2.theta_mean) and np.array_equal(p1.beta_sd, p2.beta_sd)
    r3 = fit(enc, config=_short(4))
    assert not np.array_equal(r1.losses, r3.losses)
    assert qc_delta_mean(p1).iloc[:, 1:].abs().to_numpy().max() < 1e-6
    assert abs(qc_theta_beta_offset(p1).iloc[:, 1:].to_numpy().mean()) < 1e-6
    assert qc_theta_beta_offset(p1).iloc[:, 1:].abs().to_numpy().max() < 1e-5


@pytest.mark.parametrize("guide", ["map-meanfield", "meanfield", "lowrank", "block-lowrank"])
def test_other_guides_run(sim_enc, guide):
    sim, enc = sim_enc
    r = fit(enc, config=_short(0, guide))
    post = summarise(r.guide, r.model.data, enc, num_draws=20)
    assert np.isfinite(r.losses).all() and post.theta_mean.shape == (enc.n_genes, 2, 4)
    assert np.all(post.theta_sd > 0)


def test_block_lowrank_density_matches_dense_normal():
    from fatescope.fate.joint_guide import BlockLowRankNormal
    torch.manual_seed(0)
    nd, L, b, r = 3, 4, 2, 2
    loc, sd = torch.randn(nd + L * b), torch.rand(nd) + 0.5
    tril = torch.tril(torch.randn(L, b, b)) * 0.3 + torch.eye(b)
    factor = torch.randn(nd + L * b, r) * 0.5
    d = BlockLowRankNormal(loc, sd, tril, factor)
    cov = torch.block_diag(torch.diag(sd ** 2), *[t @ t.T for t in tril]) + factor @ factor.T
    x = d.rsample((5,))
    torch.testing.assert_close(d.log_prob(x), torch.distributions.MultivariateNormal(loc, covariance_matrix=cov).log_prob(x),
                               atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("null_sd", [0.0, 0.1])
def test_laplace_hessian_is_the_exact_curvature_and_newton_reaches_the_mode(sim_enc, null_sd):
    """J x reproduces the logits, J^T W J + prior equals autograd's Hessian of the log joint (the two-group
    prior of z by its conditional precision, the expected inverse variance over its groups), and the
    Newton steps leave a near-zero gradient."""
    from fatescope.fate import laplace
    sim, enc = sim_enc
    res = fit(enc, Priors(effect_df=0.0, null_sd=null_sd, s_eff=0.0),
              FitConfig(num_steps=150, min_steps=150, batch_size=256, likelihood_weight=20.0, device="cpu", posterior="guide"))
    model, data = res.model, res.model.data
    point = res.guide.point()
    x = laplace.flat_point(point, data)
    beta = beta_table(theta_from_z(point["z"], point["tau"], point["sigma_time"]),
                      delta_from_u(point["u"], point["sigma_guide"], data), data)
    eta = cell_logits(data.all_cells, point["alpha"], point["b"], point["gamma"], beta)[:, 1:]
    scales = {k: point[k].double().numpy() for k in ("tau", "sigma_time", "sigma_guide")}
    J = laplace.design(data, np.arange(data.n_cells), scales)
    np.testing.assert_allclose(J @ x.numpy(), eta.double().numpy().ravel(), atol=1e-5)

    def neg_log_joint(flat, with_z_prior=True):
        s = laplace.unflatten(flat, data)
        b = beta_table(theta_from_z(s["z"], point["tau"].double(), point["sigma_time"].double()),
                       delta_from_u(s["u"], point["sigma_guide"].double(), data), data)
        ll = soft_cross_entropy(cell_logits(data.all_cells, s["alpha"], s["b"], s["gamma"], b),
                                data.probs.double()).sum()
        p = model.priors
        prior = ((s["alpha"] ** 2).sum() / p.s_alpha ** 2 + (s["b"] ** 2).sum() / p.s_rep ** 2
                 + (s["gamma"] ** 2).sum() / p.s_gamma ** 2 + (s["u"] ** 2).sum() + with_z_prior * (s["z"] ** 2).sum()) / 2
        return prior - model.w * ll

    H = laplace.precision(model, point, chunk=300)  # several chunks
    if null_sd == 0:
        exact = torch.autograd.functional.hessian(neg_log_joint, x).numpy()
    else:
        assert 0 < float(point["null_frac"].min()) and float(point["null_frac"].max()) < 1
        exact = torch.autograd.functional.hessian(lambda f: neg_log_joint(f, False), x).numpy()
        z = point["z"].double()
        zprec = model.z_prior(point["null_frac"].double()).conditional_precision(z)
        p_null = model.z_prior(point["null_frac"].double()).null_probability(z)
        torch.testing.assert_close(zprec, p_null / null_sd ** 2 + (1 - p_null))  # Normal slab: precision 1
        start = laplace._offsets(data)["z"]
        exact[np.arange(start, start + z.numel()), np.arange(start, start + z.numel())] += (
            zprec[..., None].expand(z.shape).reshape(-1).numpy())
    np.testing.assert_allclose(H, exact, rtol=1e-5, atol=1e-3 * np.abs(exact).max() * 1e-3)
    before = laplace.log_joint_grad(model, point).abs().max()
    after = laplace.log_joint_grad(model, laplace.LaplaceGuide(model, res.guide).fit().point()).abs().max()
    assert after < 1e-3 * before


def test_laplace_with_guide_efficiencies_uses_the_jacobian_of_the_bilinear_logits(sim_enc):
    """With guide efficiencies the logits are bilinear in z and v: ``design`` is autograd's Jacobian of the
    logits at the point (including the v columns), and the Gauss-Newton steps reach the mode."""
    from fatescope.fate import laplace
    from fatescope.fate.model import effects_table
    sim, enc = sim_enc
    res = fit(enc, Priors(), FitConfig(num_steps=150, min_steps=150, batch_size=256, likelihood_weight=20.0, device="cpu",
                                       posterior="guide"))
    model, data = res.model, res.model.data
    point = res.guide.point()
    point["v"], point["sigma_eff"] = torch.randn(data.n_guides, generator=torch.Generator().manual_seed(0)), torch.tensor([0.2])
    x = laplace.flat_point(point, data)
    assert x.numel() == laplace.n_latents(data, True) == laplace.n_latents(data) + data.n_guides
    scales = {k: point[k].double() for k in laplace.SCALES}

    def logits(flat):
        b = effects_table({**scales, **laplace.unflatten(flat, data, True)}, data)
        s = laplace.unflatten(flat, data, True)
        return cell_logits(data.all_cells, s["alpha"], s["b"], s["gamma"], b)[:, 1:].reshape(-1)

    exact = torch.autograd.functional.jacobian(logits, x).numpy()
    efficiency = (laplace.efficiency_from_v(point["v"], point["sigma_eff"], data).double().numpy(),
                  theta_from_z(point["z"], point["tau"], point["sigma_time"]).double().numpy())
    J = laplace.design(data, np.arange(data.n_cells), {k: v.numpy() for k, v in scales.items()}, efficiency).toarray()
    np.testing.assert_allclose(J, exact, atol=1e-6)
    assert np.abs(J[:, -data.n_guides:]).max() > 0.01  # the v columns are not trivially zero
    before = laplace.log_joint_grad(model, point).abs().max()
    after = laplace.log_joint_grad(model, laplace.LaplaceGuide(model, res.guide).fit().point()).abs().max()
    assert after < 1e-3 * before


def test_two_group_effect_prior_is_the_mixture_of_its_groups():
    """log_prob is log(pi N(0, s^2 I) + (1 - pi) MVT_df(0, I)) summed over genes x fates, null_probability the
    posterior weight of the null group, and draws land in the null group at rate null_frac."""
    from fatescope.fate.model import TwoGroupEffects
    torch.manual_seed(0)
    null_frac, s, shape = torch.tensor([0.8, 0.3], dtype=torch.float64), 0.1, (50, 2, 4)
    z = torch.cat([0.1 * torch.randn(25, 2, 4, dtype=torch.float64), 2 * torch.randn(25, 2, 4, dtype=torch.float64)])
    for df in (3.0, 0.0):
        prior = TwoGroupEffects(null_frac, s, df, shape)
        null = torch.distributions.MultivariateNormal(torch.zeros(4, dtype=torch.float64), s ** 2 * torch.eye(4, dtype=torch.float64))
        slab = (torch.distributions.MultivariateNormal(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
                if df == 0 else pyro.distributions.MultivariateStudentT(torch.tensor(df, dtype=torch.float64),
                                                                        torch.zeros(4, dtype=torch.float64),
                                                                        torch.eye(4, dtype=torch.float64)))
        a, b = null_frac.log() + null.log_prob(z), (1 - null_frac).log() + slab.log_prob(z)
        torch.testing.assert_close(prior.log_prob(z), torch.logaddexp(a, b).sum())
        torch.testing.assert_close(prior.null_probability(z), torch.sigmoid(a - b))
        assert prior.null_probability(z)[:25].mean() > 0.95 and prior.null_probability(z)[25:].mean() < 0.05
    draws = TwoGroupEffects(null_frac, s, 3.0, (4000, 2, 4)).sample()
    small = draws.pow(2).sum(-1) < 4 * 9 * s ** 2  # a null draw's |z| is ~2 s; a slab draw's ~2
    np.testing.assert_allclose(small.double().mean(0).numpy(), null_frac.numpy(), atol=0.03)
