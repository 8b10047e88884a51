"""The engine's general (effect-specific noise) path against direct per-effect formulas, and the pieces
that the reference case does not exercise: V estimation, alpha, mix-SQP optimality, fallbacks."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from fatescope.shrink.covariances import cov_canonical
from fatescope.shrink.data import estimate_null_correlation_simple, set_data
from fatescope.shrink.engine_python import fit_mash
from fatescope.shrink.likelihood import calc_loglik_matrix, expand_cov
from fatescope.shrink.mixsqp import mix_weights
from fatescope.shrink.modes import MashSettings, run_mash
from fatescope.shrink.posterior import compute_posterior, posterior_weights


def noisy(rng, J=300, R=3):
    shat = rng.uniform(0.5, 2.0, size=(J, R))
    b = np.where(rng.random((J, 1)) < 0.3, rng.normal(0, 2, size=(J, R)), 0.0)
    return b + shat * rng.normal(size=(J, R)), shat


def test_loglik_and_posterior_match_direct_formulas():
    rng = np.random.default_rng(3)
    bhat, shat = noisy(rng, J=40)
    V = np.array([[1, 0.3, 0.1], [0.3, 1, 0.2], [0.1, 0.2, 1]])
    data = set_data(bhat, shat, V=V)
    xU = expand_cov(list(cov_canonical(3).values()), np.array([0.5, 1.5]))
    ll = calc_loglik_matrix(data, xU, "cpu")
    w = posterior_weights(np.full(len(xU), 1 / len(xU)), ll - ll.max(axis=1, keepdims=True))
    post = compute_posterior(data, xU, w, "cpu")
    for j in (0, 17, 39):
        S = np.diag(shat[j]) @ V @ np.diag(shat[j])
        direct = [multivariate_normal(np.zeros(3), U + S).logpdf(bhat[j]) for U in xU]
        np.testing.assert_allclose(ll[j], direct, rtol=1e-10)
        mus, vars_, negs, zeros = [], [], [], []
        for U in xU:
            U1 = U @ np.linalg.inv(np.linalg.inv(S) @ U + np.eye(3))
            mu = U1 @ np.linalg.solve(S, bhat[j])
            var = np.clip(np.diag(U1), 0, None)
            mus.append(mu), vars_.append(var)
            zeros.append(var < 1e-14)
            negs.append(np.where(var < 1e-14, 0, norm.cdf(-mu / np.sqrt(np.where(var < 1e-14, 1, var)))))
        mus, vars_ = np.array(mus), np.array(vars_)
        mean = w[j] @ mus
        np.testing.assert_allclose(post.mean[j], mean, atol=1e-10)
        np.testing.assert_allclose(post.sd[j], np.sqrt(w[j] @ (mus ** 2 + vars_) - mean ** 2), atol=1e-10)
        neg, zero = w[j] @ np.array(negs), w[j] @ np.array(zeros)
        lfsr = np.where(neg > 0.5 * (1 - zero), 1 - neg, neg + zero)
        np.testing.assert_allclose(post.lfsr[j], lfsr, atol=1e-10)


def test_mixsqp_reaches_the_optimum():
    """KKT conditions of max sum log(L x) + (nullweight-1) log x_0 on the simplex."""
    rng = np.random.default_rng(5)
    L = rng.gamma(1.0, size=(500, 12))
    prior = np.ones(12)
    prior[0] = 10
    x = mix_weights(L, prior)
    assert abs(x.sum() - 1) < 1e-12 and x.min() >= 0
    n = L.shape[0] + 9
    grad = (L.T @ (1 / (L @ x)) + np.eye(12)[0] * 9 / max(x[0], 1e-300)) / n
    assert np.all(grad <= 1 + 1e-5)
    assert np.all(np.abs(grad[x > 1e-6] - 1) < 1e-5)


def test_null_correlation_estimate():
    rng = np.random.default_rng(7)
    C = np.array([[1, 0.5, 0], [0.5, 1, -0.3], [0, -0.3, 1]])
    z = rng.multivariate_normal(np.zeros(3), C, size=20000)
    V = estimate_null_correlation_simple(set_data(z, np.ones_like(z)))
    nullish = np.abs(z).max(axis=1) < 2
    np.testing.assert_allclose(V, np.corrcoef(z[nullish], rowvar=False), atol=1e-12)   # truncation shrinks toward 0
    np.testing.assert_allclose(np.diag(V), 1)
    assert np.all(np.sign(V[[0, 1], [1, 2]]) == [1, -1])
    with pytest.raises(ValueError, match="not enough null data"):
        estimate_null_correlation_simple(set_data(np.full((5, 3), 10.0), np.ones((5, 3))))


def test_alpha_one_scales_back_to_effects():
    rng = np.random.default_rng(11)
    bhat, shat = noisy(rng)
    fit0, post0 = fit_mash(set_data(bhat / shat, np.ones_like(shat)), cov_canonical(3), ["a", "b", "c"])
    fit1, post1 = fit_mash(set_data(bhat, shat, alpha=1.0), cov_canonical(3), ["a", "b", "c"])
    np.testing.assert_allclose(post1.mean, post0.mean * shat, atol=1e-8)
    np.testing.assert_allclose(post1.lfsr, post0.lfsr, atol=1e-8)
    assert abs(fit1.loglik - (fit0.loglik - np.log(shat).sum())) < 1e-6


def test_enriched_mode_falls_back_to_canonical_when_no_strong_effects(caplog):
    rng = np.random.default_rng(13)
    bhat = 0.3 * rng.normal(size=(200, 4))
    with caplog.at_level(logging.WARNING, logger="fatescope"):
        res = run_mash(bhat, np.ones_like(bhat), ["d0", "d1", "d2", "d3"], MashSettings(mode="enriched"))
    assert res.info["n_strong"] == 0 and "fallback" in res.info
    assert list(res.fit.ulist) == list(cov_canonical(4, ["d0", "d1", "d2", "d3"]))
    assert any("falling back to the canonical covariances" in r.message for r in caplog.records)


def test_fit_on_subset_then_fixg_for_all():
    rng = np.random.default_rng(17)
    bhat, shat = noisy(rng, J=3000)
    res = run_mash(bhat, shat, ["a", "b", "c"], MashSettings(fit_max_effects=1000))
    assert "fit_on" in res.info and res.posterior.mean.shape == bhat.shape
    full = run_mash(bhat, shat, ["a", "b", "c"], MashSettings())
    assert np.corrcoef(res.posterior.mean.ravel(), full.posterior.mean.ravel())[0, 1] > 0.99
