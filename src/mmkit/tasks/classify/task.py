"""Image classification as the engine trains it: `ClassifyTask`, its options being `ClassifyOptions`.

The loss is the cross-entropy on the logits, or with `--loss nll` the negative log-likelihood of a LogSoftmax output
layer (a forward hook on the network, so checkpoints hold the same weights and keep giving logits to eval, predict
and export). With `--teacher` it is (1 − W)·that + W·T²·KL(teacher ‖ student) at temperature T, the teacher a
frozen classify checkpoint (`mmkit.losses.classification`).
"""

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
from mmkit.losses.classification import distillation_loss, nll_loss
from mmkit.metrics.classification import ClassificationMeter
from mmkit.models import get_model, get_model_info, get_weights
from mmkit.tasks.classify.options import AUGMENTS, LOSSES, ClassifyOptions
from mmkit.tasks.classify.predictor import ClassifierMeta, ClassifierPredictor, batch_transform, run_meter

log = logging.getLogger(__name__)


def _log_softmax_output(module, inputs, logits: torch.Tensor) -> torch.Tensor:
    """The forward hook that gives a network a LogSoftmax output layer (`--loss nll`)."""
    return F.log_softmax(logits, 1)


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
        if self.criterion not in LOSSES:
            raise MMKitError(f"--loss {self.criterion}: choose one of {', '.join(LOSSES)}")
        self._check_distillation()
        self.model_kwargs = {
            **({"width": self.width} if self.width != 1.0 else {}),
            **(self.model_kwargs or {}),
        }
        self.last_meter: ClassificationMeter | None = None

    def _check_distillation(self) -> None:
        """--teacher given as an existing file, its weight and temperature in range; theirs not given without it."""
        if self.teacher is None:
            # the options' defaults, class attributes of the dataclass
            defaults = ClassifyOptions.kd_weight, ClassifyOptions.kd_temperature
            if (self.kd_weight, self.kd_temperature) != defaults:
                raise MMKitError("--kd-weight and --kd-temperature need --teacher (a classify checkpoint)")
            return
        if not Path(self.teacher).is_file():
            raise MMKitError(f"--teacher {self.teacher}: no such checkpoint file")
        if not 0 <= self.kd_weight <= 1:
            raise MMKitError(f"--kd-weight {self.kd_weight}: must be between 0 and 1")
        if self.kd_temperature <= 0:
            raise MMKitError(f"--kd-temperature {self.kd_temperature}: must be positive")

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
        if self.criterion == "nll":
            self.net.register_forward_hook(_log_softmax_output)
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
        self.teacher_net = self._load_teacher(rt.device) if self.teacher else None
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

    def _load_teacher(self, device: torch.device) -> torch.nn.Module:
        """The --teacher checkpoint, frozen in eval mode on `device`; it must predict the data's classes."""
        p = ClassifierPredictor.load(self.teacher, device=device)
        if p.meta.classes != self.meta.classes:
            raise MMKitError(
                f"--teacher {self.teacher}: its {p.meta.num_classes} classes ({', '.join(p.meta.classes[:4])}, ...) "
                f"are not {self.data}'s {len(self.meta.classes)} ({', '.join(self.meta.classes[:4])}, ...)"
            )
        self.teacher_meta = p.meta
        return p.net.requires_grad_(False)

    def teacher_view(self, x: torch.Tensor) -> torch.Tensor:
        """The student's batch (augmented, normalized) as the teacher takes it: its normalization, channels, size."""
        s, t = self.meta, self.teacher_meta
        if (s.in_chans, s.img_size, s.mean, s.std) == (t.in_chans, t.img_size, t.mean, t.std):
            return x

        def stats(m: ClassifierMeta) -> tuple[torch.Tensor, torch.Tensor]:
            return tuple(torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (m.mean, m.std))

        (s_mean, s_std), (t_mean, t_std) = stats(s), stats(t)
        x = x.float() * s_std + s_mean
        if t.in_chans != s.in_chans:  # grey, copied to the teacher's channels
            x = x.mean(1, keepdim=True).expand(-1, t.in_chans, -1, -1)
        if t.img_size != s.img_size:
            x = F.interpolate(x, size=(t.img_size, t.img_size), mode="bilinear", align_corners=False)
        return (x - t_mean) / t_std

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
        x = self.prepare(x, train=True)
        out = model(x)  # logits, or log-probabilities with --loss nll
        if self.criterion == "nll":
            loss = nll_loss(out, y, self.label_smoothing)
        else:
            loss = F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
        logs = {"top1": (out.argmax(1) == y).float().mean() * 100}
        if self.teacher_net is not None:
            with torch.no_grad():
                teacher = self.teacher_net(self.teacher_view(x))
            kd = distillation_loss(out, teacher, self.kd_temperature)
            loss = (1 - self.kd_weight) * loss + self.kd_weight * kd
            logs["kd"] = kd.detach()
        return loss, logs

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
