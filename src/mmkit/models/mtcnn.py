"""MTCNN face detector (Zhang et al., 2016): P-Net → R-Net → O-Net cascade with five facial landmarks.

    mtcnn = load_mtcnn(device="cpu")               # real weights, offline (see `mtcnn_weights_dir`)
    dets = mtcnn.detect([img1, img2])              # uint8 CHW tensors (or PIL images, HWC uint8 arrays)
    dets[0].boxes, dets[0].scores, dets[0].landmarks   # [N, 4] x1 y1 x2 y2, [N], [N, 5, 2] (x, y)

The weights are the MIT-licensed state_dicts of the PyPI package facenet-pytorch 2.6.0 (a port of the authors'
Caffe models), copied unchanged into mmkit's package data (`mtcnn_weights/`, with their licence); facenet-pytorch
itself is neither installed nor imported. Those weights
expect pixels normalised as (x − 127.5) / 128 and, inherited from the MATLAB original, a transposed (W, H)
layout in the fully connected layers: R-Net and O-Net flatten their last feature map in (W, H, C) order.

The pipeline follows the paper and the authors' code:
  1. P-Net runs fully convolutionally over an image pyramid (scales 12/min_face · factor^k while the shorter
     side stays ≥ 12 px); every 12×12 window (stride 2) scoring ≥ thresholds[0] is a candidate. NMS 0.5 per
     scale, NMS 0.7 per image, box regression, squared boxes.
  2. R-Net re-scores 24×24 crops (> thresholds[1]); NMS 0.7, box regression, squared boxes.
  3. O-Net re-scores 48×48 crops (> thresholds[2]) and predicts landmarks; box regression, then NMS with
     intersection over the *smaller* box ("Min", 0.7), which removes boxes nested inside a face.
Here everything is batched: same-size images share pyramid forwards, crops of all images go through R-Net and
O-Net together, and crops are cut and resized at once with `torchvision.ops.roi_align` (area-like averaging,
zeros outside the image, as the original's zero padding). Coordinates are continuous pixels (pixel i spans
[i, i + 1)); final boxes are clipped to the image.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align

from mmkit.errors import MMKitError
from mmkit.models.weights import load_state_dict_file

log = logging.getLogger(__name__)

WEIGHT_FILES = {"pnet": "pnet.pt", "rnet": "rnet.pt", "onet": "onet.pt"}
WEIGHTS_ENV = "MMKIT_MTCNN_DIR"
PACKAGED_WEIGHTS = Path(__file__).parent / "mtcnn_weights"
_INSTALL_HINT = (
    "they ship with mmkit, so reinstall it (pip install --force-reinstall mmkit, or `make install` in its source tree);"
    " or fetch them without installing anything: pip download --no-deps facenet-pytorch==2.6.0 && python -m zipfile"
    f" -e facenet_pytorch-2.6.0-py3-none-any.whl fp, then set ${WEIGHTS_ENV}=$PWD/fp/facenet_pytorch/data"
)
_CHUNK = 512  # crops per R-Net / O-Net forward (bounds memory on images with many candidates)

__all__ = [
    "FaceDetections",
    "MTCNN",
    "ONet",
    "PNet",
    "RNet",
    "load_mtcnn",
    "mtcnn_weights_dir",
]


# ---------------------------------------------------------------------------------------------------------------
# The three networks (attribute names = the state_dict keys of the facenet-pytorch files)


def _flatten_wh(x: Tensor) -> Tensor:
    """Flatten [B, C, H, W] in (W, H, C) order: the layout the fully connected weights were trained with."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12×12 window per output cell (stride 2).

    Returns (box regression [B, 4, h, w], face probability [B, h, w])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)[:, 1]


class _CropNet(nn.Module):
    """R-Net and O-Net: conv-PReLU stages `conv<i>`/`prelu<i>` (`stages`: (channels, kernel, max-pool kernel or 0)
    each; the pools are stride 2 and ceil-mode), then on the (W, H, C)-flattened map of `flat` values a dense layer
    + PReLU (`dense<n>`/`prelu<n>`, n = stages + 1) and the linear heads `dense<n+1>_<j>` (`heads`: their sizes)."""

    def __init__(
        self, stages: tuple[tuple[int, int, int], ...], flat: int, dense: int, heads: tuple[int, ...]
    ) -> None:
        super().__init__()
        cin = 3
        for i, (cout, k, pool) in enumerate(stages, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k))
            setattr(self, f"prelu{i}", nn.PReLU(cout))
            if pool:
                setattr(self, f"pool{i}", nn.MaxPool2d(pool, 2, ceil_mode=True))
            cin = cout
        self.n = n = len(stages) + 1
        setattr(self, f"dense{n}", nn.Linear(flat, dense))
        setattr(self, f"prelu{n}", nn.PReLU(dense))
        self.heads = [f"dense{n + 1}_{j}" for j in range(1, len(heads) + 1)]
        for name, size in zip(self.heads, heads, strict=True):
            setattr(self, name, nn.Linear(dense, size))

    def run(self, x: Tensor) -> list[Tensor]:
        """The heads' outputs, in order (face / not-face logits first, then box offsets, ...)."""
        for i in range(1, self.n):
            x = getattr(self, f"prelu{i}")(getattr(self, f"conv{i}")(x))
            if hasattr(self, f"pool{i}"):
                x = getattr(self, f"pool{i}")(x)
        x = getattr(self, f"prelu{self.n}")(getattr(self, f"dense{self.n}")(_flatten_wh(x)))
        return [getattr(self, name)(x) for name in self.heads]


class RNet(_CropNet):
    """Refinement network on 24×24 crops. Returns (box regression [B, 4], face probability [B])."""

    def __init__(self) -> None:
        super().__init__(((28, 3, 3), (48, 3, 3), (64, 2, 0)), flat=576, dense=128, heads=(2, 4))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        face, box = self.run(x)
        return box, face.softmax(1)[:, 1]


class ONet(_CropNet):
    """Output network on 48×48 crops.

    Returns (box regression [B, 4], landmarks [B, 10] = 5 x then 5 y relative to the box, face probability [B])."""

    def __init__(self) -> None:
        stages = ((32, 3, 3), (64, 3, 3), (64, 3, 2), (128, 2, 0))
        super().__init__(stages, flat=1152, dense=256, heads=(2, 4, 10))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        face, box, landmarks = self.run(x)
        return box, landmarks, face.softmax(1)[:, 1]


# ---------------------------------------------------------------------------------------------------------------
# Box helpers


@dataclass
class FaceDetections:
    """The faces found in one image, best score first. Pixel coordinates in the input image.

    boxes [N, 4] (x1, y1, x2, y2); scores [N] (O-Net face probability); landmarks [N, 5, 2] (x, y) of the left
    eye, right eye, nose, left and right mouth corner ("left" as seen in the image)."""

    boxes: Tensor
    scores: Tensor
    landmarks: Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def to(self, device: torch.device | str) -> FaceDetections:
        return FaceDetections(self.boxes.to(device), self.scores.to(device), self.landmarks.to(device))


def _net_input(x: Tensor) -> Tensor:
    """Pixels in [0, 255] → the networks' input range, (x − 127.5) / 128.

    On the CPU in channels_last layout: oneDNN's convolutions and max-pooling are faster in it (640×480 photo,
    2 threads: 54 instead of 78 ms per image)."""
    x = (x - 127.5) * 0.0078125
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _calibrate(boxes: Tensor, reg: Tensor) -> Tensor:
    """Apply the regressed offsets, given as fractions of the box width / height, to each corner."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * wh


def _square(boxes: Tensor) -> Tensor:
    """Grow each box to a square with side max(w, h), keeping its centre."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], 1)


def _nms_min(boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float) -> Tensor:
    """Greedy NMS where overlap is intersection / area of the smaller box (MTCNN's "Min"), per group.

    torchvision's nms only offers IoU; the candidates here are few (after O-Net), so a greedy pass over the
    precomputed overlap matrix is cheap. Returns kept indices, best score first."""
    order = scores.argsort(descending=True)
    b, g = boxes[order], groups[order]
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    overlap = inter / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-9)
    suppress = ((overlap > threshold) & (g[:, None] == g[None, :])).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~suppress[i, i + 1 :]
    return order[torch.from_numpy(keep).to(order.device)]


def _crops(images: list[Tensor], boxes: Tensor, image_idx: Tensor, size: int) -> Tensor:
    """Cut `boxes` out of their images and resize to size×size, normalised: [K, 3, size, size].

    roi_align with adaptive sampling averages several bilinear samples per output pixel (area-like
    downsampling); parts of a box outside the image read as zero (black), like the original's zero padding."""
    out = boxes.new_empty(len(boxes), 3, size, size)
    for i, img in enumerate(images):
        sel = (image_idx == i).nonzero().squeeze(1)
        if len(sel):
            out[sel] = roi_align(img[None], [boxes[sel]], size, sampling_ratio=-1, aligned=True)
    return _net_input(out)


def _chunked(net: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    outs = [net(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)]
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


# ---------------------------------------------------------------------------------------------------------------
# Input conversion


def _to_chw_uint8(image) -> Tensor:
    """A uint8 CHW tensor (3 channels) from a uint8 CHW/HW tensor, a PIL image or an HWC/HW uint8 array."""
    if isinstance(image, Tensor):
        t = image[None] if image.dim() == 2 else image
        if t.dim() != 3:
            raise MMKitError(f"MTCNN.detect: expected a CHW image tensor, got shape {tuple(image.shape)}")
    else:
        if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
            image = np.asarray(image.convert("RGB"))
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise MMKitError(f"MTCNN.detect: expected an HWC image array, got shape {arr.shape}")
        arr = np.ascontiguousarray(arr)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)
    if t.dtype != torch.uint8:
        raise MMKitError(f"MTCNN.detect: expected uint8 pixels (0-255), got {t.dtype}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 4:  # RGBA: drop alpha
        t = t[:3]
    if t.shape[0] != 3:
        raise MMKitError(f"MTCNN.detect: expected 1, 3 or 4 channels, got shape {tuple(t.shape)}")
    return t


def _as_image_list(images) -> list:
    if isinstance(images, Tensor):
        return list(images) if images.dim() == 4 else [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # PIL image


# ---------------------------------------------------------------------------------------------------------------
# The detector


class MTCNN(nn.Module):
    """The three MTCNN networks and the cascade that runs them. Build with `load_mtcnn()` for real weights."""

    def __init__(self) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()

    @property
    def device(self) -> torch.device:
        return self.pnet.conv1.weight.device

    def forward(self, images) -> list[FaceDetections]:
        """Same as `detect` with the default settings."""
        return self.detect(images)

    @torch.no_grad()
    def detect(
        self,
        images,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> list[FaceDetections]:
        """Find faces in each image; one `FaceDetections` per image, on the module's device.

        `images`: a list of uint8 CHW tensors of any sizes (or one, or a [B, 3, H, W] batch); PIL images and
        HWC uint8 arrays are accepted too, grayscale is repeated to RGB. `min_face_size` (pixels) sets the
        largest pyramid scale, `factor` the ratio between scales, `thresholds` the P/R/O-Net score cut-offs."""
        if not 0 < factor < 1:
            raise MMKitError(f"MTCNN.detect: factor must be in (0, 1), got {factor}")
        if min_face_size <= 0:
            raise MMKitError(f"MTCNN.detect: min_face_size must be positive, got {min_face_size}")
        dtype = self.pnet.conv1.weight.dtype
        imgs = [_to_chw_uint8(im).to(self.device, dtype) for im in _as_image_list(images)]
        if not imgs:
            return []
        boxes, idx = self._stage1(imgs, min_face_size, thresholds[0], factor)
        boxes, idx = self._stage2(imgs, boxes, idx, thresholds[1])
        boxes, scores, marks, idx = self._stage3(imgs, boxes, idx, thresholds[2])
        return self._split(imgs, boxes, scores, marks, idx)

    def _stage1(
        self, imgs: list[Tensor], min_face: float, threshold: float, factor: float
    ) -> tuple[Tensor, Tensor]:
        """P-Net over the pyramid of each image (same-size images batched). Returns squared boxes, image index."""
        windows, regs, scores, image_idx, levels = [], [], [], [], []
        n_levels = 1
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(imgs):
            by_size.setdefault(tuple(im.shape[1:]), []).append(i)
        for (h, w), members in by_size.items():
            batch = torch.stack([imgs[i] for i in members])
            members_t = torch.tensor(members, device=self.device)
            s, level = 12.0 / min_face, 0  # P-Net sees 12 px windows: a min_face face becomes 12 px
            while min(h, w) * s >= 12:
                hs, ws = math.ceil(h * s), math.ceil(w * s)
                reg, prob = self.pnet(_net_input(F.interpolate(batch, size=(hs, ws), mode="area")))
                b, y, x = (prob >= threshold).nonzero(as_tuple=True)
                cells = torch.stack([2 * x, 2 * y, 2 * x + 12, 2 * y + 12], 1).to(reg.dtype)
                windows.append(cells / cells.new_tensor([ws / w, hs / h, ws / w, hs / h]))  # actual ratios
                regs.append(reg[b, :, y, x])
                scores.append(prob[b, y, x])
                image_idx.append(members_t[b])
                levels.append(torch.full_like(b, level))
                s, level = s * factor, level + 1
            n_levels = max(n_levels, level)
        if not windows:
            return imgs[0].new_zeros(0, 4), torch.zeros(0, dtype=torch.long, device=self.device)
        windows, regs, scores = torch.cat(windows), torch.cat(regs), torch.cat(scores)
        image_idx, levels = torch.cat(image_idx), torch.cat(levels)
        # NMS on the raw windows (as the original): 0.5 within each (image, scale), then 0.7 within each image
        keep = batched_nms(windows, scores, image_idx * n_levels + levels, 0.5)
        keep = keep[batched_nms(windows[keep], scores[keep], image_idx[keep], 0.7)]
        return _square(_calibrate(windows[keep], regs[keep])), image_idx[keep]

    def _stage2(
        self, imgs: list[Tensor], boxes: Tensor, idx: Tensor, threshold: float
    ) -> tuple[Tensor, Tensor]:
        """R-Net on 24×24 crops: filter, NMS 0.7 per image, calibrate, square."""
        if not len(boxes):
            return boxes, idx
        reg, prob = _chunked(self.rnet, _crops(imgs, boxes, idx, 24))
        ok = prob > threshold
        boxes, idx, reg, prob = boxes[ok], idx[ok], reg[ok], prob[ok]
        keep = batched_nms(boxes, prob, idx, 0.7)
        return _square(_calibrate(boxes[keep], reg[keep])), idx[keep]

    def _stage3(
        self, imgs: list[Tensor], boxes: Tensor, idx: Tensor, threshold: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """O-Net on 48×48 crops: filter, landmarks, calibrate, "Min" NMS 0.7 per image."""
        if not len(boxes):
            return boxes, boxes.new_zeros(0), boxes.new_zeros(0, 5, 2), idx
        reg, marks, prob = _chunked(self.onet, _crops(imgs, boxes, idx, 48))
        ok = prob > threshold
        boxes, idx, reg, marks, prob = boxes[ok], idx[ok], reg[ok], marks[ok], prob[ok]
        wh = boxes[:, 2:] - boxes[:, :2]
        marks = boxes[:, None, :2] + torch.stack([marks[:, :5], marks[:, 5:]], 2) * wh[:, None]
        boxes = _calibrate(boxes, reg)
        keep = _nms_min(boxes, prob, idx, 0.7)
        return boxes[keep], prob[keep], marks[keep], idx[keep]

    @staticmethod
    def _split(
        imgs: list[Tensor], boxes: Tensor, scores: Tensor, marks: Tensor, idx: Tensor
    ) -> list[FaceDetections]:
        """Per-image results, best score first, boxes clipped to their image."""
        out = []
        for i, im in enumerate(imgs):
            sel = (idx == i).nonzero().squeeze(1)
            sel = sel[scores[sel].argsort(descending=True)]
            h, w = im.shape[1:]
            b = boxes[sel].clone()
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
            out.append(FaceDetections(b.float(), scores[sel].float(), marks[sel].float()))
        return out


# ---------------------------------------------------------------------------------------------------------------
# Weights


def mtcnn_weights_dir() -> Path:
    """The folder with pnet.pt, rnet.pt and onet.pt: `$MMKIT_MTCNN_DIR` if set, else the package's own copy
    (`PACKAGED_WEIGHTS`), else an installed facenet-pytorch's data folder.

    facenet-pytorch is located with `importlib.util.find_spec`, which does not import it."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        folder = Path(env).expanduser()
        if _missing(folder):
            raise MMKitError(f"{folder}: ${WEIGHTS_ENV} folder lacks {', '.join(_missing(folder))}")
        return folder
    folders = [PACKAGED_WEIGHTS]
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    for folder in folders:
        if not _missing(folder):
            return folder
    missing = ", ".join(_missing(PACKAGED_WEIGHTS))
    raise MMKitError(f"{PACKAGED_WEIGHTS}: MTCNN weight files {missing} missing; {_INSTALL_HINT}")


def _missing(folder: Path) -> list[str]:
    return [f for f in WEIGHT_FILES.values() if not (folder / f).is_file()]


def load_mtcnn(weights_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> MTCNN:
    """An `MTCNN` with the published weights, in eval mode on `device` (`weights_dir` defaults to
    `mtcnn_weights_dir()`). A missing, corrupt or mismatched file is an `MMKitError` naming it."""
    folder = Path(weights_dir) if weights_dir is not None else mtcnn_weights_dir()
    model = MTCNN()
    for name, filename in WEIGHT_FILES.items():
        path = folder / filename
        sd = load_state_dict_file(path)
        try:
            getattr(model, name).load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise MMKitError(
                f"{path}: not the MTCNN {name} state_dict ({str(e).splitlines()[0][:120]})"
            ) from e
    log.debug("loaded MTCNN weights from %s", folder)
    return model.to(device).eval()
