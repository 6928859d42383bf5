"""Object detection and localization as the engine trains them: `DetectTask`, its options being `DetectOptions`."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mmkit.data.detection import DetectionData, coco_ground_truth, detection_collate, load_detection_data
from mmkit.data.detection_transforms import TransformedDetectionDataset as DetTransformed
from mmkit.data.detection_transforms import build_detection_transforms
from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.losses.detection import YOLOv3Loss, localizer_loss
from mmkit.metrics.detection import coco_evaluate
from mmkit.models import get_model, get_model_info
from mmkit.tasks.detect.anchor_fitting import anchor_kwargs
from mmkit.tasks.detect.options import ANCHORS, DetectOptions
from mmkit.tasks.detect.predictor import EVAL_CONF, EVAL_IOU, DetectorMeta, is_localizer, run_detection

log = logging.getLogger(__name__)


@dataclass(eq=False)
class DetectTask(DetectOptions, Task):
    """Trains YOLOv3, YOLOv3-tiny or the single-object localizer; its fields are the options of
    `mmkit detect train`."""

    name = "detect"
    monitor = ("val/map", "max")

    def __post_init__(self) -> None:
        if self.anchors not in ANCHORS:
            raise MMKitError(
                f"--anchors {self.anchors}: choose auto (k-means on the training boxes) or default"
            )
        if not self.data:
            raise MMKitError("--data is required (digit-scenes, a data.yaml, or a COCO folder)")
        self.data = str(self.data)
        if self.ignore_iou is not None and self.ignore_iou <= 0:  # 0 on the command line: off
            self.ignore_iou = None
        self.model_kwargs = {
            **({"width": self.width} if self.width != 1.0 else {}),
            **(self.model_kwargs or {}),
        }
        self.last_eval: dict[str, Any] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        self.dataset: DetectionData = load_detection_data(self.data, self.val_split, seed=cfg.seed)
        d = self.dataset
        summary = d.summary()
        if summary["train"]["boxes"] == 0:
            raise MMKitError(_no_boxes(self.data, summary["train"]["images"], d.problems))
        info = get_model_info(self.model)
        if info.task != "detect":
            raise MMKitError(f"--model {self.model}: a {info.task} model, not a detector")
        img = self.img_size or info.default_input_size
        if img % 32:
            raise MMKitError(f"--img-size {img}: must be a multiple of 32")
        if self.weights in info.weights and self.model_kwargs.get("width", 1.0) != 1.0:
            raise MMKitError(
                f"--weights {self.weights}: {self.model}'s published weights are full width; give --width 1 "
                f"(not {self.model_kwargs['width']:g}, which a recipe may have chosen)"
            )
        if self.model.startswith("yolov3") and self.anchors == "auto" and self.weights is None:
            self.model_kwargs.update(
                anchor_kwargs(d.train, img, tiny="tiny" in self.model, verbose=rt.is_main)
            )
        self.net = get_model(self.model, len(d.classes), weights=self.weights, **self.model_kwargs)
        self.criterion = None if is_localizer(self.net) else YOLOv3Loss(self.net, ignore_iou=self.ignore_iou)
        self.meta = DetectorMeta(self.model, len(d.classes), img, list(d.classes), self.model_kwargs)
        train_tf = build_detection_transforms(self.augment, img, hflip=self.hflip and self.augment)
        self.train_ds = DetTransformed(d.train, train_tf)
        self.val_ds = DetTransformed(d.val, build_detection_transforms(False, img))
        self.gt = coco_ground_truth(d.val, d.classes) if rt.is_main else None
        if rt.is_main:
            log.info(
                "%s at %dpx: %d train boxes (%d empty images)%s",
                self.model,
                img,
                summary["train"]["boxes"],
                summary["train"]["empty_images"],
                f", {len(d.problems)} label problems skipped (see the warnings above)" if d.problems else "",
            )

    def collate_fn(self):
        return detection_collate

    def default_workers(self) -> int:
        return min(2, os.cpu_count() or 1)

    def loss(self, model, batch):
        x, targets = batch
        if self.criterion is None:  # localizer: the largest object of each image
            boxes, labels = [], []
            h, w = x.shape[-2:]
            for t in targets:
                b = t["boxes"]
                if len(b) == 0:
                    boxes.append(torch.tensor([0.5, 0.5, 0.0, 0.0], device=x.device))
                    labels.append(torch.tensor(-100, device=x.device))
                    continue
                k = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).argmax()
                x1, y1, x2, y2 = b[k]
                boxes.append(
                    torch.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
                )
                labels.append(t["labels"][k])
            return localizer_loss(model(x), torch.stack(boxes), torch.stack(labels))
        rows = [
            torch.cat(
                [
                    torch.full((len(t["labels"]), 1), float(i), device=x.device),
                    t["labels"].float()[:, None],
                    t["boxes"].float(),
                ],
                1,
            )
            for i, t in enumerate(targets)
        ]
        tgt = torch.cat(rows) if rows else torch.zeros(0, 6, device=x.device)
        return self.criterion(model(x), tgt, tuple(x.shape[-2:]))

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        results = run_detection(model, loader, rt, conf=EVAL_CONF, iou=EVAL_IOU, multi_label=True)
        allres = [r for part in rt.gather_objects(results) for r in part]
        metrics = coco_evaluate(self.gt, allres, self.dataset.classes) if rt.is_main else None
        metrics = rt.broadcast_object(metrics)
        self.last_eval = metrics
        return {f"val/{k}": v for k, v in metrics.items() if k in ("map", "map50", "map75", "mar100")}

    def checkpoint_meta(self):
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section

        if not self.last_eval:
            return []
        rows = [[k, v] for k, v in sorted(self.last_eval["per_class"].items())]
        return [Section("Per-class AP@[.5:.95] (validation, last epoch)", table=(["class", "AP"], rows))]


def _no_boxes(data: str, images: int, problems: list[str]) -> str:
    """Why a detection source with no usable box in its train split cannot be trained on."""
    if not problems:
        return f"{data}: no boxes in the {images} train images (no label files?); nothing to train on"
    return (
        f"{data}: no valid boxes in the {images} train images; {len(problems)} label problems skipped "
        f"(the first: {problems[0]}); nothing to train on"
    )
