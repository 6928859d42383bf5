"""A tiny regression/classification task for engine tests (no BN, no dropout: DDP must match one process)."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from mmkit.engine import Task, TrainConfig, Trainer


def toy_data(n=256, d=8, classes=3, seed=123):
    w = torch.randn(
        d, classes, generator=torch.Generator().manual_seed(0)
    )  # one labelling rule for all splits
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    y = (x @ w).argmax(1)
    return TensorDataset(x, y)


class ToyTask(Task):
    name = "toy"
    monitor = ("val/acc", "max")

    def __init__(self, n=256, nan_at_epoch=None, noise=False, crash_at_epoch=None):
        self.n, self.nan_at_epoch, self.noise, self.crash_at_epoch = n, nan_at_epoch, noise, crash_at_epoch
        self.epoch = 0

    def setup(self, cfg, rt):  # the base Task hands net, train_ds and val_ds to the Trainer
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
        self.train_ds = toy_data(self.n)
        self.val_ds = toy_data(64, seed=7)

    def loss(self, model, batch):
        x, y = batch
        if self.noise:  # draws from the global RNG, like augmentation does
            x = x + 0.1 * torch.randn_like(x)
        out = model(x)
        loss = F.cross_entropy(out, y)
        if self.nan_at_epoch is not None and self.epoch + 1 >= self.nan_at_epoch:
            loss = loss * float("nan")
        return loss, {"acc": (out.argmax(1) == y).float().mean()}

    def evaluate(self, model, loader, rt):
        hits = torch.zeros(2)
        for x, y in loader:
            x, y = rt.move((x, y))
            hits += torch.tensor([(model(x).argmax(1) == y).sum().item(), len(y)])
        rt.all_reduce_([hits])
        return {"val/acc": 100 * (hits[0] / hits[1]).item()}

    def on_epoch_end(self, epoch, run_dir, rt):
        self.epoch = epoch
        if epoch == self.crash_at_epoch:  # dies before this epoch's checkpoint, like a killed process
            raise SystemExit("simulated crash")

    def checkpoint_meta(self):
        return {"kind": "toy"}


if (
    __name__ == "__main__"
):  # used by the DDP test under torchrun: python -m torch.distributed.run ... _toy.py OUT BS
    out, bs = sys.argv[1], int(sys.argv[2])
    cfg = TrainConfig(
        task="toy", project=out, name="ddp", epochs=3, batch_size=bs, lr=0.05, optimizer="sgd", exist_ok=True
    )
    Trainer(ToyTask(), cfg, progress=False).fit()


class ToyGanTask(Task):
    """Two modules, two optimizers, stepped by hand: the shape of every GAN task."""

    name = "toygan"
    monitor = ("train/loss", "min")
    manual_optimization = True

    def setup(self, cfg, rt):
        self.g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.d = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
        self.real = TensorDataset(torch.randn(256, 2) * 0.5 + torch.tensor([2.0, -1.0]))

    def modules(self):
        return {"model": self.g, "disc": self.d}

    def optimizers(self, cfg):
        return {
            "model": torch.optim.Adam(self.g.parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
            "disc": torch.optim.Adam(self.d.parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
        }

    def train_dataset(self):
        return self.real

    def training_step(self, ctx, batch):
        (real,) = batch
        g, d = ctx.models["model"], ctx.models["disc"]
        z = torch.randn(real.shape[0], 4)
        with ctx.autocast():
            fake = g(z)
            ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            d_loss = F.binary_cross_entropy_with_logits(d(real), ones) + F.binary_cross_entropy_with_logits(
                d(fake.detach()), zeros
            )
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        with ctx.autocast():
            g_loss = F.binary_cross_entropy_with_logits(d(fake), ones)
        ctx.backward(g_loss, "model")
        ctx.step("model")
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach()}
