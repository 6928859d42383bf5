"""Text to image (issue 19): GAN-INT-CLS and StackGAN. Conditioning augmentation's KL against the closed form and
its samples' statistics, the matching-aware discriminator loss's three terms, embedding interpolation, the stages'
shapes, a short training through the CLI on synthetic captioned scenes with sampling from a prompt, and the attribute
check's matching rule."""

import math

import pytest
import torch
from _cli import mmkit, synth_fixture

from mmkit.data.synthetic_captions import CaptionObject, SceneSpec
from mmkit.engine import load_checkpoint
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info
from mmkit.models.text2image import ConditioningAugmentation, interpolate, kl_loss, matching_d_loss
from mmkit.tasks.generate.attributes import OUTPUTS, matches, scene_targets, shares
from mmkit.tasks.generate.predictor import evaluate, sample

V = 40  # vocabulary size (4 specials + 36 words)
scenes = synth_fixture("captions", "--n", "48", "--img-size", "32")


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def tokens(b: int, length: int = 12) -> torch.Tensor:
    t = torch.randint(4, V, (b, length))
    t[1:, length // 2 :] = 0  # padded captions of different lengths
    return t


# ---------------------------------------------------------------------------------------------------------------
# Losses and conditioning


def test_kl_of_conditioning_augmentation_is_the_closed_form():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    sigma = (0.5 * logvar).exp()
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    )
    assert kl_loss(mu, logvar).item() == pytest.approx(expected.sum(1).mean().item(), rel=1e-5)
    # by hand for one dimension: mu = 1, sigma^2 = e -> 0.5 * (1 + e - 1 - 1)
    assert kl_loss(torch.ones(1, 1), torch.ones(1, 1)).item() == pytest.approx(0.5 * (math.e - 1))
    assert kl_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_conditioning_augmentation_samples_around_its_mean_with_its_sigma():
    ca = ConditioningAugmentation(8, 3)
    with torch.no_grad():
        ca.fc.weight.zero_()
        ca.fc.bias.copy_(
            torch.tensor([1.0, -2.0, 0.5, 0.0, math.log(4.0), math.log(0.25)])
        )  # mu | log sigma^2
    c, mu, logvar = ca(torch.randn(20000, 8))
    assert torch.allclose(mu[0], torch.tensor([1.0, -2.0, 0.5])) and c.shape == (20000, 3)
    assert torch.allclose(c.mean(0), mu[0], atol=0.05)
    assert torch.allclose(c.std(0), torch.tensor([1.0, 2.0, 0.5]), atol=0.05)
    assert not torch.equal(ca(torch.zeros(1, 8))[0], ca(torch.zeros(1, 8))[0])  # a fresh draw every call


def test_matching_aware_discriminator_loss_has_its_three_terms():
    rr, rw, fr = torch.tensor([2.0, -1.0]), torch.tensor([-0.5, 3.0]), torch.tensor([0.25, -2.0])

    def nll_real(x):  # -log sigmoid(x)
        return torch.nn.functional.softplus(-x).mean()

    def nll_fake(x):  # -log(1 - sigmoid(x))
        return torch.nn.functional.softplus(x).mean()

    expected = nll_real(rr) + (nll_fake(rw) + nll_fake(fr)) / 2
    assert matching_d_loss(rr, rw, fr).item() == pytest.approx(expected.item(), rel=1e-6)
    # real + wrong text counts as fake, exactly as a fake + right text does (half weight each)
    assert matching_d_loss(rr, fr, rw).item() == pytest.approx(expected.item(), rel=1e-6)
    assert matching_d_loss(rw, rr, fr).item() != pytest.approx(expected.item())
    # a confident, correct discriminator pays almost nothing
    big = torch.full((4,), 20.0)
    assert matching_d_loss(big, -big, -big).item() < 1e-6


def test_interpolation_of_two_embeddings():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.allclose(interpolate(a, b), (a + b) / 2)
    assert torch.allclose(interpolate(a, b, 1.0), a) and torch.allclose(interpolate(a, b, 0.0), b)
    assert torch.allclose(interpolate(a, b, 0.25), 0.25 * a + 0.75 * b)
    with pytest.raises(MMKitError, match="beta"):
        interpolate(a, b, 1.5)


# ---------------------------------------------------------------------------------------------------------------
# Shapes


def test_stackgan_stages_and_discriminators_have_their_sizes():
    m = get_model("stackgan", vocab_size=V)
    info = get_model_info("stackgan")
    assert (info.task, info.family, info.default_input_size) == ("generate", "text2image", 64)
    e = m.embed(tokens(4))
    assert e.shape == (4, 128)
    (low, high), kl = m.generate(torch.randn(4, m.latent_dim), e)
    assert low.shape == (4, 3, 16, 16) and high.shape == (4, 3, 64, 64) and kl.dim() == 0
    assert low.abs().max() <= 1 and high.abs().max() <= 1
    assert [d(x, e).shape for d, x in zip(m.discriminators, (low, high), strict=True)] == [(4,), (4,)]
    # stage II learns from its own discriminator only: the stage-I image reaches it detached
    high.sum().backward()
    assert all(p.grad is None for p in m.stage1.parameters())
    assert any(p.grad is not None for p in m.stage2.parameters())
    m32 = get_model("stackgan", vocab_size=V, img_size=32, stage1_size=8)
    assert [x.shape[-1] for x in m32.generate(torch.randn(2, 100), m32.embed(tokens(2)))[0]] == [8, 32]
    with pytest.raises(MMKitError, match="stage1_size"):
        get_model("stackgan", vocab_size=V, stage1_size=64)


def test_gan_int_cls_draws_one_stage_and_samples_a_caption():
    m = get_model("gan-int-cls", vocab_size=V).eval()
    (x,), kl = m.generate(torch.randn(3, 100), m.embed(tokens(3)))
    assert x.shape == (3, 3, 64, 64) and kl.item() == 0.0
    one = m.sample(5, tokens(1))  # one caption, five noises
    assert one.shape == (5, 3, 64, 64)
    z, t = torch.randn(5, 100), tokens(1)
    assert torch.equal(m.sample(5, t, z=z), m.sample(5, t, z=z))
    with pytest.raises(MMKitError, match="captions for"):
        m.sample(5, tokens(2))
    # the three parameter groups (three optimizers) do not overlap and cover the model
    groups = [
        set(map(id, f())) for f in (m.generator_parameters, m.discriminator_parameters, m.text_parameters)
    ]
    assert sum(map(len, groups)) == len(set.union(*groups)) == len(list(m.parameters()))


# ---------------------------------------------------------------------------------------------------------------
# Training and sampling


def test_stackgan_trains_on_captioned_scenes_and_draws_a_prompt(capsys, tmp_path, scenes):
    small = ["--model-arg", "base=8", "--model-arg", "base2=4", "--model-arg", "d_base=8"]
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", scenes, "--model", "stackgan", "--img-size", "32",
        "--model-arg", "stage1_size=8", *small, "--epochs", "1", "--max-steps", "3", "--batch-size", "8",
        "--threads", "1", "--project", tmp_path, "--name", "t2i",
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "generate" / "t2i"
    header = (run / "metrics.csv").read_text().splitlines()[0]
    for key in (
        "train/text_loss",
        "train/d_loss",
        "train/g_loss",
        "train/kl",
        "val/fid_pix",
        "val/text_top1",
    ):
        assert key in header
    meta = load_checkpoint(run / "last.pt")["meta"]
    assert meta["kind"] == "captions" and meta["img_size"] == 32
    assert {"red", "digit", "circle", "left"} <= set(meta["vocab"])
    assert meta["model_kwargs"]["vocab_size"] == len(meta["vocab"]) + 4
    assert (run / "samples" / "epoch_001.png").is_file()

    r = sample(str(run / "last.pt"), n=4, text="a large red digit 3", out=tmp_path / "red3.png", device="cpu")
    assert r["text"] == "a large red digit 3" and (tmp_path / "red3.png").is_file()
    with pytest.raises(MMKitError, match="--text is required"):
        sample(str(run / "last.pt"), n=4, out=tmp_path / "x.png", device="cpu")
    with pytest.raises(MMKitError, match="none of its words"):
        sample(str(run / "last.pt"), n=4, text="zebra xylophone", out=tmp_path / "x.png", device="cpu")
    with pytest.raises(MMKitError, match="text-to-image"):  # FID/KID need generation data: not these models'
        evaluate(str(run / "last.pt"), device="cpu")


def test_gan_int_cls_trains_with_interpolated_captions_and_an_image_gan_reads_no_text(
    capsys, tmp_path, scenes
):
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", scenes, "--model", "gan-int-cls", "--img-size", "32",
        "--model-arg", "base=8", "--model-arg", "d_base=8", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "8", "--threads", "1", "--project", tmp_path, "--name", "int", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "train/kl" not in (tmp_path / "generate" / "int" / "metrics.csv").read_text()
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", "digits", "--model", "dcgan", "--epochs", "1", "--max-steps", "1",
        "--batch-size", "16", "--threads", "1", "--project", tmp_path, "--name", "dc",
    )  # fmt: skip
    assert code == 0, err
    with pytest.raises(MMKitError, match="does not read text"):
        sample(
            str(tmp_path / "generate" / "dc" / "last.pt"), n=2, text="a red circle", out=tmp_path / "d.png"
        )


def test_training_needs_captioned_data(capsys, tmp_path):
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", "digits", "--model", "stackgan", "--epochs", "1",
        "--project", tmp_path, "--name", "bad",
    )  # fmt: skip
    assert code != 0 and "digits" in err and "caption" in err


# ---------------------------------------------------------------------------------------------------------------
# The attribute check


def spec(*objects: tuple[str, str, str]) -> SceneSpec:
    return SceneSpec(tuple(CaptionObject(*o) for o in objects), "h", (), "")


def test_attribute_targets_and_matching_compare_sets_per_attribute():
    scene = spec(("3", "red", "large"), ("circle", "blue", "small"))
    y = scene_targets([scene])[0]
    assert len(OUTPUTS) == 6 + 2 + 4 + 10
    truth = {"3", "digit", "red", "large", "circle", "blue", "small"}
    assert {OUTPUTS[i] for i in y.nonzero().flatten().tolist()} == truth
    index = {v: i for i, v in enumerate(OUTPUTS)}

    def check(*values):
        read = torch.zeros(1, len(OUTPUTS), dtype=torch.bool)
        read[0, [index[v] for v in values]] = True
        return {k: v.item() for k, v in matches(read, y[None]).items()}

    assert all(check(*truth).values())
    # one colour missing: the colours fail, and so "all"; sizes, forms and kinds still match
    assert check(*truth - {"blue"}) == {
        "colour": False,
        "size": True,
        "form": True,
        "kind": True,
        "all": False,
    }
    # an 8 read for the 3: the same form (a digit), another kind; "all" holds (colour, size, form)
    assert check(*truth - {"3"} | {"8"}) == {
        "colour": True,
        "size": True,
        "form": True,
        "kind": False,
        "all": True,
    }
    # a square read for the circle: another form and kind
    m = check(*truth - {"circle"} | {"square"})
    assert (m["form"], m["kind"], m["all"]) == (False, False, False)
    # the 3 read, but not that it is a digit: the form set lacks "digit"
    assert check(*truth - {"digit"})["form"] is False
    rows = [[index[v] for v in truth], [index["red"]]]
    read = torch.zeros(2, len(OUTPUTS), dtype=torch.bool)
    for row, cols in enumerate(rows):
        read[row, cols] = True
    assert shares(read, y.repeat(2, 1)) == {"colour": 0.5, "size": 0.5, "form": 0.5, "kind": 0.5, "all": 0.5}
