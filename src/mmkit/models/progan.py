"""Progressive GAN (Karras et al. 2018): a generator and a discriminator that grow, one resolution at a time.

    model = get_model("progan", in_chans=3, img_size=64)     # grows 4 -> 8 -> 16 -> 32 -> 64
    model.set_stage(2, 0.5)                                   # 16 px, fading in from 8 px
    images = model.sample(16)                                 # [16, 3, 64, 64] in [-1, 1] at every stage

Levels: level 0 works at s0 = `start_size(img_size)` of mmkit.models.gans (64 -> 4, 28 -> 7), level l at s0 * 2^l,
the top level at img_size. Both networks hold the blocks of every level from the start; `stage` (`level`, `alpha`,
buffers of the module, so a checkpoint holds them) says how much of them runs:
- generator: z -> pixel norm -> dense to s0 x s0 (as a 4x4 conv on a 1x1 input) -> conv 3x3 -> per level l >= 1:
  nearest upsample x2, two conv 3x3; LeakyReLU(0.2) and pixel norm after every conv; `to_rgb` (1x1 conv, linear)
  at each level. In a fade-in (alpha < 1) the output is (1 - alpha) * u(to_rgb_l-1(h_l-1)) + alpha * to_rgb_l(h_l)
  (`fade`): at alpha 0 exactly the previous level's output upsampled, at alpha 1 the new block's.
- discriminator, its mirror: `from_rgb` (1x1 conv + LeakyReLU) at the input's level, two conv 3x3 + 2x2 average pool
  per level down to s0, blended in a fade-in with from_rgb_l-1 of the 2x2-averaged input; at s0 the minibatch
  standard deviation (one more feature map), conv 3x3, conv s0 x s0 (valid), a linear score (no sigmoid).
- every conv and linear layer has an equalized learning rate: weights drawn from N(0, 1) and multiplied at run time
  by He's constant gain / sqrt(fan_in) (gain sqrt(2); 1 for to_rgb and the score, as the paper's code);
- the loss is WGAN-GP's (lambda 10) plus the drift term epsilon * E[D(x_real)^2] (epsilon 0.001), `drift_loss`.
Channels per level: min(fmap_max, fmap_base / side): the paper's 8192 and 512 give 512 maps up to 16 px; the
defaults here, 512 and 128, are sized for a CPU (128, 64, 32, 16, 8 maps from 4 to 64 px;
`--model-arg fmap_base=8192 fmap_max=512` for the paper's). `forward(z)` / `sample(n)` draw at the current stage and
upsample (nearest) to img_size, so a checkpoint of any stage samples images of the final size. The growth schedule,
`stage_at` (the stage after so many training images), is applied by the trainer (mmkit.tasks.generate.progan), which
counts the images in `images_seen`, also a buffer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.gans import ImageGAN, conv_depth, start_size
from mmkit.models.registry import model_family

__all__ = [
    "EqualizedConv2d",
    "EqualizedLinear",
    "ProDiscriminator",
    "ProGAN",
    "ProGenerator",
    "drift_loss",
    "fade",
    "minibatch_stddev",
    "pixel_norm",
    "stage_at",
]

HE_GAIN = math.sqrt(2.0)
SLOPE = 0.2  # LeakyReLU's negative slope everywhere
DRIFT = 0.001  # epsilon of the drift term


# ---------------------------------------------------------------------------------------------------------------
# The paper's layers


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Each pixel's feature vector divided by its root mean square over the channels: a / sqrt(mean_c a^2 + eps)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x [B, C, H, W] with one more feature map: the standard deviation of each feature at each position over the
    minibatch (population std, sqrt(var + eps)), averaged over features and positions to one value, repeated."""
    std = torch.sqrt(x.var(dim=0, unbiased=False) + eps).mean()
    return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:]).to(x.dtype)], dim=1)


def fade(old: Tensor, new: Tensor, alpha: float) -> Tensor:
    """The fade-in of a new block: (1 - alpha) * old + alpha * new (exactly `old` at 0, exactly `new` at 1)."""
    return (1 - alpha) * old + alpha * new


def drift_loss(real_scores: Tensor, epsilon: float = DRIFT) -> Tensor:
    """The critic's drift term epsilon * E[D(x_real)^2], which keeps its scores near 0."""
    return epsilon * real_scores.float().pow(2).mean()


class EqualizedConv2d(nn.Module):
    """A conv whose weights are N(0, 1) and scaled at run time by gain / sqrt(in_channels * k * k) (He's constant),
    so Adam's per-parameter steps move every layer at the same rate. Zero bias."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, gain: float = HE_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.padding = gain / math.sqrt(cin * kernel * kernel), padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """A linear layer with the equalized learning rate: N(0, 1) weights times gain / sqrt(in_features)."""

    def __init__(self, fin: int, fout: int, gain: float = HE_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin))
        self.bias = nn.Parameter(torch.zeros(fout))
        self.scale = gain / math.sqrt(fin)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return pixel_norm(x)


def _conv(
    cin: int, cout: int, kernel: int = 3, padding: int | None = None, norm: bool = False
) -> list[nn.Module]:
    """Equalized conv (default: same padding) + LeakyReLU(0.2) [+ pixel norm]."""
    pad = kernel // 2 if padding is None else padding
    layers = [EqualizedConv2d(cin, cout, kernel, pad), nn.LeakyReLU(SLOPE)]
    return layers + [PixelNorm()] if norm else layers


# ---------------------------------------------------------------------------------------------------------------
# The networks


class ProGenerator(nn.Module):
    """z -> images at the side of `level` (s0 * 2^level): `blocks[l]` and `to_rgb[l]` per level."""

    def __init__(self, latent_dim: int, channels: int, widths: list[int], s0: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        first = nn.Sequential(
            # the dense layer to s0 x s0 maps (gain sqrt(2) / 4, as the paper's code)
            EqualizedLinear(latent_dim, widths[0] * s0 * s0, gain=HE_GAIN / 4),
            nn.Unflatten(1, (widths[0], s0, s0)),
            nn.LeakyReLU(SLOPE),
            PixelNorm(),
            *_conv(widths[0], widths[0], norm=True),
        )
        later = [
            nn.Sequential(
                nn.Upsample(scale_factor=2.0), *_conv(cin, cout, norm=True), *_conv(cout, cout, norm=True)
            )
            for cin, cout in zip(widths, widths[1:], strict=False)
        ]
        self.blocks = nn.ModuleList([first, *later])
        self.to_rgb = nn.ModuleList([EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths])

    def forward(self, z: Tensor, level: int, alpha: float = 1.0) -> Tensor:
        h = pixel_norm(z)
        for block in self.blocks[:level]:
            h = block(h)
        new = self.to_rgb[level](self.blocks[level](h))
        if level == 0 or alpha >= 1:
            return new
        return fade(F.interpolate(self.to_rgb[level - 1](h), scale_factor=2.0), new, alpha)


class ProDiscriminator(nn.Module):
    """images at the side of `level` -> a score [B]: `from_rgb[l]` and `blocks[l]` per level, `blocks[0]` the last."""

    def __init__(self, channels: int, widths: list[int], s0: int) -> None:
        super().__init__()
        w0 = widths[0]
        last = nn.Sequential(
            *_conv(w0 + 1, w0),  # after the minibatch standard deviation's map
            *_conv(w0, w0, kernel=s0, padding=0),  # s0 x s0, "valid": one value per map
            nn.Flatten(),
            EqualizedLinear(w0, 1, gain=1.0),
        )
        later = [
            nn.Sequential(*_conv(cin, cin), *_conv(cin, cout), nn.AvgPool2d(2))
            for cout, cin in zip(widths, widths[1:], strict=False)
        ]
        self.blocks = nn.ModuleList([last, *later])
        self.from_rgb = nn.ModuleList([nn.Sequential(*_conv(channels, w, kernel=1)) for w in widths])

    def forward(self, x: Tensor, level: int, alpha: float = 1.0) -> Tensor:
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level](h)
            if alpha < 1:
                h = fade(self.from_rgb[level - 1](F.avg_pool2d(x, 2)), h, alpha)
        for block in reversed(self.blocks[1:level]):
            h = block(h)
        return self.blocks[0](minibatch_stddev(h)).squeeze(1)


# ---------------------------------------------------------------------------------------------------------------
# The model and its stage


def stage_at(images: int, phase_images: int, top_level: int) -> tuple[int, float]:
    """The growth schedule: (level, alpha) after `images` training images, `phase_images` per phase. Level 0
    trains for one phase; each next level fades in over one phase (alpha 0 -> 1) and then trains at alpha 1 for
    one; the top level stays."""
    if phase_images < 1:
        raise MMKitError(f"phase_images={phase_images}: must be at least 1")
    phase, into = divmod(images, phase_images)
    level = min((phase + 1) // 2, top_level)
    fading = phase % 2 == 1 and phase < 2 * top_level
    return level, (into / phase_images if fading else 1.0)


class ProGAN(ImageGAN):
    """Progressive GAN: `generator` and `discriminator` (alias `critic`), called with (input, level, alpha); the
    stage of the model in buffers `level`, `alpha` (the stage its weights were last trained at) and `images_seen`.
    Unconditional: `num_classes` is 0."""

    def __init__(
        self,
        channels: int = 3,
        img_size: int = 64,
        latent_dim: int = 128,
        *,
        fmap_base: int = 512,
        fmap_max: int = 128,
    ) -> None:
        if fmap_base < 1 or fmap_max < 1:
            raise MMKitError(f"fmap_base={fmap_base}, fmap_max={fmap_max}: both must be positive")
        super().__init__(channels, img_size, latent_dim, kind="progan")  # unconditional
        s0 = start_size(img_size)
        self.sides = [s0 * 2**level for level in range(conv_depth(img_size) + 1)]
        self.top_level = len(self.sides) - 1
        widths = [max(1, min(fmap_max, fmap_base // s)) for s in self.sides]
        self.generator = ProGenerator(latent_dim, channels, widths, s0)
        self.discriminator = ProDiscriminator(channels, widths, s0)
        self.register_buffer("level", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))

    def stage(self) -> tuple[int, float]:
        """(level, alpha) the networks run at."""
        return int(self.level), float(self.alpha)

    def set_stage(self, level: int, alpha: float = 1.0) -> None:
        if not 0 <= level <= self.top_level or not 0 <= alpha <= 1:
            raise MMKitError(f"level {level}, alpha {alpha}: levels go 0..{self.top_level}, alpha 0..1")
        self.level.fill_(level)
        self.alpha.fill_(alpha)

    @property
    def side(self) -> int:
        """The side of the images the networks make and judge now."""
        return self.sides[self.stage()[0]]

    @property
    def grown(self) -> bool:
        """At the top level, fully faded in."""
        return self.stage() == (self.top_level, 1.0)

    def reals(self, x: Tensor) -> Tensor:
        """Real images [B, C, img_size, img_size] as the discriminator sees them now: averaged down to the current
        side and, in a fade-in, blended with their own 2x coarser version upsampled, like the generator's output."""
        level, alpha = self.stage()
        x = F.avg_pool2d(x, self.img_size // self.sides[level]) if self.sides[level] != self.img_size else x
        if level == 0 or alpha >= 1:
            return x
        return fade(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0), x, alpha)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The generator at the current stage, upsampled (nearest) to img_size and clamped to [-1, 1]."""
        if labels is not None:
            raise MMKitError(f"{self.kind} is unconditional and takes no labels")
        x = self.generator(z, *self.stage())
        if x.shape[-1] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size))
        return x.clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """`n` images [n, C, img_size, img_size] in [-1, 1] from z ~ N(0, I) (or the given z [n, latent_dim])."""
        return self(self.noise(n, z, self.level.device), labels)


_register = model_family("generate", "progan", 64, in_chans=3)


@_register(
    "progan",
    "Progressive GAN (Karras et al. 2018): growing networks with fade-in, pixel norm, minibatch stddev, "
    "equalized learning rate, WGAN-GP with drift",
)
def progan(in_chans: int = 3, **kwargs) -> nn.Module:
    return ProGAN(in_chans, **kwargs)
