"""Drawing face detections: boxes labelled with their score and the five landmarks as dots.

det = load_mtcnn().detect(image)[0]
draw_faces(image, det.boxes, det.scores, det.landmarks).save("faces.png")
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import draw_bounding_boxes, draw_keypoints

from mmkit.errors import MMKitError

__all__ = ["draw_faces"]

BOX_COLOR = "lime"
# left eye, right eye, nose, left mouth corner, right mouth corner
LANDMARK_COLORS = ["red", "blue", "yellow", "magenta", "cyan"]


def draw_faces(
    image: Tensor,
    boxes: Tensor,
    scores: Tensor | None = None,
    landmarks: Tensor | None = None,
) -> Image.Image:
    """An RGB PIL image of `image` (uint8 CHW; grayscale is shown as RGB) with `boxes` [N, 4] (x1, y1, x2, y2)
    labelled by `scores` [N] and `landmarks` [N, 5, 2] drawn as dots, one colour per landmark."""
    if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.dim() not in (2, 3):
        raise MMKitError("draw_faces: expected a uint8 CHW image tensor")
    img = image[None] if image.dim() == 2 else image[:3]
    img = img.expand(3, -1, -1).cpu()
    boxes = boxes.detach().float().cpu().reshape(-1, 4)
    h, w = img.shape[1:]
    line = max(1, round(max(h, w) / 250))
    if len(boxes):
        labels = [f"{s:.2f}" for s in scores.tolist()] if scores is not None else None
        img = draw_bounding_boxes(img, boxes, labels=labels, colors=BOX_COLOR, width=line)
    if landmarks is not None and len(landmarks):
        points = landmarks.detach().float().cpu().reshape(-1, 5, 2)
        radius = max(1, 2 * line)
        for k, color in enumerate(LANDMARK_COLORS):  # one colour per landmark type
            img = draw_keypoints(img, points[:, k : k + 1], colors=color, radius=radius)
    return to_pil_image(img)
