"""Tools (scanpy-style ``fs.tl``): one function per pipeline stage on AnnData or tables."""
from .._lazy import lazy_namespace

__getattr__, __dir__, __all__ = lazy_namespace(__name__, {
    "_integrate": ("integrate", "IntegrationModel"),
    "_embed": ("embed",),
    "_grn": ("grn",),
    "_modules": ("modules",),
    "_prune": ("prune", "PruneResult"),
    "_aucell": ("aucell",),
    "_fate_probs": ("fate_probs", "FateProbabilities"),
    "_fate_fit": ("fate_fit", "FateFit"),
    "_mash": ("mash", "MashResult"),
    "_aggregate": ("aggregate",),
    "_rank": ("rank_hits",),
})
