"""Face verification of an embedding trained through mmkit's engine, on people it never saw; and embedding speed.

Target (issue 4): on the held-out synthetic identities, 10-fold verification accuracy >= 95 % (the LFW protocol:
each fold's threshold chosen on the other nine). The setting: ``synthetic-faces-large`` (1,000 training people × 12
faces at 64 px, drawn by ``mmkit.data.synthetic_faces``) and the 60 held-out people of ``synthetic-faces``, 6,000
pairs in 10 folds. The run trains with the task's recipe (``mmkit.tasks.face.options.RECIPES``: what ``mmkit face
train --data synthetic-faces-large`` runs with no other flag), then ``mmkit.tasks.face.evaluate`` on best.pt.
Training wall time is the whole ``fit()``, drawing the faces included.

Speed: embeddings/s (inference, batch 64) of facenet-light at 64 px and FaceNet's Inception-ResNet-v1 at 160 px.

    .venv/bin/python bench/face_quality.py [--quick] [--set FIELD=VALUE ...] [--device cpu|cuda]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from common import base_parser, environment, parse_args, print_table, save_result, timed
from training import Trained, recipe_config, recipe_record, runs_dir, settings, train

from mmkit.models import get_model
from mmkit.tasks.face import evaluate

DATA = "synthetic-faces-large"
QUICK = {"data": "synthetic-faces", "epochs": 1, "max_steps": 3}


@dataclass
class Targets:
    """The issue's target (the script's own; the recipe is the task's)."""

    target_accuracy: float = 0.95


def train_and_eval(
    overrides: dict[str, Any], seed: int, workdir: Path, device: str
) -> tuple[Trained, dict[str, Any]]:
    cfg = recipe_config(
        "face", DATA, run=f"quality-s{seed}", workdir=workdir, seed=seed, device=device, **overrides
    )
    t = train(cfg)
    m = evaluate(str(t.best), t.task.data, device=device, out=t.fit.run_dir / "eval")
    return t, {
        "seed": seed,
        "pairs": m["pairs"],
        "accuracy": round(m["accuracy"], 4),
        "accuracy_std": round(m["accuracy_std"], 4),
        "val_at_far_1e-3": round(m["val_far"], 4),
        "auc": round(m["auc"], 4),
        "threshold": round(m["threshold"], 4),
        "val_acc": t.curve("val/acc"),
        **t.record(),
    }


def describe(t: Trained) -> str:
    """The recipe in one line, for the table."""
    cfg, task = t.cfg, t.task
    return (
        f"{cfg.epochs} ep, bs {cfg.batch_size} (K={task.images_per_person}), {task.loss_type} {task.mining}, "
        f"{cfg.optimizer} {cfg.lr:g} {cfg.schedule}"
    )


@torch.no_grad()
def embed_speed(device: torch.device, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for name, size in (("facenet-light", 64), ("facenet", 160)):
        net = get_model(name).to(device).eval()
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
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--speed-only", action="store_true", help="only the embedding speed")
    args = parse_args(p)
    targets, overrides = settings(Targets(), args.set, QUICK if args.quick else None)
    device = torch.device(args.device)
    env = environment(device, args.threads if device.type == "cpu" else None)
    result: dict[str, Any] | None = None
    recipe, met = None, None
    if not args.speed_only:
        with runs_dir(args.keep_runs) as workdir:
            t, result = train_and_eval(overrides, args.seed, workdir, args.device)
        recipe = {**recipe_record(t.cfg), **asdict(targets)}
        met = result["accuracy"] >= targets.target_accuracy
        print_table(
            ["model", "data", "recipe", "10-fold acc", "VAL@FAR=1e-3", "AUC", "train s", "target", "met"],
            [
                [
                    f"{t.task.model} @{t.task.meta.img_size}",
                    t.task.data,
                    describe(t),
                    f"{result['accuracy']:.4f} ± {result['accuracy_std']:.4f}",
                    result["val_at_far_1e-3"],
                    result["auc"],
                    result["train_wall_s"],
                    f">= {targets.target_accuracy:g}",
                    "yes" if met else "no",
                ]
            ],
            title=f"Face verification on 60 held-out synthetic people, {env['device']}",
            quick=args.quick,
        )
    speed = embed_speed(device, args.quick)
    print_table(
        ["model", "img", "batch", "params", "embeddings/s"],
        [[r["model"], r["img"], r["batch"], r["params"], r["embeddings_per_s"]] for r in speed],
        title=f"Embedding speed (inference), {env['device']}",
    )
    name = f"face_quality_{device.type}" if device.type != "cpu" else "face_quality"
    save_result(
        name,
        env,
        quick=args.quick,
        recipe=recipe,
        result=result,
        meets_target=met,
        embedding_speed=speed,
    )


if __name__ == "__main__":
    main()
