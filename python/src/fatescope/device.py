"""One rule for ``--device`` in every GPU-capable stage."""
from __future__ import annotations

import torch

from .errors import InputError

# The stages with a torch path a GPU speeds up (their --device / --pruning-device option). The one list: the
# Nextflow processes labelled process_gpu, conf/base.config, containers/README.md, the GPU image's Dockerfile
# and docs/nextflow.md name exactly these (tests/test_nextflow_processes.py checks).
GPU_STAGES = ("ambient", "integrate", "grn", "prune", "aucell", "fate-fit", "mash", "diagnostics")


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


def set_threads(threads: int = 0) -> int:
    """Fix torch's CPU thread count (0 = torch's default, the machine's cores) and ask for deterministic kernels;
    returns the count.

    The same seed, device and thread count then give the same bits. Without deterministic kernels they did not:
    with 2 threads the backward of indexing (index_put_ with accumulation) summed in a varying order, and the
    nuisance fit of 25,000 cells returned likelihood weights 7.548338890 or 7.548338413 call to call
    (python/tests/test_reproducible.py). Ops without a deterministic kernel warn rather than fail."""
    n = threads if threads > 0 else torch.get_num_threads()
    torch.set_num_threads(n)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return n
