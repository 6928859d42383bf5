"""Image classification: train (through the engine), evaluate, predict and export."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data import ClassificationData, collate_skip_none, load_classification_data
from mmkit.data.classification import TensorImageDataset
from mmkit.data.formats.images import read_image
from mmkit.data.transforms import BatchTransform, TransformedDataset, build_transforms, crop_padding
from mmkit.engine import Runtime, Task, load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.metrics.classification import ClassificationMeter
from mmkit.models import get_model, get_model_info, get_weights

log = logging.getLogger(__name__)


@dataclass
class ClassifierMeta:
    """What it takes to rebuild a classifier and feed it: stored in every classify checkpoint as `meta`."""

    model: str
    num_classes: int
    in_chans: int
    img_size: int
    mean: list[float]
    std: list[float]
    classes: list[str]
    native_size: int | None = None  # in-memory sets (8, 28, 32): eval resizes without cropping
    data: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def eval_transform(self, in_channels: int):
        return build_transforms(
            False,
            self.img_size,
            self.mean,
            self.std,
            in_channels=in_channels,
            out_channels=self.in_chans,
            native_size=self.native_size,
        )


AUGMENTS = ("crop-flip", "flip", "none")  # training augmentation: random (padded or resized) crop + flip, ...


class ClassifyTask(Task):
    name = "classify"
    monitor = ("val/top1", "max")

    def __init__(
        self,
        data: str,
        model: str = "smallcnn",
        weights: str | None = None,
        img_size: int | None = None,
        val_split: float = 0.1,
        freeze_backbone: bool = False,
        label_smoothing: float = 0.0,
        model_kwargs: dict[str, Any] | None = None,
        augment: str = "crop-flip",
    ) -> None:
        if augment not in AUGMENTS:
            raise MMKitError(f"--augment {augment}: choose one of {', '.join(AUGMENTS)}")
        self.augment = augment
        self.data_spec, self.model_name, self.weights = str(data), model, weights
        self.img_size, self.val_split, self.freeze_backbone = img_size, val_split, freeze_backbone
        self.label_smoothing = label_smoothing
        self.model_kwargs = dict(model_kwargs or {})
        self.last_meter: ClassificationMeter | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        self.data: ClassificationData = load_classification_data(
            self.data_spec, self.val_split, seed=cfg.seed
        )
        d = self.data
        info = get_model_info(self.model_name)
        named = self.weights in info.weights if self.weights else False
        w = get_weights(self.model_name, self.weights) if named else None
        in_chans = 3 if w is not None else d.channels
        img = self.img_size or (w.input_size if w else None) or d.image_size or info.default_input_size
        mean, std = (list(w.mean), list(w.std)) if w else (list(d.mean), list(d.std))
        self.model = get_model(
            self.model_name,
            len(d.classes),
            weights=self.weights,
            in_chans=in_chans,
            freeze_backbone=self.freeze_backbone,
            **self.model_kwargs,
        )
        self.meta = ClassifierMeta(
            self.model_name,
            len(d.classes),
            in_chans,
            img,
            mean,
            std,
            list(d.classes),
            d.image_size,
            self.data_spec,
            self.model_kwargs,
        )
        self.channels_last = cfg.channels_last
        crop, hflip = self.augment == "crop-flip", d.hflip and self.augment != "none"
        self.train_tf = batch_transform(d.train, True, img, mean, std, in_chans, hflip, crop)
        self.val_tf = batch_transform(d.val, False, img, mean, std, in_chans)
        if self.train_tf is not None and self.val_tf is not None:
            # In-memory small images: the loaders yield uint8 batches, transformed whole on the device.
            self.train_ds, self.val_ds = d.train, d.val
        else:
            kw = dict(
                mean=mean, std=std, in_channels=d.channels, out_channels=in_chans, native_size=d.image_size
            )
            self.train_ds = TransformedDataset(
                d.train, build_transforms(True, img, hflip=hflip, crop=crop, **kw)
            )
            self.val_ds = TransformedDataset(d.val, build_transforms(False, img, **kw))
            self.train_tf = self.val_tf = None
        if rt.is_main:
            log.info(
                "%s: %d train / %d val images, %d classes, %s at %dpx%s",
                d.name,
                len(d.train),
                len(d.val),
                len(d.classes),
                self.model_name,
                img,
                f", {len(d.skipped)} unreadable files skipped" if d.skipped else "",
            )

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self):
        return self.train_ds

    def val_dataset(self):
        return self.val_ds

    def collate_fn(self):
        return collate_skip_none

    def default_workers(self) -> int:
        return 0 if self.data.image_size else min(8, os.cpu_count() or 1)

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """The batch as the model takes it: uint8 in-memory batches go through their BatchTransform here."""
        tf = self.train_tf if train else self.val_tf
        if tf is None:
            return x
        x = tf(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, model, batch):
        x, y = batch
        logits = model(self.prepare(x, train=True))
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, {"top1": (logits.argmax(1) == y).float().mean() * 100}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        meter = run_meter(model, loader, rt, len(self.data.classes), prepare=lambda x: self.prepare(x, False))
        self.last_meter = meter
        m = meter.compute()
        return {f"val/{k}": v for k, v in m.items()}

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section, plot_confusion_matrix

        if self.last_meter is None:
            return []
        classes = self.data.classes
        png = plot_confusion_matrix(
            self.last_meter.confusion,
            classes,
            run_dir / "confusion_matrix.png",
            title="Validation confusion matrix (last epoch)",
        )
        acc = self.last_meter.per_class_accuracy()
        rows = [[c, int(self.last_meter.confusion[i].sum()), float(acc[i])] for i, c in enumerate(classes)]
        return [
            Section(
                "Confusion matrix", images=[(png, "rows: true class, columns: predicted; normalized per row")]
            ),
            Section(
                "Per-class accuracy (validation, last epoch)", table=(["class", "images", "accuracy %"], rows)
            ),
        ]


def batch_transform(
    ds, train: bool, img: int, mean, std, in_chans: int, hflip: bool = True, crop: bool = True
) -> BatchTransform | None:
    """A BatchTransform for an in-memory small-image dataset that needs no channel reduction, else None."""
    if not isinstance(ds, TensorImageDataset) or ds.images.shape[-1] > 64 or ds.images.shape[1] > in_chans:
        return None
    pad = crop_padding(img) if train and crop else 0
    return BatchTransform(train, mean, std, out_channels=in_chans, size=img, pad=pad, hflip=hflip and train)


def run_meter(
    model: nn.Module,
    loader: DataLoader,
    rt: Runtime,
    num_classes: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ClassificationMeter:
    """Top-k, loss and confusion over a loader (its images passed through `prepare` if given); reduced across
    ranks."""
    meter = ClassificationMeter(num_classes, device=rt.device)
    model.eval()
    for batch in loader:
        if batch is None:
            continue
        x, y = rt.move(batch)
        if prepare is not None:
            x = prepare(x)
        with rt.autocast():
            logits = model(x)
        logits = logits.float()
        meter.update(logits, y, F.cross_entropy(logits, y, reduction="sum"))
    rt.all_reduce_(meter.state_tensors())
    return meter


# ---------------------------------------------------------------------------------------------------------------------
# Using a trained (or pretrained) classifier


def load_classifier(
    weights: str | os.PathLike, model: str | None = None, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ClassifierMeta]:
    """From an mmkit checkpoint (best.pt/last.pt), a registered weights name with `model` (e.g. "imagenet"),
    or a plain state_dict file with `model`."""
    weights_str = str(weights)
    if model is not None and weights_str in get_model_info(model).weights:
        w = get_weights(model, weights_str)
        net = get_model(model, weights=weights_str)
        classes = list(w.categories) if w.categories else [str(i) for i in range(w.num_classes)]
        meta = ClassifierMeta(model, w.num_classes, 3, w.input_size, list(w.mean), list(w.std), classes)
    else:
        path = Path(weights)
        if not path.is_file():
            if model is None and weights_str.isidentifier():
                raise MMKitError(
                    f"--weights {weights_str}: named weights need --model (e.g. --model efficientnet_lite0)"
                )
            raise MMKitError(f"{path}: no such weights file")
        try:
            ck = load_checkpoint(path)
        except MMKitError as e:
            if model is None or "not an mmkit checkpoint" not in str(e):
                raise
            ck = None
        if ck is not None:
            if ck.get("task") != "classify":
                raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not a classifier")
            meta = ClassifierMeta(**ck["meta"])
            net = get_model(meta.model, meta.num_classes, in_chans=meta.in_chans, **meta.model_kwargs)
            try:
                net.load_state_dict(ck["model"])
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0]
                raise MMKitError(
                    f"{path}: weights do not fit {meta.model} as this mmkit builds it ({first})"
                ) from e
        else:  # a plain state_dict for a registered model: ImageNet-style defaults
            net = get_model(model, weights=path)
            info = get_model_info(model)
            n = _num_outputs(net, info.default_input_size)
            meta = ClassifierMeta(
                model,
                n,
                info.in_chans,
                info.default_input_size,
                [0.485, 0.456, 0.406],
                [0.229, 0.224, 0.225],
                [str(i) for i in range(n)],
            )
    return net.to(device).eval(), meta


def _num_outputs(net: nn.Module, size: int) -> int:
    from mmkit.models import classifier_head

    head = classifier_head(net)
    return int(head.out_features) if hasattr(head, "out_features") else int(head.weight.shape[0])


def evaluate(
    weights: str,
    data: str,
    *,
    model: str | None = None,
    split: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "fp32",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy and a confusion-matrix PNG on a split of `data` (default: test, else val)."""
    from mmkit.report import plot_confusion_matrix

    rt = Runtime(select_device(device), precision)
    net, meta = load_classifier(weights, model, rt.device)
    d = load_classification_data(data, seed=0)
    if len(d.classes) != meta.num_classes:
        raise MMKitError(f"{data}: {len(d.classes)} classes, but the model predicts {meta.num_classes}")
    if d.classes != meta.classes:
        log.warning("class names differ from the model's; matching them by index")
    split = split or ("test" if d.test is not None else "val")
    ds = {"train": d.train, "val": d.val, "test": d.test}.get(split)
    if ds is None:
        raise MMKitError(f"{data}: has no {split} split")
    workers = workers if workers is not None else (0 if d.image_size else min(8, os.cpu_count() or 1))
    btf = batch_transform(ds, False, meta.img_size, meta.mean, meta.std, meta.in_chans)
    if btf is None:
        tf = build_transforms(
            False,
            meta.img_size,
            meta.mean,
            meta.std,
            in_channels=d.channels,
            out_channels=meta.in_chans,
            native_size=d.image_size if d.image_size else None,
        )
        ds = TransformedDataset(ds, tf)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_skip_none)
    meter = run_meter(net, loader, rt, meta.num_classes, prepare=btf)
    m = meter.compute()
    out_dir = Path(out) if out else next_run_dir("runs", "classify", "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_confusion_matrix(
        meter.confusion,
        meta.classes,
        out_dir / "confusion_matrix.png",
        title=f"Confusion matrix ({split}, {len(ds)} images)",
    )
    per_class = {c: float(a) for c, a in zip(meta.classes, meter.per_class_accuracy(), strict=True)}
    result = {
        "weights": str(weights),
        "data": str(data),
        "split": split,
        "images": int(meter.confusion.sum()),
        **{k: float(v) for k, v in m.items()},
        "per_class": per_class,
        "confusion_matrix": str(png),
    }
    import json

    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def predict(
    weights: str,
    images: list[str | os.PathLike],
    *,
    model: str | None = None,
    topk: int = 5,
    device: str = "auto",
    batch_size: int = 32,
    save_dir: str | os.PathLike | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Top-k labels for each image. Returns (predictions, failures) where failures are (path, reason)."""
    dev = select_device(device)
    net, meta = load_classifier(weights, model, dev)
    tf = meta.eval_transform(in_channels=3)
    results: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    loaded: list[tuple[str, torch.Tensor]] = []
    for p in images:
        try:
            loaded.append((str(p), read_image(p)))
        except MMKitError as e:
            failures.append((str(p), str(e)))
    k = min(topk, meta.num_classes)
    for i in range(0, len(loaded), batch_size):
        chunk = loaded[i : i + batch_size]
        x = torch.stack([tf(img) for _, img in chunk]).to(dev)
        with torch.no_grad():
            prob = net(x).float().softmax(1)
        p, idx = prob.topk(k, dim=1)
        for (path, _), pr, ix in zip(chunk, p.tolist(), idx.tolist(), strict=True):
            results.append(
                {
                    "path": path,
                    "top": [
                        {"label": meta.classes[j], "index": j, "prob": q} for j, q in zip(ix, pr, strict=True)
                    ],
                }
            )
    if save_dir is not None and results:
        from mmkit.report import plot_predictions

        out = Path(save_dir)
        out.mkdir(parents=True, exist_ok=True)
        pics = [img for _, img in loaded]
        preds = [[(t["label"], t["prob"]) for t in r["top"]] for r in results]
        plot_predictions(pics, preds, out / "predictions.png", titles=[Path(r["path"]).name for r in results])
    return results, failures


def export(
    weights: str,
    fmt: str = "onnx",
    *,
    model: str | None = None,
    out: str | os.PathLike | None = None,
    check: bool = True,
) -> tuple[Path, float | None]:
    """ONNX or TorchScript file next to the weights (or at `out`), checked against PyTorch."""
    from mmkit.export import export_onnx, export_torchscript

    net, meta = load_classifier(weights, model, "cpu")
    example = torch.randn(2, meta.in_chans, meta.img_size, meta.img_size)
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript"}.get(fmt)
    if suffix is None:
        raise MMKitError(f"--format {fmt}: choose onnx or torchscript")
    base = Path(weights) if Path(weights).is_file() else Path(f"{model}-{weights}")
    path = Path(out) if out else base.with_suffix(suffix)
    fn = export_onnx if fmt == "onnx" else export_torchscript
    diff = fn(net, example, path, check=check)
    return path, diff
