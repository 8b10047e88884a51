"""Model state a fit owns: its pyro parameters and its random streams, kept out of the caller's globals.

Pyro guides read their parameters through ``pyro.param``, i.e. from one process-wide store. A
``ParamState`` is one fit's private copy of that store: ``with state:`` puts its parameters in the
store and takes them back out afterwards (restoring whatever was there, the caller's own params or
another fit's), so two fits in one process cannot overwrite each other and the global store is left
as it was. Entering is re-entrant and may nest in any order.

``seeded(seed)`` runs a block on freshly seeded torch / numpy / random streams (the same numbers
``pyro.set_rng_seed(seed)`` gives) and then puts the caller's streams back, so fitting or
summarising never reseeds the caller's random numbers as a side effect.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import pyro
import pyro.util
import torch
from pyro.distributions import constraints

# one entry per active ``with state:``: (that state, the state active before it or None, the caller's own params)
_STACK: list[tuple[ParamState, ParamState | None, dict | None]] = []


class ParamState:
    """One fit's pyro parameters (unconstrained tensors + constraints), entered with ``with state:``."""

    def __init__(self, params: dict | None = None, constraints: dict | None = None):
        self.state = {"params": dict(params or {}), "constraints": dict(constraints or {})}

    def __enter__(self) -> ParamState:
        store = pyro.get_param_store()
        previous = _STACK[-1][0] if _STACK else None
        if previous is not None:
            previous.state = store.get_state()  # keep what the active fit has created so far
        _STACK.append((self, previous, None if previous is not None else store.get_state()))
        store.clear()
        store.set_state(self.state)
        return self

    def __exit__(self, *exc) -> None:
        store = pyro.get_param_store()
        entered, previous, outside = _STACK.pop()
        assert entered is self, "ParamState blocks must be exited in the order they were entered"
        self.state = store.get_state()
        store.clear()
        store.set_state(previous.state if previous is not None else outside)

    def get_state(self) -> dict:
        """The parameters as ``pyro.get_param_store().get_state()`` gives them (current even inside ``with``)."""
        with self:
            return pyro.get_param_store().get_state()


class ParamReader:
    """Guides read their parameters through ``self.param``: from pyro's store (``pyro.param``), or, while
    ``direct`` is set (a ``DirectSVI`` step), from the constrained values that step computed from the
    store's own tensors. At the usual sizes pyro's per-read machinery (effect handlers, transforms,
    weakrefs) cost more than a training step's arithmetic on the guide's parameters."""
    direct: dict[str, torch.Tensor] | None = None

    def param(self, name: str, init=None, constraint: constraints.Constraint = constraints.real) -> torch.Tensor:
        if self.direct is not None:
            return self.direct[name]
        return pyro.param(name, init, constraint=constraint)


def owns_params(method):
    """Run a guide method with the guide's own parameters in the pyro store (``self.params``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.params:
            return method(self, *args, **kwargs)

    return wrapper


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Whatever the block draws, the caller's torch (CPU and CUDA), numpy and random streams are unchanged after it."""
    saved = pyro.util.get_rng_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            pyro.util.set_rng_state(saved)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The block runs on streams seeded as ``pyro.set_rng_seed(seed)`` does; the caller's are restored after it."""
    with preserved_rng():
        pyro.set_rng_seed(seed)
        yield
