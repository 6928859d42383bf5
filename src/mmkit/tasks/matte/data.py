"""The matting data a `MatteTask` trains and evaluates on: the builtin composites or a matting folder.

Items are ``(image uint8 [3, H, W], alpha float32 [1, H, W], trimap uint8 [1, H, W], fg, bg)``; ``fg`` and ``bg``
(uint8 [3, H, W]) exist for the builtin only (folders hold None: the compositional loss is then left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkit.data.formats.matting import find_matting_splits, read_matting_folder
from mmkit.data.synthetic_matting import TEST_TRIMAP_WIDTH, TRAIN_TRIMAP_WIDTHS, make_trimap, matting_splits
from mmkit.errors import MMKitError
from mmkit.tasks.matte.options import BUILTIN

__all__ = ["MattingData", "collate_matting", "load_matting_data"]


@dataclass
class MattingData:
    name: str
    train: Dataset
    test: Dataset
    builtin: bool


class _FolderItems(Dataset):
    """A matting folder's items as 5-tuples: a trimap made from the alpha where the folder has none; in training
    a random ``crop``-square crop (zero-padded when smaller) and a random trimap width, seeded by (seed, index)."""

    def __init__(self, folder: Dataset, train: bool, crop: int, seed: int) -> None:
        self.folder, self.train, self.crop, self.seed = folder, train, crop, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image, alpha, trimap = self.folder[index]
        rng = np.random.default_rng(
            (self.seed, index, torch.randint(1 << 30, ()).item() if self.train else 0)
        )
        if self.train:
            s = self.crop
            h, w = image.shape[-2:]
            ph, pw = max(0, s - h), max(0, s - w)
            if ph or pw:
                pad = torch.nn.functional.pad
                image = pad(image, (0, pw, 0, ph))
                alpha = pad(alpha, (0, pw, 0, ph))
                trimap = pad(trimap, (0, pw, 0, ph)) if trimap is not None else None
                h, w = image.shape[-2:]
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            image, alpha = image[:, y : y + s, x : x + s], alpha[:, y : y + s, x : x + s]
            trimap = None  # made from the cropped alpha below, of a random width
        if trimap is None:
            a = alpha[0].numpy()
            t = make_trimap(a, rng, TRAIN_TRIMAP_WIDTHS) if self.train else make_trimap(a, TEST_TRIMAP_WIDTH)
            trimap = torch.from_numpy(np.ascontiguousarray(t))[None]
        return image.contiguous(), alpha.contiguous().float(), trimap, None, None


def load_matting_data(data: str, train_size: int = 2000, img_size: int = 64, seed: int = 0) -> MattingData:
    """The builtin (``train_size`` composites of ``img_size`` px; 200 held-out test composites) or a folder."""
    if data == BUILTIN:
        train, test = matting_splits(train_size, 200, seed, train_size=img_size)
        return MattingData(BUILTIN, train, test, True)
    root = Path(data)
    if not root.exists():
        raise MMKitError(f"--data {data}: not {BUILTIN} and no such folder")
    splits = find_matting_splits(root)
    train = read_matting_folder(root, "train" if "train" in splits else None)
    test = read_matting_folder(root, "test" if "test" in splits else ("train" if "train" in splits else None))
    return MattingData(
        str(data), _FolderItems(train, True, img_size, seed), _FolderItems(test, False, img_size, seed), False
    )


def collate_matting(items: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Fields stacked into batches when every item has the same size (training), else lists (held-out images of
    many sizes); a field that is None in any item is None."""
    fields = list(zip(*items, strict=True))
    same = len({tuple(it[0].shape) for it in items}) == 1
    out = []
    for f in fields:
        if any(x is None for x in f):
            out.append(None)
        else:
            out.append(torch.stack(f) if same else list(f))
    return tuple(out)
