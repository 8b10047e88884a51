"""Integration metrics on an embedding, scib-style, in numpy and scikit-learn (no scib dependency).

- ``silhouette``: mean silhouette width (euclidean).
- label ASW (rescaled): (silhouette of labels + 1) / 2.
- batch ASW: per label, 1 - |silhouette of batches| per cell, averaged within the label, then over
  labels (scib ``silhouette_batch``).
- LISI: inverse Simpson index of the kNN neighbourhood (k = 3 x perplexity, Gaussian weights
  calibrated to perplexity 30; Korsunsky et al.). iLISI normalised (median - 1) / (B - 1); cLISI
  normalised (L - median) / (L - 1) (scib).
- ARI / NMI: clusters vs labels, by scikit-learn (``clustering`` picks the Leiden resolution
  maximising NMI, as scib).
- batch entropy mixing: mean over cells of the entropy of the batch mix of each cell's 100
  neighbours, batch frequencies re-weighted to equal size (SCALEX), divided by ln(B) (1 = perfect).
- kNN purity: fraction of each cell's k neighbours that share its label.
- totals: bio = mean(label ASW, ARI, NMI, cLISI), batch = mean(batch ASW, iLISI),
  total = 0.6 bio + 0.4 batch.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _codes(values) -> tuple[np.ndarray, int]:
    cat = pd.Categorical(np.asarray(values).astype(str))
    return cat.codes.astype(np.int64), len(cat.categories)


def silhouette_samples(X: np.ndarray, labels, chunk: int = 2048) -> np.ndarray:
    """Per-cell silhouette (euclidean); cells of singleton labels get 0 (sklearn's convention)."""
    X = np.asarray(X, dtype=np.float64)
    codes, k = _codes(labels)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    sq = (X ** 2).sum(1)
    out = np.zeros(len(X))
    onehot = np.zeros((len(X), k))
    onehot[np.arange(len(X)), codes] = 1
    for s in range(0, len(X), chunk):
        d = np.sqrt(np.maximum(sq[s:s + chunk, None] + sq[None, :] - 2 * X[s:s + chunk] @ X.T, 0))
        sums = d @ onehot
        own = codes[s:s + chunk]
        rows = np.arange(len(own))
        n_own = counts[own] - 1
        a = np.divide(sums[rows, own], n_own, out=np.zeros(len(own)), where=n_own > 0)
        mean_other = sums / np.maximum(counts, 1)
        mean_other[rows, own] = np.inf
        mean_other[:, counts == 0] = np.inf
        b = mean_other.min(1)
        sil = (b - a) / np.maximum(np.maximum(a, b), 1e-300)
        out[s:s + chunk] = np.where(n_own > 0, sil, 0.0)
    return out


def silhouette(X, labels) -> float:
    return float(silhouette_samples(X, labels).mean())


def label_asw(X, labels) -> float:
    return (silhouette(X, labels) + 1) / 2


def batch_asw(X, batches, labels) -> float:
    X = np.asarray(X)
    batches, labels = np.asarray(batches).astype(str), np.asarray(labels).astype(str)
    scores = []
    for lab in np.unique(labels):
        sel = labels == lab
        if len(np.unique(batches[sel])) < 2 or sel.sum() < 3:
            continue
        scores.append(np.mean(1 - np.abs(silhouette_samples(X[sel], batches[sel]))))
    return float(np.mean(scores)) if scores else float("nan")


def knn(X, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self excluded): (indices, distances), cells x k."""
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float32)
    k = min(k, len(X) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return idx[:, 1:], dist[:, 1:]


def _perplexity_weights(dist: np.ndarray, perplexity: float, tol: float = 1e-5, n_iter: int = 50) -> np.ndarray:
    """Row-wise Gaussian weights whose entropy is log(perplexity) (binary search on beta)."""
    d2 = np.asarray(dist, dtype=np.float64)  # distances, not squared (as the LISI reference code)
    d2 = d2 - d2[:, :1]  # shift for numerical range; weights are unchanged after normalising
    beta = np.ones(len(d2))
    lo, hi = np.full(len(d2), -np.inf), np.full(len(d2), np.inf)
    target = np.log(perplexity)
    for _ in range(n_iter):
        p = np.exp(-d2 * beta[:, None])
        sp_ = p.sum(1)
        H = np.log(sp_) + beta * (d2 * p).sum(1) / sp_
        diff = H - target
        if np.all(np.abs(diff) < tol):
            break
        up = diff > 0
        lo = np.where(up, beta, lo)
        hi = np.where(up, hi, beta)
        beta = np.where(up, np.where(np.isinf(hi), beta * 2, (beta + hi) / 2), np.where(np.isinf(lo), beta / 2, (beta + lo) / 2))
    p = np.exp(-d2 * beta[:, None])
    return p / p.sum(1, keepdims=True)


def lisi(idx: np.ndarray, dist: np.ndarray, values, perplexity: float = 30) -> np.ndarray:
    """Per-cell LISI (effective number of categories among the weighted neighbours)."""
    codes, k = _codes(values)
    P = _perplexity_weights(dist, min(perplexity, max(idx.shape[1] / 3, 1)))
    mass = np.zeros((len(idx), k))
    np.add.at(mass, (np.repeat(np.arange(len(idx)), idx.shape[1]), codes[idx].ravel()), P.ravel())
    return 1.0 / (mass ** 2).sum(1)


def ilisi(X, batches, perplexity: float = 30, neighbors=None) -> float:
    idx, dist = neighbors if neighbors is not None else knn(X, int(3 * perplexity))
    B = len(np.unique(np.asarray(batches).astype(str)))
    return float((np.median(lisi(idx, dist, batches, perplexity)) - 1) / max(B - 1, 1))


def clisi(X, labels, perplexity: float = 30, neighbors=None) -> float:
    idx, dist = neighbors if neighbors is not None else knn(X, int(3 * perplexity))
    L = len(np.unique(np.asarray(labels).astype(str)))
    return float((L - np.median(lisi(idx, dist, labels, perplexity))) / max(L - 1, 1))


def ari(a, b) -> float:
    """Adjusted Rand index of two labellings (scikit-learn's), labels compared as strings."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(a).astype(str), np.asarray(b).astype(str)))


def nmi(a, b) -> float:
    """Normalised mutual information, arithmetic-mean normalisation (scikit-learn's default)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(a).astype(str), np.asarray(b).astype(str)))


def batch_entropy_mixing(batches, neighbors) -> float:
    idx = neighbors[0]
    codes, B = _codes(batches)
    if B < 2:
        return float("nan")
    P = np.bincount(codes, minlength=B) / len(codes)
    frac = np.zeros((len(idx), B))
    np.add.at(frac, (np.repeat(np.arange(len(idx)), idx.shape[1]), codes[idx].ravel()), 1.0 / idx.shape[1])
    adapt = frac / P
    adapt /= adapt.sum(1, keepdims=True)
    ent = -(adapt * np.log(adapt + 1e-8)).sum(1)
    return float(ent.mean() / np.log(B))


def knn_purity(labels, neighbors) -> float:
    codes, _ = _codes(labels)
    return float((codes[neighbors[0]] == codes[:, None]).mean())


def clustering(X, labels, resolutions=None, n_neighbors: int = 15, seed: int = 0) -> tuple[np.ndarray, float]:
    """Leiden clusters of the kNN graph at the resolution (0.1 .. 2.0) maximising NMI with ``labels``."""
    from .embed import leiden, neighbor_graph

    graph = neighbor_graph(X, n_neighbors=n_neighbors, seed=seed)
    best = (None, -1.0, None)
    for res in resolutions if resolutions is not None else np.round(np.arange(0.1, 2.01, 0.1), 2):
        cl = leiden(graph, resolution=float(res), seed=seed)
        score = nmi(labels, cl)
        if score > best[1]:
            best = (cl, score, float(res))
    return best[0], best[2]


def assess(X, batches=None, labels=None, clusters=None, perplexity: float = 30, seed: int = 0) -> dict:
    """Every metric that the available annotations allow, plus the scib-style totals."""
    X = np.asarray(X, dtype=np.float32)
    nb = knn(X, max(int(3 * perplexity), 100))
    lisi_nb = (nb[0][:, :int(3 * perplexity)], nb[1][:, :int(3 * perplexity)])
    out: dict[str, float] = {"n_cells": int(len(X))}
    multi_batch = batches is not None and len(np.unique(np.asarray(batches).astype(str))) > 1
    if multi_batch:
        out["batch_entropy_mixing"] = batch_entropy_mixing(batches, (nb[0][:, :100], None))
        out["ilisi"] = ilisi(X, batches, perplexity, lisi_nb)
        out["batch_silhouette"] = silhouette(X, batches)
    if labels is not None:
        labels = np.asarray(labels).astype(str)
        out["label_asw"] = label_asw(X, labels)
        out["clisi"] = clisi(X, labels, perplexity, lisi_nb)
        out["knn_purity"] = knn_purity(labels, (nb[0][:, :15], None))
        if clusters is None:
            clusters, res = clustering(X, labels, seed=seed)
            out["cluster_resolution"] = res
        out["ari"] = ari(labels, clusters)
        out["nmi"] = nmi(labels, clusters)
        out["bio"] = float(np.mean([out["label_asw"], out["ari"], out["nmi"], out["clisi"]]))
        if multi_batch:
            out["batch_asw"] = batch_asw(X, batches, labels)
            out["batch"] = float(np.nanmean([out["batch_asw"], out["ilisi"]]))
            out["total"] = 0.6 * out["bio"] + 0.4 * out["batch"]
    return out
