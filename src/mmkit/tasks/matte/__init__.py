"""Image matting (image + trimap -> alpha): `MatteTask` (trained by the engine), `MattePredictor` (predict, evaluate).

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

from mmkit.tasks.matte.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="matte",
    help="Image matting (image + trimap -> alpha): train, evaluate, predict.",
    package=__name__,
    factory="mmkit.tasks.matte.task:MatteTask",
    what="a matting model",
    recipes=RECIPES,
    order=60,
)

_EXPORTS = {
    "MatteTask": "task",
    "load_matting_data": "data",
    "MattingData": "data",
    "MatteMeta": "predictor",
    "MattePredictor": "predictor",
    "load_matting_model": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
