"""Using a trained detector or localizer: `DetectorPredictor` loads it, predicts boxes, evaluates (COCO mAP) and exports."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.detection import coco_ground_truth, detection_collate, load_detection_data
from mmkit.data.detection_transforms import TransformedDetectionDataset as DetTransformed
from mmkit.data.detection_transforms import build_detection_transforms, unletterbox_boxes
from mmkit.data.formats.images import read_images
from mmkit.engine import Runtime
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.metrics.detection import coco_evaluate, to_coco_results
from mmkit.models import get_model, get_weights
from mmkit.models.darknet import darknet_config, read_names, read_weights, write_darknet
from mmkit.models.yolov3 import can_pack, postprocess
from mmkit.tasks.predictor import Predictor

EVAL_CONF, EVAL_IOU = 0.001, 0.6  # mAP: keep nearly every box; class-aware NMS at this IoU


@dataclass
class DetectorMeta:
    """What it takes to rebuild a detector: stored in every detect checkpoint as `meta`.

    `letterbox`: how images are fitted to `img_size` by default, letterboxed with gray padding (mmkit's training,
    pjreddie's Darknet `test_detector`) or, False, resized to a square (OpenCV's `blobFromImage`)."""

    model: str
    num_classes: int
    img_size: int
    classes: list[str]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    letterbox: bool = True

    def eval_transform(self, img_size: int | None = None, letterbox: bool | None = None):
        """The (image, target) transform that feeds this detector (`letterbox` None: the meta's)."""
        fit = self.letterbox if letterbox is None else letterbox
        return build_detection_transforms(False, img_size or self.img_size, letterbox=fit)


# ---------------------------------------------------------------------------------------------------------------------
# Running a detector on batches (also what training's validation and the analyze/serve applications call)


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


def image_detections(
    pred: dict,
    classes: list[str],
    scale,
    pad: tuple[int, int],
    size: tuple[int, int],
    work_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """One image's `predict_batch` result as [{"box", "score", "class", "class_id"}]: boxes [x1, y1, x2, y2] mapped back
    through the transform's `scale` and `pad` (and a `work_scale` the image was reduced by) to original pixels,
    clipped to its (h, w) `size`."""
    boxes = unletterbox_boxes(pred["boxes"].float().cpu(), scale, pad) / work_scale
    boxes = unletterbox_boxes(boxes, 1.0, (0, 0), size)
    return [
        {"box": [round(v, 1) for v in b], "score": round(s, 4), "class": classes[c], "class_id": c}
        for b, s, c in zip(boxes.tolist(), pred["scores"].tolist(), pred["labels"].tolist(), strict=True)
    ]


@torch.no_grad()
def detect_image(
    net: nn.Module, meta: DetectorMeta, image: torch.Tensor, conf: float, iou: float, transform=None
) -> list[dict[str, Any]]:
    """The detections (`image_detections`) of one uint8 [3, H, W] image, fed by `transform` (default the meta's)."""
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    x, t = (transform or meta.eval_transform())(image, empty)
    device = next(net.parameters()).device
    pred = predict_batch(net, x[None].to(device), conf, iou)[0]
    return image_detections(pred, meta.classes, t["scale"], t["pad"], tuple(image.shape[-2:]))


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


class DetectorPredictor(Predictor):
    task = "detect"
    meta: DetectorMeta

    @functools.cached_property
    def runner(self) -> nn.Module:
        """The network as predict, eval, analyze and serve run it, made on first use: for a YOLO detector its fused
        inference copy (`YOLOv3.fused`: BatchNorm folded, channels-last; on an x86 CPU packed oneDNN convolutions with
        the LeakyReLU inside: 1.16x the unfused network in bench/darknet_speed.py), the localizer as it is. `net`
        stays as loaded, for saving, export and Darknet files."""
        if is_localizer(self.net):
            return self.net
        return self.net.fused(pack=can_pack(self.device))

    @staticmethod
    def network(meta: DetectorMeta) -> nn.Module:
        return get_model(meta.model, meta.num_classes, **meta.model_kwargs)

    @classmethod
    def from_named(cls, model: str, weights: str, device: torch.device) -> DetectorPredictor:
        """A registered model's named weights, e.g. yolov3-tiny's coco (Darknet's COCO-trained YOLOv3-tiny)."""
        w = get_weights(model, weights)
        net = get_model(model, weights=weights)
        meta = DetectorMeta(model, w.num_classes, w.input_size, w.class_names(), dict(w.options))
        return cls(net, meta, device, f"{model}:{weights}")

    @classmethod
    def from_darknet(
        cls,
        weights: str | os.PathLike,
        *,
        cfg: str | os.PathLike | None = None,
        names: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
    ) -> DetectorPredictor:
        """A Darknet .weights file with its cfg (default: beside it, same name) and class names (default: a .names
        file of the same name beside it if there is one, else the class indices)."""
        weights = Path(weights)
        cfg = Path(cfg) if cfg else weights.with_suffix(".cfg")
        model, num_classes, options = darknet_config(cfg)
        net = get_model(model, num_classes, **options)
        net.load_state_dict(read_weights(cfg, weights, net))
        names = Path(names) if names else weights.with_suffix(".names")
        classes = read_names(names) if names.is_file() else [str(i) for i in range(num_classes)]
        if len(classes) != num_classes:
            raise MMKitError(f"{names}: {len(classes)} class names for the {num_classes} classes of {cfg}")
        size = int(options["anchor_size"])
        meta = DetectorMeta(model, num_classes, size, classes, options)
        return cls(net, meta, torch.device(device), str(weights))

    def to_darknet(self, weights: str | os.PathLike) -> dict[str, str]:
        """Write the detector as Darknet files: `weights`, and beside it the .cfg (input: the meta's img_size) and
        the .names of the same name."""
        if is_localizer(self.net):
            raise MMKitError(f"{self.source}: only YOLOv3 and YOLOv3-tiny detectors have a Darknet form")
        weights = Path(weights)
        cfg, names = weights.with_suffix(".cfg"), weights.with_suffix(".names")
        write_darknet(self.net, cfg, weights, img_size=self.meta.img_size)
        names.write_text("".join(f"{c}\n" for c in self.meta.classes))
        return {"weights": str(weights), "cfg": str(cfg), "names": str(names)}

    def evaluate(
        self,
        data: str,
        *,
        split: str = "val",
        img_size: int | None = None,
        batch_size: int = 16,
        out: str | os.PathLike | None = None,
        workers: int = 0,
        multi_label: bool = True,
    ) -> dict[str, Any]:
        """COCO mAP on a split; writes predictions.json (COCO results format) and metrics.json.

        Predictions for mAP keep every box scoring over 0.001 after class-aware NMS at IoU 0.6, up to 300 per image;
        with `multi_label` (the default, as the YOLOv5 and ultralytics validators do) a box may stand for each class
        that scores over the threshold, not only for its best one."""
        rt = Runtime(self.device)
        net, meta = self.runner, self.meta
        d = load_detection_data(data, seed=0)
        if len(d.classes) != meta.num_classes:
            raise MMKitError(
                f"{data}: {len(d.classes)} classes, but the detector predicts {meta.num_classes}"
            )
        ds = {"train": d.train, "val": d.val}.get(split)
        if ds is None:
            raise MMKitError(f"--split {split}: choose train or val")
        img = img_size or meta.img_size
        loader = DataLoader(
            DetTransformed(ds, meta.eval_transform(img)),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=detection_collate,
        )
        results = run_detection(net, loader, rt, conf=EVAL_CONF, iou=EVAL_IOU, multi_label=multi_label)
        gt = coco_ground_truth(ds, d.classes)
        m = coco_evaluate(gt, results, d.classes)
        out_dir = self.eval_dir(out)
        (out_dir / "predictions.json").write_text(json.dumps(results))
        (out_dir / "ground_truth.json").write_text(json.dumps(gt))
        return self.write_metrics(
            out_dir,
            data,
            split=split,
            images=len(ds),
            multi_label=multi_label,
            **m,
            predictions=str(out_dir / "predictions.json"),
        )

    def predict(
        self,
        images: list[str | os.PathLike],
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        img_size: int | None = None,
        save_dir: str | os.PathLike | None = None,
        letterbox: bool | None = None,
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Boxes [x1, y1, x2, y2] in pixels with score and class name per image; optional pictures with boxes drawn.
        `letterbox`: letterbox (True) or plain resize (False) to the input size; None: the detector's own (see
        `DetectorMeta`). Returns (predictions, failures) where failures are (path, reason)."""
        tf = self.meta.eval_transform(img_size, letterbox)
        results, failures = [], []
        for p, im in read_images(images, failures):
            dets = detect_image(self.runner, self.meta, im, conf, iou, tf)
            h, w = im.shape[-2:]
            results.append({"path": p, "width": w, "height": h, "detections": dets})
            if save_dir is not None:
                draw_detections(im, dets, Path(save_dir) / (Path(p).stem + ".png"))
        return results, failures

    def export_graphs(self, net: nn.Module, img_size: int | None = None) -> list[Graph]:
        """Box decoding inside the graph ([B, N, 5 + C]: x1, y1, x2, y2, objectness, class probs) at `img_size`
        (default the training size); NMS stays outside."""
        if is_localizer(net):
            raise MMKitError(
                f"{self.source}: export is for YOLO detectors (the localizer is a plain classifier-style net)"
            )
        img = img_size or self.meta.img_size
        return [
            Graph("detector", _Inference(net).eval(), (torch.rand(2, 3, img, img),), ["input"], ["output"])
        ]


PREDICTOR = DetectorPredictor


# The task's functions, as the CLI, the applications and scripts call them: a predictor loaded from `weights`, then
# its method.


def load_detector(
    weights: str | os.PathLike, device="cpu", model: str | None = None
) -> tuple[nn.Module, DetectorMeta]:
    p = DetectorPredictor.load(weights, model=model, device=device)
    return p.runner, p.meta


def evaluate(weights, data: str, *, device: str = "auto", **kw: Any) -> dict[str, Any]:
    return DetectorPredictor.load(weights, device=device).evaluate(data, **kw)


def predict(weights, images, *, model: str | None = None, device: str = "auto", **kw: Any):
    return DetectorPredictor.load(weights, model=model, device=device).predict(images, **kw)


def export(weights, fmt: str = "onnx", *, model: str | None = None, **kw: Any) -> tuple[Path, float | None]:
    """The detector as ONNX or TorchScript (`kw`: out, check, img_size): its path and max abs difference."""
    (file,) = DetectorPredictor.load(weights, model=model, device="cpu").export(fmt, **kw)
    return file.path, file.max_abs_diff


CONVERSIONS = {("darknet", "mmkit"), ("mmkit", "darknet")}


def convert(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    source_format: str = "darknet",
    target_format: str = "mmkit",
) -> dict[str, Any]:
    """`mmkit detect convert`: Darknet files to an mmkit checkpoint `out`, or a detector to Darknet files `out`
    (.weights, with the .cfg and .names beside it). `sources`: from darknet the .weights and, where they are not
    beside it with its name, the .cfg and .names (told apart by their suffix); from mmkit one checkpoint or
    "model:weights". The files written, by kind."""
    if (source_format, target_format) not in CONVERSIONS:
        raise MMKitError(
            f"--from {source_format} --to {target_format}: detect convert goes from darknet to mmkit or back"
        )
    if source_format == "darknet":
        by_suffix = {Path(f).suffix: Path(f) for f in sources}
        weights = [Path(f) for f in sources if Path(f).suffix not in (".cfg", ".names")]
        if len(weights) != 1 or len(by_suffix) != len(sources):
            raise MMKitError(
                f"{' '.join(map(str, sources))}: give one .weights, and at most one .cfg and .names"
            )
        p = DetectorPredictor.from_darknet(
            weights[0], cfg=by_suffix.get(".cfg"), names=by_suffix.get(".names")
        )
        files = {"checkpoint": str(p.save(out))}
    else:
        if len(sources) != 1:
            raise MMKitError(f"{' '.join(map(str, sources))}: give one detect checkpoint (or model:weights)")
        p = DetectorPredictor.load(sources[0], device="cpu")
        files = p.to_darknet(out)
    return {"model": p.meta.model, "classes": p.meta.num_classes, "img_size": p.meta.img_size, "files": files}
