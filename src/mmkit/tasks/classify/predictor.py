"""Using a trained (or pretrained) classifier: `ClassifierPredictor` loads it, predicts, evaluates and exports."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data import collate_skip_none, load_classification_data
from mmkit.data.classification import TensorImageDataset
from mmkit.data.formats.images import read_images
from mmkit.data.transforms import BatchTransform, TransformedDataset, build_transforms, crop_padding
from mmkit.engine import Runtime
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.metrics.classification import ClassificationMeter
from mmkit.models import classifier_head, get_model, get_model_info, get_weights
from mmkit.tasks.predictor import Predictor

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

    def eval_transform(self, in_channels: int, any_size: bool = True):
        """The evaluation transform of user images: to the training size whatever their size (`any_size=False`:
        images known to be at the data's native size, as in `evaluate`)."""
        return build_transforms(
            False,
            self.img_size,
            self.mean,
            self.std,
            in_channels=in_channels,
            out_channels=self.in_chans,
            native_size=self.native_size,
            any_size=any_size,
        )


# ---------------------------------------------------------------------------------------------------------------------
# Using a trained (or pretrained) classifier


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


class ClassifierPredictor(Predictor):
    task = "classify"
    meta: ClassifierMeta

    @staticmethod
    def network(meta: ClassifierMeta) -> nn.Module:
        return get_model(meta.model, meta.num_classes, in_chans=meta.in_chans, **meta.model_kwargs)

    @classmethod
    def from_named(cls, model, weights, device) -> ClassifierPredictor:
        w = get_weights(model, weights)
        net = get_model(model, weights=weights)
        classes = list(w.categories) if w.categories else [str(i) for i in range(w.num_classes)]
        meta = ClassifierMeta(model, w.num_classes, 3, w.input_size, list(w.mean), list(w.std), classes)
        return cls(net, meta, device, f"{model}:{weights}")

    @classmethod
    def from_state_dict(cls, model: str, path: Path, device) -> ClassifierPredictor:
        """A plain state_dict for a registered model, with ImageNet-style defaults."""
        net = get_model(model, weights=path)
        info = get_model_info(model)
        head = classifier_head(net)
        n = int(head.out_features) if hasattr(head, "out_features") else int(head.weight.shape[0])
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        meta = ClassifierMeta(
            model, n, info.in_chans, info.default_input_size, mean, std, [str(i) for i in range(n)]
        )
        return cls(net, meta, device, str(path))

    def evaluate(
        self,
        data: str,
        *,
        split: str | None = None,
        batch_size: int = 256,
        precision: str = "fp32",
        out: str | os.PathLike | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Top-1/top-5, per-class accuracy and a confusion-matrix PNG on a split of `data` (default: test, else val)."""
        from mmkit.report import plot_confusion_matrix

        rt = Runtime(self.device, precision)
        net, meta = self.net, self.meta
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
        out_dir = self.eval_dir(out)
        png = plot_confusion_matrix(
            meter.confusion,
            meta.classes,
            out_dir / "confusion_matrix.png",
            title=f"Confusion matrix ({split}, {len(ds)} images)",
        )
        per_class = {c: float(a) for c, a in zip(meta.classes, meter.per_class_accuracy(), strict=True)}
        return self.write_metrics(
            out_dir,
            data,
            split=split,
            images=int(meter.confusion.sum()),
            **{k: float(v) for k, v in m.items()},
            per_class=per_class,
            confusion_matrix=str(png),
        )

    def predict(
        self,
        images: list[str | os.PathLike],
        *,
        topk: int = 5,
        batch_size: int = 32,
        save_dir: str | os.PathLike | None = None,
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Top-k labels for each image. Returns (predictions, failures) where failures are (path, reason)."""
        dev, net, meta = self.device, self.net, self.meta
        tf = meta.eval_transform(in_channels=3)
        results: list[dict[str, Any]] = []
        failures: list[tuple[str, str]] = []
        loaded = list(read_images(images, failures))
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
                            {"label": meta.classes[j], "index": j, "prob": q}
                            for j, q in zip(ix, pr, strict=True)
                        ],
                    }
                )
        if save_dir is not None and results:
            from mmkit.report import plot_predictions

            out = Path(save_dir)
            out.mkdir(parents=True, exist_ok=True)
            pics = [img for _, img in loaded]
            preds = [[(t["label"], t["prob"]) for t in r["top"]] for r in results]
            plot_predictions(
                pics, preds, out / "predictions.png", titles=[Path(r["path"]).name for r in results]
            )
        return results, failures

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """The classifier: normalized images [batch, in_chans, img_size, img_size] -> logits."""
        meta = self.meta
        example = torch.randn(2, meta.in_chans, meta.img_size, meta.img_size)
        return [Graph("classifier", net, (example,), ["input"], ["output"])]


PREDICTOR = ClassifierPredictor


# The task's functions, as the CLI and scripts call them: a predictor loaded from `weights` (with `model` for named
# weights or a plain state_dict), then its method.


def load_classifier(weights, model: str | None = None, device="cpu") -> tuple[nn.Module, ClassifierMeta]:
    p = ClassifierPredictor.load(weights, model=model, device=device)
    return p.net, p.meta


def evaluate(
    weights, data: str, *, model: str | None = None, device: str = "auto", **kw: Any
) -> dict[str, Any]:
    return ClassifierPredictor.load(weights, model=model, device=device).evaluate(data, **kw)


def predict(weights, images, *, model: str | None = None, device: str = "auto", **kw: Any):
    return ClassifierPredictor.load(weights, model=model, device=device).predict(images, **kw)


def export(weights, fmt: str = "onnx", *, model: str | None = None, **kw: Any) -> tuple[Path, float | None]:
    """The classifier as ONNX or TorchScript (`kw`: out, check): its path and max abs difference from PyTorch."""
    (file,) = ClassifierPredictor.load(weights, model=model, device="cpu").export(fmt, **kw)
    return file.path, file.max_abs_diff
