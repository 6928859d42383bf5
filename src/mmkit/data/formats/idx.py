"""MNIST-style IDX files (``train-images-idx3-ubyte[.gz]`` …), raw or gzip-compressed.

The format: two zero bytes, a dtype code, the number of dimensions, then one big-endian uint32 per dimension and
the data in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from mmkit.errors import MMKitError

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise MMKitError(f"{path}: corrupt gzip data ({exc})") from exc
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by content) into a numpy array in native byte order.

    Checks the magic number, the dtype code, the dimensions and the data length; raises ``MMKitError`` on a
    mismatch.
    """
    path = Path(path)
    try:
        data = _read_bytes(path)
    except FileNotFoundError as exc:
        raise MMKitError(f"{path}: no such file") from exc
    if len(data) < 4:
        raise MMKitError(f"{path}: not an IDX file (only {len(data)} bytes)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or code not in _DTYPES or ndim == 0:
        raise MMKitError(f"{path}: not an IDX file (bad magic number 0x{data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MMKitError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise MMKitError(
            f"{path}: wrong IDX data length ({len(data) - header} bytes, expected {expected} for shape {dims})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def _find(directory: Path, split: str, kind: str) -> Path | None:
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            candidate = directory / f"{split}-{kind}{sep}idx{ndim}-ubyte{suffix}"
            if candidate.is_file():
                return candidate
    return None


def is_idx_dir(directory: str | os.PathLike) -> bool:
    """True when the directory holds ``train-images-idx3-ubyte[.gz]`` (or the ``.idx3-ubyte`` spelling)."""
    return _find(Path(directory), "train", "images") is not None


def read_idx_split(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Read ``<split>-images`` and ``<split>-labels`` (split is "train" or "t10k") from an IDX directory.

    Returns (images uint8 [N, H, W], labels int64 [N]), or None when the images file is absent.
    """
    directory = Path(directory)
    images_path = _find(directory, split, "images")
    if images_path is None:
        return None
    labels_path = _find(directory, split, "labels")
    if labels_path is None:
        raise MMKitError(f"{directory}: has {images_path.name} but no {split}-labels-idx1-ubyte[.gz]")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise MMKitError(
            f"{images_path}: expected uint8 images of shape [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise MMKitError(f"{labels_path}: expected labels of shape [N], got {labels.shape}")
    if len(labels) != len(images):
        raise MMKitError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}"
        )
    if len(labels) and labels.min() < 0:
        raise MMKitError(f"{labels_path}: negative label {labels.min()}")
    return images, labels.astype(np.int64)
