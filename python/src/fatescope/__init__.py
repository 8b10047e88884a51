"""fatescope: ranked, shrunken knockdown effects on cell fate from time-course CRISPRi Perturb-seq."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fatescope")
except PackageNotFoundError:  # running from a checkout through bin/fatescope
    __version__ = "0.1.0"

__all__ = ["__version__"]
