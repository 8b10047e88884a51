"""Plots (scanpy-style ``fs.pl``): the report's figures, each returning a matplotlib Figure."""
from .._lazy import lazy_namespace

__getattr__, __dir__, __all__ = lazy_namespace(__name__, {
    "_cells": ("umap",),
    "_regulons": ("regulon_heatmap",),
    "_fate_probs": ("fate_probs",),
    "_fate": ("fate_heatmap", "volcano"),
})
