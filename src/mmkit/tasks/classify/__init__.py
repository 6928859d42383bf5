"""Image classification: `ClassifyTask` (trained by the engine), `ClassifierPredictor` (predict, evaluate, export).

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

import importlib
from typing import Any

from mmkit.tasks.classify.options import RECIPES
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(
    name="classify",
    help="Image classification: train, evaluate, predict, export.",
    package=__name__,
    what="a classifier",
    recipes=RECIPES,
    order=10,
)

_EXPORTS = {
    "ClassifyTask": "task",
    "run_meter": "task",
    "batch_transform": "task",
    "ClassifierMeta": "predictor",
    "ClassifierPredictor": "predictor",
    "load_classifier": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
    "export": "predictor",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
