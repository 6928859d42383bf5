"""Generative models (issue 7): GANs, pix2pix, CycleGAN, LapSRN, RED-Net. Shapes and ranges at the default sizes,
the gradient penalty against an exactly 1-Lipschitz critic, label conditioning, the loss formulas, the image pool,
and short overfits that need the architecture to work (U-Net skips, the LapSRN pyramid, RED-Net denoising an
image it never saw)."""

import json
import math

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, list_models
from mmkit.models.gans import (
    GAN,
    aux_class_loss,
    d_loss,
    frozen,
    g_loss,
    gradient_penalty,
    start_size,
    wgan_d_loss,
    wgan_g_loss,
)
from mmkit.models.restoration import charbonnier, lapsrn_loss
from mmkit.models.translation import (
    ImagePool,
    cyclegan_d_loss,
    cyclegan_g_loss,
    pix2pix_d_loss,
    pix2pix_g_loss,
)

GANS = ["gan", "dcgan", "wgan", "wgan-gp", "cgan", "acgan"]
TRANSLATION = ["pix2pix", "cyclegan", "discogan", "dualgan"]
PYRAMID = {"lapgan": "lapgan", "cc-lapgan": "lapgan", "progan": "progan"}  # name: registry family
TEXT = {"gan-int-cls": "text2image", "stackgan": "text2image"}
ALL = [*GANS, *TRANSLATION, "lapsrn", "rednet", *PYRAMID, *TEXT]
K = 10


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxW(xC) -> float CxHxW in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(img)).float() / 127.5 - 1
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / F.mse_loss(pred.clamp(-1, 1), target)))


# ---------------------------------------------------------------------------------------------------------------
# Registry and shapes


def test_registry_and_cli_list(capsys):
    assert set(list_models(task="generate")) == set(ALL)
    families = {n: get_model_info(n).family for n in ALL}
    assert families == {**dict.fromkeys(GANS, "gan"), **dict.fromkeys(TRANSLATION, "translation"),
                        "lapsrn": "restoration", "rednet": "restoration", **PYRAMID, **TEXT}  # fmt: skip
    assert run_cli(app, ["models", "list", "--task", "generate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert {r["name"] for r in rows} == set(ALL) and {r["task"] for r in rows} == {"generate"}
    assert run_cli(app, ["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "dcgan" in out and "resnet18" in out


def test_each_model_trains_in_one_family_task():
    from mmkit.tasks.generate import MODEL_FAMILY, GANTask, GenerateTask, RestorationTask, TranslationTask
    from mmkit.tasks.generate.lapgan import LAPGANTask
    from mmkit.tasks.generate.progan import ProGANTask
    from mmkit.tasks.generate.text2image import Text2ImageTask

    by_registry = {"gan": GANTask, "translation": TranslationTask, "restoration": RestorationTask,
                   "lapgan": LAPGANTask, "progan": ProGANTask, "text2image": Text2ImageTask}  # fmt: skip
    assert set(MODEL_FAMILY) == set(ALL)
    for name, family in MODEL_FAMILY.items():
        assert family is by_registry[get_model_info(name).family] and name in family.MODELS
    assert sum(len(f.MODELS) for f in by_registry.values()) == len(ALL)  # no model in two families

    acgan = GenerateTask(data="digits", model="acgan")
    assert isinstance(acgan, GANTask) and acgan.manual_optimization and acgan.mode_seeking == 0.3
    assert GenerateTask(data="digits", model="cgan", mode_seeking=0.0).mode_seeking == 0.0
    sr = GenerateTask(data="photo-sr", model="lapsrn")
    assert isinstance(sr, RestorationTask) and not sr.manual_optimization
    assert sr.monitor == ("val/psnr", "max")
    pix = GenerateTask(data="photo-edges", model="pix2pix")
    cyc = GenerateTask(data="day-tinted", model="cyclegan")
    assert isinstance(pix, TranslationTask) and pix.monitor == ("val/psnr", "max")
    assert cyc.monitor == ("val/fid_pix", "min")  # unpaired: judged by the distribution
    with pytest.raises(MMKitError, match="yolov3"):
        GenerateTask(data="digits", model="yolov3")
    with pytest.raises(MMKitError, match="--data is required"):
        GenerateTask(model="dcgan")
    with pytest.raises(MMKitError, match="lapsrn"):
        GANTask(data="digits", model="lapsrn")


def test_a_recipe_tuned_for_another_model_does_not_apply():
    from mmkit.tasks.generate.options import RECIPES

    defaults = dict(RECIPES.defaults)
    sr = RECIPES.for_data("photo-sr")
    assert sr["model"] == "lapsrn" and sr["crops"] == 20000 and sr["lr"] == 1e-3 and sr["batch_size"] == 16
    assert RECIPES.for_data("photo-denoise", "rednet")["lr"] == 1e-3
    assert RECIPES.for_data("photo-denoise", "pix2pix") == defaults  # RED-Net's lr is not pix2pix's
    assert RECIPES.for_data("fashion-mnist", "acgan") == defaults  # DCGAN's 5 epochs are not the AC-GAN's
    assert RECIPES.for_data("some/folder", "dcgan") == defaults


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", GANS)
def test_gan_shapes_and_range(name, channels):
    conditional = name in ("cgan", "acgan")
    model = get_model(name, num_classes=K if conditional else None, in_chans=channels)
    size = get_model_info(name).default_input_size
    assert (model.img_size, model.channels, model.latent_dim) == (size, channels, 100)
    assert model.num_classes == (K if conditional else 0)
    assert {k.split(".")[0] for k in model.state_dict()} == {"generator", "discriminator"}
    assert model.critic is model.discriminator
    model.eval()
    z = torch.randn(6, model.latent_dim)
    x = model.sample(6, z=z)
    assert x.shape == (6, channels, size, size) and not x.requires_grad
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.01
    labels = torch.arange(6) % K if model.num_classes else None
    assert torch.equal(model(z, labels), x)  # forward is the generator; default labels cycle 0..K-1
    out = model.discriminator(x, labels)
    if name == "acgan":
        adv, cls = out
        assert adv.shape == (6,) and cls.shape == (6, K)
    else:
        assert out.shape == (6,)


@pytest.mark.parametrize(("size", "s0"), [(28, 7), (32, 4), (64, 4), (48, 6)])
def test_conv_gan_sizes(size, s0):
    assert start_size(size) == s0
    model = get_model("dcgan", in_chans=3, img_size=size, base=16)
    x = model.sample(2)
    assert x.shape == (2, 3, size, size)
    assert model.discriminator(x).shape == (2,)


def test_mlp_gan_with_conditioning():
    model = GAN(
        1, 16, latent_dim=8, num_classes=3, arch="mlp", conditioning="acgan", hidden=(32, 64), d_hidden=(32,)
    )
    x = model.sample(4)
    assert x.shape == (4, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    adv, cls = model.discriminator(x)
    assert adv.shape == (4,) and cls.shape == (4, 3)
    assert model.kind == "acgan" and model.num_classes == 3
    assert GAN(3, 16, arch="mlp", num_classes=5).num_classes == 0  # unconditional: classes are ignored


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_gan_activation_by_name(name):
    def kinds(module):
        return [type(m) for m in module.modules() if not list(m.children())]

    default = get_model(name, in_chans=1, img_size=28, base=8)
    g_default = nn.ReLU if name == "dcgan" else nn.LeakyReLU  # the papers' choices stay the default
    assert g_default in kinds(default.generator.body) and nn.ELU not in kinds(default)
    slopes = {m.negative_slope for m in default.discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    elu = get_model(name, in_chans=1, img_size=28, base=8, act="elu")
    for net in (elu.generator, elu.discriminator):
        assert nn.ELU in kinds(net) and not {nn.ReLU, nn.LeakyReLU} & set(kinds(net))
    assert nn.Tanh in kinds(elu.generator.body)  # the output activation stays: images in [-1, 1]
    assert list(elu.state_dict()) == list(default.state_dict())
    x = elu.sample(3)
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1 and elu.discriminator(x).shape == (3,)
    with pytest.raises(MMKitError, match="act=mish: unknown activation; known: relu, relu6, leakyrelu, elu"):
        get_model(name, in_chans=1, act="mish")


def test_bad_options_are_one_line_errors():
    for size in (30, 7, 100 * 11):
        with pytest.raises(MMKitError, match="img_size"):
            get_model("dcgan", in_chans=1, img_size=size)
    with pytest.raises(MMKitError, match="at least 2 classes"):
        get_model("cgan", num_classes=1, in_chans=1)
    with pytest.raises(MMKitError, match="unconditional"):
        get_model("dcgan", in_chans=1).sample(2, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(MMKitError, match="needs labels"):
        get_model("cgan", num_classes=K, in_chans=1).generator(torch.randn(2, 100))
    with pytest.raises(MMKitError, match="scale"):
        get_model("lapsrn", in_chans=3, scale=3)
    with pytest.raises(MMKitError, match="even"):
        get_model("rednet", in_chans=3, layers=5)


@pytest.mark.parametrize("channels", [1, 3])
def test_translation_and_restoration_shapes(channels):
    p2p = get_model("pix2pix", in_chans=channels)
    size = get_model_info("pix2pix").default_input_size
    a = torch.rand(2, channels, size, size) * 2 - 1
    b = p2p(a)
    assert b.shape == a.shape and b.min() >= -1 and b.max() <= 1
    patches = p2p.discriminate(a, b)
    assert patches.shape[:2] == (2, 1) and patches.shape[-1] > 1  # a grid of patch logits, not one number
    assert {k.split(".")[0] for k in p2p.state_dict()} == {"generator", "discriminator"}

    cyc = get_model("cyclegan", in_chans=channels)
    assert cyc.g_ab(a).shape == a.shape and cyc.g_ba(a).shape == a.shape
    fake = cyc(a)
    assert fake.min() >= -1 and fake.max() <= 1
    assert cyc.d_a(a).shape == cyc.d_b(fake).shape and cyc.d_a(a).shape[-1] > 1
    n_g = sum(p.numel() for p in cyc.generator_parameters())
    n_d = sum(p.numel() for p in cyc.discriminator_parameters())
    assert n_g + n_d == sum(p.numel() for p in cyc.parameters())

    sr = get_model("lapsrn", in_chans=channels)
    outs = sr(a[..., :16, :16])
    assert [o.shape for o in outs] == [(2, channels, 32, 32), (2, channels, 64, 64)]
    assert len(get_model("lapsrn", in_chans=channels, scale=2)(a)) == 1

    red = get_model("rednet", in_chans=channels)
    assert red(a).shape == a.shape


# ---------------------------------------------------------------------------------------------------------------
# Losses and the gradient penalty


def test_gan_loss_formulas():
    zeros = torch.zeros(5)
    assert d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert g_loss(zeros).item() == pytest.approx(math.log(2))
    # a confident, correct discriminator has a small loss and gives the generator a large one
    real, fake = torch.full((5,), 8.0), torch.full((5,), -8.0)
    assert d_loss(real, fake) < 1e-3 and g_loss(fake) > 7
    assert d_loss(real, fake, real_label=0.9) > d_loss(real, fake)  # label smoothing
    assert wgan_d_loss(torch.tensor([3.0, 1.0]), torch.tensor([-1.0])).item() == pytest.approx(-3.0)
    assert wgan_g_loss(torch.tensor([2.0, 4.0])).item() == pytest.approx(-3.0)
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert aux_class_loss(logits, torch.tensor([0, 1])) < aux_class_loss(logits, torch.tensor([1, 0]))


class LinearCritic(nn.Module):
    """f(x) = <w, x>: its gradient is w everywhere, so it is exactly ||w||-Lipschitz along any interpolation."""

    def __init__(self, shape: tuple[int, ...], norm: float) -> None:
        super().__init__()
        w = torch.randn(shape)
        self.w = nn.Parameter(w * norm / w.norm())

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty():
    real, fake = torch.rand(8, 1, 28, 28) * 2 - 1, torch.rand(8, 1, 28, 28) * 2 - 1
    assert gradient_penalty(LinearCritic((1, 28, 28), 1.0), real, fake).item() < 1e-8
    steep = LinearCritic((1, 28, 28), 3.0)
    gp = gradient_penalty(steep, real, fake)
    assert gp.item() == pytest.approx(10 * (3 - 1) ** 2, rel=1e-4)
    assert gradient_penalty(steep, real, fake, weight=1.0).item() == pytest.approx(4, rel=1e-4)
    gp.backward()  # differentiable w.r.t. the critic: it pushes ||w|| down towards 1
    assert torch.sum(steep.w.grad * steep.w).item() > 0

    model = get_model("wgan-gp", in_chans=1, base=16)
    fake = model.generator(torch.randn(8, 100))
    gp = gradient_penalty(model.critic, real, fake)
    assert gp.item() > 0
    gp.backward()
    # every critic parameter but the last bias (a constant shift has no input gradient) gets a gradient
    assert all(p.grad is not None for n, p in model.critic.named_parameters() if n != "adv.bias")
    assert all(p.grad is None for p in model.generator.parameters())  # real and fake are detached
    cond = get_model("cgan", num_classes=K, in_chans=1, base=16)
    assert gradient_penalty(cond.critic, real, fake.detach(), labels=torch.arange(8)).item() > 0
    ac = get_model("acgan", num_classes=K, in_chans=1, base=16)
    assert gradient_penalty(ac.critic, real, fake.detach()).item() > 0  # uses the adversarial output


def test_frozen_keeps_discriminator_gradients_out_of_the_generator_step():
    model = get_model("dcgan", in_chans=1, base=16)
    with frozen(model.discriminator):
        g_loss(model.discriminator(model.generator(torch.randn(4, 100)))).backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.grad is not None for p in model.generator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Conditioning


@pytest.mark.parametrize("name", ["cgan", "acgan"])
def test_conditional_generators_honour_labels(name):
    model = get_model(name, num_classes=K, in_chans=1, base=16).eval()
    z = torch.randn(1, 100).repeat(K, 1)
    x = model.sample(K, labels=torch.arange(K), z=z)
    assert torch.equal(model.sample(K, labels=torch.arange(K), z=z), x)
    assert (x[1:] - x[:-1]).abs().amax(
        dim=(1, 2, 3)
    ).min() > 1e-3  # same z, different labels: different images
    # the label path carries enough to draw a class-specific image from any z: regress onto one template per class
    templates = torch.rand(K, 1, 28, 28) * 1.6 - 0.8
    model.train()
    opt = torch.optim.Adam(model.generator.parameters(), 5e-3)
    for _ in range(40):
        y = torch.randint(0, K, (32,))
        loss = F.mse_loss(model.generator(torch.randn(32, 100), y), templates[y])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    y = torch.arange(K).repeat(3)
    x = model.sample(len(y), labels=y)
    dist = ((x[:, None] - templates[None]) ** 2).mean(dim=(2, 3, 4))  # [samples, templates]
    assert torch.equal(dist.argmin(1), y)
    if name == "cgan":  # the projection discriminator's score depends on the label
        d = model.discriminator(x[:4], torch.zeros(4, dtype=torch.long))
        assert not torch.allclose(d, model.discriminator(x[:4], torch.ones(4, dtype=torch.long)))


def test_mode_seeking_loss_punishes_a_generator_that_ignores_z():
    from mmkit.models.gans import mode_seeking_loss

    z = torch.randn(8, 100)
    same = torch.rand(1, 1, 28, 28).repeat(8, 1, 1, 1)  # one image whatever z
    varied = torch.rand(8, 1, 28, 28)
    assert mode_seeking_loss(same, z) > 1e3 > 10 * mode_seeking_loss(varied, z)
    # the generator's gradient pushes the images of each pair apart
    model = get_model("cgan", num_classes=K, in_chans=1, base=16)
    y = torch.arange(4).repeat(2)  # row i and row i + 4 share a label
    x = model.generator(z, y)
    before = mode_seeking_loss(x, z).item()
    opt = torch.optim.SGD(model.generator.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        mode_seeking_loss(model.generator(z, y), z).backward()
        opt.step()
    assert mode_seeking_loss(model.generator(z, y), z).item() < before


# ---------------------------------------------------------------------------------------------------------------
# pix2pix and CycleGAN


@pytest.fixture(scope="module")
def pair(photos) -> torch.Tensor:
    """Two RGB photo crops, 32x32, in [-1, 1]."""
    return torch.stack([to_tensor(photos[k][8:40, 16:48]) for k in ("astronaut", "chelsea")])


def test_pix2pix_unet_learns_identity_quickly(pair):
    model = get_model("pix2pix", in_chans=3, img_size=32)  # dropout stays on: learned through the skips
    assert model.generator.num_downs == 5
    opt = torch.optim.Adam(model.generator_parameters(), 2e-3, betas=(0.5, 0.999))
    first = None
    for _ in range(30):
        loss = F.l1_loss(model(pair), pair)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = F.l1_loss(model(pair), pair).item()
    assert final < 0.08 and final < first / 4  # without the skips: ~0.13


def test_pix2pix_losses(pair):
    model = get_model("pix2pix", in_chans=3, img_size=32)
    a, b = pair, pair.flip(-1)
    fake = model(a)
    d, parts = pix2pix_d_loss(model, a, b, fake)
    patch_real, patch_fake = model.discriminate(a, b), model.discriminate(a, fake)
    expected = 0.5 * (g_loss(patch_real) + g_loss(-patch_fake))  # BCE(real, 1) + BCE(fake, 0) per patch
    assert d.item() == pytest.approx(expected.item(), rel=1e-5) and set(parts) == {"d_real", "d_fake"}
    d.backward()
    assert all(p.grad is None for p in model.generator.parameters())  # the fake is detached for D
    g, parts = pix2pix_g_loss(model, a, b, fake, lambda_l1=100.0)
    assert g.item() == pytest.approx(parts["g_adv"].item() + 100 * F.l1_loss(fake, b).item(), rel=1e-5)


def test_cyclegan_losses():
    model = get_model("cyclegan", in_chans=3, img_size=32, ngf=8, ndf=8, n_blocks=2)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    loss, parts, fake_a, fake_b = cyclegan_g_loss(model, a, b)
    assert set(parts) == {"g_adv", "cycle", "identity"}
    assert loss.item() == pytest.approx(
        parts["g_adv"].item() + 10 * parts["cycle"].item() + 5 * parts["identity"].item(), rel=1e-5
    )
    no_idt, parts2, _, _ = cyclegan_g_loss(model, a, b, lambda_identity=0.0)
    assert "identity" not in parts2 and no_idt < loss
    d, d_parts = cyclegan_d_loss(model, a, b, fake_a, fake_b)
    assert set(d_parts) == {"d_a", "d_b"} and d.item() > 0
    mixed = get_model("cyclegan", in_chans=1, out_chans=3, img_size=32, ngf=8, ndf=8, n_blocks=1)
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    assert mixed(gray).shape == (2, 3, 32, 32) and mixed.g_ba(b).shape == (2, 1, 32, 32)
    with pytest.raises(MMKitError, match="lambda_identity=0"):
        cyclegan_g_loss(mixed, gray, b)
    assert cyclegan_g_loss(mixed, gray, b, lambda_identity=0)[0].item() > 0


def test_image_pool_semantics():
    pool = ImagePool(50)
    first = torch.arange(50.0).view(50, 1, 1, 1).requires_grad_(True)
    out = pool.query(first)
    assert torch.equal(out, first.detach()) and len(pool) == 50 and not out.requires_grad
    stored = {float(t) for t in pool.images}
    new = torch.arange(100.0, 1100.0).view(1000, 1, 1, 1)
    out = pool.query(new)
    assert out.shape == new.shape
    # replay: each output is the new image itself (the pool unchanged), or an image in the pool at that moment,
    # which is then handed out and replaced by the new one (so it can never come out twice)
    mirror, swaps = set(stored), 0
    for v, n in zip(out.flatten().tolist(), new.flatten().tolist(), strict=True):
        if v != n:
            assert v in mirror
            mirror.remove(v)
            mirror.add(n)
            swaps += 1
    assert 350 < swaps < 650  # half of them, by the coin flips
    assert len(pool) == 50 and {float(t) for t in pool.images} == mirror
    # exact resume
    state = pool.state_dict()
    copy = ImagePool(0)
    copy.load_state_dict(state)
    torch.manual_seed(5)
    a = pool.query(new[:20])
    torch.manual_seed(5)
    assert torch.equal(copy.query(new[:20]), a)
    assert torch.equal(ImagePool(0).query(new[:3]), new[:3])


# ---------------------------------------------------------------------------------------------------------------
# Super-resolution and restoration


def test_lapsrn_starts_bilinear_and_overfits(pair):
    model = get_model("lapsrn", in_chans=3, scale=4)
    hr = pair[:1]
    lr = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True)
    with torch.no_grad():
        x2, x4 = model(lr)
    assert x2.shape[-1] == 16 and x4.shape[-1] == 32
    bilinear = F.interpolate(lr, scale_factor=2, mode="bilinear")
    assert torch.allclose(x2, bilinear, atol=1e-5)
    assert torch.allclose(x4, F.interpolate(bilinear, scale_factor=2, mode="bilinear"), atol=1e-5)
    start = psnr(x4, hr)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(80):
        loss = lapsrn_loss(model(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert psnr(model(lr)[-1], hr) > start + 2


def test_charbonnier_and_lapsrn_loss():
    a, b = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)
    assert charbonnier(a, b).item() == pytest.approx(math.sqrt(0.25 + 1e-6))
    assert charbonnier(a, a, eps=1e-3).item() == pytest.approx(1e-3)
    hr = torch.rand(1, 1, 16, 16)
    outs = [F.interpolate(hr, size=8, mode="bicubic", align_corners=False, antialias=True), hr.clone()]
    assert lapsrn_loss(outs, hr).item() == pytest.approx(2e-3, rel=1e-3)  # each level at its own target
    with pytest.raises(MMKitError, match="HR target"):
        lapsrn_loss(outs[:1], hr)


def test_rednet_denoises_an_unseen_image():
    """Trained on noisy patches of one photo (fresh noise every step), it denoises a different photo."""
    train = to_tensor(skimage.data.camera()[100:356, 100:356])
    clean = to_tensor(skimage.data.coins()[50:114, 50:114])[None]
    gen = torch.Generator().manual_seed(1)
    sigma = 0.2
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
    model = get_model("rednet", in_chans=1, features=32)
    assert len(model.encoder) == 5 and len(model.decoder) == 5
    with torch.no_grad():
        assert torch.equal(model(noisy), noisy)  # starts as the identity (residual learning)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(40):
        ys, xs = torch.randint(0, 224, (2, 8), generator=gen)
        batch = torch.stack([train[:, y : y + 32, x : x + 32] for y, x in zip(ys, xs, strict=True)])
        loss = F.mse_loss(model(batch + sigma * torch.randn(batch.shape, generator=gen)), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert psnr(model(noisy), clean) > psnr(noisy, clean) + 3
