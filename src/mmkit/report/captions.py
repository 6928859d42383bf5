"""Pictures of captions: an image with its caption, and for attention models where each word looked (Xu et al.'s
figure: one panel per word, the attention map upsampled and laid over the image)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import torch
import torch.nn.functional as F

from mmkit.report.plots import _new_figure, _save

_PANELS_PER_ROW = 5


def draw_caption(
    image: torch.Tensor,
    caption: str,
    words: list[str],
    attention: torch.Tensor | None,
    grid: tuple[int, int] | None,
    out_dir: str | Path,
    stem: str,
) -> Path:
    """Write ``out_dir/<stem>.caption.png``: uint8 [3, H, W] ``image`` under its caption, followed, when
    ``attention`` [len(words), L] is given with its feature ``grid`` (h, w), by one panel per word."""
    img = image.permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    panels = len(words) if attention is not None and grid is not None else 0
    rows = 1 + math.ceil(panels / _PANELS_PER_ROW)
    cols = _PANELS_PER_ROW if panels else 1
    size = 2.0
    fig = _new_figure(size * cols, size * rows + 0.4)
    top = fig.add_subplot(rows, 1, 1)
    top.imshow(img)
    top.set_title("\n".join(textwrap.wrap(caption, 60)), fontsize=9)
    top.axis("off")
    if panels:
        maps = attention[:, : grid[0] * grid[1]].float().reshape(-1, 1, grid[0], grid[1])
        maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()
        for k, word in enumerate(words):
            ax = fig.add_subplot(rows, cols, cols + k + 1)
            ax.imshow(img)
            a = maps[k]
            ax.imshow(
                a / max(float(a.max()), 1e-8), cmap="gray", alpha=0.6, extent=(0, w, h, 0), vmin=0, vmax=1
            )
            ax.set_title(word, fontsize=8)
            ax.axis("off")
    out = Path(out_dir) / f"{stem}.caption.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, out)
