"""`mmkit caption train|eval|predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.errors import MMKitError

app = typer.Typer(
    help="Image captioning: Show-and-Tell, Show-Attend-and-Tell, paragraphs; BLEU-1..4 and CIDEr-D.",
    no_args_is_help=True,
)

Weights = Annotated[str, typer.Option("--weights", "-w", help="A caption checkpoint (best.pt / last.pt).")]
Beam = Annotated[int, typer.Option("--beam", help="Beam width (1: greedy).")]


@app.command(epilog="Example: mmkit caption train --data caption-scenes --model show-attend-tell --epochs 10")
@c.engine_options(grad_clip=5.0)
def train(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="caption-scenes, a folder with annotations/captions_*.json, a captions_*.json or a Karpathy "
            "dataset_*.json.",
        ),
    ] = "",
    model: Annotated[
        str, typer.Option("--model", "-m", help="show-tell | show-attend-tell | paragraph")
    ] = "show-attend-tell",
    weights: Annotated[str | None, typer.Option("--weights", "-w", help="Start from a checkpoint.")] = None,
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder", help="Any registered classifier (smallcnn, resnet50, efficientnet_lite0...)."
        ),
    ] = "smallcnn",
    encoder_weights: Annotated[
        str | None, typer.Option("--encoder-weights", help="Pretrained encoder weights, e.g. imagenet.")
    ] = None,
    freeze_encoder: Annotated[bool, typer.Option("--freeze-encoder", help="Train the decoder only.")] = False,
    img_size: Annotated[
        int | None,
        typer.Option("--img-size", help="Input size (default: the data's, at most the encoder's)."),
    ] = None,
    min_count: Annotated[int, typer.Option("--min-count", help="Words seen fewer times become <unk>.")] = 2,
    max_len: Annotated[int, typer.Option("--max-len", help="Words per sentence, at most.")] = 20,
    attention_weight: Annotated[
        float, typer.Option("--attention-weight", help="Doubly stochastic regularization (show-attend-tell).")
    ] = 1.0,
    model_arg: c.ModelArg = None,
    *,
    engine: c.EngineOptions,
) -> None:
    """Train a captioner; writes runs/caption/<name>/ (checkpoints, BLEU/CIDEr-D per epoch, curves, report)."""
    from mmkit.tasks.caption import CaptionTask

    def task_args() -> dict:
        if not data:
            raise MMKitError("--data is required (caption-scenes, or a captions folder / JSON)")
        return dict(
            data=data,
            model=model,
            weights=weights,
            encoder=encoder,
            encoder_weights=encoder_weights,
            freeze_encoder=freeze_encoder,
            img_size=img_size,
            min_count=min_count,
            max_len=max_len,
            attention_weight=attention_weight,
            model_kwargs=c.model_kwargs(1.0, model_arg) or {},
        )

    c.run_train("caption", engine, CaptionTask, task_args)


@app.command(
    "eval", epilog="Example: mmkit caption eval --weights runs/caption/exp/best.pt --data caption-scenes"
)
def eval_(
    weights: Weights,
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
    from mmkit.tasks.caption import evaluate

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
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    weights: Weights,
    beam: Beam = 3,
    device: c.Device = "auto",
    save_dir: Annotated[
        Path | None,
        typer.Option("--save-dir", help="Write each image with its caption (and attention maps) as a PNG."),
    ] = None,
    json: c.Json = False,
) -> None:
    """A caption (or a paragraph) for each image."""
    from mmkit.tasks.caption import predict as run

    results, failures = run(weights, [str(p) for p in images], beam=beam, device=device, save_dir=save_dir)
    if json:
        c.emit("", {"captions": results, "errors": [{"path": p, "error": e} for p, e in failures]}, True)
    else:
        for r in results:
            typer.echo(f"{r['image']}: {r['caption']}")
        typer.echo(f"caption predict: {len(results)} images" + (f" -> {save_dir}" if save_dir else ""))
    if failures:
        raise MMKitError(
            f"{failures[0][1]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )
