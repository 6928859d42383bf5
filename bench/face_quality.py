"""Face verification of an embedding trained through mmkit's engine, on people it never saw; and embedding speed.

Target (issue 4): on the held-out synthetic identities, 10-fold verification accuracy >= 95 % (the LFW protocol:
each fold's threshold chosen on the other nine). The setting: ``synthetic-faces-large`` (1,000 training people × 12
faces at 64 px, drawn by ``mmkit.data.synthetic_faces``) and the 60 held-out people of ``synthetic-faces``, 6,000
pairs in 10 folds. The run is ``Trainer(FaceTask(...), TrainConfig(...)).fit()`` (what ``mmkit face train`` does),
then ``mmkit.tasks.face.evaluate`` on best.pt. Training wall time is the whole ``fit()``, drawing the faces included.

Speed: embeddings/s (inference, batch 64) of facenet-light at 64 px and FaceNet's Inception-ResNet-v1 at 160 px.

    .venv/bin/python bench/face_quality.py [--quick] [--set FIELD=VALUE ...] [--device cpu|cuda]
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from common import (
    base_parser,
    environment,
    load_average,
    print_table,
    recipe_overrides,
    set_threads,
    timed,
    write_result,
)

from mmkit.engine import TrainConfig, Trainer
from mmkit.models import get_model
from mmkit.tasks.face import FaceTask, evaluate


@dataclass
class Recipe:
    data: str = "synthetic-faces-large"
    model: str = "facenet-light"
    img_size: int = 64
    embedding_dim: int = 128
    loss: str = "triplet"
    mining: str = "semihard"
    images_per_person: int = 4
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-2
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    max_steps_per_epoch: int | None = None
    target_accuracy: float = 0.95


QUICK = {"data": "synthetic-faces", "epochs": 1, "max_steps_per_epoch": 3}


def train_and_eval(recipe: Recipe, seed: int, workdir: Path, device: str) -> dict[str, Any]:
    task = FaceTask(
        data=recipe.data,
        model=recipe.model,
        img_size=recipe.img_size,
        embedding_dim=recipe.embedding_dim,
        loss_type=recipe.loss,
        mining=recipe.mining,
        images_per_person=recipe.images_per_person,
    )
    cfg = TrainConfig(
        task="face",
        name=f"quality-s{seed}",
        project=str(workdir),
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        optimizer=recipe.optimizer,
        weight_decay=recipe.weight_decay,
        schedule=recipe.schedule,
        warmup=recipe.warmup_epochs,
        device=device,
        seed=seed,
        max_steps=recipe.max_steps_per_epoch,
    )
    load_before = load_average()
    t0 = time.perf_counter()
    fit = Trainer(task, cfg, progress=False).fit()
    train_s = time.perf_counter() - t0
    m = evaluate(str(fit.run_dir / "best.pt"), recipe.data, device=device, out=fit.run_dir / "eval")
    with (fit.run_dir / "metrics.csv").open() as f:
        epochs = list(csv.DictReader(f))
    return {
        "seed": seed,
        "train_wall_s": round(train_s, 1),
        "pairs": m["pairs"],
        "accuracy": round(m["accuracy"], 4),
        "accuracy_std": round(m["accuracy_std"], 4),
        "val_at_far_1e-3": round(m["val_far"], 4),
        "auc": round(m["auc"], 4),
        "threshold": round(m["threshold"], 4),
        "best_epoch": fit.best_epoch,
        "epoch_s": [round(float(r["time"]), 1) for r in epochs],
        "train_images_per_s": [round(float(r["train/samples_per_s"]), 1) for r in epochs],
        "val_acc": [round(float(r["val/acc"]), 2) for r in epochs],
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


@torch.no_grad()
def embed_speed(device: torch.device, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for name, size in (("facenet-light", 64), ("facenet", 160)):
        net = get_model(name, 0).to(device).eval()
        batch = 4 if quick else 64
        x = torch.randn(batch, 3, size, size, device=device)
        s = timed(lambda net=net, x=x: net(x), device, 1 if quick else 2, 2 if quick else 5)
        params = sum(p.numel() for p in net.parameters())
        rows.append(
            {
                "model": name,
                "img": size,
                "batch": batch,
                "params": params,
                "embeddings_per_s": round(batch / s, 1),
            }
        )
    return rows


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field"
    )
    p.add_argument("--keep-runs", type=Path, help="keep the run directory here (default: a temporary one)")
    p.add_argument("--speed-only", action="store_true", help="only the embedding speed")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(args.threads)

    overrides = recipe_overrides(Recipe, args.set)
    recipe = replace(Recipe(), **{**(QUICK if args.quick else {}), **overrides})
    device = torch.device(args.device)
    env = environment(device, args.threads if device.type == "cpu" else None)
    result: dict[str, Any] | None = None
    met = None
    if not args.speed_only:
        with tempfile.TemporaryDirectory(prefix="mmkit-bench-") as tmp:
            result = train_and_eval(recipe, args.seed, args.keep_runs or Path(tmp), args.device)
        met = result["accuracy"] >= recipe.target_accuracy
        print_table(
            ["model", "data", "recipe", "10-fold acc", "VAL@FAR=1e-3", "AUC", "train s", "target", "met"],
            [
                [
                    f"{recipe.model} @{recipe.img_size}",
                    recipe.data,
                    f"{recipe.epochs} ep, bs {recipe.batch_size} (K={recipe.images_per_person}), {recipe.loss} "
                    f"{recipe.mining}, {recipe.optimizer} {recipe.lr:g} {recipe.schedule}",
                    f"{result['accuracy']:.4f} ± {result['accuracy_std']:.4f}",
                    result["val_at_far_1e-3"],
                    result["auc"],
                    result["train_wall_s"],
                    f">= {recipe.target_accuracy:g}",
                    "yes" if met else "no",
                ]
            ],
            title=f"Face verification on 60 held-out synthetic people, {env['device']}"
            + (" (quick: not a real result)" if args.quick else ""),
        )
    speed = embed_speed(device, args.quick)
    print_table(
        ["model", "img", "batch", "params", "embeddings/s"],
        [[r["model"], r["img"], r["batch"], r["params"], r["embeddings_per_s"]] for r in speed],
        title=f"Embedding speed (inference), {env['device']}",
    )
    name = f"face_quality_{device.type}" if device.type != "cpu" else "face_quality"
    path = write_result(
        name,
        {
            "benchmark": name,
            "quick": args.quick,
            "environment": env,
            "recipe": asdict(recipe),
            "result": result,
            "meets_target": met,
            "embedding_speed": speed,
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
