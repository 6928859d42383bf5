"""Video classification: `VideoTask` (frame features into LSTM/GRU/NetVLAD/MoE, or a CNN + LSTM/GRU end to end on
raw clips, trained by the engine), `VideoPredictor` (label video files whole and per segment, evaluate GAP@20,
Hit@1, PERR), and per-frame CNN features of the user's videos written as YouTube-8M records (`features.py`).

The names below load on first use, so that the task registry reads `SPEC` without importing torch. (No exported
name is also a submodule's name: once imported, a submodule would shadow it as an attribute of this package.)
"""

from mmkit.tasks.registry import TaskSpec, lazy_exports
from mmkit.tasks.video.options import RECIPES

SPEC = TaskSpec(
    name="video",
    help="Video classification: frame features into LSTM/GRU/NetVLAD/MoE, or CNN+LSTM end to end; YouTube-8M.",
    package=__name__,
    factory="mmkit.tasks.video.task:VideoTask",
    what="a video model",
    recipes=RECIPES,
    order=40,
)

_EXPORTS = {
    "VideoTask": "task",
    "VideoOptions": "options",
    "CLIP_MODELS": "options",
    "VideoMeta": "predictor",
    "VideoPredictor": "predictor",
    "video_loss": "predictor",
    "run_meter": "predictor",
    "load_video_model": "predictor",
    "evaluate": "predictor",
    "predict": "predictor",
    "class_scores": "predictor",
    "top_labels": "predictor",
    "center_square": "predictor",
    "segment_labels": "predictor",
    "FEATURE_RMS": "features",
    "FrameFeatures": "features",
    "scale_features": "features",
    "load_extractor": "features",
    "frame_features": "features",
    "extract": "features",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
