"""Synthetic motion clips: an MNIST digit or a shape whose MOTION is the label, among smaller distractors.

Nine classes (``MOTIONS``): left, right, up, down, rotate-cw, rotate-ccw (clockwise as seen on screen),
grow, shrink, bounce (an up-down oscillation of one to two periods). The labelled object is the largest in
the clip: a digit (MNIST-5k through ``mmkit.data.drawing.digit_pool``: train clips use the train pool and
test clips the val pool, so no digit image is in both) or a shape (square, triangle, bar, ell; no circle,
whose rotation cannot be seen), in a colour that stands out from the background, at a random place,
orientation, speed and size. Zero to ``max_distractors`` smaller digits or shapes drift in random directions
under it. The background is plain or textured (``mmkit.data.drawing.background``) and still. Paths are
drawn symmetrically (left and right share the same segments, grow and shrink the same sizes, every object a
uniformly random orientation), so a single frame does not tell the class: only the motion does.

A clip is a pure function of ``(seed, split, index)`` (``clip_spec``) and its label is ``index % 9``, so the
classes are balanced and ``motion_clips(n)`` is a prefix of ``motion_clips(n + k)``. Frames are rendered in
batches with ``torch.nn.functional.grid_sample``, one affine warp per object and frame.

Usage::

    from mmkit.data.synthetic_videos import MOTIONS, motion_clips, write_videos

    clips, labels, classes = motion_clips(900, frames=16, size=64, seed=0, split="train")
    # clips: uint8 [900, 16, 3, 64, 64], labels: int64 [900], classes: the nine names
    write_videos("motion/", n_train=900, n_test=180)  # motion/{train,test}/<class>/00000.mp4, H.264 at 8 fps
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from mmkit.data.drawing import background, digit_pool, mnist_digits, pick_color
from mmkit.data.output_folder import staged_output
from mmkit.errors import MMKitError, stop_if_interrupted

logger = logging.getLogger(__name__)

MOTIONS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "rotate-cw",
    "rotate-ccw",
    "grow",
    "shrink",
    "bounce",
)
SHAPES = ("square", "triangle", "bar", "ell")

# What each motion becomes when a clip is mirrored left-right ("hflip", last axis), upside down ("vflip") or played
# backwards ("reverse"): label-aware augmentation (`motion_label_maps`).
_SWAPS = {
    "hflip": (("left", "right"), ("rotate-cw", "rotate-ccw")),
    "vflip": (("up", "down"), ("rotate-cw", "rotate-ccw")),
    "reverse": (("left", "right"), ("up", "down"), ("rotate-cw", "rotate-ccw"), ("grow", "shrink")),
}
SPLITS = {"train": 0, "test": 1}
_DIGIT_POOL = {"train": "train", "test": "val"}  # mmkit.data.drawing's disjoint MNIST pools
_SPRITE = 28  # sprites are 28x28 alpha maps (MNIST's size); the object fills about the central 20 px
_FILL = 20 / 28
_MIN_CONTRAST = 80.0  # wanted luminance gap between an object's colour and the mean background
_COLOR_TRIES = 8
_CHUNK = 64  # clips rendered together


@dataclass
class MovingObject:
    """One object's sprite and its path, per frame: where its centroid is (x, y in pixels), the side of its
    28-px sprite box in pixels (the object fills about 20/28 of it), and its angle (radians, clockwise)."""

    kind: str  # "digit" or a shape name
    source: int  # MNIST-5k row for digits, -1 for shapes
    color: np.ndarray  # float32 [3], 0..255
    center: np.ndarray  # float32 [T, 2]
    scale: np.ndarray  # float32 [T]
    angle: np.ndarray  # float32 [T]


@dataclass
class ClipSpec:
    """Everything that defines a clip: the label, the objects (distractors first, the labelled one last) and
    the still background (float32 [3, size, size])."""

    label: int
    objects: list[MovingObject] = field(default_factory=list)
    background: np.ndarray | None = None


def motion_label_maps(classes: list[str] | tuple[str, ...] = MOTIONS) -> dict[str, list[int]]:
    """For "hflip", "vflip" and "reverse": the label index each class index becomes under that transform."""
    index = {c: i for i, c in enumerate(classes)}
    maps = {}
    for name, pairs in _SWAPS.items():
        to = list(range(len(classes)))
        for a, b in pairs:
            to[index[a]], to[index[b]] = index[b], index[a]
        maps[name] = to
    return maps


@cache
def _shape_sprite(shape: str) -> np.ndarray:
    """float32 [28, 28] alpha of ``shape``, drawn 4x larger and box-filtered down."""
    k = 4
    big = Image.new("L", (_SPRITE * k, _SPRITE * k), 0)
    draw = ImageDraw.Draw(big)
    lo, hi = 4 * k, 24 * k
    if shape == "square":
        draw.rectangle((6 * k, 6 * k, 22 * k, 22 * k), fill=255)
    elif shape == "triangle":  # isosceles, so a rotation shows for any angle below 360 degrees
        draw.polygon([(14 * k, lo), (21 * k, hi), (7 * k, hi)], fill=255)
    elif shape == "bar":
        draw.rectangle((lo, 10 * k, hi, 18 * k), fill=255)
    elif shape == "ell":
        draw.rectangle((7 * k, lo, 13 * k, hi), fill=255)
        draw.rectangle((7 * k, 18 * k, 21 * k, hi), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(big.reduce(k), dtype=np.float32) / 255


def _sprite(obj: MovingObject) -> tuple[np.ndarray, np.ndarray]:
    """The object's alpha map (float32 [28, 28]) and its centroid in normalised sprite coordinates (-1..1):
    the point it turns and scales about."""
    if obj.kind == "digit":
        alpha = mnist_digits()[0][obj.source].astype(np.float32) / 255
    else:
        alpha = _shape_sprite(obj.kind)
    axis = (np.arange(_SPRITE, dtype=np.float32) * 2 + 1) / _SPRITE - 1
    total = max(float(alpha.sum()), 1e-6)
    return alpha, np.array([alpha.sum(0) @ axis, alpha.sum(1) @ axis], np.float32) / total


def _pick_sprite(rng: np.random.Generator, split: str) -> tuple[str, int]:
    if rng.random() < 0.5:
        pool = digit_pool(_DIGIT_POOL[split])[int(rng.integers(10))]
        return "digit", int(pool[int(rng.integers(len(pool)))])
    return SHAPES[int(rng.integers(len(SHAPES)))], -1


def _pick_color(rng: np.random.Generator, ground: np.ndarray) -> np.ndarray:
    """The first of 8 random colours whose luminance differs from the background's mean by _MIN_CONTRAST
    (else the most different one)."""
    return pick_color(rng, ground, candidates=_COLOR_TRIES, min_contrast=_MIN_CONTRAST, pull=0.0)


def _main_path(rng: np.random.Generator, label: int, frames: int, size: int):
    """(center [T, 2], scale [T], angle [T]) of the labelled object for motion ``MOTIONS[label]``."""
    motion = MOTIONS[label]
    u = np.linspace(0.0, 1.0, frames, dtype=np.float32)
    ones = np.ones(frames, np.float32)
    scale = rng.uniform(0.45, 0.65) * size * ones
    angle = rng.uniform(-math.pi, math.pi) * ones
    if motion in ("grow", "shrink"):
        small, ratio = rng.uniform(0.3, 0.4) * size, rng.uniform(1.6, 2.0)
        scale = small * ratio ** (u if motion == "grow" else 1 - u)
    half = 0.5 * _FILL * float(scale.max())  # half the object's height at its largest
    if motion in ("rotate-cw", "rotate-ccw", "grow", "shrink"):  # turning or large: keep every corner inside
        half = min(half * math.sqrt(2), size / 2)
    x, y = rng.uniform(half, size - half, 2)
    center = np.stack([x * ones, y * ones], axis=1)
    if motion in ("left", "right", "up", "down"):
        travel = min(rng.uniform(0.25, 0.45) * size, size - 2 * half)
        a = rng.uniform(half, size - half - travel)
        path = a + travel * (u if motion in ("right", "down") else 1 - u)
        center[:, 0 if motion in ("left", "right") else 1] = path
    elif motion in ("rotate-cw", "rotate-ccw"):
        most = math.radians(30) * (frames - 1)  # at most 30 degrees a frame, so the direction is clear
        turn = min(math.radians(rng.uniform(100, 220)), most)
        angle = angle + (turn if motion == "rotate-cw" else -turn) * u
    elif motion == "bounce":
        amplitude = min(rng.uniform(0.12, 0.2) * size, size / 2 - half)
        cycles, phase = rng.uniform(1.0, 2.0), rng.uniform(0, 2 * math.pi)
        y0 = rng.uniform(half + amplitude, size - half - amplitude)
        center[:, 1] = y0 + amplitude * np.sin(2 * math.pi * cycles * u + phase)
    return center.astype(np.float32), scale.astype(np.float32), angle.astype(np.float32)


def clip_spec(
    seed: int,
    split: str,
    index: int,
    frames: int = 16,
    size: int = 64,
    *,
    max_distractors: int = 2,
    textured: float = 0.7,
) -> ClipSpec:
    """The objects, paths and background of clip ``index`` (label ``index % 9``) of ``(seed, split)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    rng = np.random.default_rng((seed, SPLITS[split], index))
    label = index % len(MOTIONS)
    if rng.random() < textured:
        ground = background(rng, size)
    else:
        ground = np.broadcast_to(rng.uniform(0, 255, (3, 1, 1)), (3, size, size)).astype(np.float32)
    spec = ClipSpec(label, background=ground)
    u = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
    for _ in range(int(rng.integers(0, max_distractors + 1))):
        kind, source = _pick_sprite(rng, split)
        start = rng.uniform(0, size, 2)
        heading, travel = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.35) * size
        center = start + travel * u * np.array([math.cos(heading), math.sin(heading)])
        scale = np.full(frames, rng.uniform(0.2, 0.3) * size, np.float32)  # the labelled object: >= 0.3
        angle = np.full(frames, rng.uniform(-math.pi, math.pi), np.float32)
        color = _pick_color(rng, ground)
        spec.objects.append(MovingObject(kind, source, color, center.astype(np.float32), scale, angle))
    kind, source = _pick_sprite(rng, split)
    color = _pick_color(rng, ground)
    spec.objects.append(MovingObject(kind, source, color, *_main_path(rng, label, frames, size)))
    return spec


def render_clips(specs: list[ClipSpec], frames: int, size: int) -> torch.Tensor:
    """Render clips as uint8 [N, T, 3, size, size]: every object in every frame is one affine warp of its
    sprite (bilinear ``grid_sample``); objects are laid over the background in order (the last on top)."""
    objects = [(i, j, obj) for i, spec in enumerate(specs) for j, obj in enumerate(reversed(spec.objects))]
    n, k, m = len(specs), max(len(s.objects) for s in specs), len(objects)  # j counts from the top layer
    sprites, centroids = zip(*(_sprite(obj) for _, _, obj in objects), strict=True)
    sprites = np.stack(sprites)[:, None]  # [m, 1, 28, 28]
    center = np.stack([obj.center for _, _, obj in objects]).reshape(-1, 2)  # [m * T, 2]
    scale = np.stack([obj.scale for _, _, obj in objects]).reshape(-1)
    angle = np.stack([obj.angle for _, _, obj in objects]).reshape(-1)
    # Output pixel p (normalised) -> sprite point (S/s) R(-a) p + (2/s) R(-a) (S/2 - centre) + centroid
    cos, sin = np.cos(angle), np.sin(angle)
    inverse = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # R(-a): [m * T, 2, 2]
    shift = np.einsum("bij,bj->bi", inverse, size / 2 - center) * (2 / scale)[:, None]
    shift += np.repeat(np.stack(centroids), frames, axis=0)
    linear = torch.from_numpy((inverse * (size / scale)[:, None, None]).astype(np.float32))
    shift = torch.from_numpy(shift.astype(np.float32))
    axis = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # pixel centres, as in affine_grid
    along_x = axis[None, :, None] * linear[:, None, :, 0] + shift[:, None]  # [m * T, W, 2]
    along_y = axis[None, :, None] * linear[:, None, :, 1]  # [m * T, H, 2]
    grid = along_y[:, :, None] + along_x[:, None]  # [m * T, H, W, 2]
    source = torch.from_numpy(sprites).repeat_interleave(frames, dim=0)
    warped = F.grid_sample(source, grid, align_corners=False).view(m, frames, size, size)
    alpha = torch.zeros(n, k, frames, size, size)
    alpha[[i for i, _, _ in objects], [j for _, j, _ in objects]] = warped
    # Over-compositing with one colour per object: layer j shows alpha_j times what the layers above leave
    visible = torch.ones(n, frames, size, size)
    for j in range(k):
        alpha[:, j] *= visible  # now the weight of layer j's colour
        visible -= alpha[:, j]
    colors = np.zeros((n, k, 3), np.float32)
    for i, j, obj in objects:
        colors[i, j] = obj.color
    canvas = torch.einsum("nkthw,nkc->ntchw", alpha, torch.from_numpy(colors))
    ground = torch.from_numpy(np.stack([s.background for s in specs]))  # [n, 3, H, W]
    canvas += visible[:, :, None] * ground[:, None]
    return canvas.add_(0.5).clamp_(0, 255).to(torch.uint8)


def motion_clips(
    n: int,
    frames: int = 16,
    size: int = 64,
    seed: int = 0,
    split: str = "train",
    *,
    max_distractors: int = 2,
    textured: float = 0.7,
    start: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Clips ``start .. start + n - 1`` of ``(seed, split)`` in memory: (uint8 [n, frames, 3, size, size],
    int64 [n] labels, the nine class names). ``max_distractors``: up to this many small drifting objects per
    clip; ``textured``: the share of clips on a textured background (the others are plain)."""
    if n < 0 or frames < 2 or size < 16:
        raise ValueError(f"need n >= 0, frames >= 2 and size >= 16, got {n}, {frames}, {size}")
    clips = torch.empty(n, frames, 3, size, size, dtype=torch.uint8)
    for first in range(0, n, _CHUNK):
        specs = [
            clip_spec(
                seed, split, start + i, frames, size, max_distractors=max_distractors, textured=textured
            )
            for i in range(first, min(first + _CHUNK, n))
        ]
        clips[first : first + len(specs)] = render_clips(specs, frames, size)
    labels = torch.arange(start, start + n, dtype=torch.int64) % len(MOTIONS)
    return clips, labels, list(MOTIONS)


def write_videos(
    out: str | Path,
    n_train: int = 900,
    n_test: int = 180,
    frames: int = 16,
    size: int = 64,
    seed: int = 0,
    fps: float = 8,
) -> dict:
    """Write ``out/train/<class>/<index>.mp4`` and ``out/test/<class>/<index>.mp4`` (H.264, yuv420p, ``fps``);
    returns a summary (counts, classes, clips written per second)."""
    from mmkit.data.formats.video import write_video  # PyAV takes 0.16 s to import; only writing needs it

    out = Path(out)
    if size % 2 or size < 16 or frames < 2:
        raise MMKitError(
            f"{out}: need an even --size >= 16 (H.264 yuv420p) and --frames >= 2, got {size}, {frames}"
        )
    began = time.perf_counter()
    with staged_output(out) as partial:
        for split, count in (("train", n_train), ("test", n_test)):
            for first in range(0, count, _CHUNK):
                clips, labels, _ = motion_clips(
                    min(_CHUNK, count - first), frames, size, seed, split, start=first
                )
                for offset, (clip, label) in enumerate(zip(clips, labels.tolist(), strict=True)):
                    stop_if_interrupted()  # PyAV's callbacks may swallow a Ctrl-C
                    write_video(partial / split / MOTIONS[label] / f"{first + offset:05d}.mp4", clip, fps=fps)
            logger.info("%s: %d clips written", split, count)
    seconds = time.perf_counter() - began
    return {
        "out": str(out),
        "train": n_train,
        "test": n_test,
        "classes": list(MOTIONS),
        "frames": frames,
        "size": size,
        "fps": fps,
        "seconds": round(seconds, 2),
        "clips_per_s": (n_train + n_test) / max(seconds, 1e-9),
    }
