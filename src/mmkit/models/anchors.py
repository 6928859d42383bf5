"""Anchor boxes from a dataset: k-means on box sizes with the 1 − IoU distance (YOLOv2/v3), split per scale.

wh = boxes_wh_normalized * 256                        # sizes in pixels at the training size
anchors = anchors_for(kmeans_anchors(wh, k=6), tiny=True)
model = get_model("yolov3-tiny", num_classes=10, anchors=anchors, anchor_size=256)
"""

from __future__ import annotations

import numpy as np

from mmkit.errors import MMKitError


def _wh_iou(wh: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, K] IoU of boxes and centroids given by (w, h) only (same centre)."""
    inter = np.minimum(wh[:, None, 0], centroids[None, :, 0]) * np.minimum(
        wh[:, None, 1], centroids[None, :, 1]
    )
    return inter / (wh.prod(1)[:, None] + centroids.prod(1)[None] - inter)


def _check_wh(wh: np.ndarray) -> np.ndarray:
    wh = np.asarray(wh, dtype=np.float64)
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise MMKitError(f"anchors: box sizes must be an [N, 2] array of (w, h), got shape {wh.shape}")
    return wh[(wh > 0).all(1)]


def kmeans_anchors(wh: np.ndarray, k: int = 9, *, seed: int = 0, iters: int = 300) -> np.ndarray:
    """[k, 2] anchor sizes sorted by area: k-means of the (w, h) box sizes with distance 1 − IoU.

    k-means++ seeding on that distance; each centroid moves to the median of its boxes (robust to outliers);
    a centroid left with no boxes keeps its place. Boxes with a non-positive side are ignored."""
    wh = _check_wh(wh)
    if len(wh) < k:
        raise MMKitError(f"anchors: k-means needs at least k={k} boxes with a positive size, got {len(wh)}")
    rng = np.random.default_rng(seed)
    centroids = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1 - _wh_iou(wh, np.array(centroids)).max(1)
        p = d**2 / (d**2).sum() if d.sum() > 0 else None
        centroids.append(wh[rng.choice(len(wh), p=p)])
    centroids = np.array(centroids)
    assign = None
    for _ in range(iters):
        new = _wh_iou(wh, centroids).argmax(1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                centroids[j] = np.median(wh[assign == j], axis=0)
    return centroids[np.argsort(centroids.prod(1))]


def anchors_for(k_anchors: np.ndarray, tiny: bool) -> list[list[tuple[float, float]]]:
    """Split sorted anchors into the model's scales, small first: 3 scales (YOLOv3) or 2 (tiny), equal counts."""
    a = np.asarray(k_anchors, dtype=np.float64).reshape(-1, 2)
    scales = 2 if tiny else 3
    if len(a) % scales:
        raise MMKitError(f"anchors: {len(a)} anchors do not split evenly into {scales} scales")
    a = a[np.argsort(a.prod(1))]
    n = len(a) // scales
    return [[(float(w), float(h)) for w, h in a[i * n : (i + 1) * n]] for i in range(scales)]


def best_possible_recall(wh: np.ndarray, anchors, thr: float = 4.0) -> float:
    """Fraction of boxes that some anchor can take: both w and h ratios within `thr` (the loss's assignment rule).

    `anchors`: [k, 2] array or the per-scale nested list of `anchors_for`."""
    wh = _check_wh(wh)
    a = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        return 0.0
    r = wh[:, None] / a[None]  # [N, K, 2]
    worst = np.maximum(r, 1 / r).max(2)  # [N, K]
    return float((worst.min(1) < thr).mean())
