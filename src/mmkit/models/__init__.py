"""Models: a registry of builders (`get_model`, `list_models`, ...) and one module per family.

Each family module registers its builders on import; every module here is imported below."""

import importlib
import pkgutil

from mmkit.models.registry import (
    ModelInfo,
    Weights,
    classifier_head,
    get_model,
    get_model_info,
    get_weights,
    list_models,
    model_family,
    register_model,
)
from mmkit.models.weights import load_state_dict_file

# Every module of this package is imported once, so each family file registers its builders: adding a family is adding
# its file (no list to edit).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ModelInfo",
    "Weights",
    "classifier_head",
    "get_model",
    "get_model_info",
    "get_weights",
    "list_models",
    "load_state_dict_file",
    "model_family",
    "register_model",
]
