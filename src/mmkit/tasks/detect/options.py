"""`detect`'s training options, declared once (the CLI, config.yaml and `DetectTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

ANCHORS = ("auto", "default")


@dataclass
class DetectOptions:
    data: str = option("", "--data", "-d", help="digit-scenes, a data.yaml, or a COCO folder/JSON.")
    model: str = option("yolov3-tiny", "--model", "-m", help="yolov3 | yolov3-tiny | localizer")
    weights: str | None = option(None, "--weights", "-w", help="Start from a checkpoint / state_dict.")
    img_size: int | None = option(None, help="Input size, a multiple of 32 (default: the model's).")
    val_split: float = option(0.1, help="Held-out fraction when the data has no val.")
    hflip: bool = option(False, help="Random horizontal flips (off: digits are not symmetric).")
    augment: bool = option(
        True,
        "--augment/--no-augment",
        help="Scale/translate/colour jitter in training (off: data that never repeats, e.g. digit-scenes-large).",
    )
    width: float = option(
        1.0, help="Channel multiplier of the YOLO model or the localizer (0.5 is ~4x cheaper)."
    )
    model_kwargs: dict = model_args_option()
    anchors: str = option(
        "auto", help="auto: k-means on the training boxes at --img-size; default: Darknet's COCO anchors."
    )
    # None (from Python) or 0 (from the command line): off
    ignore_iou: float | None = option(
        0.5,
        help="Background predictions over this IoU with an object get no objectness loss (0: off).",
        cli_type=float,
    )


# YOLOv3-tiny at width 0.5 and 256 px with AdamW, as README.md trains it on a folder of synthetic scenes:
# `mmkit detect train --data digit-scenes` with no other flag runs that recipe.
_README = dict(
    model="yolov3-tiny", img_size=256, width=0.5, epochs=30, batch_size=8, lr=2e-3, weight_decay=0.03,
)  # fmt: skip

# bench/detect_quality.py's recipe (mAP@[.5:.95] 0.640, mAP@.5 0.906 on the 300 held-out scenes, see bench/README.md):
# one pass over the 24,000 fresh scenes, so no augmentation, a short warm-up and no ignore threshold.
_BENCH = dict(
    model="yolov3-tiny", img_size=256, width=0.5, epochs=1, batch_size=8, lr=2e-3, optimizer="adamw",
    weight_decay=0.03, schedule="cosine", warmup=0.02, grad_clip=10.0, anchors="auto", ignore_iou=0.0,
    augment=False, workers=1,
)  # fmt: skip

RECIPES = Recipes(
    # what `mmkit detect train` used before recipes were data (folders and unknown names get these)
    defaults=dict(epochs=30, batch_size=16, weight_decay=5e-4, warmup=1.0, grad_clip=10.0),
    by_data={"digit-scenes": _README, "digit-scenes-large": _BENCH},
)
