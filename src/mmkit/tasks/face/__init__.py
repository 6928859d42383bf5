"""Faces: `FaceTask` (an embedding trained by the engine), `FacePredictor` (embed, evaluate with the LFW protocol),
MTCNN detection (`detection.py`) and a gallery to enroll, identify and verify people (`gallery.py`).

The names below load on first use, so that the task registry reads `SPEC` without importing torch. (No exported
name is also a submodule's name: once imported, a submodule would shadow it as an attribute of this package.)
"""

from mmkit.tasks.face.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="face",
    help="Faces: MTCNN detection, FaceNet embeddings (triplet loss), LFW verification, a gallery to identify.",
    package=__name__,
    factory="mmkit.tasks.face.task:face_task",
    what="a face embedder",
    recipes=RECIPES,
    order=30,
)

_EXPORTS = {
    "FaceTask": "task",
    "FaceOptions": "options",
    "FaceMeta": "predictor",
    "FacePredictor": "predictor",
    "load_embedder": "predictor",
    "embed": "predictor",
    "flip_embed": "predictor",
    "pair_distances": "predictor",
    "evaluate": "predictor",
    "Face": "detection",
    "find_faces": "detection",
    "detect": "detection",
    "open_gallery": "gallery",
    "match_threshold": "gallery",
    "enroll": "gallery",
    "identify": "gallery",
    "verify": "gallery",
    "list_people": "gallery",
    "remove": "gallery",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
