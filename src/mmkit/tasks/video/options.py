"""`video`'s training options, declared once (the CLI, config.yaml and `VideoTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

# raw frames in; the other video models take frame features
CLIP_MODELS = ("cnn-lstm", "cnn-gru", "cnn-rnn", "cnn-mean")
LEVELS = ("frame", "video")


@dataclass
class VideoOptions:
    data: str = option(
        "",
        "--data",
        "-d",
        help="motion-clips, a folder of YouTube-8M TFRecords (or `video features` output), or video folders.",
    )
    model: str = option(
        "lstm",
        "--model",
        "-m",
        help="lstm | gru | rnn | video-mean | netvlad | moe | dbof | frame-logistic | logistic (--level video) | "
        "cnn-lstm | cnn-gru | cnn-rnn | cnn-mean",
    )
    weights: str | None = option(None, "--weights", "-w", help="Start from a checkpoint.")
    level: str = option("frame", help="Records: frame or video level features.")
    max_frames: int = option(300, help="Frame-level records: frames padded or sampled to this many.")
    frames: int = option(16, help="Raw videos: frames sampled per video.")
    img_size: int | None = option(None, help="Raw videos: frame size (default 64).")
    val_split: float = option(0.1, help="Held-out fraction when the data has no validation split.")
    hidden: int | None = option(None, help="Hidden width of the RNN / MLP (default: the model's).")
    layers: int | None = option(None, help="RNN layers (1 or 2).")
    bidirectional: bool = option(False, "--bidirectional", help="Bidirectional RNN.")
    augment: bool = option(
        False,
        "--augment/--no-augment",
        help="motion-clips: mirror and reverse training clips at random, with the labels that follow "
        "(off by default: it cost the bench's CNN+LSTM 5 points).",
    )
    model_kwargs: dict = model_args_option(
        " Clip models: width, feat, grid, diff (frames + their differences). dbof: cluster, iterations, act."
    )


# `defaults` were the train command's engine overrides (`grad_clip` 5: RNNs). `motion-clips` is the README's recipe
# (`mmkit video train --data motion-clips` with no other flag runs it); `motion-clips-large` is the one
# bench/video_quality.py measured: CNN + LSTM on frames and their differences, 96.67 % top-1 on the 360 held-out
# clips after 12 epochs (bench/README.md).
RECIPES = Recipes(
    defaults={"grad_clip": 5.0},
    by_data={
        # bench/video_quality.py's cnn-lstm row on motion-clips (91.9 % held-out top-1 in 25 epochs)
        "motion-clips": dict(
            model="cnn-lstm", img_size=32, frames=16, hidden=128, epochs=25, batch_size=32, lr=3e-3,
            optimizer="adamw", weight_decay=1e-4, schedule="cosine", warmup=1.0, grad_clip=5.0,
            model_kwargs={"width": 16, "feat": 64, "diff": True},
        ),
        "motion-clips-large": dict(
            model="cnn-lstm", img_size=32, frames=16, hidden=128, augment=False, epochs=12, batch_size=32,
            lr=3e-3, optimizer="adamw", weight_decay=1e-4, schedule="cosine", warmup=1.0, grad_clip=5.0,
            model_kwargs={"width": 16, "feat": 64, "diff": True},
        ),
    },
)  # fmt: skip
