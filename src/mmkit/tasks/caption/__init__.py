"""Image captioning: `CaptionTask` (trained by the engine), `CaptionPredictor` (caption images, evaluate BLEU-1..4
and CIDEr-D).

The names below load on first use, so that the task registry reads `SPEC` without importing torch.
"""

import importlib
from typing import Any

from mmkit.tasks.caption.options import RECIPES
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(
    name="caption",
    help="Image captioning: Show-and-Tell, Show-Attend-and-Tell, paragraphs; BLEU-1..4 and CIDEr-D.",
    package=__name__,
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
