"""`mmkit caption train|eval|predict|export`: options parsed here, the work done by the task's predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.tasks.caption.options import CaptionOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)

Beam = Annotated[int, typer.Option("--beam", help="Beam width (1: greedy).")]


c.train_command(
    app,
    "caption",
    CaptionOptions,
    example="mmkit caption train --data caption-scenes   (the measured recipe: Show-Attend-and-Tell, 20 epochs)",
)


@app.command(
    "eval", epilog="Example: mmkit caption eval --weights runs/caption/exp/best.pt --data caption-scenes"
)
def eval_(
    weights: c.Weights,
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset whose test split is captioned.")],
    beam: Beam = 3,
    split: Annotated[str, typer.Option("--split", help="test, val or train.")] = "test",
    batch_size: c.BatchSize = 64,
    device: c.Device = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for metrics.json and captions.json.")
    ] = None,
    json: c.Json = False,
) -> None:
    """BLEU-1..4 (0-1 scale) and CIDEr-D, computed as the COCO caption evaluation does."""
    from mmkit.tasks.caption.predictor import evaluate

    r = evaluate(weights, data, beam=beam, split=split, batch_size=batch_size, device=device, out=out)
    bleu = "  ".join(f"B{k} {r[f'BLEU-{k}']:.3f}" for k in range(1, 5))
    c.emit(
        f"caption eval: {r['images']} {r['split']} images, beam {beam}  {bleu}  CIDEr-D {r['CIDEr-D']:.3f}"
        f" -> {r['out_dir']}",
        r,
        json,
    )


@app.command(
    epilog="Example: mmkit caption predict --weights runs/caption/exp/best.pt photo.jpg --save-dir out/"
)
def predict(
    images: c.Images,
    weights: c.Weights,
    beam: Beam = 3,
    device: c.Device = "auto",
    save_dir: Annotated[
        Path | None,
        typer.Option("--save-dir", help="Write each image with its caption (and attention maps) as a PNG."),
    ] = None,
    json: c.Json = False,
) -> None:
    """A caption (or a paragraph) for each image."""
    from mmkit.tasks.caption.predictor import predict as run

    results, failures = run(weights, [str(p) for p in images], beam=beam, device=device, save_dir=save_dir)
    c.emit_items(
        "captions",
        results,
        failures,
        json,
        lambda r: f"{r['image']}: {r['caption']}",
        f"caption predict: {len(results)} images" + (f" -> {save_dir}" if save_dir else ""),
    )


c.export_command(
    app,
    "caption",
    example="mmkit caption export --weights runs/caption/exp/best.pt --format onnx",
    doc=(
        "Export the encoder (uint8 images -> start state) and one decoding step (previous tokens and state ->"
        " next-word logits and state), each checked against PyTorch; the decoding loop (greedy or beam "
        "search) stays outside: mmkit.tasks.caption.exported.greedy_decode runs it over ONNX Runtime."
    ),
)
