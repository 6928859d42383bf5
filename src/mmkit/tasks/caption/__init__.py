"""Image captioning: `CaptionTask` (trained by the engine), `CaptionPredictor` (caption images, evaluate BLEU-1..4
and CIDEr-D).

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

from mmkit.tasks.caption.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="caption",
    help="Image captioning: Show-and-Tell, Show-Attend-and-Tell, paragraphs; BLEU-1..4 and CIDEr-D.",
    package=__name__,
    factory="mmkit.tasks.caption.task:CaptionTask",
    what="a captioner",
    recipes=RECIPES,
    order=50,
)

_EXPORTS = {
    "CaptionTask": "task",
    "CaptionMeta": "predictor",
    "CaptionPredictor": "predictor",
    "SquareResize": "predictor",
    "decode_batch": "predictor",
    "score_items": "predictor",
    "load_captioner": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
