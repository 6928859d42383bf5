"""Box-aware transforms (torchvision.transforms.v2 + ``tv_tensors.BoundingBoxes``) from a detection item to a
float32 [3, S, S] image in 0-1 and its target, with boxes in pixels of the output image.

Eval letterboxes: the longest side is resized to S keeping the aspect ratio and the rest padded with gray 114,
centered. The target gains ``orig_size`` (h, w), ``scale`` and ``pad`` (left, top), so predictions map back to
the original image with ``unletterbox_boxes(boxes, scale, pad)``. Eval with ``letterbox=False`` resizes to S x S
instead (OpenCV's ``blobFromImage``): ``scale`` is then the (x, y) pair and ``pad`` (0, 0). Train letterboxes the same way, then applies
scale jitter and translation (RandomAffine), mild color jitter and an optional flip, and drops boxes squeezed
below 2 px (there ``scale``/``pad`` describe the letterbox step only). Random draws come from torch's global RNG,
so ``torch.manual_seed`` reproduces them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mmkit.data.transforms import TransformedDataset

PAD_VALUE = 114  # gray, as in the YOLO letterbox
TRAIN_SCALE = (0.6, 1.4)
TRAIN_TRANSLATE = (0.1, 0.1)
MIN_BOX_SIZE = 2.0


def letterbox_params(
    height: int, width: int, img_size: int
) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """(scale, (pad_left, pad_top), (new_height, new_width)) that fit an image into img_size x img_size."""
    scale = img_size / max(height, width)
    new_h = min(img_size, max(1, round(height * scale)))
    new_w = min(img_size, max(1, round(width * scale)))
    return scale, ((img_size - new_w) // 2, (img_size - new_h) // 2), (new_h, new_w)


def unletterbox_boxes(
    boxes: torch.Tensor,
    scale: float | tuple[float, float],
    pad: tuple[int, int],
    orig_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Map xyxy boxes from the letterboxed (or, with an (x, y) `scale`, resized) image back to original pixels
    (clipped to ``orig_size`` if given)."""
    left, top = pad
    sx, sy = scale if isinstance(scale, tuple | list) else (scale, scale)
    offset = torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)
    out = (boxes - offset) / torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype, device=boxes.device)
    if orig_size is not None:
        height, width = orig_size
        out[..., 0::2] = out[..., 0::2].clamp(0, width)
        out[..., 1::2] = out[..., 1::2].clamp(0, height)
    return out


class Letterbox(v2.Transform):
    """Resize the longest side to ``size`` keeping the aspect ratio, then pad to a centered square (boxes follow)."""

    def __init__(self, size: int, fill: int = PAD_VALUE):
        super().__init__()
        self.size = int(size)
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        _, (left, top), (new_h, new_w) = letterbox_params(height, width, self.size)
        padding = [left, top, self.size - new_w - left, self.size - new_h - top]
        return {"resize": (new_h, new_w) != (height, width), "new_size": [new_h, new_w], "padding": padding}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.BoundingBoxes):
            return inpt
        if params["resize"]:
            inpt = F.resize(inpt, params["new_size"], antialias=True)
        return F.pad(inpt, params["padding"], fill=self.fill)


class DetectionTransform:
    """``(uint8 image [3, H, W], target) -> (float32 [3, S, S], target)``; see the module docstring."""

    def __init__(self, train: bool, img_size: int, *, hflip: bool = False, letterbox: bool = True):
        self.train, self.letterbox = train, letterbox or train
        self.img_size = int(img_size)
        size = self.img_size
        steps: list[v2.Transform] = [
            Letterbox(size) if self.letterbox else v2.Resize((size, size), antialias=True)
        ]
        if train:
            steps.append(
                v2.RandomAffine(
                    degrees=0,
                    translate=TRAIN_TRANSLATE,
                    scale=TRAIN_SCALE,
                    fill={tv_tensors.Image: PAD_VALUE, "others": 0},
                )
            )
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if train:
            # on float images (cheaper than on uint8); no hue jitter: it costs more than the rest together
            steps.append(v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25))
            if hflip:
                steps.append(v2.RandomHorizontalFlip())
            steps.append(v2.SanitizeBoundingBoxes(min_size=MIN_BOX_SIZE))
        self.pipeline = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        height, width = image.shape[-2:]
        boxes = tv_tensors.BoundingBoxes(
            torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4),
            format=tv_tensors.BoundingBoxFormat.XYXY,
            canvas_size=(height, width),
        )
        sample = {"boxes": boxes, "labels": torch.as_tensor(target["labels"], dtype=torch.int64)}
        out_image, out = self.pipeline(tv_tensors.Image(image), sample)
        scale, pad, _ = letterbox_params(height, width, self.img_size)
        if not self.letterbox:
            scale, pad = (self.img_size / width, self.img_size / height), (0, 0)
        new_target = dict(target)
        new_target.update(
            boxes=out["boxes"].as_subclass(torch.Tensor),
            labels=out["labels"],
            orig_size=(int(height), int(width)),
            scale=scale,
            pad=pad,
        )
        return out_image.as_subclass(torch.Tensor), new_target

    def __repr__(self) -> str:
        return f"DetectionTransform(train={self.train}, img_size={self.img_size}, pipeline={self.pipeline})"


def build_detection_transforms(
    train: bool, img_size: int, *, hflip: bool = False, letterbox: bool = True
) -> Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]:
    """The train (augmenting) or eval (letterbox, or with `letterbox=False` a plain resize) transform for detection
    items; see the module docstring."""
    return DetectionTransform(train, img_size, hflip=hflip, letterbox=letterbox)


class TransformedDetectionDataset(TransformedDataset):
    """Apply a detection transform to each (image, target) item; None items (unreadable images) pass through.

    ``target(i)`` and ``size(i)`` of the wrapped dataset stay available (untransformed, for ground truth).
    """

    def apply(self, item):
        return self.transform(*item)

    def target(self, index: int) -> dict:
        return self.dataset.target(index)

    def size(self, index: int) -> tuple[int, int]:
        return self.dataset.size(index)
