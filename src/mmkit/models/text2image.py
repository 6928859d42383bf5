"""Text -> image GANs: GAN-INT-CLS (Reed et al. 2016) and StackGAN (Zhang et al. 2017), with their losses.

    model = get_model("stackgan", vocab_size=60)              # 16 px stage I, 64 px stage II
    e = model.embed(tokens)                                    # tokens int64 [B, L] (0: padding) -> [B, 128]
    stages, kl = model.generate(torch.randn(B, 100), e)        # [B, 3, 16, 16], [B, 3, 64, 64]; the CA's KL
    images = model.sample(16, tokens)                          # the last stage, [16, 3, 64, 64] in [-1, 1]

Both models hold a sentence encoder (word embeddings, a bidirectional GRU, its two last states -> `embed_dim`)
and a small image encoder that trains it: a contrastive image-text loss (`contrastive_loss`, symmetric InfoNCE in
place of Reed et al.'s structured joint embedding) on the same batches as the GAN, with its own optimizer. The GAN
sees the embedding detached, so text and adversarial training do not pull on each other.

- GAN-INT-CLS: G(z, phi(t)) with phi(t) the embedding projected to 128 dims (LeakyReLU) and concatenated to z,
  through the DCGAN generator (`mmkit.models.gans.ConvGeneratorBody`). The matching-aware discriminator
  (`TextDiscriminator`, "CLS") compresses the embedding, replicates it over D's last 4x4 map, and judges the pair
  with a 1x1 then a 4x4 conv: `matching_d_loss` counts real image + right text as real, real image + wrong text and
  fake image + right text as fake. "INT": G also learns from interpolated embeddings `interpolate(e1, e2, 0.5)`,
  which have no real image (D never sees them as real).
- StackGAN: conditioning augmentation (`ConditioningAugmentation`: embedding -> mu, log sigma^2; c = mu + sigma *
  eps, regularized by `kl_loss`, KL(N(mu, sigma^2) || N(0, I))). Stage I draws `stage1_size` px (16) from [z, c1]
  with the DCGAN generator; stage II encodes the stage-I image (a 3x3 conv, one stride-2 conv), joins its own
  condition c2 replicated over the map, refines it with residual blocks and upsamples to `img_size` (64), adding
  that to the stage-I image enlarged (a skip the paper does not have: see `StageTwo`). Each stage has its own
  matching-aware discriminator at its size. The stage-I image reaches stage II detached: each
  stage learns from its own discriminator, as when the paper trains stage II with stage I fixed.

Conventions as in `mmkit.models.gans`: images NCHW in [-1, 1] (tanh), DCGAN init (not for the encoders),
`generator_parameters()` / `discriminator_parameters()` for the two adversarial optimizers, plus `text_parameters()`
(both encoders).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.gans import ConvDiscriminatorBody, ConvGeneratorBody, ImageGAN, dcgan_init, start_size
from mmkit.models.registry import model_family

__all__ = [
    "ConditioningAugmentation",
    "GANIntCls",
    "SentenceEncoder",
    "StackGAN",
    "TextDiscriminator",
    "TextToImageGAN",
    "contrastive_loss",
    "interpolate",
    "kl_loss",
    "matching_d_loss",
]

ENCODER_SIZE = 32  # the image encoder sees images pooled to this side


# ---------------------------------------------------------------------------------------------------------------
# Text, and the image encoder that trains it


class SentenceEncoder(nn.Module):
    """Token ids [B, L] (0: padding) -> word embeddings -> bidirectional GRU -> its last forward and backward states
    -> Linear -> [B, embed_dim]."""

    def __init__(self, vocab_size: int, embed_dim: int = 128, word_dim: int = 64, hidden: int = 64) -> None:
        super().__init__()
        if vocab_size < 5:
            raise MMKitError(
                f"vocab_size={vocab_size}: a vocabulary has 4 special tokens and at least one word"
            )
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, embed_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        lengths = (tokens != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.words(tokens), lengths, batch_first=True, enforce_sorted=False
        )
        _, h = self.gru(packed)  # [2, B, hidden]: the forward pass's last state, the backward pass's first
        return self.out(torch.cat([h[0], h[1]], dim=1))


class ImageEncoder(nn.Module):
    """Images pooled to 32 px -> the DCGAN discriminator's convs -> Linear -> [B, embed_dim]: the image side of the
    contrastive loss that trains the sentence encoder."""

    def __init__(self, channels: int, embed_dim: int, base: int = 32) -> None:
        super().__init__()
        self.body = ConvDiscriminatorBody(channels, ENCODER_SIZE, base)
        self.out = nn.Linear(self.body.out_features, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != ENCODER_SIZE:
            x = F.adaptive_avg_pool2d(x, ENCODER_SIZE)
        return self.out(self.body(x))


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE: row i of each side should pick row i of the other among the batch, on cosine
    similarities divided by `temperature`."""
    logits = F.normalize(image_emb, dim=1) @ F.normalize(text_emb, dim=1).T / temperature
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# ---------------------------------------------------------------------------------------------------------------
# Conditioning


class ConditioningAugmentation(nn.Module):
    """StackGAN's CA: embedding [B, E] -> (c, mu, logvar), c = mu + exp(logvar / 2) * eps, eps ~ N(0, I), each
    [B, cond_dim]; a fresh c on every call (in eval mode too: the paper samples at test time)."""

    def __init__(self, embed_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(embed_dim, 2 * cond_dim)

    def forward(self, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.fc(e).chunk(2, dim=1)
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp(), mu, logvar


def kl_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form, 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2) over the
    dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


def interpolate(e1: Tensor, e2: Tensor, beta: float = 0.5) -> Tensor:
    """GAN-INT: beta * e1 + (1 - beta) * e2, an embedding between two captions' (Reed et al.: beta = 0.5)."""
    if not 0.0 <= beta <= 1.0:
        raise MMKitError(f"beta={beta}: an interpolation weight is in [0, 1]")
    return beta * e1 + (1 - beta) * e2


def matching_d_loss(real_right: Tensor, real_wrong: Tensor, fake_right: Tensor) -> Tensor:
    """The matching-aware discriminator loss (GAN-CLS, Reed et al. 2016; StackGAN): BCE(D(real, right text), 1) +
    (BCE(D(real, wrong text), 0) + BCE(D(fake, right text), 0)) / 2, on logits."""
    real = F.binary_cross_entropy_with_logits(real_right, torch.ones_like(real_right))
    wrong = F.binary_cross_entropy_with_logits(real_wrong, torch.zeros_like(real_wrong))
    fake = F.binary_cross_entropy_with_logits(fake_right, torch.zeros_like(fake_right))
    return real + (wrong + fake) / 2


# ---------------------------------------------------------------------------------------------------------------
# Networks


class TextDiscriminator(nn.Module):
    """Matching-aware D: images -> the DCGAN discriminator's convs down to s0 x s0 (4 x 4 at 16, 32 or 64 px); the
    embedding -> Linear + LeakyReLU -> `proj_dim`, replicated over that map and concatenated; a 1x1 conv and an
    s0 x s0 conv to one logit [B] for the (image, text) pair."""

    def __init__(
        self, channels: int, img_size: int, embed_dim: int, base: int = 32, proj_dim: int = 128
    ) -> None:
        super().__init__()
        self.body = ConvDiscriminatorBody(channels, img_size, base)
        self.size, self.s0 = img_size, start_size(img_size)
        ch = self.body.out_features // self.s0**2
        self.proj = nn.Sequential(nn.Linear(embed_dim, proj_dim), nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(
            nn.Conv2d(ch + proj_dim, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2, inplace=True)
        )
        self.out = nn.Conv2d(ch, 1, self.s0)

    def features(self, x: Tensor) -> Tensor:
        """The image's s0 x s0 map, to `judge` with more than one text (real images: right and wrong)."""
        return self.body(x).unflatten(1, (-1, self.s0, self.s0))

    def judge(self, h: Tensor, e: Tensor) -> Tensor:
        t = self.proj(e)[:, :, None, None].expand(-1, -1, self.s0, self.s0)
        return self.out(self.joint(torch.cat([h, t], dim=1))).flatten()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        return self.judge(self.features(x), e)


class ResidualBlock(nn.Module):
    """x + (conv3x3-BN-ReLU-conv3x3-BN)(x), then ReLU (StackGAN's stage-II blocks)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(ch, ch), nn.ReLU(inplace=True), _conv_bn(ch, ch))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    k = 3 if stride == 1 else 4
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, 1, bias=False), nn.BatchNorm2d(cout))


def _up(cin: int, cout: int) -> nn.Sequential:
    """Nearest-neighbour x2, conv3x3-BN-ReLU (StackGAN's upsampling block)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn(cin, cout), nn.ReLU(inplace=True)
    )


class TextGenerator(nn.Module):
    """GAN-INT-CLS's G: [z, LeakyReLU(Linear(e))] -> the DCGAN generator -> images."""

    def __init__(
        self, latent_dim: int, embed_dim: int, channels: int, img_size: int, base: int, proj_dim: int = 128
    ) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(embed_dim, proj_dim), nn.LeakyReLU(0.2, inplace=True))
        self.body = ConvGeneratorBody(latent_dim + proj_dim, channels, img_size, base)

    def forward(self, z: Tensor, e: Tensor) -> Tensor:
        return self.body(torch.cat([z, self.proj(e)], dim=1))


class StageOne(nn.Module):
    """StackGAN stage I: [z, c] (c from its own CA) -> the DCGAN generator -> low-resolution images; returns
    (images, mu, logvar)."""

    def __init__(
        self, latent_dim: int, embed_dim: int, cond_dim: int, channels: int, size: int, base: int
    ) -> None:
        super().__init__()
        self.ca = ConditioningAugmentation(embed_dim, cond_dim)
        self.body = ConvGeneratorBody(latent_dim + cond_dim, channels, size, base)

    def forward(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(e)
        return self.body(torch.cat([z, c], dim=1)), mu, logvar


class StageTwo(nn.Module):
    """StackGAN stage II: a stage-I image (`low` px) -> conv3x3-ReLU, one stride-2 conv -> [features, c] (c from its
    own CA, replicated over the map) -> conv3x3 -> `blocks` residual blocks -> x2 upsampling blocks (channels
    halving) up to `size` -> conv3x3 -> r; returns (images, mu, logvar). The images are tanh(atanh(up(low)) + r):
    the refinement r is added to the stage-I image enlarged (bilinear), before its tanh. The paper has no such
    skip; with it stage II starts from stage I's picture and learns corrections, which a few hundred CPU steps
    can do where redrawing the scene from features they cannot."""

    def __init__(
        self, embed_dim: int, cond_dim: int, channels: int, low: int, size: int, base: int, blocks: int = 2
    ) -> None:
        super().__init__()
        ups = (size // low).bit_length()  # one stride-2 conv down, then back up past `low` to `size`
        if low * 2 ** (ups - 1) != size or ups < 2:
            raise MMKitError(f"stage II: {low} px -> {size} px must be a power-of-two enlargement")
        ch = base * 2 ** (ups - 1)
        self.ca = ConditioningAugmentation(embed_dim, cond_dim)
        self.encode = nn.Sequential(
            nn.Conv2d(channels, ch // 2, 3, 1, 1),
            nn.ReLU(inplace=True),
            _conv_bn(ch // 2, ch, 2),
            nn.ReLU(inplace=True),
        )
        self.joint = nn.Sequential(_conv_bn(ch + cond_dim, ch), nn.ReLU(inplace=True))
        layers: list[nn.Module] = [ResidualBlock(ch) for _ in range(blocks)]
        for _ in range(ups):
            layers.append(_up(ch, ch // 2))
            ch //= 2
        self.refine = nn.Sequential(*layers, nn.Conv2d(ch, channels, 3, 1, 1))
        self.size = size

    def forward(self, low: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(e)
        h = self.encode(low)
        h = torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[-2:])], dim=1)
        skip = F.interpolate(torch.atanh(low.clamp(-0.999, 0.999)), size=self.size, mode="bilinear")
        return torch.tanh(skip + self.refine(self.joint(h))), mu, logvar


# ---------------------------------------------------------------------------------------------------------------
# Models


class TextToImageGAN(ImageGAN):
    """What both models share: the sentence and image encoders, the matching-aware discriminators of the stages
    (`discriminators`, low to high resolution), sampling; a subclass builds `generate(z, e) -> (images per stage,
    KL)`. Shared options: `vocab_size` (the caption vocabulary, its 4 special tokens included), `channels`,
    `img_size` (the last stage's), `latent_dim`, `embed_dim` (the sentence embedding), `d_base` (the
    discriminators' first channels)."""

    def __init__(
        self,
        vocab_size: int,
        channels: int = 3,
        img_size: int = 64,
        latent_dim: int = 100,
        embed_dim: int = 128,
        d_base: int = 16,
        *,
        kind: str,
    ) -> None:
        super().__init__(channels, img_size, latent_dim, kind=kind)
        self.vocab_size, self.embed_dim, self.d_base = vocab_size, embed_dim, d_base
        self.text_encoder = SentenceEncoder(vocab_size, embed_dim)
        self.image_encoder = ImageEncoder(channels, embed_dim)

    def init_gan(self) -> None:
        """DCGAN's init for the generator and the discriminators; the encoders keep PyTorch's (from N(0, 0.02) the
        contrastive loss learns several times slower)."""
        for name, m in self.named_children():
            if name not in ("text_encoder", "image_encoder"):
                dcgan_init(m)

    def judges(self, *sizes: int) -> nn.ModuleList:
        """A matching-aware discriminator for each stage size."""
        return nn.ModuleList(TextDiscriminator(self.channels, s, self.embed_dim, self.d_base) for s in sizes)

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.discriminators)

    def generate(self, z: Tensor, e: Tensor) -> tuple[list[Tensor], Tensor]:
        """Images of every stage (low to high resolution) for noise z [B, latent_dim] and embeddings e [B, E], and
        the conditioning augmentation's KL term (0 without one)."""
        raise NotImplementedError

    def embed(self, tokens: Tensor) -> Tensor:
        return self.text_encoder(tokens)

    def forward(self, z: Tensor, tokens: Tensor) -> Tensor:
        """The last stage's images for noise z and caption token ids."""
        return self.generate(z, self.embed(tokens))[0][-1]

    @torch.no_grad()
    def sample(self, n: int, tokens: Tensor, z: Tensor | None = None) -> Tensor:
        """`n` images [n, C, img_size, img_size] in [-1, 1] for captions `tokens` ([n, L], or [1, L] for n images of
        one caption), from z ~ N(0, I) or the given z [n, latent_dim]."""
        device = next(self.parameters()).device
        tokens = tokens.to(device).expand(n, -1) if len(tokens) == 1 else tokens.to(device)
        if len(tokens) != n:
            raise MMKitError(f"sample: {len(tokens)} captions for {n} images")
        return self(self.noise(n, z, device), tokens)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        skip = {
            id(p)
            for m in (self.text_encoder, self.image_encoder, self.discriminators)
            for p in m.parameters()
        }
        return (p for p in self.parameters() if id(p) not in skip)

    @property
    def discriminator(self) -> nn.ModuleList:
        """The stages' discriminators under the name `ImageGAN` gives them."""
        return self.discriminators

    def text_parameters(self) -> Iterator[nn.Parameter]:
        return (p for m in (self.text_encoder, self.image_encoder) for p in m.parameters())


class GANIntCls(TextToImageGAN):
    """GAN-INT-CLS (Reed et al. 2016): one generator at `img_size` (`base`: its last hidden channels), a
    matching-aware discriminator; the training task adds the interpolated embeddings (INT)."""

    def __init__(self, vocab_size: int, channels: int = 3, *, base: int = 16, **shared: Any) -> None:
        super().__init__(vocab_size, channels, kind="gan-int-cls", **shared)
        self.generator = TextGenerator(self.latent_dim, self.embed_dim, channels, self.img_size, base)
        self.discriminators = self.judges(self.img_size)
        self.init_gan()

    def generate(self, z: Tensor, e: Tensor) -> tuple[list[Tensor], Tensor]:
        return [self.generator(z, e)], z.new_zeros(())


class StackGAN(TextToImageGAN):
    """StackGAN (Zhang et al. 2017): stage I at `stage1_size` (`base`: its generator's last hidden channels), stage
    II refining to `img_size` (`base2`: its channels at the output, doubling per halving; `blocks` residual blocks),
    each with its own conditioning augmentation (`cond_dim`) and discriminator."""

    def __init__(
        self,
        vocab_size: int,
        channels: int = 3,
        *,
        stage1_size: int = 16,
        cond_dim: int = 64,
        base: int = 32,
        base2: int = 8,
        blocks: int = 2,
        **shared: Any,
    ) -> None:
        super().__init__(vocab_size, channels, kind="stackgan", **shared)
        size, e = self.img_size, self.embed_dim
        if not 8 <= stage1_size < size:
            raise MMKitError(f"stage1_size={stage1_size}: stage I draws 8 px or more, below img_size={size}")
        self.stage1 = StageOne(self.latent_dim, e, cond_dim, channels, stage1_size, base)
        self.stage2 = StageTwo(e, cond_dim, channels, stage1_size, size, base2, blocks)
        self.discriminators = self.judges(stage1_size, size)
        self.init_gan()

    def generate(self, z: Tensor, e: Tensor) -> tuple[list[Tensor], Tensor]:
        low, mu1, logvar1 = self.stage1(z, e)
        high, mu2, logvar2 = self.stage2(low.detach(), e)
        return [low, high], kl_loss(mu1, logvar1) + kl_loss(mu2, logvar2)


# ---------------------------------------------------------------------------------------------------------------
# Registry: the builders take the caption vocabulary's size (special tokens included) and the image channels.


_register = model_family("generate", "text2image", 64, in_chans=3)


@_register(
    "gan-int-cls", "GAN-INT-CLS (Reed et al. 2016): text embedding + z -> DCGAN, matching-aware D, GAN-INT"
)
def gan_int_cls(vocab_size: int, in_chans: int = 3, **kwargs) -> nn.Module:
    return GANIntCls(vocab_size, in_chans, **kwargs)


@_register(
    "stackgan", "StackGAN (Zhang et al. 2017): conditioning augmentation, 16 px stage I, 64 px stage II"
)
def stackgan(vocab_size: int, in_chans: int = 3, **kwargs) -> nn.Module:
    return StackGAN(vocab_size, in_chans, **kwargs)
