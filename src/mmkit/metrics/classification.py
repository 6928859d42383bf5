"""Classification metrics: top-k accuracy and a confusion matrix, accumulated on the device.

All accuracies are percentages in [0, 100]. `ClassificationMeter.update` never synchronises with the host: the
running state is a handful of tensors on the device of the logits, and `state_tensors()` returns exactly those
tensors so a distributed run can `all_reduce(SUM)` them in place before `compute()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ClassificationMeter", "topk_accuracy"]


def _check_inputs(logits: Tensor, targets: Tensor, num_classes: int | None = None) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must be [N] with N={logits.shape[0]}, got shape {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} classes, the meter expects {num_classes}")
    # Range check only where it costs no device synchronisation.
    if targets.device.type == "cpu" and targets.numel():
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= logits.shape[1]:
            raise ValueError(f"targets must lie in [0, {logits.shape[1]}), got values in [{lo}, {hi}]")


def _topk_hits(logits: Tensor, targets: Tensor, ks: Sequence[int]) -> Tensor:
    """Number of samples whose target is among the top-k logits, for each k (clamped to C); int64 [len(ks)]."""
    num_classes = logits.shape[1]
    kk = [min(int(k), num_classes) for k in ks]
    top = logits.detach().topk(max(kk), dim=1, largest=True, sorted=True).indices  # [N, kmax]
    # At most one of the top indices equals the target, so the running sum along k is 0/1: "hit within k".
    hit_within = top.eq(targets.view(-1, 1)).cumsum(dim=1)  # [N, kmax] int64
    return hit_within[:, [k - 1 for k in kk]].sum(dim=0)


def topk_accuracy(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent (0-100) for each k in `ks`; k larger than the class count is clamped.

    Ties between equal logits follow `torch.topk`. Returns NaN for an empty batch.
    """
    _check_inputs(logits, targets)
    if logits.shape[0] == 0:
        return {int(k): math.nan for k in ks}
    hits = _topk_hits(logits, targets.to(logits.device), ks).cpu()
    return {int(k): 100.0 * float(h) / logits.shape[0] for k, h in zip(ks, hits, strict=True)}


class ClassificationMeter:
    """Accumulates top-k hits, a confusion matrix and the loss over batches, with no host sync per batch.

    Accuracies from `compute()` and `per_class_accuracy()` are percentages (0-100). The state lives on `device`
    (or, when `device` is None, on the device of the first logits passed to `update`). For DDP, `all_reduce` each
    tensor of `state_tensors()` with SUM before calling `compute()`.
    """

    def __init__(self, num_classes: int, topk: tuple[int, ...] = (1, 5), device=None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f"topk must be a non-empty tuple of positive ints, got {topk}")
        self.num_classes = int(num_classes)
        self.topk = tuple(int(k) for k in topk)
        self._device_fixed = device is not None
        self._allocate(torch.device(device) if device is not None else torch.device("cpu"))

    def _allocate(self, device: torch.device) -> None:
        c = self.num_classes
        float_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.device = device
        self._confusion = torch.zeros(c, c, dtype=torch.int64, device=device)
        self._hits = torch.zeros(len(self.topk), dtype=torch.int64, device=device)
        self._count = torch.zeros(1, dtype=torch.int64, device=device)
        # [sum of the per-batch loss sums, number of samples those sums cover]
        self._loss = torch.zeros(2, dtype=float_dtype, device=device)

    def reset(self) -> None:
        """Forget everything accumulated so far (keeps the device)."""
        self._allocate(self.device)

    @torch.no_grad()
    def update(self, logits: Tensor, targets: Tensor, loss_sum: Tensor | None = None) -> None:
        """Add a batch: logits [N, C], integer targets [N] in [0, C); `loss_sum` is the batch's summed loss."""
        _check_inputs(logits, targets, self.num_classes)
        if not self._device_fixed:  # first batch: move the (still empty) state to the logits' device
            if logits.device != self.device:
                self._allocate(logits.device)
            self._device_fixed = True
        logits = logits.detach().to(self.device, non_blocking=True)
        targets = targets.to(self.device, dtype=torch.int64, non_blocking=True)
        n = targets.shape[0]
        if n == 0:
            return
        self._hits += _topk_hits(logits, targets, self.topk)
        preds = logits.argmax(dim=1)
        ones = torch.ones(n, dtype=torch.int64, device=self.device)
        self._confusion.view(-1).index_add_(0, targets * self.num_classes + preds, ones)
        self._count += n
        if loss_sum is not None:
            loss = torch.as_tensor(loss_sum).detach().to(self.device, self._loss.dtype).reshape(())
            self._loss[0] += loss
            self._loss[1] += n

    def state_tensors(self) -> list[Tensor]:
        """The state to `all_reduce(SUM)` in place across ranks: confusion, top-k hits, count, loss."""
        return [self._confusion, self._hits, self._count, self._loss]

    @property
    def count(self) -> int:
        """Number of samples seen (syncs with the device)."""
        return int(self._count.item())

    @property
    def confusion(self) -> np.ndarray:
        """Confusion matrix [C, C] int64: rows are the true class, columns the predicted class."""
        return self._confusion.cpu().numpy().astype(np.int64, copy=True)

    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class in percent (0-100), [C]; NaN for classes absent from the targets."""
        cm = self.confusion
        support = cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = 100.0 * np.diag(cm) / support
        acc[support == 0] = np.nan
        return acc.astype(np.float64)

    def compute(self) -> dict[str, float]:
        """Return {"top1", "top5", ... (percent), "mean_class_acc" (percent), "loss" (if any loss was given)}.

        k larger than the class count is clamped to C (so "top5" with 3 classes is 100). With no samples the
        accuracies are NaN.
        """
        n = int(self._count.item())
        hits = self._hits.cpu().tolist()
        out: dict[str, float] = {}
        for k, h in zip(self.topk, hits, strict=True):
            out[f"top{k}"] = 100.0 * h / n if n else math.nan
        per_class = self.per_class_accuracy()
        present = ~np.isnan(per_class)
        out["mean_class_acc"] = float(per_class[present].mean()) if present.any() else math.nan
        loss_sum, loss_n = self._loss.cpu().tolist()
        if loss_n > 0:
            out["loss"] = loss_sum / loss_n
        return out

    def __repr__(self) -> str:
        return f"ClassificationMeter(num_classes={self.num_classes}, topk={self.topk}, device={self.device})"
