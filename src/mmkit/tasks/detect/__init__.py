"""Object detection and localization: `DetectTask` (trained by the engine), `DetectorPredictor` (predict, evaluate,
export), and anchors fitted to a dataset.

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

import importlib
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
    "DetectorMeta": "predictor",
    "DetectorPredictor": "predictor",
    "EVAL_CONF": "predictor",
    "EVAL_IOU": "predictor",
    "is_localizer": "predictor",
    "predict_batch": "predictor",
    "run_detection": "predictor",
    "draw_detections": "predictor",
    "load_detector": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
    "export": "predictor",
    "anchors": "anchor_fitting",
    "anchor_kwargs": "anchor_fitting",
    "train_box_sizes": "anchor_fitting",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
