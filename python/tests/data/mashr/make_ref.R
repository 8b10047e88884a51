## make_ref.R -- mashr reference fits on a 3,000 x 5 case with heteroskedastic standard errors and correlated noise
## (issue 14): V estimated with estimate_null_correlation_simple, EE (alpha = 0) and EZ (alpha = 1) models, each in
## fatescope's two modes: conservative = cov_canonical + nullbiased prior; enriched = cov_canonical + cov_ed(cov_pca(2))
## on the strong set of mash_1by1 (lfsr < 0.05), uniform prior. Everything else at mash() defaults.
## Run (mashr 0.2.79 in a scratch library):
##   R_LIBS=/tmp/mash/Rlib MASH_REF_DIR=python/tests/data/mashr Rscript python/tests/data/mashr/make_ref.R
## Numbers are written with sprintf("%.17g") (exact double round trip); effect-sized tables are gzipped.
suppressPackageStartupMessages(library(mashr))
outdir = Sys.getenv("MASH_REF_DIR", "python/tests/data/mashr")
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

fmt = function(x) sprintf("%.17g", x)
write_mat = function(M, name) {
  M = as.matrix(M)
  out = as.data.frame(matrix(fmt(M), nrow = nrow(M)), stringsAsFactors = FALSE)
  colnames(out) = colnames(M)
  con = gzfile(file.path(outdir, name), "w")     # name ends in .csv.gz
  write.csv(out, con, row.names = FALSE, quote = FALSE)
  close(con)
}
write_vec = function(v, name) {
  write.csv(data.frame(name = names(v), value = fmt(unname(v))), file.path(outdir, name), row.names = FALSE,
            quote = FALSE)
}
write_Ulist = function(Ulist, name) {   # long format: cov_name,i,j,value (1-based i,j)
  rows = lapply(names(Ulist), function(nm) {
    U = as.matrix(Ulist[[nm]]); idx = expand.grid(i = seq_len(nrow(U)), j = seq_len(ncol(U)))
    data.frame(cov_name = nm, i = idx$i, j = idx$j, value = fmt(U[cbind(idx$i, idx$j)]))
  })
  write.csv(do.call(rbind, rows), file.path(outdir, name), row.names = FALSE, quote = FALSE)
}
save_fit = function(m, tag) {
  write_mat(get_pm(m), paste0(tag, "_pm.csv.gz"))
  write_mat(get_psd(m), paste0(tag, "_psd.csv.gz"))
  write_mat(get_lfsr(m), paste0(tag, "_lfsr.csv.gz"))
  g = get_fitted_g(m)
  write_vec(get_estimated_pi(m, "all"), paste0(tag, "_pi_all.csv"))
  write_vec(setNames(g$grid, paste0("grid_", seq_along(g$grid))), paste0(tag, "_grid.csv"))
  write_Ulist(g$Ulist, paste0(tag, "_Ulist.csv"))   # after normalizeU
  get_loglik(m)
}

## ---- input: 3,000 effects x 5 conditions ----
set.seed(14)
J = 3000; R = 5
conds = paste0("d", 0:4)
type = rep(c("null", "shared", "specific", "graded", "independent"), c(1500, 300, 500, 350, 350))
B = matrix(0, J, R, dimnames = list(NULL, conds))
i = which(type == "shared");      B[i, ] = rnorm(length(i), 0, 2)
i = which(type == "specific");    B[cbind(i, rep(1:R, length.out = length(i)))] = rnorm(length(i), 0, 2)
i = which(type == "graded");      B[i, ] = outer(rnorm(length(i), 0, 2), c(1, 1, 0.6, 0.3, 0)) +
                                           matrix(rnorm(length(i) * R, 0, 0.3), ncol = R)
i = which(type == "independent"); B[i, ] = rnorm(length(i) * R, 0, 1.5)
Vtrue = 0.25 + 0.75 * diag(R); Vtrue[1, 2] = Vtrue[2, 1] = 0.5
Shat = exp(runif(J, -1, 1)) * matrix(runif(J * R, 0.7, 1.3), J, R, dimnames = list(NULL, conds))
Bhat = B + Shat * (matrix(rnorm(J * R), J, R) %*% chol(Vtrue))
colnames(Bhat) = conds
write_mat(Bhat, "het_input_Bhat.csv.gz")
write_mat(Shat, "het_input_Shat.csv.gz")

res = c(n_effects = J, n_conditions = R)
for (model in c("ee", "ez")) {
  data = mash_set_data(Bhat, Shat, alpha = if (model == "ee") 0 else 1)
  V = estimate_null_correlation_simple(data, z_thresh = 2)
  write_Ulist(list(V = V), paste0("het_", model, "_V.csv"))
  data = mash_update_data(data, V = V)
  U.c = cov_canonical(data)
  res[paste0(model, "_conservative_loglik")] =
    save_fit(mash(data, U.c, prior = "nullbiased", verbose = FALSE), paste0("het_", model, "_conservative"))
  strong = get_significant_results(mash_1by1(data), 0.05)
  writeLines(as.character(sort(unname(strong))), file.path(outdir, paste0("het_", model, "_strong_idx.txt")))
  U.pca = cov_pca(data, 2, subset = strong)
  U.ed = cov_ed(data, U.pca, subset = strong, tol = 1e-6)
  write_Ulist(U.pca, paste0("het_", model, "_pca.csv"))
  write_Ulist(U.ed, paste0("het_", model, "_ed.csv"))                # before normalizeU
  res[paste0(model, "_n_strong")] = length(strong)
  m = mash(data, c(U.c, U.ed), prior = "uniform", verbose = FALSE)
  res[paste0(model, "_enriched_loglik")] = save_fit(m, paste0("het_", model, "_enriched"))
}
data_ez = data; m_ez_enriched = m
write_vec(res, "het_scalars.csv")

## ---- how reproducible are mashr's own EZ-enriched weights? ----
## mix-SQP refit on the same likelihood matrix with each entry changed by ~1 ulp (relative 2e-16 * N(0,1)):
## max |weight - mashr's weight| and the log-likelihood reached, per trial.
U.all = get_fitted_g(m_ez_enriched)$Ulist
lik = exp(mashr:::calc_relative_lik_matrix(data_ez, mashr:::expand_cov(U.all, get_fitted_g(m_ez_enriched)$grid, TRUE))$loglik_matrix)
set.seed(3)
pert = t(sapply(1:8, function(trial) {
  L = lik * (1 + 2e-16 * rnorm(length(lik)))
  x = ashr:::mixSQP(L, prior = rep(1, ncol(L)), pi_init = rep(1 / ncol(L), ncol(L)))$pihat
  c(trial = trial, max_abs_weight_diff = max(abs(x - get_fitted_g(m_ez_enriched)$pi)), loglik = sum(log(lik %*% x)))
}))
write.csv(data.frame(trial = pert[, 1], max_abs_weight_diff = fmt(pert[, 2]), relative_loglik = fmt(pert[, 3])),
          file.path(outdir, "het_ez_enriched_perturbed.csv"), row.names = FALSE, quote = FALSE)
pk = c("mashr", "ashr", "mixsqp", "Rcpp", "RcppArmadillo", "mvtnorm", "softImpute", "rmeta", "truncnorm", "SQUAREM",
       "invgamma", "Matrix", "plyr", "abind", "assertthat")
vers = c(R = paste(R.version$major, R.version$minor, sep = "."),
         sapply(pk, function(p) utils::packageDescription(p)$Version),
         BLAS = basename(extSoftVersion()[["BLAS"]]), LAPACK = La_library())
write.csv(data.frame(package = names(vers), version = vers), file.path(outdir, "het_versions.csv"),
          row.names = FALSE, quote = FALSE)
print(res)
