"""The Python engine against mashr 0.2.79 on a 3,000 x 5 case with heteroskedastic standard errors and
correlated noise, V estimated (issue 14): EE and EZ models, conservative and enriched modes.

Fixtures in data/mashr, made by data/mashr/make_ref.R with the real mashr. Quality bar: posterior
mean, sd and lfsr within 1e-4 of mashr. The engine is held to 1e-6 here (it reaches 2e-7): before the
fix its mix-SQP factorised the likelihood matrix where mixsqp keeps it whole, and posterior means moved
by 1.3e-5 on this case (1.4e-4 on the issue's). In the EZ enriched fit mashr's own mix-SQP stops short
of the optimum at a point set by rounding noise; there the test pins everything the weights are fitted
from, mashr's posteriors under mashr's weights, and the fact that mashr stopped short.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mash_reference import FIXTURES, het_case, het_matrix, het_named, het_strong, het_ulist

from fatescope.io.mash_tables import read_daywise_table
from fatescope.shrink.ash import strong_effects
from fatescope.shrink.covariances import cov_pca
from fatescope.shrink.data import estimate_null_correlation_simple, set_data, with_V
from fatescope.shrink.ed import cov_ed
from fatescope.shrink.fit import MashFit
from fatescope.shrink.likelihood import calc_loglik_matrix, relative_loglik
from fatescope.shrink.modes import MashSettings, run_fixg, run_mash

TOL = 1e-6          # posterior mean / sd / lfsr and weights (the bar is 1e-4)


@pytest.fixture(scope="module")
def case():
    return het_case()


def settings(tag: str) -> MashSettings:
    model, mode = tag.split("_")
    return MashSettings(mode=mode, alpha=0.0 if model == "ee" else 1.0, device="cpu")


def assert_same_prior_inputs(fit: MashFit, tag: str) -> None:
    """V, grid and normalised covariances as mashr's."""
    model = tag.split("_")[0]
    np.testing.assert_allclose(fit.V, het_ulist(f"het_{model}_V.csv")["V"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.grid, list(het_named(f"het_{tag}_grid.csv").values()), rtol=1e-13, atol=0)
    ref = het_ulist(f"het_{tag}_Ulist.csv")
    assert list(fit.ulist) == list(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(fit.ulist[name], value, rtol=0, atol=1e-8, err_msg=name)


def assert_posteriors(post, tag: str, tol: float = TOL) -> None:
    for mine, ref in ((post.mean, "pm"), (post.sd, "psd"), (post.lfsr, "lfsr")):
        np.testing.assert_allclose(mine, het_matrix(f"het_{tag}_{ref}.csv.gz"), rtol=0, atol=tol, err_msg=ref)


@pytest.mark.parametrize("tag", ["ee_conservative", "ee_enriched", "ez_conservative"])
def test_fit_matches_mashr(case, tag):
    res = run_mash(*case, settings(tag))
    assert_same_prior_inputs(res.fit, tag)
    ref_pi = het_named(f"het_{tag}_pi_all.csv")
    assert res.fit.component_names() == list(ref_pi)
    np.testing.assert_allclose(res.fit.pi, list(ref_pi.values()), rtol=0, atol=TOL)
    assert abs(res.fit.loglik - het_named("het_scalars.csv")[f"{tag}_loglik"]) < 1e-4
    assert_posteriors(res.posterior, tag)


@pytest.mark.parametrize("model", ["ee", "ez"])
def test_strong_set_pca_and_ed_match(case, model):
    bhat, shat, _ = case
    data = set_data(bhat, shat, 0.0 if model == "ee" else 1.0)
    data = with_V(data, estimate_null_correlation_simple(data))
    strong = het_strong(model)
    np.testing.assert_array_equal(strong_effects(data.bhat, data.shat, 0.05), strong)
    pca = cov_pca(data.bhat[strong], 2)
    for name, value in het_ulist(f"het_{model}_pca.csv").items():
        np.testing.assert_allclose(pca[name], value, rtol=0, atol=1e-10, err_msg=name)
    ed = cov_ed(data, pca, strong)
    for name, value in het_ulist(f"het_{model}_ed.csv").items():
        np.testing.assert_allclose(ed[name], value, rtol=0, atol=1e-8, err_msg=name)


def _max_dual_residual(rel: np.ndarray, pi: np.ndarray) -> float:
    """Largest (gradient / n - 1) of the uniform-prior log-likelihood over ALL components: 0 at the optimum."""
    lik = np.exp(rel)
    return float((lik.T @ (1 / (lik @ pi))).max() / len(lik) - 1)


def test_ez_enriched_mashr_stops_short_of_the_optimum(case):
    """Same likelihood matrix and posteriors as mashr under its weights; mashr's weights are not the optimum."""
    tag = "ez_enriched"
    res = run_mash(*case, settings(tag))
    assert_same_prior_inputs(res.fit, tag)
    ref_pi = np.array(list(het_named(f"het_{tag}_pi_all.csv").values()))
    ref_fit = MashFit(res.fit.ulist, res.fit.grid, ref_pi, True, res.fit.V, 1.0, res.fit.conditions)
    under_ref = run_fixg(case[0], case[1], ref_fit, settings(tag))
    assert abs(under_ref.fit.loglik - het_named("het_scalars.csv")[f"{tag}_loglik"]) < 1e-4
    assert_posteriors(under_ref.posterior, tag)
    # mixsqp checks convergence on the non-zero weights only; mashr's leave ascent directions among the zeros
    data = with_V(set_data(case[0], case[1], 1.0), res.fit.V)
    rel, _ = relative_loglik(calc_loglik_matrix(data, res.fit.expanded(), "cpu"))
    ref_residual = _max_dual_residual(rel, ref_pi)
    assert ref_residual > 5e-3         # 9.7e-3 (mix-SQP's usual accuracy: 2e-5, ee_enriched)
    # ours stops short too, at a point set by rounding noise: dual residual 1.9e-4 and log-likelihood +1.74 over
    # mashr's weights with one BLAS build; 2.5e-3 and +0.37 with numpy 2.4.6 / scipy 1.17.1 (2026-12-06). Either
    # way closer to the optimum than mashr's weights (docs/mash.md, issue 14)
    assert _max_dual_residual(rel, res.fit.pi) < ref_residual / 2
    assert res.fit.loglik > under_ref.fit.loglik + 0.1


def test_daywise_table_is_read_to_the_exact_bits(case, tmp_path):
    """The 17-digit input as a fate-stage table: every value parses to mashr's double (pandas' default parser
    misses about half of them by an ulp, enough to move mashr's enriched fit by 1e-2)."""
    bhat, shat, conds = case
    df = pd.DataFrame({"gene": [f"G{i}" for i in range(len(bhat))]})
    for k, c in enumerate(conds):
        df[f"betahat_{c}"] = bhat[:, k]
    for k, c in enumerate(conds):
        df[f"se_{c}"] = shat[:, k]
    path = tmp_path / "gene.csv"
    df.to_csv(path, index=False, float_format="%.17g")
    assert (pd.read_csv(path)[[f"betahat_{c}" for c in conds]].to_numpy() != bhat).sum() > 1000   # the trap
    table = read_daywise_table(path)
    np.testing.assert_array_equal(table.bhat, bhat)
    np.testing.assert_array_equal(table.shat, shat)


def test_fixtures_hold_exact_decimal_doubles():
    """make_ref.R writes %.17g; the fixture loader must give back mashr's doubles (spot check vs Python's parser)."""
    text = pd.read_csv(FIXTURES / "het_input_Bhat.csv.gz", dtype=str).to_numpy().ravel()[:2000]
    np.testing.assert_array_equal(het_matrix("het_input_Bhat.csv.gz").ravel()[:2000], [float(t) for t in text])
