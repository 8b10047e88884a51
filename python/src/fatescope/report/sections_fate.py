"""Sections about the knockdown effects: fate effects, volcano, mash modes, diagnostics, recovery."""
from __future__ import annotations

import pandas as pd

from . import figures
from .collect import RunData
from .section import Section, heading, image, not_run, para
from .tables import key_values, table

HIT_COLUMNS = ("rank", "gene", "hit_anyday", "lfsr_anyday", "active_days", "n_daywise_hits", "best_day",
               "postmean_best", "postsd_best")
CONFUSION = ("tp", "fp", "fn", "precision", "recall", "fdr", "f1", "auroc", "auprc")


def days_of(table: pd.DataFrame) -> list[str]:
    """Days of a mash table, in column order (postmean_<day>)."""
    return [c.removeprefix("postmean_") for c in table.columns if c.startswith("postmean_")]


def daywise_hits(hits: pd.DataFrame | None, table: pd.DataFrame, days: list[str], lfsr_thresh: float) -> dict[str, set]:
    """Genes called per day: rank's calls when present, else lfsr below the threshold."""
    out = {}
    for day in days:
        if hits is not None and f"hit_{day}" in hits:
            out[day] = set(hits.loc[hits[f"hit_{day}"].astype(bool), "gene"])
        else:
            out[day] = set(table.loc[table[f"lfsr_{day}"] < lfsr_thresh, "gene"])
    return out


def top_genes(hits: pd.DataFrame, n: int) -> tuple[list[str], bool]:
    """The ``n`` best-ranked any-day hits; the best-ranked genes when there are none (flag False)."""
    ranked = hits.sort_values("rank")
    called = ranked[ranked["hit_anyday"].astype(bool)]
    return (list(called["gene"].head(n)), True) if len(called) else (list(ranked["gene"].head(n)), False)


def hit_numbers(data: RunData, lfsr_thresh: float, top: int) -> dict:
    """Hit counts for report_summary.json (rank's calls, plus lfsr counts of the primary mash table)."""
    out: dict = {"lfsr_thresh": lfsr_thresh}
    if data.hits is not None:
        h = data.hits
        out.update(n_genes=int(len(h)), anyday=int(h["hit_anyday"].astype(bool).sum()),
                   daywise={c.removeprefix("hit_"): int(h[c].astype(bool).sum())
                            for c in h.columns if c.startswith("hit_") and c != "hit_anyday"},
                   top=top_genes(h, top)[0])
    if data.mash:
        fate, table = next(iter(data.mash.items()))
        out["fate"] = fate
        out["lfsr_below_thresh"] = {d: int((table[f"lfsr_{d}"] < lfsr_thresh).sum()) for d in days_of(table)}
    return out


def fate_probabilities(data: RunData) -> Section:
    """The fate-probs stage: probabilities on the UMAP per day and fate, terminal cells ringed."""
    title = "Fate probabilities (computed)"
    if data.fate_probs is None:
        return not_run("fate-probs", title, "fate_probs/ is absent (the samples brought their fate probabilities)")
    probs, info = data.fate_probs, data.fate_probs_info or {}
    terminal = data.terminal_states if data.terminal_states is not None else pd.Series(dtype=object)
    sizes = terminal.value_counts().reindex(probs.columns, fill_value=0)
    rows = pd.DataFrame({"fate": probs.columns, "terminal cells": sizes.to_numpy(),
                         "mean probability": probs.mean().to_numpy(),
                         "median in own terminal cells": [float(probs.loc[terminal.index[terminal == f], f].median())
                                                          if sizes[f] else float("nan") for f in probs.columns]})
    body = para(f"Absorption probabilities of a random walk on the kNN graph biased forward in pseudotime "
                f"({info.get('pseudotime', 'pseudotime')}), into {len(probs.columns)} terminal states.")
    body += table(rows, table_id="fate-probs-table")
    emb = data.embedding
    if emb is not None and len(emb.umap):
        body += image(figures.fate_probs_grid(emb.umap, emb.obs, probs, terminal),
                      "UMAPs coloured by each fate's probability, one row per day; terminal cells ringed")
    numbers = {"fates": list(probs.columns), "terminal_cells": {f: int(n) for f, n in sizes.items()},
               "mean_probability": {f: float(v) for f, v in probs.mean().items()}}
    return Section("fate-probs", title, body, numbers=numbers)


def fate_effects(data: RunData, top: int) -> Section:
    title = "Fate effects of the top hits"
    if not data.mash or data.hits is None:
        return not_run("fate-effects", title, "needs mash/mash_gene_conservative.csv and rank/hits_ranked.csv")
    genes, called = top_genes(data.hits, top)
    body = "" if called else para("No any-day hits: the best-ranked genes are shown.", "note")
    for fate, mash in data.mash.items():
        days = days_of(mash)
        m = mash.set_index("gene").reindex([g for g in genes if g in set(mash["gene"])])
        matrix = m[[f"postmean_{d}" for d in days]].set_axis(days, axis=1)
        body += image(figures.heatmap(matrix, f"{fate}: posterior mean effect (conservative mash)", "posterior mean",
                                      "day", annotate=matrix.size <= 200),
                      f"Heatmap of the posterior mean effect on {fate} of the top {len(matrix)} hits by day")
    cols = [c for c in HIT_COLUMNS if c in data.hits]
    body += heading(f"Top {len(genes)} ranked genes (rank/hits_ranked.csv)")
    body += table(data.hits.sort_values("rank").head(top)[cols], table_id="hits-table")
    return Section("fate-effects", title, body, numbers={"genes_shown": genes, "fates": list(data.mash)})


def volcano(data: RunData, lfsr_thresh: float) -> Section:
    title = "Volcano plots"
    if not data.mash:
        return not_run("volcano", title, "mash/ is absent")
    body = ""
    if data.hits is None:
        body += para(f"rank/ absent: genes with lfsr < {lfsr_thresh:g} are coloured as hits.", "note")
    for fate, mash in data.mash.items():
        days = days_of(mash)
        hits = daywise_hits(data.hits if fate == next(iter(data.mash)) else None, mash, days, lfsr_thresh)
        body += image(figures.volcano(mash, hits, days, lfsr_thresh, fate),
                      f"Volcano plots for {fate}, one panel per day: posterior mean against -log10 lfsr, hits in red")
    return Section("volcano", title, body)


def mash_modes(data: RunData) -> Section:
    title = "Mash modes: conservative vs enriched"
    comp = data.mode_comparison
    if comp is None:
        return not_run("mash-modes", title, "rank/mash_mode_comparison.csv is absent")
    body = table(comp, table_id="mash-modes-table") + image(
        figures.mode_bars(comp), "Bar chart of hit calls per scope in the conservative and enriched mash modes")
    row = comp.set_index("scope").loc["anyday"] if "anyday" in set(comp["scope"]) else None
    numbers = {} if row is None else {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
    return Section("mash-modes", title, body, numbers=numbers)


def diagnostics(data: RunData) -> Section:
    title = "Diagnostics"
    d = data.diagnostics
    if d is None:
        return not_run("diagnostics", title, "diagnostics/diagnostics.json is absent")
    held, hits = d.get("held_out", {}), d.get("hits", {})
    body = para("Held-out cross-entropy of the fate probabilities: the full model should beat the nuisance-only "
                "model. Permutation control: guides shuffled within strata; its hits estimate false calls.")
    body += key_values(held, key="held-out", caption="Held-out cross-entropy")
    flat = {k: v for k, v in hits.items() if not isinstance(v, dict)}
    flat.update({f"real ({f})": v for f, v in hits.get("real_by_fate", {}).items()})
    body += key_values(flat, key="hits", caption="Real vs permuted hits")
    if d.get("permutation"):
        body += key_values(d["permutation"], key="permutation", caption="Permutation control")
    if data.permutation_hits is not None and len(data.permutation_hits):
        body += heading("Hits under permutation") + table(data.permutation_hits, table_id="permutation-hits")
    numbers = {"cross_entropy_full": held.get("cross_entropy_full"),
               "cross_entropy_nuisance_only": held.get("cross_entropy_nuisance_only"),
               "improvement": held.get("improvement"), "hits_real": hits.get("real"), "hits_permuted": hits.get("permuted")}
    return Section("diagnostics", title, body, numbers=numbers)


def _confusion(block: dict) -> dict:
    return {k: block[k] for k in CONFUSION if k in block}


def recovery(data: RunData) -> Section:
    title = "Recovery of the simulated truth"
    r = data.recovery
    if r is None:
        return not_run("recovery", title, "no simulated truth (eval-recovery not run)")
    body, numbers = "", {}
    if "hits" in r:
        h = r["hits"]
        rows = [{"scope": s, **_confusion(h[s])} for s in ("anyday", "daywise") if s in h]
        rows += [{"scope": day, **_confusion(v)} for day, v in h.get("by_day", {}).items()]
        body += heading(f"Hit calls vs planted hits ({h.get('fate', '')})") + table(pd.DataFrame(rows), table_id="recovery-hits")
        numbers["hits"] = {s: _confusion(h[s]) for s in ("anyday", "daywise") if s in h} | {"fate": h.get("fate")}
    effects = {k: v["overall"] for k, v in r.items() if isinstance(v, dict) and "overall" in v}
    if effects:
        frame = pd.DataFrame([{"fate": k, **v} for k, v in effects.items()])
        body += heading("Effect sizes vs truth (all days)") + table(frame, table_id="recovery-effects")
        numbers["effects"] = effects
    reg = r.get("regulons")
    if isinstance(reg, dict):
        flat = {k: (", ".join(map(str, v)) or "none") if isinstance(v, list) else v
                for k, v in reg.items() if not isinstance(v, dict)}
        body += heading("Regulons vs planted regulons") + key_values(flat, key="metric")
        for name, per in reg.items():  # e.g. per_tf: {TF: {n_targets, precision}}
            if isinstance(per, dict) and per and all(isinstance(v, dict) for v in per.values()):
                body += table(pd.DataFrame([{name: k, **v} for k, v in per.items()]), caption=name)
    else:
        body += para("No regulon recovery (regulon stages skipped or not assessed).", "note")
    return Section("recovery", title, body, numbers=numbers)
