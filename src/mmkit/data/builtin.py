"""The classification builtins, which ship with installed packages and load by name, offline: ``digits``,
``mnist5k``, ``fashion-mnist``.

Each loads into memory as uint8 tensors once per call (nothing is cached on disk). Their names, descriptions and
availability checks are in the dataset registry (``mmkit.data.registry``); ``load_builtin`` is their loader, and
``list_datasets()`` their rows of ``mmkit data list``. Where the files are: ``mmkit.data.sources``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmkit.data.classification import ClassificationData, from_arrays, load_idx_dir
from mmkit.data.registry import DatasetInfo, dataset_names, find_dataset
from mmkit.data.registry import list_datasets as registered
from mmkit.data.sources import (
    FASHION_MISSING,
    FASHION_MNIST_CLASSES,
    fashion_mnist_dir,
    mnist5k_path,
    read_mnist5k,
)
from mmkit.errors import MMKitError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DatasetInfo",
    "fashion_mnist_dir",
    "is_builtin",
    "list_datasets",
    "load_builtin",
    "mnist5k_path",
    "read_mnist5k",
]

_DIGIT_CLASSES = [str(i) for i in range(10)]
_TEST_FRACTION = 0.2


def _digit_data(
    name: str, images: np.ndarray, labels: np.ndarray, val_split: float, seed: int
) -> ClassificationData:
    """A digit set (classes "0".."9", never flipped) split into train / val / test."""
    return from_arrays(
        name,
        images,
        labels,
        _DIGIT_CLASSES,
        hflip=False,
        val_split=val_split,
        seed=seed,
        test_fraction=_TEST_FRACTION,
    )


def _load_digits(val_split: float, seed: int) -> ClassificationData:
    from sklearn.datasets import load_digits  # slow to import: only when the set is loaded

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return _digit_data("digits", images, bunch.target, val_split, seed)


def _load_mnist5k(val_split: float, seed: int) -> ClassificationData:
    images, labels = read_mnist5k()
    return _digit_data("mnist5k", images, labels, val_split, seed)


def _load_fashion_mnist(val_split: float, seed: int) -> ClassificationData:
    directory = fashion_mnist_dir()
    if directory is None:
        raise MMKitError(FASHION_MISSING)
    return load_idx_dir(
        directory,
        val_split,
        seed,
        name="fashion-mnist",
        classes=list(FASHION_MNIST_CLASSES),
        hflip=True,
    )


_LOADERS: dict[str, Callable[[float, int], ClassificationData]] = {
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "fashion-mnist": _load_fashion_mnist,
}


def is_builtin(name: str) -> bool:
    """True when ``name`` is a builtin classification dataset."""
    return find_dataset(name, "classify") is not None


def list_datasets() -> list[DatasetInfo]:
    """The classification builtins, with whether each can be loaded on this machine and why not (every task's:
    ``mmkit.data.registry.list_datasets``)."""
    return [spec.info() for spec in registered("classify")]


def load_builtin(name: str, val_split: float = 0.1, seed: int = 0) -> ClassificationData:
    """Load a builtin classification dataset; MMKitError listing the known names when ``name`` is not one."""
    if name not in _LOADERS:
        raise MMKitError(f"{name}: unknown builtin dataset (known: {', '.join(dataset_names('classify'))})")
    return _LOADERS[name](val_split, seed)
