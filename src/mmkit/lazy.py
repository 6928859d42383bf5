"""Lazy package exports (PEP 562): a package's public names load from their modules on first use, so that importing
the package (to read a task's SPEC, or a torch-free module of it) does not import torch.

    __getattr__ = lazy_exports(__name__, predictor="predict evaluate", task="ClassifyTask")
    __all__ = sorted(__getattr__.exports)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, **modules: str) -> Callable[[str], Any]:
    """A package's `__getattr__`: `modules` maps each of its modules to the names it exports, separated by spaces;
    `__getattr__.exports` maps each name to its module."""
    exports = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    __getattr__.exports = exports  # type: ignore[attr-defined]
    return __getattr__
