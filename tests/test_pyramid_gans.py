"""LAPGAN and Progressive GAN (issue 19). LAPGAN: the Laplacian pyramid reconstructs a real image exactly, the level
sides and shapes, sampling walks coarse to fine, training refines the real coarser images. ProGAN: pixel norm,
minibatch standard deviation and the equalized learning rate against hand values, the fade-in at alpha 0 and 1 in
both networks, growth changes the output size, the schedule; both trained, sampled and scored from the CLI, and a
resumed ProGAN run equal to an uninterrupted one (stage and weights)."""

import json
import math

import pytest
import skimage.data
import torch
import torch.nn.functional as F
from _cli import mmkit
from skimage.transform import resize

from mmkit.engine import load_checkpoint
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info
from mmkit.models.lapgan import (
    downsample,
    gaussian_pyramid,
    laplacian_pyramid,
    pyramid_sizes,
    reconstruct,
    upsample,
)
from mmkit.models.progan import (
    EqualizedConv2d,
    EqualizedLinear,
    drift_loss,
    fade,
    minibatch_stddev,
    pixel_norm,
    stage_at,
)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def camera(size: int) -> torch.Tensor:
    """scikit-image's camera man, gray, size x size, in [-1, 1]: [1, 1, S, S]."""
    img = resize(skimage.data.camera(), (size, size), anti_aliasing=True)
    return torch.from_numpy(img).float()[None, None] * 2 - 1


# ---------------------------------------------------------------------------------------------------------------
# LAPGAN


def test_downsample_averages_and_upsample_doubles():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(downsample(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert torch.equal(upsample(torch.full((1, 1, 3, 3), 0.5)), torch.full((1, 1, 6, 6), 0.5))


def test_the_laplacian_pyramid_of_a_real_image_reconstructs_it():
    x = camera(32)
    g = gaussian_pyramid(x, 3)
    assert [t.shape[-1] for t in g] == [32, 16, 8]
    assert torch.allclose(g[2], F.avg_pool2d(x, 4), atol=1e-6)
    pyr = laplacian_pyramid(x, 3)
    assert [t.shape[-1] for t in pyr] == [32, 16, 8] and torch.equal(pyr[-1], g[-1])
    assert torch.allclose(pyr[0], x - upsample(g[1])) and torch.allclose(pyr[1], g[1] - upsample(g[2]))
    assert pyr[0].abs().mean() < 0.2 * x.abs().mean()  # band-pass: the residual is small beside the image
    assert torch.allclose(reconstruct(pyr), x, atol=1e-6)
    assert not torch.allclose(reconstruct([torch.zeros_like(pyr[0]), *pyr[1:]]), x, atol=1e-2)


def test_pyramid_sizes_halve_down_to_at_least_seven_pixels():
    assert pyramid_sizes(28) == [28, 14, 7] and pyramid_sizes(32) == [32, 16, 8]
    assert pyramid_sizes(64) == [64, 32, 16, 8] and pyramid_sizes(64, levels=2) == [64, 32]
    for bad, levels in ((8, None), (28, 4), (27, None), (28, 1)):
        with pytest.raises(MMKitError, match="at least two levels"):
            pyramid_sizes(bad, levels)


@pytest.mark.parametrize("name", ["lapgan", "cc-lapgan"])
def test_lapgan_levels_have_their_shapes(name):
    conditional = name == "cc-lapgan"
    m = get_model(name, num_classes=10 if conditional else None, in_chans=1)
    assert get_model_info(name).family == "lapgan" and m.img_size == 28
    assert m.sizes == [7, 14, 28] and m.latent_dim == 100 + 14 * 14 + 28 * 28
    assert m.num_classes == (10 if conditional else 0) and m.critic is m.discriminator
    assert {k.split(".")[0] for k in m.state_dict()} == {"generator", "discriminator"}
    assert len(m.discriminator) == 3 and len(m.generator.refiners) == 2
    m.eval()
    labels = torch.arange(4) % 10 if conditional else None
    z = torch.randn(4, m.latent_dim)
    levels = m.generator.levels(z, labels)
    assert [t.shape for t in levels] == [(4, 1, s, s) for s in (7, 14, 28)]
    for d, img in zip(m.discriminator, levels, strict=True):
        assert d(img, labels).shape == (4,)
    x = m.sample(4, z=z)
    assert torch.equal(x, levels[-1]) and x.min() >= -1 and x.max() <= 1 and not x.requires_grad
    assert torch.equal(m(z, labels), x)  # forward is the generator (labels 0..K-1 in turn by default)
    rgb = get_model(name, num_classes=10 if conditional else None, in_chans=3, img_size=32)
    assert rgb.sizes == [8, 16, 32] and rgb.sample(2).shape == (2, 3, 32, 32)


def test_sampling_walks_the_pyramid_coarse_to_fine():
    m = get_model("lapgan", in_chans=1).eval()
    z = torch.randn(3, m.latent_dim)
    coarse_z, planes = m.generator.split(z)
    assert coarse_z.shape == (3, 100) and [p.shape for p in planes] == [(3, 1, 14, 14), (3, 1, 28, 28)]
    levels = m.generator.levels(z)
    with torch.no_grad():
        assert torch.equal(levels[0], m.generator.coarse(coarse_z))
        for j, (g, noise) in enumerate(zip(m.generator.refiners, planes, strict=True)):
            low = upsample(levels[j])  # each level refines the one below it
            assert torch.allclose(levels[j + 1], (low + g(low, noise)).clamp(-1, 1))
    # a finer level's noise changes that level and the ones above it, never the coarser ones
    z2 = z.clone()
    z2[:, 100 + 14 * 14 :] = torch.randn(3, 28 * 28)
    again = m.generator.levels(z2)
    assert torch.equal(again[0], levels[0]) and torch.equal(again[1], levels[1])
    assert not torch.allclose(again[2], levels[2])
    # with the residuals silenced, sampling is the coarsest image upsampled level by level
    for g in m.generator.refiners:
        torch.nn.init.zeros_(g.body[-1].weight)
        torch.nn.init.zeros_(g.body[-1].bias)
    flat = m.generator.levels(z)
    assert torch.allclose(flat[2], upsample(upsample(flat[0])).clamp(-1, 1))


def test_training_refines_the_real_coarser_images():
    m = get_model("cc-lapgan", num_classes=10, in_chans=1)
    reals = gaussian_pyramid(camera(28).expand(2, -1, -1, -1), 3)[::-1]
    labels = torch.tensor([3, 7])
    z = torch.randn(2, m.latent_dim)
    fakes = m.generator.training_fakes(reals, z, labels)
    assert [f.shape[-1] for f in fakes] == [7, 14, 28] and all(f.requires_grad for f in fakes)
    _, planes = m.generator.split(z)
    g = m.generator.refiners[1]
    assert torch.allclose(fakes[2], upsample(reals[1]) + g(upsample(reals[1]), planes[1], labels))
    with pytest.raises(MMKitError, match="needs labels"):
        m.generator(z)


# ---------------------------------------------------------------------------------------------------------------
# ProGAN: its layers


def test_pixel_norm_against_hand_values():
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)  # mean of squares 12.5
    assert torch.allclose(pixel_norm(x).flatten(), torch.tensor([3.0, 4.0]) / math.sqrt(12.5))
    y = pixel_norm(torch.randn(4, 16, 5, 5) * 7)
    assert torch.allclose(y.pow(2).mean(1), torch.ones(4, 5, 5), atol=1e-4)


def test_minibatch_stddev_against_hand_values():
    # two samples, two channels of one pixel: per-feature (population) stds 1 and 2 over the batch, mean 1.5
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0]]).view(2, 2, 1, 1)
    y = minibatch_stddev(x)
    assert y.shape == (2, 3, 1, 1) and torch.equal(y[:, :2], x)
    assert torch.allclose(y[:, 2], torch.full((2, 1, 1), 1.5))
    same = minibatch_stddev(torch.ones(3, 4, 2, 2))  # no variation: sqrt(eps)
    assert torch.allclose(same[:, 4], torch.full((3, 2, 2), 1e-4))


def test_equalized_learning_rate_scales_weights_at_run_time():
    conv = EqualizedConv2d(2, 1, 3, padding=1)
    assert conv.scale == pytest.approx(math.sqrt(2 / 18)) and 0.5 < conv.weight.std() < 1.5  # N(0, 1) weights
    with torch.no_grad():
        conv.weight.fill_(1.0)
    y = conv(torch.ones(1, 2, 3, 3))
    assert y[0, 0, 1, 1].item() == pytest.approx(18 * math.sqrt(2 / 18))  # the centre sees all 18 inputs
    assert y[0, 0, 0, 0].item() == pytest.approx(8 * math.sqrt(2 / 18))  # a corner: 2 x 2 x 2 inside
    lin = EqualizedLinear(4, 1, gain=1.0)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    assert lin(torch.ones(1, 4)).item() == pytest.approx(4 / math.sqrt(4))
    x = torch.randn(2, 2, 5, 5)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / 18), conv.bias, padding=1))


def test_fade_and_drift():
    old, new = torch.zeros(3), torch.tensor([1.0, 2.0, 4.0])
    assert torch.equal(fade(old, new, 0.0), old) and torch.equal(fade(old, new, 1.0), new)
    assert torch.equal(fade(old, new, 0.25), new / 4)
    assert drift_loss(torch.tensor([1.0, -3.0])).item() == pytest.approx(0.001 * 5)


def test_the_growth_schedule():
    # 10 images a phase, levels 0..2: 0 alone; 1 fades in, then alone; 2 fades in, then stays
    expect = {0: (0, 1.0), 9: (0, 1.0), 10: (1, 0.0), 15: (1, 0.5), 20: (1, 1.0), 29: (1, 1.0), 30: (2, 0.0),
              35: (2, 0.5), 40: (2, 1.0), 1000: (2, 1.0)}  # fmt: skip
    assert {i: stage_at(i, 10, 2) for i in expect} == expect
    with pytest.raises(MMKitError):
        stage_at(5, 0, 2)


# ---------------------------------------------------------------------------------------------------------------
# ProGAN: the networks


def test_growth_changes_the_output_size_and_samples_stay_full_size():
    m = get_model("progan", in_chans=3, img_size=64)
    assert get_model_info("progan").family == "progan" and m.sides == [4, 8, 16, 32, 64] and m.top_level == 4
    assert m.stage() == (0, 1.0) and m.num_classes == 0 and m.critic is m.discriminator
    z = torch.randn(2, m.latent_dim)
    for level, side in enumerate(m.sides):
        m.set_stage(level, 1.0)
        out = m.generator(z, level)
        assert out.shape == (2, 3, side, side) and m.side == side
        assert m.discriminator(out, level).shape == (2,)
        assert m.sample(2, z=z).shape == (2, 3, 64, 64)
        assert m.reals(torch.rand(2, 3, 64, 64)).shape == (2, 3, side, side)
    assert m.grown
    m.set_stage(0)
    assert torch.equal(m.sample(2, z=z), F.interpolate(m.generator(z, 0), size=(64, 64)).clamp(-1, 1))
    with pytest.raises(MMKitError, match="levels go"):
        m.set_stage(5)
    with pytest.raises(MMKitError, match="unconditional"):
        m.sample(2, labels=torch.zeros(2, dtype=torch.long))


@torch.no_grad()
def test_fade_in_blends_the_new_block_with_the_upsampled_previous_output():
    m = get_model("progan", in_chans=1, img_size=28)  # levels 7 -> 14 -> 28
    g, d = m.generator, m.discriminator
    z = torch.randn(3, m.latent_dim)
    h = pixel_norm(z)
    for block in g.blocks[:2]:
        h = block(h)
    previous = F.interpolate(g(z, 1), scale_factor=2.0)  # level 1's output, upsampled (nearest)
    new_block = g.to_rgb[2](g.blocks[2](h))
    assert torch.equal(g(z, 2, 0.0), previous)
    assert torch.equal(g(z, 2, 1.0), new_block)
    assert torch.allclose(g(z, 2, 0.3), 0.7 * previous + 0.3 * new_block)
    # the discriminator's fade-in mirrors it: at alpha 0 it judges the 2x2-averaged image at the previous level
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(d(x, 2, 0.0), d(F.avg_pool2d(x, 2), 1, 1.0))
    assert not torch.allclose(d(x, 2, 1.0), d(x, 2, 0.0))
    m.set_stage(2, 0.0)  # the reals fade in the same way
    assert torch.equal(m.reals(x), F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0))


def test_the_stage_is_in_the_state_dict():
    m = get_model("progan", in_chans=1, img_size=28)
    m.set_stage(1, 0.25)
    m.images_seen += 1234
    other = get_model("progan", in_chans=1, img_size=28)
    other.load_state_dict(m.state_dict())
    assert other.stage() == (1, 0.25) and int(other.images_seen) == 1234


# ---------------------------------------------------------------------------------------------------------------
# From the CLI


FAST = ["--epochs", "1", "--max-steps", "3", "--batch-size", "8", "--threads", "1"]


def train(capsys, project, *args, name):
    code, _, err = mmkit(capsys, "generate", "train", *args, "--project", project, "--name", name)
    assert code == 0, err
    return project / "generate" / name


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One MMKIT_HOME for the module: the digits feature network is trained once."""
    return tmp_path_factory.mktemp("home")


@pytest.mark.parametrize("model", ["lapgan", "cc-lapgan", "progan"])
def test_trains_samples_and_is_scored_from_the_cli(capsys, tmp_path, monkeypatch, home, model):
    monkeypatch.setenv("MMKIT_HOME", str(home))
    run = train(capsys, tmp_path, "--model", model, "--data", "digits", "--img-size", "16", *FAST, name=model)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/d_loss" in header and "train/g_loss" in header and "val/fid_pix" in header
    if model != "progan":
        assert "train/d_8px_loss" in header and "train/d_16px_loss" in header  # one discriminator per level
    ck = load_checkpoint(run / "last.pt")
    assert ck["meta"]["model"] == model and ck["meta"]["img_size"] == 16
    grid = tmp_path / "grid.png"
    for command in (["sample", "--n", "10", "--out", grid], ["eval", "--n", "100", "--out", tmp_path / "ev"]):
        code, out, err = mmkit(capsys, "generate", *command, "--weights", run / "last.pt", "--json")
        assert code == 0, err
    assert grid.is_file()
    r = json.loads(out)  # eval's
    assert r["samples"] == 100 and r["fid"] > 0 and "kid" in r
    assert ("label_accuracy" in r) is (model == "cc-lapgan")


def test_a_resumed_progan_continues_its_growth_exactly(capsys, tmp_path):
    # 8 images a step, 10 a phase: steps train at 0 -> (0, 1), 8 -> (0, 1), 16 -> (1, 0.6); then 24 -> (1, 1),
    # 32 -> (2, 0.2), 40 -> (2, 1)
    args = ["--model", "progan", "--data", "digits", "--img-size", "28", "--phase-images", "10", *FAST]
    half = train(capsys, tmp_path, *args, name="half")
    ck = load_checkpoint(half / "last.pt")["model"]
    assert (int(ck["level"]), float(ck["alpha"]), int(ck["images_seen"])) == (1, pytest.approx(0.6), 24)
    assert not (half / "best.pt").exists()  # not grown yet: no best model to keep
    assert "inf" in (half / "metrics.csv").read_text()
    code, _, err = mmkit(capsys, "generate", "train", "--resume", "--project", tmp_path, "--name", "half",
                         "--epochs", "2")  # fmt: skip
    assert code == 0, err
    whole = train(capsys, tmp_path, *args, "--epochs", "2", name="whole")
    resumed = load_checkpoint(half / "last.pt")["model"]
    straight = load_checkpoint(whole / "last.pt")["model"]
    assert (int(resumed["level"]), float(resumed["alpha"]), int(resumed["images_seen"])) == (2, 1.0, 48)
    assert resumed.keys() == straight.keys()
    for k in straight:
        assert torch.equal(resumed[k], straight[k]), k
    assert (whole / "best.pt").exists()  # grown in its second epoch
