"""Object detection and localization: `DetectTask` (trained by the engine), `DetectorPredictor` (predict, evaluate,
export), and anchors fitted to a dataset.

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

import importlib
import sys
from types import ModuleType
from typing import Any

from mmkit.tasks.detect.options import RECIPES
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(
    name="detect",
    help="Object detection and localization: YOLOv3, YOLOv3-tiny, a single-object localizer.",
    package=__name__,
    what="a detector",
    recipes=RECIPES,
    order=20,
)

_EXPORTS = {
    "DetectTask": "task",
    "DetectOptions": "options",
    "DetectorMeta": "predict",
    "DetectorPredictor": "predict",
    "EVAL_CONF": "predict",
    "EVAL_IOU": "predict",
    "is_localizer": "predict",
    "predict_batch": "predict",
    "run_detection": "predict",
    "draw_detections": "predict",
    "load_detector": "predict",
    "evaluate": "predict",
    "predict": "predict",
    "export": "predict",
    "anchors": "anchors",
    "anchor_kwargs": "anchors",
    "train_box_sizes": "anchors",
}


class _Package(ModuleType):
    """`predict` and `anchors` are both a submodule and the function it exports. Python's import system binds a
    loaded submodule to its package's attribute, which would hide the function behind the module after any import
    of the submodule: the package keeps the function there instead (`importlib.import_module` still gives the module).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, ModuleType)
            and _EXPORTS.get(name) == name
            and value.__name__ == f"{__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
