"""Image classification as the engine trains it: `ClassifyTask`, its options being `ClassifyOptions`."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmkit.data import ClassificationData, collate_skip_none, load_classification_data
from mmkit.data.transforms import TransformedDataset, build_transforms
from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.metrics.classification import ClassificationMeter
from mmkit.models import get_model, get_model_info, get_weights
from mmkit.tasks.classify.options import AUGMENTS, ClassifyOptions
from mmkit.tasks.classify.predictor import ClassifierMeta, batch_transform, run_meter

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ClassifyTask(ClassifyOptions, Task):
    """Trains a classifier; its fields are the options of `mmkit classify train`."""

    name = "classify"
    monitor = ("val/top1", "max")

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise MMKitError(f"--augment {self.augment}: choose one of {', '.join(AUGMENTS)}")
        if not self.data:
            raise MMKitError("--data is required (a builtin name such as digits, or a folder)")
        self.model_kwargs = {
            **({"width": self.width} if self.width != 1.0 else {}),
            **(self.model_kwargs or {}),
        }
        self.last_meter: ClassificationMeter | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        self.dataset: ClassificationData = load_classification_data(self.data, self.val_split, seed=cfg.seed)
        d = self.dataset
        info = get_model_info(self.model)
        named = self.weights in info.weights if self.weights else False
        w = get_weights(self.model, self.weights) if named else None
        in_chans = 3 if w is not None else d.channels
        img = self.img_size or (w.input_size if w else None) or d.image_size or info.default_input_size
        mean, std = (list(w.mean), list(w.std)) if w else (list(d.mean), list(d.std))
        self.net = get_model(
            self.model,
            len(d.classes),
            weights=self.weights,
            in_chans=in_chans,
            freeze_backbone=self.freeze_backbone,
            **self.model_kwargs,
        )
        self.meta = ClassifierMeta(
            self.model,
            len(d.classes),
            in_chans,
            img,
            mean,
            std,
            list(d.classes),
            d.image_size,
            self.data,
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
                self.model,
                img,
                f", {len(d.skipped)} unreadable files skipped" if d.skipped else "",
            )

    def collate_fn(self):
        return collate_skip_none

    def default_workers(self) -> int:
        return 0 if self.dataset.image_size else min(8, os.cpu_count() or 1)

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
        meter = run_meter(
            model, loader, rt, len(self.dataset.classes), prepare=lambda x: self.prepare(x, False)
        )
        self.last_meter = meter
        m = meter.compute()
        return {f"val/{k}": v for k, v in m.items()}

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section, plot_confusion_matrix

        if self.last_meter is None:
            return []
        classes = self.dataset.classes
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
