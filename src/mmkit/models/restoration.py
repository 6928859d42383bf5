"""Super-resolution (LapSRN) and restoration (RED-Net): image -> image regressors, with their losses.

    model = get_model("lapsrn", in_chans=3, scale=4)
    sr2, sr4 = model(lr)                       # lr [B, 3, h, w] -> [B, 3, 2h, 2w], [B, 3, 4h, 4w]
    loss = lapsrn_loss(model(lr), hr)          # Charbonnier at every level against the resized HR
    model = get_model("rednet", in_chans=1)
    clean = model(noisy)                       # same shape

Images are float NCHW in [-1, 1]. The outputs are not squashed (both models add a predicted residual to their
input, as the papers do); clamp to [-1, 1] before saving or scoring. The registry's default_input_size (64) is the
HR / clean side the defaults are sized for; any size works (LapSRN outputs scale x the input).

LapSRN (Lai et al. 2017, "Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution"): levels =
log2(scale) (scale 2, 4 or 8). Feature-extraction branch: per level `depth` 3x3 convs + LeakyReLU(0.2) at the
current resolution, then a 4x4 stride-2 transposed conv (x2) and a 3x3 conv predicting the level's residual
image. Image-reconstruction branch: a 4x4 stride-2 transposed conv (on the replicate-padded image) initialised to
bilinear x2 upsampling (trainable), plus the residual. No weight sharing across levels. Paper: 64 features, depth 10; defaults here
32 features, depth 5 for CPU. The residual convs start at zero, so an untrained model is bilinear upsampling.

RED-Net (Mao et al. 2016, "Image Restoration Using Very Deep Convolutional Encoder-Decoder Networks with
Symmetric Skip Connections"): `layers` / 2 3x3 convs (ReLU) then as many 3x3 transposed convs, all stride 1 and
`features` wide; every `skip_every` (2) layers a conv's output is added to its mirrored deconv's output before the
ReLU, and the input is added to the last deconv's output (residual learning: the net predicts input - clean with
the sign folded in). The last deconv starts at zero, so an untrained model is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.registry import model_family

__all__ = ["LapSRN", "REDNet", "bilinear_kernel", "charbonnier", "lapsrn_loss"]


def charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier penalty mean(sqrt((pred - target)^2 + eps^2)), a differentiable L1."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def bilinear_kernel(size: int = 4) -> Tensor:
    """The [size, size] kernel of a stride size/2 transposed conv that upsamples bilinearly (FCN's init)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    k = 1 - (og - center).abs() / factor
    return k[:, None] * k[None, :]


class _LapLevel(nn.Module):
    def __init__(self, channels: int, features: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(features, features, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        layers += [nn.ConvTranspose2d(features, features, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.residual = nn.Conv2d(features, channels, 3, 1, 1)
        self.upsample = nn.ConvTranspose2d(channels, channels, 4, 2, 1, bias=False)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)
        with torch.no_grad():
            self.upsample.weight.zero_()
            for c in range(channels):
                self.upsample.weight[c, c] = bilinear_kernel(4)

    def forward(self, feats: Tensor, img: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.features(feats)
        # replicate-padded so that the initial kernel is exactly bilinear x2 (align_corners=False) at the borders too
        up = self.upsample(F.pad(img, (1, 1, 1, 1), mode="replicate"))[..., 2:-2, 2:-2]
        return feats, up + self.residual(feats)


class LapSRN(nn.Module):
    """LapSRN: forward(lr [B, C, h, w]) -> [x2, x4, ...] SR images, one per level (the last is x scale)."""

    def __init__(self, channels: int = 3, scale: int = 4, features: int = 32, depth: int = 5) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise MMKitError(f"scale={scale}: LapSRN upsamples by 2, 4 or 8")
        if depth < 1 or features < 1:
            raise MMKitError(f"depth={depth}, features={features}: both must be positive")
        self.channels, self.scale, self.levels = channels, scale, int(math.log2(scale))
        self.head = nn.Sequential(nn.Conv2d(channels, features, 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.pyramid = nn.ModuleList(_LapLevel(channels, features, depth) for _ in range(self.levels))

    def forward(self, lr: Tensor) -> list[Tensor]:
        feats, img = self.head(lr), lr
        outs = []
        for level in self.pyramid:
            feats, img = level(feats, img)
            outs.append(img)
        return outs


def lapsrn_loss(outputs: list[Tensor], hr: Tensor, eps: float = 1e-3) -> Tensor:
    """Sum over levels of the Charbonnier loss against HR resized (bicubic, antialiased) to each level's size; the
    last output must have HR's size."""
    if outputs[-1].shape != hr.shape:
        raise MMKitError(
            f"lapsrn_loss: the last output has shape {tuple(outputs[-1].shape)}, the HR target {tuple(hr.shape)}"
        )
    total = charbonnier(outputs[-1], hr, eps)
    for out in outputs[:-1]:
        target = F.interpolate(hr, size=out.shape[-2:], mode="bicubic", align_corners=False, antialias=True)
        total = total + charbonnier(out, target, eps)
    return total


class REDNet(nn.Module):
    """RED-Net: conv encoder / deconv decoder with symmetric additive skips; forward(x) -> restored x."""

    def __init__(
        self,
        channels: int = 3,
        layers: int = 10,
        features: int = 64,
        skip_every: int = 2,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if layers < 2 or layers % 2:
            raise MMKitError(f"layers={layers}: RED-Net needs an even number of layers, at least 2")
        if skip_every < 1:
            raise MMKitError(f"skip_every={skip_every}: must be at least 1")
        n = layers // 2
        self.channels, self.skip_every, self.residual = channels, skip_every, residual
        self.encoder = nn.ModuleList(
            nn.Conv2d(channels if i == 0 else features, features, 3, 1, 1) for i in range(n)
        )
        # decoder[k] mirrors encoder[k]: maps features back to encoder[k]'s input (channels for k = 0)
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(features, channels if k == 0 else features, 3, 1, 1) for k in range(n)
        )
        nn.init.zeros_(self.decoder[0].weight)
        nn.init.zeros_(self.decoder[0].bias)

    def forward(self, x: Tensor) -> Tensor:
        hs = [x]
        h = x
        for conv in self.encoder:
            h = F.relu(conv(h))
            hs.append(h)
        for k in reversed(range(1, len(self.decoder))):
            h = self.decoder[k](h)
            if k % self.skip_every == 0:  # decoder k's output mirrors hs[k], the output of encoder layer k
                h = h + hs[k]
            h = F.relu(h)
        h = self.decoder[0](h)
        return x + h if self.residual else h


# ---------------------------------------------------------------------------------------------------------------
# Registry: builders take the image channels and their options.


_register = model_family("generate", "restoration", 64)


@_register("lapsrn", "LapSRN (Lai et al. 2017): progressive x2/x4 super-resolution, Charbonnier loss")
def lapsrn(in_chans: int = 3, **kwargs) -> nn.Module:
    return LapSRN(in_chans, **kwargs)


@_register(
    "rednet", "RED-Net (Mao et al. 2016): conv/deconv encoder-decoder, symmetric skips, denoise/deblur"
)
def rednet(in_chans: int = 3, **kwargs) -> nn.Module:
    return REDNet(in_chans, **kwargs)
