"""Integration benchmark on real data with labels: fatescope vs the scalex package and harmonypy.

Tasks:
  T1    CellBench (shared/data/sc_mixology): three CEL-seq2 plates p1/p2/p3 (909 cells, 5 cell
        lines, 3 batches)
  T2    CellBench: CEL-seq2 vs Drop-seq (499 cells, 3 cell lines, 2 batches)
  Kang  Kang 2018 PBMC controls (shared/data/kang_5donors: 8,684 cells, 2,511 genes, 5 donors =
        batches, 4 cell types = labels)
Same cells and genes for every method: inner gene join (CellBench, without ERCC), the 2,000
batch-aware HVGs (fatescope.cells.preprocess, scanpy's seurat/batch_key rule).

Methods (each in a fresh spawned process, so peak RSS is its own; wall time is the method only):
  pca            uncorrected: log-normalised HVGs, z-scored (clip 10), 50 PCs
  harmonypy      harmonypy on those PCs (peer)
  scalex         the scalex package (peer), given our HVG list, at its default 30,000 iterations
                 (``scalex-it<n>``: at n, ``--peer-iterations``)
  ours-harmony   fatescope Harmony (torch) on the same PCs
  ours-scalex    fatescope SCALEX-style VAE, ``--iterations`` (and the default cap of 400 epochs)
  ours-scalex+harmony    fatescope Harmony on that latent with the run's seed: what ``fatescope
                 integrate`` does with its defaults (``DEFAULT``); its Harmony time is ``harmony_s``
  ours-scalex-projected  fatescope VAE trained without the last batch, which is then projected
Seeds: the VAEs (ours and scalex) run once per ``--seeds`` value and the summary gives the mean,
min and max total over seeds (one seed of a 909-cell task moves the total by up to 0.006); our VAE
also runs once per ``--kl-weights`` value (names get ``-kl<w>`` when w is not SCALEX's 0.5).
Metrics: fatescope.cells.metrics.assess (scib-style: bio = mean(label ASW, ARI, NMI, cLISI),
batch = mean(batch ASW, iLISI), total = 0.6 bio + 0.4 batch; ARI/NMI of Leiden clusters at the
NMI-optimal resolution). ``default_vs_peers`` in the JSON: the default's total against the best
peer's (pca, harmonypy, scalex) per task. harmonypy and scalex are not project dependencies:
install them apart and put them on PYTHONPATH (the spawned processes inherit it).

    PYTHONPATH=/tmp/integ/site .venv/bin/python bench/integrate.py --tasks T1,T2,Kang \
        --methods pca,harmonypy,ours-harmony,scalex,ours-scalex --peer-iterations 30000,3000 \
        --seeds 124 --threads 1 --out bench/integrate_results.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = SHARED / "sc_mixology"
KANG = SHARED / "kang_5donors"
TASKS = {"T1": ["sc_celseq2_5cl_p1", "sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3"], "T2": ["sc_celseq2", "sc_dropseq"],
         "Kang": []}


def load_kang():
    """Kang 2018 PBMC controls: raw counts (cells x genes), donor = batch, cell type = label."""
    import anndata as ad
    from scipy.io import mmread

    counts = sp.csr_matrix(mmread(KANG / "counts.mtx.gz").T.astype(np.float32))
    obs = pd.read_csv(KANG / "obs.csv", index_col=0)
    genes = pd.read_csv(KANG / "genes.tsv", header=None)[0].astype(str)
    adata = ad.AnnData(counts, obs=pd.DataFrame(index=obs.index.astype(str)), var=pd.DataFrame(index=genes.to_numpy()))
    adata.obs["batch"] = obs["sample_id"].astype(str).to_numpy()
    adata.obs["label"] = obs["cluster_id"].astype(str).to_numpy()
    return adata


def load_task(name: str):
    """Counts (cells x genes, inner join), batches, labels."""
    import anndata as ad

    if name == "Kang":
        return load_kang()
    parts = []
    for sample in TASKS[name]:
        counts = pd.read_csv(DATA / f"{sample}.count.csv.gz", index_col=0)
        meta = pd.read_csv(DATA / f"{sample}.metadata.csv.gz", index_col=0).reindex(counts.columns)
        a = ad.AnnData(sp.csr_matrix(counts.T.to_numpy(np.float32)), obs=pd.DataFrame(index=[f"{sample}:{c}" for c in counts.columns]),
                       var=pd.DataFrame(index=counts.index.astype(str)))
        a.obs["batch"] = sample
        a.obs["label"] = meta["cell_line_demuxlet"].astype(str).to_numpy()
        parts.append(a)
    genes = sorted(g for g in set.intersection(*(set(p.var_names) for p in parts)) if not g.startswith("ERCC"))
    adata = ad.concat([p[:, genes] for p in parts])
    return adata


def hvgs(adata, n_top=2000):
    from fatescope.cells.preprocess import highly_variable_genes, log_normalize

    logX = log_normalize(adata.X)
    return list(adata.var_names[highly_variable_genes(logX, adata.obs["batch"].to_numpy(), n_top)])


def pcs(adata, genes, n_comps=50):
    from fatescope.cells.preprocess import log_normalize, pca

    X = log_normalize(adata.X)[:, adata.var_names.get_indexer(genes)].toarray()
    X = np.clip((X - X.mean(0)) / np.maximum(X.std(0), 1e-8), -10, 10)
    return pca(X, n_comps)


# --- methods: each returns the embedding; run inside a child process -------------------------

def m_pca(adata, genes, it, seed, kl):
    return pcs(adata, genes)


def m_harmonypy(adata, genes, it, seed, kl):
    import harmonypy

    Z = pcs(adata, genes)
    t = time.perf_counter()
    out = harmonypy.run_harmony(Z, adata.obs[["batch"]], "batch", random_state=0)
    emb = np.asarray(out.Z_corr)
    emb = emb.T if emb.shape[0] != Z.shape[0] else emb
    return emb, time.perf_counter() - t


def m_ours_harmony(adata, genes, it, seed, kl):
    from fatescope.cells.harmony import harmonize

    Z = pcs(adata, genes)
    t = time.perf_counter()
    emb = harmonize(Z, adata.obs["batch"].to_numpy(), seed=0)
    return emb, time.perf_counter() - t


def m_scalex(adata, genes, it, seed, kl):
    np.Inf = np.inf  # scalex 1.0.4 uses np.Inf (removed in NumPy 2)
    import tempfile

    import scalex

    # Given a gene list, scalex keeps an AnnData *view* and re-slices the columns of the full matrix
    # for every cell it loads (~17 ms per cell here, 30 s per epoch on T1). Handing it the HVG matrix
    # and asking for all of its genes keeps its own copy path: same genes, the speed it was built for.
    with tempfile.TemporaryDirectory() as tmp:
        out = scalex.SCALEX(adata[:, list(genes)].copy(), batch_name="batch", n_top_features=len(genes), min_features=0, min_cells=0,
                            max_iteration=it, seed=seed, outdir=tmp, ignore_umap=True, show=False, num_workers=0, gpu=0)
    return np.asarray(out.obsm["latent"])


def _ours_latent(adata, genes, it, seed, kl):
    import torch

    from fatescope.cells.integrate import ScalexParams, prepare, train, transform

    params = ScalexParams(max_iteration=it, seed=seed, beta=kl)
    data = prepare(adata.X, adata.var_names, adata.obs["batch"].to_numpy(), params, hvg=list(genes))
    domains = sorted(np.unique(data.batches))
    model, info = train(data, domains, params, torch.device("cpu"))
    return transform(model, data, params, torch.device("cpu")), info


def m_ours_scalex(adata, genes, it, seed, kl):
    """The VAE latent (the parent adds Harmony on it, as `integrate --harmony-on latent` does)."""
    return _ours_latent(adata, genes, it, seed, kl)[0]


def with_harmony(res: dict, batches, seed: int) -> dict:
    """Adds ``<name>+harmony`` for each VAE latent: Harmony on it with the run's seed (as the CLI)."""
    from fatescope.cells.harmony import harmonize

    out = dict(res["embeddings"])
    t = time.perf_counter()
    for name, emb in res["embeddings"].items():
        out[f"{name}+harmony"] = harmonize(emb, batches, seed=seed)
    return {**res, "embeddings": out, "harmony_s": time.perf_counter() - t}


def m_ours_scalex_projected(adata, genes, it, seed, kl):
    """Train without the last batch, then project it into the saved model (SCALEX's online mode)."""
    import torch

    from fatescope.cells.integrate import ScalexParams, fit_new_decoder_norms, prepare, train, transform

    params = ScalexParams(max_iteration=it, seed=seed, beta=kl)
    batches = adata.obs["batch"].astype(str).to_numpy()
    held = sorted(np.unique(batches))[-1]
    ref, query = adata[batches != held], adata[batches == held]
    data = prepare(ref.X, ref.var_names, ref.obs["batch"].to_numpy(), params, hvg=list(genes))
    domains = sorted(np.unique(data.batches))
    model, _ = train(data, domains, params, torch.device("cpu"))
    qdata = prepare(query.X, query.var_names, query.obs["batch"].to_numpy(), params, hvg=list(genes))
    qlat = transform(model, qdata, params, torch.device("cpu"))
    fit_new_decoder_norms(model, qdata, qlat, domains + [held], [held], params.chunk_size, torch.device("cpu"))
    out = np.empty((adata.n_obs, qlat.shape[1]), np.float32)
    out[batches != held] = transform(model, data, params, torch.device("cpu"))
    out[batches == held] = qlat
    return out


METHODS = {"pca": m_pca, "harmonypy": m_harmonypy, "ours-harmony": m_ours_harmony, "scalex": m_scalex,
           "ours-scalex": m_ours_scalex,
           "ours-scalex-projected": m_ours_scalex_projected}


DEFAULT = "ours-scalex+harmony"  # what `fatescope integrate` runs with its defaults (at --iterations 30000)
SCALEX_DEFAULT_ITERATIONS = 30000  # the scalex package's max_iteration
PEERS = ("pca", "harmonypy", "scalex")  # and any scalex-it<n> row
SEEDED = {"scalex", "ours-scalex", "ours-scalex-projected"}  # the others run once, with seed 0
OURS_VAE = {"ours-scalex", "ours-scalex-projected"}  # the methods that take --kl-weights


def _child(method, task, genes, it, threads, seed, kl, queue):
    import torch

    torch.set_num_threads(threads)
    adata = load_task(task)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = METHODS[method](adata, genes, it, seed, kl)
    wall = time.perf_counter() - t
    emb, core = (res if isinstance(res, tuple) else (res, None))
    embs = {method: np.asarray(emb, np.float32)}
    if method in OURS_VAE and kl != 0.5:
        embs = {k.replace("ours-scalex", f"ours-scalex-kl{kl:g}"): v for k, v in embs.items()}
    queue.put({"embeddings": embs, "wall_s": wall, "core_s": core,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "rss_before_mb": base / 1024})


def run_method(method, task, genes, it, threads, seed, kl, cache=None):
    """One method in a spawned process; with ``cache`` (a folder), a result saved there by an earlier
    run with the same task, method, seed, KL weight and iterations is reused, and new ones are saved."""
    key = f"{task}_{method}_s{seed}_kl{kl:g}_it{it}"
    if cache is not None and (Path(cache) / f"{key}.json").exists():
        meta = json.loads((Path(cache) / f"{key}.json").read_text())
        with np.load(Path(cache) / f"{key}.npz") as z:
            return {**meta, "embeddings": {k: z[k] for k in z.files}}
    res = _spawn(method, task, genes, it, threads, seed, kl)
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        np.savez(Path(cache) / f"{key}.npz", **res["embeddings"])
        (Path(cache) / f"{key}.json").write_text(json.dumps({k: v for k, v in res.items() if k != "embeddings"}))
    return res


def _spawn(method, task, genes, it, threads, seed, kl):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(method, task, genes, it, threads, seed, kl, q))
    p.start()
    while True:
        try:
            res = q.get(timeout=5)
            break
        except Exception:
            if not p.is_alive():
                raise RuntimeError(f"{method} on {task} failed (exit code {p.exitcode})")
    p.join()
    return res


def runs(methods, seeds, kl_weights, iterations, peer_iterations):
    """(method, seed, KL weight, iterations) for every run: seeded methods once per seed, our VAE once
    per KL weight, the scalex package once per peer iteration count."""
    for method in methods:
        for seed in (seeds if method in SEEDED else [0]):
            for kl in (kl_weights if method in OURS_VAE else [0.5]):
                for it in (peer_iterations if method == "scalex" else [iterations]):
                    yield method, seed, kl, it


def summary(results) -> list[dict]:
    """Per task and method: the total score over seeds (mean, min, max) and the mean wall time."""
    df = pd.DataFrame(results)
    out = df.groupby(["task", "method"], sort=False).agg(seeds=("seed", "nunique"), total_mean=("total", "mean"),
                                                          total_min=("total", "min"), total_max=("total", "max"),
                                                          ari_mean=("ari", "mean"), wall_s_mean=("wall_s", "mean"))
    return out.reset_index().to_dict("records")


def default_vs_peers(rows: list[dict]) -> list[dict]:
    """Per task, the mean total of the integrate default (``DEFAULT``) against the best peer's."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        got = {r["method"]: r["total_mean"] for r in rows if r["task"] == task}
        peers = {m: v for m, v in got.items() if m in PEERS or m.startswith("scalex-it")}
        if DEFAULT in got and peers:
            best = max(peers, key=peers.get)
            out.append({"task": task, "default": got[DEFAULT], "best_peer": best, "best_peer_total": peers[best],
                        "default_wins": bool(got[DEFAULT] >= peers[best])})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="T1,T2,Kang")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--iterations", type=int, default=30000, help="max_iteration of our VAE (the integrate default)")
    ap.add_argument("--peer-iterations", default=None,
                    help="max_iteration of the scalex package, comma-separated (rows named scalex-it<n> unless n is its "
                         "default 30000) [default: --iterations]")
    ap.add_argument("--seeds", default="124", help="seeds of the VAEs (both packages), comma-separated; 124 is SCALEX's default")
    ap.add_argument("--kl-weights", default="0.5", help="KL weights of our VAE, comma-separated (SCALEX: 0.5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON with every number: {'runs': [...], 'summary': [...]}")
    ap.add_argument("--cache", default=None, help="folder of embeddings (npz) and timings: reused when present, else saved")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "src"))
    from fatescope.cells.metrics import assess

    seeds = [int(x) for x in args.seeds.split(",")]
    kl_weights = [float(x) for x in args.kl_weights.split(",")]
    peer_iterations = [int(x) for x in args.peer_iterations.split(",")] if args.peer_iterations else [args.iterations]
    results = []
    for task in args.tasks.split(","):
        adata = load_task(task)
        genes = hvgs(adata)
        for method, seed, kl, it in runs(args.methods.split(","), seeds, kl_weights, args.iterations, peer_iterations):
            try:
                res = run_method(method, task, genes, it, args.threads, seed, kl, args.cache)
            except RuntimeError as exc:
                print(f"{task} {method}: {exc}", flush=True)
                continue
            if method == "ours-scalex":
                res = with_harmony(res, adata.obs["batch"].to_numpy(), seed)
            if method == "scalex" and it != SCALEX_DEFAULT_ITERATIONS:
                res = {**res, "embeddings": {f"scalex-it{it}": res["embeddings"]["scalex"]}}
            for name, emb in res["embeddings"].items():
                scores = assess(emb, adata.obs["batch"].to_numpy(), adata.obs["label"].to_numpy())
                row = {"task": task, "method": name, "seed": seed, "kl_weight": kl, "cells": adata.n_obs, "genes": len(genes),
                       "iterations": it, "threads": args.threads,
                       **{k: v for k, v in res.items() if k != "embeddings"}, **scores}
                results.append(row)
                print(f"{task} {name:26s} seed={seed:<4d} total={row['total']:.4f} bio={row['bio']:.3f} batch={row['batch']:.3f} "
                      f"ARI={row['ari']:.3f} NMI={row['nmi']:.3f} ASWl={row['label_asw']:.3f} cLISI={row['clisi']:.3f} "
                      f"ASWb={row['batch_asw']:.3f} iLISI={row['ilisi']:.3f} wall={row['wall_s']:.1f}s "
                      f"peak={row['peak_rss_mb']:.0f}MB", flush=True)
            if args.out:
                rows = summary(results)
                Path(args.out).write_text(json.dumps({"runs": results, "summary": rows, "default_vs_peers": default_vs_peers(rows)},
                                                     indent=1, default=float))
    for row in summary(results):
        print(f"{row['task']} {row['method']:26s} seeds={row['seeds']} total mean={row['total_mean']:.4f} "
              f"[{row['total_min']:.4f}, {row['total_max']:.4f}] ARI mean={row['ari_mean']:.3f} wall={row['wall_s_mean']:.1f}s")
    for row in default_vs_peers(summary(results)):
        print(f"{row['task']} default {DEFAULT} {row['default']:.4f} vs best peer {row['best_peer']} {row['best_peer_total']:.4f}: "
              f"{'ok' if row['default_wins'] else 'BELOW'}")


if __name__ == "__main__":
    main()
