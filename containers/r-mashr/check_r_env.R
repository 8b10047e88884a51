## Build-time check of the R side of the fatescope-r-mashr image.
##   Rscript check_r_env.R r-versions.csv
## r-versions.csv (package,version) is the environment of the mashr reference outputs
## (shared/reference/mashr/versions.csv): R itself and every package mashr loads, at exact versions.
## Fails (non-zero exit) unless mashr loads and every version matches, and unless R uses the
## reference BLAS/LAPACK the reference outputs were computed with.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript check_r_env.R r-versions.csv")
pins <- read.csv(args[[1L]], colClasses = "character", strip.white = TRUE)
stopifnot(identical(names(pins), c("package", "version")), nrow(pins) > 0L)

suppressPackageStartupMessages(library(mashr))

problems <- character()
for (i in seq_len(nrow(pins))) {
  pkg <- pins$package[[i]]
  want <- package_version(pins$version[[i]])
  have <- if (pkg == "R") getRversion() else tryCatch(packageVersion(pkg), error = function(e) NULL)
  if (is.null(have)) {
    problems <- c(problems, sprintf("%s: not installed (want %s)", pkg, want))
  } else if (have != want) {
    problems <- c(problems, sprintf("%s: have %s, want %s", pkg, have, want))
  }
}

blas <- extSoftVersion()[["BLAS"]]
if (grepl("openblas|mkl|atlas|blis", blas, ignore.case = TRUE)) {
  problems <- c(problems, sprintf("BLAS is %s; the mashr reference uses the reference BLAS (libblas3)", blas))
}

if (length(problems)) {
  stop("R environment differs from the mashr reference:\n  ", paste(problems, collapse = "\n  "))
}
cat(sprintf("R %s, mashr %s: %d pins match the mashr reference; BLAS %s\n",
            getRversion(), packageVersion("mashr"), nrow(pins), blas))
