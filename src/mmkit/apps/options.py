"""The models an application runs, declared once: `mmkit analyze` and `mmkit serve` take these fields as their
options (`mmkit.cli.common.options_command`), `load_models` (analyze) and the server's `ModelHub` load them.
No torch here: `--help` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mmkit.errors import MMKitError
from mmkit.options import option

log = logging.getLogger(__name__)

_PANEL = "Models"
# Darknet's COCO-trained YOLOv3-tiny (80 classes), offline once `make weights` has fetched its files
DEFAULT_DETECTOR = "yolov3-tiny:coco"


@dataclass
class ModelOptions:
    """Which model of each task to run; None (or "" / "none" on the command line) where not wanted."""

    classifier: str | None = option(
        "imagenet",
        help="imagenet (EfficientNet-Lite0, offline), a classify checkpoint, or none.",
        panel=_PANEL,
    )
    classifier_model: str = option(
        "efficientnet_lite0", help="The model of a named --classifier weights.", panel=_PANEL
    )
    faces: bool = option(True, "--faces/--no-faces", help="Find faces (MTCNN).", panel=_PANEL)
    detector: str | None = option(
        DEFAULT_DETECTOR,
        help="Objects in every image: yolov3-tiny:coco (Darknet's COCO YOLOv3-tiny, offline), a detect checkpoint, "
        "or none.",
        panel=_PANEL,
    )
    face_db: str | None = option(
        None, help="A face gallery (SQLite; `mmkit face enroll`): names for the faces.", panel=_PANEL
    )
    face_weights: str | None = option(
        None,
        help="The face checkpoint the gallery was enrolled with, or facenet's vggface2.",
        panel=_PANEL,
    )
    face_threshold: float | None = option(
        None, help="Squared L2 distance for a name (default: the weights' own).", panel=_PANEL
    )
    captioner: str | None = option(
        None, help="A caption checkpoint: a caption for every image.", panel=_PANEL
    )
    video: str | None = option(
        None, help="A video checkpoint: labels per video and per segment.", panel=_PANEL
    )

    def __post_init__(self) -> None:
        for name in ("classifier", "detector", "face_db", "face_weights", "captioner", "video"):
            value = getattr(self, name)
            if value is not None and str(value).strip().lower() in ("", "none"):
                setattr(self, name, None)
            elif value is not None:
                setattr(self, name, str(value))
        if (self.face_db is None) != (self.face_weights is None):
            raise MMKitError(
                "--face-weights and --face-db go together: faces are named from a gallery with the embedder "
                "it was enrolled with"
            )
        if self.face_db is not None and not self.faces:
            raise MMKitError("--face-db: naming faces needs face detection (do not turn faces off)")

    def detector_to_load(self) -> str | None:
        """`detector`, except yolov3-tiny:coco (the default) where `make weights` has not installed its files: then
        None, with a warning that says how to get them, so that analyze and serve run without objects. Any other
        detector fails when it is loaded."""
        if self.detector != DEFAULT_DETECTOR:
            return self.detector
        from mmkit.models.darknet import coco_weights

        try:
            coco_weights()
        except MMKitError as e:
            log.warning("no object detection: %s", e)
            return None
        return self.detector
