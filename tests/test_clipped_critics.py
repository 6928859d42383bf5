"""WGAN as Arjovsky et al. train it (issue 19): raw critic scores (critic loss D(fake) - D(real), generator loss
-D(fake)), the critic's weights clipped to [-c, c] after each of its steps, n_critic critic steps per generator
step, RMSprop at 5e-5 as the recipe; trained through the engine, sampled and scored from the command line."""

import json

import pytest
import torch
import yaml
from _cli import mmkit, run_fixture
from torch import nn

from mmkit.engine import Trainer, load_checkpoint
from mmkit.models import get_model, get_model_info
from mmkit.models.gans import clip_weights, wgan_d_loss, wgan_g_loss
from mmkit.tasks.generate import GANTask, make_task
from mmkit.tasks.generate.options import RECIPES
from mmkit.tasks.registry import get_task

C = 0.01


def test_wgan_is_registered_as_a_dcgan_with_a_batchnorm_critic():
    info = get_model_info("wgan")
    assert (info.task, info.family, info.default_input_size) == ("generate", "gan", 28)
    model = get_model("wgan", in_chans=1)
    assert model.kind == "wgan" and model.critic is model.discriminator
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.critic.modules())  # the paper's DCGAN critic
    x = model.sample(3)
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1
    assert model.critic(x).shape == (3,)  # one raw score per image: no sigmoid anywhere
    assert isinstance(make_task(data="digits", model="wgan"), GANTask)


def test_wasserstein_losses_on_fixed_scores():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 2.0])
    # critic: E[D(fake)] - E[D(real)] = 0.5 - 2 = -1.5 (it lowers the loss by scoring real images higher)
    assert wgan_d_loss(real, fake).item() == pytest.approx(-1.5)
    assert wgan_d_loss(fake, real).item() == pytest.approx(1.5)
    # generator: -E[D(G(z))] = -0.5, on the raw scores (no log, no sigmoid)
    assert wgan_g_loss(fake).item() == pytest.approx(-0.5)
    assert wgan_g_loss(torch.tensor([10.0, 30.0])).item() == pytest.approx(-20.0)


def test_clip_weights_clamps_every_parameter_of_the_critics_only():
    a, b, other = nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(2, 2)
    with torch.no_grad():
        for p in [*a.parameters(), *b.parameters(), *other.parameters()]:
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    before = [p.clone() for p in a.parameters()]
    clip_weights(a, b, c=0.1)
    for p, p0 in zip(a.parameters(), before, strict=True):
        assert torch.equal(p, p0.clamp(-0.1, 0.1))  # inside values kept, the others at the bounds
    assert all(
        p.abs().max() <= 0.1 for p in b.parameters()
    )  # norm scales and shifts too, as the paper's code
    assert other.weight.abs().max() == 1  # not a critic: untouched


def test_the_recipe_is_the_papers_rmsprop():
    assert RECIPES.for_data("digits", "wgan")["lr"] == 5e-5
    assert RECIPES.for_data("digits", "wgan")["optimizer"] == "rmsprop"
    # on a builtin whose recipe is tuned for another model, the model's own settings still apply
    assert RECIPES.for_data("fashion-mnist", "wgan")["lr"] == 5e-5
    assert RECIPES.for_data("digits", "wgan-gp")["lr"] == 2e-4
    assert RECIPES.for_data("digits")["lr"] == 2e-4  # no model chosen: DCGAN's


def test_training_clips_the_critic_after_each_step_and_steps_the_generator_every_n_critic(tmp_path):
    spec = get_task("generate")
    cfg = spec.train_config(
        "digits", model="wgan", epochs=1, max_steps=10, batch_size=16, threads=1, device="cpu",
        project=str(tmp_path), name="w", model_kwargs={"base": 8},
    )  # fmt: skip
    trainer = Trainer(spec.make_task(cfg.task_args), cfg, progress=False)
    trainer.fit()
    net, opts = trainer.task.net, trainer.optimizers
    assert {type(o) for o in opts.values()} == {torch.optim.RMSprop}
    assert {g["lr"] for o in opts.values() for g in o.param_groups} == {5e-5}
    steps = {k: {int(s["step"]) for s in o.state.values()} for k, o in opts.items()}
    assert steps == {"disc": {10}, "model": {2}}  # the critic on every batch, the generator on every 5th
    # clipped after its last step: an RMSprop step from the bound would leave it at about c + 10 * lr
    assert max(p.abs().max().item() for p in net.critic.parameters()) <= C
    assert max(p.abs().max().item() for p in net.generator.parameters()) > 0.5  # the generator is not clipped


# a short run of `mmkit generate train --model wgan --data digits`, shared by the command-line tests below
wgan_run = run_fixture(
    "generate", "--model", "wgan", "--data", "digits", "--epochs", "1", "--max-steps", "5", "--batch-size", "16",
    "--threads", "1", "--weight-clip", "0.02",
)  # fmt: skip


def test_the_command_line_trains_with_the_recipe_and_the_given_clipping(wgan_run):
    cfg = yaml.safe_load((wgan_run / "config.yaml").read_text())
    assert (cfg["lr"], cfg["optimizer"], cfg["task_args"]["weight_clip"]) == (5e-5, "rmsprop", 0.02)
    state = load_checkpoint(wgan_run / "last.pt")["model"]
    critic = [
        v
        for k, v in state.items()
        if k.startswith("discriminator.") and "running" not in k and "num" not in k
    ]
    # at 8 px the critic is one conv and the head (weights and biases), all within the given c
    assert len(critic) == 4 and max(float(v.abs().max()) for v in critic) <= 0.02


def test_the_trained_wgan_samples_a_grid(capsys, tmp_path, wgan_run):
    code, out, err = mmkit(capsys, "generate", "sample", "--weights", wgan_run / "last.pt", "--n", "8", "--label",
                           "3", "--out", tmp_path / "grid.png")  # fmt: skip
    assert code != 0 and "--label" in err  # unconditional: no labels to draw
    code, out, err = mmkit(capsys, "generate", "sample", "--weights", wgan_run / "last.pt", "--n", "8",
                           "--out", tmp_path / "grid.png", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n"] == 8 and (tmp_path / "grid.png").is_file()


def test_the_trained_wgan_is_scored_by_generate_eval(capsys, tmp_path, monkeypatch, wgan_run):
    monkeypatch.setenv("MMKIT_HOME", str(tmp_path / "home"))
    code, out, err = mmkit(capsys, "generate", "eval", "--weights", wgan_run / "last.pt", "--n", "100",
                           "--out", tmp_path / "ev", "--json")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert (
        r["model"] == "wgan"
        and r["samples"] == 100
        and r["fid"] > 0
        and "kid" in r
        and "inception_score" in r
    )
