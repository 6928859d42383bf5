"""Image classification: `ClassifyTask` (trained by the engine), `ClassifierPredictor` (predict, evaluate, export).

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

from mmkit.tasks.classify.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="classify",
    help="Image classification: train, evaluate, predict, export.",
    package=__name__,
    factory="mmkit.tasks.classify.task:ClassifyTask",
    what="a classifier",
    recipes=RECIPES,
    order=10,
)

_EXPORTS = {
    "ClassifyTask": "task",
    "run_meter": "predictor",
    "batch_transform": "predictor",
    "ClassifierMeta": "predictor",
    "ClassifierPredictor": "predictor",
    "load_classifier": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
    "export": "predictor",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
