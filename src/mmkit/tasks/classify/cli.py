"""`mmkit classify train|eval|predict|export`: options parsed here, the work done by the task's predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.errors import MMKitError
from mmkit.tasks.classify.options import ClassifyOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)

Model = Annotated[
    str | None, typer.Option("--model", "-m", help="Registered model name (see `mmkit models list`).")
]


def _check(task_args: dict, engine_args: dict) -> None:
    if engine_args["init"] and task_args["weights"]:
        raise MMKitError("--init would overwrite the --weights just loaded: give one of them")


c.train_command(
    app,
    "classify",
    ClassifyOptions,
    example="mmkit classify train --data digits   (the digits recipe: 15 epochs, ~99 % top-1)",
    extra_check=_check,
)


c.command(
    app,
    "eval",
    "mmkit.tasks.classify.predictor:evaluate",
    "weights data split device precision out",
    doc="Top-1/top-5, per-class accuracy and a confusion matrix PNG (split: default test, else val).",
    example="mmkit classify eval --weights runs/classify/exp/best.pt --data digits",
    show=c.summary(
        lambda r: (
            f"classify eval: {r['images']} {r['split']} images  top1 {r['top1']:.2f}%  top5 {r['top5']:.2f}%  "
            f"loss {r['loss']:.4f} -> {Path(r['confusion_matrix']).parent}"
        )
    ),
    model=(Model, None),
    batch_size=256,
)

c.command(
    app,
    "predict",
    "mmkit.tasks.classify.predictor:predict",
    "images weights device save_dir",
    doc="Top-k labels with probabilities for each image (--save-dir: predictions.png).",
    example="mmkit classify predict --model efficientnet_lite0 --weights imagenet photo.jpg",
    show=c.items(
        "predictions",
        lambda r: f"{r['path']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"]),
        lambda results, o: (
            f"classify predict: {len(results)} images"
            + (f" -> {o['save_dir']}/predictions.png" if o["save_dir"] else "")
        ),
    ),
    model=(Model, None),
    topk=c.own("--topk -k", "Labels per image.", int, 5),
)

c.export_command(
    app,
    "classify",
    model=(Model, None),
)
