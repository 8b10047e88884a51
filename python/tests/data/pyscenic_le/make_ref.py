"""Run pySCENIC 0.12.1 / ctxcore 0.2.0 ``prune2df`` on the cases of case.py; write its rows (gzip CSV).

Run in a scratch venv with pyscenic==0.12.1 ctxcore==0.2.0 numpy==1.23.5 pandas==1.5.3 dask==2023.5.0
distributed==2023.5.0 numba==0.57.1 pyarrow==14.0.2 (newer numpy/pandas break pySCENIC 0.12.1):
    python make_ref.py OUTDIR [CASE ...]
Writes OUTDIR/ref_prune2df_<case>.csv.gz and OUTDIR/params.json (parameters, input digests, timings).
"""
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.feather as pf
from ctxcore.genesig import Regulon
from ctxcore.rnkdb import FeatherRankingDatabase
from pyscenic.prune import prune2df

sys.path.insert(0, str(Path(__file__).resolve().parent))
import case as cases  # noqa: E402

PARAMS = dict(auc_threshold=0.05, nes_threshold=3.0, motif_similarity_fdr=0.001, orthologous_identity_threshold=0.0)
COLUMNS = ["module", "TF", "MotifID", "AUC", "NES", "RankAtMax", "TargetGenes", "Annotation"]


def run(name: str, outdir: Path, tmp: Path) -> dict:
    c = cases.build(name)
    rank_threshold = cases.CASES[name]["rank_threshold"]
    db_path = tmp / f"{name}.genes_vs_motifs.rankings.feather"
    pf.write_feather(c.frame(), db_path)
    c.annotations.to_csv(tmp / f"{name}.tbl", sep="\t", index=False)
    regs = [Regulon(name=m, gene2weight=dict(zip(g.target, g.weight)), transcription_factor=g.tf.iloc[0],
                    gene2occurrence=[], context=frozenset([m])) for m, g in c.modules.groupby("module", sort=True)]
    t0 = time.time()
    res = prune2df([FeatherRankingDatabase(str(db_path), name=name)], regs, str(tmp / f"{name}.tbl"),
                   rank_threshold=rank_threshold, auc_threshold=PARAMS["auc_threshold"],
                   nes_threshold=PARAMS["nes_threshold"], motif_similarity_fdr=PARAMS["motif_similarity_fdr"],
                   orthologuous_identity_threshold=PARAMS["orthologous_identity_threshold"], weighted_recovery=False,
                   client_or_address="custom_multiprocessing", num_workers=2)
    seconds = time.time() - t0
    res.columns = [col[1] if isinstance(col, tuple) else col for col in res.columns]
    res = res.reset_index()
    res["module"] = [next(x for x in ctx if x != name) for ctx in res["Context"]]
    res["TargetGenes"] = [";".join(f"{g}:{w:.6g}" for g, w in sorted(tg)) for tg in res["TargetGenes"]]
    res = res[COLUMNS].sort_values(["module", "MotifID"])
    res.to_csv(outdir / f"ref_prune2df_{name}.csv.gz", index=False, float_format="%.10g")
    return dict(cases.CASES[name], **PARAMS, digest=c.digest(), n_rows=len(res), pyscenic_prune_s=round(seconds, 1))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:] or list(cases.CASES)
    params_file = out / "params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            params[n] = run(n, out, Path(tmp))
            logging.warning("%s: %d rows in %.1f s", n, params[n]["n_rows"], params[n]["pyscenic_prune_s"])
    params_file.write_text(json.dumps(params, indent=1) + "\n")
