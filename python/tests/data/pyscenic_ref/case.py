"""The pySCENIC reference case of ../shared/reference/pyscenic, inputs rebuilt from its seed (numpy only).

``../shared/reference/pyscenic/make_ref.py`` (seed 11: 3,000 genes, 300 motifs, 15 TFs, 1,000 cells) draws
every input from one random stream; ``build`` replays that stream call for call, so only pySCENIC's
outputs are stored here (``ref_*.csv.gz``, plus the small ``aucell_regulons.csv.gz``). ``DIGESTS`` fingerprint
the rebuilt inputs (computed once against the shared files) so a change in numpy's random streams fails
clearly instead of showing up as a false mismatch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEED, N_GENES, N_MOTIFS, N_TFS, N_CELLS = 11, 3000, 300, 15, 1000
TBL_COLUMNS = ["#motif_id", "motif_name", "motif_description", "source_name", "source_version", "gene_name",
               "motif_similarity_qvalue", "similar_motif_id", "similar_motif_description", "orthologous_identity",
               "orthologous_gene_name", "orthologous_species", "description"]
DIGESTS = {"ranks": "37469e3a8f5f2464", "annotations": "fd70282db9b96340", "modules": "d61b2a4ad08c9ad1",
           "tiefree": "405d44ee6cc3110b", "counts": "380270336e3ac777"}


@dataclass
class Case:
    genes: np.ndarray              # (n_genes,) str
    motifs: list[str]
    ranks: np.ndarray              # (n_motifs, n_genes) int16, 0-based
    annotations: pd.DataFrame      # pySCENIC .tbl layout
    modules: pd.DataFrame          # module, tf, target, weight
    expression: dict[str, pd.DataFrame]  # "tiefree" (float32, continuous), "counts" (float32 Poisson, ties)

    def frame(self) -> pd.DataFrame:
        """The ranking database in the Feather v2 layout (gene columns + ``motifs``)."""
        df = pd.DataFrame(self.ranks, columns=self.genes)
        df["motifs"] = self.motifs
        return df

    def digests(self) -> dict[str, str]:
        parts = {"ranks": np.ascontiguousarray(self.ranks).tobytes() + "|".join(self.motifs).encode(),
                 "annotations": self.annotations.to_csv(index=False).encode(),
                 "modules": self.modules.to_csv(index=False).encode(),
                 **{k: np.ascontiguousarray(v.to_numpy()).tobytes() + "|".join(v.index).encode()
                    for k, v in self.expression.items()}}
        return {k: hashlib.sha256(v).hexdigest()[:16] for k, v in parts.items()}


def build() -> Case:
    """The inputs of make_ref.py, drawn in its order (the pySCENIC runs in between draw nothing)."""
    rng = np.random.default_rng(SEED)
    genes = np.array([f"G{i:05d}" for i in range(N_GENES)])
    tfs = genes[:N_TFS]
    truth = {t: rng.choice(genes[N_TFS:], size=int(rng.integers(40, 90)), replace=False) for t in tfs}
    names, rows, motif_tf = [], [], []
    for t in tfs:
        for k in range(2):
            score = rng.random(N_GENES)
            hit = np.isin(genes, truth[t]) & (rng.random(N_GENES) < 0.8)
            score[hit] -= 1.0 + rng.random(hit.sum()) * 0.2
            rows.append(np.argsort(np.argsort(score)).astype(np.int16))
            names.append(f"planted__{t}_m{k}")
            motif_tf.append(t)
    for j in range(N_MOTIFS - len(rows)):
        rows.append(rng.permutation(N_GENES).astype(np.int16))
        names.append(f"decoy__m{j:04d}")
        motif_tf.append(None)
    ann = []
    for m, t in zip(names, motif_tf):
        if t is not None:
            ann.append((m, t, 0.0, 1.0, "gene is directly annotated"))
        elif rng.random() < 0.3:
            q = float(rng.choice([0.0, 0.0005, 0.01, 0.2]))
            ann.append((m, str(rng.choice(tfs)), q, float(rng.choice([0.0, 0.5, 1.0])), "motif similar to planted"))
    tbl = pd.DataFrame(ann, columns=["#motif_id", "gene_name", "motif_similarity_qvalue", "orthologous_identity",
                                     "description"])
    tbl = tbl.reindex(columns=TBL_COLUMNS, fill_value="NA")
    mod_rows = []
    for t in tfs:
        for kind, frac, nd in (("top50", 0.7, 25), ("pct75", 0.5, 60)):
            tg = rng.choice(truth[t], size=int(len(truth[t]) * frac), replace=False)
            dec = rng.choice(genes[N_TFS:][~np.isin(genes[N_TFS:], truth[t])], size=nd, replace=False)
            for g in np.concatenate([tg, dec]):
                mod_rows.append((f"{t}_{kind}", str(t), str(g), float(np.round(rng.uniform(0.05, 1.0), 4))))
    modules = pd.DataFrame(mod_rows, columns=["module", "tf", "target", "weight"])
    act = rng.gamma(2.0, 1.0, size=(N_CELLS, N_TFS))
    X = rng.lognormal(0, 1, size=(N_CELLS, N_GENES))
    for i, t in enumerate(tfs):
        X[:, np.isin(genes, truth[t])] *= (1 + act[:, [i]])
    X = X.astype(np.float32)
    cells = [f"cell{i:05d}" for i in range(N_CELLS)]
    expression = {"tiefree": pd.DataFrame(X, columns=genes, index=cells),
                  "counts": pd.DataFrame(rng.poisson(X / 3).astype(np.float32), columns=genes, index=cells)}
    return Case(genes, names, np.vstack(rows), tbl, modules, expression)
