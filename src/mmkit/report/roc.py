"""ROC curve plot (true accept rate against false accept rate) for verification, as a PNG.

Drawn headless through matplotlib's Agg ``Figure`` (the same pattern as ``mmkit.report.plots``) and written
atomically. With ``log_far=True`` the FAR axis is logarithmic, the usual view for face verification, where
the interesting operating points are FAR = 1e-3 and below; points at FAR = 0 are then drawn at the axis floor.

Usage::

    from mmkit.metrics.verification import verification_metrics
    from mmkit.report.roc import roc_plot

    m = verification_metrics(distances, same)
    roc_plot(m["fpr"], m["tpr"], "roc.png", f"LFW-style pairs, AUC {m['auc']:.3f}", log_far=True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.report.plots import _new_figure, _save

__all__ = ["roc_plot"]


def roc_plot(
    fpr: Any,
    tpr: Any,
    path: str | os.PathLike,
    title: str = "ROC",
    *,
    log_far: bool = False,
    label: str | None = None,
    mark_far: float | None = None,
) -> Path:
    """Plot TPR (VAL) against FPR (FAR) and save ``path`` (PNG); returns the path.

    ``log_far``: a logarithmic FAR axis up to 1, from 1e-4 or half the smallest non-zero FAR if lower;
    ``mark_far``: a vertical line at that FAR (e.g. 1e-3) and the TPR interpolated there.
    """
    fpr, tpr = np.asarray(fpr, np.float64).reshape(-1), np.asarray(tpr, np.float64).reshape(-1)
    if len(fpr) != len(tpr) or len(fpr) < 2:
        raise ValueError(f"need two or more ROC points with one TPR per FPR, got {len(fpr)} and {len(tpr)}")
    fig = _new_figure(5.6, 5.0)
    ax = fig.subplots()
    if log_far:
        positive = fpr[fpr > 0]
        floor = min(1e-4, float(positive.min()) / 2) if len(positive) else 1e-4
        ax.set_xscale("log")
        ax.set_xlim(floor, 1.0)
        x = np.maximum(fpr, floor)
    else:
        ax.set_xlim(0.0, 1.0)
        ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1, label="chance")
        x = fpr
    ax.plot(x, tpr, linewidth=1.8, label=label or "ROC")
    if mark_far is not None:
        at = float(np.interp(mark_far, fpr, tpr))
        ax.axvline(mark_far, color="tab:red", linestyle="--", linewidth=1)
        ax.plot([mark_far], [at], "o", color="tab:red", label=f"TAR {at:.3f} @ FAR {mark_far:g}")
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)" + (", log scale" if log_far else ""))
    ax.set_ylabel("true accept rate (VAL)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
