"""Image captioning: Show-and-Tell, Show-Attend-and-Tell, paragraphs; BLEU-1..4 and CIDEr-D.

`CaptionTask` (trained by the engine), `CaptionPredictor` (caption images, evaluate BLEU-1..4
and CIDEr-D).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a captioner", order=50)

__getattr__ = lazy_exports(
    __name__,
    task="CaptionTask",
    predictor="CaptionMeta CaptionPredictor SquareResize decode_batch score_items load_captioner evaluate predict",
)
