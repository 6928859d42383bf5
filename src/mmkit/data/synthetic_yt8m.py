"""Synthetic YouTube-8M: frame- and video-level TFRecords with a learnable multi-label structure.

No labelled video-feature set ships offline, so the video models train and test on these. The "world" (drawn
from the seed) gives each class three prototype directions in rgb space and one in audio space (a quarter
of the classes are silent: no audio prototype), a long-tailed class prior, and co-occurring pairs (class
2k is followed by class 2k+1 with probability 0.6, for the first half of the classes). A video has 1–3
labels and 50–100 % of ``frames`` frames; each label is active in one contiguous segment covering 15–80 %
of the video, where each frame adds one of the class's rgb prototypes (and its audio prototype). Every frame
also carries a per-video "style" offset from a few label-free directions, and Gaussian noise. A label seen
in a short segment is diluted in the video mean, so frame-level models have something to gain.

Frame-level values are quantized to bytes as in the real data; the video-level ``mean_rgb``/``mean_audio``
are the means of the dequantized frames, so both levels of one seed describe the same videos. The output
copies the real layout: ``train/train0000.tfrecord``, ``validate/validate0000.tfrecord`` … and a
``vocabulary.csv`` (``Index,Name``). Same seed and arguments, same bytes.

Usage::

    from mmkit.data.synthetic_yt8m import write_synthetic_yt8m

    summary = write_synthetic_yt8m(Path("yt8m"), level="frame", videos=2000, classes=20, frames=60, seed=0)
    ds = YouTube8MDataset("yt8m/train", "frame", num_classes=20, max_frames=60)  # formats.youtube8m_dataset
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.data.formats.youtube8m import dequantize_features, quantize_features, write_records
from mmkit.data.output_folder import claim_output_folder, staged_output
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

PROTOTYPES_PER_CLASS = 3
STYLE_DIRECTIONS = 8
CO_OCCURRENCE = 0.6
# Amplitudes along unit directions; NOISE is per dimension, so one active frame has a signal-to-noise ratio
# of about 3 (rgb) and 2 (audio) along its prototype, and the style offset is larger than any label signal.
SIGNAL_RGB, SIGNAL_AUDIO, STYLE, NOISE = 1.0, 0.8, 1.5, 0.35
_STREAM_WORLD, _STREAM_SPLIT = 0, {"train": 1, "validate": 2}
README_MARKER = "mmkit synthetic youtube-8m"


@dataclass
class World:
    """What the seed fixes: prototypes, style directions, class prior and partners."""

    rgb_protos: np.ndarray  # [classes, PROTOTYPES_PER_CLASS, rgb_dim], unit rows
    audio_protos: np.ndarray  # [classes, audio_dim], unit rows, zero for silent classes
    style_rgb: np.ndarray  # [STYLE_DIRECTIONS, rgb_dim]
    style_audio: np.ndarray  # [STYLE_DIRECTIONS, audio_dim]
    prior: np.ndarray  # [classes], sums to 1
    partner: np.ndarray  # [classes], the co-occurring class or -1


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def make_world(classes: int, rgb_dim: int, audio_dim: int, seed: int) -> World:
    rng = np.random.default_rng([seed, _STREAM_WORLD])
    rgb = _unit(rng, (classes, PROTOTYPES_PER_CLASS, rgb_dim))
    audio = _unit(rng, (classes, audio_dim)) if audio_dim else np.zeros((classes, 0))
    silent = rng.permutation(classes)[: classes // 4]
    audio[silent] = 0.0
    prior = 1.0 / np.arange(1, classes + 1) ** 0.6
    partner = np.full(classes, -1)
    for c in range(0, classes // 2 - 1, 2):
        partner[c] = c + 1
    return World(
        rgb_protos=rgb.astype(np.float32),
        audio_protos=audio.astype(np.float32),
        style_rgb=_unit(rng, (STYLE_DIRECTIONS, rgb_dim)).astype(np.float32),
        style_audio=_unit(rng, (STYLE_DIRECTIONS, audio_dim)).astype(np.float32),
        prior=prior / prior.sum(),
        partner=partner,
    )


def _labels(world: World, rng: np.random.Generator) -> list[int]:
    """1-3 distinct labels drawn from the prior; a drawn class brings its partner along (while there is room)."""
    classes = len(world.prior)
    want = min(int(rng.integers(1, 4)), classes)
    labels: set[int] = set()
    while len(labels) < want:
        c = int(rng.choice(classes, p=world.prior))
        labels.add(c)
        if world.partner[c] >= 0 and len(labels) < 3 and rng.random() < CO_OCCURRENCE:
            labels.add(int(world.partner[c]))
    return sorted(labels)


def make_video(
    world: World, rng: np.random.Generator, frames: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(labels, rgb float32 [T, rgb_dim], audio float32 [T, audio_dim]) of one video, not yet quantized."""
    t = int(rng.integers(max(1, frames // 2), frames + 1))
    labels = _labels(world, rng)
    rgb_dim, audio_dim = world.rgb_protos.shape[-1], world.audio_protos.shape[-1]
    style = (rng.standard_normal(STYLE_DIRECTIONS) * STYLE / np.sqrt(STYLE_DIRECTIONS)).astype(np.float32)
    rgb = rng.standard_normal((t, rgb_dim), dtype=np.float32) * NOISE + style @ world.style_rgb
    audio = rng.standard_normal((t, audio_dim), dtype=np.float32) * NOISE + style @ world.style_audio
    for c in labels:
        length = max(1, int(round(t * rng.uniform(0.15, 0.8))))
        start = int(rng.integers(0, t - length + 1))
        which = rng.integers(0, PROTOTYPES_PER_CLASS, length)
        rgb[start : start + length] += world.rgb_protos[c, which] * SIGNAL_RGB
        audio[start : start + length] += world.audio_protos[c] * SIGNAL_AUDIO
    return labels, rgb, audio


def _videos(world: World, split: str, n: int, frames: int, level: str, seed: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng([seed, _STREAM_SPLIT[split]])
    for i in range(n):
        labels, rgb, audio = make_video(world, rng, frames)
        vid = f"{split[0]}{i:06d}"
        if level == "frame":
            yield {"id": vid, "labels": labels, "rgb": rgb, "audio": audio}
        else:  # the mean of what a frame-level reader would see
            rgb_q, audio_q = (
                dequantize_features(quantize_features(rgb)),
                dequantize_features(quantize_features(audio)),
            )
            yield {"id": vid, "labels": labels, "rgb": rgb_q.mean(0), "audio": audio_q.mean(0)}


def write_synthetic_yt8m(
    out: Path,
    *,
    level: str = "frame",
    videos: int = 2000,
    classes: int = 20,
    frames: int = 60,
    seed: int = 0,
    rgb_dim: int = 1024,
    audio_dim: int = 128,
    per_shard: int = 500,
) -> dict[str, Any]:
    """Write ``out/train/`` (``videos`` records), ``out/validate/`` (videos // 5, at least 1) and
    ``out/vocabulary.csv`` and ``out/README.txt``; returns a summary. `out` must be new, empty, or an earlier
    output of this function (its shards are replaced)."""
    if level not in ("frame", "video"):
        raise MMKitError(f"level (--level) must be frame or video, got {level!r}")
    if videos < 1 or classes < 2 or frames < 1 or rgb_dim < 1 or audio_dim < 0 or per_shard < 1:
        raise MMKitError("videos, frames, rgb_dim and per_shard must be >= 1, classes >= 2, audio_dim >= 0")
    t0 = time.perf_counter()
    out = Path(out)
    claim_output_folder(out, README_MARKER, "mmkit data synth yt8m")
    settings = f"{level} level, seed {seed}, {videos} videos, {classes} classes, {frames} frames, {rgb_dim}+{audio_dim}"
    world = make_world(classes, rgb_dim, audio_dim, seed)
    sizes = {"train": videos, "validate": max(1, videos // 5)}
    summary: dict[str, Any] = {"out": str(out), "level": level, "classes": classes, "frames": frames}
    summary |= {"rgb_dim": rgb_dim, "audio_dim": audio_dim, "seed": seed, "shards": {}}
    label_counts = np.zeros(classes, np.int64)
    with staged_output(out, replaces=tuple(_STREAM_SPLIT)) as partial:
        for split, n in sizes.items():
            folder = partial / split
            folder.mkdir(parents=True, exist_ok=True)
            stream = _videos(world, split, n, frames, level, seed)
            shards = []
            for k in range(0, n, per_shard):
                chunk = [next(stream) for _ in range(min(per_shard, n - k))]
                if split == "train":
                    for rec in chunk:
                        label_counts[rec["labels"]] += 1
                path = folder / f"{split}{len(shards):04d}.tfrecord"
                write_records(path, chunk, level)
                shards.append(path.name)
            summary[split] = n
            summary["shards"][split] = shards
        with open(partial / "vocabulary.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Index", "Name"])
            w.writerows([c, f"class_{c:02d}"] for c in range(classes))
        (partial / "README.txt").write_text(
            f"{README_MARKER}\nWritten by mmkit.data.synthetic_yt8m.write_synthetic_yt8m: {settings}.\n"
            "Same arguments -> identical files. Read with mmkit.data.formats.youtube8m (read_records, "
            "YouTube8MDataset).\n",
            encoding="utf-8",
        )
    summary["train_label_counts"] = label_counts.tolist()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    logger.info(
        "synthetic yt8m (%s): %d train + %d validate videos -> %s", level, videos, sizes["validate"], out
    )
    return summary
