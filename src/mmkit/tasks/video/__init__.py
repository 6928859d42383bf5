"""Video classification: frame features into LSTM/GRU/RNN/NetVLAD/DBoF/MoE, or CNN+LSTM end to end; YouTube-8M.

`VideoTask` (frame features into LSTM/GRU/RNN/NetVLAD/DBoF/MoE/logistic, or a CNN + LSTM/GRU/RNN end to end on
raw clips, trained by the engine), `VideoPredictor` (label video files whole and per segment, write the Kaggle
submission of YouTube-8M records, evaluate GAP@20, mAP, Hit@1, PERR), and per-frame CNN features of the user's
videos written as YouTube-8M records (`features.py`).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a video model", order=40)

__getattr__ = lazy_exports(
    __name__,
    task="VideoTask",
    predictor="VideoMeta VideoPredictor load_video_model evaluate predict write_submission",
)
