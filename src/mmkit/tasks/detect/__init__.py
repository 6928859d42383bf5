"""Object detection and localization: YOLOv3, YOLOv3-tiny (Darknet's COCO weights: --weights coco), a localizer.

`DetectTask` (trained by the engine), `DetectorPredictor` (predict, evaluate,
export, Darknet files in and out), and anchors fitted to a dataset.
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a detector", order=20)

__getattr__ = lazy_exports(
    __name__,
    task="DetectTask",
    predictor="DetectorMeta DetectorPredictor load_detector evaluate predict export convert",
)
