"""Detectors with known answers, the reference that the detection tests compare against.

`known_outputs` makes a network's forward pass return raw outputs chosen by the test: for a YOLO model the maps
that decode to given boxes by the box parametrization the YOLOv3 module docstring states (centre =
(2·σ(t_xy) − 0.5 + cell)·stride, size = (2·σ(t_wh))²·anchor, score = σ(objectness)·σ(class)), inverted here by
hand; for the localizer its one normalized box and class. `scene_truth` reads a YOLO-format split straight from
its label files, and `coco_ground_truth` / `coco_detections` write COCO files, so pycocotools can score them without
any mmkit code in between.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

OFF, ON = -30.0, 30.0  # logits of a probability of ~1e-13 (a slot that detects nothing) and of 1.0 in float32


@dataclass(frozen=True)
class Box:
    """A box in input pixels (x1, y1, x2, y2), its score and class index."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 0.9
    label: int = 0

    def moved(self, dx: float, score: float, label: int | None = None) -> Box:
        """The same box `dx` pixels to the right (left when negative), with another score (and class)."""
        label = self.label if label is None else label
        return Box(self.x1 + dx, self.y1, self.x2 + dx, self.y2, score, label)

    def iou(self, other: Box) -> float:
        w = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        h = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = w * h
        area = (self.x2 - self.x1) * (self.y2 - self.y1) + (other.x2 - other.x1) * (other.y2 - other.y1)
        return inter / (area - inter)


@dataclass
class Scene:
    """One image of a split: its file, its pixels as the eval transform feeds them at its own size, its boxes."""

    path: Path
    pixels: torch.Tensor
    boxes: list[Box]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def scene_truth(root: Path, split: str = "val") -> tuple[list[str], list[Scene]]:
    """The class names and the images of a YOLO-format folder's split, read from data.yaml and the label files."""
    names = yaml.safe_load((root / "data.yaml").read_text())["names"]
    classes = [names[i] for i in sorted(names)]
    scenes = []
    for path in sorted((root / "images" / split).iterdir()):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        boxes = []
        for line in (root / "labels" / split / f"{path.stem}.txt").read_text().split("\n"):
            if line.strip():
                c, cx, cy, bw, bh = (float(v) for v in line.split())
                box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
                boxes.append(Box(*box, score=1.0, label=int(c)))
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        scenes.append(Scene(path, pixels, boxes))
    return classes, scenes


def imperfect_detections(truth: list[Box], width: float, classes: int) -> list[Box]:
    """What an imperfect detector finds for an image's ground truth, for each box in turn: the box itself, the box
    moved by a tenth of its width (IoU 0.82), by a fifth (IoU 0.67), the box itself at score 0.05 (which only an
    evaluation keeping boxes under 0.1 sees); after them two false positives for the first box, another class on
    it and the box moved by two fifths (IoU 0.43). Moves go towards the image's centre, so nothing is clipped;
    no two boxes of a class overlap by more than IoU 0.6 (a precondition: NMS keeps them all)."""

    def toward_centre(b: Box, fraction: float, score: float, label: int | None = None) -> Box:
        direction = 1 if (b.x1 + b.x2) / 2 < width / 2 else -1
        return b.moved(direction * fraction * (b.x2 - b.x1), score, label)

    kinds = [(0.0, 0.9), (0.1, 0.8), (0.2, 0.6), (0.0, 0.05)]
    found = [toward_centre(b, kinds[i % 4][0], kinds[i % 4][1] - 0.003 * i) for i, b in enumerate(truth)]
    found += [
        toward_centre(truth[0], 0.0, 0.85, label=(truth[0].label + 1) % classes),
        toward_centre(truth[0], 0.4, 0.7),
    ]
    for i, a in enumerate(found):
        assert all(a.label != b.label or a.iou(b) < 0.6 for b in found[i + 1 :]), "the plan overlaps itself"
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Raw outputs


def yolo_outputs(model, size: tuple[int, int], boxes: list[Box]) -> list[torch.Tensor]:
    """The raw maps [1, A, H/s, W/s, 5 + C] of each scale that `model.decode` turns into exactly `boxes` (input
    pixels) and nothing else. Each box takes a free (scale, anchor, cell) slot whose anchor is closest to its size."""
    assert model.box_coding == "mmkit", "boxes are encoded here in mmkit's coding"
    h, w = size
    anchors = model.anchors * (max(h, w) / model.anchor_size)
    outs = [torch.full((1, model.num_anchors, h // s, w // s, model.no), OFF) for s in model.strides]
    taken: set[tuple[int, ...]] = set()
    for b in boxes:
        cx, cy, bw, bh = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, b.x2 - b.x1, b.y2 - b.y1
        slots = []
        for i, stride in enumerate(model.strides):
            for a, (aw, ah) in enumerate(anchors[i].tolist()):
                rw, rh = bw / aw, bh / ah
                if not (1e-3 < rw < 3.6 and 1e-3 < rh < 3.6):
                    continue
                for gx in range(int(cx // stride) - 1, int(cx // stride) + 2):
                    for gy in range(int(cy // stride) - 1, int(cy // stride) + 2):
                        ox, oy = cx / stride - gx, cy / stride - gy  # offsets the decoding can reach
                        if (
                            0 <= gx < w // stride
                            and 0 <= gy < h // stride
                            and -0.4 < min(ox, oy) <= max(ox, oy) < 1.4
                        ):
                            fit = abs(math.log(rw)) + abs(math.log(rh)) + abs(ox - 0.5) + abs(oy - 0.5)
                            slots.append((fit, i, a, gy, gx, ox, oy, rw, rh))
        free = [s for s in sorted(slots) if s[1:5] not in taken]
        assert free, f"no free slot for {b}"
        _, i, a, gy, gx, ox, oy, rw, rh = free[0]
        taken.add((i, a, gy, gx))
        raw = [
            logit((ox + 0.5) / 2),
            logit((oy + 0.5) / 2),
            logit(rw**0.5 / 2),
            logit(rh**0.5 / 2),
            logit(b.score),
        ]
        outs[i][0, a, gy, gx, :5] = torch.tensor(raw)
        outs[i][0, a, gy, gx, 5 + b.label] = ON
    return outs


def localizer_outputs(model, size: tuple[int, int], boxes: list[Box]) -> dict[str, torch.Tensor]:
    """The localizer's outputs for its one box: normalized (cx, cy, w, h) and logits whose softmax is 1 for the
    box's class."""
    (b,) = boxes
    h, w = size
    box = torch.tensor([[(b.x1 + b.x2) / 2 / w, (b.y1 + b.y2) / 2 / h, (b.x2 - b.x1) / w, (b.y2 - b.y1) / h]])
    logits = torch.full((1, model.classifier.out_features), OFF)
    logits[0, b.label] = ON
    return {"box": box, "logits": logits}


def known_outputs(monkeypatch, cls, plans: list[tuple[torch.Tensor | None, list[Box]]]) -> None:
    """Make `cls.forward` answer each input image with the raw outputs of its plan's boxes (`yolo_outputs`, or
    `localizer_outputs` for a model without `decode`). A plan's image is the input the eval transform makes of it
    (None: any image); an input matching no plan fails the test."""

    def forward(model, x: torch.Tensor):
        encode = yolo_outputs if hasattr(model, "decode") else localizer_outputs
        outs = []
        for image in x:
            boxes = [
                p
                for ref, p in plans
                if ref is None or (ref.shape == image.shape and (ref - image).abs().max() < 1e-3)
            ]
            assert len(boxes) == 1, "an input image that the test planned no detections for"
            outs.append(encode(model, tuple(x.shape[-2:]), boxes[0]))
        if isinstance(outs[0], dict):
            return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        return [torch.cat(maps) for maps in zip(*outs, strict=True)]

    monkeypatch.setattr(cls, "forward", forward)


# ---------------------------------------------------------------------------------------------------------------------
# COCO files for pycocotools


def coco_ground_truth(classes: list[str], scenes: list[Scene], path: Path) -> Path:
    """The scenes' boxes as a COCO ground-truth file (image ids 1.., category id = class + 1)."""
    images, annotations = [], []
    for i, s in enumerate(scenes, 1):
        h, w = s.pixels.shape[-2:]
        images.append({"id": i, "width": w, "height": h, "file_name": s.path.name})
        for b in s.boxes:
            bw, bh = b.x2 - b.x1, b.y2 - b.y1
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": b.label + 1}
            annotations.append({**ann, "bbox": [b.x1, b.y1, bw, bh], "area": bw * bh, "iscrowd": 0})
    categories = [{"id": k + 1, "name": c} for k, c in enumerate(classes)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def coco_detections(found: list[list[Box]], path: Path) -> Path:
    """Detections per image (in `coco_ground_truth`'s order) as a COCO results file."""
    rows = [
        {
            "image_id": i,
            "category_id": b.label + 1,
            "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
            "score": b.score,
        }
        for i, boxes in enumerate(found, 1)
        for b in boxes
    ]
    path.write_text(json.dumps(rows))
    return path


def assert_same_detections(
    results: list[dict], ground_truth: dict, scenes: list[Scene], found: list[list[Box]]
):
    """A COCO results list written by mmkit (image ids as in its `ground_truth` dict) holds exactly the `found`
    boxes of each scene (to 0.01 px and 1e-4 in score)."""
    names = {im["id"]: im["file_name"] for im in ground_truth["images"]}
    for scene, boxes in zip(scenes, found, strict=True):
        got = sorted(
            (r for r in results if names[r["image_id"]] == scene.path.name), key=lambda r: -r["score"]
        )
        want = sorted(boxes, key=lambda b: -b.score)
        assert len(got) == len(want), (scene.path.name, got, want)
        for r, b in zip(got, want, strict=True):
            assert r["category_id"] == b.label + 1 and r["score"] == pytest.approx(b.score, abs=1e-4)
            assert r["bbox"] == pytest.approx([b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1], abs=1e-2)


@dataclass
class EvaluationReference:
    """pycocotools' numbers for `imperfect_detections` of a YOLO-format split, from files written here."""

    classes: list[str]
    scenes: list[Scene]
    found: list[list[Box]]
    stats: list[float]

    def check(self, result: dict, out_dir: Path) -> None:
        """An `evaluate` result (and the predictions it wrote to `out_dir`) holds the planned boxes and
        pycocotools' mAP@[.5:.95], mAP@.5, mAP@.75 and mAR@100 for them."""
        ground_truth = json.loads((out_dir / "ground_truth.json").read_text())
        predictions = json.loads(Path(result["predictions"]).read_text())
        assert_same_detections(predictions, ground_truth, self.scenes, self.found)
        reported = [result[k] for k in ("map", "map50", "map75", "mar100")]
        assert reported == pytest.approx([self.stats[i] for i in (0, 1, 2, 8)], abs=1e-6)


def planned_evaluation(
    monkeypatch, cls, root: Path, tmp_path: Path, plan=imperfect_detections
) -> EvaluationReference:
    """Make networks of class `cls` detect `plan(boxes, width, classes)` in each image of the split "val"
    (`known_outputs`; default `imperfect_detections`), and score those detections with pycocotools on a
    ground-truth file and a results file written here."""
    from _coco import pycocotools_stats

    classes, scenes = scene_truth(root, "val")
    found = [plan(s.boxes, s.pixels.shape[-1], len(classes)) for s in scenes]
    known_outputs(monkeypatch, cls, [(s.pixels, boxes) for s, boxes in zip(scenes, found, strict=True)])
    gt = coco_ground_truth(classes, scenes, tmp_path / "reference_ground_truth.json")
    stats = pycocotools_stats(gt, coco_detections(found, tmp_path / "reference_detections.json"))
    assert 0 < stats[0] <= stats[1] < 1, "the planned detections must be neither all right nor all wrong"
    return EvaluationReference(classes, scenes, found, stats)
