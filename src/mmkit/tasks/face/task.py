"""Face recognition as the engine trains it: `FaceTask`, an embedding (FaceNet) trained with the triplet loss and
online mining over P people x K faces, or an ArcFace / softmax head, validated with the LFW protocol on held-out
people. Its options are `FaceOptions`.

    task = FaceTask("synthetic-faces", "facenet-light")          # then Trainer(task, cfg).fit()
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mmkit.data.faces import FaceData, load_face_data
from mmkit.data.samplers import PKSampler
from mmkit.data.transforms import BatchTransform
from mmkit.engine import Runtime, Task
from mmkit.engine.optim import build_optimizer, decay_groups
from mmkit.errors import MMKitError
from mmkit.losses.metric import ArcFaceHead, SoftmaxHead, TripletLoss
from mmkit.models import get_model, get_model_info, get_weights
from mmkit.tasks.face.options import LOSSES, MINING, FaceOptions
from mmkit.tasks.face.predictor import DEFAULT_MEAN, DEFAULT_STD, FaceMeta, flip_embed, pair_distances

log = logging.getLogger(__name__)


class _Indexed(Dataset):
    """(uint8 image, label) for training, (uint8 image, index) for validation: evaluation reassembles the
    embeddings in order from every rank's share."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], (self.labels[i] if self.labels is not None else i)


@dataclass(eq=False)
class FaceTask(FaceOptions, Task):
    """Trains a face embedder; its fields are the options of `mmkit face train`."""

    name = "face"
    monitor = ("val/acc", "max")

    def __post_init__(self) -> None:
        if not self.data:
            raise MMKitError("--data is required (synthetic-faces, or a folder of person folders)")
        if self.loss_type not in LOSSES:
            raise MMKitError(f"--loss {self.loss_type}: choose one of {', '.join(LOSSES)}")
        if self.mining not in MINING:
            raise MMKitError(f"--mining {self.mining}: choose one of {', '.join(MINING)}")
        if self.images_per_person < 2:
            raise MMKitError(f"--images-per-person {self.images_per_person}: triplets need at least 2")
        self.data = str(self.data)
        self.model_kwargs = dict(self.model_kwargs or {})
        self.last_eval: dict[str, Any] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        info = get_model_info(self.model)
        if info.task != "face":
            raise MMKitError(f"--model {self.model}: a {info.task} model, not a face embedder")
        named = self.weights is not None and self.weights in info.weights
        w = get_weights(self.model, self.weights) if named else None
        img = self.img_size or (w.input_size if w else info.default_input_size)
        mean, std = (list(w.mean), list(w.std)) if w else (DEFAULT_MEAN, DEFAULT_STD)
        self.dataset: FaceData = load_face_data(self.data, img, seed=cfg.seed)
        kwargs = {"embedding_dim": self.embedding_dim, **self.model_kwargs}
        self.net = get_model(self.model, weights=self.weights, **kwargs)
        self.meta = FaceMeta(
            self.model,
            self.embedding_dim,
            img,
            mean,
            std,
            flip_test=self.flip_test,
            data=self.data,
            model_kwargs=kwargs,
        )
        n_people = len(self.dataset.train_people)
        self.head: nn.Module | None = None
        if self.loss_type == "triplet":
            self.criterion = TripletLoss(
                margin=0.2 if self.margin is None else self.margin, mining=self.mining
            )
        elif self.loss_type == "arcface":
            m = 0.5 if self.margin is None else self.margin
            self.head = ArcFaceHead(self.embedding_dim, n_people, m=m)
        else:
            self.head = SoftmaxHead(self.embedding_dim, n_people)
        pad = max(1, img // 16) if self.augment else 0
        self.train_tf = BatchTransform(True, mean, std, out_channels=3, pad=pad, hflip=self.augment)
        self.val_tf = BatchTransform(False, mean, std, out_channels=3)
        self.train_ds = _Indexed(self.dataset.train_images, self.dataset.train_labels)
        self.val_ds = _Indexed(self.dataset.val_images, None)
        if rt.is_main:
            log.info("%s; %s at %dpx, %s loss", self.dataset.summary(), self.model, img, self.loss_type)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.net} if self.head is None else {"model": self.net, "head": self.head}

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        groups = decay_groups(self.net, cfg.weight_decay)
        if self.head is not None:  # one optimizer: the class weights learn with the embedding
            groups += decay_groups(self.head, cfg.weight_decay)
        return {"model": build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.weight_decay, cfg.momentum)}

    def train_batch_sampler(self, batch_size: int, seed: int, rank: int, world: int):
        if self.loss_type != "triplet":
            return None
        k = self.images_per_person
        if batch_size % k:
            raise MMKitError(f"--batch-size {batch_size}: must be a multiple of --images-per-person {k}")
        n = len(self.dataset.train_labels)
        return PKSampler(
            self.dataset.train_labels,
            batch_size // k,
            k,
            seed=seed,
            rank=rank,
            world=world,
            batches_per_epoch=max(1, n // batch_size),  # an epoch sees about every face once
        )

    def loss(self, model, batch):
        x, y = batch
        emb = model(self.train_tf(x))
        if self.head is None:
            loss, stats = self.criterion(emb, y)
            return loss, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in stats.items()}
        logits = self.head(emb, y)
        return F.cross_entropy(logits, y), {"top1": (logits.argmax(1) == y).float().mean() * 100}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        # scikit-learn: loaded when first validating
        from mmkit.metrics.verification import verification_metrics

        parts = []
        for x, idx in loader:
            x, idx = rt.move((x, idx))
            with rt.autocast():
                emb = flip_embed(model, self.val_tf(x), self.meta.flip_test)
            parts.append((idx.cpu(), emb.float().cpu()))
        gathered = rt.gather_objects(parts)
        idx = torch.cat([i for p in gathered for i, _ in p])
        emb = torch.cat([e for p in gathered for _, e in p])
        ordered = torch.empty(len(self.dataset.val_images), emb.shape[1])
        ordered[idx] = emb
        pairs = self.dataset.val_pairs
        m = verification_metrics(pair_distances(ordered, pairs), pairs.same.numpy(), pairs.fold.numpy())
        self.last_eval = m
        self.meta.threshold = float(m["threshold"])
        return {
            "val/acc": 100 * float(m["accuracy"]),
            "val/val_far": 100 * float(m["val"]),
            "val/auc": float(m["auc"]),
            "val/threshold": float(m["threshold"]),
        }

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        # matplotlib: loaded when the report is written
        from mmkit.report import Section
        from mmkit.report.roc import roc_plot

        if not self.last_eval:
            return []
        m = self.last_eval
        png = roc_plot(m["fpr"], m["tpr"], run_dir / "roc.png", title="Validation pairs (last epoch)")
        rows = [
            ["10-fold accuracy %", f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f}"],
            ["VAL @ FAR=1e-3 %", f"{100 * m['val']:.2f}"],
            ["AUC", f"{m['auc']:.4f}"],
            ["threshold (squared L2)", f"{m['threshold']:.3f}"],
        ]
        return [
            Section("Verification ROC", images=[(png, "held-out people, LFW protocol")]),
            Section("Verification (validation pairs, last epoch)", table=(["metric", "value"], rows)),
        ]


def face_task(**task_args: Any) -> FaceTask:
    """`FaceTask` from a run's task_args (`train` and `train --resume`): runs written before the options were
    declared once stored the loss as `loss`."""
    if "loss" in task_args:
        task_args["loss_type"] = task_args.pop("loss")
    return FaceTask(**task_args)
