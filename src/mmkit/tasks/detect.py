"""Object detection and localization: YOLOv3 / YOLOv3-tiny / a single-object localizer, on the shared engine."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.detection import DetectionData, coco_ground_truth, detection_collate, load_detection_data
from mmkit.data.detection_transforms import (
    TransformedDetectionDataset as DetTransformed,
)
from mmkit.data.detection_transforms import build_detection_transforms, unletterbox_boxes
from mmkit.data.formats.images import read_image
from mmkit.engine import Runtime, Task, load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.losses.detection import YOLOv3Loss, localizer_loss
from mmkit.metrics.detection import coco_evaluate, to_coco_results
from mmkit.models import get_model
from mmkit.models.yolov3 import postprocess

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

EVAL_CONF, EVAL_IOU = 0.001, 0.6  # mAP: keep nearly every box; class-aware NMS at this IoU


@dataclass
class DetectorMeta:
    model: str
    num_classes: int
    img_size: int
    classes: list[str]
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def is_localizer(model: nn.Module) -> bool:
    return not hasattr(model, "decode")


def predict_batch(
    model: nn.Module, x: torch.Tensor, conf: float, iou: float, max_det: int = 300, multi_label: bool = False
) -> list[dict]:
    """Boxes (xyxy in input pixels), scores and labels per image, for YOLO models and the localizer alike.
    `multi_label`: a YOLO box may be kept for every class scoring above `conf`, not only its best one."""
    if is_localizer(model):
        out = model(x)
        h, w = x.shape[-2:]
        cx, cy, bw, bh = out["box"].float().unbind(1)
        boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        p, lab = out["logits"].float().softmax(1).max(1)
        return [
            {"boxes": boxes[i : i + 1], "scores": p[i : i + 1], "labels": lab[i : i + 1]}
            for i in range(len(x))
        ]
    dec = model.decode(model(x), tuple(x.shape[-2:]))
    return postprocess(dec.float(), conf=conf, iou=iou, max_det=max_det, multi_label=multi_label)


class DetectTask(Task):
    name = "detect"
    monitor = ("val/map", "max")

    def __init__(
        self,
        data: str,
        model: str = "yolov3-tiny",
        weights: str | None = None,
        img_size: int | None = None,
        val_split: float = 0.1,
        hflip: bool = False,
        anchors: str = "auto",
        ignore_iou: float | None = 0.5,
        model_kwargs: dict[str, Any] | None = None,
        augment: bool = True,
    ) -> None:
        if anchors not in ("auto", "default"):
            raise MMKitError(f"--anchors {anchors}: choose auto (k-means on the training boxes) or default")
        self.data_spec, self.model_name, self.weights = str(data), model, weights
        self.img_size, self.val_split, self.hflip = img_size, val_split, hflip
        self.anchors, self.ignore_iou, self.augment = anchors, ignore_iou, augment
        self.model_kwargs = dict(model_kwargs or {})
        self.last_eval: dict[str, Any] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        self.data: DetectionData = load_detection_data(self.data_spec, self.val_split, seed=cfg.seed)
        d = self.data
        from mmkit.models import get_model_info

        info = get_model_info(self.model_name)
        if info.task != "detect":
            raise MMKitError(f"--model {self.model_name}: a {info.task} model, not a detector")
        img = self.img_size or info.default_input_size
        if img % 32:
            raise MMKitError(f"--img-size {img}: must be a multiple of 32")
        if self.model_name.startswith("yolov3") and self.anchors == "auto" and self.weights is None:
            self.model_kwargs.update(self._kmeans_anchors(img, tiny="tiny" in self.model_name, rt=rt))
        self.model = get_model(self.model_name, len(d.classes), weights=self.weights, **self.model_kwargs)
        self.criterion = (
            None if is_localizer(self.model) else YOLOv3Loss(self.model, ignore_iou=self.ignore_iou)
        )
        self.meta = DetectorMeta(self.model_name, len(d.classes), img, list(d.classes), self.model_kwargs)
        train_tf = build_detection_transforms(self.augment, img, hflip=self.hflip and self.augment)
        self.train_ds = DetTransformed(d.train, train_tf)
        self.val_ds = DetTransformed(d.val, build_detection_transforms(False, img))
        self.gt = coco_ground_truth(d.val, d.classes) if rt.is_main else None
        if rt.is_main:
            s = d.summary()
            log.info(
                "%s at %dpx: %d train boxes (%d empty images)%s",
                self.model_name,
                img,
                s["train"]["boxes"],
                s["train"]["empty_images"],
                f", {len(d.problems)} label problems skipped (see the warnings above)" if d.problems else "",
            )

    def _kmeans_anchors(self, img: int, tiny: bool, rt: Runtime) -> dict[str, Any]:
        """anchors/anchor_size model kwargs from k-means on the training boxes at the training size (the same
        on every rank: fixed seed); {} when there are too few boxes, leaving the Darknet anchors."""
        from mmkit.models.anchors import anchors_for, best_possible_recall, kmeans_anchors

        wh = train_box_sizes(self.data.train, img)
        k = 6 if tiny else 9
        if len(wh) < 4 * k:
            log.info("anchors: only %d training boxes; keeping the default anchors", len(wh))
            return {}
        km = kmeans_anchors(wh, k, seed=0)
        if rt.is_main:
            log.info(
                "anchors: k-means on %d training boxes at %dpx, best possible recall %.3f",
                len(wh),
                img,
                best_possible_recall(wh, km),
            )
        return {"anchors": anchors_for(km, tiny), "anchor_size": img}

    def modules(self):
        return {"model": self.model}

    def train_dataset(self):
        return self.train_ds

    def val_dataset(self):
        return self.val_ds

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
        metrics = coco_evaluate(self.gt, allres, self.data.classes) if rt.is_main else None
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


def run_detection(
    model: nn.Module, loader: DataLoader, rt: Runtime, conf: float, iou: float, multi_label: bool = False
) -> list[dict]:
    """COCO-format results (in original image pixels) for this rank's share of a loader."""
    model.eval()
    out: list[dict] = []
    for batch in loader:
        if batch is None:
            continue
        x, targets = batch
        x = rt.move(x)
        with rt.autocast():
            preds = predict_batch(model, x, conf, iou, multi_label=multi_label)
        for p, t in zip(preds, targets, strict=True):
            boxes = unletterbox_boxes(p["boxes"].cpu(), t["scale"], t["pad"])
            out += to_coco_results(int(t["image_id"]), boxes, p["scores"].cpu(), p["labels"].cpu())
    return out


# ---------------------------------------------------------------------------------------------------------------------


def load_detector(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, DetectorMeta]:
    ck = load_checkpoint(weights)
    if ck.get("task") != "detect":
        raise MMKitError(f"{weights}: a {ck.get('task')} checkpoint, not a detector")
    meta = DetectorMeta(**ck["meta"])
    net = get_model(meta.model, meta.num_classes, **meta.model_kwargs)
    net.load_state_dict(ck["model"])
    return net.to(device).eval(), meta


def evaluate(
    weights: str,
    data: str,
    *,
    split: str = "val",
    img_size: int | None = None,
    batch_size: int = 16,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    workers: int = 0,
    multi_label: bool = True,
) -> dict[str, Any]:
    """COCO mAP on a split; writes predictions.json (COCO results format) and metrics.json.

    Predictions for mAP keep every box scoring over 0.001 after class-aware NMS at IoU 0.6, up to 300 per image;
    with `multi_label` (the default, as the YOLOv5 and ultralytics validators do) a box may stand for each class
    that scores over the threshold, not only for its best one."""
    rt = Runtime(select_device(device))
    net, meta = load_detector(weights, rt.device)
    d = load_detection_data(data, seed=0)
    if len(d.classes) != meta.num_classes:
        raise MMKitError(f"{data}: {len(d.classes)} classes, but the detector predicts {meta.num_classes}")
    ds = {"train": d.train, "val": d.val}.get(split)
    if ds is None:
        raise MMKitError(f"--split {split}: choose train or val")
    img = img_size or meta.img_size
    loader = DataLoader(
        DetTransformed(ds, build_detection_transforms(False, img)),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=detection_collate,
    )
    results = run_detection(net, loader, rt, conf=EVAL_CONF, iou=EVAL_IOU, multi_label=multi_label)
    gt = coco_ground_truth(ds, d.classes)
    m = coco_evaluate(gt, results, d.classes)
    out_dir = Path(out) if out else next_run_dir("runs", "detect", "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "predictions.json").write_text(json.dumps(results))
    (out_dir / "ground_truth.json").write_text(json.dumps(gt))
    r = {
        "weights": str(weights),
        "data": str(data),
        "split": split,
        "images": len(ds),
        "multi_label": multi_label,
        **m,
        "predictions": str(out_dir / "predictions.json"),
    }
    (out_dir / "metrics.json").write_text(json.dumps(r, indent=2))
    return r


def predict(
    weights: str,
    images: list[str | os.PathLike],
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    img_size: int | None = None,
    device: str = "auto",
    save_dir: str | os.PathLike | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Boxes [x1, y1, x2, y2] in pixels with score and class name per image; optional pictures with boxes drawn."""
    dev = select_device(device)
    net, meta = load_detector(weights, dev)
    img = img_size or meta.img_size
    tf = build_detection_transforms(False, img)
    results, failures = [], []
    for p in images:
        try:
            im = read_image(p)
        except MMKitError as e:
            failures.append((str(p), str(e)))
            continue
        empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        x, t = tf(im, empty)
        with torch.no_grad():
            pred = predict_batch(net, x[None].to(dev), conf, iou)[0]
        boxes = unletterbox_boxes(pred["boxes"].cpu(), t["scale"], t["pad"])
        h, w = im.shape[-2:]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        dets = [
            {
                "box": [round(v, 1) for v in b],
                "score": round(float(s), 4),
                "class": meta.classes[int(c)],
                "class_id": int(c),
            }
            for b, s, c in zip(boxes.tolist(), pred["scores"], pred["labels"], strict=True)
        ]
        results.append({"path": str(p), "width": w, "height": h, "detections": dets})
        if save_dir is not None:
            draw_detections(im, dets, Path(save_dir) / (Path(p).stem + ".png"))
    return results, failures


def draw_detections(image: torch.Tensor, dets: list[dict], out: Path) -> Path:
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    out.parent.mkdir(parents=True, exist_ok=True)
    if dets:
        boxes = torch.tensor([d["box"] for d in dets])
        labels = [f"{d['class']} {d['score']:.2f}" for d in dets]
        palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]
        colors = [palette[d["class_id"] % len(palette)] for d in dets]
        width = max(1, round(max(image.shape[-2:]) / 200))
        image = draw_bounding_boxes(image, boxes, labels, colors=colors, width=width)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(out)
    return out


class _Inference(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.inference(x)


def export(
    weights: str,
    fmt: str = "onnx",
    *,
    out: str | os.PathLike | None = None,
    img_size: int | None = None,
    check: bool = True,
) -> tuple[Path, float | None]:
    """ONNX with box decoding inside the graph ([B, N, 5 + C]: x1, y1, x2, y2, objectness, class probs); NMS stays
    outside. Checked against PyTorch with ONNX Runtime."""
    from mmkit.export import export_onnx, export_torchscript

    net, meta = load_detector(weights, "cpu")
    if is_localizer(net):
        raise MMKitError(
            f"{weights}: export is for YOLO detectors (the localizer is a plain classifier-style net)"
        )
    img = img_size or meta.img_size
    example = torch.rand(2, 3, img, img)
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript"}.get(fmt)
    if suffix is None:
        raise MMKitError(f"--format {fmt}: choose onnx or torchscript")
    path = Path(out) if out else Path(weights).with_suffix(suffix)
    fn = export_onnx if fmt == "onnx" else export_torchscript
    return path, fn(_Inference(net).eval(), example, path, check=check)


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


def anchors(
    data: str, *, k: int | None = None, tiny: bool = False, img_size: int = 416, seed: int = 0
) -> dict[str, Any]:
    """k-means anchors (1 - IoU distance) for a dataset's training boxes, as the detector sees them after letterboxing."""
    import numpy as np

    from mmkit.models.anchors import anchors_for, best_possible_recall, kmeans_anchors
    from mmkit.models.yolov3 import YOLOV3_ANCHORS, YOLOV3_TINY_ANCHORS

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
