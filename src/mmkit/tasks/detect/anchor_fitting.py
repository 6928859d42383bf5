"""Anchors fitted to a dataset: k-means (1 - IoU distance) on its training boxes as the detector sees them.

`anchors(data)` is `mmkit detect anchors`; `anchor_kwargs` gives `DetectTask` the same anchors for `--anchors auto`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from mmkit.data.detection import load_detection_data
from mmkit.errors import MMKitError
from mmkit.models.anchors import anchors_for, best_possible_recall, kmeans_anchors
from mmkit.models.yolov3 import YOLOV3_ANCHORS, YOLOV3_TINY_ANCHORS

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def train_box_sizes(ds, img_size: int, max_images: int = 5000) -> np.ndarray:
    """[N, 2] (w, h) of a split's boxes in pixels as the detector sees them after letterboxing to `img_size`
    (the first `max_images` images; targets only, no image is decoded where the dataset allows)."""
    import numpy as np

    wh = []
    for i in range(min(len(ds), max_images)):
        t = ds.target(i) if hasattr(ds, "target") else ds[i][1]
        h, w = ds.size(i) if hasattr(ds, "size") else ds[i][0].shape[-2:]
        b = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4)
        if len(b):
            wh.append(((b[:, 2:] - b[:, :2]) * (img_size / max(h, w))).numpy())
    return np.concatenate(wh) if wh else np.zeros((0, 2))


def anchor_kwargs(train_ds, img_size: int, tiny: bool, verbose: bool = True) -> dict[str, Any]:
    """anchors/anchor_size model kwargs from k-means on the training boxes at the training size (the same on every
    rank: fixed seed); {} when there are too few boxes, leaving the Darknet anchors."""
    wh = train_box_sizes(train_ds, img_size)
    k = 6 if tiny else 9
    if len(wh) < 4 * k:
        log.info("anchors: only %d training boxes; keeping the default anchors", len(wh))
        return {}
    km = kmeans_anchors(wh, k, seed=0)
    if verbose:
        log.info(
            "anchors: k-means on %d training boxes at %dpx, best possible recall %.3f",
            len(wh),
            img_size,
            best_possible_recall(wh, km),
        )
    return {"anchors": anchors_for(km, tiny), "anchor_size": img_size}


def anchors(
    data: str, *, k: int | None = None, tiny: bool = False, img_size: int = 416, seed: int = 0
) -> dict[str, Any]:
    """k-means anchors (1 - IoU distance) for a dataset's training boxes, as the detector sees them after letterboxing."""
    import numpy as np

    d = load_detection_data(data, seed=seed)
    wh = train_box_sizes(d.train, img_size, max_images=len(d.train))
    if not len(wh):
        raise MMKitError(f"{data}: no boxes in the training split")
    k = k or (6 if tiny else 9)
    km = kmeans_anchors(wh, k, seed=seed)
    default = np.array(
        [a for scale in (YOLOV3_TINY_ANCHORS if tiny else YOLOV3_ANCHORS) for a in scale], dtype=np.float64
    )
    default = default * img_size / 416
    return {
        "anchors": anchors_for(km, tiny),
        "img_size": img_size,
        "boxes": len(wh),
        "recall": best_possible_recall(wh, km),
        "recall_default": best_possible_recall(wh, default),
    }
