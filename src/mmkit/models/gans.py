"""Image GANs (label or noise -> image): GAN (MLP), DCGAN, WGAN, WGAN-GP, cGAN and AC-GAN, with their losses.

    model = get_model("dcgan", in_chans=1, img_size=28)          # Fashion-MNIST: 7 -> 14 -> 28
    images = model.sample(16)                                     # [16, 1, 28, 28] in [-1, 1]
    model = get_model("acgan", num_classes=10, in_chans=1, img_size=28)
    adv_logit, class_logits = model.discriminator(images)        # [B], [B, 10]

Conventions shared by every model here:
- Images are float NCHW in [-1, 1] (the generator ends in tanh), any number of channels, square `img_size`.
  Conv models build the size directly: the generator starts from s0 x s0 with s0 = img_size halved until it is
  at most 7 (28 -> 7, 32 -> 4, 64 -> 4, 48 -> 6) and doubles it with stride-2 transposed convs; the
  discriminator mirrors it. Any img_size = s0 * 2^k with 3 <= s0 <= 7 and k >= 1 works (MMKitError otherwise).
- ONE module `GAN` per model holding `generator` and `discriminator` (`critic` is the same module under its
  WGAN name), so a checkpoint is one state_dict; `ImageGAN`, its base, holds what LAPGAN, ProGAN and the
  text-to-image GANs share with it. Attributes `latent_dim`, `num_classes` (0 when unconditional),
  `img_size`, `channels`, `kind`. `sample(n, labels=None, z=None)` draws images without gradients (in the
  module's current train/eval mode); `forward(z, labels=None)` is the generator.
- `generator(z, labels=None) -> images`. `discriminator(x, labels=None)` returns the real/fake logit (critic
  score for WGAN and WGAN-GP) [B]; for AC-GAN it returns `(adv_logit [B], class_logits [B, K])` and ignores labels.
- Conditioning: cGAN concatenates a label embedding to z in G and uses a projection discriminator (Miyato &
  Koyama 2018: logit = w.h + <embed(y), h> on D's last features h); AC-GAN (Odena et al. 2017) concatenates the
  embedding in G and adds an auxiliary class head to D.
- Conv weights start from N(0, 0.02) and norm scales from N(1, 0.02) (Radford et al. 2016).
- Hidden activations: ReLU in the DCGAN generator, LeakyReLU(0.2) everywhere else; `act` (relu, leakyrelu, elu,
  sigmoid, tanh, gelu) replaces them all in both networks, e.g. `--model-arg act=elu`. The generator's last tanh
  stays.

Losses (one small function each; the task combines them):
  d_loss / g_loss            non-saturating BCE GAN (gan, dcgan, cgan, and the adversarial part of acgan)
  wgan_d_loss / wgan_g_loss  Wasserstein critic and generator losses (no sigmoid, no log); the critic is kept
                             Lipschitz by `clip_weights` after each of its steps (WGAN, Arjovsky et al. 2017:
                             c = 0.01) or by `gradient_penalty` (WGAN-GP, lambda = 10)
  aux_class_loss             AC-GAN's auxiliary cross-entropy, on real images (D) and on fakes (D and G)
`frozen(*modules)` turns off requires_grad for a block (D during the G step), so G's backward leaves no
gradients in D's parameters; `generator_parameters()` / `discriminator_parameters()` feed two optimizers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.layers import activation
from mmkit.models.registry import model_family

__all__ = [
    "GAN",
    "ImageGAN",
    "ConvDiscriminatorBody",
    "ConvGeneratorBody",
    "Discriminator",
    "Generator",
    "aux_class_loss",
    "clip_weights",
    "conv_depth",
    "d_loss",
    "dcgan_init",
    "frozen",
    "g_loss",
    "gradient_penalty",
    "start_size",
    "wgan_d_loss",
    "wgan_g_loss",
]

ARCHS = ("mlp", "conv")
CONDITIONINGS = ("none", "cgan", "acgan")
D_NORMS = ("batch", "layer", "none")


# ---------------------------------------------------------------------------------------------------------------
# Shapes and init


def start_size(img_size: int) -> int:
    """The conv generator's first feature map side: `img_size` halved until it is at most 7 (28 -> 7, 32 -> 4)."""
    s = img_size
    while s > 7 and s % 2 == 0:
        s //= 2
    if s > 7 or s < 3 or s == img_size:
        raise MMKitError(
            f"img_size={img_size}: a conv GAN needs s0 * 2^k pixels with 3 <= s0 <= 7, k >= 1 (e.g. 28, 32, 64)"
        )
    return s


def conv_depth(img_size: int) -> int:
    """k, the stride-2 layers between the start side and img_size = s0 * 2^k (28 -> 2, 32 -> 3, 64 -> 4)."""
    return (img_size // start_size(img_size)).bit_length() - 1


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv and linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _d_norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":  # LayerNorm over (C, H, W) with a per-channel affine: no batch coupling (WGAN-GP)
        return nn.GroupNorm(1, ch)
    return nn.Identity()


# ---------------------------------------------------------------------------------------------------------------
# Bodies: vector -> image (generator), image -> feature vector (discriminator)


def mlp_generator_body(
    in_dim: int, channels: int, img_size: int, hidden: tuple[int, ...], act: str = "leakyrelu"
) -> nn.Sequential:
    """Goodfellow et al. style MLP: Linear + BN + LeakyReLU(0.2) (or `act`) per hidden layer, then Linear + tanh to
    pixels."""
    layers: list[nn.Module] = []
    d = in_dim
    for i, h in enumerate(hidden):
        layers += [nn.Linear(d, h)]
        if i > 0:
            layers += [nn.BatchNorm1d(h)]
        layers += [activation(act, negative_slope=0.2)]
        d = h
    layers += [nn.Linear(d, channels * img_size * img_size), nn.Tanh()]
    layers += [nn.Unflatten(1, (channels, img_size, img_size))]
    return nn.Sequential(*layers)


def mlp_discriminator_body(
    channels: int, img_size: int, hidden: tuple[int, ...], act: str = "leakyrelu"
) -> tuple[nn.Sequential, int]:
    """Flatten, then Linear + LeakyReLU(0.2) (or `act`) per hidden layer; returns (body, feature width)."""
    layers: list[nn.Module] = [nn.Flatten()]
    d = channels * img_size * img_size
    for h in hidden:
        layers += [nn.Linear(d, h), activation(act, negative_slope=0.2)]
        d = h
    return nn.Sequential(*layers), d


class ConvGeneratorBody(nn.Sequential):
    """DCGAN generator: z -> (transposed conv s0 x s0) base*2^(k-1) maps -> k stride-2 transposed convs (BN, ReLU)
    halving the channels -> `channels` maps at img_size, tanh. No pooling, no fully connected hidden layers. `act`
    replaces the ReLUs."""

    def __init__(self, in_dim: int, channels: int, img_size: int, base: int = 64, act: str = "relu") -> None:
        s0, k = start_size(img_size), conv_depth(img_size)
        ch = base * 2 ** (k - 1)
        layers: list[nn.Module] = [
            nn.Unflatten(1, (in_dim, 1, 1)),
            nn.ConvTranspose2d(in_dim, ch, s0, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            activation(act, inplace=True),
        ]
        for _ in range(k - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                activation(act, inplace=True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        super().__init__(*layers)


class ConvDiscriminatorBody(nn.Sequential):
    """DCGAN discriminator: k stride-2 4x4 convs with LeakyReLU(0.2) (norm on all but the first), doubling the
    channels from `base` down to s0 x s0, then flattened. `norm`: "batch" (DCGAN), "layer" (WGAN-GP), "none"; `act`
    replaces the LeakyReLUs."""

    def __init__(
        self, channels: int, img_size: int, base: int = 64, norm: str = "batch", act: str = "leakyrelu"
    ) -> None:
        if norm not in D_NORMS:
            raise MMKitError(f"norm={norm!r}: the discriminator norm is one of {', '.join(D_NORMS)}")
        s0, k = start_size(img_size), conv_depth(img_size)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, base, 4, 2, 1),
            activation(act, negative_slope=0.2, inplace=True),
        ]
        ch = base
        for _ in range(k - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"),
                _d_norm(norm, ch * 2),
                activation(act, negative_slope=0.2, inplace=True),
            ]
            ch *= 2
        layers += [nn.Flatten()]
        super().__init__(*layers)
        self.out_features = ch * s0 * s0


# ---------------------------------------------------------------------------------------------------------------
# Generator and discriminator with their conditioning


class Generator(nn.Module):
    """z [B, latent_dim] (+ labels [B] -> embedding, concatenated) -> body -> images [B, C, H, W] in [-1, 1]."""

    def __init__(self, body: nn.Module, latent_dim: int, num_classes: int = 0, embed_dim: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        self.body = body

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            if labels is None:
                raise MMKitError("generator: this conditional GAN needs labels")
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        return self.body(z)


class Discriminator(nn.Module):
    """images -> body features h [B, F] -> real/fake logit [B] (+ <embed(y), h> for "cgan"; + class logits for
    "acgan", returned as a tuple)."""

    def __init__(
        self, body: nn.Module, features: int, num_classes: int = 0, conditioning: str = "none"
    ) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.body = body
        self.adv = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if conditioning == "cgan" else None
        if self.embed is not None:  # small, like the other weights: N(0, 1) over F features swamps the logit
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.cls = nn.Linear(features, num_classes) if conditioning == "acgan" else None

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        h = self.body(x)
        adv = self.adv(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise MMKitError("discriminator: this conditional GAN needs labels")
            adv = adv + (self.embed(labels).to(h.dtype) * h).sum(1)
        if self.cls is not None:
            return adv, self.cls(h)
        return adv


class ImageGAN(nn.Module):
    """What every adversarial image model of mmkit shares (GAN here, LAPGAN, ProGAN, the text-to-image GANs): its
    images (`channels`, `img_size`), noise (`latent_dim`), classes (`num_classes`, 0: unconditional) and `kind`;
    `generator` and `discriminator` modules (set by the subclass; `critic` is the discriminator under its WGAN
    name), their parameter sets for two optimizers, `forward` as the generator and `sample`."""

    generator: nn.Module
    discriminator: nn.Module

    def __init__(
        self, channels: int, img_size: int, latent_dim: int, num_classes: int = 0, kind: str = ""
    ) -> None:
        super().__init__()
        if channels < 1 or latent_dim < 1:
            raise MMKitError(f"channels={channels}, latent_dim={latent_dim}: both must be positive")
        if num_classes == 1 or num_classes < 0:
            raise MMKitError(
                f"num_classes={num_classes}: a conditional {kind or 'GAN'} needs at least 2 classes"
            )
        self.channels, self.img_size, self.latent_dim = channels, img_size, latent_dim
        self.num_classes, self.kind = num_classes, kind

    @property
    def critic(self) -> nn.Module:
        """The discriminator under its WGAN name (the same module; not a second copy in the state_dict)."""
        return self.discriminator

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.generator(z, labels)

    def noise(self, n: int, z: Tensor | None, device: torch.device) -> Tensor:
        """z for `n` samples on `device`: drawn from N(0, I), or the given one checked to be [n, latent_dim]."""
        if z is None:
            return torch.randn(n, self.latent_dim, device=device)
        if z.shape != (n, self.latent_dim):
            raise MMKitError(f"sample: z has shape {tuple(z.shape)}, expected ({n}, {self.latent_dim})")
        return z.to(device)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """`n` images [n, C, H, W] in [-1, 1] from z ~ N(0, I) (or the given z [n, latent_dim]). Conditional
        models take `labels` [n] (default: 0, 1, ..., K-1, 0, 1, ... so a grid shows every class)."""
        device = next(self.parameters()).device
        z = self.noise(n, z, device)
        if self.num_classes:
            if labels is None:
                labels = torch.arange(n, device=device) % self.num_classes
            labels = labels.to(device=device, dtype=torch.long)
        elif labels is not None:
            raise MMKitError(f"sample: {self.kind} is unconditional and takes no labels")
        return self(z, labels)


class GAN(ImageGAN):
    """One adversarial image model: `generator` + `discriminator` (alias `critic`).

    arch: "mlp" (hidden sizes `hidden` in G, `d_hidden` in D) or "conv" (DCGAN, `base` channels); conditioning:
    "none", "cgan" or "acgan" (then num_classes >= 2); d_norm: the conv discriminator's norm; act: every hidden
    activation of both networks (None: ReLU in the conv generator, LeakyReLU(0.2) elsewhere)."""

    def __init__(
        self,
        channels: int = 1,
        img_size: int = 28,
        latent_dim: int = 100,
        num_classes: int = 0,
        *,
        arch: str = "conv",
        conditioning: str = "none",
        d_norm: str = "batch",
        base: int = 64,
        hidden: tuple[int, ...] = (256, 512, 1024),
        d_hidden: tuple[int, ...] = (512, 256),
        embed_dim: int = 50,
        act: str | None = None,
        kind: str = "",
    ) -> None:
        if arch not in ARCHS:
            raise MMKitError(f"arch={arch!r}: one of {', '.join(ARCHS)}")
        if conditioning not in CONDITIONINGS:
            raise MMKitError(f"conditioning={conditioning!r}: one of {', '.join(CONDITIONINGS)}")
        if conditioning != "none" and num_classes < 2:
            raise MMKitError(f"num_classes={num_classes}: a {conditioning} model needs at least 2 classes")
        if conditioning == "none":
            num_classes = 0
        kind = kind or (arch if conditioning == "none" else conditioning)
        super().__init__(channels, img_size, latent_dim, num_classes, kind)
        g_in = latent_dim + (embed_dim if num_classes else 0)
        g_act, d_act = act or ("relu" if arch == "conv" else "leakyrelu"), act or "leakyrelu"
        if arch == "mlp":
            g_body: nn.Module = mlp_generator_body(g_in, channels, img_size, tuple(hidden), g_act)
            d_body, feats = mlp_discriminator_body(channels, img_size, tuple(d_hidden), d_act)
        else:
            g_body = ConvGeneratorBody(g_in, channels, img_size, base, g_act)
            d_body = ConvDiscriminatorBody(channels, img_size, base, d_norm, d_act)
            feats = d_body.out_features
        self.generator = Generator(g_body, latent_dim, num_classes, embed_dim)
        self.discriminator = Discriminator(d_body, feats, num_classes, conditioning)
        if arch == "conv":
            dcgan_init(self)


# ---------------------------------------------------------------------------------------------------------------
# Losses


def d_loss(real_logits: Tensor, fake_logits: Tensor, real_label: float = 1.0) -> Tensor:
    """Non-saturating GAN discriminator loss: BCE(real, real_label) + BCE(fake, 0) (real_label 0.9: one-sided
    label smoothing)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: BCE(D(G(z)), 1) = -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss E[D(fake)] - E[D(real)] on raw scores (WGAN then clips the critic's weights, WGAN-GP adds
    `gradient_penalty`)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_g_loss(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss -E[D(G(z))]."""
    return -fake_scores.mean()


def aux_class_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """AC-GAN auxiliary classification loss (cross-entropy)."""
    return F.cross_entropy(class_logits, labels)


def mode_seeking_loss(fake: Tensor, z: Tensor, eps: float = 1e-5) -> Tensor:
    """Mao et al. 2019 (MSGAN): the generator's penalty 1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps) over pairs
    with the same condition, which punishes a conditional generator for ignoring its noise. The pairs are the two
    halves of the batch: row i of the first half and row i of the second share their label."""
    h = len(fake) // 2
    ratio = (fake[:h] - fake[h : 2 * h]).abs().flatten(1).mean(1) / (z[:h] - z[h : 2 * h]).abs().mean(1)
    return 1.0 / (ratio.mean() + eps)


def gradient_penalty(
    critic: Callable[..., Tensor | tuple[Tensor, Tensor]],
    real: Tensor,
    fake: Tensor,
    labels: Tensor | None = None,
    weight: float = 10.0,
) -> Tensor:
    """Gulrajani et al. 2017: weight * E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = a*real + (1-a)*fake, a ~ U(0, 1)
    per sample. Differentiable w.r.t. the critic's parameters; real and fake are detached. A critic returning a
    tuple (AC-GAN) is penalized on its first output. Computed in float32."""
    real, fake = real.detach().float(), fake.detach().float()
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with torch.autocast(real.device.type, enabled=False):
        out = critic(x_hat) if labels is None else critic(x_hat, labels)
        if isinstance(out, tuple):
            out = out[0]
        (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(*modules: nn.Module, c: float = 0.01) -> None:
    """WGAN's Lipschitz constraint (Arjovsky et al. 2017): clamp every parameter of `modules` (the critics) to
    [-c, c], after each of their optimizer steps."""
    for m in modules:
        for p in m.parameters():
            p.clamp_(-c, c)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off requires_grad of every parameter of `modules` inside the block (restoring each flag after), e.g.
    the discriminator during the generator step."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


# ---------------------------------------------------------------------------------------------------------------
# Registry: unconditional builders take the image channels; cgan / acgan also take num_classes, the K labels they
# draw.


_register = model_family("generate", "gan", 28, in_chans=1)


@_register("gan", "MLP generator and discriminator (Goodfellow et al. 2014), non-saturating BCE loss")
def gan(in_chans: int = 1, **kwargs) -> nn.Module:
    return GAN(in_chans, arch="mlp", kind="gan", **kwargs)


@_register(
    "dcgan", "DCGAN (Radford et al. 2016): strided (transposed) convs, BN, ReLU / LeakyReLU, no pooling"
)
def dcgan(in_chans: int = 1, **kwargs) -> nn.Module:
    return GAN(in_chans, kind="dcgan", **kwargs)


@_register("wgan", "WGAN (Arjovsky et al. 2017): DCGAN networks, a critic kept Lipschitz by weight clipping")
def wgan(in_chans: int = 1, **kwargs) -> nn.Module:
    return GAN(in_chans, kind="wgan", **kwargs)


@_register(
    "wgan-gp", "WGAN-GP (Gulrajani et al. 2017): DCGAN generator, critic with LayerNorm, gradient penalty"
)
def wgan_gp(in_chans: int = 1, **kwargs) -> nn.Module:
    kwargs.setdefault("d_norm", "layer")
    return GAN(in_chans, kind="wgan-gp", **kwargs)


@_register("cgan", "conditional DCGAN: label embedding concatenated to z, projection discriminator")
def cgan(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return GAN(in_chans, num_classes=num_classes, conditioning="cgan", kind="cgan", **kwargs)


@_register("acgan", "AC-GAN (Odena et al. 2017): conditional DCGAN generator, D with an auxiliary class head")
def acgan(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return GAN(in_chans, num_classes=num_classes, conditioning="acgan", kind="acgan", **kwargs)
