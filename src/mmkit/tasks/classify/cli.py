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


@app.command("eval", epilog="Example: mmkit classify eval --weights runs/classify/exp/best.pt --data digits")
def eval_(
    weights: c.Weights,
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset to evaluate on.")],
    model: Model = None,
    split: Annotated[
        str | None, typer.Option("--split", help="train | val | test (default: test, else val)")
    ] = None,
    batch_size: c.BatchSize = 256,
    device: c.Device = "auto",
    precision: c.Precision = "fp32",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for metrics.json and the confusion matrix.")
    ] = None,
    json: c.Json = False,
) -> None:
    """Top-1/top-5, per-class accuracy and a confusion matrix PNG."""
    from mmkit.tasks.classify.predictor import evaluate

    r = evaluate(
        weights,
        data,
        model=model,
        split=split,
        batch_size=batch_size,
        device=device,
        precision=precision,
        out=out,
    )
    summary = (
        f"classify eval: {r['images']} {r['split']} images  top1 {r['top1']:.2f}%  top5 {r['top5']:.2f}%  "
        f"loss {r['loss']:.4f} -> {Path(r['confusion_matrix']).parent}"
    )
    c.emit(summary, r, json)


@app.command(epilog="Example: mmkit classify predict --model efficientnet_lite0 --weights imagenet photo.jpg")
def predict(
    images: c.Images,
    weights: c.Weights,
    model: Model = None,
    topk: Annotated[int, typer.Option("--topk", "-k", help="Labels per image.")] = 5,
    device: c.Device = "auto",
    save_dir: Annotated[Path | None, typer.Option("--save-dir", help="Write predictions.png here.")] = None,
    json: c.Json = False,
) -> None:
    """Top-k labels with probabilities for each image."""
    from mmkit.tasks.classify.predictor import predict as run

    results, failures = run(weights, images, model=model, topk=topk, device=device, save_dir=save_dir)
    c.emit_items(
        "predictions",
        results,
        failures,
        json,
        lambda r: f"{r['path']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"]),
        f"classify predict: {len(results)} images" + (f" -> {save_dir}/predictions.png" if save_dir else ""),
    )


c.export_command(
    app,
    "classify",
    example="mmkit classify export --weights runs/classify/exp/best.pt --format onnx",
    model=Model,
)
