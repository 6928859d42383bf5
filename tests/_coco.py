"""The reference for our COCO detection metrics: pycocotools' own evaluation of files on disk."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path


def pycocotools_stats(ground_truth: Path, detections: Path) -> list[float]:
    """COCOeval's 12 bbox summary numbers (stats[0] mAP@[.5:.95], stats[1] mAP@.5) for two COCO JSON files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        gt = COCO(str(ground_truth))
        ev = COCOeval(gt, gt.loadRes(str(detections)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)
