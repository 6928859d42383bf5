"""CIFAR-10 / CIFAR-100 "python version" directories (pickled batches).

Pickle can run code when it loads, so it is only used on trusted data in CIFAR's own format: only files with
CIFAR's own names (``data_batch_1..5``, ``test_batch``, ``batches.meta``; CIFAR-100 ``train``, ``test``, ``meta``)
are ever unpickled, and through an unpickler that refuses every global except the few numpy names a pickled
array needs (and ``_codecs.encode``).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmkit.errors import MMKitError

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = (*CIFAR10_TRAIN, "test_batch", "batches.meta")
CIFAR100_FILES = ("train", "test", "meta")
_SUBDIRS = ("cifar-10-batches-py", "cifar-100-python")

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


@dataclass
class CifarData:
    """Arrays read from a CIFAR directory: images uint8 [N, 3, 32, 32], labels int64 [N]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    classes: list[str]
    variant: str  # "cifar10" or "cifar100"


def cifar_variant(directory: str | os.PathLike) -> str | None:
    """Return "cifar10" or "cifar100" when the directory holds CIFAR's python files, else None."""
    directory = Path(directory)
    if (directory / "batches.meta").is_file() and (directory / CIFAR10_TRAIN[0]).is_file():
        return "cifar10"
    if all((directory / name).is_file() for name in CIFAR100_FILES):
        return "cifar100"
    return None


def find_cifar_dir(directory: str | os.PathLike) -> Path | None:
    """The CIFAR directory itself, or its ``cifar-10-batches-py`` / ``cifar-100-python`` child; None if neither."""
    directory = Path(directory)
    for candidate in (directory, *(directory / sub for sub in _SUBDIRS)):
        if candidate.is_dir() and cifar_variant(candidate):
            return candidate
    return None


def _load_pickle(path: Path) -> dict:
    if path.name not in CIFAR10_FILES + CIFAR100_FILES:
        raise ValueError(f"{path}: not a CIFAR file name; refusing to unpickle it")
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise MMKitError(f"{path}: no such file") from exc
    except Exception as exc:  # any unpickling failure means a malformed file
        raise MMKitError(f"{path}: not a CIFAR pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise MMKitError(f"{path}: not a CIFAR pickle (holds a {type(obj).__name__}, expected a dict)")
    return obj


def _get(obj: dict, path: Path, *keys: str):
    for key in keys:
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
    raise MMKitError(f"{path}: not a CIFAR pickle (no {' or '.join(repr(k) for k in keys)} entry)")


def _decode(names) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    obj = _load_pickle(path)
    data = np.asarray(_get(obj, path, "data"))
    labels = np.asarray(_get(obj, path, label_key), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise MMKitError(f"{path}: expected uint8 data of shape [N, 3072], got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise MMKitError(f"{path}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise MMKitError(f"{path}: label out of range 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar(directory: str | os.PathLike) -> CifarData:
    """Read a CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100 (``train``, ``test``,
    ``meta``; fine labels) directory. Missing ``data_batch_k`` files are allowed if at least the first exists."""
    directory = Path(directory)
    variant = cifar_variant(directory)
    if variant is None:
        raise MMKitError(f"{directory}: not a CIFAR-10/100 python directory")
    if variant == "cifar10":
        meta_path = directory / "batches.meta"
        classes = _decode(_get(_load_pickle(meta_path), meta_path, "label_names"))
        batches = [directory / n for n in CIFAR10_TRAIN if (directory / n).is_file()]
        test_path, label_key = directory / "test_batch", "labels"
    else:
        meta_path = directory / "meta"
        classes = _decode(_get(_load_pickle(meta_path), meta_path, "fine_label_names"))
        batches = [directory / "train"]
        test_path, label_key = directory / "test", "fine_labels"
    parts = [_read_batch(p, label_key, len(classes)) for p in batches]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images = test_labels = None
    if test_path.is_file():
        test_images, test_labels = _read_batch(test_path, label_key, len(classes))
    return CifarData(train_images, train_labels, test_images, test_labels, classes, variant)
