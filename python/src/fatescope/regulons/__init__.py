"""Regulons: RegDiffusion GRN, TF lists, modules, cisTarget pruning and AUCell (pure functions; no paths)."""
