"""`classify`'s options, declared once (the CLI, config.yaml and `ClassifyTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

AUGMENTS = ("crop-flip", "flip", "none")  # training augmentation: random (padded or resized) crop + flip, ...
# cross-entropy on the logits, or a LogSoftmax output layer and the negative log-likelihood (mmkit.losses.classification)
LOSSES = ("ce", "nll")
DISTILL = "Knowledge distillation (Hinton et al. 2015)"


@dataclass
class ClassifyOptions:
    data: str = option("", "--data", "-d", help="Builtin name, ImageFolder tree, CIFAR or IDX folder.")
    model: str = option("smallcnn", "--model", "-m", help="Model name (`mmkit models list`).")
    weights: str | None = option(None, "--weights", "-w", help="imagenet, or a checkpoint / state_dict file.")
    img_size: int | None = option(None, help="Input size (default: the data's or the model's).")
    val_split: float = option(0.1, help="Fraction of train held out for validation.")
    freeze_backbone: bool = option(False, help="Train only the new head.")
    label_smoothing: float = option(0.0, help="Label smoothing of the cross-entropy (or of the NLL).")
    criterion: str = option(  # not `loss`: that is the method of ClassifyTask
        "ce",
        "--loss",
        help="ce: cross-entropy on the logits; nll: a LogSoftmax output layer trained with the negative "
        "log-likelihood (the same loss; checkpoints keep the logits, whose softmax is the same distribution).",
    )
    width: float = option(1.0, help="smallcnn's channel multiplier (2: 32/64/128 channels).")
    model_kwargs: dict = model_args_option()
    augment: str = option(
        "crop-flip",
        help="crop-flip: random crop (padded for small images, resized for photos) + flip where the data allows; "
        "flip: flip only (short schedules on small models); none.",
    )
    teacher: str | None = option(
        None,
        help="A classify checkpoint to distill from (knowledge distillation): frozen, the data's classes.",
        panel=DISTILL,
    )
    kd_weight: float = option(0.5, help="W in (1-W)*CE + W*T^2*KL(teacher || student).", panel=DISTILL)
    kd_temperature: float = option(4.0, help="T, the softmax temperature of the distillation.", panel=DISTILL)


# The recipes of bench/classify_accuracy.py: `mmkit classify train --data digits` with no other flag reaches them.
RECIPES = Recipes(
    defaults={},
    by_data={
        "digits": dict(
            model="smallcnn", epochs=15, batch_size=64, lr=1e-2, optimizer="adamw", weight_decay=0.05,
            schedule="onecycle", img_size=16, val_split=0.2, label_smoothing=0.1,
        ),
        "fashion-mnist": dict(
            model="smallcnn", epochs=18, batch_size=256, lr=5e-3, optimizer="adamw", weight_decay=0.05,
            schedule="onecycle", augment="flip", label_smoothing=0.1, channels_last=True,
            model_kwargs={"pool_size": 3, "depths": [1, 2, 2]},
        ),
    },
)  # fmt: skip
