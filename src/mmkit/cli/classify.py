"""`mmkit classify train|eval|predict|export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.errors import MMKitError

app = typer.Typer(help="Image classification: train, evaluate, predict, export.", no_args_is_help=True)

Model = Annotated[
    str | None, typer.Option("--model", "-m", help="Registered model name (see `mmkit models list`).")
]


@app.command(epilog="Example: mmkit classify train --data digits --model smallcnn --epochs 10")
@c.engine_options()
def train(
    data: Annotated[
        str, typer.Option("--data", "-d", help="Builtin name, ImageFolder tree, CIFAR or IDX folder.")
    ] = "",
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name (`mmkit models list`).")
    ] = "smallcnn",
    weights: Annotated[
        str | None, typer.Option("--weights", "-w", help="imagenet, or a checkpoint / state_dict file.")
    ] = None,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Input size (default: the data's or the model's).")
    ] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", help="Fraction of train held out for validation.")
    ] = 0.1,
    freeze_backbone: Annotated[
        bool, typer.Option("--freeze-backbone", help="Train only the new head.")
    ] = False,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing")] = 0.0,
    width: Annotated[
        float, typer.Option("--width", help="smallcnn's channel multiplier (2: 32/64/128 channels).")
    ] = 1.0,
    model_arg: c.ModelArg = None,
    augment: Annotated[
        str,
        typer.Option(
            "--augment",
            help="crop-flip: random crop (padded for small images, resized for photos) + flip where the data "
            "allows; flip: flip only (short schedules on small models); none.",
        ),
    ] = "crop-flip",
    *,
    engine: c.EngineOptions,
) -> None:
    """Train a classifier; writes runs/classify/<name>/ (checkpoints, metrics.csv, curves, report.html)."""
    from mmkit.tasks.classify import ClassifyTask

    def task_args() -> dict:
        if not data:
            raise MMKitError("--data is required (a builtin name such as digits, or a folder)")
        if engine.init and weights:
            raise MMKitError("--init would overwrite the --weights just loaded: give one of them")
        return dict(
            data=data,
            model=model,
            weights=weights,
            img_size=img_size,
            val_split=val_split,
            freeze_backbone=freeze_backbone,
            label_smoothing=label_smoothing,
            augment=augment,
            model_kwargs=c.model_kwargs(width, model_arg),
        )

    c.run_train("classify", engine, ClassifyTask, task_args)


@app.command("eval", epilog="Example: mmkit classify eval --weights runs/classify/exp/best.pt --data digits")
def eval_(
    weights: Annotated[
        str, typer.Option("--weights", "-w", help="Checkpoint, or a weights name with --model.")
    ],
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
    from mmkit.tasks.classify import evaluate

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
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    weights: Annotated[
        str, typer.Option("--weights", "-w", help="Checkpoint, or a weights name with --model.")
    ],
    model: Model = None,
    topk: Annotated[int, typer.Option("--topk", "-k", help="Labels per image.")] = 5,
    device: c.Device = "auto",
    save_dir: Annotated[Path | None, typer.Option("--save-dir", help="Write predictions.png here.")] = None,
    json: c.Json = False,
) -> None:
    """Top-k labels with probabilities for each image."""
    from mmkit.tasks.classify import predict as run

    results, failures = run(weights, images, model=model, topk=topk, device=device, save_dir=save_dir)
    if json:
        c.emit("", {"predictions": results, "errors": [{"path": p, "error": e} for p, e in failures]}, True)
    else:
        for r in results:
            tops = ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"])
            typer.echo(f"{r['path']}: {tops}")
        typer.echo(
            f"classify predict: {len(results)} images"
            + (f" -> {save_dir}/predictions.png" if save_dir else "")
        )
    if failures:
        raise MMKitError(
            f"{failures[0][1]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )


@app.command(epilog="Example: mmkit classify export --weights runs/classify/exp/best.pt --format onnx")
def export(
    weights: Annotated[
        str, typer.Option("--weights", "-w", help="Checkpoint, or a weights name with --model.")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx | torchscript")] = "onnx",
    model: Model = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: beside the weights).")
    ] = None,
    json: c.Json = False,
) -> None:
    """Export to ONNX or TorchScript and check the result against PyTorch (ONNX Runtime for ONNX)."""
    from mmkit.tasks.classify import export as run

    path, diff = run(weights, format, model=model, out=out)
    checked = f", max abs difference vs PyTorch {diff:.2e}" if diff is not None else ""
    c.emit(
        f"classify export: {path}{checked}", {"path": str(path), "format": format, "max_abs_diff": diff}, json
    )
