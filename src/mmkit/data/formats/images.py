"""Decode image files to uint8 tensors, and cheaply check files while indexing a folder.

PIL is used for both: it refuses truncated files (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False, so a cut-off
JPEG raises instead of decoding to a half-grey picture) and it guards against decompression bombs with the default
``Image.MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mmkit.errors import MMKitError

IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_JPEG_EOI = b"\xff\xd9"
_TAIL_BYTES = 1024


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has one of the accepted image extensions (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMG_EXTENSIONS)


def open_image(path: str | os.PathLike) -> Image.Image:
    """``PIL.Image.open`` for a regular file only: for anything else (a folder; a FIFO, socket or device, which
    would block or never end) an OSError is raised before the file is opened."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError("not a regular file")
    return Image.open(path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file to an RGB ``torch.uint8`` tensor of shape [3, H, W].

    Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha is dropped; 16-bit channels keep their
    high byte, grayscale as colour); a photo's EXIF orientation is applied, so a phone picture comes out upright.
    Raises ``MMKitError("<path>: cannot read image (<reason>)")`` for a corrupt, truncated or non-image file.
    """
    path = os.fspath(path)
    try:
        with open_image(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            if upright.mode.startswith("I"):  # 16-bit grayscale: its high byte, as PIL reduces 16-bit RGB
                upright = Image.fromarray(np.clip(np.asarray(upright) >> 8, 0, 255).astype(np.uint8))
            rgb = upright.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MMKitError(f"{path}: cannot read image ({_reason(exc)})") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_images(
    paths: Iterable[str | os.PathLike], failures: list[tuple[str, str]]
) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, `read_image(path)`) for each file that reads, one at a time; each that does not is appended to
    `failures` as (path, reason) instead, so that a command over many images reports them and goes on."""
    for p in paths:
        try:
            img = read_image(p)
        except MMKitError as e:
            failures.append((str(p), str(e)))
            continue
        yield str(p), img


def check_image(path: str | os.PathLike) -> str | None:
    """Cheaply check that a file looks like a readable image; return the reason when it does not, else None.

    Runs PIL's ``open`` + ``verify`` (which checks PNG chunk CRCs but little else). A JPEG whose last kilobyte has no
    end-of-image marker is fully decoded to tell a truncated file from one with trailing data.
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(path) as img:
                img.verify()
        if path.lower().endswith(_JPEG_EXTENSIONS) and not _has_jpeg_end(path):
            with Image.open(path) as img:
                img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return _reason(exc)
    return None


def _has_jpeg_end(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        return _JPEG_EOI in f.read()
