"""Image matting (image + trimap -> alpha): train, evaluate, predict.

`MatteTask` (trained by the engine), `MattePredictor` (predict, evaluate).
"""

from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(__name__, __doc__, what="a matting model", order=60)

__getattr__ = lazy_exports(
    __name__,
    task="MatteTask",
    data="load_matting_data MattingData",
    predictor="MatteMeta MattePredictor load_matting_model evaluate predict",
)
