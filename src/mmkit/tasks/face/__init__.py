"""Faces: MTCNN detection, FaceNet embeddings (triplet loss), LFW verification, a gallery to identify.

`FaceTask` (an embedding trained by the engine), `FacePredictor` (embed, evaluate with the LFW protocol),
MTCNN detection (`detection.py`) and a gallery to enroll, identify and verify people (`gallery.py`).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a face embedder", order=30, factory="task:face_task")

__getattr__ = lazy_exports(
    __name__,
    predictor="FaceMeta FacePredictor load_embedder embed flip_embed pair_distances evaluate",
    gallery="open_gallery match_threshold enroll identify verify list_people remove",
)
