"""The unpaired translation models side by side (issue 19): CycleGAN, DiscoGAN (Kim et al. 2017) and DualGAN (Yi et
al. 2017) are one two-generator, two-discriminator model trained by one pair of losses; what differs is declared
(networks, adversarial kind, reconstruction distance, weights, optimizer, clipping). The losses against values
computed by hand on networks with known outputs, the shapes, and short runs from the command line and the Task API."""

import json
import math

import pytest
import torch
import yaml
from _cli import mmkit
from torch import nn

from mmkit.engine import Trainer
from mmkit.models import get_model, get_model_info
from mmkit.models.translation import UnpairedGAN, cyclegan_d_loss, cyclegan_g_loss, wgan_loss
from mmkit.tasks.generate import TranslationTask, make_task
from mmkit.tasks.registry import get_task

UNPAIRED = ["cyclegan", "discogan", "dualgan"]


# ---------------------------------------------------------------------------------------------------------------
# Losses on networks with known outputs


class Shift(nn.Module):
    """A 'generator' x -> x + s."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(s))

    def forward(self, x):
        return x + self.s


class MeanScore(nn.Module):
    """A 'discriminator': the image mean times w, one score per image."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.w * x.flatten(1).mean(1)


@pytest.fixture
def known():
    """g_ab(x) = x + 1, g_ba(x) = x - 0.5, d(x) = mean(x); a = 0, b = 0.5. Then fake_b = 1, fake_a = 0, the round
    trips give 0.5 (for a) and 1 (for b), the identity mappings g_ab(b) = 1.5 and g_ba(a) = -0.5, and the
    discriminators score real a 0, fake a 0, real b 0.5, fake b 1."""
    shifts = iter([1.0, -0.5])
    model = UnpairedGAN(1, 1, 4, (lambda c_in, c_out: Shift(next(shifts)), lambda c: MeanScore()))
    return model, torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)


def softplus(x: float) -> float:
    return math.log1p(
        math.exp(x)
    )  # BCE with logits: -log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)


def test_generator_losses_by_hand(known):
    model, a, b = known
    # CycleGAN: LSGAN (1 - 1)^2 + (0 - 1)^2 = 1; L1 cycle |0.5 - 0| + |1 - 0.5| = 1; identity |1.5 - 0.5| + |-0.5| = 1.5
    loss, parts, fake_a, fake_b = cyclegan_g_loss(model, a, b)
    assert (fake_a.mean().item(), fake_b.mean().item()) == (0.0, 1.0)
    assert (parts["g_adv"].item(), parts["cycle"].item(), parts["identity"].item()) == (1.0, 1.0, 1.5)
    assert loss.item() == pytest.approx(1 + 10 * 1 + 0.5 * 10 * 1.5)
    # DiscoGAN: BCE(1 -> real) + BCE(0 -> real); L2 cycle 0.5^2 + 0.5^2 = 0.5; weight 1, no identity term
    loss, parts, _, _ = cyclegan_g_loss(model, a, b, 1.0, 0.0, "bce", "l2")
    assert set(parts) == {"g_adv", "cycle"} and parts["cycle"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(softplus(-1) + softplus(0) + 0.5)
    # DualGAN: raw critic scores, -D_b(fake b) - D_a(fake a) = -1; L1 cycle 1 at weight 100
    loss, parts, _, _ = cyclegan_g_loss(model, a, b, 100.0, 0.0, "wgan", "l1")
    assert parts["g_adv"].item() == pytest.approx(-1.0) and loss.item() == pytest.approx(99.0)


def test_discriminator_losses_by_hand(known):
    model, a, b = known
    fake_a, fake_b = torch.zeros_like(a), torch.ones_like(b)
    # LSGAN, halved: 0.5 * ((0 - 1)^2 + 0^2) + 0.5 * ((0.5 - 1)^2 + 1^2)
    assert cyclegan_d_loss(model, a, b, fake_a, fake_b)[0].item() == pytest.approx(0.5 + 0.625)
    # BCE, halved (DiscoGAN's code)
    bce = 0.5 * (softplus(0) + softplus(0)) + 0.5 * (softplus(-0.5) + softplus(1))
    assert cyclegan_d_loss(model, a, b, fake_a, fake_b, "bce")[0].item() == pytest.approx(bce)
    # Wasserstein critics, whole: (D_a(fake) - D_a(real)) + (D_b(fake) - D_b(real)) = 0 + (1 - 0.5)
    d, parts = cyclegan_d_loss(model, a, b, fake_a, fake_b, "wgan")
    assert d.item() == pytest.approx(0.5) and parts["d_b"].item() == pytest.approx(0.5)
    d.backward()  # the critic lowers its loss by scoring real b above fake b: d/dw_b = mean(fake) - mean(real)
    assert model.d_b.w.grad.item() == pytest.approx(0.5) and model.g_ab.s.grad is None  # fakes detached
    assert wgan_loss(torch.tensor([1.0, 3.0]), True).item() == -2.0
    assert wgan_loss(torch.tensor([1.0, 3.0]), False).item() == 2.0


# ---------------------------------------------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize("name", UNPAIRED)
@pytest.mark.parametrize(("size", "c_a", "c_b"), [(28, 1, 1), (64, 3, 3), (32, 1, 3)])
def test_shapes(name, size, c_a, c_b):
    model = get_model(name, in_chans=c_a, out_chans=c_b, img_size=size, ngf=8, ndf=8)
    assert get_model_info(name).family == "translation"
    a, b = torch.rand(2, c_a, size, size) * 2 - 1, torch.rand(2, c_b, size, size) * 2 - 1
    fake_b, fake_a = model(a), model.g_ba(b)
    assert fake_b.shape == b.shape and fake_a.shape == a.shape
    assert fake_b.abs().max() <= 1 and fake_a.abs().max() <= 1
    assert {k.split(".")[0] for k in model.state_dict()} == {"g_ab", "g_ba", "d_a", "d_b"}
    d = model.d_a(a)
    assert d.shape == ((2,) if name == "discogan" else (2, 1, *d.shape[-2:]))  # one logit vs a patch grid
    n_g = sum(p.numel() for p in model.generator_parameters())
    assert n_g + sum(p.numel() for p in model.discriminator_parameters()) == sum(
        p.numel() for p in model.parameters()
    )


def test_discogan_generator_is_an_encoder_decoder_down_to_4x4():
    model = get_model("discogan", in_chans=3, img_size=64)
    g = model.g_ab
    assert not g.skips and g.num_downs == 4  # the paper's 64 -> 4 x 4, no skip connections, no dropout
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())
    x = torch.zeros(1, 3, 64, 64)
    for down in g.downs:
        x = down(x)
    assert x.shape == (1, 256, 4, 4)
    assert g.ups[1][1].in_channels == 128  # the decoder sees only the previous layer (a U-Net would see 256)


# ---------------------------------------------------------------------------------------------------------------
# Training


def test_each_model_trains_with_its_declared_objective():
    tasks = {m: make_task(data="day-tinted", model=m) for m in UNPAIRED}
    assert all(isinstance(t, TranslationTask) and t.monitor == ("val/fid_pix", "min") for t in tasks.values())
    assert {m: t.lambda_cycle for m, t in tasks.items()} == {
        "cyclegan": 10.0,
        "discogan": 1.0,
        "dualgan": 100.0,
    }
    assert make_task(data="day-tinted", model="discogan", lambda_cycle=5.0).lambda_cycle == 5.0
    specs = {m: t.spec for m, t in tasks.items()}
    declared = {
        m: (s.adversarial, s.reconstruction, s.identity, s.pool, s.optimizer, s.critic)
        for m, s in specs.items()
    }
    assert declared == {
        "cyclegan": ("lsgan", "l1", True, 50, "adam", ""),
        "discogan": ("bce", "l2", False, 0, "adam", ""),
        "dualgan": ("wgan", "l1", False, 0, "rmsprop", "clip"),
    }


def test_dualgan_clips_its_critics_and_steps_the_generators_every_n_critic(tmp_path):
    spec = get_task("generate")
    cfg = spec.train_config(
        "day-tinted", model="dualgan", epochs=1, max_steps=4, batch_size=2, img_size=32, crops=8, n_critic=2,
        threads=1, device="cpu", project=str(tmp_path), name="d", model_kwargs={"ngf": 8, "ndf": 8},
    )  # fmt: skip
    trainer = Trainer(spec.make_task(cfg.task_args), cfg, progress=False)
    trainer.fit()
    net, opts = trainer.task.net, trainer.optimizers
    assert {type(o) for o in opts.values()} == {torch.optim.RMSprop}
    assert {g["lr"] for o in opts.values() for g in o.param_groups} == {5e-5}  # the recipe
    steps = {k: {int(s["step"]) for s in o.state.values()} for k, o in opts.items()}
    assert steps == {"disc": {4}, "model": {2}}
    assert max(p.abs().max().item() for d in (net.d_a, net.d_b) for p in d.parameters()) <= 0.01
    assert max(p.abs().max().item() for p in net.generator_parameters()) > 0.5  # BN scales: not clipped


def test_discogan_trains_with_adam_and_no_identity_or_pool(tmp_path):
    spec = get_task("generate")
    cfg = spec.train_config(
        "day-tinted", model="discogan", epochs=1, max_steps=2, batch_size=2, img_size=32, crops=8, threads=1,
        device="cpu", project=str(tmp_path), name="d", model_kwargs={"ngf": 8, "ndf": 8},
    )  # fmt: skip
    trainer = Trainer(spec.make_task(cfg.task_args), cfg, progress=False)
    run = trainer.fit().run_dir
    opts = trainer.optimizers
    assert {type(o) for o in opts.values()} == {torch.optim.Adam}
    assert {g["betas"] for o in opts.values() for g in o.param_groups} == {(0.5, 0.999)}
    assert {int(s["step"]) for o in opts.values() for s in o.state.values()} == {2}  # both sides every step
    assert [p.size for p in trainer.task.pools] == [0, 0]
    columns = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/cycle" in columns and "train/identity" not in columns


@pytest.mark.parametrize(("model", "data"), [("discogan", "digits-fashion"), ("dualgan", "day-tinted")])
def test_trains_translates_and_evaluates_from_the_command_line(capsys, tmp_path, model, data):
    code, _, err = mmkit(
        capsys, "generate", "train", "--model", model, "--data", data, "--epochs", "1", "--max-steps", "2",
        "--batch-size", "4", "--img-size", "32", "--crops", "16", "--threads", "1",
        "--model-arg", "ngf=8", "--model-arg", "ndf=8", "--project", tmp_path, "--name", model,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "generate" / model
    assert (run / "samples" / "epoch_001.png").is_file()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["lr"] == (5e-5 if model == "dualgan" else 2e-4)
    code, out, err = mmkit(capsys, "generate", "translate", run / "samples" / "epoch_001.png",
                           "--weights", run / "best.pt", "--out", tmp_path / "t", "--json")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "t" / "epoch_001.translate.png").is_file()
    code, out, err = mmkit(capsys, "generate", "eval", "--weights", run / "best.pt", "--out", tmp_path / "e",
                           "--json")  # fmt: skip
    if data == "digits-fashion":  # unpaired sets without true translations have nothing to score against
        assert code != 0 and "no true translations" in err
        return
    assert code == 0, err
    r = json.loads(out)
    assert r["model"] == "dualgan" and r["baseline"] == "the input itself" and 0 < r["ssim_rgb"] < 1
