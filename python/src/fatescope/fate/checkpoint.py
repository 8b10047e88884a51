"""Save a fitted fate model (guide parameters + what is needed to redraw) and load it back.

The file holds only tensors, strings and a JSON document, and is read with
``torch.load(weights_only=True)``: opening a checkpoint someone hands you cannot run their code
(a pickled object in it is refused, not executed). Pyro's parameter constraints are stored by name.
A loaded guide owns its parameters (``guide.params``); pyro's global param store is not touched.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from pyro.distributions import constraints

from ..errors import InputError
from .encoding import Encoding
from .fit import FitConfig, FitResult
from .guides import make_guide
from .laplace import PARAM as LAPLACE_PARAM
from .laplace import LaplaceGuide
from .model import FateData, FateModel, Priors
from .state import ParamState, preserved_rng

FORMAT = "fatescope.fate-model/3"  # /3 adds the Laplace precision factor (laplace.precision_tril)
READABLE = (FORMAT, "fatescope.fate-model/2")  # /2: no Laplace factor; draws come from the guide
# the constraints pyro params of our guides can carry, by name
CONSTRAINTS = {name: getattr(constraints, name) for name in
               ("real", "positive", "softplus_positive", "lower_cholesky", "softplus_lower_cholesky",
                "unit_interval", "simplex", "corr_cholesky")}


def _constraint_name(constraint) -> str:
    for name, known in CONSTRAINTS.items():
        if constraint is known:
            return name
    raise ValueError(f"cannot save a parameter with constraint {constraint!r} (known: {', '.join(CONSTRAINTS)})")


def checkpoint(result: FitResult, enc: Encoding) -> dict:
    """Everything needed to redraw the posterior without the cells or a refit: the guide's parameters
    (tensors), their constraints (names) and the settings (one JSON string)."""
    data = result.model.data
    state = result.guide.params.get_state()
    meta = {
        "config": result.config.as_dict(),
        "priors": result.model.priors.as_dict(),
        "likelihood_weight": float(result.likelihood_weight),
        "use_guides": bool(result.model.use_guides),
        "gene_of_guide": np.asarray(enc.gene_of_guide).tolist(),
        "n_days": data.n_days, "n_replicates": data.n_replicates, "n_fates": data.n_fates,
        "names": {"fates": list(enc.fates), "days": list(enc.days), "replicates": list(enc.replicates),
                  "genes": list(enc.gene_names), "guides": list(enc.guide_names)},
        "k_max": int(enc.k_max),
        "encode": dict(enc.notes),
    }
    return {
        "format": FORMAT,
        "params": {k: v.detach().cpu() for k, v in state["params"].items()},
        "constraints": {k: _constraint_name(c) for k, c in state["constraints"].items()},
        "meta": json.dumps(meta, default=str),
    }


def save(path, result: FitResult, enc: Encoding) -> None:
    torch.save(checkpoint(result, enc), path)


def read(path, device: str = "cpu") -> dict:
    """The checkpoint as saved by ``save``: its settings (``meta``, a dict) with the parameter tensors
    (``params``) and constraint names. Anything that is not such a file is an InputError naming it."""
    expected = f"fate-fit's fate_model.pt ({FORMAT})"
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected {expected})") from None
    except Exception as exc:  # noqa: BLE001 - whatever torch.load raises, the file is not a checkpoint we can read
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a fatescope fate-model checkpoint, or one holding code objects, which are "
                         f"never loaded (expected {expected}; {first[:200]})") from None
    if not isinstance(ck, dict) or ck.get("format") not in READABLE:
        found = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise InputError(f"{path}: not a fatescope fate-model checkpoint (format {found!r}, expected {FORMAT!r})")
    unknown = sorted(set(ck["constraints"].values()) - set(CONSTRAINTS))
    if unknown or set(ck["constraints"]) != set(ck["params"]):
        raise InputError(f"{path}: damaged fate-model checkpoint (constraints {unknown or 'do not match the parameters'})")
    out = {**json.loads(ck["meta"]), "params": ck["params"], "constraints": ck["constraints"]}
    if "fit" in ck:  # written by FateFit.save: the posterior summaries and the fit's numbers
        if not isinstance(ck.get("summaries"), dict) or not all(isinstance(v, torch.Tensor) for v in ck["summaries"].values()):
            raise InputError(f"{path}: damaged fate-model checkpoint (summaries are not a dict of tensors)")
        out.update(fit=json.loads(ck["fit"]), summaries=ck["summaries"])
    return out


def skeleton_encoding(ck: dict) -> Encoding:
    """An Encoding with the names and guide->gene map of the fit and no cells."""
    names = ck["names"]
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return Encoding(np.zeros((0, ck["k_max"]), np.int32), np.zeros((0, ck["k_max"]), np.float32),
                    np.asarray(ck["gene_of_guide"], dtype=np.int64), empty_i, empty_i, empty_i, empty_f,
                    np.zeros((0, len(names["fates"])), np.float32), list(names["fates"]), list(names["days"]),
                    list(names["replicates"]), list(names["guides"]), list(names["genes"]), [], ck["k_max"])


def load(path, device: str = "cpu") -> tuple[FateModel, object, Encoding]:
    """(model without cells, guide with the fitted parameters, skeleton encoding) from ``save``."""
    return load_parts(read(path, device), device)


def load_parts(ck: dict, device: str = "cpu") -> tuple[FateModel, object, Encoding]:
    """``load`` of a checkpoint already ``read``."""
    enc = skeleton_encoding(ck)
    data = FateData.from_encoding(enc, device)
    # checkpoints written before the two-group prior (or the guide efficiencies) carry no null_sd (s_eff):
    # they were fitted without them
    model = FateModel(data, Priors(**{"null_sd": 0.0, "s_eff": 0.0, **ck["priors"]}), ck["likelihood_weight"],
                      ck["use_guides"])
    config = FitConfig(**ck["config"])
    params = ParamState(ck["params"], {k: CONSTRAINTS[c] for k, c in ck["constraints"].items()})
    guide = make_guide(model, config.guide, config.rank, params=params)
    if config.guide in ("meanfield", "lowrank"):
        with preserved_rng(), params:  # the prototype's initial values are drawn, then replaced by the saved ones
            guide.guide._setup_prototype()  # noqa: SLF001 - autoguides build their sites from a model trace
    if LAPLACE_PARAM in ck["params"]:
        guide = LaplaceGuide(model, guide)
    return model, guide, enc
