"""Image-matting folders in the Adobe Composition-1k style: images, alpha mattes and optional trimaps paired by stem.

Layout (``root`` itself, or ``root/train`` and ``root/test`` each laid out so)::

    images/<stem>.<jpg|png|...>    the composites (also accepted: merged/, image/)
    alphas/<stem>.png              grayscale alpha mattes, 8- or 16-bit (also: alpha/, alpha_copy/)
    trimaps/<stem>.png             optional: 0 background, 128 unknown, 255 foreground (also: trimap/)

Files pair by stem (the name without its extension); hidden files are ignored. An image without its alpha (or trimap,
when the folder has trimaps), an alpha or trimap without its image, an unreadable file or an alpha or trimap whose
size differs from its image's is an ``MMKitError`` line naming the file, raised when the folder is indexed (sizes are
read from the file headers) or when an item is decoded. Trimap values are snapped to 0 / 128 / 255 (below 85, up to
170, above), so a JPEG trimap still marks the unknown region as ``trimap == 128``.

Usage::

    from mmkit.data.formats.matting import read_matting_folder, write_matting_folder

    test = read_matting_folder("comp1k", split="test")   # or split=None for a folder without train/test
    image, alpha, trimap = test[0]   # uint8 [3, H, W], float32 [1, H, W] in [0, 1], uint8 [1, H, W] or None
    write_matting_folder(dataset, "out/test")  # items (image, alpha, trimap or None, ...) -> PNG files
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from mmkit.data.formats.images import is_image_file, open_image, read_image
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError

__all__ = [
    "MattingFolder",
    "MattingRecord",
    "find_matting_splits",
    "index_matting_folder",
    "read_alpha",
    "read_matting_folder",
    "read_trimap",
    "write_matting_folder",
]

IMAGE_DIRS = ("images", "merged", "image")
ALPHA_DIRS = ("alphas", "alpha", "alpha_copy")
TRIMAP_DIRS = ("trimaps", "trimap")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class MattingRecord:
    """The files of one item: its image, alpha matte and trimap (None when the folder has no trimaps)."""

    image: Path
    alpha: Path
    trimap: Path | None


def _subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in walk_files(folder, recursive=False):
        if not is_image_file(path):
            continue
        if path.stem in files:
            raise MMKitError(f"{path}: two files with the stem {path.stem!r} (also {files[path.stem].name})")
        files[path.stem] = path
    return files


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with open_image(path) as img:
            return img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = "not an image file" if isinstance(exc, UnidentifiedImageError) else str(exc).splitlines()[0]
        raise MMKitError(f"{path}: cannot read image ({reason})") from exc


def index_matting_folder(root: str | os.PathLike, *, check_sizes: bool = True) -> list[MattingRecord]:
    """The records of one matting folder (no train/test level), sorted by stem; see the module docstring."""
    root = Path(root)
    images_dir, alphas_dir = _subdir(root, IMAGE_DIRS), _subdir(root, ALPHA_DIRS)
    trimaps_dir = _subdir(root, TRIMAP_DIRS)
    if images_dir is None or alphas_dir is None:
        missing = f"{'|'.join(IMAGE_DIRS)}/" if images_dir is None else f"{'|'.join(ALPHA_DIRS)}/"
        raise MMKitError(f"{root}: not a matting folder (no {missing} sub-folder)")
    images, alphas = _by_stem(images_dir), _by_stem(alphas_dir)
    trimaps = _by_stem(trimaps_dir) if trimaps_dir is not None else {}
    if not images:
        raise MMKitError(f"{images_dir}: no image files")
    for stem, path in images.items():
        if stem not in alphas:
            raise MMKitError(f"{path}: no alpha matte {alphas_dir / stem}.png")
        if trimaps_dir is not None and stem not in trimaps:
            raise MMKitError(f"{path}: no trimap {trimaps_dir / stem}.png")
    for stem, path in [*alphas.items(), *trimaps.items()]:
        if stem not in images:
            raise MMKitError(f"{path}: no image {images_dir / stem}.* to go with it")
    records = [MattingRecord(path, alphas[stem], trimaps.get(stem)) for stem, path in images.items()]
    if check_sizes:
        for r in records:
            size = _header_size(r.image)
            for other in (r.alpha, r.trimap):
                if other is not None and _header_size(other) != size:
                    w, h = _header_size(other)
                    raise MMKitError(
                        f"{other}: {w}x{h} pixels, but its image {r.image.name} has {size[0]}x{size[1]}"
                    )
    return records


def find_matting_splits(root: str | os.PathLike) -> dict[str, Path]:
    """``{"train": root/train, "test": root/test}`` (those present) for a split folder, else ``{"all": root}``."""
    root = Path(root)
    if not root.is_dir():
        raise MMKitError(f"{root}: matting folder not found")
    splits = {s: root / s for s in SPLITS if (root / s).is_dir()}
    return splits or {"all": root}


def read_alpha(path: str | os.PathLike) -> torch.Tensor:
    """A grayscale alpha matte file as float32 [1, H, W] in [0, 1] (8-bit / 255, 16-bit / 65535; colour: luma)."""
    try:
        with open_image(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, np.float64) / 65535
            else:
                array = np.asarray(img.convert("L"), np.float32) / np.float32(255)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = "not an image file" if isinstance(exc, UnidentifiedImageError) else str(exc).splitlines()[0]
        raise MMKitError(f"{path}: cannot read alpha matte ({reason})") from exc
    return torch.from_numpy(np.clip(array, 0, 1).astype(np.float32))[None]


def read_trimap(path: str | os.PathLike) -> torch.Tensor:
    """A trimap file as uint8 [1, H, W] with values snapped to 0 / 128 / 255."""
    try:
        with open_image(path) as img:
            array = np.asarray(img.convert("L"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = "not an image file" if isinstance(exc, UnidentifiedImageError) else str(exc).splitlines()[0]
        raise MMKitError(f"{path}: cannot read trimap ({reason})") from exc
    snapped = np.where(array < 85, 0, np.where(array > 170, 255, 128)).astype(np.uint8)
    return torch.from_numpy(snapped)[None]


class MattingFolder(Dataset):
    """Matting records decoded on access to (image uint8 [3, H, W], alpha float32 [1, H, W], trimap uint8 [1, H, W]
    or None). A file that fails to decode, or whose decoded size differs from its image's, is an MMKitError.
    Items without a trimap hold None, which the default collate cannot batch: give the DataLoader a collate_fn."""

    def __init__(self, records: list[MattingRecord], root: Path | None = None) -> None:
        self.records, self.root = list(records), root

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        r = self.records[index]
        image, alpha = read_image(r.image), read_alpha(r.alpha)
        trimap = read_trimap(r.trimap) if r.trimap is not None else None
        for path, x in ((r.alpha, alpha), (r.trimap, trimap)):
            if x is not None and x.shape[-2:] != image.shape[-2:]:
                raise MMKitError(
                    f"{path}: {x.shape[-1]}x{x.shape[-2]} pixels, but its image {r.image.name} has "
                    f"{image.shape[-1]}x{image.shape[-2]}"
                )
        return image, alpha, trimap

    @property
    def has_trimaps(self) -> bool:
        return bool(self.records) and self.records[0].trimap is not None


def read_matting_folder(
    root: str | os.PathLike, split: str | None = None, *, check_sizes: bool = True
) -> MattingFolder:
    """The dataset of ``root`` (split None, for a folder without train/ and test/) or of ``root/<split>``."""
    root = Path(root)
    splits = find_matting_splits(root)
    if split is None:
        if "all" not in splits:
            raise MMKitError(f"{root}: has {' and '.join(splits)} sub-folders; choose a split")
        folder = root
    elif split in splits:
        folder = splits[split]
    else:
        raise MMKitError(
            f"{root / split}: no {split} split in this matting folder (found: {', '.join(splits)})"
        )
    return MattingFolder(index_matting_folder(folder, check_sizes=check_sizes), folder)


def write_matting_folder(dataset, out: str | os.PathLike, *, digits: int = 6) -> Path:
    """Write items ``(image uint8 [3, H, W], alpha float [1, H, W] in [0, 1], trimap uint8 [1, H, W] or None, ...)``
    as ``out/images/<i>.png``, ``out/alphas/<i>.png`` (alpha rounded to 8 bits) and, for items with a trimap,
    ``out/trimaps/<i>.png`` (give all items a trimap, or none); ``<i>`` is the index zero-padded to ``digits``. Returns ``out``."""
    out = Path(out)
    dirs = {name: out / name for name in ("images", "alphas", "trimaps")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    wrote_trimaps = False
    for i in range(len(dataset)):
        image, alpha, trimap = dataset[i][:3]
        stem = f"{i:0{digits}d}.png"
        Image.fromarray(torch.as_tensor(image).permute(1, 2, 0).numpy()).save(dirs["images"] / stem)
        a = torch.as_tensor(alpha, dtype=torch.float32).reshape(alpha.shape[-2:])
        Image.fromarray(a.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()).save(dirs["alphas"] / stem)
        if trimap is not None:
            t = torch.as_tensor(trimap).reshape(trimap.shape[-2:]).to(torch.uint8)
            Image.fromarray(t.numpy()).save(dirs["trimaps"] / stem)
            wrote_trimaps = True
    if not wrote_trimaps and not any(dirs["trimaps"].iterdir()):
        dirs["trimaps"].rmdir()
    return out
