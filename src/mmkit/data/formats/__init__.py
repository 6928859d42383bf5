"""One reader (and writer) per on-disk format: image files, ImageFolder trees, CIFAR pickles, IDX files, YOLO and
COCO, caption JSONs, LFW pairs, videos, YouTube-8M TFRecords, matting folders.

The names below load on first use, so that a module of this package that needs no torch (pairs, captions, idx)
can be imported without the others.
"""

import importlib
from typing import Any

_EXPORTS = {
    "CifarData": "cifar",
    "find_cifar_dir": "cifar",
    "read_cifar": "cifar",
    "is_idx_dir": "idx",
    "read_idx": "idx",
    "read_idx_split": "idx",
    "ImageFolderDataset": "imagefolder",
    "find_classes": "imagefolder",
    "index_image_folder": "imagefolder",
    "IMG_EXTENSIONS": "images",
    "check_image": "images",
    "is_image_file": "images",
    "read_image": "images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
