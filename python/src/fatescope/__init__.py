"""fatescope: ranked, shrunken knockdown effects on cell fate from time-course CRISPRi Perturb-seq.

``import fatescope as fs``: ``fs.pp`` (preprocessing), ``fs.tl`` (one function per stage),
``fs.pl`` (figures), loaded on first use.
"""
import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fatescope")
except PackageNotFoundError:  # running from a checkout through bin/fatescope
    __version__ = "0.1.0"

_NAMESPACES = ("pp", "tl", "pl", "datasets")
__all__ = ["__version__", "read_samples", *_NAMESPACES]


def __getattr__(name: str):
    if name in _NAMESPACES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "read_samples":
        return importlib.import_module(f"{__name__}._read").read_samples
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
