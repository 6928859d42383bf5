"""YOLOv3 (Redmon & Farhadi, 2018): Darknet-53, a three-scale FPN-style neck and heads; and YOLOv3-tiny (2 scales).

    model = get_model("yolov3-tiny", num_classes=10)
    outs = model(images)                        # raw maps, one per scale: [B, A, H, W, 5 + C]
    dets = postprocess(model.inference(images)) # per image {"boxes", "scores", "labels"}

Box parametrization (shared by `decode` and `mmkit.losses.detection.YOLOv3Loss`, see `decode_boxes`), with the
well-known refinements of later YOLO papers that keep the YOLOv3 architecture:
  centre = (2·σ(t_xy) − 0.5 + cell) · stride   the offset spans (−0.5, 1.5) so a ground truth may also be
                                               assigned to the neighbouring cells (YOLOv4 "grid sensitivity")
  size   = (2·σ(t_wh))² · anchor               bounded to 0..4× the anchor, matching the loss's anchor-ratio
                                               threshold of 4 (Scaled-YOLOv4), instead of exp(t_wh) · anchor
Anchors are in pixels at `anchor_size` (a buffer, saved with the weights) and are rescaled at run time by
max(H, W) / anchor_size of the input, so one model runs at any input size (a multiple of 32).

Inference: `model.fused()` is a copy with each BatchNorm folded into its convolution, and `fused(pack=True)` on the
CPU also keeps every convolution's weights in oneDNN's blocked layout and runs convolution + LeakyReLU as one oneDNN
call (what the predictor runs): the same outputs to float rounding, for inference only.

`box_coding="darknet"` decodes as Darknet's YOLOv3 does (centre = (σ(t_xy) + cell) · stride, size =
exp(t_wh) · anchor): the coding of weights read from Darknet files (`mmkit.models.darknet`). Training uses mmkit's
coding: `reset_classifier` (new heads for new classes) switches back to it.
"""

from __future__ import annotations

import copy
import math
import platform

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import batched_nms

from mmkit.errors import MMKitError
from mmkit.models.registry import model_family

# The Darknet COCO anchors at 416 px, (w, h) in pixels, small scale first.
YOLOV3_ANCHORS: list[list[tuple[float, float]]] = [
    [(10, 13), (16, 30), (33, 23)],
    [(30, 61), (62, 45), (59, 119)],
    [(116, 90), (156, 198), (373, 326)],
]
YOLOV3_TINY_ANCHORS: list[list[tuple[float, float]]] = [
    [(10, 14), (23, 27), (37, 58)],
    [(81, 82), (135, 169), (344, 319)],
]
OBJ_PRIOR = 0.01  # initial objectness probability of every prediction
BOX_CODINGS = ("mmkit", "darknet")


# ---------------------------------------------------------------------------------------------------------------
# Building blocks


class ConvBNAct(nn.Sequential):
    """Darknet's convolutional layer: conv (no bias) → BatchNorm → LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, s, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03),
            nn.LeakyReLU(0.1, inplace=True),
        )


class ConvAct(nn.Module):
    """Inference form of a convolution with a bias, then LeakyReLU(`slope`) (None: no activation): a ConvBNAct with
    its BatchNorm folded into the convolution, or a prediction convolution. With `pack` (CPU, float32) the weights
    are reordered into oneDNN's blocked layout once, here, instead of on every call, and the activation runs inside the
    convolution (a oneDNN post-op, the op inductor's frozen CPU graphs call) instead of as a second pass."""

    def __init__(self, conv: nn.Conv2d, slope: float | None, pack: bool = False) -> None:
        super().__init__()
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.slope, self.packed = slope, pack
        weight = conv.weight.detach()
        if pack:
            weight = torch.ops.mkldnn._reorder_convolution_weight(weight, *self.args)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.packed:
            attr, scalars = ("none", []) if self.slope is None else ("leaky_relu", [self.slope])
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, *self.args, attr, scalars, ""
            )
        padding, stride, dilation, groups = self.args
        x = F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)
        return x if self.slope is None else F.leaky_relu(x, self.slope, inplace=True)


def can_pack(device: torch.device) -> bool:
    """Whether `ConvAct(pack=True)` runs here: the CPU of an x86 machine, with PyTorch's oneDNN and the two oneDNN
    ops `torch.compile` itself uses there (internal ones: a torch without them gets the folded, unpacked model)."""
    mkldnn = torch.ops.mkldnn
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and platform.machine().lower() in ("x86_64", "amd64")
        and hasattr(mkldnn, "_reorder_convolution_weight")
        and hasattr(mkldnn, "_convolution_pointwise")
    )


def _fuse_children(module: nn.Module, pack: bool) -> None:
    """Each ConvBNAct under `module` as a ConvAct with its BatchNorm folded in; with `pack`, each other convolution
    (the prediction ones) too."""
    for name, child in module.named_children():
        if isinstance(child, ConvBNAct):
            conv, bn, act = child
            setattr(module, name, ConvAct(fuse_conv_bn_eval(conv, bn), act.negative_slope, pack))
        elif pack and isinstance(child, nn.Conv2d):
            setattr(module, name, ConvAct(child, None, pack))
        else:
            _fuse_children(child, pack)


class Residual(nn.Module):
    """Darknet-53 residual block: 1×1 halving the channels, 3×3 restoring them, plus the input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c, c // 2, 1), ConvBNAct(c // 2, c, 3))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _five(cin: int, c: int) -> nn.Sequential:
    """The five alternating 1×1 / 3×3 convolutions before each YOLOv3 output."""
    return nn.Sequential(
        ConvBNAct(cin, c, 1),
        ConvBNAct(c, 2 * c, 3),
        ConvBNAct(2 * c, c, 1),
        ConvBNAct(c, 2 * c, 3),
        ConvBNAct(2 * c, c, 1),
    )


class Darknet53(nn.Module):
    """The YOLOv3 backbone: 52 convolutions in 5 downsampling stages with 1, 2, 8, 8, 4 residual blocks.

    Returns the stride-8, 16 and 32 feature maps. `ch` maps a Darknet channel count to the scaled one."""

    def __init__(self, in_chans: int, ch) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_chans, ch(32), 3)
        stages, cin = [], ch(32)
        for cout, n in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
            stages.append(
                nn.Sequential(ConvBNAct(cin, ch(cout), 3, 2), *[Residual(ch(cout)) for _ in range(n)])
            )
            cin = ch(cout)
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[2], feats[3], feats[4]


def _head(cin: int, cmid: int, cout: int) -> nn.Sequential:
    """One output branch: a 3×3 ConvBNAct and the final 1×1 prediction convolution (with bias)."""
    return nn.Sequential(ConvBNAct(cin, cmid, 3), nn.Conv2d(cmid, cout, 1))


class _YOLOv3Body(nn.Module):
    """Darknet-53 + the three-scale neck (upsample ×2, concatenate with the backbone, five convs) + heads."""

    head_names = ("head8", "head16", "head32")  # the output branches, small stride first

    def __init__(self, in_chans: int, ch, out: int) -> None:
        super().__init__()
        self.backbone = Darknet53(in_chans, ch)
        self.neck32 = _five(ch(1024), ch(512))
        self.head32 = _head(ch(512), ch(1024), out)
        self.lat32 = ConvBNAct(ch(512), ch(256), 1)
        self.neck16 = _five(ch(256) + ch(512), ch(256))
        self.head16 = _head(ch(256), ch(512), out)
        self.lat16 = ConvBNAct(ch(256), ch(128), 1)
        self.neck8 = _five(ch(128) + ch(256), ch(128))
        self.head8 = _head(ch(128), ch(256), out)

    def forward(self, x: Tensor) -> list[Tensor]:
        c3, c4, c5 = self.backbone(x)
        p5 = self.neck32(c5)
        p4 = self.neck16(torch.cat([F.interpolate(self.lat32(p5), scale_factor=2.0, mode="nearest"), c4], 1))
        p3 = self.neck8(torch.cat([F.interpolate(self.lat16(p4), scale_factor=2.0, mode="nearest"), c3], 1))
        return [self.head8(p3), self.head16(p4), self.head32(p5)]


class _MaxPoolSame(nn.Module):
    """Darknet's size-2 stride-1 max-pool that keeps the spatial size (pads right/bottom by repeating the edge)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)


class _YOLOv3TinyBody(nn.Module):
    """The yolov3-tiny.cfg network: 7 conv/max-pool layers, outputs at strides 32 and 16 (upsample + concat)."""

    head_names = ("head16", "head32")

    def __init__(self, in_chans: int, ch, out: int) -> None:
        super().__init__()
        layers, cin = [], in_chans
        for c in (16, 32, 64, 128):
            layers += [ConvBNAct(cin, ch(c), 3), nn.MaxPool2d(2, 2)]
            cin = ch(c)
        self.to16 = nn.Sequential(*layers, ConvBNAct(cin, ch(256), 3))
        self.to32 = nn.Sequential(
            nn.MaxPool2d(2, 2),
            ConvBNAct(ch(256), ch(512), 3),
            _MaxPoolSame(),
            ConvBNAct(ch(512), ch(1024), 3),
            ConvBNAct(ch(1024), ch(256), 1),
        )
        self.head32 = _head(ch(256), ch(512), out)
        self.lat32 = ConvBNAct(ch(256), ch(128), 1)
        self.head16 = _head(ch(128) + ch(256), ch(256), out)

    def forward(self, x: Tensor) -> list[Tensor]:
        c4 = self.to16(x)
        p5 = self.to32(c4)
        p4 = torch.cat([F.interpolate(self.lat32(p5), scale_factor=2.0, mode="nearest"), c4], 1)
        return [self.head16(p4), self.head32(p5)]


# ---------------------------------------------------------------------------------------------------------------
# The model


def cell_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """[h, w, 2] (x, y) indices of the cells of an h×w map."""
    gy, gx = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((gx, gy), -1)


def decode_boxes(t: Tensor, cell: Tensor, anchor: Tensor, coding: str = "mmkit") -> Tensor:
    """Centre and size (cx, cy, w, h) from raw (tx, ty, tw, th) `t`, in the units of `cell` and `anchor`
    (grid cells, or pixels when both are multiplied by the stride). The one definition of the box parametrization
    (see the module docstring for the two `coding`s)."""
    if coding == "darknet":
        return torch.cat([t[..., :2].sigmoid() + cell, t[..., 2:4].exp() * anchor], -1)
    xy = t[..., :2].sigmoid() * 2 - 0.5 + cell
    wh = (t[..., 2:4].sigmoid() * 2) ** 2 * anchor
    return torch.cat([xy, wh], -1)


class YOLOv3(nn.Module):
    """YOLOv3 (Darknet-53, strides 8/16/32) or YOLOv3-tiny (`tiny=True`, strides 16/32), 3 anchors per scale.

    `anchors`: per scale (small first), (w, h) pixels at `anchor_size`; default the Darknet COCO anchors.
    `width` scales every channel count (0.5 is ~4× cheaper). `box_coding`: "mmkit" or "darknet" (module docstring)."""

    def __init__(
        self,
        num_classes: int,
        *,
        tiny: bool = False,
        anchors: list[list[tuple[float, float]]] | None = None,
        anchor_size: int = 416,
        width: float = 1.0,
        in_chans: int = 3,
        box_coding: str = "mmkit",
    ) -> None:
        super().__init__()
        if box_coding not in BOX_CODINGS:
            raise MMKitError(
                f"yolov3: box_coding must be one of {', '.join(BOX_CODINGS)}, got {box_coding!r}"
            )
        if num_classes < 1:
            raise MMKitError(f"yolov3: num_classes must be at least 1, got {num_classes}")
        if width <= 0:
            raise MMKitError(f"yolov3: width must be positive, got {width}")
        anchors = anchors if anchors is not None else (YOLOV3_TINY_ANCHORS if tiny else YOLOV3_ANCHORS)
        self.strides: tuple[int, ...] = (16, 32) if tiny else (8, 16, 32)
        a = torch.as_tensor(
            anchors, dtype=torch.float32, device="cpu"
        )  # checked on the CPU (also under meta)
        if a.ndim != 3 or a.shape[0] != len(self.strides) or a.shape[2] != 2 or (a <= 0).any():
            raise MMKitError(
                f"yolov3: anchors must be {len(self.strides)} scales of (w, h) pixel pairs, all positive; "
                f"got shape {tuple(a.shape)}"
            )
        self.register_buffer("anchors", a)  # [scales, A, 2] pixels at anchor_size
        self.num_classes, self.tiny, self.anchor_size = num_classes, tiny, anchor_size
        self.box_coding = box_coding
        self.num_anchors = a.shape[1]
        self.no = 5 + num_classes  # outputs per anchor

        def ch(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)

        body = _YOLOv3TinyBody if tiny else _YOLOv3Body
        self.body = body(in_chans, ch, self.num_anchors * self.no)
        self._init_head_biases()

    def heads(self) -> list[nn.Conv2d]:
        """The final 1×1 prediction convolutions, small stride first."""
        return [getattr(self.body, name)[-1] for name in self.body.head_names]

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh prediction convolutions for `num_classes` (transfer learning; the rest keeps its weights), in
        mmkit's box coding, which training uses."""
        self.num_classes, self.no, self.box_coding = num_classes, 5 + num_classes, "mmkit"
        for name, old in zip(self.body.head_names, self.heads(), strict=True):
            new = nn.Conv2d(old.in_channels, self.num_anchors * self.no, 1).to(old.weight.device)
            getattr(self.body, name)[-1] = new
        self._init_head_biases()

    def _init_head_biases(self) -> None:
        """Objectness starts at OBJ_PRIOR, class probabilities at 1/C, boxes at the anchor size, centred."""
        cls_prior = math.log(1.0 / max(self.num_classes - 1, 1))
        for conv in self.heads():
            b = conv.bias.data.view(self.num_anchors, self.no)
            b[:, :4] = 0.0
            b[:, 4] = math.log(OBJ_PRIOR / (1 - OBJ_PRIOR))
            b[:, 5:] = cls_prior

    def fused(self, pack: bool = False) -> YOLOv3:
        """An inference copy (eval mode, no gradients): every BatchNorm folded into the convolution before it, as
        ultralytics' `fuse()` does, and channels-last weights (oneDNN's and cuDNN's faster layout); with `pack`
        (where `can_pack` says, float32) the convolutions as packed oneDNN calls (`ConvAct`). This model is left as it
        is, for training, export and Darknet files."""
        net = copy.deepcopy(self).eval().requires_grad_(False).to(memory_format=torch.channels_last)
        _fuse_children(net.body, pack)
        return net

    def anchors_at(self, img_size: tuple[int, int]) -> Tensor:
        """[scales, A, 2] anchors in pixels for an input of `img_size` (H, W): scaled by max(H, W) / anchor_size."""
        return self.anchors * (max(int(img_size[0]), int(img_size[1])) / self.anchor_size)

    def forward(self, x: Tensor) -> list[Tensor]:
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise MMKitError(f"yolov3: input size {h}x{w} is not a multiple of 32")
        outs = []
        for p in self.body(x):
            _, _, ny, nx = p.shape
            outs.append(p.view(-1, self.num_anchors, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return outs

    def decode(self, outs: list[Tensor], img_size: tuple[int, int]) -> Tensor:
        """[B, N, 5 + C]: x1, y1, x2, y2 in input pixels (clipped to the image), objectness, class probabilities."""
        H, W = int(img_size[0]), int(img_size[1])
        anchors = self.anchors_at((H, W))
        decoded = []
        for i, p in enumerate(outs):
            _, a, ny, nx, no = p.shape
            stride = self.strides[i]
            cell = cell_grid(ny, nx, p.device, p.dtype)
            box = decode_boxes(p, cell, anchors[i].view(1, a, 1, 1, 2) / stride, self.box_coding) * stride
            xy, wh = box[..., :2], box[..., 2:]
            x1y1 = torch.minimum(torch.clamp(xy - wh / 2, min=0.0), xy.new_tensor([W, H]))
            x2y2 = torch.minimum(torch.clamp(xy + wh / 2, min=0.0), xy.new_tensor([W, H]))
            decoded.append(torch.cat([x1y1, x2y2, p[..., 4:].sigmoid()], -1).reshape(p.shape[0], -1, no))
        return torch.cat(decoded, 1)

    def inference(self, x: Tensor) -> Tensor:
        """decode(forward(x)) — the tensor-only graph that ONNX export wraps."""
        return self.decode(self.forward(x), x.shape[-2:])


def postprocess(
    decoded: Tensor,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    *,
    multi_label: bool = False,
    max_candidates: int = 30000,
) -> list[dict[str, Tensor]]:
    """Per image {"boxes": [n, 4] xyxy, "scores": [n], "labels": [n] int64}, best first.

    score = objectness × class probability; candidates above `conf` (the best class of each box, or with
    `multi_label` every class above `conf`) go through class-aware NMS (`torchvision.ops.batched_nms`)."""
    results = []
    for d in decoded:
        scores_all = d[:, 4:5] * d[:, 5:]  # [N, C]
        if multi_label:
            idx, labels = (scores_all > conf).nonzero(as_tuple=True)
            boxes, scores = d[idx, :4], scores_all[idx, labels]
        else:
            scores, labels = scores_all.max(1)
            keep = scores > conf
            boxes, scores, labels = d[keep, :4], scores[keep], labels[keep]
        if scores.numel() > max_candidates:
            top = scores.topk(max_candidates).indices
            boxes, scores, labels = boxes[top], scores[top], labels[top]
        keep = batched_nms(boxes.float(), scores.float(), labels, iou)[:max_det]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep].long()})
    return results


# ---------------------------------------------------------------------------------------------------------------
# Registry


_register = model_family("detect", "yolov3", 416)


@_register(
    "yolov3",
    "YOLOv3: Darknet-53 backbone, 3 scales (strides 8/16/32), 3 anchors each; inputs a multiple of 32",
)
def yolov3(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return YOLOv3(num_classes, in_chans=in_chans, **kwargs)


@_register(
    "yolov3-tiny", "YOLOv3-tiny: 2 scales (strides 16/32), 3 anchors each; CPU-sized (train at 256 on a CPU)"
)
def yolov3_tiny(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return YOLOv3(num_classes, tiny=True, in_chans=in_chans, **kwargs)
