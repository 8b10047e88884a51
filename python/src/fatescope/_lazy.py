"""Lazy attribute loading for the API namespaces, so ``import fatescope`` and the CLI stay fast.

``fs.tl.integrate`` imports torch only when it is first touched, as scanpy's namespaces do.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_namespace(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable, list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package whose names live in private submodules.

    ``exports`` maps a submodule (``"_integrate"``) to the public names it defines.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
