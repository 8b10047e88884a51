"""Synthetic cisTarget cases for the leading-edge parity tests, rebuilt from a seed (numpy only).

The inputs are regenerated here so that only pySCENIC's outputs are stored (``ref_*.csv.gz``);
``make_ref.py`` runs pySCENIC 0.12.1 on the same cases. ``digest`` fingerprints the inputs so a
change in numpy's random streams shows up as a clear test failure, not as a false mismatch.

- ``issue14``: the case of issue 14, made by ../shared/reference/pyscenic/make_ref.py with seed 11,
  6,000 genes, 600 motifs, 25 TFs (the same random stream, up to the modules).
- ``reorder``: motifs in shuffled database order, TFs sharing targets (so unannotated enriched motifs
  precede annotated ones), and each TF's motifs annotated directly, by similarity (q-values that pass
  the FDR) and by orthology (identity 0.5), some pairs listed twice: pySCENIC's q-value sort of the
  annotated rows then moves rows as well.
- ``reorder_unique``: ``reorder`` with every (TF, motif) pair listed once (pySCENIC's merge then keeps
  the database order instead of sorting by motif name).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

TBL_COLUMNS = ["#motif_id", "motif_name", "motif_description", "source_name", "source_version", "gene_name",
               "motif_similarity_qvalue", "similar_motif_id", "similar_motif_description", "orthologous_identity",
               "orthologous_gene_name", "orthologous_species", "description"]
CASES = {"issue14": dict(seed=11, n_genes=6000, n_motifs=600, n_tfs=25, rank_threshold=5000),
         "reorder": dict(seed=7, n_genes=3000, n_motifs=300, n_tfs=12, rank_threshold=1500),
         "reorder_unique": dict(seed=7, n_genes=3000, n_motifs=300, n_tfs=12, rank_threshold=1500)}


@dataclass
class Case:
    genes: np.ndarray          # (n_genes,) str
    motifs: list[str]
    ranks: np.ndarray          # (n_motifs, n_genes) int16, 0-based
    annotations: pd.DataFrame  # pySCENIC .tbl layout
    modules: pd.DataFrame      # module, tf, target, weight

    def frame(self) -> pd.DataFrame:
        """The ranking database in the Feather v2 layout (gene columns + ``motifs``)."""
        df = pd.DataFrame(self.ranks, columns=self.genes)
        df["motifs"] = self.motifs
        return df

    def digest(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.ranks).tobytes())
        h.update("|".join(self.motifs).encode())
        h.update(self.annotations.to_csv(index=False).encode())
        h.update(self.modules.to_csv(index=False).encode())
        return h.hexdigest()[:16]


def build(name: str) -> Case:
    p = CASES[name]
    make = {"issue14": _issue14, "reorder": _reorder, "reorder_unique": _reorder}[name]
    case = make(p["seed"], p["n_genes"], p["n_motifs"], p["n_tfs"])
    if name == "reorder_unique":
        case.annotations = case.annotations.drop_duplicates(["#motif_id", "gene_name"]).reset_index(drop=True)
    return case


def _planted_row(rng, genes, targets, boost: float = 1.0) -> np.ndarray:
    score = rng.random(len(genes))
    hit = np.isin(genes, targets) & (rng.random(len(genes)) < 0.8)
    score[hit] -= boost + rng.random(hit.sum()) * 0.2
    return np.argsort(np.argsort(score)).astype(np.int16)


def _tbl(rows) -> pd.DataFrame:
    tbl = pd.DataFrame(rows, columns=["#motif_id", "gene_name", "motif_similarity_qvalue", "orthologous_identity",
                                      "description"])
    for c in TBL_COLUMNS:
        if c not in tbl:
            tbl[c] = "NA"
    return tbl[TBL_COLUMNS]


def _modules(rng, genes, tfs, truth, n_tfs) -> pd.DataFrame:
    rows = []
    for t in tfs:
        for kind, frac, nd in (("top50", 0.7, 25), ("pct75", 0.5, 60)):
            tg = rng.choice(truth[t], size=int(len(truth[t]) * frac), replace=False)
            dec = rng.choice(genes[n_tfs:][~np.isin(genes[n_tfs:], truth[t])], size=nd, replace=False)
            for g in np.concatenate([tg, dec]):
                rows.append((f"{t}_{kind}", str(t), str(g), float(np.round(rng.uniform(0.05, 1.0), 4))))
    return pd.DataFrame(rows, columns=["module", "tf", "target", "weight"])


def _issue14(seed, n_genes, n_motifs, n_tfs) -> Case:
    """The random stream of shared/reference/pyscenic/make_ref.py, call for call."""
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    tfs = genes[:n_tfs]
    truth = {t: rng.choice(genes[n_tfs:], size=int(rng.integers(40, 90)), replace=False) for t in tfs}
    names, rows, motif_tf = [], [], []
    for t in tfs:
        for k in range(2):
            rows.append(_planted_row(rng, genes, truth[t]))
            names.append(f"planted__{t}_m{k}")
            motif_tf.append(t)
    for j in range(n_motifs - len(rows)):
        rows.append(rng.permutation(n_genes).astype(np.int16))
        names.append(f"decoy__m{j:04d}")
        motif_tf.append(None)
    ann = []
    for m, t in zip(names, motif_tf):
        if t is not None:
            ann.append((m, t, 0.0, 1.0, "gene is directly annotated"))
        elif rng.random() < 0.3:
            q = float(rng.choice([0.0, 0.0005, 0.01, 0.2]))
            ann.append((m, str(rng.choice(tfs)), q, float(rng.choice([0.0, 0.5, 1.0])), "motif similar to planted"))
    return Case(genes, names, np.vstack(rows), _tbl(ann), _modules(rng, genes, tfs, truth, n_tfs))


def _reorder(seed, n_genes, n_motifs, n_tfs) -> Case:
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    tfs = genes[:n_tfs]
    pool = genes[n_tfs:]
    truth = {}
    for i, t in enumerate(tfs):   # TFs 2i and 2i+1 share about half of their targets
        own = rng.choice(pool, size=int(rng.integers(50, 80)), replace=False)
        truth[t] = own if i % 2 == 0 else np.union1d(own[:35], rng.choice(truth[tfs[i - 1]], size=30, replace=False))
    rows, names, ann = [], [], []
    for t in tfs:
        # two direct motifs, one found by similarity, one by orthology; boosts vary their strength
        similar_q, similar_identity = float(rng.choice([1e-4, 5e-4])), float(rng.choice([0.0, 1.0]))
        for k, (boost, q, ident, text) in enumerate([(1.0, 0.0, 1.0, "gene is directly annotated"),
                                                     (0.6, 0.0, 1.0, "gene is directly annotated"),
                                                     (0.8, similar_q, similar_identity, "motif similar to a direct one"),
                                                     (0.7, 0.0, 0.5, "gene is orthologous")]):
            rows.append(_planted_row(rng, genes, truth[t], boost))
            names.append(f"planted__{t}_m{k}")
            ann.append((names[-1], t, q, ident, text))
            if k == 2 and rng.random() < 0.5:   # listed twice: a worse duplicate (pySCENIC keeps the best)
                ann.append((names[-1], t, 8e-4, 0.0, "motif similar, second source"))
            if k == 3 and rng.random() < 0.5:
                ann.append((names[-1], t, 0.05, 1.0, "motif similar, fails the FDR"))
    for j in range(n_motifs - len(rows)):
        rows.append(rng.permutation(n_genes).astype(np.int16))
        names.append(f"decoy__m{j:04d}")
        if rng.random() < 0.2:
            ann.append((names[-1], str(rng.choice(tfs)), float(rng.choice([0.0, 5e-4, 0.01])), 1.0, "decoy"))
    order = rng.permutation(len(rows))   # database order mixes planted and decoy motifs
    return Case(genes, [names[i] for i in order], np.vstack(rows)[order], _tbl(ann),
                _modules(rng, genes, tfs, truth, n_tfs))
