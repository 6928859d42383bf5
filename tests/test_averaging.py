"""Weight averaging (`--ema`, `--swa-from`): the averages' math, what the checkpoints hold, exact resume."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from _cli import mmkit, train
from _toy import ToyGanTask, ToyTask, toy_data
from torch import nn
from torch.utils.data import TensorDataset

import mmkit as mmkit_api
from mmkit.engine import Task, TrainConfig, Trainer, load_checkpoint
from mmkit.engine.averaging import WeightAverage
from mmkit.errors import MMKitError


def cfg(tmp_path, **kw):
    base = dict(task="toy", project=str(tmp_path), epochs=3, batch_size=32, lr=0.05, optimizer="adamw")
    return TrainConfig(**{**base, **kw})


def scalar(value: float) -> nn.Module:
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(value)
    return net


def ema_by_hand(weights: list[float], decay: float) -> float:
    """The bias-corrected exponential average: each weight seen counts decay**age, normalised."""
    t = len(weights)
    coeffs = [decay ** (t - 1 - i) for i in range(t)]
    return sum(c * w for c, w in zip(coeffs, weights, strict=True)) / sum(coeffs)


# --- the math ---------------------------------------------------------------------------------------------------------
def test_ema_and_swa_of_a_one_parameter_model():
    ema, swa = WeightAverage(scalar(0.0), decay=0.5), WeightAverage(scalar(0.0), swa_from=1)
    # by hand: EMA of decay 1/2 over 1, 2, 4 is 1, (1/2 + 2) / (3/2), (1/4 + 1 + 4) / (7/4); SWA is the mean
    for value, want_ema, want_swa in [(1.0, 1.0, 1.0), (2.0, 5 / 3, 1.5), (4.0, 3.0, 7 / 3)]:
        ema.update(scalar(value))
        swa.update(scalar(value))
        assert ema.module.weight.item() == pytest.approx(want_ema, abs=1e-6)
        assert swa.module.weight.item() == pytest.approx(want_swa, abs=1e-6)
    assert ema.updates == 3
    # the warm-up ends: after many updates an update moves the average by 1 - decay
    assert WeightAverage(scalar(0.0), decay=0.999).weight(20_000) == pytest.approx(0.001)


def test_buffers_are_copied_and_the_trained_model_is_untouched():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    avg = WeightAverage(net, decay=0.9)
    net[1].running_mean.fill_(7.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    avg.update(net)
    assert torch.equal(avg.module[1].running_mean, torch.full((2,), 7.0))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(p.requires_grad for p in avg.module.parameters())


# --- through the trainer ----------------------------------------------------------------------------------------------
class ScalarTask(Task):
    """y = 3x learned by one weight; `seen` records the weight before each optimizer step."""

    name = "scalar"

    def setup(self, cfg, rt):
        self.net = scalar(0.0)
        x = torch.linspace(-1, 1, 16).unsqueeze(1)
        self.train_ds = self.val_ds = TensorDataset(x, 3 * x)
        self.seen: list[float] = []

    def loss(self, model, batch):
        x, y = batch
        self.seen.append(model.weight.item())
        return F.mse_loss(model(x), y), {}

    def evaluate(self, model, loader, rt):
        return {"val/loss": sum(F.mse_loss(model(x), y).item() for x, y in loader)}


def test_ema_through_the_trainer_matches_the_hand_computed_average(tmp_path):
    task = ScalarTask()
    c = cfg(tmp_path, task="scalar", epochs=2, batch_size=4, optimizer="sgd", lr=0.1, momentum=0.0)
    c = c.replace(weight_decay=0.0, schedule="constant", ema=0.5)
    run = Trainer(task, c, progress=False).fit().run_dir
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    trained = last["trained_model"]["weight"].item()
    after_each_step = [*task.seen[1:], trained]  # 8 steps: 16 samples / 4, two epochs
    assert len(after_each_step) == 8 and last["average"]["updates"] == 8
    assert last["model"]["weight"].item() == pytest.approx(ema_by_hand(after_each_step, 0.5), abs=1e-6)
    assert abs(last["model"]["weight"].item() - trained) > 1e-3  # the average lags the trained weight
    # best.pt (the last epoch: the loss falls) holds the average as its model, and nothing to resume from
    assert best["epoch"] == 2 and torch.equal(best["model"]["weight"], last["model"]["weight"])
    assert "trained_model" not in best and best["average"]["kind"] == "ema"


def test_validation_runs_the_ema_weights(tmp_path):
    class Recording(ToyTask):
        def evaluate(self, model, loader, rt):
            self.evaluated = {k: v.clone() for k, v in model.state_dict().items()}
            return super().evaluate(model, loader, rt)

    task = Recording()
    run = Trainer(task, cfg(tmp_path, ema=0.9), progress=False).fit().run_dir
    last = load_checkpoint(run / "last.pt")
    for k, v in last["model"].items():
        assert torch.equal(task.evaluated[k], v), k
    assert not torch.equal(last["model"]["0.weight"], last["trained_model"]["0.weight"])


def test_classify_eval_reads_the_ema_weights(tmp_path, capsys):
    run = train(
        tmp_path, "classify", "--data", "digits", "--epochs", "2", "--val-split", "0.1", "--ema", "0.9",
        "--device", "cpu",
    )  # fmt: skip
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best["average"] == {"kind": "ema", "decay": 0.9, "swa_from": None, "updates": last["global_step"]}
    net = mmkit_api.load(run / "best.pt").net
    for k, v in net.state_dict().items():
        assert torch.equal(v, best["model"][k]), k
    assert any(not torch.equal(last["model"][k], v) for k, v in last["trained_model"].items())
    code, out, err = mmkit(
        capsys, "classify", "eval", "--weights", run / "best.pt", "--data", "digits", "--split", "val",
        "--device", "cpu", "--out", tmp_path / "eval", "--json",
    )  # fmt: skip
    assert code == 0, err
    top1 = json.loads(out.strip().splitlines()[-1])["top1"]
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[best["epoch"] - 1]["val/top1"]) == pytest.approx(top1, abs=1e-4)


def test_ema_resume_continues_exactly(tmp_path):
    check_resume(tmp_path, ToyTask, ema=0.9)


# --- SWA --------------------------------------------------------------------------------------------------------------
class BNTask(ToyTask):
    """The toy task with BatchNorm; `epochs` keeps the trained weights at the end of each epoch."""

    name = "toy"

    def setup(self, cfg, rt):
        super().setup(cfg, rt)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))
        self.epochs = []

    def on_epoch_end(self, epoch, run_dir, rt):
        self.epochs.append({k: v.clone() for k, v in self.net.state_dict().items()})
        super().on_epoch_end(epoch, run_dir, rt)


def test_swa_is_the_mean_of_the_epochs_weights_with_bn_recomputed(tmp_path):
    task = BNTask()
    run = Trainer(task, cfg(tmp_path, epochs=4, swa_from=2), progress=False).fit().run_dir
    last = load_checkpoint(run / "last.pt")
    swa = last["model"]
    assert last["average"]["updates"] == 3
    for k, _ in task.net.named_parameters():
        mean = torch.stack([e[k] for e in task.epochs[1:]]).mean(0)
        torch.testing.assert_close(swa[k], mean, rtol=0, atol=1e-6)
        assert torch.equal(last["trained_model"][k], task.epochs[-1][k])
    # BatchNorm statistics: recomputed for the averaged weights over the training data, not the trained model's
    x = toy_data(256).tensors[0]
    with torch.no_grad():
        features = x @ swa["0.weight"].T + swa["0.bias"]
    torch.testing.assert_close(swa["1.running_mean"], features.mean(0), rtol=0, atol=1e-5)
    assert not torch.allclose(swa["1.running_mean"], task.epochs[-1]["1.running_mean"], atol=1e-3)


def test_swa_resume_continues_exactly(tmp_path):
    check_resume(tmp_path, BNTask, swa_from=2)


def check_resume(tmp_path, task_cls, **averaging):
    """A run killed after epoch 2 and resumed ends with the weights, average and all, of one never stopped."""
    full = Trainer(task_cls(noise=True), cfg(tmp_path, name="full", epochs=4, **averaging), progress=False)
    full_dir = full.fit().run_dir
    with pytest.raises(SystemExit):
        c = cfg(tmp_path, name="cut", epochs=4, **averaging)
        Trainer(task_cls(noise=True, crash_at_epoch=3), c, progress=False).fit()
    cut = tmp_path / "toy" / "cut"
    Trainer(
        task_cls(noise=True), TrainConfig.load(cut / "config.yaml"), resume=cut / "last.pt", progress=False
    ).fit()
    a, b = load_checkpoint(full_dir / "last.pt"), load_checkpoint(cut / "last.pt")
    assert a["average"] == b["average"] and a["average"]["updates"] > 0
    for part in ("model", "trained_model"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


# --- refusals ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options,message",
    [
        (dict(ema=1.0), "--ema 1.0: the decay must lie between 0 and 1"),
        (dict(ema=0.0), "--ema 0.0: the decay must lie between 0 and 1"),
        (dict(ema=-0.5), "--ema -0.5: the decay must lie between 0 and 1"),
        (dict(swa_from=0), "--swa-from 0: epochs count from 1"),
        (dict(swa_from=5), r"--swa-from 5: after the last epoch \(--epochs 3\)"),
        (dict(ema=0.9, swa_from=2), "--ema and --swa-from: choose one"),
    ],
)
def test_a_bad_value_is_one_clear_error(tmp_path, options, message):
    with pytest.raises(MMKitError, match=message) as e:
        Trainer(ToyTask(), cfg(tmp_path, **options), progress=False).fit()
    assert "\n" not in str(e.value)
    assert not (tmp_path / "toy").exists()  # refused before anything was written


def test_a_task_training_two_models_by_hand_is_refused(tmp_path):
    with pytest.raises(MMKitError, match="--ema: averages one model trained by one optimizer; toygan trains"):
        Trainer(ToyGanTask(), cfg(tmp_path, task="toygan", ema=0.99), progress=False).fit()


def test_the_command_line_refuses_a_bad_decay(tmp_path, capsys):
    args = ["classify", "train", "--data", "digits", "--ema", "1.5", "--device", "cpu", "--project"]
    code, _, err = mmkit(capsys, *args, tmp_path)
    assert code != 0 and "--ema 1.5: the decay must lie between 0 and 1" in err
    assert len(err.strip().splitlines()) == 1
