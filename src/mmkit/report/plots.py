"""Plots for run reports: training curves, confusion matrices, image grids and top-k predictions.

Figures are drawn with matplotlib's Agg renderer through `Figure` objects (the pattern matplotlib documents for
web servers): no display is needed, pyplot's global figure list is never touched (no leaks, safe in threads),
and the user's own pyplot backend is left alone. Every PNG is written atomically.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from mmkit.errors import MMKitError
from mmkit.report.html import atomic_output, displayable

__all__ = ["plot_confusion_matrix", "plot_curves", "plot_predictions", "save_image_grid"]

log = logging.getLogger(__name__)

_DPI = 100
_MIN_CELL_PX = 64


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_png: Path, **kwargs) -> Path:
    out_png = Path(out_png)
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, facecolor="white", **kwargs)
    log.debug("wrote %s", out_png)
    return out_png


# ---------------------------------------------------------------------------------------------- curves


def _to_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:  # blank or non-numeric cell
        return math.nan


def _read_metrics_csv(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Columns of a metrics.csv as float arrays (blank or non-numeric cells become NaN)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise MMKitError(f"{path}: metrics file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise MMKitError(f"{path}: cannot read metrics CSV ({e})") from None
    if not rows or not any(h.strip() for h in rows[0]):
        raise MMKitError(f"{path}: metrics CSV has no header row")
    header = [h.strip() for h in rows[0]]
    data = np.full((len(rows) - 1, len(header)), np.nan)
    for i, row in enumerate(rows[1:]):
        for j, cell in enumerate(row[: len(header)]):
            data[i, j] = _to_float(cell)
    return header, {h: data[:, j] for j, h in enumerate(header) if h}


def _group_columns(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Losses together, learning rates together, then one group per prefix ("val/top1", "val/top5" -> "val")."""
    groups: dict[str, list[str]] = {}
    for name in names:
        leaf = name.rsplit("/", 1)[-1].lower()
        if leaf.endswith("loss"):
            key = "loss"
        elif leaf == "lr" or leaf.startswith("lr_") or leaf == "learning_rate":
            key = "learning rate"
        elif "/" in name:
            key = name.rsplit("/", 1)[0]
        else:
            key = name
        groups.setdefault(key, []).append(name)
    order = {"loss": 0, "learning rate": 2}
    return sorted(groups.items(), key=lambda kv: order.get(kv[0], 1))


def plot_curves(metrics_csv: Path, out_png: Path) -> Path:
    """Plot every numeric column of a run's metrics.csv against epoch (or row number) and save a PNG.

    One subplot per group: all "*loss" columns together, then one per metric family (columns sharing a prefix,
    e.g. val/top1 and val/top5), and the learning rate on its own (log scale when it spans a decade).
    Blank cells are skipped, so series logged at different rates still draw as lines.
    """
    metrics_csv = Path(metrics_csv)
    header, cols = _read_metrics_csv(metrics_csv)
    x_name = next((h for h in ("epoch", "step", "iteration") if h in cols), None)
    x_all = cols[x_name] if x_name else np.arange(1, len(next(iter(cols.values()), [])) + 1, dtype=float)
    if x_name and np.isnan(x_all).all():
        x_all = np.arange(1, len(x_all) + 1, dtype=float)
    series = [h for h in header if h and h != x_name and np.isfinite(cols[h]).any()]
    if not series:
        raise MMKitError(f"{metrics_csv}: no numeric metric columns to plot")
    groups = _group_columns(series)

    ncols = 1 if len(groups) == 1 else 2
    nrows = math.ceil(len(groups) / ncols)
    fig = _new_figure(6.4 * ncols, 3.9 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (group, names) in zip(axes, groups, strict=False):
        for name in names:
            y = cols[name]
            ok = np.isfinite(y) & np.isfinite(x_all)
            marker = "o" if ok.sum() <= 30 else None
            ax.plot(x_all[ok], y[ok], marker=marker, markersize=3.5, linewidth=1.6, label=name)
        ax.set_title(group if group != "loss" else "losses")
        ax.set_xlabel(x_name or "row")
        ax.set_ylabel(group)
        if group == "learning rate":
            values = np.concatenate([cols[n][np.isfinite(cols[n])] for n in names])
            if (values > 0).all() and values.max() / values.min() >= 10:
                ax.set_yscale("log")
        ax.grid(True, alpha=0.35)
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(f"Training curves — {metrics_csv.parent.name or metrics_csv.name}", fontsize=13)
    fig.tight_layout()
    return _save(fig, out_png)


# ------------------------------------------------------------------------------------ confusion matrix


def _short(label: str, limit: int = 18) -> str:
    label = displayable(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def plot_confusion_matrix(
    cm: np.ndarray,
    classes: list[str],
    out_png: Path,
    *,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Plot a confusion matrix (rows = true class, columns = predicted) as a heat map and save a PNG.

    With `normalize`, each row is divided by its total (the per-class recall is on the diagonal). Cells are
    annotated when there are at most 20 classes; the figure grows with the class count up to 100 classes.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square [C, C], got shape {cm.shape}")
    c = cm.shape[0]
    if len(classes) != c:
        raise ValueError(f"{len(classes)} class names for a {c}x{c} confusion matrix")
    if normalize:
        support = cm.sum(axis=1, keepdims=True).astype(np.float64)
        values = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    else:
        values = cm.astype(np.float64)

    side = float(np.clip(3.0 + 0.2 * c, 6.0, 24.0))
    big = float(np.clip(side * 0.6, 10.0, 16.0))  # font size of title and axis labels
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    cbar = fig.colorbar(
        im, ax=ax, fraction=0.046 if c <= 20 else 0.025, aspect=20 if c <= 20 else 45, pad=0.02
    )
    cbar.set_label("fraction of true class" if normalize else "count", fontsize=big * 0.8)
    cbar.ax.tick_params(labelsize=big * 0.7)

    cell_pt = side * 72 * 0.8 / c  # approximate height of one cell in points
    tick_size = float(np.clip(0.6 * cell_pt, 5.0, 10.0))
    names = [_short(n) for n in classes]
    many = c > 20
    ax.set_xticks(
        range(c),
        labels=names,
        rotation=90 if many else 45,
        ha="center" if many else "right",
        rotation_mode="default" if many else "anchor",
        fontsize=tick_size,
    )
    ax.set_yticks(range(c), labels=names, fontsize=tick_size)
    ax.set_xlabel("Predicted class", fontsize=big)
    ax.set_ylabel("True class", fontsize=big)
    ax.set_title(title, fontsize=big * 1.1)
    if c <= 20:
        threshold = vmax / 2.0
        for i in range(c):
            for j in range(c):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                color = "white" if values[i, j] > threshold else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=max(6.0, 11.0 - 0.25 * c))
    fig.tight_layout()
    return _save(fig, out_png)


# ------------------------------------------------------------------------------------------ image grid


def _to_uint8_nchw(images: Tensor | np.ndarray) -> Tensor:
    """Batch to uint8 [N, 3, H, W]: accepts uint8 or float in [0, 1], with 1 or 3 channels."""
    images = torch.as_tensor(images).detach().cpu()
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, C, H, W] with C in (1, 3), got shape {tuple(images.shape)}")
    if images.dtype.is_floating_point:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    elif images.dtype != torch.uint8:
        images = images.clamp(0, 255).to(torch.uint8)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _upscale(images: Tensor) -> Tensor:
    """Nearest-neighbour upscale (integer factor) so the smaller side is at least 64 px."""
    h, w = images.shape[-2:]
    factor = math.ceil(_MIN_CELL_PX / min(h, w))
    if factor <= 1:
        return images
    return F.interpolate(images, scale_factor=factor, mode="nearest")


def save_image_grid(
    images: Tensor,
    out_png: Path,
    *,
    labels: list[str] | None = None,
    nrow: int = 8,
    title: str | None = None,
) -> Path:
    """Save a grid of images (uint8 [N, C, H, W] or float in [0, 1], C = 1 or 3), `nrow` per row.

    Tiny images are upscaled (nearest) so every cell is at least 64 px; `labels` are written under each cell.
    """
    imgs = _upscale(_to_uint8_nchw(images))
    n, _, h, w = imgs.shape
    if n == 0:
        raise ValueError("save_image_grid needs at least one image")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    cols = max(1, min(int(nrow), n))
    rows = math.ceil(n / cols)
    pad = 4
    cell_w = max(w, 96 if labels else w)  # room for a short label under narrow images
    label_h = 18 if labels else 0
    title_h = 30 if title else 0
    canvas_w = cols * (cell_w + pad) + pad
    canvas_h = rows * (h + label_h + pad) + pad
    canvas = np.full((canvas_h, canvas_w, 3), 255, dtype=np.uint8)
    arr = imgs.permute(0, 2, 3, 1).numpy()
    positions = []
    for i in range(n):
        r, col = divmod(i, cols)
        x0 = pad + col * (cell_w + pad) + (cell_w - w) // 2
        y0 = pad + r * (h + label_h + pad)
        canvas[y0 : y0 + h, x0 : x0 + w] = arr[i]
        positions.append((pad + col * (cell_w + pad) + cell_w / 2, y0 + h))

    fig = _new_figure(canvas_w / _DPI, (canvas_h + title_h) / _DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, canvas_h / (canvas_h + title_h)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    if labels:
        max_chars = max(4, int(cell_w / 6.2))
        for (cx, y), label in zip(positions, labels, strict=True):
            ax.text(cx, y + 2, _short(label, max_chars), ha="center", va="top", fontsize=8)
    if title:
        fig.text(
            0.5, 1.0 - (title_h / 2) / (canvas_h + title_h), title, ha="center", va="center", fontsize=12
        )
    return _save(fig, out_png)


# ----------------------------------------------------------------------------------------- predictions


def _to_hwc(image: np.ndarray | Tensor) -> np.ndarray:
    """One image as HWC (or HW) array for imshow: uint8 or float in [0, 1]; accepts CHW tensors/arrays."""
    if isinstance(image, Tensor):
        arr = image.detach().cpu()
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            arr = arr.permute(1, 2, 0)
        arr = arr.numpy()
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"an image must be HW, HWC or CHW, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        arr = np.clip(arr, 0.0, 1.0)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def plot_predictions(
    images: list[np.ndarray | Tensor],
    predictions: list[list[tuple[str, float]]],
    out_png: Path,
    *,
    titles: list[str] | None = None,
) -> Path:
    """One row per image: the picture on the left, a bar chart of its top-k (label, probability) on the right."""
    if len(images) != len(predictions):
        raise ValueError(f"{len(images)} images but {len(predictions)} prediction lists")
    if not images:
        raise ValueError("plot_predictions needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    k_max = max((len(p) for p in predictions), default=1) or 1
    row_h = max(2.4, 0.32 * k_max + 0.9)
    fig = _new_figure(9.0, row_h * len(images))
    grid = fig.add_gridspec(len(images), 2, width_ratios=(1.0, 1.6), wspace=0.35, hspace=0.35)
    for i, (image, preds) in enumerate(zip(images, predictions, strict=True)):
        ax_img = fig.add_subplot(grid[i, 0])
        arr = _to_hwc(image)
        ax_img.imshow(arr, cmap="gray" if arr.ndim == 2 else None, interpolation="nearest")
        ax_img.set_axis_off()
        if titles:
            ax_img.set_title(titles[i], fontsize=10)

        ax_bar = fig.add_subplot(grid[i, 1])
        labels = [_short(lbl, 28) for lbl, _ in preds]
        probs = [float(p) for _, p in preds]
        ypos = np.arange(len(preds))
        colors = ["#1f6feb"] + ["#8fb8f0"] * max(0, len(preds) - 1)
        ax_bar.barh(ypos, probs, color=colors[: len(preds)], height=0.7)
        ax_bar.set_yticks(ypos, labels=labels, fontsize=9)
        ax_bar.set_xlim(0.0, 1.0)
        ax_bar.set_ylim(k_max - 0.5, -0.5)  # inverted: best prediction on top
        if i == len(images) - 1:
            ax_bar.set_xlabel("probability", fontsize=9)
        ax_bar.grid(True, axis="x", alpha=0.35)
        for y, p in zip(ypos, probs, strict=True):
            inside = p > 0.8  # label inside long bars so it stays within the axes
            ax_bar.text(
                p - 0.02 if inside else p + 0.02,
                y,
                f"{100 * p:.1f}%",
                va="center",
                fontsize=8,
                ha="right" if inside else "left",
                color="white" if inside else "black",
            )
    fig.suptitle("Top predictions", fontsize=12)
    return _save(fig, out_png, bbox_inches="tight")
