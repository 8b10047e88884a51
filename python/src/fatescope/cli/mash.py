"""``fatescope mash``: shrink the daywise knockdown effects with mash (Python engine or R mashr).

Each input table (gene and/or guide, from the fate stage) is fitted in each requested mode; outputs
``mash_<gene|guide>_<mode>.csv`` (id columns, postmean_*, postsd_*, lfsr_*) and
``mash_<gene|guide>_<mode>_fit.json`` (weights, grid, covariances, V, log-likelihood; reusable with --fixg-fit).
"""
from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from ..errors import InputError
from ..io.mash_tables import posterior_table, read_daywise_table
from ..io.outputs import staged_output
from ..logs import get_logger
from ..shrink.fit import MashFit
from ..shrink.grid import autoselect_grid
from ..device import resolve_device
from ..shrink.modes import MODES, MashResult, MashSettings, run_fixg, run_mash
from .common import outdir_option, stage_command

log = get_logger(__name__)
PACKAGES = ["numpy", "scipy", "pandas", "torch"]
ENGINES = ("python", "r")
MIN_EFFECTS = 2     # rows needed to fit a prior
MAX_GRID = 100      # prior scales; sqrt(2) apart, 100 span 15 orders of magnitude


def output_names(kind: str, mode: str) -> tuple[str, str]:
    return f"mash_{kind}_{mode}.csv", f"mash_{kind}_{mode}_fit.json"


def _load_fit(path: str) -> MashFit:
    try:
        return MashFit.from_json(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: fit file not found") from None
    except (ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a fatescope mash fit ({exc})") from None


def check_fittable(path, table, gridmult: float) -> None:
    """A prior can be fitted: at least MIN_EFFECTS effects, and a grid (from the smallest se to the largest effect)
    of at most MAX_GRID values -- a wider span means an se or effect off by many orders of magnitude."""
    if len(table.ids) < MIN_EFFECTS:
        raise InputError(f"{path}: {len(table.ids)} effect row(s); mash fits its prior (mixture weights, null correlation) "
                         f"from the effects and needs at least {MIN_EFFECTS}; reuse a larger table's fit with --fixg-fit")
    grid = autoselect_grid(table.bhat, table.shat, gridmult)
    if len(grid) > MAX_GRID:
        r_se, c_se = np.unravel_index(np.argmin(table.shat), table.shat.shape)
        r_b, c_b = np.unravel_index(np.argmax(np.abs(table.bhat)), table.bhat.shape)
        ids = table.ids.iloc[:, 0]
        raise InputError(f"{path}: the prior grid would have {len(grid)} values (at most {MAX_GRID}): the smallest se "
                         f"({table.shat[r_se, c_se]:.3g}, row {r_se + 1} {ids.iloc[r_se]!r}, day {table.days[c_se]}) and the "
                         f"largest effect ({table.bhat[r_b, c_b]:.3g}, row {r_b + 1} {ids.iloc[r_b]!r}, day {table.days[c_b]}) "
                         "are too many orders of magnitude apart")


def fit_table(table, settings: MashSettings, engine: str, fixg: MashFit | None) -> MashResult:
    if fixg is not None:
        if fixg.conditions != table.days:
            raise InputError(f"--fixg-fit was fitted on days {fixg.conditions}, the table has {table.days}")
        return run_fixg(table.bhat, table.shat, fixg, settings)
    if engine == "r":
        from ..shrink.engine_r import run_mash_r
        try:
            return run_mash_r(table.bhat, table.shat, table.days, settings)
        except RuntimeError as exc:      # R or mashr missing, or mashr failed: not an input problem, still a clean error
            raise click.ClickException(str(exc)) from exc
    return run_mash(table.bhat, table.shat, table.days, settings)


def _check_modes(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--mode: one comma-separated string of known modes (one value, so one Nextflow param)."""
    modes = [m.strip() for m in str(value).split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if not modes or bad:
        raise click.BadParameter(f"{value!r}: give a comma-separated subset of {', '.join(MODES)}")
    return ",".join(dict.fromkeys(modes))


def run(input: tuple[str, ...] | list[str], outdir: str = "mash", mode: str | tuple[str, ...] = ",".join(MODES), engine: str = "python",
        fixg_fit: str | None = None, alpha: float = 0.0, estimate_v: bool = True, z_thresh: float = 2.0,
        gridmult: float = math.sqrt(2), prior: str = "auto", nullweight: float = 10.0, strong_lfsr: float = 0.05,
        npc: int = 2, ed_tol: float = 1e-6, pi_thresh: float = 1e-10, fit_max_effects: int = 200_000, seed: int = 0,
        device: str = "auto") -> list[Path]:
    inputs = [input] if isinstance(input, str) else list(input)
    if not inputs:
        raise InputError("no input table given (--input)")
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {ENGINES}, got {engine!r}")
    resolve_device(device)
    tables = [(path, read_daywise_table(path)) for path in inputs]
    kinds = [t.kind for _, t in tables]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"two input tables of the same kind ({kinds}); give one gene and/or one guide table")
    fixg = _load_fit(fixg_fit) if fixg_fit else None
    if fixg is None:
        for path, table in tables:
            check_fittable(path, table, gridmult)
    mode = [m.strip() for m in mode.split(",") if m.strip()] if isinstance(mode, str) else list(mode)
    bad = [m for m in mode if m not in MODES]
    if bad:
        raise InputError(f"unknown mode(s) {bad}; choose from {MODES}")
    modes = [fixg.info.get("mode", "fixg")] if fixg is not None else list(dict.fromkeys(mode))
    results = {}
    for path, table in tables:
        for m in modes:
            settings = MashSettings(mode=m, alpha=alpha, estimate_v=estimate_v, z_thresh=z_thresh, gridmult=gridmult,
                                    prior=prior, nullweight=nullweight, strong_lfsr=strong_lfsr, npc=npc, ed_tol=ed_tol,
                                    pi_thresh=pi_thresh, fit_max_effects=fit_max_effects, seed=seed, device=device)
            log.info("mash %s table %s (%d effects x %d days), mode %s, engine %s", table.kind, path, len(table.ids),
                     len(table.days), m, engine)
            try:
                results[(table.kind, m)] = (path, table, fit_table(table, settings, engine, fixg))
            except ValueError as exc:
                raise InputError(f"{path}: {exc}") from exc
    params = dict(input=inputs, mode=modes, engine=engine, fixg_fit=fixg_fit, alpha=alpha, estimate_v=estimate_v,
                  z_thresh=z_thresh, gridmult=gridmult, prior=prior, nullweight=nullweight, strong_lfsr=strong_lfsr,
                  npc=npc, ed_tol=ed_tol, pi_thresh=pi_thresh, fit_max_effects=fit_max_effects, seed=seed, device=device)
    written = []
    r_versions = {k: v for _, _, res in results.values() for k, v in res.info.get("versions", {}).items()}
    with staged_output(outdir, "mash", params, PACKAGES, r_versions) as tmp:
        for (kind, m), (path, table, res) in results.items():
            csv_name, json_name = output_names(kind, m)
            post = res.posterior
            posterior_table(table.ids, table.days, {"postmean": post.mean, "postsd": post.sd, "lfsr": post.lfsr}
                            ).to_csv(tmp / csv_name, index=False, float_format="%.12g")
            res.fit.info = {**res.fit.info, "engine": engine, "input": str(path)}
            (tmp / json_name).write_text(res.fit.to_json())
            written.append(Path(outdir) / csv_name)
            n_sig = int((post.lfsr.min(axis=1) < 0.05).sum())
            log.info("mash %s %s: log-likelihood %.4f, %d of %d effects with min lfsr < 0.05", kind, m, res.fit.loglik,
                     n_sig, len(table.ids))
    return written


@stage_command("mash", help="Shrink daywise knockdown effects with mash: canonical covariances (conservative) and/or "
                            "canonical plus ED-refined data-driven covariances (enriched), on the gene and guide tables. "
                            "Python engine faithful to mashr (default) or R mashr (--engine r).")
@click.option("--input", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Daywise table(s): gene_daywise_for_mash.csv and/or guide_daywise_for_mash.csv (repeat the option).")
@outdir_option("mash")
@click.option("--mode", default=",".join(MODES), callback=_check_modes, show_default=True,
              help="Comma-separated mode(s) to fit: conservative = canonical covariances; enriched = canonical + ED "
                   f"(any of {', '.join(MODES)}).")
@click.option("--engine", default="python", type=click.Choice(ENGINES), help="mash engine: python, or r (mashr via Rscript).")
@click.option("--fixg-fit", default=None, type=click.Path(dir_okay=False),
              help="Reuse a saved *_fit.json (weights, grid, covariances, V) instead of fitting (fixg) [default: fit].")
@click.option("--alpha", default=0.0, type=click.FloatRange(0, 1), help="0 = exchangeable effects (EE), 1 = exchangeable z-scores (EZ).")
@click.option("--estimate-v/--no-estimate-v", default=True,
              help="Estimate the null correlation V from null-looking effects (estimate_null_correlation_simple); else V = I.")
@click.option("--z-thresh", default=2.0, type=click.FloatRange(min=0, min_open=True), help="Max |z| of effects used to estimate V.")
@click.option("--gridmult", default=math.sqrt(2), type=click.FloatRange(min=0), help="Factor between grid values (mashr's gridmult).")
@click.option("--prior", default="auto", type=click.Choice(["auto", "nullbiased", "uniform"]),
              help="Mixture-weight prior; auto = nullbiased (conservative), uniform (enriched).")
@click.option("--nullweight", default=10.0, type=click.FloatRange(min=1), help="Weight on the null under the nullbiased prior.")
@click.option("--strong-lfsr", default=0.05, type=click.FloatRange(0, 1),
              help="Enriched mode: 1-by-1 ash lfsr below which an effect is strong.")
@click.option("--npc", default=2, type=click.IntRange(min=2),
              help="Enriched mode: principal components for PCA/ED (capped at the number of days).")
@click.option("--ed-tol", default=1e-6, type=click.FloatRange(min=0, min_open=True),
              help="Extreme deconvolution tolerance on the average log-likelihood.")
@click.option("--pi-thresh", default=1e-10, type=click.FloatRange(min=0),
              help="Components with weight at or below this are skipped in posteriors.")
@click.option("--fit-max-effects", default=200_000, type=click.IntRange(min=1),
              help="Fit the weights on a random subset of this many effects when the table is larger, then apply to all (fixg).")
@click.option("--seed", default=0, type=int, help="Seed of the random fitting subset.")
@click.option("--device", default="auto", help="Torch device for likelihoods and posteriors: auto (CUDA when present), cpu, cuda.")
def command(**kwargs) -> None:
    run(**kwargs)
