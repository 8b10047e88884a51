"""``fs.tl.modules``: co-expression modules per TF from the GRN's edges (pySCENIC's module kinds)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import InputError
from ..logs import get_logger
from ..regulons.modules import ModuleParams, build_modules

log = get_logger(__name__)


def number_list(value: str | Sequence[float] | None, kind: type, name: str) -> tuple:
    """Numbers from a sequence or from text separated by commas or spaces (the CLI's form; '' = none)."""
    items = str(value).replace(",", " ").split() if isinstance(value, str) else list(value or ())
    try:
        return tuple(kind(x) for x in items)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected numbers separated by commas, got {value!r}") from exc


def modules(adjacency: pd.DataFrame, *, k: int = 50, percentile_thresholds: str | Sequence[float] = "75",
            top_n_per_target: str | Sequence[int] = "5,10,50", min_targets: int = 20, min_fraction: float | None = None,
            include_tf: bool = True, return_report: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """Modules per TF: its top-``k`` targets, targets above percentiles of its edge weights, and the
    top-N regulators per target regrouped by TF.

    Modules with fewer than ``min_targets`` targets (or, if set, fewer than ``min_fraction`` of the
    TF's targets) are dropped; ``include_tf`` then adds the TF itself with weight 1.0 (pySCENIC).

    Parameters
    ----------
    adjacency
        Edges with columns ``tf``, ``target``, ``importance`` (``fs.tl.grn``'s output).
    k
        Top-k targets per TF (0 = no top-k modules).
    percentile_thresholds, top_n_per_target
        Numbers, as a sequence or as text separated by commas (``""`` = none of that kind).
    min_targets, min_fraction, include_tf
        Size filters and whether the TF joins its own modules.
    return_report
        Also return a small report (modules kept, dropped as too small, per kind).

    Returns
    -------
    Modules (``module``, ``tf``, ``kind``, ``target``, ``weight``), e.g. module ``SOX2_top50``; with
    ``return_report``, ``(modules, report)``. Empty when no module has ``min_targets`` targets.

    Examples
    --------
    >>> import fatescope as fs
    >>> mods = fs.tl.modules(adjacency, k=50, top_n_per_target=[5, 10])
    >>> mods.groupby("module").size().head()
    """
    params = ModuleParams(k=k, percentile_thresholds=number_list(percentile_thresholds, float, "percentile_thresholds"),
                          top_n_per_target=number_list(top_n_per_target, int, "top_n_per_target"),
                          min_targets=min_targets, min_fraction=min_fraction, include_tf=include_tf)
    mods, report = build_modules(adjacency, params)
    if mods.empty:
        log.warning("modules: no module has %d targets or more", min_targets)
    return (mods, report) if return_report else mods
