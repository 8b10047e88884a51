"""One rule for ``--device`` in every GPU-capable stage."""
from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' means CUDA when present, else CPU; asking for CUDA where there is none is an input error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"--device {device!r} is not a valid torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine (use auto or cpu)")
    return dev
