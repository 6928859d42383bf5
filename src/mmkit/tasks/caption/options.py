"""`caption`'s options, declared once (the CLI, config.yaml and `CaptionTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option


@dataclass
class CaptionOptions:
    data: str = option(
        "",
        "--data",
        "-d",
        help="caption-scenes, a folder with annotations/captions_*.json, a captions_*.json or a Karpathy "
        "dataset_*.json.",
    )
    model: str = option("show-attend-tell", "--model", "-m", help="show-tell | show-attend-tell | paragraph")
    weights: str | None = option(None, "--weights", "-w", help="Start from a checkpoint.")
    encoder: str = option(
        "smallcnn", help="Any registered classifier (smallcnn, resnet50, efficientnet_lite0...)."
    )
    encoder_weights: str | None = option(
        None, help="Pretrained encoder weights: a name (imagenet) or a file, e.g. a classify run's best.pt."
    )
    freeze_encoder: bool = option(False, help="Train the decoder only.")
    img_size: int | None = option(None, help="Input size (default: the data's, at most the encoder's).")
    min_count: int = option(2, help="Words seen fewer times become <unk>.")
    max_len: int = option(20, help="Words per sentence, at most.", min=1)
    max_sentences: int = option(6, help="Sentences per paragraph, at most (paragraph model).", min=1)
    attention_weight: float = option(1.0, help="Doubly stochastic regularization (show-attend-tell).")
    model_kwargs: dict = model_args_option()


# `defaults` were the train command's engine overrides; `caption-scenes` is the recipe bench/caption_quality.py
# measured (Show-Attend-and-Tell: BLEU-4 0.588, CIDEr-D 2.148 on the held-out scenes, beam 3), so that
# `mmkit caption train --data caption-scenes` with no other flag reproduces it.
RECIPES = Recipes(
    defaults={"grad_clip": 5.0},
    by_data={
        "caption-scenes": dict(
            model="show-attend-tell", encoder="smallcnn", img_size=64, attention_weight=1.0, epochs=20,
            batch_size=64, lr=2e-3, optimizer="adamw", weight_decay=1e-4, schedule="cosine", warmup=1.0,
            grad_clip=5.0,
        ),
    },
)  # fmt: skip
