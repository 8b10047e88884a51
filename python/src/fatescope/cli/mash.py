"""``fatescope mash``: shrink the daywise knockdown effects with mash (Python engine or R mashr).

Each input table (gene and/or guide, from the fate stage) is fitted in each requested mode; outputs
``mash_<gene|guide>_<mode>.csv`` (id columns, postmean_*, postsd_*, lfsr_*) and
``mash_<gene|guide>_<mode>_fit.json`` (weights, grid, covariances, V, log-likelihood; reusable with --fixg-fit).

Nextflow may split the posteriors over effect chunks (``mash_effect_chunk_size``): one ``--fit-only`` task, one
``--fixg-fit ... --effect-chunk K`` task per table, mode and chunk, one ``--gather`` task; the outputs are those of
the one-task run to the bit (cli/mash_chunks.py).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..device import resolve_device
from ..errors import InputError
from ..io.mash_tables import posterior_table, read_daywise_table
from ..io.outputs import staged_output
from ..logs import get_logger
from ..shrink.fit import MashFit
from ..shrink.modes import MODES, MashSettings
from ..io.chunks import chunk_span
from ..tl._mash import ENGINES, check_fittable, fit_daywise, mash
from . import mash_chunks
from .common import api_default, outdir_option, stage_command

log = get_logger(__name__)
PACKAGES = ["numpy", "scipy", "pandas", "torch"]
TASK_SPLIT_OPTIONS = ("effect_chunk_size", "effect_chunk", "fit_only", "gather")  # Nextflow's split: no API counterpart


def output_names(kind: str, mode: str) -> tuple[str, str]:
    return f"mash_{kind}_{mode}.csv", f"mash_{kind}_{mode}_fit.json"


def _load_fit(path: str) -> MashFit:
    try:
        return MashFit.from_json(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: fit file not found") from None
    except (ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a fatescope mash fit ({exc})") from None


def _check_modes(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--mode: one comma-separated string of known modes (one value, so one Nextflow param)."""
    modes = [m.strip() for m in str(value).split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if not modes or bad:
        raise click.BadParameter(f"{value!r}: give a comma-separated subset of {', '.join(MODES)}")
    return ",".join(dict.fromkeys(modes))


def _check_split(inputs: list[str], engine: str, fixg_fit: str | None, effect_chunk_size: int | None,
                 effect_chunk: int | None, fit_only: bool) -> None:
    """The split-task options go together as the chunked plan needs them."""
    if effect_chunk is not None:
        if effect_chunk_size is None or not fixg_fit or fit_only:
            raise InputError("--effect-chunk computes the posteriors of one chunk under a saved fit: give it with "
                             "--effect-chunk-size and --fixg-fit, without --fit-only")
        if len(inputs) != 1:
            raise InputError(f"--effect-chunk takes one --input table (the fit's), got {len(inputs)}")
    if fit_only and (effect_chunk_size is None or fixg_fit or engine != "python"):
        raise InputError("--fit-only plans chunked posteriors: give it with --effect-chunk-size, without --fixg-fit, "
                         "and with --engine python (chunk posteriors are the python engine's fixg)")


def run(input: tuple[str, ...] | list[str] = (), outdir: str = "mash", mode: str | tuple[str, ...] = ",".join(MODES),
        engine: str = api_default(mash, "engine"), fixg_fit: str | None = None, alpha: float = api_default(mash, "alpha"),
        estimate_v: bool = api_default(mash, "estimate_v"), z_thresh: float = api_default(mash, "z_thresh"),
        gridmult: float = api_default(mash, "gridmult"), prior: str = api_default(mash, "prior"),
        nullweight: float = api_default(mash, "nullweight"), strong_lfsr: float = api_default(mash, "strong_lfsr"),
        npc: int = api_default(mash, "npc"), ed_tol: float = api_default(mash, "ed_tol"),
        pi_thresh: float = api_default(mash, "pi_thresh"), fit_max_effects: int = api_default(mash, "fit_max_effects"),
        seed: int = api_default(mash, "seed"), device: str = api_default(mash, "device"),
        effect_chunk_size: int | None = None, effect_chunk: int | None = None, fit_only: bool = False,
        gather: tuple[str, ...] | list[str] = ()) -> list[Path]:
    if gather:
        if fit_only or effect_chunk is not None:
            raise InputError("--gather collects the chunk folders: give it without --fit-only and --effect-chunk")
        return mash_chunks.gather(list(gather), outdir)
    inputs = [input] if isinstance(input, str) else list(input)
    if not inputs:
        raise InputError("no input table given (--input)")
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {ENGINES}, got {engine!r}")
    _check_split(inputs, engine, fixg_fit, effect_chunk_size, effect_chunk, fit_only)
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
        span = None if effect_chunk is None else chunk_span(len(table.ids), effect_chunk_size, effect_chunk, "effects", path)
        for m in modes:
            settings = MashSettings(mode=m, alpha=alpha, estimate_v=estimate_v, z_thresh=z_thresh, gridmult=gridmult,
                                    prior=prior, nullweight=nullweight, strong_lfsr=strong_lfsr, npc=npc, ed_tol=ed_tol,
                                    pi_thresh=pi_thresh, fit_max_effects=fit_max_effects, seed=seed, device=device)
            try:
                results[(table.kind, m)] = (path, table, fit_daywise(table, settings, engine, fixg, path, fit_only, span))
            except RuntimeError as exc:  # R or mashr missing, or mashr failed: not an input problem, still a clean error
                if engine != "r":
                    raise
                raise click.ClickException(str(exc)) from exc
    params = dict(input=inputs, mode=modes, engine=engine, fixg_fit=fixg_fit, alpha=alpha, estimate_v=estimate_v,
                  z_thresh=z_thresh, gridmult=gridmult, prior=prior, nullweight=nullweight, strong_lfsr=strong_lfsr,
                  npc=npc, ed_tol=ed_tol, pi_thresh=pi_thresh, fit_max_effects=fit_max_effects, seed=seed, device=device,
                  effect_chunk_size=effect_chunk_size, effect_chunk=effect_chunk, fit_only=fit_only)
    written = []
    r_versions = {k: v for _, _, res in results.values() for k, v in res.info.get("versions", {}).items()}
    # versions.yml under the Nextflow process of the step: MASH_FIT, MASH_CHUNK, else MASH
    step = "mash-fit" if fit_only else "mash-chunk" if effect_chunk is not None else "mash"
    with staged_output(outdir, step, params, PACKAGES, r_versions) as tmp:
        if effect_chunk is not None:
            ((kind, m), (path, table, res)), = results.items()
            return [mash_chunks.write_chunk(tmp, outdir, path, table, res, fixg_fit, effect_chunk, effect_chunk_size,
                                            span, pi_thresh, str(resolve_device(device)))]
        fits = []
        for (kind, m), (path, table, res) in results.items():
            csv_name, json_name = output_names(kind, m)
            res.fit.info = {**res.fit.info, "engine": engine, "input": str(path)}
            (tmp / json_name).write_text(res.fit.to_json())
            fits.append((path, table, m, json_name))
            if fit_only:
                continue
            post = res.posterior
            posterior_table(table.ids, table.days, {"postmean": post.mean, "postsd": post.sd, "lfsr": post.lfsr}
                            ).to_csv(tmp / csv_name, index=False, float_format="%.12g")
            written.append(Path(outdir) / csv_name)
            n_sig = int((post.lfsr.min(axis=1) < 0.05).sum())
            log.info("mash %s %s: log-likelihood %.4f, %d of %d effects with min lfsr < 0.05", kind, m, res.fit.loglik,
                     n_sig, len(table.ids))
        if fit_only:
            written = mash_chunks.write_plan(tmp, outdir, fits, effect_chunk_size, pi_thresh)
    return written


@stage_command("mash", help="Shrink daywise knockdown effects with mash: canonical covariances (conservative) and/or "
                            "canonical plus ED-refined data-driven covariances (enriched), on the gene and guide tables. "
                            "Python engine faithful to mashr (default) or R mashr (--engine r).")
@click.option("--input", multiple=True, type=click.Path(dir_okay=False),
              help="Daywise table(s): gene_daywise_for_mash.csv and/or guide_daywise_for_mash.csv (repeat the option; "
                   "required except with --gather).")
@outdir_option("mash")
@click.option("--mode", default=",".join(MODES), callback=_check_modes, show_default=True,
              help="Comma-separated mode(s) to fit: conservative = canonical covariances; enriched = canonical + ED "
                   f"(any of {', '.join(MODES)}).")
@click.option("--engine", default=api_default(mash, "engine"), type=click.Choice(ENGINES), help="mash engine: python, or r (mashr via Rscript).")
@click.option("--fixg-fit", default=None, type=click.Path(dir_okay=False),
              help="Reuse a saved *_fit.json (weights, grid, covariances, V) instead of fitting (fixg) [default: fit].")
@click.option("--alpha", default=api_default(mash, "alpha"), type=click.FloatRange(0, 1), help="0 = exchangeable effects (EE), 1 = exchangeable z-scores (EZ).")
@click.option("--estimate-v/--no-estimate-v", default=api_default(mash, "estimate_v"),
              help="Estimate the null correlation V from null-looking effects (estimate_null_correlation_simple); else V = I.")
@click.option("--z-thresh", default=api_default(mash, "z_thresh"), type=click.FloatRange(min=0, min_open=True), help="Max |z| of effects used to estimate V.")
@click.option("--gridmult", default=api_default(mash, "gridmult"), type=click.FloatRange(min=0), help="Factor between grid values (mashr's gridmult).")
@click.option("--prior", default=api_default(mash, "prior"), type=click.Choice(["auto", "nullbiased", "uniform"]),
              help="Mixture-weight prior; auto = nullbiased (conservative), uniform (enriched).")
@click.option("--nullweight", default=api_default(mash, "nullweight"), type=click.FloatRange(min=1), help="Weight on the null under the nullbiased prior.")
@click.option("--strong-lfsr", default=api_default(mash, "strong_lfsr"), type=click.FloatRange(0, 1),
              help="Enriched mode: 1-by-1 ash lfsr below which an effect is strong.")
@click.option("--npc", default=api_default(mash, "npc"), type=click.IntRange(min=2),
              help="Enriched mode: principal components for PCA/ED (capped at the number of days).")
@click.option("--ed-tol", default=api_default(mash, "ed_tol"), type=click.FloatRange(min=0, min_open=True),
              help="Extreme deconvolution tolerance on the average log-likelihood.")
@click.option("--pi-thresh", default=api_default(mash, "pi_thresh"), type=click.FloatRange(min=0),
              help="Components with weight at or below this are skipped in posteriors.")
@click.option("--fit-max-effects", default=api_default(mash, "fit_max_effects"), type=click.IntRange(min=1),
              help="Fit the weights on a random subset of this many effects when the table is larger, then apply to all (fixg).")
@click.option("--seed", default=api_default(mash, "seed"), type=int, help="Seed of the random fitting subset.")
@click.option("--device", default=api_default(mash, "device"), help="Torch device for likelihoods and posteriors: auto (CUDA when present), cpu, cuda.")
@click.option("--effect-chunk-size", default=None, type=click.IntRange(min=1),
              help="Effects per posterior task when Nextflow splits this stage (one fit task, one task per table, mode "
                   "and chunk, one gather task); the outputs are the same to the bit. One task (fatescope run) "
                   "ignores it [default: no split].")
@click.option("--effect-chunk", default=None, type=click.IntRange(min=0),
              help="Split task: posteriors of chunk K (0-based) of --effect-chunk-size effects of the one --input "
                   "under --fixg-fit; writes mash_chunk.csv and mash_chunk.json [default: every effect].")
@click.option("--fit-only", is_flag=True, default=False,
              help="Split task: fit every table and mode, write the *_fit.json files and the chunk plan "
                   "(mash_chunks.csv: kind, mode, chunk, start, stop, input, fit; mash_chunks.json), no posteriors.")
@click.option("--gather", multiple=True, type=click.Path(),
              help="Split task: the --fit-only folder and every --effect-chunk folder (repeat; any order); writes "
                   "the standard outputs, checking that the chunks cover every effect once.")
def command(**kwargs) -> None:
    run(**kwargs)
