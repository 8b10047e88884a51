"""The R mashr backend behind the same interface as the Python engine (``--engine r``).

Runs mashr through ``Rscript`` (as in the r-mashr container): the same modes, settings and outputs.
Matrices cross the boundary as raw little-endian doubles (``readBin``/``writeBin``), so mashr sees
exactly the bits the Python engine sees: on issue 14's case a 1e-13 change of the input (pandas'
default CSV parser) moved mashr's enriched posteriors by 1e-2. The R, mashr, ashr and
mixsqp versions come back with the fit. fixg reuse and the fit-on-a-subset path are Python-engine
features; the R engine fits on every effect.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..logs import get_logger
from .fit import MashFit
from .modes import MashResult, MashSettings
from .posterior import MashPosterior

log = get_logger(__name__)

R_SCRIPT = r"""
suppressPackageStartupMessages(library(mashr))
args = commandArgs(trailingOnly = TRUE); d = args[1]
p = read.csv(file.path(d, "settings.csv"), stringsAsFactors = FALSE)
s = setNames(as.list(p$value), p$name)
num = function(k) as.numeric(s[[k]]); flag = function(k) identical(s[[k]], "TRUE")
conds = readLines(file.path(d, "conditions.txt")); J = as.integer(s$n_effects)
rd = function(name) matrix(readBin(file.path(d, name), "double", J * length(conds), 8, endian = "little"), J,
                           dimnames = list(NULL, conds))
Bhat = rd("bhat.bin"); Shat = rd("shat.bin")
data = mash_set_data(Bhat, Shat, alpha = num("alpha"))
Vdesc = "identity"
if (flag("estimate_v")) {
  V = tryCatch(estimate_null_correlation_simple(data, z_thresh = num("z_thresh")), error = function(e) NULL)
  if (!is.null(V)) { data = mash_update_data(data, V = V); Vdesc = "estimate_null_correlation_simple" }
}
U = cov_canonical(data)
n_strong = NA
if (s$mode == "enriched") {
  strong = get_significant_results(mash_1by1(data), num("strong_lfsr"))
  n_strong = length(strong); npc = min(num("npc"), ncol(Bhat))
  if (npc >= 2 && length(strong) >= npc) {
    U = c(U, cov_ed(data, cov_pca(data, npc, subset = strong), subset = strong, tol = num("ed_tol")))
  } else warning("strong set too small: falling back to canonical covariances")
}
m = mash(data, U, gridmult = num("gridmult"), normalizeU = flag("normalize"), usepointmass = flag("usepointmass"),
         prior = s$prior, nullweight = num("nullweight"), pi_thresh = num("pi_thresh"), verbose = FALSE)
w = function(x, name) writeBin(as.double(x), file.path(d, name), 8, endian = "little")   # column-major
w(get_pm(m), "pm.bin"); w(get_psd(m), "psd.bin"); w(get_lfsr(m), "lfsr.bin"); w(data$V, "V.bin")
g = get_fitted_g(m)
w(g$grid, "grid.bin"); w(g$pi, "pi.bin"); w(get_loglik(m), "loglik.bin")
for (i in seq_along(g$Ulist)) w(g$Ulist[[i]], paste0("U_", i - 1, ".bin"))
pk = c("mashr", "ashr", "mixsqp")
pv = sapply(pk, function(p) utils::packageDescription(p)$Version)
writeLines(c(paste0("R=", R.version$major, ".", R.version$minor), paste0(pk, "=", pv)), file.path(d, "versions.txt"))
writeLines(c(Vdesc, as.character(n_strong), names(g$Ulist)), file.path(d, "meta.txt"))
"""


def r_available() -> tuple[bool, str]:
    """(True, "") when Rscript and mashr load; else (False, why)."""
    if shutil.which("Rscript") is None:
        return False, "Rscript is not on PATH"
    out = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(mashr))"],
                         check=False, capture_output=True, text=True)
    if out.returncode != 0:
        return False, f"the R package mashr does not load: {out.stderr.strip()[-300:]}"
    return True, ""


def _r_value(v) -> str:
    """A setting as R reads it back exactly: TRUE/FALSE, floats in hexadecimal (as.numeric parses 0x1.8p+1)."""
    if isinstance(v, bool):
        return str(v).upper()
    return v.hex() if isinstance(v, float) else str(v)


def run_mash_r(bhat: np.ndarray, shat: np.ndarray, conditions: list[str], settings: MashSettings) -> MashResult:
    """Fit one mode with mashr; same result type as ``modes.run_mash``."""
    ok, why = r_available()
    if not ok:
        raise RuntimeError(f"--engine r needs R with mashr ({why}); use --engine python or the r-mashr container")
    with tempfile.TemporaryDirectory(prefix="fatescope-mashr-") as tmp:
        d = Path(tmp)
        for name, table in (("bhat.bin", bhat), ("shat.bin", shat)):
            np.asarray(table, dtype="<f8").ravel(order="F").tofile(d / name)
        (d / "conditions.txt").write_text("".join(f"{c}\n" for c in conditions))
        values = {**settings.__dict__, "prior": settings.resolved_prior(), "n_effects": len(bhat)}
        pd.DataFrame({"name": list(values), "value": [_r_value(v) for v in values.values()]}
                     ).to_csv(d / "settings.csv", index=False)
        (d / "run.R").write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(d / "run.R"), str(d)], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"mashr failed:\n{out.stderr[-2000:]}")
        for line in out.stderr.splitlines():
            log.info("mashr: %s", line)

        def read(name: str, rows: int) -> np.ndarray:
            values = np.fromfile(d / name, dtype="<f8").astype(np.float64)
            return values.reshape(rows, -1, order="F") if rows else values

        meta = (d / "meta.txt").read_text().splitlines()
        names = meta[2:]
        R = len(conditions)
        ulist = {n: read(f"U_{i}.bin", R) for i, n in enumerate(names)}
        versions = dict(line.split("=", 1) for line in (d / "versions.txt").read_text().splitlines())
        info = {"mode": settings.mode, "engine": "r", "V": meta[0],
                "n_strong": None if meta[1] == "NA" else int(meta[1]), "versions": versions}
        fit = MashFit(ulist, read("grid.bin", 0), read("pi.bin", 0), settings.usepointmass, read("V.bin", R),
                      settings.alpha, list(conditions), float(read("loglik.bin", 0)[0]), info)
        pm, psd, lfsr = (read(f"{k}.bin", len(bhat)) for k in ("pm", "psd", "lfsr"))
    nan = np.full_like(pm, np.nan)
    return MashResult(MashPosterior(pm, psd, lfsr, nan, nan), fit, info)
