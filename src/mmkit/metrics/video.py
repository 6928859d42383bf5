"""Video classification metrics of YouTube-8M: GAP@k, per-class AP and mAP, Hit@1, PERR, and top-1 for single-label
sets.

    meter = VideoMeter(num_classes=3862)                  # k = 20, as in the YouTube-8M challenge
    for logits, labels in batches:                        # labels: multi-hot [N, C] or class indices [N]
        meter.update(logits, labels)                      # tensors on any device, no host sync
    meter.load_states(runtime.gather_objects(meter.state()))   # DDP: every rank's videos, in rank order
    meter.compute()   # {"gap": .., "map": .., "hit_at_one": .., "perr": .., "top1": .. (single-label), "count": ..}
    meter.per_class_ap()                                  # [C] AP of each class (NaN for a class without positives)

All metrics are fractions in [0, 1] (the YouTube-8M convention; `mmkit.metrics.classification` reports
percentages). They depend only on the ranking of each video's scores, so scores may be logits or probabilities.
Labels are multi-hot [N, C]; any value > 0 is a positive (as in the starter code).

Definitions follow the YouTube-8M starter code (github.com/google/youtube-8m, `eval_util.py` and
`average_precision_calculator.py`):
- `gap` = `calculate_gap`: keep the top-k scores of every video (`top_k_by_class`), pool all N·k
  (score, is_positive) pairs of all videos and classes into one list, rank it by score, and take the
  non-interpolated AP of that list, normalised by the total number of positive labels of all videos (also those
  outside any top-k, so a positive ranked below k costs recall): GAP = Σ_i P(i)·rel(i) / #positives.
- `per_class_ap` = the starter code's `MeanAveragePrecisionCalculator` as `eval_util.EvaluationMetrics` feeds it
  (`top_k_by_class`): for each class, the (score, is_positive) pairs of the videos that have it in their top-k,
  ranked by score, non-interpolated AP normalised by ALL the class's positives; `map` is the mean over the classes
  that have a positive (classes without one are left out, as the starter code's `filter_empty_classes`). With
  k >= C every video counts and the AP of a class is scikit-learn's `average_precision_score` of its column.
- `hit_at_one` = `calculate_hit_at_one`: the fraction of videos whose top-scored class is a positive.
- `perr` = `calculate_precision_at_equal_recall_rate`: for each video with n positives, the precision of its
  top-n classes, averaged over all videos (a video with no positive counts 0). The starter code counts a top-n
  class only if its prediction is > 0, which its sigmoid probabilities always are; that test is dropped here
  because scores may be logits.
- `top1`: single-label accuracy (equal to `hit_at_one` when every video has exactly one label).
Ties: the starter code shuffles the pooled list with a fixed seed before a stable sort, so tied scores are
ranked in a fixed pseudo-random order; here ties keep video order (a stable sort). With continuous scores the
two agree exactly.

`VideoMeter` stores, per video, its top-k scores, their classes and whether each is a positive (float32 / int32 /
bool [N, k]), its number of positives and its PERR — plain concatenated tensors, 2k + 2 numbers per video — and the
number of positives of each class [C]: exactly what GAP, per-class AP, Hit@1, PERR and top-1 need. `state()`
returns them (and the summed loss) as CPU tensors in a dict, so a distributed run gathers every rank's dict with
`all_gather_object` and hands the list to `load_states`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["VideoMeter", "gap", "hit_at_one", "mean_ap", "per_class_ap", "perr", "top1"]


def _as_tensor(a, name: str) -> Tensor:
    t = torch.as_tensor(a)
    if t.ndim != 2:
        raise ValueError(f"{name} must be [N, C], got shape {tuple(t.shape)}")
    return t


def _scores_labels(scores, labels) -> tuple[Tensor, Tensor]:
    """Scores as float32 [N, C]; labels as bool [N, C] on the scores' device (class indices [N] become one-hot)."""
    s = _as_tensor(scores, "scores").detach()
    s = s.float() if s.is_floating_point() else s.to(torch.float32)
    y = torch.as_tensor(labels).detach().to(s.device)
    if y.ndim == 1 and not y.dtype.is_floating_point and y.dtype != torch.bool:
        if y.shape[0] != s.shape[0]:
            raise ValueError(f"labels must have N={s.shape[0]} entries, got shape {tuple(y.shape)}")
        y = torch.nn.functional.one_hot(y.long(), s.shape[1]).bool()
    if y.shape != s.shape:
        raise ValueError(
            f"labels must be [N, C] = {tuple(s.shape)} multi-hot or [N] indices, got {tuple(y.shape)}"
        )
    return s, y > 0


def _topk(s: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each video's k highest scores (descending), whether each is a positive, and their classes: float32 [N, k],
    bool [N, k], int64 [N, k]."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    top, idx = s.topk(min(k, s.shape[1]), dim=1, largest=True, sorted=True)
    return top, y.gather(1, idx), idx


def _perr_per_video(s: Tensor, y: Tensor) -> Tensor:
    """Precision of the top-n classes of each video, n = its number of positives (0 when n = 0); float64 [N]."""
    n = y.sum(1)
    ranked = y.gather(1, s.argsort(dim=1, descending=True, stable=True)).cumsum(1)  # positives within top-j
    hits = ranked.gather(1, (n - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    return torch.where(
        n > 0, hits.double() / n.clamp(min=1).double(), torch.zeros_like(hits, dtype=torch.float64)
    )


def _gap_from_topk(top_scores: np.ndarray, top_hits: np.ndarray, num_positives: int) -> float:
    """Non-interpolated AP of the pooled (score, hit) pairs, normalised by all `num_positives`."""
    if num_positives <= 0 or top_scores.size == 0:
        return 0.0
    scores, hits = top_scores.reshape(-1), top_hits.reshape(-1).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    hits = hits[order]
    precision_at_i = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision_at_i * hits).sum() / num_positives)


def _ap_by_class(
    top_scores: np.ndarray, top_hits: np.ndarray, top_classes: np.ndarray, class_positives: np.ndarray
) -> np.ndarray:
    """Each class's non-interpolated AP over the top-k pairs in which it appears, normalised by all its positives
    (`class_positives` [C]); NaN for a class without positives. Ties keep video order, as in `gap`."""
    c = top_classes.reshape(-1).astype(np.int64)
    hits = top_hits.reshape(-1).astype(np.float64)
    order = np.lexsort((-top_scores.reshape(-1), c))  # by class, then by descending score (stable)
    c, hits = c[order], hits[order]
    first = np.searchsorted(c, c)  # where each pair's class starts in the sorted list
    rank = np.arange(c.size) - first + 1
    cum = np.cumsum(hits)
    hits_so_far = cum - cum[first] + hits[first]  # hits of the class down to this pair
    sums = np.bincount(c, weights=hits_so_far / rank * hits, minlength=len(class_positives))
    pos = class_positives.astype(np.float64)
    return np.divide(sums, pos, out=np.full(pos.shape, np.nan), where=pos > 0)


def _mean_of_present(ap: np.ndarray) -> float:
    """The mean AP over the classes that have a positive; NaN when none has."""
    present = ap[~np.isnan(ap)]
    return float(present.mean()) if present.size else math.nan


def gap(scores, labels, k: int = 20) -> float:
    """Global Average Precision over the top-k predictions of every video (the starter code's `calculate_gap`).

    scores [N, C] (numpy or torch, any device); labels multi-hot [N, C]. k larger than C is clamped to C."""
    s, y = _scores_labels(scores, labels)
    top, hits, _ = _topk(s, y, k)
    return _gap_from_topk(top.cpu().numpy(), hits.cpu().numpy(), int(y.sum()))


def per_class_ap(scores, labels, k: int = 20) -> np.ndarray:
    """AP of each class over the videos that rank it in their top-k, normalised by all its positives (the starter
    code's per-class AP); float64 [C], NaN for a class without positives. k >= C: every video counts."""
    s, y = _scores_labels(scores, labels)
    top, hits, classes = _topk(s, y, k)
    return _ap_by_class(top.cpu().numpy(), hits.cpu().numpy(), classes.cpu().numpy(), y.sum(0).cpu().numpy())


def mean_ap(scores, labels, k: int = 20) -> float:
    """mAP: `per_class_ap` averaged over the classes that have a positive (the starter code's MAP); NaN for none."""
    return _mean_of_present(per_class_ap(scores, labels, k))


def hit_at_one(scores, labels) -> float:
    """Fraction of videos whose highest-scored class is a positive label; NaN for no videos."""
    s, y = _scores_labels(scores, labels)
    if s.shape[0] == 0:
        return math.nan
    return float(y.gather(1, s.argmax(1, keepdim=True)).double().mean())


def perr(scores, labels) -> float:
    """Precision at equal recall rate, averaged over videos (a video without labels counts 0); NaN for none."""
    s, y = _scores_labels(scores, labels)
    return float(_perr_per_video(s, y).mean()) if s.shape[0] else math.nan


def top1(scores, targets) -> float:
    """Single-label accuracy: fraction of videos whose highest score is the target class. targets are class
    indices [N] or one-hot [N, C]. NaN for no videos."""
    s = _as_tensor(scores, "scores").detach()
    t = torch.as_tensor(targets).detach().to(s.device)
    if t.ndim == 2:
        t = t.argmax(1)
    if t.shape != s.shape[:1]:
        raise ValueError(
            f"targets must be [N] indices or [N, C] one-hot for N={s.shape[0]}, got {tuple(t.shape)}"
        )
    return float((s.argmax(1) == t.long()).double().mean()) if s.shape[0] else math.nan


def _state_ap(st: dict[str, Tensor]) -> np.ndarray:
    """`per_class_ap` from a `VideoMeter.state()`."""
    return _ap_by_class(
        st["scores"].numpy(), st["hits"].numpy(), st["classes"].numpy(), st["class_pos"].numpy()
    )


class VideoMeter:
    """Accumulates the per-video top-k, number of positives and PERR, and the positives of each class, over
    batches; `compute()` gives GAP@k, mAP, Hit@1, PERR, top-1 (when every video has exactly one label), the loss and
    the count; `per_class_ap()` the AP of each class.

    The state stays on the device of the first batch until `compute()` or `state()`. For DDP, gather `state()`
    from every rank (`all_gather_object`) and pass the list to `load_states` before `compute()`."""

    def __init__(self, num_classes: int, top_k: int = 20) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.num_classes, self.top_k = int(num_classes), int(top_k)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._scores: list[Tensor] = []  # [n, k] float32 per batch
        self._hits: list[Tensor] = []  # [n, k] bool
        self._classes: list[Tensor] = []  # [n, k] int32
        self._class_pos: list[Tensor] = []  # [C] int64 per batch
        self._num_pos: list[Tensor] = []  # [n] int64
        self._perr: list[Tensor] = []  # [n] float64
        self._loss: list[Tensor] = []  # scalar loss sums (float64)
        self._loss_count = 0

    @torch.no_grad()
    def update(self, scores: Tensor, labels: Tensor, loss_sum: Tensor | float | None = None) -> None:
        """Add a batch: scores (logits or probabilities) [N, C]; labels multi-hot [N, C] or class indices [N];
        `loss_sum` is the batch's summed loss (optional)."""
        s, y = _scores_labels(scores, labels)
        if s.shape[1] != self.num_classes:
            raise ValueError(f"scores have {s.shape[1]} classes, the meter expects {self.num_classes}")
        if s.shape[0] == 0:
            return
        top, hits, classes = _topk(s, y, self.top_k)
        self._scores.append(top)
        self._hits.append(hits)
        self._classes.append(classes.to(torch.int32))
        self._class_pos.append(y.sum(0))
        self._num_pos.append(y.sum(1))
        self._perr.append(_perr_per_video(s, y))
        if loss_sum is not None:
            self._loss.append(torch.as_tensor(loss_sum).detach().reshape(()).double())
            self._loss_count += s.shape[0]

    @property
    def count(self) -> int:
        """Number of videos seen."""
        return sum(int(t.shape[0]) for t in self._num_pos)

    def state(self) -> dict[str, Tensor]:
        """The accumulated state as CPU tensors: "scores" float32 [N, k], "hits" bool [N, k] and "classes" int32
        [N, k] (each video's top-k, best first), "num_pos" int64 [N], "perr" float64 [N], "class_pos" int64 [C]
        (positives of each class), "loss" float64 [2] (sum, videos covered)."""
        k = min(self.top_k, self.num_classes)

        def cat(parts: list[Tensor], shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
            return torch.cat([p.cpu() for p in parts]) if parts else torch.zeros(shape, dtype=dtype)

        loss_sum = float(sum(float(t) for t in self._loss))
        return {
            "scores": cat(self._scores, (0, k), torch.float32),
            "hits": cat(self._hits, (0, k), torch.bool),
            "classes": cat(self._classes, (0, k), torch.int32),
            "num_pos": cat(self._num_pos, (0,), torch.int64),
            "perr": cat(self._perr, (0,), torch.float64),
            "class_pos": sum(
                (p.cpu() for p in self._class_pos), torch.zeros(self.num_classes, dtype=torch.int64)
            ),
            "loss": torch.tensor([loss_sum, float(self._loss_count)], dtype=torch.float64),
        }

    def load_states(self, states: list[dict[str, Tensor]]) -> None:
        """Replace the state by the concatenation of `states` (e.g. every rank's `state()`, in rank order)."""
        self.reset()
        for st in states:
            if st["scores"].shape[1] != min(self.top_k, self.num_classes):
                raise ValueError(
                    f"state has top-{st['scores'].shape[1]} scores, the meter keeps {self.top_k}"
                )
            self._scores.append(st["scores"])
            self._hits.append(st["hits"])
            self._classes.append(st["classes"])
            self._class_pos.append(st["class_pos"])
            self._num_pos.append(st["num_pos"])
            self._perr.append(st["perr"])
            self._loss.append(st["loss"][0])
            self._loss_count += int(st["loss"][1])

    def per_class_ap(self) -> np.ndarray:
        """AP of each class (see `per_class_ap`), float64 [C]; NaN for a class without positives."""
        return _state_ap(self.state())

    def compute(self) -> dict[str, float]:
        """{"gap", "map", "hit_at_one", "perr", "count"} plus "top1" when every video has exactly one label and
        "loss" (mean per video) when losses were given. Rates are NaN with no videos (mAP with no positive)."""
        st = self.state()
        n = int(st["num_pos"].shape[0])
        num_pos = st["num_pos"].numpy()
        out: dict[str, float] = {
            "gap": _gap_from_topk(st["scores"].numpy(), st["hits"].numpy(), int(num_pos.sum())),
            "map": _mean_of_present(_state_ap(st)),
            "hit_at_one": float(st["hits"][:, 0].double().mean()) if n else math.nan,
            "perr": float(st["perr"].mean()) if n else math.nan,
            "count": float(n),
        }
        if n and (num_pos == 1).all():
            out["top1"] = out["hit_at_one"]
        loss_sum, loss_n = st["loss"].tolist()
        if loss_n > 0:
            out["loss"] = loss_sum / loss_n
        return out

    def __repr__(self) -> str:
        return f"VideoMeter(num_classes={self.num_classes}, top_k={self.top_k}, count={self.count})"
