"""Object detection and localization: `DetectTask` (trained by the engine), `DetectorPredictor` (predict, evaluate,
export), and anchors fitted to a dataset.

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

from mmkit.tasks.detect.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="detect",
    help="Object detection and localization: YOLOv3, YOLOv3-tiny, a single-object localizer.",
    package=__name__,
    factory="mmkit.tasks.detect.task:DetectTask",
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

__getattr__ = lazy_exports(__name__, _EXPORTS)
