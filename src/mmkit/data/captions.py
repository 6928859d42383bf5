"""Captioning datasets: one entry point, ``load_caption_data(spec)``, and the torch ``CaptionDataset``.

``spec`` is one of
- ``caption-scenes``: 3,000 train / 300 val / 300 test synthetic scenes of 64 px (drawn once, in memory);
- ``caption-scenes-large``: 20,000 train scenes drawn on access (nothing stored), the same val and test;
- a folder with ``annotations/captions_<split>.json`` (COCO captions, e.g. what ``mmkit data synth captions``
  writes; ``paragraphs_<split>.json`` beside them are attached) or with a Karpathy ``dataset_*.json``;
- a single ``captions_*.json`` (its split is read from the name: train, val or test), or a Karpathy
  ``dataset_*.json`` (images under ``image_root``, by default the JSON's folder).
A source without a val split gets one carved from train (5 %, at least 1, seeded); one without test has an
empty test split. Image files that fail a cheap check are skipped with a warning and listed in ``skipped``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkit.data.formats.captions import (
    CaptionedImage,
    Vocabulary,
    attach_paragraphs,
    read_coco_captions,
    read_karpathy_split,
    read_paragraphs,
    split_sentences,
    tokenize,
)
from mmkit.data.formats.imagefolder import check_images
from mmkit.data.formats.images import read_image
from mmkit.data.registry import dataset_names, find_dataset, list_datasets
from mmkit.data.synthetic_captions import SyntheticCaptionScenes
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

# name -> description of the builtin caption sets (registered in mmkit.data.registry)
CAPTION_BUILTINS = {spec.name: spec.description for spec in list_datasets("caption")}
BUILTIN_SEED = 0
SPLITS = ("train", "val", "test")
_VAL_FRACTION = 0.05


class CaptionSplit:
    """Captioned images read from files: ``split[i]`` is a ``CaptionedImage``, ``split.image(i)`` its pixels."""

    def __init__(self, items: Sequence[CaptionedImage]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> CaptionedImage:
        return self.items[index]

    def image(self, index: int) -> np.ndarray:
        """The uint8 [H, W, 3] RGB picture of item ``index``; MMKitError naming the file when it cannot be read."""
        path = self.items[index].path
        if path is None:
            raise MMKitError(
                f"image {self.items[index].image_id!r}: no image file (read without an image folder)"
            )
        return read_image(path).permute(1, 2, 0).numpy()


@dataclass
class CaptionData:
    """Train/val/test splits of one caption source. Each split is a sequence of ``CaptionedImage`` with an
    ``image(i)`` method returning uint8 [H, W, 3]; ``image_size`` is the side of square synthetic images."""

    name: str
    train: Sequence[CaptionedImage]
    val: Sequence[CaptionedImage]
    test: Sequence[CaptionedImage]
    image_size: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def split(self, name: str) -> Sequence[CaptionedImage]:
        if name not in SPLITS:
            raise MMKitError(f"{self.name}: no split {name!r} (one of {', '.join(SPLITS)})")
        return getattr(self, name)

    def references(self, split: str = "val") -> dict:
        """``{image_id: captions}`` of a split: the ``refs`` of ``mmkit.metrics.captioning.score``."""
        data = self.split(split)
        return {data[i].image_id: list(data[i].captions) for i in range(len(data))}

    def sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLITS}


def load_caption_scenes(name: str, seed: int = 0) -> CaptionData:
    """The builtin ``caption-scenes`` or ``caption-scenes-large`` (its loader in the dataset registry); the same
    scenes whatever ``seed`` is given."""

    def scenes(n: int, split: str, offset: int, in_memory: bool = True) -> SyntheticCaptionScenes:
        return SyntheticCaptionScenes(n, BUILTIN_SEED, 64, split, id_offset=offset, in_memory=in_memory)

    if name == "caption-scenes-large":
        train = scenes(20000, "train", 0, in_memory=False)
    else:
        train = scenes(3000, "train", 0)
    return CaptionData(name, train, scenes(300, "val", 20000), scenes(300, "test", 20300), image_size=64)


def _checked(items: list[CaptionedImage], skipped: list[tuple[str, str]]) -> list[CaptionedImage]:
    """Items whose image file passes ``check_image``; the others go to ``skipped`` (with a warning each)."""
    with_path = [(str(item.path), k) for k, item in enumerate(items) if item.path is not None]
    good, bad = check_images(with_path)
    skipped += bad
    keep = {k for _, k in good} | {k for k, item in enumerate(items) if item.path is None}
    return [item for k, item in enumerate(items) if k in keep]


def _split_name(path: Path) -> str | None:
    stem = path.stem.lower()
    for name in ("train", "val", "test"):
        if name in stem:
            return name
    return None


def _carve_val(splits: dict[str, list[CaptionedImage]], seed: int, source: str) -> None:
    if splits["val"] or len(splits["train"]) < 2:
        return
    train = splits["train"]
    n_val = max(1, round(_VAL_FRACTION * len(train)))
    order = np.random.default_rng(seed).permutation(len(train))
    val_idx = set(order[:n_val].tolist())
    splits["val"] = [item for k, item in enumerate(train) if k in val_idx]
    splits["train"] = [item for k, item in enumerate(train) if k not in val_idx]
    logger.info(
        "%s: no val split, carved %d of %d training images (seed %d)", source, n_val, len(train), seed
    )


def _from_coco_files(files: list[Path], source: str, seed: int) -> CaptionData:
    splits: dict[str, list[CaptionedImage]] = {name: [] for name in SPLITS}
    for path in files:
        split = _split_name(path) or "train"
        items = read_coco_captions(path)
        if any(item.path is None for item in items):
            raise MMKitError(
                f"{path}: image folder not found (looked in images/<split>, <split>, images/ beside it)"
            )
        paragraphs = path.with_name(path.name.replace("captions_", "paragraphs_", 1))
        if paragraphs != path and paragraphs.is_file():
            attach_paragraphs(items, read_paragraphs(paragraphs), str(paragraphs))
        splits[split] += items
    skipped: list[tuple[str, str]] = []
    splits = {name: _checked(items, skipped) for name, items in splits.items()}
    _carve_val(splits, seed, source)
    return CaptionData(
        source,
        CaptionSplit(splits["train"]),
        CaptionSplit(splits["val"]),
        CaptionSplit(splits["test"]),
        None,
        skipped,
    )


def _from_karpathy(path: Path, image_root: Path | None, seed: int) -> CaptionData:
    splits = read_karpathy_split(path, image_root)
    skipped: list[tuple[str, str]] = []
    splits = {name: _checked(items, skipped) for name, items in splits.items()}
    _carve_val(splits, seed, str(path))
    return CaptionData(
        str(path),
        CaptionSplit(splits["train"]),
        CaptionSplit(splits["val"]),
        CaptionSplit(splits["test"]),
        None,
        skipped,
    )


def load_caption_data(
    spec: str | os.PathLike, seed: int = 0, *, image_root: str | os.PathLike | None = None
) -> CaptionData:
    """Load a builtin, a folder or a file (see the module docstring); MMKitError naming ``spec`` otherwise."""
    text = os.fspath(spec)
    builtin = find_dataset(text, "caption")
    if builtin is not None:
        return builtin.load_data(seed=seed)
    path = Path(text)
    root = Path(image_root) if image_root is not None else None
    if path.is_dir():
        coco = sorted((path / "annotations").glob("captions_*.json")) or sorted(path.glob("captions_*.json"))
        if coco:
            return _from_coco_files(coco, text, seed)
        karpathy = sorted(path.glob("dataset_*.json"))
        if karpathy:
            return _from_karpathy(karpathy[0], root or path, seed)
        raise MMKitError(f"{path}: no annotations/captions_<split>.json or dataset_*.json in this folder")
    if path.is_file() and path.suffix.lower() == ".json":
        if path.name.startswith("dataset_"):
            return _from_karpathy(path, root, seed)
        return _from_coco_files([path], text, seed)
    raise MMKitError(
        f"{text}: not a caption dataset (builtins: {', '.join(dataset_names('caption'))}; or a COCO captions folder or "
        "JSON, or a Karpathy dataset_*.json)"
    )


def _pad(ids: list[int], length: int) -> list[int]:
    return ids + [Vocabulary.PAD] * (length - len(ids))


class CaptionDataset(Dataset):
    """Images with token ids for training and evaluating captioners.

    Sentence mode: ``(image, tokens, index)``; ``tokens`` is int64 [max_len + 2]: ``<bos>``, at most
    ``max_len`` word ids, ``<eos>``, then ``<pad>`` (0). In train mode each access picks a random reference
    (torch's RNG); in eval mode the first.
    Paragraph mode: ``(image, tokens, num_sentences, index)``; ``tokens`` is int64 [max_sentences, max_len + 2],
    one row per sentence of the paragraph (``split_sentences``), rows past ``num_sentences`` all 0.

    ``image`` is ``transform(uint8 [3, H, W])``, or the image as float32 in 0-1 without a transform. An image
    that cannot be read gives None (with a warning naming the file); batch with ``collate_skip_none``.
    """

    def __init__(
        self,
        items: Sequence[CaptionedImage],
        vocab: Vocabulary,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        max_len: int = 20,
        mode: str = "sentence",
        max_sentences: int = 6,
        train: bool = True,
    ):
        if mode not in ("sentence", "paragraph"):
            raise ValueError(f"mode must be 'sentence' or 'paragraph', got {mode!r}")
        if max_len < 1 or max_sentences < 1:
            raise ValueError(f"need max_len >= 1 and max_sentences >= 1, got {max_len}, {max_sentences}")
        self.items, self.vocab, self.transform = items, vocab, transform
        self.max_len, self.mode, self.max_sentences, self.train = (
            int(max_len),
            mode,
            int(max_sentences),
            train,
        )

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, index: int) -> torch.Tensor | None:
        try:
            array = self.items.image(index)  # type: ignore[attr-defined]
        except MMKitError as exc:
            logger.warning("skipping unreadable image: %s", exc)
            return None
        image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        return self.transform(image) if self.transform is not None else image.float() / 255

    def encode(self, text: str) -> list[int]:
        """Token ids of one sentence, padded to ``max_len + 2``."""
        return _pad(self.vocab.encode(tokenize(text), self.max_len), self.max_len + 2)

    def __getitem__(self, index: int):
        index = int(index)
        item = self.items[index]
        image = self._image(index)
        if image is None:
            return None
        if self.mode == "sentence":
            if not item.captions:
                raise MMKitError(f"image {item.image_id!r} has no caption")
            pick = int(torch.randint(len(item.captions), ())) if self.train else 0
            return image, torch.tensor(self.encode(item.captions[pick]), dtype=torch.int64), index
        if item.paragraph is None:
            raise MMKitError(f"image {item.image_id!r} has no paragraph")
        sentences = split_sentences(item.paragraph)[: self.max_sentences]
        rows = [self.encode(s) for s in sentences]
        rows += [[Vocabulary.PAD] * (self.max_len + 2)] * (self.max_sentences - len(rows))
        return image, torch.tensor(rows, dtype=torch.int64), len(sentences), index
