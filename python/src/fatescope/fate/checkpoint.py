"""Save a fitted fate model (guide parameters + what is needed to redraw) and load it back."""
from __future__ import annotations

import numpy as np
import pyro
import torch

from .encoding import Encoding
from .fit import FitConfig, FitResult
from .guides import make_guide
from .model import FateData, FateModel, Priors

FORMAT = "fatescope.fate-model/1"


def checkpoint(result: FitResult, enc: Encoding) -> dict:
    """Everything needed to redraw the posterior without the cells or a refit."""
    data = result.model.data
    return {
        "format": FORMAT,
        "param_store": {k: v.detach().cpu() for k, v in pyro.get_param_store().get_state()["params"].items()},
        "constraints": pyro.get_param_store().get_state()["constraints"],
        "config": result.config.as_dict(),
        "priors": result.model.priors.as_dict(),
        "likelihood_weight": result.likelihood_weight,
        "use_guides": result.model.use_guides,
        "gene_of_guide": enc.gene_of_guide,
        "n_days": data.n_days, "n_replicates": data.n_replicates, "n_fates": data.n_fates,
        "names": {"fates": enc.fates, "days": enc.days, "replicates": enc.replicates, "genes": enc.gene_names,
                  "guides": enc.guide_names},
        "k_max": enc.k_max,
        "encode": dict(enc.notes),
    }


def save(path, result: FitResult, enc: Encoding) -> None:
    torch.save(checkpoint(result, enc), path)


def skeleton_encoding(ck: dict) -> Encoding:
    """An Encoding with the names and guide->gene map of the fit and no cells."""
    names = ck["names"]
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return Encoding(np.zeros((0, ck["k_max"]), np.int32), np.zeros((0, ck["k_max"]), np.float32), np.asarray(ck["gene_of_guide"]),
                    empty_i, empty_i, empty_i, empty_f, np.zeros((0, len(names["fates"])), np.float32), list(names["fates"]),
                    list(names["days"]), list(names["replicates"]), list(names["guides"]), list(names["genes"]), [], ck["k_max"])


def load(path, device: str = "cpu") -> tuple[FateModel, object, Encoding]:
    """(model without cells, guide with the fitted parameters, skeleton encoding) from ``save``."""
    ck = torch.load(path, map_location=device, weights_only=False)
    if ck.get("format") != FORMAT:
        from ..errors import InputError
        raise InputError(f"{path}: not a fatescope fate-model checkpoint (format {ck.get('format')!r}, expected {FORMAT!r})")
    enc = skeleton_encoding(ck)
    data = FateData.from_encoding(enc, device)
    model = FateModel(data, Priors(**ck["priors"]), ck["likelihood_weight"], ck["use_guides"])
    config = FitConfig(**ck["config"])
    pyro.clear_param_store()
    pyro.get_param_store().set_state({"params": ck["param_store"], "constraints": ck["constraints"]})
    guide = make_guide(model, config.guide, config.rank)
    if config.guide in ("meanfield", "lowrank"):
        guide.guide._setup_prototype()  # noqa: SLF001 - autoguides build their sites from a model trace
    return model, guide, enc
