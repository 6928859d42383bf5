"""ImageFolder trees: ``root/<class>/<image>``, or ILSVRC-style ``root/{train,val[,test]}/<class>/<image>``.

Classes are the sorted names of the non-hidden sub-folders (as torchvision's ``find_classes``). Accepted files are
the extensions in ``IMG_EXTENSIONS`` (case-insensitive); hidden files are ignored. Each file gets a cheap check
while indexing; unreadable ones are listed in ``skipped`` instead of failing the whole folder.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mmkit.data.formats.images import IMG_EXTENSIONS, check_image, is_image_file, read_image
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


class ImageFolderDataset(Dataset):
    """Images listed as (path, label) pairs, decoded on access to (uint8 [3, H, W], label).

    An image that fails to decode returns None (with a warning naming the path); batch such items with
    ``mmkit.data.collate_skip_none``.
    """

    def __init__(self, samples: list[tuple[str, int]], classes: list[str]):
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[index]
        try:
            return read_image(path), label
        except MMKitError as exc:
            logger.warning("skipping unreadable image: %s", exc)
            return None

    def subset(self, indices) -> ImageFolderDataset:
        """A new dataset holding only the given sample indices."""
        return ImageFolderDataset([self.samples[int(i)] for i in indices], self.classes)


def find_classes(directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
    """Sorted non-hidden sub-folder names of ``directory`` and their indices; MMKitError when there are none."""
    directory = Path(directory)
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise MMKitError(f"{directory}: cannot list folder ({exc.strerror or exc})") from exc
    classes = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if not classes:
        what = "is empty" if not entries else "has no class folders (expected one sub-folder per class)"
        raise MMKitError(f"{directory}: {what}")
    return classes, {name: i for i, name in enumerate(classes)}


def list_images(directory: str | os.PathLike, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """All image files under ``directory/<class>/`` (recursively, as ``mmkit.data.walk`` walks), sorted, as
    (path, label)."""
    directory = Path(directory)
    samples: list[tuple[str, int]] = []
    for name in sorted(class_to_idx):
        class_dir = directory / name
        if not class_dir.is_dir():
            continue
        found = [str(p) for p in walk_files(class_dir, tree=directory) if is_image_file(p.name)]
        if not found:
            logger.warning("%s: class folder has no images", class_dir)
        samples += [(path, class_to_idx[name]) for path in sorted(found)]
    return samples


def check_images(samples: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Split samples into readable ones and (path, reason) for the files that fail ``check_image``."""
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(check_image, (path for path, _ in samples), chunksize=64))
    good, skipped = [], []
    for sample, reason in zip(samples, reasons, strict=True):
        if reason is None:
            good.append(sample)
        else:
            logger.warning("%s: skipped, cannot read image (%s)", sample[0], reason)
            skipped.append((sample[0], reason))
    return good, skipped


def index_image_folder(
    directory: str | os.PathLike, classes: list[str] | None = None
) -> tuple[ImageFolderDataset, list[tuple[str, str]]]:
    """Index one tree of class folders; returns the dataset and the skipped (path, reason) files.

    With ``classes`` given (the train split's), every class folder must be one of them; labels follow that order.
    """
    directory = Path(directory)
    found, _ = find_classes(directory)
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise MMKitError(f"{directory}: class folders not in train/: {', '.join(unknown[:5])}")
    samples = list_images(directory, {name: i for i, name in enumerate(classes)})
    if not samples:
        raise MMKitError(
            f"{directory}: no image files ({', '.join(e[1:] for e in IMG_EXTENSIONS)}) in class folders"
        )
    samples, skipped = check_images(samples)
    if not samples:
        raise MMKitError(f"{directory}: none of the image files could be read")
    return ImageFolderDataset(samples, classes), skipped


def split_layout(directory: str | os.PathLike) -> dict[str, Path] | None:
    """The split folders of an ILSVRC-style tree (``train/`` plus ``val/`` and/or ``test/``), else None."""
    directory = Path(directory)
    splits = {name: directory / name for name in SPLIT_NAMES if (directory / name).is_dir()}
    if "train" in splits and len(splits) > 1:
        return splits
    return None
