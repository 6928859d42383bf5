"""Checking uploads before any model sees them: size, type by content, pixel count, decodability.

    limits = UploadLimits(max_bytes=20 * 2**20, max_pixels=40_000_000)
    img = read_upload_image(data, "holiday.jpg", limits)     # Image: RGB uint8 [3, H, W], display name, format
    with tempfile.TemporaryDirectory() as d:
        vid = save_upload_video(data, "clip.mp4", Path(d), limits)   # saved as d/upload.mp4, probed by PyAV

The type is judged by the first bytes (JPEG, PNG, WebP, BMP, GIF; MP4/MOV, WebM/Matroska, AVI), never by the
name or the declared content type. An image's size is read from its header and checked against `max_pixels`
before any pixel is decoded (decompression bombs); then PIL decodes it with only the sniffed format's decoder
allowed, so a truncated or corrupt file fails here. A client's file name is only ever shown back (its last
path component, printable characters only), never used to build a path. Every problem is an `UploadError`
carrying the HTTP status (413 too large, 415 wrong type, 400 undecodable) and one line naming the file.
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_TYPES = "JPEG, PNG, WebP, BMP or GIF"
VIDEO_TYPES = "MP4/MOV, WebM/Matroska or AVI"
DEFAULT_MAX_BYTES = 20 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_WORK_PIXELS = 12_000_000  # larger images are decoded reduced to this (the models need no more)
MAX_ASPECT = 50  # longer side / shorter side: a 1 x 39,000,000 "image" is not one a model can use
_DECODES = threading.BoundedSemaphore(2)  # full-size decodes at once: bounds the memory of concurrent uploads


class ServeError(Exception):
    """A request the server refuses: `status` is the HTTP status to answer with, the message one clear line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UploadError(ServeError):
    """A rejected upload (413 too large, 415 wrong type, 400 undecodable); the message names the file."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = DEFAULT_MAX_BYTES  # per file, and (plus a little for the form) per request body
    max_pixels: int = DEFAULT_MAX_PIXELS  # width × height of an image or a video frame
    work_pixels: int = (
        DEFAULT_WORK_PIXELS  # an image over this is decoded reduced (see `UploadedImage.scale`)
    )


@dataclass
class UploadedImage:
    """A decoded upload: RGB uint8 pixels [3, h, w] (EXIF orientation applied, as browsers show it), reduced from
    the image's `width` x `height` where it is over `UploadLimits.work_pixels`; `scale` maps the pixels' (x, y)
    back to the image's."""

    name: str
    format: str  # "jpeg", "png", ...
    pixels: torch.Tensor
    width: int = 0  # of the image as uploaded (0: the pixels')
    height: int = 0

    def __post_init__(self) -> None:
        self.width = self.width or int(self.pixels.shape[-1])
        self.height = self.height or int(self.pixels.shape[-2])

    @property
    def scale(self) -> tuple[float, float]:
        return self.width / self.pixels.shape[-1], self.height / self.pixels.shape[-2]


@dataclass
class UploadedVideo:
    """A checked video upload saved under a server-chosen name."""

    name: str
    format: str  # "mp4", "webm", "avi"
    path: Path
    width: int
    height: int
    fps: float
    duration: float
    frames: int


# ---------------------------------------------------------------------------------------------------------------------
# Names and types


def display_name(filename: str | None) -> str:
    """What a client called the file, safe to show: its last path component, printable, at most 100 characters."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    if base in ("", ".", ".."):
        return "upload"
    return base[:100]


def sniff(head: bytes) -> tuple[str, str] | None:
    """("image" | "video", format) from a file's first bytes, or None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "gif"
    if head.startswith(b"BM") and len(head) >= 26:
        return "image", "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image", "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video", "avi"
    if head[4:8] == b"ftyp":
        return "video", "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "webm"
    return None


_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP"}


def _check_size(data: bytes, name: str, limits: UploadLimits) -> None:
    if len(data) > limits.max_bytes:
        raise UploadError(
            413,
            f"{name}: {len(data) / 2**20:.1f} MB, over the upload limit of {limits.max_bytes / 2**20:g} MB",
        )
    if not data:
        raise UploadError(400, f"{name}: empty file")


def _kind(data: bytes, name: str, want: str) -> str:
    """The sniffed format; 415 when it is not one we take, or not of the kind (`want`: image, video, any)."""
    what = {"image": f"an image ({IMAGE_TYPES})", "video": f"a video ({VIDEO_TYPES})"}
    found = sniff(data[:32])
    if found is None:
        expected = what.get(want, f"{what['image']} or {what['video']}")
        raise UploadError(415, f"{name}: not {expected}; the type is judged by content, not by name")
    kind, fmt = found
    if want not in ("any", kind):
        raise UploadError(
            415, f"{name}: {what[kind].split(' (')[0]} ({fmt.upper()}), but this endpoint takes {what[want]}"
        )
    return fmt


# ---------------------------------------------------------------------------------------------------------------------
# Images


def read_upload_image(data: bytes, filename: str | None, limits: UploadLimits) -> UploadedImage:
    """Check and decode an uploaded image; `UploadError` (413/415/400) for anything wrong with it."""
    name = display_name(filename)
    _check_size(data, name, limits)
    fmt = _kind(data, name, "image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]])
        except Image.DecompressionBombError as e:  # PIL's own guard, at twice Image.MAX_IMAGE_PIXELS
            raise UploadError(
                413,
                f"{name}: declares over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP, over the limit of "
                f"{limits.max_pixels / 1e6:g} MP (checked before decoding)",
            ) from e
        except (OSError, ValueError, SyntaxError) as e:
            raise UploadError(400, f"{name}: cannot read the {fmt.upper()} header ({_first_line(e)})") from e
        with img:
            w, h = img.size
            if w * h > limits.max_pixels:
                raise UploadError(
                    413,
                    f"{name}: {w}×{h} = {w * h / 1e6:.1f} MP, over the limit of {limits.max_pixels / 1e6:g} MP "
                    "(checked before decoding)",
                )
            if w < 1 or h < 1:
                raise UploadError(400, f"{name}: image has no pixels ({w}×{h})")
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise UploadError(
                    400, f"{name}: {w}×{h}, an aspect ratio over {MAX_ASPECT}:1 (checked before decoding)"
                )
            if _transposed(img):  # shown rotated by 90 degrees: the image people see is h x w
                w, h = h, w
            with _DECODES:
                try:
                    rgb = _decode_reduced(img, limits.work_pixels)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                    raise UploadError(
                        400, f"{name}: cannot decode the {fmt.upper()} ({_first_line(e)})"
                    ) from e
                array = np.asarray(rgb, dtype=np.uint8)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return UploadedImage(name, fmt, pixels, w, h)


def _decode_reduced(img: Image.Image, work_pixels: int) -> Image.Image:
    """The image as RGB, at most about `work_pixels`: JPEGs decode reduced (DCT scaling, `draft`), others are
    reduced by an integer factor right after decoding; the EXIF orientation applied."""
    w, h = img.size
    factor = math.ceil(math.sqrt(w * h / work_pixels)) if w * h > work_pixels else 1
    if factor > 1 and img.format == "JPEG":
        img.draft("RGB", (math.ceil(w / factor), math.ceil(h / factor)))
    img.load()
    left = img.size[0] * img.size[1] / work_pixels
    if left > 1:
        img = img.reduce(math.ceil(math.sqrt(left)))
    return ImageOps.exif_transpose(img).convert("RGB")


def _transposed(img: Image.Image) -> bool:
    """Whether the EXIF orientation swaps width and height (5-8: rotated by 90 or 270 degrees)."""
    try:
        return img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # a broken EXIF block: exif_transpose ignores it too
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


# ---------------------------------------------------------------------------------------------------------------------
# Videos


def save_upload_video(
    data: bytes, filename: str | None, folder: Path, limits: UploadLimits, stem: str = "upload"
) -> UploadedVideo:
    """Check an uploaded video, save it as `folder/<stem>.<format>` and probe it with PyAV (first frame decoded)."""
    from mmkit.data.formats.video import check_video, probe
    from mmkit.errors import MMKitError

    name = display_name(filename)
    _check_size(data, name, limits)
    fmt = _kind(data, name, "video")
    path = folder / f"{stem}.{fmt}"
    path.write_bytes(data)
    try:
        info = probe(path)
    except MMKitError as e:
        raise UploadError(400, f"{name}: cannot open the {fmt.upper()} video ({_after_path(e)})") from e
    if info.width * info.height > limits.max_pixels:
        raise UploadError(
            413,
            f"{name}: frames of {info.width}×{info.height}, over the limit of {limits.max_pixels / 1e6:g} MP",
        )
    reason = check_video(path)
    if reason is not None:
        raise UploadError(400, f"{name}: cannot decode the {fmt.upper()} video ({reason})")
    return UploadedVideo(name, fmt, path, info.width, info.height, info.fps, info.duration, info.frames)


def _after_path(e: Exception) -> str:
    """An MMKitError's reason without the server-side path it starts with."""
    return str(e).split(": ", 1)[-1]


def save_upload_any(
    data: bytes, filename: str | None, folder: Path, index: int, limits: UploadLimits
) -> tuple[str, Path]:
    """For /analyze: check an image or a video and save it as `folder/<index>.<format>`; (display name, path)."""
    name = display_name(filename)
    _check_size(data, name, limits)
    _kind(data, name, "any")
    kind, fmt = sniff(data[:32]) or ("", "")
    if kind == "video":
        return name, save_upload_video(data, filename, folder, limits, stem=f"{index:04d}").path
    read_upload_image(data, filename, limits)  # the same checks as the image endpoints
    path = folder / f"{index:04d}.{'jpg' if fmt == 'jpeg' else fmt}"
    path.write_bytes(data)
    return name, path
