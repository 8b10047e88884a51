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
        torch.testing.assert_close(zprec, (p_null / null_sd ** 2 + (1 - p_null))[..., None].expand(z.shape))  # Normal slab: 1
        start = laplace._offsets(data)["z"]
        exact[np.arange(start, start + z.numel()), np.arange(start, start + z.numel())] += zprec.reshape(-1).numpy()
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


def test_scales_m_step_iterated_on_planted_paths_recovers_their_scales():
    """On complete data (z known, no posterior variance) the Laplace-EM's M-step iterated to its fixed point is
    the maximum-likelihood fit of the two-group prior: it returns the planted random-walk scales of the slab
    genes (multivariate t, df 3) and the planted null fraction, with the null group's width held in theta units."""
    from fatescope.fate.laplace import scales_m_step, step_scales
    gen = torch.Generator().manual_seed(0)
    L, F, D = 20000, 2, 4
    true = torch.tensor([[0.8, 0.3, 0.25, 0.2], [0.5, 0.2, 0.3, 0.1]], dtype=torch.float64)
    planted_null_frac = torch.tensor([0.8, 0.6], dtype=torch.float64)
    width = torch.full((F, D), 0.01, dtype=torch.float64)
    t_scale = torch.sqrt(3 / torch.distributions.Chi2(torch.tensor(3.0)).sample((L, F, 1)).double())
    slab = torch.randn(L, F, D, generator=gen, dtype=torch.float64) * t_scale * true
    null = torch.rand(L, F, 1, generator=gen, dtype=torch.float64) < planted_null_frac[:, None]
    steps = torch.where(null, width * torch.randn(L, F, D, generator=gen, dtype=torch.float64), slab)
    point = {"tau": torch.full((F,), 0.3, dtype=torch.float64), "sigma_time": torch.full((F, D - 1), 0.1, dtype=torch.float64),
             "null_frac": torch.full((F,), 0.5, dtype=torch.float64), "null_width": width}
    for _ in range(300):
        point = {**point, "z": steps / step_scales(point)}
        point.update(scales_m_step(Priors(), point, torch.zeros(L, F, D, dtype=torch.float64)))
    np.testing.assert_allclose(step_scales(point).numpy(), true.numpy(), rtol=0.05)
    np.testing.assert_allclose(point["null_frac"].numpy(), planted_null_frac.numpy(), atol=0.01)
    # the null genes do not enter the scales: with their effects set to exactly 0 one more step leaves them put
    zeroed = scales_m_step(Priors(), {**point, "z": torch.where(null, 0.0, point["z"])}, torch.zeros(L, F, D, dtype=torch.float64))
    np.testing.assert_allclose(step_scales(zeroed).numpy(), step_scales(point).numpy(), rtol=0.01)


@pytest.mark.parametrize("priors", [Priors(), Priors(effect_df=0.0, null_sd=0.0, s_eff=0.0)], ids=["default", "normal"])
def test_laplace_em_ends_at_a_fixed_point_of_the_m_step_at_the_mode(sim_enc, priors):
    """After the Laplace-EM: the gradient at the stored mode is ~0, one more M-step from the stored posterior
    (mode and H^-1) leaves the scales where they are, the null group's width is null_sd x the guide's MAP scales;
    the draws' log scales spread by their sd around the EM's, and the stored derivative of the mode with respect
    to a log scale is the move of the mode found again at a moved scale."""
    from fatescope.fate import laplace
    sim, enc = sim_enc
    res = fit(enc, priors, FitConfig(num_steps=150, min_steps=150, batch_size=256, likelihood_weight=20.0, device="cpu",
                                     posterior="guide"))
    model = res.model
    guide = laplace.LaplaceGuide(model, res.guide).fit()
    assert 1 <= guide.em_steps < laplace.EM_STEPS
    point, before = guide.point(), res.guide.point()
    assert laplace.log_joint_grad(model, point).abs().max() < 1e-3 * laplace.log_joint_grad(model, before).abs().max()
    assert not torch.allclose(laplace.step_scales(point), laplace.step_scales(before), rtol=0.05)
    cov = torch.cholesky_inverse(torch.linalg.cholesky(torch.as_tensor(laplace.precision(model, point))))
    z_var = laplace.unflatten(cov.diagonal(), model.data, "v" in point)["z"]
    again = laplace.scales_m_step(priors, point, z_var)
    np.testing.assert_allclose(laplace.step_scales(again).numpy(), laplace.step_scales(point).numpy(), rtol=5e-3)
    if priors.null_sd > 0:
        np.testing.assert_allclose(point["null_width"].numpy(), 0.1 * laplace.step_scales(before).numpy(), rtol=1e-6)
        np.testing.assert_allclose(again["null_frac"].numpy(), point["null_frac"].numpy(), atol=5e-3)
    else:
        assert "null_width" not in point
    # the scales' uncertainty: log scales drawn around the EM's with sd log_scale_sd, the mode moved with them
    with guide.params:
        sd, jacobian = pyro.param(laplace.SCALE_SD).detach().double(), pyro.param(laplace.SCALE_JACOBIAN).detach().double()
    assert float(sd.min()) > 0.05 and float(sd.max()) <= 1.0
    logs = torch.log(laplace.step_scales(guide.draw(4000)) / laplace.step_scales(point)).reshape(4000, -1).double()
    np.testing.assert_allclose(logs.std(0).numpy(), sd.numpy(), rtol=0.06)
    assert float(logs.mean(0).abs().max()) < 0.1 * float(sd.max())
    step, k = 0.02, int(torch.argmax(jacobian.abs().sum(0)))  # the scale that moves the mode most
    move = torch.zeros(sd.numel(), dtype=torch.float64)
    move[k] = step
    scales = laplace.step_scales(point).double() * torch.exp(move).reshape(laplace.step_scales(point).shape)
    ratio = laplace.step_scales(point).double() / scales
    moved = {**point, "tau": scales[:, 0].float(), "sigma_time": scales[:, 1:].float(), "z": point["z"] * ratio.float()}
    expected = exact_mode(model, moved) - exact_mode(model, point)
    np.testing.assert_allclose((jacobian[:, k] * step).numpy(), expected.numpy(), atol=0.03 * float(expected.abs().max()))


def exact_mode(model, point, steps: int = 6) -> torch.Tensor:
    """The flat posterior mode at ``point``'s scales by full Newton steps (curvature rebuilt at every step)."""
    from fatescope.fate import laplace
    x = laplace.flat_point(point, model.data)
    for _ in range(steps):
        x = x + torch.linalg.solve(torch.as_tensor(laplace.precision(model, point)), laplace.log_joint_grad(model, point))
        point = {**point, **{k: v.float() for k, v in laplace.unflatten(x, model.data, "v" in point).items()}}
    return x
