"""`mmkit video train|eval|predict|features|export`: options parsed here, the work done by the task's predictor and
feature extractor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.errors import MMKitError
from mmkit.tasks.video.options import VideoOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)


c.train_command(
    app,
    "video",
    VideoOptions,
    example="mmkit video train --data motion-clips   (the README's recipe: CNN + LSTM on frames and their "
    "differences, 16 frames at 32 px, 25 epochs)",
)


c.command(
    app,
    "eval",
    "mmkit.tasks.video.predictor:evaluate",
    "weights data batch_size device out",
    doc="GAP@20 (YouTube-8M's metric), mAP (per-class AP in metrics.json), Hit@1, PERR, and top-1 for single-label "
    "data, on the validation split.",
    example="mmkit video eval --weights runs/video/exp/best.pt --data motion-clips",
    show=c.summary(
        lambda r: (
            f"video eval: {r['videos']} videos  GAP@20 {r['gap']:.4f}  mAP {r['map']:.4f}  "
            f"Hit@1 {r['hit_at_one']:.4f}  PERR {r['perr']:.4f}"
            + (f"  top-1 {100 * r['top1']:.2f} %" if "top1" in r else "")
            + f" -> {r['out_dir']}"
        )
    ),
)


@app.command(
    epilog="Examples: mmkit video predict --weights runs/video/exp/best.pt clip.mp4 --segment-seconds 5\n\n"
    "mmkit video predict --weights runs/video/yt8m/best.pt yt8m/test/ --submission out.csv   (Kaggle's top 20)"
)
def predict(
    videos: Annotated[
        list[Path],
        typer.Argument(help="Video files; with --submission, YouTube-8M TFRecord files, folders or globs."),
    ],
    weights: c.Weights,
    topk: Annotated[
        int | None,
        typer.Option(
            "--topk", "-k", help="Labels per video (default 5; 20 with --submission, as Kaggle scores)."
        ),
    ] = None,
    segment_seconds: Annotated[
        float | None, typer.Option("--segment-seconds", help="Also predict each segment of this length.")
    ] = None,
    submission: Annotated[
        Path | None,
        typer.Option(
            "--submission",
            help="Write the Kaggle YouTube-8M CSV (VideoId,LabelConfidencePairs: 'label score ...', best first) "
            "of every video in the records.",
        ),
    ] = None,
    batch_size: c.BatchSize = 64,
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """Labels with scores for each video (and each segment with --segment-seconds), or the Kaggle submission of
    YouTube-8M records (--submission)."""
    from mmkit.tasks.video.predictor import predict as run
    from mmkit.tasks.video.predictor import write_submission

    if submission is not None:
        if segment_seconds:
            raise MMKitError("--segment-seconds: not with --submission (one line per video)")
        records = [str(v) for v in videos]
        r = write_submission(
            weights, records, submission, topk=topk or 20, batch_size=batch_size, device=device
        )
        c.emit(f"video predict: {r['videos']} videos, top {r['topk']} labels each -> {r['out']}", r, json)
        return
    results, failures = run(
        weights, [str(v) for v in videos], topk=topk or 5, segment_seconds=segment_seconds, device=device
    )
    c.emit_items(
        "predictions", results, failures, json, _video_lines, f"video predict: {len(results)} videos"
    )


def _video_lines(r: dict) -> str:
    """A video's labels, then those of each of its segments."""
    lines = [f"{r['path']}: " + ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top"])]
    for s in r.get("segments", []):
        seg = ", ".join(f"{t['label']} {t['score']:.2f}" for t in s["top"][:3])
        lines.append(f"  {s['start']:.1f}-{s['end']:.1f}s: {seg}")
    return "\n".join(lines)


c.command(
    app,
    "features",
    "mmkit.tasks.video.features:extract",
    "batch_size device",
    doc="Per-frame CNN features of each video, written as YouTube-8M frame-level records (train/validate shards).",
    example="mmkit video features clips/ --backbone efficientnet_lite0 --out feats/",
    show=c.summary(
        lambda r: (
            f"video features: {r['videos']} videos, {r['frames']} frames, {r['dim']}-d {r['backbone']} "
            f"features ({r['skipped']} skipped) -> {r['out']}"
        )
    ),
    videos=(
        Annotated[
            list[Path],
            typer.Argument(help="Video files, or folders of class folders (labels from folder names)."),
        ],
        c.REQUIRED,
    ),
    out=(
        Annotated[Path, typer.Option("--out", "-o", help="Folder for the TFRecords and vocabulary.csv.")],
        c.REQUIRED,
    ),
    backbone=c.own(
        "--backbone", "A registered image model with ImageNet weights (offline).", str, "efficientnet_lite0"
    ),
    weights=c.own("--weights", "Its weights (a name or a file).", str, "imagenet"),
    fps=c.own("--fps", "Frames sampled per second (YouTube-8M: 1).", float, 1.0),
    max_frames=c.own("--max-frames", "At most this many frames per video.", int, 300),
    val_split=c.own("--val-split", "Fraction of videos written to validate*.tfrecord.", float, 0.2),
)


c.export_command(
    app,
    "video",
    doc=(
        "Export the classifier of whole videos (uint8 frames, or frame features, and each video's frame count"
        " -> logits; any batch and frame count), checked against PyTorch (ONNX Runtime for ONNX)."
    ),
)
