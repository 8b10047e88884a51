"""DirectSVI (the fate model's training step without pyro's tracing) against pyro's SVI + Trace_ELBO +
ClippedAdam: the same draws, log densities, losses and parameters up to float rounding."""
from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import ClippedAdam

from fatescope.fate.elbo import DirectSVI, FusedClippedAdam, log_prior
from fatescope.fate.encoding import encode
from fatescope.fate.guides import make_guide
from fatescope.fate.model import FateData, FateModel, Priors
from fatescope.fate.synthetic import simulated_cells


@pytest.fixture(scope="module")
def data():
    adata, _, _ = simulated_cells(seed=5, n_cells=600, n_perturbed_genes=10, guides_per_gene=3, n_ntc_guides=4, moi=4)
    return FateData.from_encoding(encode(adata))


@pytest.mark.parametrize("df,null_sd,s_eff", [(3.0, 0.1, 0.3), (0.0, 0.1, 0.0), (3.0, 0.0, 0.3), (0.0, 0.0, 0.0)])
@pytest.mark.parametrize("use_guides", [True, False])
@pytest.mark.parametrize("kind", ["structured", "map-meanfield"])
def test_rsample_and_log_prior_match_the_distributions(data, df, null_sd, s_eff, use_guides, kind):
    model = FateModel(data, Priors(effect_df=df, null_sd=null_sd, s_eff=s_eff), 5.0, use_guides)
    guide = make_guide(model, kind)
    with guide.params:
        guide.site_params()
        for p in pyro.get_param_store().values():  # away from the initial values
            p.data += 0.1 * torch.randn_like(p)
        pyro.set_rng_seed(1)
        values, log_q = guide.rsample()
        pyro.set_rng_seed(1)
        dists = guide.distributions()
        draws = {name: d.rsample() for name, d in dists.items()}
        for name in draws:
            assert torch.equal(values[name], draws[name]), name
        torch.testing.assert_close(log_q, sum(d.log_prob(draws[n]) for n, d in dists.items()), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(log_prior(model, values), sum(d.log_prob(values[n]) for n, d in
                                                                   model.prior(values.get("null_frac")).items()),
                                   rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("kind", ["structured", "block-lowrank"])
def test_direct_steps_follow_pyros_svi(data, kind):
    runs = []
    for direct in (False, True):
        model = FateModel(data, Priors(), 5.0)
        guide = make_guide(model, kind)
        if direct:
            svi = DirectSVI(model, guide, FusedClippedAdam(0.01, 10.0, 0.999))
        else:
            svi = SVI(model, guide, ClippedAdam({"lr": 0.01, "clip_norm": 10.0, "lrd": 0.999}), Trace_ELBO())
        pyro.set_rng_seed(0)
        gen = torch.Generator().manual_seed(0)
        with guide.params:
            losses = [svi.step(torch.randperm(data.n_cells, generator=gen)[:128]) for _ in range(30)]
            params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
        runs.append((torch.tensor(losses), params))
    (loss_a, par_a), (loss_b, par_b) = runs
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-4, atol=0.0)
    assert par_a.keys() == par_b.keys()
    for k in par_a:
        torch.testing.assert_close(par_b[k], par_a[k], rtol=1e-4, atol=1e-5)


def test_direct_steps_update_the_stores_current_tensors(data):
    """After the first step DirectSVI reads the parameters directly; when the store holds other tensors
    (a checkpoint's state was loaded), it looks them up again and trains those, not the old ones."""
    model = FateModel(data, Priors(), 5.0)
    guide = make_guide(model, "structured")
    svi = DirectSVI(model, guide, FusedClippedAdam(0.01, 10.0))
    gen = torch.Generator().manual_seed(0)
    with guide.params:
        for _ in range(3):
            svi.step(torch.randperm(data.n_cells, generator=gen)[:128])
        store = pyro.get_param_store()
        old = dict(store.named_parameters())
        state = store.get_state()
        store.set_state({"params": {k: v.detach().clone().requires_grad_() for k, v in state["params"].items()},
                         "constraints": state["constraints"]})
        new = {k: v.detach().clone() for k, v in store.named_parameters()}
        frozen = {k: v.detach().clone() for k, v in old.items()}
        svi.step(torch.randperm(data.n_cells, generator=gen)[:128])
        assert all(torch.equal(old[k], frozen[k]) for k in old)  # the replaced tensors are left alone
        assert all(not torch.equal(v, new[k]) for k, v in store.named_parameters())  # the current ones moved
        assert {name for name, _, _ in svi.params} == set(new)
