"""COCO detection metrics through pycocotools (the reference implementation): mAP@[.5:.95], mAP@.5, per-class AP."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import torch


def to_coco_results(
    image_id: int, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor
) -> list[dict]:
    """One image's detections (xyxy pixels, class index 0..K-1) in the COCO results format (bbox xywh,
    category_id = class + 1)."""
    b = boxes.detach().float().cpu()
    xywh = torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()
    return [
        {
            "image_id": int(image_id),
            "category_id": int(c) + 1,
            "bbox": [round(v, 3) for v in box],
            "score": round(float(s), 5),
        }
        for box, s, c in zip(xywh, scores.tolist(), labels.tolist(), strict=True)
    ]


def coco_evaluate(gt: dict[str, Any], results: list[dict], classes: list[str]) -> dict[str, Any]:
    """Run COCOeval (bbox) on a ground-truth dict and a results list; return the standard numbers (0-1 scale)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    empty = {
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
        "map_small": 0.0,
        "map_medium": 0.0,
        "map_large": 0.0,
        "mar100": 0.0,
        "per_class": dict.fromkeys(classes, 0.0),
    }
    if not results or not gt.get("annotations"):
        return empty
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    cat_ids = ev.params.catIds
    for k, cid in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = classes[cid - 1] if 0 < cid <= len(classes) else str(cid)
        if p.size:  # classes without ground truth have no AP (pycocotools leaves them out of the mean too)
            per_class[name] = float(p.mean())
    return {
        "map": float(s[0]),
        "map50": float(s[1]),
        "map75": float(s[2]),
        "map_small": float(s[3]),
        "map_medium": float(s[4]),
        "map_large": float(s[5]),
        "mar100": float(s[8]),
        "per_class": per_class,
    }
