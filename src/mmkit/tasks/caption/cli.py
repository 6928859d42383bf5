"""`mmkit caption train|eval|predict|export`: options parsed here, the work done by the task's predictor."""

from __future__ import annotations

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


c.command(
    app,
    "eval",
    "mmkit.tasks.caption.predictor:evaluate",
    "weights data batch_size device out",
    doc="BLEU-1..4 (0-1 scale) and CIDEr-D of the captions of a split (default: test), computed as the COCO caption "
    "evaluation does; metrics.json and captions.json in --out.",
    example="mmkit caption eval --weights runs/caption/exp/best.pt --data caption-scenes",
    show=c.summary(
        lambda r: (
            f"caption eval: {r['images']} {r['split']} images, beam {r['beam']}  "
            + "  ".join(f"B{k} {r[f'BLEU-{k}']:.3f}" for k in range(1, 5))
            + f"  CIDEr-D {r['CIDEr-D']:.3f} -> {r['out_dir']}"
        )
    ),
    beam=(Beam, 3),
    split="test",
)

c.command(
    app,
    "predict",
    "mmkit.tasks.caption.predictor:predict",
    "images weights device save_dir",
    doc="A caption (or a paragraph) for each image; --save-dir: each image with its caption (and attention maps).",
    example="mmkit caption predict --weights runs/caption/exp/best.pt photo.jpg --save-dir out/",
    show=c.items(
        "captions",
        lambda r: f"{r['image']}: {r['caption']}",
        lambda results, o: (
            f"caption predict: {len(results)} images" + (f" -> {o['save_dir']}" if o["save_dir"] else "")
        ),
    ),
    beam=(Beam, 3),
)


c.export_command(
    app,
    "caption",
    doc=(
        "Export the encoder (uint8 images -> start state) and one decoding step (previous tokens and state ->"
        " next-word logits and state), each checked against PyTorch; the decoding loop (greedy or beam "
        "search) stays outside: mmkit.tasks.caption.exported.greedy_decode runs it over ONNX Runtime."
    ),
)
