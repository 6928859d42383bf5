import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _toy import ToyTask
from torch import nn

from mmkit.engine import TrainConfig, Trainer, load_checkpoint, save_checkpoint
from mmkit.engine.optim import OPTIMIZERS, build_scheduler
from mmkit.errors import MMKitError, TrainingDiverged


def cfg(tmp_path, **kw):
    base = dict(task="toy", project=str(tmp_path), epochs=3, batch_size=32, lr=0.05, optimizer="adamw")
    base.update(kw)
    return TrainConfig(**base)


def weights(run_dir: Path, name="last.pt"):
    return load_checkpoint(run_dir / name)["model"]


def test_fit_writes_the_run_directory(tmp_path):
    res = Trainer(ToyTask(), cfg(tmp_path, epochs=4), progress=False).fit()
    d = res.run_dir
    assert d == tmp_path / "toy" / "exp"
    for f in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png", "report.html"):
        assert (d / f).is_file(), f
    assert list(d.glob("events.out.tfevents.*"))
    rows = (d / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch,")
    assert res.last_metrics["val/acc"] > 60  # learnable toy problem
    # a second run with the same name goes to exp2, never overwriting
    assert Trainer(ToyTask(), cfg(tmp_path, epochs=1), progress=False).fit().run_dir.name == "exp2"


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_every_optimizer_learns(tmp_path, opt):
    lr = {"lbfgs": 0.5, "rprop": 0.01, "sgd": 0.2}.get(opt, 0.02)
    res = Trainer(ToyTask(), cfg(tmp_path, optimizer=opt, lr=lr, epochs=3), progress=False).fit()
    assert math.isfinite(res.last_metrics["train/loss"])
    assert res.last_metrics["val/acc"] > 50, opt


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(tmp_path, precision):
    res = Trainer(ToyTask(), cfg(tmp_path, precision=precision), progress=False).fit()
    assert res.last_metrics["val/acc"] > 50


def test_accumulation_matches_a_larger_batch(tmp_path):
    # batch 16 x 2 micro-batches covers the same 32 samples per optimizer step as batch 32 (same seeded order)
    a = Trainer(
        ToyTask(), cfg(tmp_path, name="a", batch_size=32, optimizer="sgd", epochs=2), progress=False
    ).fit()
    b = Trainer(
        ToyTask(),
        cfg(tmp_path, name="b", batch_size=16, accumulate=2, optimizer="sgd", epochs=2),
        progress=False,
    )
    wa, wb = weights(a.run_dir), weights(b.fit().run_dir)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    c = Trainer(
        ToyTask(), cfg(tmp_path, name="c", batch_size=16, optimizer="sgd", epochs=2), progress=False
    ).fit()
    assert not torch.allclose(weights(c.run_dir)["0.weight"], wa["0.weight"])


def test_gradient_clipping_and_init(tmp_path):
    res = Trainer(ToyTask(), cfg(tmp_path, grad_clip=0.1, init="xavier"), progress=False).fit()
    assert res.last_metrics["val/acc"] > 50
    with pytest.raises(MMKitError, match="--init"):
        Trainer(ToyTask(), cfg(tmp_path, init="bogus"), progress=False).fit()


class _Recording(ToyTask):
    """The toy task remembering its initial weights and the dtype its forward computes in."""

    def setup(self, cfg, rt):
        super().setup(cfg, rt)
        self.initial = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.dtypes = set()

    def loss(self, model, batch):
        self.dtypes.add(model(batch[0]).dtype)
        return super().loss(model, batch)


@pytest.mark.parametrize("clip", [0.01, None])
def test_gradient_clipping_bounds_the_step(tmp_path, clip):
    """One plain SGD step of lr 1: the weights move by exactly the (clipped) global gradient norm."""
    task = _Recording()
    c = cfg(tmp_path, optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, schedule="constant", epochs=1)
    c.max_steps, c.grad_clip = 1, clip
    run = Trainer(task, c, progress=False).fit().run_dir
    after = weights(run)
    step = torch.sqrt(sum((after[k] - task.initial[k]).square().sum() for k in after)).item()
    if clip is None:
        assert step > 10 * 0.01  # the unclipped gradient is far larger than the clip below
    else:
        assert step == pytest.approx(clip, rel=1e-3)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_runs_the_forward_in_the_asked_precision(tmp_path, precision, dtype):
    task = _Recording()
    c = cfg(tmp_path, precision=precision, epochs=1)
    c.max_steps = 2
    Trainer(task, c, progress=False).fit()
    assert task.dtypes == {dtype}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = Trainer(ToyTask(nan_at_epoch=3), cfg(tmp_path, epochs=5, log_every=2), progress=False)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 3"):
        t.fit()
    ck = load_checkpoint(tmp_path / "toy" / "exp" / "last.pt")
    assert ck["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


def test_early_stopping(tmp_path):
    res = Trainer(
        ToyTask(), cfg(tmp_path, epochs=50, lr=0.0, optimizer="sgd", patience=2), progress=False
    ).fit()
    assert res.stopped_early and res.epochs == 3  # epoch 1 sets the best, 2 and 3 do not improve
    # lr 0: every epoch ties; best.pt follows the later epoch, while patience still counts the ties
    assert res.best_epoch == 3
    assert load_checkpoint(res.run_dir / "best.pt")["epoch"] == 3


def test_resume_continues_exactly(tmp_path):
    full = Trainer(ToyTask(noise=True), cfg(tmp_path, name="full", epochs=4), progress=False).fit()
    with pytest.raises(SystemExit):
        Trainer(
            ToyTask(noise=True, crash_at_epoch=3), cfg(tmp_path, name="cut", epochs=4), progress=False
        ).fit()
    cut = tmp_path / "toy" / "cut"
    assert load_checkpoint(cut / "last.pt")["epoch"] == 2
    c = TrainConfig.load(cut / "config.yaml")
    Trainer(ToyTask(noise=True), c, resume=cut / "last.pt", progress=False).fit()
    wf, wc = weights(full.run_dir), weights(cut)
    for k in wf:
        assert torch.equal(wf[k], wc[k]), k
    assert (full.run_dir / "metrics.csv").read_text().splitlines()[0] == (
        cut / "metrics.csv"
    ).read_text().splitlines()[0]
    assert len((cut / "metrics.csv").read_text().splitlines()) == 5


def test_schedules_shape():
    p = torch.nn.Parameter(torch.zeros(1))
    for name in ("cosine", "step", "constant", "onecycle"):
        opt = torch.optim.SGD([p], lr=1.0)
        s = build_scheduler(opt, name, epochs=4, steps_per_epoch=10, warmup_epochs=1, step_size=2, gamma=0.5)
        lrs = []
        for _ in range(40):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step()
        if name != "onecycle":
            assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(
                1.0
            )  # linear warm-up over epoch 1
        assert max(lrs) == pytest.approx(1.0, rel=1e-3)
        if name == "cosine":
            assert lrs[-1] < 0.02
        if name == "step":
            assert lrs[25] == pytest.approx(0.5) and lrs[19] == pytest.approx(1.0)


def test_checkpoint_files_are_checked(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(MMKitError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(MMKitError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    with pytest.raises(MMKitError, match="not an mmkit checkpoint"):
        load_checkpoint(plain)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "mmkit-checkpoint", "x": Evil()}, evil)
    with pytest.raises(MMKitError, match="refused"):
        load_checkpoint(evil)
    good = save_checkpoint(
        {"format": "mmkit-checkpoint", "version": 1, "w": torch.ones(3)}, tmp_path / "ok.pt"
    )
    assert torch.equal(load_checkpoint(good)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_random_bytes_are_never_a_crash(tmp_path):
    # random bytes that start like a pickle reach deep into the unpickler (stack errors, bad opcodes, ...);
    # every one of them must come back as one MMKitError naming the file
    rng = np.random.default_rng(0)
    junk = tmp_path / "junk.pt"
    for i in range(300):
        body = rng.integers(0, 256, size=int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
        junk.write_bytes((b"\x80\x02" if i % 2 else b"") + body)
        with pytest.raises(MMKitError, match="junk.pt"):
            load_checkpoint(junk)


def test_ddp_two_processes_agree_with_one(tmp_path):
    script = Path(__file__).with_name("_toy.py")
    env_cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    for n, out in ((2, tmp_path / "two"), (1, tmp_path / "one")):
        r = subprocess.run(
            [*env_cmd, f"--nproc-per-node={n}", str(script), str(out), "32"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = tmp_path / "one/toy/ddp", tmp_path / "two/toy/ddp"
    w1, w2 = weights(one), weights(two)
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-5, atol=1e-6)
    m1 = (one / "metrics.csv").read_text().splitlines()[-1].split(",")
    m2 = (two / "metrics.csv").read_text().splitlines()[-1].split(",")
    header = (one / "metrics.csv").read_text().splitlines()[0].split(",")
    i = header.index("val/acc")
    assert m1[i] == m2[i]


def test_manual_optimization_steps_two_optimizers(tmp_path):
    from _toy import ToyGanTask

    res = Trainer(ToyGanTask(), cfg(tmp_path, task="toygan", epochs=8, lr=5e-3), progress=False).fit()
    ck = load_checkpoint(res.run_dir / "last.pt")
    assert set(ck["optimizers"]) == {"model", "disc"} and "disc" in ck["modules"]
    assert {"train/loss", "train/d_loss"} <= set(res.last_metrics)
    # the generator moved its samples toward the real mean (2, -1)
    task = ToyGanTask()
    task.setup(None, None)
    task.g.load_state_dict(ck["model"])
    with torch.no_grad():
        mean = task.g(torch.randn(512, 4)).mean(0)
    assert torch.dist(mean, torch.tensor([2.0, -1.0])) < 1.2


def test_weight_decay_applies_to_weights_only():
    from mmkit.engine import build_optimizer, decay_groups

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # frozen parameters are left out
    opt = build_optimizer("adamw", decay_groups(model, 0.05), lr=1e-3)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [model[3].weight.shape]
    assert {id(p) for p in plain["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[3].bias),
    }
    # one step: a bias with zero gradient is not pulled towards zero, a weight with zero gradient is
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    model[3].bias.data.fill_(1.0)
    before = model[3].weight.detach().clone()
    opt.step()
    assert torch.equal(model[3].bias, torch.ones(2))
    assert (model[3].weight.abs() < before.abs()).all()
