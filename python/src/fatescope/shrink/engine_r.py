"""The R mashr backend behind the same interface as the Python engine (``--engine r``).

Runs mashr through ``Rscript`` (as in the r-mashr container): the same modes, settings and outputs.
Numbers cross the boundary as CSV with 17 significant digits. fixg reuse and the fit-on-a-subset
path are Python-engine features; the R engine fits on every effect.
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
from .posterior import Posterior

log = get_logger(__name__)

R_SCRIPT = r"""
suppressPackageStartupMessages(library(mashr))
args = commandArgs(trailingOnly = TRUE); d = args[1]
p = read.csv(file.path(d, "settings.csv"), stringsAsFactors = FALSE)
s = setNames(as.list(p$value), p$name)
num = function(k) as.numeric(s[[k]]); flag = function(k) identical(s[[k]], "TRUE")
Bhat = as.matrix(read.csv(file.path(d, "bhat.csv"), check.names = FALSE))
Shat = as.matrix(read.csv(file.path(d, "shat.csv"), check.names = FALSE))
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
f = function(x) sprintf("%.17g", x)
w = function(M, name) write.csv(matrix(f(M), nrow = nrow(M)), file.path(d, name), row.names = FALSE, quote = FALSE)
w(get_pm(m), "pm.csv"); w(get_psd(m), "psd.csv"); w(get_lfsr(m), "lfsr.csv"); w(data$V, "V.csv")
g = get_fitted_g(m)
write.csv(data.frame(grid = f(g$grid)), file.path(d, "grid.csv"), row.names = FALSE, quote = FALSE)
write.csv(data.frame(pi = f(g$pi)), file.path(d, "pi.csv"), row.names = FALSE, quote = FALSE)
for (nm in names(g$Ulist)) w(g$Ulist[[nm]], paste0("U_", length(list.files(d, "^U_")), ".csv"))
writeLines(c(f(get_loglik(m)), Vdesc, as.character(n_strong), names(g$Ulist)), file.path(d, "meta.txt"))
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


def run_mash_r(bhat: np.ndarray, shat: np.ndarray, conditions: list[str], settings: MashSettings) -> MashResult:
    """Fit one mode with mashr; same result type as ``modes.run_mash``."""
    ok, why = r_available()
    if not ok:
        raise RuntimeError(f"--engine r needs R with mashr ({why}); use --engine python or the r-mashr container")
    with tempfile.TemporaryDirectory(prefix="fatescope-mashr-") as tmp:
        d = Path(tmp)
        pd.DataFrame(bhat, columns=conditions).to_csv(d / "bhat.csv", index=False, float_format="%.17g")
        pd.DataFrame(shat, columns=conditions).to_csv(d / "shat.csv", index=False, float_format="%.17g")
        values = {**settings.__dict__, "prior": settings.resolved_prior()}
        pd.DataFrame({"name": list(values), "value": [str(v).upper() if isinstance(v, bool) else str(v) for v in values.values()]}
                     ).to_csv(d / "settings.csv", index=False)
        (d / "run.R").write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(d / "run.R"), str(d)], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"mashr failed:\n{out.stderr[-2000:]}")
        for line in out.stderr.splitlines():
            log.info("mashr: %s", line)

        def read(name: str) -> np.ndarray:
            return pd.read_csv(d / name).to_numpy(np.float64)

        meta = (d / "meta.txt").read_text().splitlines()
        names = meta[3:]
        ulist = {n: read(f"U_{i}.csv") for i, n in enumerate(names)}
        info = {"mode": settings.mode, "engine": "r", "V": meta[1], "n_strong": None if meta[2] == "NA" else int(meta[2])}
        fit = MashFit(ulist, read("grid.csv")[:, 0], read("pi.csv")[:, 0], settings.usepointmass, read("V.csv"),
                      settings.alpha, list(conditions), float(meta[0]), info)
        pm, psd, lfsr = read("pm.csv"), read("psd.csv"), read("lfsr.csv")
    nan = np.full_like(pm, np.nan)
    return MashResult(Posterior(pm, psd, lfsr, nan, nan), fit, info)
