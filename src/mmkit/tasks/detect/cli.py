"""`mmkit detect train|eval|predict|export|anchors`: options parsed here, the work done by the task's predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.tasks.detect.options import DetectOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)

ImgSize = c.option_alias(DetectOptions, "img_size")
Model = Annotated[str | None, typer.Option("--model", "-m", help="With a weights name: yolov3-tiny (coco).")]


c.train_command(
    app,
    "detect",
    DetectOptions,
    example="mmkit detect train --data digit-scenes   (the README's recipe: YOLOv3-tiny at width 0.5, 256 px, 30 epochs)",
)


c.command(
    app,
    "eval",
    "mmkit.tasks.detect.predictor:evaluate",
    "weights data device out",
    doc="COCO mAP@[.5:.95], mAP@.5 and per-class AP (pycocotools), and a predictions file in the COCO results format.",
    example="mmkit detect eval --weights runs/detect/exp/best.pt --data digit-scenes",
    show=c.summary(
        lambda r: (
            f"detect eval: {r['images']} {r['split']} images  mAP@[.5:.95] {r['map']:.4f}  "
            f"mAP@.5 {r['map50']:.4f} -> {r['predictions']}"
        )
    ),
    split="val",
    img_size=(ImgSize, None),
    batch_size=16,
    multi_label=c.own(
        "--multi-label/--single-label",
        "A box may count for every class above the threshold (YOLOv5/ultralytics validators) or only its best.",
        bool,
        True,
    ),
)


def _boxes(r: dict) -> str:
    found = "; ".join(f"{d['class']} {d['score']:.2f} {d['box']}" for d in r["detections"])
    return f"{r['path']}: {found or 'nothing found'}"


c.command(
    app,
    "predict",
    "mmkit.tasks.detect.predictor:predict",
    "images weights device",
    doc="Boxes (x1, y1, x2, y2 in pixels; a JSON list with --json), with score and class name, for each image.",
    example="mmkit detect predict --weights runs/detect/exp/best.pt scene.png --save-dir out/\n\n"
    "mmkit detect predict --model yolov3-tiny --weights coco photo.jpg   (Darknet's COCO YOLOv3-tiny; `make weights`)",
    show=c.items(
        "predictions",
        _boxes,
        lambda results, o: (
            f"detect predict: {sum(len(r['detections']) for r in results)} objects in "
            f"{len(results)} images" + (f" -> {o['save_dir']}" if o["save_dir"] else "")
        ),
    ),
    model=(Model, None),
    conf=c.own("--conf", "Score threshold.", float, 0.25),
    iou=c.own("--iou", "NMS IoU threshold.", float, 0.45),
    img_size=(ImgSize, None),
    letterbox=c.own(
        "--letterbox/--no-letterbox",
        "Fit images to the input by letterboxing with gray padding (pjreddie's Darknet) or by a plain resize "
        "(OpenCV's blobFromImage); default: the detector's own, letterbox for all of mmkit's.",
        bool | None,
        None,
    ),
    save_dir=None,
)

c.export_command(
    app,
    "detect",
    doc="Export with box decoding inside the graph (NMS stays outside), checked against PyTorch (ONNX Runtime for ONNX).",
    model=(Model, None),
    img_size=(ImgSize, None),
)


@app.command(
    epilog="Examples: mmkit detect convert --from darknet --to mmkit yolov3-tiny.weights yolov3-tiny.cfg coco.names "
    "--out tiny.pt\n\nmmkit detect convert --from mmkit --to darknet runs/detect/exp/best.pt --out exp.weights"
)
def convert(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="From darknet: the .weights, and its .cfg and .names where they are not beside it with the same "
            "name. From mmkit: a detect checkpoint, or model:weights (yolov3-tiny:coco)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The checkpoint, or the .weights (.cfg and .names written beside it)."
        ),
    ],
    source_format: Annotated[str, typer.Option("--from", help="darknet | mmkit")] = "darknet",
    target_format: Annotated[str, typer.Option("--to", help="mmkit | darknet")] = "mmkit",
    json: c.Json = False,
) -> None:
    """Darknet .cfg + .weights (YOLOv3, YOLOv3-tiny) to an mmkit checkpoint, or a YOLOv3 detector to Darknet files."""
    from mmkit.tasks.detect.predictor import convert as run

    r = run(sources, out, source_format=source_format, target_format=target_format)
    written = ", ".join(r["files"].values())
    c.emit(f"detect convert: {r['model']} ({r['classes']} classes, {r['img_size']} px) -> {written}", r, json)


@app.command(epilog="Example: mmkit detect anchors --data digit-scenes --img-size 256 --tiny")
def anchors(
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset whose training boxes are clustered.")],
    k: Annotated[
        int | None, typer.Option("--k", help="Number of anchors (default 9, or 6 with --tiny).")
    ] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Anchors for YOLOv3-tiny (2 scales).")] = False,
    img_size: Annotated[int, typer.Option("--img-size", help="Training input size.")] = 416,
    json: c.Json = False,
) -> None:
    """k-means anchors (IoU distance) for a dataset, and how many boxes they and the default anchors can match."""
    from mmkit.tasks.detect.anchor_fitting import anchors as run

    r = run(data, k=k, tiny=tiny, img_size=img_size)
    scales = " | ".join(", ".join(f"({w:.0f},{h:.0f})" for w, h in s) for s in r["anchors"])
    summary = (
        f"anchors at {img_size}px from {r['boxes']} boxes: {scales}  "
        f"(best possible recall {r['recall']:.3f}; default anchors {r['recall_default']:.3f})"
    )
    c.emit(summary, r, json)
