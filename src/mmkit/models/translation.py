"""Image-to-image translation: pix2pix (paired A -> B); CycleGAN, DiscoGAN and DualGAN (unpaired A <-> B), with their
losses.

    model = get_model("pix2pix", in_chans=3, img_size=64)          # out_chans defaults to in_chans
    fake_b = model(real_a)                                          # [B, 3, 64, 64] in [-1, 1]
    model = get_model("cyclegan", in_chans=3, img_size=64)          # also "discogan", "dualgan"
    fake_b, fake_a = model.g_ab(real_a), model.g_ba(real_b)

Conventions: images float NCHW in [-1, 1] (generators end in tanh); one module per model holding every network,
so a checkpoint is one state_dict; `forward(a) -> b`; `generator_parameters()` / `discriminator_parameters()`
feed the two optimizers. Loss helpers take the (unwrapped) model and return `(loss, parts)` with `parts` a dict
of detached tensors to log; the discriminator losses detach the fakes themselves. The generators are fully
convolutional and take any height and width: an input off the multiple their downsamplings need is reflect-padded
to it and the output cropped back (`run_padded`); `tiled` runs any image-to-image function on overlapping tiles of a
large image and blends them (InstanceNorm then normalises each tile by its own statistics: near the whole image's
result, not equal to it).

pix2pix (Isola et al. 2017):
- U-Net generator: `num_downs` stride-2 4x4 convs (LeakyReLU 0.2, norm on all but the outermost and innermost;
  channels ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...) and the mirrored transposed convs (ReLU, norm) with a skip
  concatenation at every level (inputs padded to a multiple of 2^num_downs); dropout 0.5 in the first three decoder
  layers (the paper's CD512 x 3, and the noise source: keep the model in train mode at test time for stochastic
  outputs, as the paper does).
  Default num_downs: as many halvings as img_size allows, at most 8 (64 -> 6, bottleneck 1 x 1; 28 -> 2).
- PatchGAN discriminator on concat(a, b): `d_layers` stride-2 convs, one stride-1 conv, a 1-channel conv;
  receptive field 16 / 34 / 70 px for d_layers 1 / 2 / 3 (the paper's 70 x 70 at 256 px). Default from img_size
  (`patchgan_layers`): 3 at >= 256 px, 2 at >= 64 px, 1 below, about a quarter to half of the image.
- Losses: cGAN BCE on every patch (D's loss halved, as in the paper) + lambda_L1 = 100 * L1(G(a), b).

The unpaired models are one class, `UnpairedGAN`: two generators (`g_ab`: A -> B, `g_ba`: B -> A) and two
discriminators (`d_a` judges domain A, `d_b` domain B), trained by one pair of losses (`cyclegan_g_loss`,
`cyclegan_d_loss`): the adversarial terms both ways plus lambda * the reconstruction of a and b after a round
trip. What differs is declared: the networks (`*_networks`), the adversarial kind (`ADVERSARIAL`), the
reconstruction distance (`RECONSTRUCTION`), and, in the generate task, the weights and optimizers.

CycleGAN (Zhu et al. 2017):
- ResNet generators: c7s1-ngf, two stride-2 downsamplings, `n_blocks` residual blocks (reflection padding,
  InstanceNorm), two transposed-conv upsamplings, c7s1 + tanh (inputs padded to a multiple of 4). PatchGANs with
  InstanceNorm.
- Losses: LSGAN (MSE to 1 / 0; D's loss halved), cycle L1 * lambda (10), identity L1 * 0.5 * lambda (needs
  equal channel counts in A and B; pass lambda_identity=0 otherwise). `ImagePool(50)` feeds D from a history of
  fakes (Shrivastava et al. 2017).

DiscoGAN (Kim et al. 2017):
- Encoder-decoder generators (the U-Net without skips or dropout, down to 4 x 4 at 64 px) and DCGAN
  discriminators (one logit per image), BatchNorm.
- Losses: BCE GAN (D's loss halved, as the paper's code) + reconstruction L2 (the code's MSE; the paper allows any
  distance) * lambda (1: the paper's sum of the four terms), no identity term, no image pool. Not here: the code's
  feature-matching loss and its schedule of GAN vs reconstruction weights.

DualGAN (Yi et al. 2017):
- pix2pix's networks: U-Net generators (dropout as the only noise z) and PatchGAN critics (no sigmoid).
- Losses: WGAN (critic D(fake) - D(real), generator -D(fake)) with the critics' weights clipped to [-c, c] after
  each step, + L1 reconstruction * lambda (one weight for both directions, the paper's lambda_U = lambda_V).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.gans import ConvDiscriminatorBody, Discriminator, conv_depth, dcgan_init
from mmkit.models.registry import model_family

__all__ = [
    "ADVERSARIAL",
    "RECONSTRUCTION",
    "ImagePool",
    "PatchDiscriminator",
    "Pix2Pix",
    "ResnetGenerator",
    "UNetGenerator",
    "UnpairedGAN",
    "cyclegan_d_loss",
    "cyclegan_g_loss",
    "cyclegan_networks",
    "discogan_networks",
    "lsgan_loss",
    "patchgan_layers",
    "pix2pix_d_loss",
    "pix2pix_g_loss",
    "pix2pix_networks",
    "run_padded",
    "tiled",
    "wgan_loss",
]

NORMS = ("batch", "instance", "none")


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch)  # no affine, no running stats (the CycleGAN default)
    if kind == "none":
        return nn.Identity()
    raise MMKitError(f"norm={kind!r}: one of {', '.join(NORMS)}")


def _halvings(img_size: int) -> int:
    n = 0
    while img_size % 2 == 0 and img_size > 1:
        img_size //= 2
        n += 1
    return n


def run_padded(fn: Callable[[Tensor], Tensor], x: Tensor, multiple: int, minimum: int = 0) -> Tensor:
    """`fn` (keeping the size) on x [N, C, H, W] padded at the bottom and right to multiples of `multiple` px (and
    to at least `minimum`, itself a multiple), its output cropped back to H x W. The padding reflects the image, or
    repeats its border where the image is no larger than the padding (reflection needs more pixels than it adds)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if h + ph < minimum:
        ph = minimum - h
    if w + pw < minimum:
        pw = minimum - w
    if not (ph or pw):
        return fn(x)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return fn(F.pad(x, (0, pw, 0, ph), mode=mode))[..., :h, :w]


def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int | None = None) -> Tensor:
    """`fn` (image to image, its output k times the input's size, k = 1 for translation) on x [N, C, H, W]: in one
    go when H and W are at most `tile`, else on tile x tile windows overlapping by `overlap` px (default tile // 4)
    whose outputs are blended, each weighted by a linear ramp across its overlaps, so that no seam shows."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return fn(x)
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise MMKitError(f"overlap={overlap}: must be at least 0 and less than the tile ({tile} px)")
    out = total = None
    for top in _tile_starts(h, tile, overlap):
        for left in _tile_starts(w, tile, overlap):
            part = x[..., top : top + tile, left : left + tile]
            y = fn(part)
            k = y.shape[-2] // part.shape[-2]
            if out is None:
                out, total = y.new_zeros(*y.shape[:2], h * k, w * k), y.new_zeros(h * k, w * k)
            weight = _ramp(y.shape[-2], overlap * k, y)[:, None] * _ramp(y.shape[-1], overlap * k, y)
            rows, cols = slice(top * k, top * k + y.shape[-2]), slice(left * k, left * k + y.shape[-1])
            out[..., rows, cols] += y * weight
            total[rows, cols] += weight
    return out / total


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along a side of n px start: every tile - overlap px, the last one flush with the end."""
    if n <= tile:
        return [0]
    return [*range(0, n - tile, tile - overlap), n - tile]


def _ramp(n: int, width: int, like: Tensor) -> Tensor:
    """[n] weights rising linearly over `width` px from each end to 1 (never 0: a border only one tile covers keeps
    its value once the weights are divided out)."""
    i = torch.arange(n, device=like.device, dtype=like.dtype)
    return torch.minimum(i + 1, n - i).div(width + 1).clamp(max=1)


# ---------------------------------------------------------------------------------------------------------------
# Networks


class UNetGenerator(nn.Module):
    """Isola et al.'s U-Net: encoder of `num_downs` stride-2 convs, mirrored decoder, skips at every level (with
    `skips=False`, the plain encoder-decoder that the pix2pix paper compares it with, and DiscoGAN's generator)."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        num_downs: int = 6,
        ngf: int = 32,
        dropout: float = 0.5,
        norm: str = "batch",
        skips: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise MMKitError(f"num_downs={num_downs}: a U-Net needs at least 2 downsamplings")
        self.num_downs, self.skips = num_downs, skips
        bias = norm != "batch"
        chs = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.downs = nn.ModuleList()
        for i in range(num_downs):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_chans if i == 0 else chs[i - 1], chs[i], 4, 2, 1, bias=bias))
            if 0 < i < num_downs - 1:
                layers.append(_norm(norm, chs[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for j, i in enumerate(
            reversed(range(num_downs))
        ):  # j-th decoder layer restores the input size of down i
            cin = 2 * chs[i] if skips and i < num_downs - 1 else chs[i]
            if i == 0:
                self.ups.append(
                    nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, out_chans, 4, 2, 1), nn.Tanh())
                )
                continue
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(cin, chs[i - 1], 4, 2, 1, bias=bias),
                _norm(norm, chs[i - 1]),
            ]
            if dropout > 0 and j < 3:
                layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        return run_padded(self._forward, x, 2**self.num_downs)

    def _forward(self, x: Tensor) -> Tensor:
        feats = []
        for down in self.downs:
            x = down(x)
            feats.append(x)
        x = self.ups[0](feats[-1])
        for up, skip in zip(self.ups[1:], reversed(feats[:-1]), strict=True):
            x = up(torch.cat([x, skip], dim=1) if self.skips else x)
        return x


class PatchDiscriminator(nn.Sequential):
    """PatchGAN: a grid of real/fake logits [B, 1, h, w], one per overlapping patch."""

    def __init__(self, in_chans: int, ndf: int = 32, n_layers: int = 3, norm: str = "batch") -> None:
        if n_layers < 1:
            raise MMKitError(f"d_layers={n_layers}: a PatchGAN needs at least 1 downsampling")
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_chans, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                _norm(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        super().__init__(*layers)
        self.n_layers = n_layers

    def forward(self, x: Tensor) -> Tensor:
        min_side = 3 * 2**self.n_layers
        if min(x.shape[-2:]) < min_side:
            raise MMKitError(
                f"PatchGAN with {self.n_layers} downsamplings: input of {x.shape[-2]}x{x.shape[-1]} px is "
                f"smaller than {min_side} px"
            )
        return super().forward(x)


def patchgan_layers(img_size: int) -> int:
    """Default PatchGAN depth for an image side: 3 (70 px patches) at >= 256, 2 (34 px) at >= 64, else 1 (16 px)."""
    return 3 if img_size >= 256 else 2 if img_size >= 64 else 1


class ResnetBlock(nn.Module):
    def __init__(self, ch: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=norm != "batch"),
            _norm(norm, ch),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=norm != "batch"),
            _norm(norm, ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Sequential):
    """Johnson et al. / CycleGAN generator: c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1 + tanh."""

    def __init__(
        self, in_chans: int, out_chans: int, ngf: int = 32, n_blocks: int = 6, norm: str = "instance"
    ) -> None:
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_chans, ngf, 7, bias=bias),
            _norm(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), _norm(norm, 2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                _norm(norm, c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_chans, 7), nn.Tanh()]
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        # two stride-2 downsamplings; the residual blocks reflect their 1/4-size maps by 1 px: at least 2 x 2
        return run_padded(super().forward, x, 4, minimum=8)


# ---------------------------------------------------------------------------------------------------------------
# Models


# Each model's networks as two builders, `generator(c_in, c_out)` and `discriminator(c)`, from its options and the
# image side; the model classes below only place them.
Networks = tuple[Callable[[int, int], nn.Module], Callable[[int], nn.Module]]


def pix2pix_networks(
    img_size: int,
    *,
    ngf: int = 32,
    ndf: int = 32,
    num_downs: int | None = None,
    d_layers: int | None = None,
    dropout: float = 0.5,
    norm: str = "batch",
) -> Networks:
    """U-Net generators (default num_downs: as many halvings as img_size allows, at most 8) and PatchGANs (default
    depth: `patchgan_layers`): pix2pix's, and DualGAN's (Yi et al. build theirs on pix2pix's)."""
    num_downs = min(8, _halvings(img_size)) if num_downs is None else num_downs
    d_layers = patchgan_layers(img_size) if d_layers is None else d_layers
    return (
        lambda c_in, c_out: UNetGenerator(c_in, c_out, num_downs, ngf, dropout, norm),
        lambda c: PatchDiscriminator(c, ndf, d_layers, norm),
    )


def cyclegan_networks(
    img_size: int,
    *,
    ngf: int = 32,
    ndf: int = 32,
    n_blocks: int = 6,
    d_layers: int | None = None,
    norm: str = "instance",
) -> Networks:
    """ResNet generators and PatchGANs, with InstanceNorm: CycleGAN's."""
    d_layers = patchgan_layers(img_size) if d_layers is None else d_layers
    return (
        lambda c_in, c_out: ResnetGenerator(c_in, c_out, ngf, n_blocks, norm),
        lambda c: PatchDiscriminator(c, ndf, d_layers, norm),
    )


def discogan_networks(img_size: int, *, ngf: int = 32, ndf: int = 32) -> Networks:
    """DiscoGAN's: encoder-decoder generators (the U-Net's layers without its skips and dropout, down to the DCGAN
    side s0: 64 -> 4 x 4 as in the paper, 28 -> 7 x 7) and DCGAN discriminators (stride-2 convs, BatchNorm, one
    logit per image). The paper's widths are 64; 32 here, as pix2pix and CycleGAN."""

    def discriminator(c: int) -> nn.Module:
        body = ConvDiscriminatorBody(c, img_size, ndf)
        return Discriminator(body, body.out_features)

    downs = conv_depth(img_size)
    return lambda c_in, c_out: UNetGenerator(c_in, c_out, downs, ngf, 0.0, skips=False), discriminator


class Pix2Pix(nn.Module):
    """pix2pix: `generator` (U-Net, a -> b) + `discriminator` (PatchGAN on concat(a, b)); options: `pix2pix_networks`."""

    def __init__(
        self, in_chans: int = 3, out_chans: int | None = None, img_size: int = 64, **options
    ) -> None:
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        self.in_chans, self.out_chans, self.channels, self.img_size = in_chans, out_chans, out_chans, img_size
        generator, discriminator = pix2pix_networks(img_size, **options)
        self.generator = generator(in_chans, out_chans)
        self.discriminator = discriminator(in_chans + out_chans)
        dcgan_init(self)

    def forward(self, a: Tensor) -> Tensor:
        return self.generator(a)

    def discriminate(self, a: Tensor, b: Tensor) -> Tensor:
        """Patch logits [B, 1, h, w] for the pair (a, b)."""
        return self.discriminator(torch.cat([a, b], dim=1))

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()


class UnpairedGAN(nn.Module):
    """Unpaired A <-> B translation (CycleGAN, DiscoGAN, DualGAN): generators `g_ab` (A -> B), `g_ba` (B -> A);
    discriminators `d_a` (real A?), `d_b` (real B?), built by `networks`. The three differ only in those networks
    and in their losses (`ADVERSARIAL`, `RECONSTRUCTION`)."""

    def __init__(self, in_chans: int, out_chans: int | None, img_size: int, networks: Networks) -> None:
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        self.in_chans, self.out_chans, self.channels, self.img_size = in_chans, out_chans, out_chans, img_size
        generator, discriminator = networks
        self.g_ab, self.g_ba = generator(in_chans, out_chans), generator(out_chans, in_chans)
        self.d_a, self.d_b = discriminator(in_chans), discriminator(out_chans)
        dcgan_init(self)

    def forward(self, a: Tensor) -> Tensor:
        return self.g_ab(a)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.g_ab.parameters()
        yield from self.g_ba.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.d_a.parameters()
        yield from self.d_b.parameters()


class ImagePool:
    """A history of up to `size` generated images (CycleGAN's D sees a mix of current and older fakes).

    `query(images)` returns a batch of the same shape: while the pool is filling, each image is stored and returned;
    once full, each image is, with probability 1/2, returned as is, or else swapped for a random stored image
    (which is returned, the new one stored in its place). size 0 returns the batch unchanged. Stored images are
    detached. Randomness from torch's global RNG; `state_dict()` / `load_state_dict()` keep the pool in a
    checkpoint for an exact resume."""

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        images = images.detach()
        if self.size <= 0:
            return images
        out = []
        for img in images:
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand(()).item() < 0.5:
                i = int(torch.randint(len(self.images), ()).item())
                out.append(self.images[i])
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor | int]:
        stacked = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        self.size = int(state["size"])
        self.images = list(state["images"].unbind(0)) if state["images"].numel() else []


# ---------------------------------------------------------------------------------------------------------------
# Losses


def _bce(logits: Tensor, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def lsgan_loss(pred: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss: mean (pred - 1)^2 for real targets, mean pred^2 for fake ones."""
    return F.mse_loss(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))


def wgan_loss(scores: Tensor, real: bool) -> Tensor:
    """Wasserstein critic term on raw scores: -mean for real targets, +mean for fake ones (a critic's loss is then
    E[D(fake)] - E[D(real)], a generator's -E[D(G(x))])."""
    return -scores.mean() if real else scores.mean()


# The adversarial loss of each kind: its term for a real / fake target, and the weight of the discriminator's loss
# (the CycleGAN and DiscoGAN code halve it; a Wasserstein critic's is D(fake) - D(real), whole).
ADVERSARIAL: dict[str, tuple[Callable[[Tensor, bool], Tensor], float]] = {
    "lsgan": (lsgan_loss, 0.5),  # CycleGAN
    "bce": (_bce, 0.5),  # DiscoGAN (sigmoid cross-entropy)
    "wgan": (wgan_loss, 1.0),  # DualGAN (critics without sigmoid)
}
# The cycle (reconstruction) distance: L1 (CycleGAN, DualGAN) or L2 (DiscoGAN's code: mean squared error)
RECONSTRUCTION: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l1": F.l1_loss, "l2": F.mse_loss}


def pix2pix_d_loss(model: Pix2Pix, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> tuple[Tensor, dict]:
    """0.5 * (BCE(D(a, b), 1) + BCE(D(a, G(a)), 0)) over every patch; fake_b is detached here."""
    real = _bce(model.discriminate(real_a, real_b), True)
    fake = _bce(model.discriminate(real_a, fake_b.detach()), False)
    return 0.5 * (real + fake), {"d_real": real.detach(), "d_fake": fake.detach()}


def pix2pix_g_loss(
    model: Pix2Pix, real_a: Tensor, real_b: Tensor, fake_b: Tensor, lambda_l1: float = 100.0
) -> tuple[Tensor, dict]:
    """BCE(D(a, G(a)), 1) + lambda_l1 * L1(G(a), b)."""
    adv = _bce(model.discriminate(real_a, fake_b), True)
    l1 = F.l1_loss(fake_b, real_b)
    return adv + lambda_l1 * l1, {"g_adv": adv.detach(), "l1": l1.detach()}


def cyclegan_g_loss(
    model: UnpairedGAN,
    real_a: Tensor,
    real_b: Tensor,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    adversarial: str = "lsgan",
    reconstruction: str = "l1",
) -> tuple[Tensor, dict, Tensor, Tensor]:
    """Both generators' loss, CycleGAN's by default: ADV(d_b(g_ab(a)), 1) + ADV(d_a(g_ba(b)), 1)
    + lambda_cycle * (REC(g_ba(g_ab(a)), a) + REC(g_ab(g_ba(b)), b))
    + lambda_identity * lambda_cycle * (|g_ab(b) - b| + |g_ba(a) - a|) (only when lambda_identity > 0),
    with ADV = ADVERSARIAL[adversarial] and REC = RECONSTRUCTION[reconstruction] (DiscoGAN: "bce", "l2",
    lambda_cycle 1, no identity; DualGAN: "wgan", "l1", no identity).
    Returns (loss, parts, fake_a, fake_b); feed the fakes (through an ImagePool) to `cyclegan_d_loss`."""
    adv_loss, _ = ADVERSARIAL[adversarial]
    rec_loss = RECONSTRUCTION[reconstruction]
    fake_b = model.g_ab(real_a)
    fake_a = model.g_ba(real_b)
    adv = adv_loss(model.d_b(fake_b), True) + adv_loss(model.d_a(fake_a), True)
    cycle = rec_loss(model.g_ba(fake_b), real_a) + rec_loss(model.g_ab(fake_a), real_b)
    loss = adv + lambda_cycle * cycle
    parts = {"g_adv": adv.detach(), "cycle": cycle.detach()}
    if lambda_identity > 0:
        if real_a.shape[1] != real_b.shape[1]:
            raise MMKitError(
                f"identity loss: domains A and B have {real_a.shape[1]} and {real_b.shape[1]} channels; "
                "use lambda_identity=0"
            )
        idt = F.l1_loss(model.g_ab(real_b), real_b) + F.l1_loss(model.g_ba(real_a), real_a)
        loss = loss + lambda_identity * lambda_cycle * idt
        parts["identity"] = idt.detach()
    return loss, parts, fake_a, fake_b


def cyclegan_d_loss(
    model: UnpairedGAN,
    real_a: Tensor,
    real_b: Tensor,
    fake_a: Tensor,
    fake_b: Tensor,
    adversarial: str = "lsgan",
) -> tuple[Tensor, dict]:
    """Both discriminators' loss: w * (ADV(d_a(a), 1) + ADV(d_a(fake_a), 0)) + the same for d_b, with ADV and w
    from ADVERSARIAL[adversarial] (LSGAN, BCE: halved; WGAN: d(fake) - d(real) whole); the fakes are detached
    here."""
    adv_loss, weight = ADVERSARIAL[adversarial]
    loss_a = weight * (adv_loss(model.d_a(real_a), True) + adv_loss(model.d_a(fake_a.detach()), False))
    loss_b = weight * (adv_loss(model.d_b(real_b), True) + adv_loss(model.d_b(fake_b.detach()), False))
    return loss_a + loss_b, {"d_a": loss_a.detach(), "d_b": loss_b.detach()}


# ---------------------------------------------------------------------------------------------------------------
# Registry: builders take the input channels (out_chans defaults to them) and their options.


_register = model_family("generate", "translation", 64)


@_register(
    "pix2pix", "pix2pix (Isola et al. 2017): U-Net generator + PatchGAN, cGAN + 100 * L1 on paired images"
)
def pix2pix(in_chans: int = 3, out_chans: int | None = None, img_size: int = 64, **options) -> nn.Module:
    return Pix2Pix(in_chans, out_chans, img_size, **options)


@_register("cyclegan", "CycleGAN (Zhu et al. 2017): ResNet generators, PatchGANs, LSGAN + cycle + identity")
def cyclegan(in_chans: int = 3, out_chans: int | None = None, img_size: int = 64, **options) -> nn.Module:
    return UnpairedGAN(in_chans, out_chans, img_size, cyclegan_networks(img_size, **options))


@_register(
    "discogan", "DiscoGAN (Kim et al. 2017): encoder-decoder generators, DCGAN discriminators, BCE + L2 cycle"
)
def discogan(in_chans: int = 3, out_chans: int | None = None, img_size: int = 64, **options) -> nn.Module:
    return UnpairedGAN(in_chans, out_chans, img_size, discogan_networks(img_size, **options))


@_register(
    "dualgan", "DualGAN (Yi et al. 2017): U-Net generators, PatchGAN critics, WGAN (clipped) + L1 cycle"
)
def dualgan(in_chans: int = 3, out_chans: int | None = None, img_size: int = 64, **options) -> nn.Module:
    return UnpairedGAN(in_chans, out_chans, img_size, pix2pix_networks(img_size, **options))
