"""LAPGAN and Progressive GAN (issue 19): FID/KID on their builtins against the real-image floor and the naive
Gaussian generator, each beside DCGAN, on the CPU.

- ``mnist5k``: LAPGAN (7 -> 14 -> 28, finer generators of 32 maps) and DCGAN, the same epochs, batch 64, Adam
  (0.5, 0.999) at 2e-4 constant; FID/KID against the 1,000 test digits with the features of a smallcnn trained on
  mnist5k (``mmkit.tasks.generate.feature_network``), samples from last.pt.
- ``synthetic-faces``: ProGAN with the builtin's recipe (``mmkit generate train --data synthetic-faces``: 4 -> 64 px,
  900 images a phase, 3 epochs at batch 16, lr 1e-3), then DCGAN (batch 64, lr 2e-4) for the same training time:
  a short DCGAN probe measures its speed, and it trains as many steps as fit in the seconds ProGAN trained
  (validation excluded, both from metrics.csv). FID/KID against the 720 faces of the 60 held-out people, with a
  smallcnn that tells the 240 training people apart as the feature network.
Floor and naive generator as ``generate_quality.references`` has them: as many real training images as test images,
and as many Gaussian samples with those training images' per-pixel mean and covariance. The runs are minutes long on
a shared 2-core CPU: a check that both models learn, not their papers' budgets (800,000 images a ProGAN phase).

    OMP_WAIT_POLICY=passive .venv/bin/python bench/pyramid_gans.py [--quick] [--threads 1] [--set lapgan_epochs=5]
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import base_parser, environment, parse_args, print_table, save_result
from generate_quality import references
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.tasks.generate import evaluate, predictor

DIGITS, FACES = "mnist5k", "synthetic-faces"
DCGAN = {"model": "dcgan", "batch_size": 64, "lr": 2e-4}  # DCGAN's settings (the fashion-mnist recipe's)
QUICK = {"epochs": 1, "max_steps": 3}


@dataclass
class Bench:
    """The script's own settings (ProGAN trains with the synthetic-faces recipe)."""

    lapgan_epochs: int = 5  # LAPGAN and DCGAN on mnist5k
    lapgan_width: int = 32  # maps of LAPGAN's finer generators (the model's default: 64)
    probe_steps: int = 10  # DCGAN steps timed on the faces before its real run
    n_eval: int = 1000  # samples (and real test images, at most the test split) that FID and KID compare


def train_seconds(t) -> float:
    """Seconds spent in training steps (validation, checkpoints and data loading excluded): each epoch's images over
    its training speed, from metrics.csv."""
    per_epoch = (t.cfg.max_steps or len(t.task.dataset.train) // t.cfg.batch_size) * t.cfg.batch_size
    return sum(per_epoch / s for s in t.curve("train/samples_per_s", 3))


def run(
    data: str, name: str, values: dict[str, Any], bench: Bench, seed: int, workdir: Path
) -> dict[str, Any]:
    t = train(recipe_config("generate", data, run=name, workdir=workdir, seed=seed, **values))
    ev = evaluate(str(t.fit.run_dir / "last.pt"), n=bench.n_eval, device="cpu", out=t.fit.run_dir / "eval")
    ev.pop("out_dir")
    return {
        "model": t.cfg.task_args["model"],
        "data": data,
        "epochs": t.fit.epochs,
        "images": t.fit.epochs
        * (t.cfg.max_steps or len(t.task.dataset.train) // t.cfg.batch_size)
        * t.cfg.batch_size,
        "settings": recipe_record(t.cfg),
        "train_step_s": round(train_seconds(t), 1),
        "params": sum(p.numel() for p in t.task.net.parameters()),
        "eval": ev,
        **t.record(),
    }


def same_time(progan: dict[str, Any], bench: Bench, overrides, seed: int, workdir: Path) -> dict[str, Any]:
    """DCGAN's steps for ProGAN's training seconds: a probe run times its steps, then (epochs, steps per epoch)."""
    probe = train(
        recipe_config("generate", FACES, run="dcgan-probe", workdir=workdir, seed=seed,
                      **{**DCGAN, "epochs": 1, "max_steps": bench.probe_steps})
    )  # fmt: skip
    step_s = train_seconds(probe) / bench.probe_steps
    steps = max(1, round(progan["train_step_s"] / step_s))
    per_epoch = len(probe.task.dataset.train) // DCGAN["batch_size"]
    epochs = math.ceil(steps / per_epoch)
    return {**DCGAN, "epochs": epochs, "max_steps": math.ceil(steps / epochs), **overrides}


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    args = parse_args(p)
    bench, overrides = settings(
        Bench(n_eval=200, probe_steps=2) if args.quick else Bench(), args.set, QUICK if args.quick else None
    )
    if args.quick:
        os.environ.setdefault("MMKIT_HOME", tempfile.mkdtemp(prefix="mmkit-home-"))
        predictor.FACE_NET_TRAINING = (1, 64)  # a quick run checks the script, not the feature network
    env = environment("cpu", args.threads)
    refs, results = {}, []
    with runs_dir(args.keep_runs) as workdir:
        t0 = time.perf_counter()
        refs[DIGITS] = references(DIGITS, bench.n_eval)
        print(f"{DIGITS} references in {time.perf_counter() - t0:.0f} s", flush=True)
        lap = {"epochs": bench.lapgan_epochs, "batch_size": 64, **overrides}
        for name, values in (
            ("lapgan", {"model": "lapgan", "model_kwargs": {"width": bench.lapgan_width}, **lap}),
            ("dcgan-digits", {**DCGAN, **lap}),
        ):
            results.append(run(DIGITS, name, values, bench, args.seed, workdir))
            print(f"{name}: {results[-1]['eval']} in {results[-1]['train_wall_s']} s", flush=True)
        t0 = time.perf_counter()
        refs[FACES] = references(FACES, bench.n_eval)
        print(f"{FACES} references in {time.perf_counter() - t0:.0f} s", flush=True)
        results.append(run(FACES, "progan", dict(overrides), bench, args.seed, workdir))
        print(f"progan: {results[-1]['eval']} in {results[-1]['train_wall_s']} s", flush=True)
        dcgan = same_time(results[-1], bench, overrides, args.seed, workdir)
        results.append(run(FACES, "dcgan-faces", dcgan, bench, args.seed, workdir))
        print(f"dcgan: {results[-1]['eval']} in {results[-1]['train_wall_s']} s", flush=True)
    report(refs, results, bench, env, args.quick)


def report(refs, results, bench, env, quick) -> None:
    for data in (DIGITS, FACES):
        ref = refs[data]
        rows = [
            [name, round(v["fid"], 3), round(v["kid"], 4), "-", "-", "-"]
            for name, v in ref.items()
            if isinstance(v, dict)
        ]
        rows += [
            [r["model"], round(r["eval"]["fid"], 3), round(r["eval"]["kid"], 4), r["epochs"], r["images"],
             r["train_step_s"]]
            for r in results if r["data"] == data
        ]  # fmt: skip
        print_table(
            ["generator", "FID", "KID", "epochs", "images", "train s"],
            rows,
            title=f"{data}, {ref['images']} test images; features: {ref['feature_network']}",
            quick=quick,
        )
    save_result("pyramid_gans", env, quick=quick, bench=asdict(bench), references=refs, results=results)


if __name__ == "__main__":
    main()
