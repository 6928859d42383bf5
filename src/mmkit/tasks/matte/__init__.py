"""Image matting (image + trimap -> alpha): train, evaluate, predict.

`MatteTask` (trained by the engine), `MattePredictor` (predict, evaluate).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a matting model", order=60)

__getattr__ = lazy_exports(
    __name__,
    task="MatteTask",
    predictor="MatteMeta MattePredictor load_matting_model evaluate predict",
)
