"""Models: a registry of builders (`get_model`, `list_models`, ...) and one module per family.

Each family module registers its builders on import; add a new family to `_FAMILIES`."""

import importlib

from mmkit.models.registry import (
    ModelInfo,
    Weights,
    classifier_head,
    get_model,
    get_model_info,
    get_weights,
    list_models,
    register_model,
)
from mmkit.models.weights import load_state_dict_file

_FAMILIES = (
    "classifiers",
    "yolov3",
    "localizer",
    "facenet",
    "video",
    "captioner",
    "gans",
    "translation",
    "restoration",
)

for _family in _FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")

__all__ = [
    "ModelInfo",
    "Weights",
    "classifier_head",
    "get_model",
    "get_model_info",
    "get_weights",
    "list_models",
    "load_state_dict_file",
    "register_model",
]
