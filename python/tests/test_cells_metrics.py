"""Integration metrics against hand-computed small cases and reference implementations."""
from __future__ import annotations

import numpy as np
import pytest

from fatescope.cells import metrics as M


def test_ari_nmi_hand_cases():
    a = ["x", "x", "y", "y"]
    assert M.ari(a, ["1", "1", "2", "2"]) == pytest.approx(1.0)
    assert M.nmi(a, ["2", "2", "1", "1"]) == pytest.approx(1.0)
    # a = (0,0,1,1), b = (0,1,0,1): independent -> NMI 0; ARI = (0 - 1*1/... ) hand: sum_ij=0, sum_a=2, sum_b=2,
    # expected = 2*2/6, denom = 2 - 2/3 -> ARI = -(2/3)/(4/3) = -0.5
    assert M.nmi(a, ["p", "q", "p", "q"]) == pytest.approx(0.0, abs=1e-12)
    assert M.ari(a, ["p", "q", "p", "q"]) == pytest.approx(-0.5)


def test_metrics_match_sklearn(rng):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_samples

    a = rng.integers(0, 4, 200).astype(str)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 4, 200).astype(str))
    assert M.ari(a, b) == pytest.approx(adjusted_rand_score(a, b))
    assert M.nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b))
    X = rng.normal(size=(150, 5)) + (np.arange(150) % 3)[:, None] * 1.5
    labels = (np.arange(150) % 3).astype(str)
    assert np.allclose(M.silhouette_samples(X, labels, chunk=64), silhouette_samples(X, labels))


def test_silhouette_hand_case():
    # two points at 0 and 1 (label a), one at 10 (label b): a-cells: a=1, b=10 / 9 -> s = 1 - 1/10, 1 - 1/9
    X = np.array([[0.0], [1.0], [10.0]])
    s = M.silhouette_samples(X, ["a", "a", "b"])
    assert s == pytest.approx([0.9, 1 - 1 / 9, 0.0])


def test_lisi_and_mixing_extremes(rng):
    # perfectly mixed: batches alternate inside tight replicated points -> iLISI ~ B; separated -> 1
    n = 300
    X = rng.normal(size=(n, 2))
    mixed = (np.arange(n) % 2).astype(str)
    apart = np.where(X[:, 0] > 0, "b1", "b0")
    Xa = X + np.where(apart == "b1", 50.0, 0.0)[:, None]
    assert M.ilisi(X, mixed) > 0.85
    assert M.ilisi(Xa, apart) == pytest.approx(0.0, abs=1e-6)
    nb = M.knn(X, 100)
    assert M.batch_entropy_mixing(mixed, nb) > 0.95
    assert M.batch_entropy_mixing(apart, M.knn(Xa, 100)) < 0.05
    assert M.knn_purity(apart, M.knn(Xa, 15)) == pytest.approx(1.0)
    # cLISI of separated labels is perfect (1 after normalisation)
    assert M.clisi(Xa, apart) == pytest.approx(1.0)


def test_lisi_weights_hit_perplexity(rng):
    d = np.sort(rng.random((20, 90)), axis=1) * 5
    P = M._perplexity_weights(d, 30)
    H = -(P * np.log(P)).sum(1)
    assert np.allclose(np.exp(H), 30, rtol=1e-3)


def test_assess_totals_follow_definition(rng):
    X = np.vstack([rng.normal(size=(60, 4)) + c * 6 for c in range(3)])
    labels = np.repeat(["A", "B", "C"], 60)
    batches = np.tile(["b1", "b2"], 90)
    out = M.assess(X, batches, labels)
    assert out["bio"] == pytest.approx(np.mean([out["label_asw"], out["ari"], out["nmi"], out["clisi"]]))
    assert out["batch"] == pytest.approx(np.mean([out["batch_asw"], out["ilisi"]]))
    assert out["total"] == pytest.approx(0.6 * out["bio"] + 0.4 * out["batch"])
    assert out["ari"] == pytest.approx(1.0) and out["ilisi"] > 0.8 and out["knn_purity"] == pytest.approx(1.0)
