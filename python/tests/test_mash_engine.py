"""The Python mash engine against mashr 0.2.79's own outputs (shared/reference/mashr).

Quality bar: postmean, postsd, lfsr within 1e-4; log-likelihood within 1e-3; per-covariance weights
within 1e-3; grid and normalised covariances within 1e-8.
"""
from __future__ import annotations

import numpy as np
import pytest
from mash_reference import conditions, loglik, matrix, named, strong_idx, ulist

from fatescope.shrink.ash import strong_effects
from fatescope.shrink.covariances import cov_canonical, cov_pca, normalize_ulist
from fatescope.shrink.data import set_data
from fatescope.shrink.ed import cov_ed
from fatescope.shrink.engine_python import apply_fit, fit_mash
from fatescope.shrink.fit import MashFit
from fatescope.shrink.grid import autoselect_grid


@pytest.fixture(scope="module")
def data():
    return set_data(matrix("input_Bhat.csv"), matrix("input_Shat.csv"))


@pytest.fixture(scope="module")
def ed_covs(data):
    return cov_ed(data, cov_pca(data.bhat[strong_idx()], 3), strong_idx())


@pytest.fixture(scope="module")
def fits(data, ed_covs):
    canon = cov_canonical(4, conditions())
    return {"canon": fit_mash(data, canon, conditions()), "canon_ed": fit_mash(data, {**canon, **ed_covs}, conditions())}


def assert_close_ulists(mine: dict, ref: dict, tol: float) -> None:
    assert list(mine) == list(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(mine[name], value, rtol=0, atol=tol, err_msg=name)


def test_grid_matches_autoselect_grid(data):
    ref = np.array(list(named("canon_grid.csv", "grid").values()))
    np.testing.assert_allclose(autoselect_grid(data.bhat, data.shat), ref, rtol=0, atol=1e-8)


def test_canonical_covariances_match(data):
    assert_close_ulists(normalize_ulist(cov_canonical(4, conditions())), ulist("canon_Ulist.csv"), 1e-8)


def test_strong_set_matches_mash_1by1(data):
    np.testing.assert_array_equal(strong_effects(data.bhat, data.shat, 0.05), np.sort(strong_idx()))


def test_pca_and_extreme_deconvolution_match(data, ed_covs):
    assert_close_ulists(cov_pca(data.bhat[strong_idx()], 3), ulist("ed_Ulist_pca_init.csv"), 1e-8)
    assert_close_ulists(ed_covs, ulist("ed_Ulist_ed.csv"), 1e-8)


@pytest.mark.parametrize("tag", ["canon", "canon_ed"])
def test_fit_matches_mashr(fits, tag):
    fit, post = fits[tag]
    np.testing.assert_allclose(fit.grid, list(named(f"{tag}_grid.csv", "grid").values()), rtol=0, atol=1e-8)
    assert_close_ulists(fit.ulist, ulist(f"{tag}_Ulist.csv"), 1e-8)
    assert abs(fit.loglik - loglik(tag)) < 1e-3
    ref_cov = named(f"{tag}_pi_cov.csv", "pi")
    assert list(fit.pi_cov()) == list(ref_cov)
    np.testing.assert_allclose(list(fit.pi_cov().values()), list(ref_cov.values()), rtol=0, atol=1e-3)
    ref_all = named(f"{tag}_pi_all.csv", "pi")
    assert fit.component_names() == list(ref_all)
    for mine, ref in ((post.mean, "pm"), (post.sd, "psd"), (post.lfsr, "lfsr")):
        np.testing.assert_allclose(mine, matrix(f"{tag}_{ref}.csv"), rtol=0, atol=1e-4, err_msg=ref)


def test_fixg_json_round_trip_reproduces_posteriors(data, fits):
    fit, post = fits["canon_ed"]
    again = MashFit.from_json(fit.to_json())
    post2, ll = apply_fit(again, data)
    assert abs(ll - fit.loglik) < 1e-6
    for a, b in ((post.mean, post2.mean), (post.sd, post2.sd), (post.lfsr, post2.lfsr)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
