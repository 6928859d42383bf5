"""Datasets, readers and transforms. ``load_classification_data(spec)`` is the entry point for classification; every
builtin dataset (of every task) is in the registry, ``mmkit.data.registry``.

The names below load on first use, so that importing a torch-free module of this package (the registry, its
sources) does not import torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "DatasetInfo": "registry",
    "is_builtin": "builtin",
    "list_datasets": "builtin",
    "ClassificationData": "classification",
    "TensorImageDataset": "classification",
    "collate_skip_none": "classification",
    "load_classification_data": "classification",
    "stratified_split": "classification",
    "TransformedDataset": "transforms",
    "build_transforms": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
