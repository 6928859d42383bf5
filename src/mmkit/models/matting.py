"""Image matting (image + trimap -> alpha): Deep-Image-Matting-style encoder-decoders.

    x = matting_input(image, trimap)          # uint8 [N, 3, H, W] + uint8 [N, 1, H, W] -> float [N, 4, H, W]
    model = get_model("dim-small")             # or "dim-resnet18", weights="imagenet" when the file is here
    alpha = model(x)                           # [N, 1, H, W] in [0, 1], any H and W
    raw, refined = model.stages(x)             # with refine=True: the encoder-decoder's alpha and the refined one

Input (``matting_input``): 4 channels, as Deep Image Matting (Xu et al. 2017) feeds its network: the RGB image scaled
to [0, 1] and standardized with the ImageNet mean and std, then the trimap as one channel ``trimap / 255`` (0
background, ~0.5 unknown, 1 foreground). Output: the alpha matte through a sigmoid. Inputs of any size are padded
(replicated borders) to a multiple of the encoder's stride and the output cropped back. The prediction covers the
whole image; set the trimap's known regions (``metrics.matting.fill_known``) before scoring, as DIM does.

- ``dim-small``: a small U-Net (max-pool down, bilinear up, skip concatenations; two 3x3 conv + BatchNorm + ReLU
  per level) of ``depth`` levels, ``width`` channels at full resolution doubling per level up to 8x. Fast on CPU.
- ``dim-resnet18``: torchvision's ResNet-18 as the encoder (its first conv widened to 4 input channels; with the
  ImageNet weights the RGB filters are the published ones and the trimap's start at zero), and a decoder that
  upsamples x2 five times, concatenating the encoder's feature at each scale and a 2-conv full-resolution feature
  of the input last (for sharp edges).

``refine=True`` adds DIM's refinement stage: four 3x3 convs (64 wide, ReLU) on the RGB image and the raw alpha,
whose output is added to the raw alpha's logit (the last conv starts at zero, so it starts as the identity).
The losses (alpha prediction, compositional) are in ``mmkit.losses.matting``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.registry import Weights, model_family
from mmkit.models.weights import offline_locator

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DIMResNet", "DIMSmall", "imagenet_encoder", "matting_input"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def matting_input(image: Tensor, trimap: Tensor) -> Tensor:
    """The network input [N, 4, H, W] (or [4, H, W]) from uint8 RGB [N, 3, H, W] and a uint8 trimap [N, 1, H, W]
    of 0 / 128 / 255: standardized RGB, then ``trimap / 255``."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    rgb = (image.float() / 255 - mean) / std
    return torch.cat([rgb, trimap.float() / 255], dim=-3)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Up(nn.Module):
    """Bilinear upsampling to the skip's size, concatenation with it, two 3x3 convs."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv(cin + cskip, cout), _conv(cout, cout))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], 1))


class _Refine(nn.Module):
    """DIM's refinement stage: RGB + raw alpha -> a correction of the alpha's logit."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, features, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, 1, 3, 1, 1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, rgb: Tensor, alpha: Tensor) -> Tensor:
        return self.body(torch.cat([rgb, alpha], 1))


class _Matting(nn.Module):
    """Padding to the stride, the sigmoid and the optional refinement around ``logits(x) -> [N, 1, H, W]``."""

    stride: int
    refine: _Refine | None

    def logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def stages(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(the encoder-decoder's alpha, the refined alpha or None), both [N, 1, H, W] in [0, 1]."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.stride, -w % self.stride
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        logit = self.logits(xp)
        raw = torch.sigmoid(logit)
        refined = None
        if self.refine is not None:
            refined = torch.sigmoid(logit + self.refine(xp[:, :3], raw))[..., :h, :w]
        return raw[..., :h, :w], refined

    def forward(self, x: Tensor) -> Tensor:
        raw, refined = self.stages(x)
        return raw if refined is None else refined


class DIMSmall(_Matting):
    """A small U-Net matting network: forward(x [N, in_chans, H, W]) -> alpha [N, 1, H, W] in [0, 1]."""

    def __init__(self, in_chans: int = 4, width: int = 16, depth: int = 4, refine: bool = False) -> None:
        super().__init__()
        if width < 1 or not 1 <= depth <= 6:
            raise MMKitError(f"width={width}, depth={depth}: need width >= 1 and depth in 1..6")
        chans = [width * 2 ** min(k, 3) for k in range(depth + 1)]
        self.stride = 2**depth
        self.stem = nn.Sequential(_conv(in_chans, chans[0]), _conv(chans[0], chans[0]))
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _conv(chans[k], chans[k + 1]), _conv(chans[k + 1], chans[k + 1]))
            for k in range(depth)
        )
        self.up = nn.ModuleList(_Up(chans[k + 1], chans[k], chans[k]) for k in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], 1, 3, 1, 1)
        self.refine = _Refine() if refine else None

    def logits(self, x: Tensor) -> Tensor:
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(feats[-1]))
        y = feats.pop()
        for up in self.up:
            y = up(y, feats.pop())
        return self.head(y)


class DIMResNet(_Matting):
    """ResNet-18/34 encoder (first conv widened to ``in_chans``) with a U-Net decoder: alpha [N, 1, H, W]."""

    def __init__(
        self, in_chans: int = 4, arch: str = "resnet18", decoder_width: int = 64, refine: bool = False
    ) -> None:
        super().__init__()
        if arch not in ("resnet18", "resnet34"):
            raise MMKitError(f"arch={arch!r}: dim-resnet takes resnet18 or resnet34")
        if decoder_width < 2:
            raise MMKitError(f"decoder_width={decoder_width}: must be at least 2")
        enc = getattr(tvm, arch)(weights=None)
        enc.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        enc.fc = nn.Identity()
        self.encoder, self.stride = enc, 32
        d = decoder_width
        self.shallow = nn.Sequential(_conv(in_chans, d // 2), _conv(d // 2, d // 2))
        self.up = nn.ModuleList(
            [
                _Up(512, 256, 4 * d),
                _Up(4 * d, 128, 2 * d),
                _Up(2 * d, 64, d),
                _Up(d, 64, d),
                _Up(d, d // 2, d // 2),
            ]
        )
        self.head = nn.Conv2d(d // 2, 1, 3, 1, 1)
        self.refine = _Refine() if refine else None

    def logits(self, x: Tensor) -> Tensor:
        e = self.encoder
        s2 = e.relu(e.bn1(e.conv1(x)))  # stride 2, 64
        s4 = e.layer1(e.maxpool(s2))  # stride 4, 64
        s8 = e.layer2(s4)
        s16 = e.layer3(s8)
        y = e.layer4(s16)  # stride 32, 512
        for up, skip in zip(self.up, (s16, s8, s4, s2, self.shallow(x)), strict=True):
            y = up(y, skip)
        return self.head(y)


def imagenet_encoder(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map a torchvision ResNet ImageNet state_dict onto a DIMResNet's: ``encoder.*`` from the file (no ``fc``),
    the first conv's extra input channels zero, everything else the model's own initialization."""
    out = dict(model.state_dict())
    for k, v in sd.items():
        if k.startswith("fc."):
            continue
        key = f"encoder.{k}"
        if key not in out:
            raise MMKitError(f"{k}: not a torchvision ResNet weight (no {key} in {type(model).__name__})")
        if k == "conv1.weight" and v.shape[1] == 3 and out[key].shape[1] > 3:
            w = torch.zeros_like(out[key])
            w[:, :3] = v
            v = w
        out[key] = v
    return out


def _imagenet(entry: tvm.WeightsEnum) -> Weights:
    return Weights(
        name="imagenet",
        source=entry.url,
        num_classes=1,
        categories=None,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        input_size=64,
        resize_size=64,
        license="BSD-3-Clause (torchvision)",
        metrics={},
        locate=offline_locator(entry.url),
        convert=imagenet_encoder,
    )


# ---------------------------------------------------------------------------------------------------------------
# Registry: fn(num_classes, in_chans, **kwargs); num_classes is ignored (the output is one alpha channel).


_register = model_family("matte", "matting", 64, in_chans=4)


@_register(
    "dim-small", "small U-Net matting net (Deep Image Matting style): RGB + trimap -> alpha, fast on CPU"
)
def dim_small(in_chans: int = 4, *, width: int = 16, depth: int = 4, refine: bool = False) -> nn.Module:
    return DIMSmall(in_chans, width=width, depth=depth, refine=refine)


@_register(
    "dim-resnet18",
    "Deep Image Matting style encoder-decoder on a ResNet-18 encoder (4-channel first conv)",
    weights=[_imagenet(tvm.ResNet18_Weights.IMAGENET1K_V1)],
)
def dim_resnet18(in_chans: int = 4, *, decoder_width: int = 64, refine: bool = False) -> nn.Module:
    return DIMResNet(in_chans, "resnet18", decoder_width=decoder_width, refine=refine)
