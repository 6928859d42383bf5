"""Image-classification datasets: one entry point, ``load_classification_data(spec)``, for every source.

``spec`` is a builtin name (registered in ``mmkit.data.registry``, loaded by ``mmkit.data.builtin``) or a
directory: CIFAR-10/100 python pickles, MNIST-style IDX files, or an ImageFolder tree (ILSVRC-style ``train/`` +
``val/`` [+ ``test/``], or one tree of class folders).
Items are ``(image uint8 [C, H, W], label int)``; transforms are applied later (``mmkit.data.transforms``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from mmkit.data.formats.cifar import find_cifar_dir, read_cifar
from mmkit.data.formats.idx import is_idx_dir, read_idx_split
from mmkit.data.formats.imagefolder import index_image_folder, split_layout
from mmkit.data.registry import existing_path, find_dataset
from mmkit.data.sources import FASHION_MNIST_CLASSES
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ClassificationData:
    """Train/val[/test] splits of one classification source, with what transforms and models need to know."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    channels: int
    image_size: int | None
    hflip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class TensorImageDataset(Dataset):
    """In-memory images (uint8 [N, C, H, W]) and labels (int64 [N]); items are (image [C, H, W], int label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape [{images.shape[0]}], got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.targets: list[int] = self.labels.tolist()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]

    def subset(self, indices) -> TensorImageDataset:
        """A new dataset holding only the given indices (copied, contiguous)."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorImageDataset(self.images[idx], self.labels[idx])


def collate_skip_none(batch: list):
    """``default_collate`` after dropping the None items that unreadable images produce.

    Returns None when every item of the batch was unreadable; a training loop should skip such a batch.
    """
    kept = [item for item in batch if item is not None]
    if len(kept) < len(batch):
        logger.debug("dropped %d unreadable item(s) from a batch of %d", len(batch) - len(kept), len(batch))
    if not kept:
        return None
    return default_collate(kept)


def stratified_split(
    labels: Sequence[int] | np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split; returns sorted (keep, split) index arrays with ``round(fraction * N)`` in split.

    Each class gives ``fraction`` of its items (largest remainders get the rounding); a class always keeps at
    least one item on the ``keep`` side.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0 or fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    exact = counts * fraction
    take = np.floor(exact).astype(np.int64)
    extra = int(round(n * fraction)) - int(take.sum())
    if extra > 0:
        by_remainder = np.argsort(-(exact - take), kind="stable")[:extra]
        take[by_remainder] += 1
    take = np.minimum(take, np.maximum(counts - 1, 0))
    rng = np.random.default_rng(seed)
    split = [rng.permutation(order[s : s + c])[:t] for s, c, t in zip(starts, counts, take, strict=True)]
    split_idx = np.sort(np.concatenate(split)) if split else np.zeros(0, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[split_idx] = False
    return np.flatnonzero(keep), split_idx


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0-1 scale of uint8 images [N, C, H, W]."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for part in images.split(chunk):
        x = part.to(torch.float32)
        total += x.sum(dim=(0, 2, 3)).double()
        total_sq += (x * x).sum(dim=(0, 2, 3)).double()
    count = images.numel() / channels
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple(round(float(m) / 255, 4) for m in mean), tuple(round(float(s) / 255, 4) for s in std)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    if images.ndim == 3:
        images = images[:, None]
    return torch.from_numpy(np.array(images, dtype=np.uint8, order="C", copy=True))


def from_arrays(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    hflip: bool,
    val_split: float,
    seed: int,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    test_fraction: float | None = None,
) -> ClassificationData:
    """Build in-memory ClassificationData from uint8 images [N, H, W] or [N, C, H, W] and int labels [N].

    With ``test`` given it is the test split; otherwise ``test_fraction`` carves a fixed test split (seed 0, the
    same for every run). Val is carved from the rest with ``val_split`` and ``seed``; mean/std come from the
    training source (before carving val).
    """
    full = TensorImageDataset(_to_tensor(images), torch.as_tensor(np.asarray(labels, dtype=np.int64)))
    test_set = None
    if test is not None:
        test_set = TensorImageDataset(
            _to_tensor(test[0]), torch.as_tensor(np.asarray(test[1], dtype=np.int64))
        )
    elif test_fraction:
        rest, test_idx = stratified_split(full.targets, test_fraction, seed=0)
        full, test_set = full.subset(rest), full.subset(test_idx)
    mean, std = channel_stats(full.images)
    train_idx, val_idx = stratified_split(full.targets, val_split, seed)
    _, channels, height, width = full.images.shape
    return ClassificationData(
        name=name,
        train=full.subset(train_idx),
        val=full.subset(val_idx),
        test=test_set,
        classes=list(classes),
        channels=channels,
        image_size=height if height == width else None,
        hflip=hflip,
        mean=mean,
        std=std,
    )


def _load_cifar(path: Path, val_split: float, seed: int) -> ClassificationData:
    data = read_cifar(path)
    test = None if data.test_images is None else (data.test_images, data.test_labels)
    logger.info("%s: %s, %d train images", path, data.variant, len(data.train_labels))
    return from_arrays(
        str(path),
        data.train_images,
        data.train_labels,
        data.classes,
        hflip=True,
        val_split=val_split,
        seed=seed,
        test=test,
    )


def load_idx_dir(
    path: str | os.PathLike,
    val_split: float,
    seed: int,
    *,
    name: str | None = None,
    classes: list[str] | None = None,
    hflip: bool | None = None,
) -> ClassificationData:
    """Load a directory of MNIST-style IDX files (``train-*`` required, ``t10k-*`` optional, as the test split).

    Without ``classes``, a directory whose name contains "fashion" gets the Fashion-MNIST class names (and flips);
    any other gets "0".."K-1" (no flips, as for digits).
    """
    path = Path(path)
    train = read_idx_split(path, "train")
    if train is None:
        raise MMKitError(f"{path}: no train-images-idx3-ubyte[.gz] file")
    test = read_idx_split(path, "t10k")
    is_fashion = "fashion" in path.name.lower()
    if classes is None:
        num_classes = int(max(train[1].max(initial=0), -1 if test is None else test[1].max(initial=0))) + 1
        if is_fashion and num_classes <= len(FASHION_MNIST_CLASSES):
            classes = list(FASHION_MNIST_CLASSES)
        else:
            classes = [str(i) for i in range(num_classes)]
    for split, arrays in (("train", train), ("t10k", test)):
        if arrays is not None and len(arrays[1]) and arrays[1].max() >= len(classes):
            raise MMKitError(
                f"{path}: {split} label {arrays[1].max()} out of range for {len(classes)} classes"
            )
    if hflip is None:
        hflip = is_fashion
    return from_arrays(
        name or str(path), train[0], train[1], classes, hflip=hflip, val_split=val_split, seed=seed, test=test
    )


def _load_image_folder(path: Path, val_split: float, seed: int) -> ClassificationData:
    splits = split_layout(path)
    if splits is not None:
        train, skipped = index_image_folder(splits["train"])
        others = {}
        for split in ("val", "test"):
            if split in splits:
                others[split], more = index_image_folder(splits[split], classes=train.classes)
                skipped += more
        if "val" in others:
            val = others["val"]
        else:
            keep, val_idx = stratified_split(train.targets, val_split, seed)
            train, val = train.subset(keep), train.subset(val_idx)
        test = others.get("test")
    else:
        full, skipped = index_image_folder(path)
        keep, val_idx = stratified_split(full.targets, val_split, seed)
        train, val, test = full.subset(keep), full.subset(val_idx), None
    logger.info(
        "%s: %d classes, %d train / %d val / %s test images, %d skipped",
        path,
        len(train.classes),
        len(train),
        len(val),
        len(test) if test is not None else "no",
        len(skipped),
    )
    return ClassificationData(
        name=str(path),
        train=train,
        val=val,
        test=test,
        classes=train.classes,
        channels=3,
        image_size=None,
        hflip=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        skipped=skipped,
    )


def load_classification_data(
    spec: str | os.PathLike, val_split: float = 0.1, seed: int = 0
) -> ClassificationData:
    """Load a builtin dataset by name, or a CIFAR / IDX / ImageFolder directory; see the module docstring.

    Raises ``MMKitError("<path>: <problem>")`` for a missing path, an empty or unrecognised folder, or a
    malformed file.
    """
    if not 0 <= val_split < 1:
        raise MMKitError(f"val_split must be in [0, 1), got {val_split}")
    text = os.fspath(spec)
    builtin = find_dataset(text, "classify")
    if builtin is not None:
        return builtin.load_data(val_split=val_split, seed=seed)
    path = existing_path(text, "classify")
    if not path.is_dir():
        raise MMKitError(
            f"{path}: not a directory (expected an image folder, CIFAR or IDX files, or a builtin name)"
        )
    cifar_dir = find_cifar_dir(path)
    if cifar_dir is not None:
        return _load_cifar(cifar_dir, val_split, seed)
    if is_idx_dir(path):
        return load_idx_dir(path, val_split, seed)
    return _load_image_folder(path, val_split, seed)
