"""Synthetic image-matting composites with an exact alpha: soft, hairy and semi-transparent foregrounds over photos.

An item is ``I = αF + (1 − α)B`` (rounded to uint8), built on access from the seed (``seed``, split, i), so nothing
is stored and item i is the same every epoch and in every worker (as ``photo_pairs.TrainPairs``):

- α, the alpha matte, float32 [1, H, W], quantized to k/255 (so it survives an 8-bit PNG): a base element, an
  MNIST digit (its anti-aliased strokes scaled up, with a gain so the core is opaque) or a shape (ellipse, polygon
  or irregular blob, drawn at 4x and box-filtered down), sometimes Gaussian-blurred (soft, defocused edges); plus,
  at random, thin "hair" strokes (quadratic curves 0.25–1 px wide, drawn at 4x, growing out of the base) and a
  semi-transparent blob of constant opacity 0.3–0.7 (glass, smoke). Elements combine as ``1 − Π(1 − α_k)``.
- F, the foreground colours, uint8 [3, H, W] over the whole image: a random colour field (smooth noise, gradient or
  stripes, ``drawing.background``), or 25% of the time a crop of a photo.
- B, the background, uint8 [3, H, W]: a crop of scikit-image's CC0 photos (``photo_pairs.photo_regions``). The train
  split crops only the photos' train regions (randomly flipped), the test split only their test regions, so no test
  background pixel is ever seen in training; digits come from ``digit_pool("train")`` and ``digit_pool("val")``.
- the trimap, uint8 [1, H, W] in {0, 128, 255}: ``make_trimap`` (unknown = dilate(α > 0) − erode(α ≥ 1) by a disk,
  as Deep Image Matting makes its training trimaps), of a random radius in training and a fixed one in test.

Usage::

    from mmkit.data.synthetic_matting import matting_splits

    train, test = matting_splits(n_train=2000, n_test=200, seed=0)
    image, alpha, trimap, fg, bg = train[0]     # uint8 [3,H,W], float [1,H,W], uint8 [1,H,W], uint8, uint8
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage
from torch.utils.data import Dataset

from mmkit.data.drawing import background, digit_pool, mnist_digits
from mmkit.data.output_folder import staged_output
from mmkit.data.photo_pairs import photo_regions
from mmkit.errors import MMKitError

__all__ = [
    "SPLITS",
    "SyntheticMatting",
    "composite",
    "make_alpha",
    "make_trimap",
    "matting_splits",
    "write_synthetic_matting",
]

SPLITS = {"train": 0, "test": 1}  # split -> seed stream
TRAIN_SIZE = 64  # train items are TRAIN_SIZE square, so they stack into batches
TEST_SIZE = (64, 96)  # test items have a random height and width in this range
TRAIN_TRIMAP_WIDTHS = (1, 6)  # disk radius of the unknown band, drawn per item
TEST_TRIMAP_WIDTH = 3
TEST_SEED = 20250101  # the test split's seed, whatever the training seed
_SS = 4  # supersampling of drawn shapes and strokes: drawn at 4x, box-filtered down


# ---------------------------------------------------------------------------------------------------------------
# Trimaps and compositing


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def make_trimap(
    alpha: np.ndarray | torch.Tensor,
    width: int | np.random.Generator,
    widths: tuple[int, int] = TRAIN_TRIMAP_WIDTHS,
) -> np.ndarray | torch.Tensor:
    """The trimap of an alpha matte ([..., H, W], float in [0, 1]): 255 = erode(α ≥ 1), 128 = dilate(α > 0) minus
    that, 0 elsewhere; uint8, the type and shape of ``alpha``.

    Dilation and erosion use a disk of radius ``width`` pixels, or of a radius drawn uniformly in ``widths``
    (inclusive) when ``width`` is a Generator. The image border does not erode the foreground (as OpenCV's erode).
    Every pixel with 0 < α < 1 is unknown."""
    as_tensor = isinstance(alpha, torch.Tensor)
    a = alpha.detach().cpu().numpy() if as_tensor else np.asarray(alpha)
    radius = (
        int(width.integers(widths[0], widths[1] + 1)) if isinstance(width, np.random.Generator) else width
    )
    if radius < 0:
        raise ValueError(f"trimap width must be >= 0, got {radius}")
    shape = a.shape
    a = a.reshape(-1, *shape[-2:])
    out = np.zeros(a.shape, np.uint8)
    disk = _disk(radius)
    for k, plane in enumerate(a):
        unknown, fg = plane > 0, plane >= 1
        if radius:
            unknown = ndimage.binary_dilation(unknown, disk)
            fg = ndimage.binary_erosion(fg, disk, border_value=1)
        out[k][unknown] = 128
        out[k][fg] = 255
    out = out.reshape(shape)
    return torch.from_numpy(out) if as_tensor else out


def composite(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``round(αF + (1 − α)B)`` in float64 as uint8 [3, H, W]; alpha [1 or none, H, W] in [0, 1], F and B uint8."""
    a = np.asarray(alpha, np.float64).reshape(1, *np.shape(alpha)[-2:])
    image = a * np.asarray(fg, np.float64) + (1 - a) * np.asarray(bg, np.float64)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Alpha mattes: float32 [H, W] in [0, 1]


def _reduce(canvas: Image.Image) -> np.ndarray:
    """A 4x supersampled "L" canvas box-filtered down, as float32 in [0, 1]."""
    return np.asarray(canvas.reduce(_SS), np.float32) / 255


def _digit(rng: np.random.Generator, h: int, w: int, pools: tuple[np.ndarray, ...]) -> np.ndarray:
    pool = pools[int(rng.integers(10))]
    digit = Image.fromarray(mnist_digits()[0][int(pool[rng.integers(len(pool))])])
    digit = digit.crop(digit.getbbox() or (0, 0, 28, 28))
    height = rng.uniform(0.55, 0.9) * h
    width = height * digit.width / digit.height
    if width > 0.9 * w:
        width, height = 0.9 * w, 0.9 * w * digit.height / digit.width
    dh, dw = max(4, round(height)), max(4, round(width))
    glyph = np.asarray(digit.resize((dw, dh), Image.BICUBIC), np.float32) / 255
    glyph = np.clip(glyph * rng.uniform(1.2, 1.8), 0, 1)  # MNIST's soft strokes, with an opaque core
    out = np.zeros((h, w), np.float32)
    y, x = int(rng.integers(0, h - dh + 1)), int(rng.integers(0, w - dw + 1))
    out[y : y + dh, x : x + dw] = glyph
    return out


def _shape_points(rng: np.random.Generator, h: int, w: int) -> list[tuple[float, float]]:
    """The outline of an ellipse, a polygon or an irregular blob, in supersampled pixels."""
    kind = int(rng.integers(3))
    radius = rng.uniform(0.2, 0.42) * min(h, w) * _SS
    cy, cx = rng.uniform(0.35, 0.65) * h * _SS, rng.uniform(0.35, 0.65) * w * _SS
    turn = rng.uniform(0, 2 * math.pi)
    if kind == 0:  # an ellipse, turned
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        rx, ry = radius, radius * rng.uniform(0.5, 1.0)
        c, s = math.cos(turn), math.sin(turn)
        xs = rx * np.cos(t) * c - ry * np.sin(t) * s
        ys = rx * np.cos(t) * s + ry * np.sin(t) * c
    elif kind == 1:  # a regular polygon of 3 to 6 corners
        n = int(rng.integers(3, 7))
        t = turn + np.arange(n) * 2 * math.pi / n
        xs, ys = radius * np.cos(t), radius * np.sin(t)
    else:  # an irregular blob: 8 to 15 corners at random angles and radii
        n = int(rng.integers(8, 16))
        t = turn + np.sort(rng.uniform(0, 2 * math.pi, n))
        r = radius * rng.uniform(0.55, 1.0, n)
        xs, ys = r * np.cos(t), r * np.sin(t)
    return list(zip((cx + xs).tolist(), (cy + ys).tolist(), strict=True))


def _shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    canvas = Image.new("L", (w * _SS, h * _SS), 0)
    ImageDraw.Draw(canvas).polygon(_shape_points(rng, h, w), fill=255)
    return _reduce(canvas)


def _hair(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Thin anti-aliased curves growing outwards from pixels of the base."""
    h, w = base.shape
    roots = np.argwhere(base > 0.5)
    if not len(roots):
        return np.zeros_like(base)
    center = roots.mean(axis=0)
    canvas = Image.new("L", (w * _SS, h * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(6, 30))):
        y0, x0 = roots[rng.integers(len(roots))] + 0.5
        angle = math.atan2(y0 - center[0], x0 - center[1]) + rng.normal(0, 0.6)
        length = rng.uniform(0.15, 0.45) * min(h, w)
        y2, x2 = y0 + length * math.sin(angle), x0 + length * math.cos(angle)
        bend = rng.normal(0, 0.3) * length
        y1, x1 = (y0 + y2) / 2 + bend * math.cos(angle), (x0 + x2) / 2 - bend * math.sin(angle)
        t = np.linspace(0, 1, 16)[:, None]  # a quadratic Bézier curve
        points = (1 - t) ** 2 * [x0, y0] + 2 * t * (1 - t) * [x1, y1] + t**2 * [x2, y2]
        draw.line([tuple(p) for p in (points * _SS).tolist()], fill=int(rng.integers(150, 256)),
                  width=int(rng.integers(1, 5)), joint="curve")  # fmt: skip
    return _reduce(canvas)


def make_alpha(rng: np.random.Generator, h: int, w: int, digit_split: str = "train") -> np.ndarray:
    """One random alpha matte, float32 [h, w] in [0, 1], quantized to k/255 (see the module docstring)."""
    base = _digit(rng, h, w, digit_pool(digit_split)) if rng.random() < 0.4 else _shape(rng, h, w)
    hair = _hair(rng, base) if rng.random() < 0.5 else None
    if rng.random() < 0.4:
        base = ndimage.gaussian_filter(base, rng.uniform(0.6, 2.0))
    layers = [base] if hair is None else [base, hair]
    if rng.random() < 0.35:
        layers.append(_shape(rng, h, w) * rng.uniform(0.3, 0.7))  # semi-transparent: constant opacity
    alpha = 1 - np.prod([1 - a for a in layers], axis=0)
    return np.rint(np.clip(alpha, 0, 1) * 255).astype(np.float32) / 255


# ---------------------------------------------------------------------------------------------------------------
# Photos


@lru_cache(maxsize=2)
def _regions(split: str) -> tuple[np.ndarray, ...]:
    return tuple(train if split == "train" else test for _, train, test in photo_regions())


def _photo_crop(rng: np.random.Generator, split: str, h: int, w: int) -> np.ndarray:
    """A random h×w crop of the split's photo regions (drawn by their number of crop positions), uint8 [3, h, w]."""
    regions = [r for r in _regions(split) if r.shape[0] >= h and r.shape[1] >= w]
    if not regions:
        raise MMKitError(f"synthetic matting: {h}x{w} crops do not fit in the photos' {split} regions")
    weights = np.array([(r.shape[0] - h + 1) * (r.shape[1] - w + 1) for r in regions], np.float64)
    r = regions[rng.choice(len(regions), p=weights / weights.sum())]
    y, x = int(rng.integers(0, r.shape[0] - h + 1)), int(rng.integers(0, r.shape[1] - w + 1))
    crop = r[y : y + h, x : x + w]
    if split == "train" and rng.integers(2):
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def _foreground(rng: np.random.Generator, split: str, h: int, w: int) -> np.ndarray:
    if rng.random() < 0.25:
        return _photo_crop(rng, split, h, w)
    colours = background(rng, max(h, w))[:, :h, :w]
    return np.clip(np.rint(colours), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Dataset


class SyntheticMatting(Dataset):
    """``n`` composites of one split, drawn on access: item i -> (image uint8 [3, H, W], alpha float32 [1, H, W],
    trimap uint8 [1, H, W], foreground uint8 [3, H, W], background uint8 [3, H, W]).

    ``size``: an int for size×size items, or (low, high) for a height and a width drawn per item (inclusive).
    ``trimap_width``: the disk radius of the unknown band, or (low, high) for one drawn per item."""

    def __init__(
        self,
        n: int,
        seed: int,
        split: str = "train",
        size: int | tuple[int, int] = TRAIN_SIZE,
        trimap_width: int | tuple[int, int] = TRAIN_TRIMAP_WIDTHS,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        low, high = (size, size) if isinstance(size, int) else size
        if not 8 <= low <= high:
            raise MMKitError(f"synthetic matting: size {size} must be at least 8 px")
        self.n, self.seed, self.split, self.sizes, self.trimap_width = (
            n,
            seed,
            split,
            (low, high),
            trimap_width,
        )

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, SPLITS[self.split], index))
        h, w = (int(v) for v in rng.integers(self.sizes[0], self.sizes[1] + 1, 2))
        digit_split = "train" if self.split == "train" else "val"
        alpha = make_alpha(rng, h, w, digit_split)
        fg, bg = _foreground(rng, self.split, h, w), _photo_crop(rng, self.split, h, w)
        width = self.trimap_width
        trimap = (
            make_trimap(alpha, width) if isinstance(width, int) else make_trimap(alpha, rng, tuple(width))
        )
        image = composite(alpha, fg, bg)
        return tuple(
            torch.from_numpy(np.ascontiguousarray(x))
            for x in (image, alpha[None], trimap[None], fg, bg)
        )  # fmt: skip


def matting_splits(
    n_train: int = 2000,
    n_test: int = 200,
    seed: int = 0,
    train_size: int | tuple[int, int] = TRAIN_SIZE,
    test_size: int | tuple[int, int] = TEST_SIZE,
) -> tuple[SyntheticMatting, SyntheticMatting]:
    """The builtin (train, test) splits: train seeded by ``seed`` over the photos' train regions with random trimap
    widths; test always seeded by TEST_SEED over their test regions, with trimaps of TEST_TRIMAP_WIDTH."""
    train = SyntheticMatting(n_train, seed, "train", train_size, TRAIN_TRIMAP_WIDTHS)
    test = SyntheticMatting(n_test, TEST_SEED, "test", test_size, TEST_TRIMAP_WIDTH)
    return train, test


def write_synthetic_matting(
    out: str | os.PathLike, n_train: int = 2000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write the builtin splits as a matting folder: ``out/{train,test}/{images,alphas,trimaps}/<index>.png``."""
    from mmkit.data.formats.matting import write_matting_folder

    out = Path(out)
    train, test = matting_splits(n_train, n_test, seed)
    with staged_output(out) as partial:
        write_matting_folder(train, partial / "train")
        write_matting_folder(test, partial / "test")
    return out


def load_matting_composites(
    name: str = "matting-composites", n_train: int = 2000, seed: int = 0, img_size: int = 64
):
    """The registry's loader of the builtin: its (train, test) splits, train items of ``img_size`` px."""
    return matting_splits(n_train, 200, seed, train_size=img_size)
