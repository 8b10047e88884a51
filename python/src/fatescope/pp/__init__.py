"""Preprocessing on AnnData (scanpy-style ``fs.pp``): QC filters and ambient-RNA removal."""
from .._lazy import lazy_namespace

__getattr__, __dir__, __all__ = lazy_namespace(__name__, {
    "_qc": ("qc",),
    "_ambient": ("ambient",),
})
