"""Face verification metrics on pair distances, as in the LFW protocol (and FaceNet's evaluation of it).

A pair is predicted "same" when its distance is below a threshold (``d < t``). Over ``n_folds`` folds (LFW's
10 folds of 300 matched + 300 mismatched pairs, or contiguous equal blocks when no fold ids are given):

- **accuracy**: for each fold, the threshold that maximises accuracy on the *other* folds (over a grid of
  thresholds) is applied to the fold; mean and std over folds. Among equally good thresholds we take the
  middle of the first run of best grid points (FaceNet takes the first), so a gap between the classes is
  split in the middle rather than at its edge.
- **VAL@FAR**: the validation rate (true accept rate) at the threshold where the false accept rate on the
  other folds equals ``far_target`` (1e-3). As facenet / facenet-pytorch do, FAR is computed at every grid
  threshold on the other folds, and the threshold is interpolated linearly in FAR between the bracketing grid
  points (the last with FAR below the target, the first above it); this is what their
  ``scipy.interpolate.interp1d(far, thresholds, kind="slinear")(far_target)`` computes (newer scipy refuses
  ``slinear`` on the repeated FAR values a grid always has; ``kind="linear"`` gives the same line). On an
  exact hit we take the largest threshold with that FAR. When FAR never reaches the target the threshold is
  0 (nothing accepted), as theirs. VAL and FAR at that threshold are then measured on the held-out fold;
  mean (and std for VAL) over folds.
- **best threshold**: the accuracy-maximising threshold on all pairs (for applications), and its accuracy.
- **ROC / AUC / EER** over all pairs with ``sklearn.metrics.roc_curve`` and ``auc`` (score = -distance).

The default grid spans the observed distances with 4001 points (facenet uses ``arange(0, 4, 0.01)`` for
accuracy and ``arange(0, 4, 0.001)`` for VAL, squared distances of unit embeddings); pass ``thresholds`` to
use another. Counts come from sorted distances (``searchsorted``), so a fine grid costs little.

Usage::

    from mmkit.metrics.verification import verification_metrics

    m = verification_metrics(distances, same)  # folds: 10 contiguous blocks, like LFW's pairs.txt order
    m = verification_metrics(distances, same, folds=np.array([p.fold for p in pairs]))
    print(m["accuracy"], m["accuracy_std"], m["val"], m["far"], m["auc"], m["threshold"])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

__all__ = ["verification_metrics"]


def _as_array(x: Any, dtype: type) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def _counts(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """(true accepts, false accepts, matched, mismatched) at each threshold, for the rule ``d < t``."""
    pos, neg = np.sort(distances[same]), np.sort(distances[~same])
    return pos.searchsorted(thresholds, "left"), neg.searchsorted(thresholds, "left"), len(pos), len(neg)


def _accuracy(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    ta, fa, _, n_neg = _counts(distances, same, thresholds)
    return (ta + n_neg - fa) / len(distances)


def _best(accuracy: np.ndarray) -> int:
    """Index of the middle of the first run of grid points with the highest accuracy."""
    first = int(np.argmax(accuracy))
    below = np.flatnonzero(accuracy[first:] < accuracy[first])
    last = first + (int(below[0]) - 1 if len(below) else len(accuracy) - 1 - first)
    return (first + last) // 2


def _val_far(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    accept = distances < threshold
    return float(accept[same].mean()), float(accept[~same].mean())


def _far_threshold(far: np.ndarray, thresholds: np.ndarray, target: float) -> float:
    """Threshold where FAR (non-decreasing over ``thresholds``) reaches ``target``: linear between the last
    grid point below the target and the first above it; on an exact hit, the largest threshold with it."""
    if far.max() < target:
        return 0.0
    lo = int(np.searchsorted(far, target, "right")) - 1  # last grid point with FAR <= target
    if lo < 0:
        return float(thresholds[0])
    if far[lo] == target:
        return float(thresholds[lo])
    hi = lo + 1
    return float(
        thresholds[lo] + (target - far[lo]) * (thresholds[hi] - thresholds[lo]) / (far[hi] - far[lo])
    )


def verification_metrics(
    distances: Any,
    same: Any,
    folds: Any = None,
    n_folds: int = 10,
    far_target: float = 1e-3,
    thresholds: Any = 4001,
) -> dict[str, Any]:
    """LFW-protocol verification metrics of pair ``distances`` (smaller = more alike) and ``same`` labels.

    ``folds``: one fold id per pair; without it, ``n_folds`` contiguous, equal blocks (sklearn KFold order).
    ``thresholds``: a number of grid points over the observed distance range, or the grid itself.
    Returns accuracy (mean over folds), accuracy_std, fold_accuracy, fold_thresholds (one per fold), val,
    val_std, far (VAL@FAR), far_target, threshold and best_accuracy (the best threshold on all pairs), auc,
    eer, the ROC curve fpr, tpr, roc_thresholds (arrays), n_pairs, n_same, n_folds.
    """
    d = _as_array(distances, np.float64)
    y = _as_array(same, bool)
    if len(d) != len(y) or len(d) == 0:
        raise ValueError(f"need one label per distance, got {len(d)} distances and {len(y)} labels")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite")
    if folds is None:
        fold = np.repeat(np.arange(n_folds), [len(b) for b in np.array_split(np.arange(len(d)), n_folds)])
    else:
        fold = _as_array(folds, np.int64)
        if len(fold) != len(d):
            raise ValueError(f"need one fold id per pair, got {len(fold)} for {len(d)} pairs")
    fold_ids = np.unique(fold)
    if len(fold_ids) < 2:
        raise ValueError("need at least 2 folds")
    for f in fold_ids:
        if y[fold == f].all() or not y[fold == f].any():
            raise ValueError(f"fold {f} needs both matched and mismatched pairs")
    if np.ndim(thresholds) == 0:
        lo, hi = float(d.min()), float(d.max())
        pad = max(hi - lo, abs(hi), 1e-12) / (int(thresholds) - 1)
        grid = np.linspace(lo - pad, hi + pad, int(thresholds))  # the first accepts nothing, the last all
    else:
        grid = np.sort(np.asarray(thresholds, np.float64).reshape(-1))

    accuracy, chosen, val, far = [], [], [], []
    for f in fold_ids:
        train, test = fold != f, fold == f
        t = float(grid[_best(_accuracy(d[train], y[train], grid))])
        chosen.append(t)
        accuracy.append(float(((d[test] < t) == y[test]).mean()))
        ta, fa, n_pos, n_neg = _counts(d[train], y[train], grid)
        t_far = _far_threshold(fa / n_neg, grid, far_target)
        v, a = _val_far(d[test], y[test], t_far)
        val.append(v)
        far.append(a)
    all_accuracy = _accuracy(d, y, grid)
    best = _best(all_accuracy)
    fpr, tpr, roc_t = roc_curve(y, -d)
    miss = 1 - tpr
    k = int(np.argmax(fpr >= miss))  # first ROC point past the equal-error crossing
    if k == 0:
        eer = float(fpr[0])
    else:
        g0, g1 = fpr[k - 1] - miss[k - 1], fpr[k] - miss[k]
        w = g0 / (g0 - g1) if g0 != g1 else 0.0
        eer = float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))
    return {
        "accuracy": float(np.mean(accuracy)),
        "accuracy_std": float(np.std(accuracy)),
        "fold_accuracy": accuracy,
        "fold_thresholds": chosen,
        "val": float(np.mean(val)),
        "val_std": float(np.std(val)),
        "far": float(np.mean(far)),
        "far_target": far_target,
        "threshold": float(grid[best]),
        "best_accuracy": float(all_accuracy[best]),
        "auc": float(auc(fpr, tpr)),
        "eer": eer,
        "fpr": fpr,
        "tpr": tpr,
        "roc_thresholds": -roc_t,
        "n_pairs": len(d),
        "n_same": int(y.sum()),
        "n_folds": len(fold_ids),
    }
