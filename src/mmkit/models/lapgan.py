"""LAPGAN (Denton et al. 2015): a Laplacian pyramid of generative adversarial networks, drawn coarse to fine.

    model = get_model("lapgan", in_chans=1, img_size=28)                   # levels 7 -> 14 -> 28
    images = model.sample(16)                                               # [16, 1, 28, 28] in [-1, 1]
    model = get_model("cc-lapgan", num_classes=10, in_chans=1, img_size=28)   # class-conditional (CC-LAPGAN)

The pyramid. `downsample` (d) averages 2x2 blocks, `upsample` (u) is bilinear x2. `gaussian_pyramid(x, k)` is
[I_0 = x, I_1 = d(I_0), ...] (finest first); `laplacian_pyramid` holds the band-pass residuals h_j = I_j - u(I_j+1)
and the coarsest image; `reconstruct` walks it back up (I_j = u(I_j+1) + h_j) and gives the image back exactly.
Level sides: `pyramid_sizes` halves img_size while the half stays at least 7 (28 -> 14 -> 7, 32 -> 16 -> 8,
64 -> 32 -> 16 -> 8); `levels=` caps how many.

The model (`LAPGAN`, the conventions of mmkit.models.gans: `generator`, `discriminator` / `critic`, `sample`,
`latent_dim`, `num_classes`, `img_size`, `channels`, `kind`):
- the coarsest level is an ordinary GAN at low resolution: MLP generator (ReLU) and discriminator (LeakyReLU),
  Denton's choice for the 8x8 level of CIFAR-10;
- every finer level j has its own generator G_j(u(I_j+1), noise plane [, class plane]) -> h_j, a 3-layer convnet
  (5x5 kernels, BN, ReLU; `width` maps) whose residual is added to u(I_j+1), and its own discriminator D_j judging
  images u(I_j+1) + h_j (the DCGAN conv body of mmkit.models.gans);
- `generator(z, labels)` samples coarse to fine: I_K = G_K(z_K), then I_j = u(I_j+1) + G_j(u(I_j+1), z_j), each
  clamped to [-1, 1]; `generator.levels(...)` returns every level, coarse first;
- training (mmkit.tasks.generate.lapgan): each level learns on its own from the real pyramid, G_j refining the
  real u(I_j+1) (`generator.training_fakes`), D_j telling real I_j from u(I_j+1) + G_j(...).
`z` holds all of the noise: the coarsest generator's `coarse_dim` values, then one s_j x s_j noise plane per finer
level (coarse to fine), so latent_dim = coarse_dim + sum s_j^2 (100 + 14^2 + 28^2 = 1080 at 28 px) and a sample is
a function of (z, labels) alone. Conditioning (cc-lapgan): a label embedding concatenated to z at the coarsest
level, at finer levels one more input plane of G_j (the one-hot class through a linear layer, reshaped to
s_j x s_j, as in the paper), and a projection discriminator (as mmkit's cGAN) at every level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.gans import (
    ConvDiscriminatorBody,
    Discriminator,
    Generator,
    ImageGAN,
    dcgan_init,
    mlp_discriminator_body,
    mlp_generator_body,
)
from mmkit.models.registry import model_family

__all__ = [
    "LAPGAN",
    "LaplacianGenerator",
    "ResidualGenerator",
    "downsample",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "pyramid_sizes",
    "reconstruct",
    "upsample",
]

MIN_SIDE = 7  # the coarsest level's side is at least this (the builtins' 7x7, CIFAR-10's 8x8)


# ---------------------------------------------------------------------------------------------------------------
# The pyramid


def downsample(x: Tensor) -> Tensor:
    """d: half the side, each pixel the mean of a 2x2 block."""
    return F.avg_pool2d(x, 2)


def upsample(x: Tensor) -> Tensor:
    """u: twice the side, bilinear."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def pyramid_sizes(img_size: int, levels: int | None = None) -> list[int]:
    """The sides of the levels, finest first: img_size halved while it is even and the half at least 7
    (28 -> [28, 14, 7]); `levels` keeps that many of them. At least two levels (MMKitError otherwise)."""
    sizes = [img_size]
    while sizes[-1] % 2 == 0 and sizes[-1] // 2 >= MIN_SIDE and (levels is None or len(sizes) < levels):
        sizes.append(sizes[-1] // 2)
    if len(sizes) < 2 or (levels is not None and len(sizes) != levels):
        raise MMKitError(
            f"img_size={img_size}, levels={levels}: a LAPGAN needs at least two levels, each halving an even side "
            "down to at least 7 pixels (e.g. 28 -> 14 -> 7, 32 -> 16 -> 8)"
        )
    return sizes


def gaussian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """[I_0 = x, d(I_0), d(d(I_0)), ...], `levels` images, finest first."""
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """[h_0, ..., h_K-1, I_K]: the band-pass residuals h_j = I_j - u(I_j+1), finest first, then the coarsest image."""
    g = gaussian_pyramid(x, levels)
    return [fine - upsample(coarse) for fine, coarse in zip(g, g[1:], strict=False)] + [g[-1]]


def reconstruct(pyramid: list[Tensor]) -> Tensor:
    """The image of a Laplacian pyramid: I_j = u(I_j+1) + h_j from the coarsest image up."""
    x = pyramid[-1]
    for h in reversed(pyramid[:-1]):
        x = upsample(x) + h
    return x


# ---------------------------------------------------------------------------------------------------------------
# Generators


class ResidualGenerator(nn.Module):
    """G_j of a finer level: (the upsampled coarser image, a noise plane [, the class plane]) -> the band-pass
    residual h_j at side `size`: three 5x5 convs (BN and ReLU after the first two), no output activation."""

    def __init__(self, channels: int, size: int, num_classes: int = 0, width: int = 64) -> None:
        super().__init__()
        self.size = size
        # the one-hot class through a linear layer, reshaped to one plane (an embedding is that linear layer)
        self.embed = nn.Embedding(num_classes, size * size) if num_classes else None
        hidden: list[nn.Module] = []
        for cin in (channels + 1 + (1 if num_classes else 0), width):  # the planes in, then the hidden maps
            hidden += [
                nn.Conv2d(cin, width, 5, padding=2, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*hidden, nn.Conv2d(width, channels, 5, padding=2))

    def forward(self, low: Tensor, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        planes = [low, noise.to(low.dtype)]
        if self.embed is not None:
            if labels is None:
                raise MMKitError("generator: this conditional LAPGAN needs labels")
            planes.append(self.embed(labels).to(low.dtype).view(-1, 1, self.size, self.size))
        return self.body(torch.cat(planes, 1))


class LaplacianGenerator(nn.Module):
    """The pyramid of generators: `coarse` (z_K [+ labels] -> the coarsest image) and `refiners` (one
    `ResidualGenerator` per finer level, coarse to fine). z [B, latent_dim] = z_K, then the noise planes."""

    def __init__(self, coarse: Generator, refiners: list[ResidualGenerator]) -> None:
        super().__init__()
        self.coarse, self.refiners = coarse, nn.ModuleList(refiners)
        self.coarse_dim = coarse.latent_dim
        self.latent_dim = self.coarse_dim + sum(g.size**2 for g in refiners)

    def split(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """z -> (the coarsest generator's z [B, coarse_dim], one noise plane [B, 1, s, s] per finer level)."""
        sides = [g.size for g in self.refiners]
        parts = torch.split(z, [self.coarse_dim, *(s * s for s in sides)], dim=1)
        return parts[0], [p.reshape(-1, 1, s, s) for p, s in zip(parts[1:], sides, strict=True)]

    def levels(self, z: Tensor, labels: Tensor | None = None) -> list[Tensor]:
        """Sampling, coarse to fine: every level's image (the last is the sample), each clamped to [-1, 1]."""
        z0, planes = self.split(z)
        images = [self.coarse(z0, labels)]
        for g, noise in zip(self.refiners, planes, strict=True):
            low = upsample(images[-1])
            images.append((low + g(low, noise, labels)).clamp(-1, 1))
        return images

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.levels(z, labels)[-1]

    def training_fakes(self, reals: list[Tensor], z: Tensor, labels: Tensor | None = None) -> list[Tensor]:
        """Each level's fake for training, coarse to fine, from the real Gaussian pyramid `reals` (coarse first):
        G_K(z_K), then u(I_j+1) + G_j(u(I_j+1), z_j) on the real coarser image I_j+1 (not clamped)."""
        z0, planes = self.split(z)
        fakes = [self.coarse(z0, labels)]
        for g, coarser, noise in zip(self.refiners, reals, planes, strict=False):
            low = upsample(coarser)
            fakes.append(low + g(low, noise, labels))
        return fakes


# ---------------------------------------------------------------------------------------------------------------
# The model


class LAPGAN(ImageGAN):
    """A LAPGAN: `generator` (a `LaplacianGenerator`) and `discriminator` (an nn.ModuleList of one discriminator
    per level, coarse first). `sizes`: the level sides, coarse first.

    latent_dim: the coarsest generator's noise (the finer levels' noise planes come on top, see `latent_dim`);
    levels: how many (default: as many as `pyramid_sizes` allows); hidden: the coarse MLPs' layers; width: the
    finer generators' maps; base: the finer discriminators' first maps (DCGAN body)."""

    def __init__(
        self,
        channels: int = 1,
        img_size: int = 28,
        latent_dim: int = 100,
        num_classes: int = 0,
        *,
        levels: int | None = None,
        hidden: tuple[int, ...] = (600, 600),
        width: int = 64,
        base: int = 64,
        embed_dim: int = 50,
        kind: str = "lapgan",
    ) -> None:
        super().__init__(channels, img_size, latent_dim, num_classes, kind)
        self.sizes = pyramid_sizes(img_size, levels)[::-1]
        conditioning = "cgan" if num_classes else "none"
        s0, k = self.sizes[0], num_classes
        coarse_in = latent_dim + (embed_dim if k else 0)
        coarse_g = Generator(
            mlp_generator_body(coarse_in, channels, s0, tuple(hidden), "relu"), latent_dim, k, embed_dim
        )
        refiners = [ResidualGenerator(channels, s, k, width) for s in self.sizes[1:]]
        self.generator = LaplacianGenerator(coarse_g, refiners)
        coarse_d = Discriminator(*mlp_discriminator_body(channels, s0, tuple(hidden)), k, conditioning)
        finer_d = []
        for s in self.sizes[1:]:
            body = ConvDiscriminatorBody(channels, s, base)
            finer_d.append(Discriminator(body, body.out_features, k, conditioning))
        self.discriminator = nn.ModuleList([coarse_d, *finer_d])
        for m in (
            *refiners,
            *finer_d,
        ):  # the conv levels start as DCGAN's; the MLP level keeps PyTorch's init
            dcgan_init(m)
        self.latent_dim = self.generator.latent_dim  # the coarse level's and the finer levels' noise


# ---------------------------------------------------------------------------------------------------------------
# Registry


_register = model_family("generate", "lapgan", 28, in_chans=1)


@_register("lapgan", "LAPGAN (Denton et al. 2015): a Laplacian pyramid of GANs, sampled coarse to fine")
def lapgan(in_chans: int = 1, **kwargs) -> nn.Module:
    return LAPGAN(in_chans, kind="lapgan", **kwargs)


@_register(
    "cc-lapgan", "class-conditional LAPGAN (Denton et al. 2015): the class at every level of the pyramid"
)
def cc_lapgan(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return LAPGAN(in_chans, num_classes=num_classes, kind="cc-lapgan", **kwargs)
