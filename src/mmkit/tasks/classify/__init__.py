"""Image classification: train, evaluate, predict, export.

`ClassifyTask` (trained by the engine), `ClassifierPredictor` (predict, evaluate, export).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a classifier", order=10)

__getattr__ = lazy_exports(
    __name__,
    task="ClassifyTask",
    predictor="run_meter batch_transform ClassifierMeta ClassifierPredictor load_classifier evaluate predict export",
)
